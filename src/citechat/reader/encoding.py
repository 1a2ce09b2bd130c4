"""(question, ReaderInput) -> token ids, with the candidate sentence marked.

The sequence is ``[CLS] question [SEP] header [SEP] previous [unused0] sentence
[unused1] next [SEP]`` (token types 0 for the question, 1 after it).  The marker
tokens are vocabulary entries no text tokenises to, so a document can never fake
one.  The sentence is tokenised on its own, so every sentence token's character
offsets index ``ReaderInput.sentence`` exactly; adding ``ReaderInput.start`` gives
document offsets.  Budgets keep the sequence short: the question and header are
cut first, the sentence next, and the neighbours get what is left (the previous
sentence keeps its end, the next one its beginning).

It does not run the model (model.py) or pick the answer span (model.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .inputs import ReaderInput

MARK_OPEN = "[unused0]"
MARK_CLOSE = "[unused1]"
MAX_LEN = 128
MAX_QUESTION = 40
MAX_HEADER = 16
_SPECIALS = 6  # [CLS] [SEP] [SEP] open close [SEP]


@dataclass(frozen=True)
class Encoded:
    """One pair's tokens.  ``lo:hi`` are the sentence's token positions;
    ``offsets[i]`` is token ``lo + i``'s (start, end) in the sentence text."""

    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...]
    lo: int
    hi: int
    offsets: tuple[tuple[int, int], ...]

    def token_span(self, start: int, end: int) -> tuple[int, int] | None:
        """Sentence-relative characters [start, end) -> the first and last token
        positions covering them; None when no kept token overlaps."""
        hit = [i for i, (a, b) in enumerate(self.offsets) if a < end and b > start]
        if not hit:
            return None
        return self.lo + hit[0], self.lo + hit[-1]


class Encoder:
    """Tokenises pairs for the reader; ``tokenizer`` is a fast BERT tokenizer."""

    def __init__(self, tokenizer: Any, *, max_len: int = MAX_LEN) -> None:
        if max_len < 2 * (MAX_QUESTION + MAX_HEADER):
            raise ValueError(
                f"max_len must be at least {2 * (MAX_QUESTION + MAX_HEADER)}, got {max_len}"
            )
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("the reader needs a fast tokenizer (character offsets)")
        self.tokenizer = tokenizer
        self.max_len = max_len
        ids = tokenizer.convert_tokens_to_ids([MARK_OPEN, MARK_CLOSE])
        if tokenizer.unk_token_id in ids:
            raise ValueError(f"the tokenizer has no {MARK_OPEN}/{MARK_CLOSE} tokens")
        self.open_id, self.close_id = ids
        self.cls_id, self.sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
        self.pad_id = tokenizer.pad_token_id

    def _tokens(self, texts: Sequence[str]) -> dict[str, tuple[list[int], list[tuple[int, int]]]]:
        unique = sorted(set(texts))
        if not unique:
            return {}
        out = self.tokenizer(
            unique, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        return {
            t: (list(ids), [(int(a), int(b)) for a, b in offs])
            for t, ids, offs in zip(unique, out["input_ids"], out["offset_mapping"], strict=True)
        }

    def encode(self, questions: Sequence[str], items: Sequence[ReaderInput]) -> list[Encoded]:
        """One :class:`Encoded` per (question, item); texts are tokenised once each."""
        if len(questions) != len(items):
            raise ValueError(f"{len(questions)} questions for {len(items)} items")
        toks = self._tokens(
            [*questions, *(x for i in items for x in (i.header, i.previous, i.sentence, i.next))]
        )
        out = []
        for question, item in zip(questions, items, strict=True):
            q = toks[question][0][:MAX_QUESTION]
            h = toks[item.header][0][:MAX_HEADER]
            s_ids, s_off = toks[item.sentence]
            room = self.max_len - _SPECIALS - len(q) - len(h)
            s_ids, s_off = s_ids[:room], s_off[:room]
            left = room - len(s_ids)
            p_all, n_all = toks[item.previous][0], toks[item.next][0]
            p_n = min(len(p_all), max(left // 2, left - len(n_all)))
            n_n = min(len(n_all), left - p_n)
            p = p_all[len(p_all) - p_n :] if p_n else []
            n = n_all[:n_n]
            first = [self.cls_id, *q, self.sep_id]
            rest = [*h, self.sep_id, *p, self.open_id]
            lo = len(first) + len(rest)
            ids = [*first, *rest, *s_ids, self.close_id, *n, self.sep_id]
            types = [0] * len(first) + [1] * (len(ids) - len(first))
            out.append(Encoded(tuple(ids), tuple(types), lo, lo + len(s_ids), tuple(s_off)))
        return out

    def batch(self, encoded: Sequence[Encoded]) -> dict[str, np.ndarray]:
        """Padded int64 arrays: input_ids, token_type_ids, attention_mask, and
        sentence_mask (1 on the sentence's tokens, where a span may start or end)."""
        n, width = len(encoded), max((len(e.input_ids) for e in encoded), default=0)
        ids = np.full((n, width), self.pad_id, dtype=np.int64)
        types = np.zeros((n, width), dtype=np.int64)
        attn = np.zeros((n, width), dtype=np.int64)
        sent = np.zeros((n, width), dtype=np.int64)
        for row, e in enumerate(encoded):
            ids[row, : len(e.input_ids)] = e.input_ids
            types[row, : len(e.token_type_ids)] = e.token_type_ids
            attn[row, : len(e.input_ids)] = 1
            sent[row, e.lo : e.hi] = 1
        return {
            "input_ids": ids,
            "token_type_ids": types,
            "attention_mask": attn,
            "sentence_mask": sent,
        }
