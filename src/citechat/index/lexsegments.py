"""The lexical part's segments: each chunk's term ids and BM25's postings, written once.

A generation's lexical part (lexical.py) is a list of segments and runs over them, as
the vector segments are (segments.py): an update writes one segment of its new chunks
and hard-links the old generation's, and the rows that no run names are dead::

    lexical/seg-<gen>/token_ids.npy      int32, the rows' term ids, header terms first
    lexical/seg-<gen>/token_indptr.npy   int64, row i's ids are [indptr[i], indptr[i+1])
    lexical/seg-<gen>/head_lengths.npy   int32, how many of row i's ids are header terms
    lexical/seg-<gen>/post_indptr.npy    int64, term t's postings are [p[t], p[t+1])
    lexical/seg-<gen>/post_rows.npy      int32, the rows holding the term, ascending
    lexical/seg-<gen>/post_tf.npy        uint16 (or uint32), how often the row holds it

The postings hold raw term frequencies, not scores: BM25's document frequencies, row
count and mean length are the generation's (over its live rows), so a score is
computed at query time (:class:`SegmentScorer`) and equals what bm25s gives for a
fresh build of the live rows (its "lucene" method: the same IDF, the same term
frequency part, summed in float32 in query-term order).

It does not decide which rows live or when to merge (lexical.py does).
"""

from __future__ import annotations

import mmap
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

__all__ = ["FILES", "Segment", "SegmentScorer", "build_segment", "link_segment"]

FILES = (
    "token_ids.npy",
    "token_indptr.npy",
    "head_lengths.npy",
    "post_indptr.npy",
    "post_rows.npy",
    "post_tf.npy",
)
#: term ids read at a time when postings are built
_BLOCK = 1 << 20

Reader = Callable[[int, int], np.ndarray]


class Segment:
    """One segment's arrays (memory-mapped when loaded).  ``post_*`` are None for the
    lexical part of an index written before segments (its terms only: BM25 was
    bm25s's matrix); such a segment is merged by the next update."""

    def __init__(
        self,
        name: str,
        token_ids: np.ndarray,
        indptr: np.ndarray,
        head_lengths: np.ndarray,
        postings: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.name = name
        self.token_ids = token_ids
        self.indptr = indptr
        self.head_lengths = head_lengths
        self.postings = postings

    @property
    def rows(self) -> int:
        return len(self.indptr) - 1

    @classmethod
    def load(cls, folder: Path, name: str) -> Segment:
        path = folder / name
        if path.parent != folder or not name.startswith("seg-"):
            raise ValueError(f"lexical segment {name[:80]!r} is outside lexical/")
        ids, indptr, heads, p_indptr, p_rows, p_tf = (
            np.load(path / file, mmap_mode="r") for file in FILES
        )
        return cls(name, ids, indptr, heads, (p_indptr, p_rows, p_tf))

    def save(self, folder: Path, *, ids: bool = True) -> None:
        """Write ``folder/<name>/`` (``ids``: its term ids too, else written already)."""
        assert self.postings is not None
        path = folder / self.name
        path.mkdir(exist_ok=not ids)
        arrays = (self.token_ids, self.indptr, self.head_lengths, *self.postings)
        for file, array in zip(FILES, arrays, strict=True):
            if ids or file != FILES[0]:
                np.save(path / file, array)

    def inconsistency(self, terms: int) -> str | None:
        """Why the segment's arrays disagree with each other (``terms``: the vocabulary)."""
        if len(self.head_lengths) != self.rows or int(self.indptr[-1]) != len(self.token_ids):
            return f"lexical segment {self.name} has rows and term ids that disagree"
        if self.postings is not None:
            p_indptr, p_rows, p_tf = self.postings
            if int(p_indptr[-1]) != len(p_rows) or len(p_rows) != len(p_tf):
                return f"lexical segment {self.name} has postings that disagree"
            if len(p_indptr) - 1 > terms:
                return f"lexical segment {self.name} refers to a term outside its vocabulary"
        return None

    def terms_of(self, lo: int, hi: int, terms: int) -> np.ndarray:
        """Term ids of rows ``[lo, hi)``, checked against the vocabulary size ``terms``."""
        ids = np.asarray(self.token_ids[int(self.indptr[lo]) : int(self.indptr[hi])])
        if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= terms):
            raise ValueError(f"lexical segment {self.name} refers to a term outside its vocabulary")
        return ids

    def frequencies(self, rows: np.ndarray, terms: int) -> tuple[np.ndarray, np.ndarray]:
        """How many of ``rows`` hold each term (header or text) and each term in their
        text: what they add to a generation's document frequencies."""
        df = np.zeros(terms, dtype=np.int64)
        text_df = np.zeros(terms, dtype=np.int64)
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return df, text_df
        # consecutive rows in one read
        cuts = np.flatnonzero(np.diff(rows) != 1) + 1
        for part in np.split(rows, cuts):
            lo, hi = int(part[0]), int(part[-1]) + 1
            ids = self.terms_of(lo, hi, terms)
            d, t, _ = _block_df(
                ids, np.asarray(self.indptr[lo : hi + 1]), self.head_lengths[lo:hi], terms
            )
            df += d
            text_df += t
        return df, text_df

    def release(self) -> None:
        """Unmap the pages read so far (see SavedIndex.release)."""
        arrays = [self.token_ids, *(self.postings or ())]
        for array in arrays:
            mm = getattr(array, "_mmap", None)
            if isinstance(mm, mmap.mmap):
                mm.madvise(mmap.MADV_DONTNEED)


