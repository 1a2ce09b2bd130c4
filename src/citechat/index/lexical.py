"""The lexical part: every chunk's stemmed terms, BM25 over them and the terms' IDF.

Written with the generation (by :class:`LexicalBuilder`, as build.py streams the
chunks), so loading an index stems nothing; an update stems only the new chunks and
writes only their segment (lexsegments.py), the old generation's linked::

    gen-.../lexical/vocab.json      ["term", ...]  (id = position; an update appends)
    gen-.../lexical/df.npy          int32, live chunks holding each term (BM25's df)
    gen-.../lexical/text_df.npy     int32, live chunks whose text holds each term
    gen-.../lexical/seg-<gen>/      a segment: term ids and postings (lexsegments.py)

The manifest's ``lexical`` entry names the segments and the runs of their rows that
make the generation's rows, as the vector segments' do (segments.py); a row no run
names is dead.  BM25's statistics (row count, document frequencies, mean length)
are over the live rows, so its scores equal a fresh build's; an update computes the
frequencies from the old ones, less the dead rows', plus the new ones'.  When the
dead rows pass :data:`~.segments.MAX_DEAD_SHARE` of the linked segments, or the runs
:data:`~.segments.MAX_RUNS`, the update writes one segment again (a merge).

BM25 sees a chunk's header (title, commenter) and text, as the embedder does; the
IDF that the answerer weighs words by counts only the texts.  The manifest records
the tokenizer (:data:`TOKENIZER`) and BM25 parameters: an index written with others
is re-tokenised in memory at load, and the next update writes the new form.  An
index written before segments (one set of term ids and bm25s's score matrix) loads
and scores with bm25s; its next update writes one segment of all its rows.

It does not rank or fuse (retrieval.py does).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..text import TOKENIZER, terms
from ..types import Chunk
from .generations import npy_from_raw, npy_header_length
from .lexsegments import Segment, SegmentScorer, build_segment, link_segment
from .segments import linked_or_merge, run_pieces

BM25_K1 = 0.9
BM25_B = 0.4
#: the one term bm25s got for a chunk without any (an index written before segments)
EMPTY = "\u2205"
_LEGACY_FILES = ("token_ids.npy", "token_indptr.npy", "head_lengths.npy", "text_df.npy")


def _header(chunk: Chunk) -> str:
    return chunk.embedding_text().removesuffix(chunk.text)


class LexicalIndex:
    """The generation's rows (runs over ``segments``), each a chunk's term ids (the
    header's first), the live rows' document frequencies (``df``: header or text,
    BM25's; ``text_df``: texts, the answerer's IDF) and BM25 over them."""

    def __init__(
        self,
        vocab: Sequence[str],
        segments: Sequence[Segment],
        runs: np.ndarray,
        df: np.ndarray | None,
        text_df: np.ndarray,
        *,
        folder: Path | None = None,
        legacy_bm25: Any = None,
    ) -> None:
        self.vocab = list(vocab)
        self.segments = list(segments)
        self.runs = np.asarray(runs, dtype=np.int64).reshape(-1, 3)
        lengths = self.runs[:, 2] - self.runs[:, 1]
        self.ends = np.cumsum(lengths)
        self.starts = self.ends - lengths
        #: None for an index written before segments (never computed; its update merges)
        self.df = df
        self.text_df = text_df
        #: the ``lexical/`` folder it was loaded from (None: in memory), to link from
        self.folder = folder
        self._legacy = legacy_bm25
        self._scorer: SegmentScorer | None = None
        self._ids: dict[str, int] | None = None
        self._idf: dict[str, float] | None = None

    # -- building -----------------------------------------------------------------------

    @classmethod
    def from_chunks(cls, chunks: Sequence[Chunk]) -> LexicalIndex:
        """Stem every chunk: each text once, each distinct header once."""
        return cls.from_terms(_chunk_terms(chunks))

    @classmethod
    def from_terms(cls, rows: Sequence[tuple[list[str], list[str]]]) -> LexicalIndex:
        """From (header terms, text terms) per chunk, in memory."""
        ids: dict[str, int] = {}
        flat: list[int] = []
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        heads = np.zeros(len(rows), dtype=np.int32)
        for i, (head, text) in enumerate(rows):
            flat.extend(ids.setdefault(t, len(ids)) for t in head)
            flat.extend(ids.setdefault(t, len(ids)) for t in text)
            heads[i] = len(head)
            indptr[i + 1] = len(flat)
        token_ids = np.asarray(flat, dtype=np.int32)
        segment, df, text_df = build_segment(
            "seg-memory", lambda a, b: token_ids[a:b], indptr, heads, len(ids), token_ids
        )
        runs = np.array([[0, 0, len(rows)]]) if rows else np.zeros((0, 3))
        return cls(list(ids), [segment], runs, df.astype(np.int32), text_df.astype(np.int32))

    # -- what queries use -------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def pieces(self, lo: int, hi: int) -> list[tuple[int, int, int]]:
        """Rows ``[lo, hi)`` as (segment, first row, end row) of its segments."""
        return run_pieces(self.runs, self.starts, self.ends, lo, hi)

    def rows(self) -> list[list[int]]:
        """Each chunk's term ids (header then text)."""
        out: list[list[int]] = []
        for seg, a, b in self.runs.tolist():
            segment = self.segments[seg]
            ids = np.asarray(segment.token_ids)
            indptr = np.asarray(segment.indptr)
            out.extend(ids[indptr[i] : indptr[i + 1]].tolist() for i in range(a, b))
        return out

    @property
    def head_lengths(self) -> np.ndarray:
        """How many of each chunk's term ids are its header's."""
        parts = [np.asarray(self.segments[s].head_lengths[a:b]) for s, a, b in self.runs.tolist()]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)

    @property
    def tokens(self) -> int:
        """Term ids of the live rows."""
        return sum(
            int(self.segments[s].indptr[b]) - int(self.segments[s].indptr[a])
            for s, a, b in self.runs.tolist()
        )

    def bm25_scores(self, query_terms: Sequence[str]) -> np.ndarray | None:
        """Each chunk's BM25 score for the stemmed ``query_terms`` (a repeated term
        counts again, as in bm25s); None when no term is one of a live chunk."""
        if self._legacy is not None:
            q = [t for t in query_terms if t in self._legacy.vocab_dict]
            return np.asarray(self._legacy.get_scores(q)) if q else None
        if self.df is None or not len(self):
            return None
        if self._ids is None:
            self._ids = {t: i for i, t in enumerate(self.vocab)}
        ids = [self._ids.get(t, -1) for t in query_terms]
        ids = [i for i in ids if i >= 0 and self.df[i] > 0]
        if not ids:
            return None
        if self._scorer is None:
            self._scorer = SegmentScorer(self.segments, self.runs, self.df, BM25_K1, BM25_B)
        return self._scorer.scores(ids)

    @property
    def idf(self) -> dict[str, float]:
        """Inverse document frequency over live chunk texts of each term some holds."""
        if self._idf is None:
            n = max(1, len(self))
            df = np.asarray(self.text_df, dtype=np.float64)
            values = np.log(1 + (n - df + 0.5) / (df + 0.5))
            self._idf = {
                t: float(v)
                for t, v, d in zip(self.vocab, values.tolist(), self.text_df.tolist(), strict=True)
                if d > 0
            }
        return self._idf

    def release(self) -> None:
        """Unmap the pages of its segments read so far (see SavedIndex.release)."""
        for segment in self.segments:
            segment.release()

    # -- persistence --------------------------------------------------------------------

    @classmethod
    def load(cls, folder: Path, entry: dict[str, Any] | None) -> LexicalIndex | None:
        """The saved lexical part of generation ``folder``; None when the manifest
        ``entry`` is missing (an index from before it was saved) or names another
        tokenizer or BM25 parameters (re-tokenise).  Damaged files raise."""
        if not entry or entry.get("tokenizer") != TOKENIZER:
            return None
        if entry.get("bm25") != {"k1": BM25_K1, "b": BM25_B}:
            return None
        base = folder / "lexical"
        vocab = json.loads((base / "vocab.json").read_text())
        if "segments" in entry:
            names, runs = entry.get("segments"), np.asarray(entry.get("runs"), dtype=np.int64)
            runs = runs.reshape(-1, 3) if runs.size == 0 else runs
            if not isinstance(names, list) or runs.ndim != 2 or runs.shape[1:] != (3,):
                raise ValueError(f"the manifest's lexical segments are {str(names)[:80]!r}")
            segments = [Segment.load(base, str(name)) for name in names]
            df = np.load(base / "df.npy", mmap_mode="r")
            text_df = np.load(base / "text_df.npy", mmap_mode="r")
            lexical = cls(vocab, segments, runs, df, text_df, folder=base)
        else:  # written before segments: one set of term ids, bm25s's matrix
            ids, indptr, heads, text_df = (
                np.load(base / name, mmap_mode="r") for name in _LEGACY_FILES
            )
            bm25 = None
            if (base / "bm25").is_dir():
                import bm25s

                logging.getLogger("bm25s").setLevel(logging.WARNING)
                bm25 = bm25s.BM25.load(str(base / "bm25"), mmap=True, show_progress=False)
            segment = Segment("", ids, indptr, heads)
            runs = np.array([[0, 0, segment.rows]] if segment.rows else [], np.int64)
            lexical = cls(vocab, [segment], runs, None, text_df, folder=base, legacy_bm25=bm25)
        why = lexical.inconsistency(entry)
        if why:
            raise ValueError(why)
        return lexical

    def inconsistency(self, entry: dict[str, Any]) -> str | None:
        """Why these arrays disagree with each other or with the manifest ``entry``."""
        for s, a, b in self.runs.tolist():
            if not (0 <= s < len(self.segments) and 0 <= a <= b <= self.segments[s].rows):
                return f"lexical run {[s, a, b]} is outside its segment"
        n = len(self)
        if entry.get("chunks") != n or entry.get("terms") != len(self.vocab):
            return (
                f"lexical index has {n} chunks and {len(self.vocab)} terms, the manifest "
                f"says {entry.get('chunks')} and {entry.get('terms')}"
            )
        for segment in self.segments:
            why = segment.inconsistency(len(self.vocab))
            if why:
                return why
        if entry.get("tokens") != self.tokens:
            return f"lexical index has {self.tokens} term ids, expected {entry.get('tokens')}"
        if len(self.text_df) != len(self.vocab) or (
            self.df is not None and len(self.df) != len(self.vocab)
        ):
            return "lexical index arrays have different lengths"
        if self.df is None:  # written before segments: bm25s's matrix
            ids = self.segments[0].token_ids if self.segments else np.zeros(0)
            if len(ids) and int(ids.max()) >= len(self.vocab):
                return "lexical index refers to a term outside its vocabulary"
            if n and self._legacy is None:
                return "lexical index has no BM25 model"
            if self._legacy is not None and int(self._legacy.scores.get("num_docs", -1)) != n:
                return f"BM25 model has {self._legacy.scores.get('num_docs')} chunks, expected {n}"
        return None


