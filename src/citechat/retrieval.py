"""Hybrid retrieval: FAISS dense + BM25 (index/lexical.py), fused by a convex combination of
normalised scores (reciprocal rank fusion, :func:`rrf_fuse`, is kept for comparison).

``Retriever.search(query, k)`` -> ranked :class:`Hit` list.  Modes: "hybrid"
(default), "dense", "bm25".  An optional cross-encoder reranks the fused
candidates when ``settings.reranker`` names one.  BM25 and the terms' IDF come
from the index's lexical part (index/lexical.py), saved with the index, so nothing is
stemmed at start-up; BM25 sees the same title/section header the embedder sees.

It does not pick answer sentences (answering.py does).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .errors import ConfigError, ModelError
from .index import Index
from .text import terms
from .types import Hit

Mode = Literal["hybrid", "dense", "bm25"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "bm25")

#: RRF constant from Cormack et al. (2009); 60 is the usual choice
RRF_K = 60


@dataclass
class Retrieval:
    """What one search returns: hits plus what later stages can reuse."""

    hits: list[Hit]
    query_vector: np.ndarray | None
    timings: dict[str, float] = field(default_factory=dict)
    #: the text that was searched (a follow-up's history-aware query)
    query: str = ""


#: weight of the dense scores in :func:`convex_fuse` (BM25 gets the rest); chosen on
#: SQuAD v1.1 dev (first 1,000) and the seed set, see README "Measured results"
DENSE_WEIGHT = 0.4


def convex_fuse(
    dense: Sequence[tuple[int, float]],
    sparse: Sequence[tuple[int, float]],
    dense_weight: float = DENSE_WEIGHT,
) -> list[tuple[int, float]]:
    """Convex combination of min-max normalised dense and BM25 scores (Bruch et
    al., 2023, found it beats reciprocal rank fusion when tuned); an id missing
    from one list scores 0 there.  Ties broken by id.

    >>> convex_fuse([(1, 0.9), (2, 0.5)], [(2, 12.0), (3, 4.0)], dense_weight=0.5)
    [(1, 0.5), (2, 0.5), (3, 0.0)]
    """

    def normalised(scored: Sequence[tuple[int, float]]) -> dict[int, float]:
        if not scored:
            return {}
        lo = min(s for _, s in scored)
        span = max(s for _, s in scored) - lo
        return {i: (s - lo) / span if span > 0 else 1.0 for i, s in scored}

    d, b = normalised(dense), normalised(sparse)
    scores = {
        i: dense_weight * d.get(i, 0.0) + (1.0 - dense_weight) * b.get(i, 0.0)
        for i in d.keys() | b.keys()
    }
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def rrf_fuse(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of several best-first id lists; ties broken by id.

    >>> rrf_fuse([[1, 2, 3], [3, 1]], k=1)
    [(1, 0.8333333333333333), (3, 0.75), (2, 0.3333333333333333)]
    """
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def top_scores(scores: np.ndarray, n: int) -> list[tuple[int, float]]:
    """(row, score) of the ``n`` best positive scores, best first, ties by row.

    Selected among the positive scores only: most rows of a large index score 0 for
    a question, and NumPy's partition over a million scores that are mostly equal
    takes about 45 ms, over the 90,000 positive ones 6.

    >>> top_scores(np.array([0.0, 2.0, 0.5, 2.0, 0.0]), 2)
    [(1, 2.0), (3, 2.0)]
    >>> top_scores(np.array([1.0, 3.0, 1.0, 1.0]), 3)
    [(1, 3.0), (0, 1.0), (2, 1.0)]
    """
    rows = np.flatnonzero(scores > 0)
    if len(rows) > n:
        values = scores[rows]
        nth = -np.partition(-values, n - 1)[n - 1]
        above = rows[values > nth]
        rows = np.concatenate([above, rows[values == nth][: n - len(above)]])
    rows = rows[np.lexsort((rows, -scores[rows]))]
    return [(int(r), float(scores[r])) for r in rows]


class Retriever:
    def __init__(
        self,
        index: Index,
        *,
        mode: Mode = "hybrid",
        reranker: str | None = None,
        candidates: int = 50,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"retrieval mode must be one of {', '.join(MODES)}, got {mode!r}")
        if candidates < 1:
            raise ConfigError(f"candidates must be at least 1, got {candidates}")
        self.index = index
        self.mode = mode
        self.candidates = candidates
        self.reranker_name = reranker
        self._reranker: Any = None
        self._lock = threading.Lock()
        lexical = index.lexical
        self._lexical = lexical if mode != "dense" else None
        #: inverse document frequency of each term over chunk texts (answer scoring)
        self.idf = lexical.idf

    def bm25_search(self, query: str, n: int) -> list[tuple[int, float]]:
        if self._lexical is None:
            return []
        scores = self._lexical.bm25_scores(terms(query))
        return [] if scores is None else top_scores(scores, n)

    def search(self, query: str, k: int = 5) -> Retrieval:
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        timings: dict[str, float] = {}
        n = max(self.candidates, k)
        qvec = None
        dense: list[tuple[int, float]] = []
        if self.mode in ("hybrid", "dense"):
            t0 = time.perf_counter()
            qvec = self.index.embedder.embed([query])[0]
            timings["embed"] = _ms(t0)
            t0 = time.perf_counter()
            dense = self.index.search_dense(qvec, n)
            timings["dense"] = _ms(t0)
        sparse: list[tuple[int, float]] = []
        if self.mode in ("hybrid", "bm25"):
            t0 = time.perf_counter()
            sparse = self.bm25_search(query, n)
            timings["bm25"] = _ms(t0)
        t0 = time.perf_counter()
        dense_score = dict(dense)
        bm25_score = dict(sparse)
        fused = convex_fuse(dense, sparse) if self.mode == "hybrid" else (dense or sparse)
        timings["fuse"] = _ms(t0)
        if self.reranker_name and fused:
            t0 = time.perf_counter()
            fused = self._rerank(query, [r for r, _ in fused[: max(k * 4, 20)]])
            timings["rerank"] = _ms(t0)
        hits = [
            Hit(
                chunk=self.index.chunks[row],
                score=score,
                rank=rank,
                dense_score=dense_score.get(row),
                bm25_score=bm25_score.get(row),
            )
            for rank, (row, score) in enumerate(fused[:k], start=1)
        ]
        return Retrieval(hits=hits, query_vector=qvec, timings=timings, query=query)

    def _rerank(self, query: str, rows: list[int]) -> list[tuple[int, float]]:
        with self._lock:
            if self._reranker is None:
                try:
                    from sentence_transformers import CrossEncoder

                    self._reranker = CrossEncoder(self.reranker_name, device="cpu")
                except Exception as exc:
                    raise ModelError(
                        f"cannot load reranker {self.reranker_name!r}: {exc.__class__.__name__}; "
                        "check CITECHAT_RERANKER (a cross-encoder name or local path) or unset it"
                    ) from exc
        pairs = [(query, self.index.chunks[r].embedding_text()) for r in rows]
        scores = np.asarray(self._reranker.predict(pairs, show_progress_bar=False), dtype=float)
        if scores.size and (scores.min() < 0 or scores.max() > 1):
            # raw logits: squash to (0, 1) so scores stay comparable to fused ones and the
            # answerer's rank prior (score / top score) keeps its meaning
            scores = 1.0 / (1.0 + np.exp(-scores))
        ranked = sorted(zip(rows, scores, strict=True), key=lambda rs: (-float(rs[1]), rs[0]))
        return [(r, float(s)) for r, s in ranked]


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0