def link_segment(source: Path, target: Path) -> None:
    """Hard-link segment folder ``source`` to ``target`` (copies where links fail)."""
    target.mkdir()
    for file in FILES:
        try:
            os.link(source / file, target / file)
        except OSError:
            shutil.copyfile(source / file, target / file)


def build_segment(
    name: str,
    read: Reader,
    indptr: np.ndarray,
    head_lengths: np.ndarray,
    terms: int,
    token_ids: np.ndarray,
) -> tuple[Segment, np.ndarray, np.ndarray]:
    """The segment of rows whose term ids ``read(a, b)`` gives (``token_ids``: the
    same ids, as the segment will hold them), with its postings built in blocks of
    about :data:`_BLOCK` ids; and what its rows add to the document frequencies
    (header or text, text only), as :meth:`Segment.frequencies` gives them."""
    indptr = np.asarray(indptr, dtype=np.int64)
    heads = np.asarray(head_lengths, dtype=np.int32)
    blocks = _blocks(indptr)
    df = np.zeros(terms, dtype=np.int64)
    text_df = np.zeros(terms, dtype=np.int64)
    top = 0
    for lo, hi in blocks:  # pass 1: how many rows hold each term
        ids = read(int(indptr[lo]), int(indptr[hi]))
        d, t, most = _block_df(ids, indptr[lo : hi + 1], heads[lo:hi], terms)
        df += d
        text_df += t
        top = max(top, most)
    p_indptr = np.concatenate([[0], np.cumsum(df)]).astype(np.int64)
    p_rows = np.empty(int(p_indptr[-1]), dtype=np.int32)
    p_tf = np.empty(len(p_rows), dtype=np.uint16 if top < 1 << 16 else np.uint32)
    fill = p_indptr[:-1].copy()
    for lo, hi in blocks:  # pass 2: each term's rows, in row order
        ids = read(int(indptr[lo]), int(indptr[hi]))
        if not len(ids):
            continue
        keys, counts = _term_major(ids, indptr[lo : hi + 1])
        width = hi - lo
        term, row = keys // width, keys % width + lo
        starts = np.flatnonzero(np.concatenate([[True], term[1:] != term[:-1]]))
        run_terms = term[starts]
        run_lengths = np.diff(np.append(starts, len(term)))
        rank = np.arange(len(term)) - np.repeat(starts, run_lengths)
        at = fill[term] + rank
        p_rows[at] = row
        p_tf[at] = counts
        fill[run_terms] += run_lengths
    segment = Segment(name, token_ids, indptr, heads, (p_indptr, p_rows, p_tf))
    return segment, df, text_df


def _blocks(indptr: np.ndarray) -> list[tuple[int, int]]:
    n = len(indptr) - 1
    out = []
    first = 0
    while first < n:
        last = int(np.searchsorted(indptr, indptr[first] + _BLOCK, side="right")) - 1
        last = min(n, max(first + 1, last))
        out.append((first, last))
        first = last
    return out


def _rows_of(ids: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """The row (from 0) of each id of rows ``indptr`` (relative to their first id)."""
    lengths = np.diff(indptr)
    return np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)