class LexicalBuilder:
    """The lexical part of a generation, written chunk by chunk.

    New rows come stemmed (:meth:`add_chunks`); their term ids go to ``spool`` (a
    raw int32 file) as they arrive, in the vocabulary of ``old`` (the old
    generation's lexical part) extended.  Kept rows of ``old`` are runs of its
    segments (:meth:`keep`: nothing copied).  :meth:`finish` writes ``lexical/``:
    the old segments linked and one segment of the new rows, or one segment of
    every live row (a merge).  What it holds grows with the vocabulary and by 8
    bytes a new chunk.
    """

    def __init__(
        self, spool: Path, old: LexicalIndex | None = None, *, merge: bool = False
    ) -> None:
        self.spool = spool
        self.old = old
        self.merge = merge
        self._fh = open(spool, "wb")  # noqa: SIM115 - closed by finish()
        self.vocab: dict[str, int] = {t: i for i, t in enumerate(old.vocab)} if old else {}
        self._lengths = np.zeros(1024, dtype=np.int64)
        self._heads = np.zeros(1024, dtype=np.int32)
        self.new_rows = 0
        self.new_tokens = 0
        #: (segment of ``old``, first, end) in row order; segment -1: the new rows
        self.runs: list[list[int]] = []

    @property
    def rows(self) -> int:
        return sum(hi - lo for _, lo, hi in self.runs)

    def add_chunks(self, chunks: Sequence[Chunk]) -> None:
        """Stem ``chunks`` (header and text) and append their rows."""
        self.add_terms(_chunk_terms(chunks))

    def add_terms(self, rows: Sequence[tuple[list[str], list[str]]]) -> None:
        """Append rows of (header terms, text terms)."""
        if not rows:
            return
        ids: list[int] = []
        lengths, heads = [], []
        for head, text in rows:
            ids.extend(self.vocab.setdefault(t, len(self.vocab)) for t in head)
            ids.extend(self.vocab.setdefault(t, len(self.vocab)) for t in text)
            lengths.append(len(head) + len(text))
            heads.append(len(head))
        n = len(rows)
        self._lengths = _grown(self._lengths, self.new_rows + n)
        self._heads = _grown(self._heads, self.new_rows + n)
        self._lengths[self.new_rows : self.new_rows + n] = lengths
        self._heads[self.new_rows : self.new_rows + n] = heads
        self._fh.write(np.asarray(ids, dtype="<i4").tobytes())
        self._run(-1, self.new_rows, self.new_rows + n)
        self.new_rows += n
        self.new_tokens += len(ids)

    def keep(self, lo: int, hi: int) -> None:
        """Rows ``[lo, hi)`` of ``old``, kept as they are."""
        assert self.old is not None
        for seg, a, b in self.old.pieces(lo, hi):
            self._run(seg, a, b)

    def _run(self, seg: int, lo: int, hi: int) -> None:
        last = self.runs[-1] if self.runs else None
        if last is not None and last[0] == seg and last[2] == lo:
            last[2] = hi
        elif hi > lo:
            self.runs.append([seg, lo, hi])

    def finish(self, folder: Path) -> dict[str, Any]:
        """Write ``folder/lexical/`` and return its manifest entry; the spool is removed.
        The new segment is named after ``folder`` (the generation)."""
        self._fh.close()
        out = folder / "lexical"
        out.mkdir()
        terms_n = len(self.vocab)
        name = "seg-" + folder.name.removeprefix(".tmp-")
        old = self.old
        kept = any(seg >= 0 for seg, _, _ in self.runs)
        linkable = (
            kept
            and old is not None
            and old.folder is not None
            and old.df is not None
            and all(s.postings is not None for s in old.segments)
        )
        used = None
        if linkable:
            assert old is not None
            used = linked_or_merge(self.runs, lambda s: old.segments[s].rows, self.merge)
        new_indptr = _indptr(self._lengths[: self.new_rows])
        new_heads = self._heads[: self.new_rows]
        if kept and used is None:  # one segment of every live row
            raw, indptr, heads = self._merged(folder, terms_n, new_indptr)
            runs = [[0, 0, len(heads)]]
            df, text_df = _write_segment(out / name, raw, indptr, heads, terms_n)
            segments = [name]
        else:
            assert used is not None or not kept
            segments, index = [], {}
            for s in used or []:
                assert old is not None and old.folder is not None
                index[s] = len(segments)
                segments.append(old.segments[s].name)
                link_segment(old.folder / old.segments[s].name, out / old.segments[s].name)
            df = np.zeros(terms_n, dtype=np.int64)
            text_df = np.zeros(terms_n, dtype=np.int64)
            if self.new_rows:
                index[-1] = len(segments)
                segments.append(name)
                df, text_df = _write_segment(out / name, self.spool, new_indptr, new_heads, terms_n)
            runs = [[index[s], a, b] for s, a, b in self.runs]
            if kept:
                assert old is not None and old.df is not None
                old_df, old_text = self._frequencies_left(terms_n)
                df, text_df = df + old_df, text_df + old_text
        self.spool.unlink(missing_ok=True)
        (out / "vocab.json").write_text(json.dumps(list(self.vocab), ensure_ascii=False))
        np.save(out / "df.npy", df.astype(np.int32))
        np.save(out / "text_df.npy", text_df.astype(np.int32))
        tokens = self._live_tokens(new_indptr)
        return {
            "tokenizer": TOKENIZER,
            "bm25": _params(),
            "chunks": self.rows,
            "terms": terms_n,
            "tokens": tokens,
            "segments": segments,
            "runs": runs,
        }

    def _live_tokens(self, new_indptr: np.ndarray) -> int:
        total = 0
        for s, a, b in self.runs:
            if s < 0:
                total += int(new_indptr[b] - new_indptr[a])
            else:
                assert self.old is not None
                indptr = self.old.segments[s].indptr
                total += int(indptr[b]) - int(indptr[a])
        return total

    def _frequencies_left(self, terms_n: int) -> tuple[np.ndarray, np.ndarray]:
        """The old generation's document frequencies, less its rows now dead."""
        old = self.old
        assert old is not None and old.df is not None
        df = np.zeros(terms_n, dtype=np.int64)
        text_df = np.zeros(terms_n, dtype=np.int64)
        df[: len(old.df)] = old.df
        text_df[: len(old.text_df)] = old.text_df
        for s, segment in enumerate(old.segments):
            live = np.zeros(segment.rows, dtype=bool)
            for seg, a, b in old.runs.tolist():
                if seg == s:
                    live[a:b] = True
            for seg, a, b in self.runs:
                if seg == s:
                    live[a:b] = False
            d, t = segment.frequencies(np.flatnonzero(live), terms_n)
            df -= d
            text_df -= t
        return df, text_df

    def _merged(
        self, folder: Path, terms_n: int, new_indptr: np.ndarray
    ) -> tuple[Path, np.ndarray, np.ndarray]:
        """Every live row's term ids, in row order, into one raw file; its offsets
        and header lengths."""
        old = self.old
        assert old is not None
        raw = folder / ".lexical.merged.raw"
        lengths, heads = [], []
        header = 0
        with open(raw, "wb") as fh:
            for s, a, b in self.runs:
                if s < 0:
                    lo, hi = int(new_indptr[a]), int(new_indptr[b])
                    ids = np.fromfile(
                        self.spool, dtype="<i4", count=hi - lo, offset=header + 4 * lo
                    )
                    lengths.append(np.diff(new_indptr[a : b + 1]))
                    heads.append(self._heads[a:b])
                else:
                    segment = old.segments[s]
                    for x in range(a, b, 1 << 16):  # in blocks: a merge reads every row
                        y = min(b, x + (1 << 16))
                        fh.write(
                            np.ascontiguousarray(segment.terms_of(x, y, terms_n), "<i4").tobytes()
                        )
                    lengths.append(np.diff(np.asarray(segment.indptr[a : b + 1])))
                    heads.append(np.asarray(segment.head_lengths[a:b]))
                    continue
                fh.write(np.ascontiguousarray(ids, "<i4").tobytes())
        indptr = _indptr(np.concatenate(lengths)) if lengths else np.zeros(1, np.int64)
        head_lengths = np.concatenate(heads).astype(np.int32) if heads else np.zeros(0, np.int32)
        return raw, indptr, head_lengths

    def abandon(self) -> None:
        self._fh.close()
        self.spool.unlink(missing_ok=True)


