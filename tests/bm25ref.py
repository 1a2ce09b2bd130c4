"""bm25s itself, built from scratch over a lexical index's live rows: what the
segmented BM25 (index/lexsegments.py) must score exactly as."""

from __future__ import annotations

import logging
from typing import Any

import bm25s

from citechat.index.lexical import BM25_B, BM25_K1, EMPTY, LexicalIndex


def bm25s_model(lex: LexicalIndex) -> Any:
    """A fresh bm25s model (the method citechat scored with before segments) over the
    rows of ``lex``, in its vocabulary; a row without terms holds one placeholder."""
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    vocab = {t: i for i, t in enumerate(lex.vocab)}
    empty = [vocab.setdefault(EMPTY, len(vocab))]
    rows = [row or empty for row in lex.rows()]
    model = bm25s.BM25(k1=BM25_K1, b=BM25_B)
    model.index(bm25s.tokenization.Tokenized(ids=rows, vocab=vocab), show_progress=False)
    return model


def bm25s_scores(model: Any, query_terms: list[str]) -> list[float] | None:
    """bm25s's score of each row (None: no query term is in its vocabulary)."""
    q = [t for t in query_terms if t in model.vocab_dict]
    return [float(s) for s in model.get_scores(q)] if q else None