def _term_major(ids: np.ndarray, indptr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``term * rows + row`` keys of a block (sorted: by term, then row) and
    how often each occurs."""
    width = len(indptr) - 1
    keys = np.asarray(ids, dtype=np.int64) * width + _rows_of(ids, indptr)
    return _distinct(keys)


def _distinct(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of ``keys``, sorted, and how often each occurs: by a sort
    (NumPy 2's ``np.unique`` without counts hashes, 20 times slower on these keys)."""
    keys = np.sort(keys)
    if not len(keys):
        return keys, np.zeros(0, dtype=np.int64)
    first = np.empty(len(keys), dtype=bool)
    first[0] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    at = np.flatnonzero(first)
    return keys[at], np.diff(np.append(at, len(keys)))


def _block_df(
    ids: np.ndarray, indptr: np.ndarray, heads: np.ndarray, terms: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """How many rows of a block hold each term, anywhere and in their text, and the
    most times one row holds one term."""
    if not len(ids):
        return np.zeros(terms, dtype=np.int64), np.zeros(terms, dtype=np.int64), 0
    indptr = np.asarray(indptr, dtype=np.int64) - int(indptr[0])
    width = len(indptr) - 1
    ids = np.asarray(ids, dtype=np.int64)
    rows = _rows_of(ids, indptr)
    lengths = np.diff(indptr)
    offset = np.arange(len(ids), dtype=np.int64) - np.repeat(indptr[:-1], lengths)
    text = offset >= np.repeat(np.asarray(heads, dtype=np.int64), lengths)
    # one sort: (row, term) keys with a text bit, so that a key of the text and one of
    # the header are two distinct values of one key
    keys, counts = _distinct((ids * width + rows) * 2 + text)
    pair = keys >> 1
    first = np.concatenate([[True], pair[1:] != pair[:-1]])
    df = np.bincount(pair[first] // width, minlength=terms)
    text_df = np.bincount(pair[(keys & 1) == 1] // width, minlength=terms)
    counts = np.add.reduceat(counts, np.flatnonzero(first))
    return df.astype(np.int64), text_df.astype(np.int64), int(counts.max())


class SegmentScorer:
    """BM25 over the live rows of segments (``runs``: segment, first row, end row, in
    row order), with the generation's document frequencies ``df``.

    Scores as bm25s's "lucene" method with ``k1`` and ``b``: IDF ``log(1 + (N - df +
    0.5) / (df + 0.5))`` (float32), term frequency part ``tf / (k1 * (1 - b + b * dl /
    avgdl) + tf)`` in float64, their product stored as float32 and summed in float32
    term by term, as bm25s sums its precomputed matrix; a row without terms has
    length 1 (bm25s sees it hold one placeholder term).
    """

    def __init__(
        self,
        segments: Sequence[Segment],
        runs: np.ndarray,
        df: np.ndarray,
        k1: float,
        b: float,
    ) -> None:
        self.segments = list(segments)
        self.runs = np.asarray(runs, dtype=np.int64).reshape(-1, 3)
        lengths = self.runs[:, 2] - self.runs[:, 1]
        self.n = int(lengths.sum())
        n = max(1, self.n)
        dfs = np.asarray(df, dtype=np.float64)
        self.idf = np.where(df > 0, np.log(1 + (n - dfs + 0.5) / (dfs + 0.5)), 0.0).astype(
            np.float32
        )
        self.df = np.asarray(df)
        starts = np.cumsum(lengths) - lengths
        # each segment's row -> the generation's row (-1: dead), and its length part
        self.logical: list[np.ndarray] = []
        self.dead: list[bool] = []
        total = 0
        for s, seg in enumerate(self.segments):
            where = np.full(seg.rows, -1, dtype=np.int64)
            for (_, a, b_), start in zip(
                self.runs[self.runs[:, 0] == s], starts[self.runs[:, 0] == s], strict=True
            ):
                where[a:b_] = np.arange(start, start + b_ - a)
            self.logical.append(where)
            self.dead.append(bool((where < 0).any()))
        self.dl: list[np.ndarray] = []
        for s, seg in enumerate(self.segments):
            dl = np.maximum(1, np.diff(np.asarray(seg.indptr))).astype(np.float64)
            self.dl.append(dl)
            total += int(dl[self.logical[s] >= 0].sum())
        avgdl = total / n
        self.norm = [k1 * ((1 - b) + b * dl / avgdl) for dl in self.dl]

    def scores(self, term_ids: Sequence[int]) -> np.ndarray:
        """Each live row's BM25 score for the query ``term_ids`` (repeats count)."""
        out = np.zeros(self.n, dtype=np.float32)
        for t in term_ids:
            if t >= len(self.df) or self.df[t] <= 0:
                continue
            idf = np.float64(self.idf[t])
            for s, seg in enumerate(self.segments):
                assert seg.postings is not None
                p_indptr, p_rows, p_tf = seg.postings
                if t + 1 >= len(p_indptr):
                    continue
                a, b = int(p_indptr[t]), int(p_indptr[t + 1])
                if a == b:
                    continue
                rows = np.asarray(p_rows[a:b])
                tf = np.asarray(p_tf[a:b]).astype(np.float64)
                where = self.logical[s][rows]
                if self.dead[s]:
                    live = where >= 0
                    rows, tf, where = rows[live], tf[live], where[live]
                out[where] += (idf * (tf / (self.norm[s][rows] + tf))).astype(np.float32)
        return out