def _params() -> dict[str, float]:
    return {"k1": BM25_K1, "b": BM25_B}


def _write_segment(
    path: Path, raw: Path, indptr: np.ndarray, heads: np.ndarray, terms_n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Segment folder ``path`` of the term ids in ``raw`` (removed); what its rows add
    to the document frequencies."""
    path.mkdir()
    ids_file = path / "token_ids.npy"
    npy_from_raw(raw, ids_file, np.dtype("<i4"), (int(indptr[-1]),))
    raw.unlink(missing_ok=True)
    header = npy_header_length(ids_file)

    def read(a: int, b: int) -> np.ndarray:
        return np.fromfile(ids_file, dtype="<i4", count=b - a, offset=header + 4 * a)

    ids = np.load(ids_file, mmap_mode="r")
    segment, df, text_df = build_segment(path.name, read, indptr, heads, terms_n, ids)
    segment.save(path.parent, ids=False)
    return df, text_df


def _grown(array: np.ndarray, size: int) -> np.ndarray:
    if size <= len(array):
        return array
    out = np.zeros(max(size, 2 * len(array)), dtype=array.dtype)
    out[: len(array)] = array
    return out


def _chunk_terms(chunks: Sequence[Chunk]) -> list[tuple[list[str], list[str]]]:
    heads: dict[str, list[str]] = {}
    rows = []
    for c in chunks:
        head = _header(c)
        rows.append((heads.setdefault(head, terms(head)), terms(c.text)))
    return rows


def _indptr(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
