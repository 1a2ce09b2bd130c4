"""The lexical index: every chunk's stemmed terms, BM25 over them and the terms' IDF.

Written with the generation (by :class:`LexicalBuilder`, as build.py streams the
chunks), so loading an index reads it (BM25's matrix memory-mapped) instead of
stemming the whole corpus again; an update stems only the new chunks::

    gen-.../lexical/vocab.json           ["term", ...]            (id = position)
    gen-.../lexical/token_ids.npy        int32, all chunks' term ids, header terms first
    gen-.../lexical/token_indptr.npy     int64, chunk i's ids are [indptr[i], indptr[i+1])
    gen-.../lexical/head_lengths.npy     int32, how many of chunk i's ids are header terms
    gen-.../lexical/text_df.npy          int32, chunks whose text holds each term
    gen-.../lexical/bm25/                bm25s's own files (scores as a CSC matrix)

BM25 sees a chunk's header (title, commenter) and text, as the embedder does; the
IDF that the answerer weighs words by counts only the texts.  The manifest records
the tokenizer (:data:`TOKENIZER`) and BM25 parameters: an index written with others
is re-tokenised in memory at load, and the next update writes the new form.

:class:`LexicalBuilder` writes term ids to disk as chunks arrive and builds BM25
from that file, so it holds the vocabulary and per-chunk counts, not every chunk's
ids; :class:`LexicalIndex` is what readers load (or compute from chunks in memory).

It does not rank or fuse (retrieval.py does).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..text import TOKENIZER, terms
from ..types import Chunk
from .generations import npy_from_raw, npy_header_length

BM25_K1 = 0.9
BM25_B = 0.4
#: the one term BM25 gets for a chunk without any, so that its row exists
EMPTY = "\u2205"
_FILES = ("vocab.json", "token_ids.npy", "token_indptr.npy", "head_lengths.npy", "text_df.npy")


def _header(chunk: Chunk) -> str:
    return chunk.embedding_text().removesuffix(chunk.text)


class LexicalIndex:
    """Term ids of each chunk (CSR: ``token_ids[indptr[i]:indptr[i+1]]``, the first
    ``head_lengths[i]`` from its header), the document frequency of each term in chunk
    texts, and a BM25 model over header + text terms (built on first use unless loaded).
    """

    def __init__(
        self,
        vocab: Sequence[str],
        token_ids: np.ndarray,
        indptr: np.ndarray,
        head_lengths: np.ndarray,
        text_df: np.ndarray | None = None,
        bm25: Any = None,
    ) -> None:
        self.vocab = list(vocab)
        self.token_ids = token_ids
        self.indptr = indptr
        self.head_lengths = head_lengths
        self.text_df = _text_df(self) if text_df is None else text_df
        self._bm25 = bm25
        self._idf: dict[str, float] | None = None

    # -- building -----------------------------------------------------------------------

    @classmethod
    def from_chunks(cls, chunks: Sequence[Chunk]) -> LexicalIndex:
        """Stem every chunk: each text once, each distinct header once."""
        return cls.from_terms(_chunk_terms(chunks))

    @classmethod
    def from_terms(cls, rows: Sequence[tuple[list[str], list[str]]]) -> LexicalIndex:
        """From (header terms, text terms) per chunk."""
        ids: dict[str, int] = {}
        flat: list[int] = []
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        heads = np.zeros(len(rows), dtype=np.int32)
        for i, (head, text) in enumerate(rows):
            flat.extend(ids.setdefault(t, len(ids)) for t in head)
            flat.extend(ids.setdefault(t, len(ids)) for t in text)
            heads[i] = len(head)
            indptr[i + 1] = len(flat)
        return cls(list(ids), np.asarray(flat, dtype=np.int32), indptr, heads)

    # -- what queries use -------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def rows(self) -> list[list[int]]:
        """Each chunk's term ids (header then text)."""
        if not len(self):
            return []
        return [part.tolist() for part in np.split(self.token_ids, self.indptr[1:-1])]

    @property
    def bm25(self) -> Any:
        """A bm25s model over header + text terms (None for an empty corpus)."""
        if self._bm25 is None and len(self):
            self._bm25 = self._build_bm25()
        return self._bm25

    def _build_bm25(self) -> Any:
        ids = self.token_ids
        return _build_bm25(self.vocab, _Rows(lambda a, b: np.asarray(ids[a:b]), self.indptr))

    @property
    def idf(self) -> dict[str, float]:
        """Inverse document frequency over chunk texts of each term that some text holds."""
        if self._idf is None:
            n = max(1, len(self))
            df = self.text_df.astype(np.float64)
            values = np.log(1 + (n - df + 0.5) / (df + 0.5))
            self._idf = {
                t: float(v)
                for t, v, d in zip(self.vocab, values.tolist(), self.text_df.tolist(), strict=True)
                if d > 0
            }
        return self._idf

    # -- persistence --------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The manifest's ``lexical`` entry."""
        return {
            "tokenizer": TOKENIZER,
            "bm25": {"k1": BM25_K1, "b": BM25_B},
            "chunks": len(self),
            "terms": len(self.vocab),
            "tokens": len(self.token_ids),
        }

    @classmethod
    def load(cls, folder: Path, entry: dict[str, Any] | None) -> LexicalIndex | None:
        """The saved lexical index of generation ``folder``; None when the manifest
        ``entry`` is missing (an index from before it was saved) or names another
        tokenizer or BM25 parameters (re-tokenise).  Damaged files raise."""
        if not entry or entry.get("tokenizer") != TOKENIZER:
            return None
        if entry.get("bm25") != {"k1": BM25_K1, "b": BM25_B}:
            return None
        base = folder / "lexical"
        vocab = json.loads((base / "vocab.json").read_text())
        ids, indptr, heads, df = (np.load(base / name, mmap_mode="r") for name in _FILES[1:])
        bm25 = None
        if (base / "bm25").is_dir():
            import bm25s

            logging.getLogger("bm25s").setLevel(logging.WARNING)
            bm25 = bm25s.BM25.load(str(base / "bm25"), mmap=True, show_progress=False)
        lexical = cls(vocab, ids, indptr, heads, df, bm25=bm25)
        why = lexical.inconsistency(entry)
        if why:
            raise ValueError(why)
        return lexical

    def inconsistency(self, entry: dict[str, Any]) -> str | None:
        """Why these arrays disagree with each other or with the manifest ``entry``."""
        n = len(self)
        if entry.get("chunks") != n or entry.get("terms") != len(self.vocab):
            return (
                f"lexical index has {n} chunks and {len(self.vocab)} terms, the manifest "
                f"says {entry.get('chunks')} and {entry.get('terms')}"
            )
        if entry.get("tokens") != len(self.token_ids) or self.indptr[-1] != len(self.token_ids):
            return (
                f"lexical index has {len(self.token_ids)} term ids, expected {entry.get('tokens')}"
            )
        if len(self.head_lengths) != n or len(self.text_df) != len(self.vocab):
            return "lexical index arrays have different lengths"
        if len(self.token_ids) and int(self.token_ids.max()) >= len(self.vocab):
            return "lexical index refers to a term outside its vocabulary"
        if n and self._bm25 is None:
            return "lexical index has no BM25 model"
        if self._bm25 is not None and int(self._bm25.scores.get("num_docs", -1)) != n:
            return f"BM25 model has {self._bm25.scores.get('num_docs')} chunks, expected {n}"
        return None


class LexicalBuilder:
    """The lexical part of a generation, written chunk by chunk.

    Term ids go to ``spool`` (a raw int32 file) as rows arrive; :meth:`finish`
    turns it into ``lexical/`` with BM25 built by reading it back in blocks.  Rows
    come stemmed (:meth:`add_chunks`) or copied from another index's lexical
    part (:meth:`add_rows`, a kept document: not stemmed again).  What it holds
    grows with the vocabulary and by 12 bytes a chunk (offsets, header lengths).
    """

    def __init__(self, spool: Path) -> None:
        self.spool = spool
        self._fh = open(spool, "wb")  # noqa: SIM115 - closed by finish()
        self.vocab: dict[str, int] = {}
        self._lengths = np.zeros(1024, dtype=np.int64)
        self._heads = np.zeros(1024, dtype=np.int32)
        self._df = np.zeros(1024, dtype=np.int32)
        self.rows = 0
        self.tokens = 0
        #: per source index: its term id -> ours (-1: not seen yet)
        self._maps: dict[int, np.ndarray] = {}

    def add_chunks(self, chunks: Sequence[Chunk]) -> None:
        """Stem ``chunks`` (header and text) and append their rows."""
        self.add_terms(_chunk_terms(chunks))

    def add_terms(self, rows: Sequence[tuple[list[str], list[str]]]) -> None:
        """Append rows of (header terms, text terms)."""
        ids: list[int] = []
        lengths, heads = [], []
        for head, text in rows:
            ids.extend(self.vocab.setdefault(t, len(self.vocab)) for t in head)
            ids.extend(self.vocab.setdefault(t, len(self.vocab)) for t in text)
            lengths.append(len(head) + len(text))
            heads.append(len(head))
        self._append(np.asarray(ids, dtype=np.int32), np.asarray(lengths), np.asarray(heads))

    def add_rows(self, source: LexicalIndex, lo: int, hi: int) -> None:
        """Append rows ``lo:hi`` of ``source`` as they are, in this vocabulary."""
        if hi <= lo:
            return
        mapping = self._maps.get(id(source))
        if mapping is None:
            mapping = self._maps[id(source)] = np.full(len(source.vocab), -1, dtype=np.int32)
        ids = np.asarray(source.token_ids[source.indptr[lo] : source.indptr[hi]])
        unseen = np.unique(ids[mapping[ids] < 0])
        for old in unseen.tolist():
            mapping[old] = self.vocab.setdefault(source.vocab[old], len(self.vocab))
        self._append(
            mapping[ids],
            np.diff(np.asarray(source.indptr[lo : hi + 1])),
            np.asarray(source.head_lengths[lo:hi]),
        )

    def _append(self, ids: np.ndarray, lengths: np.ndarray, heads: np.ndarray) -> None:
        n = len(lengths)
        self._lengths = _grown(self._lengths, self.rows + n)
        self._heads = _grown(self._heads, self.rows + n)
        self._df = _grown(self._df, len(self.vocab))
        self._lengths[self.rows : self.rows + n] = lengths
        self._heads[self.rows : self.rows + n] = heads
        if len(ids):
            # document frequency over texts: each (row, term) of a text counts once
            row = np.repeat(np.arange(n, dtype=np.int64), lengths)
            offset = np.arange(len(ids), dtype=np.int64) - np.repeat(_indptr(lengths)[:-1], lengths)
            text = offset >= np.repeat(heads.astype(np.int64), lengths)
            width = max(1, len(self.vocab))
            pairs = np.unique(row[text] * width + ids[text])
            np.add.at(self._df, pairs % width, 1)
            self._fh.write(np.ascontiguousarray(ids, dtype="<i4").tobytes())
        self.rows += n
        self.tokens += len(ids)

    def finish(self, folder: Path) -> dict[str, Any]:
        """Write ``folder/lexical/`` and return its manifest entry; the spool is removed."""
        self._fh.close()
        out = folder / "lexical"
        out.mkdir()
        vocab = list(self.vocab)
        (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
        npy_from_raw(self.spool, out / "token_ids.npy", np.dtype("<i4"), (self.tokens,))
        self.spool.unlink()
        indptr = _indptr(self._lengths[: self.rows])
        np.save(out / "token_indptr.npy", indptr)
        np.save(out / "head_lengths.npy", self._heads[: self.rows])
        np.save(out / "text_df.npy", self._df[: len(vocab)])
        if self.rows:
            ids_file = out / "token_ids.npy"
            header = npy_header_length(ids_file)

            def read(a: int, b: int) -> np.ndarray:
                return np.fromfile(ids_file, dtype="<i4", count=b - a, offset=header + 4 * a)

            model = _build_bm25(vocab, _Rows(read, indptr))
            model.save(str(out / "bm25"), show_progress=False)
        return {
            "tokenizer": TOKENIZER,
            "bm25": {"k1": BM25_K1, "b": BM25_B},
            "chunks": self.rows,
            "terms": len(vocab),
            "tokens": self.tokens,
        }

    def abandon(self) -> None:
        self._fh.close()
        self.spool.unlink(missing_ok=True)


class _Rows(Sequence[list[int]]):
    """Each chunk's term ids, read in blocks of about :data:`_BLOCK` ids as bm25s
    iterates (it goes over the corpus three times), never all at once; a row
    without terms gets ``empty``, or bm25s would drop it and shift the rows."""

    def __init__(self, read: Callable[[int, int], np.ndarray], indptr: np.ndarray) -> None:
        self.read = read
        self.indptr = np.asarray(indptr)
        self.empty = [-1]

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def __getitem__(self, i: int) -> list[int]:  # type: ignore[override]
        row = self.read(int(self.indptr[i]), int(self.indptr[i + 1])).tolist()
        return row or self.empty

    def __iter__(self) -> Iterator[list[int]]:
        n = len(self)
        first = 0
        while first < n:
            last = int(np.searchsorted(self.indptr, self.indptr[first] + _BLOCK, side="right"))
            last = min(n, max(first + 1, last - 1))
            lo = int(self.indptr[first])
            block = self.read(lo, int(self.indptr[last])).tolist()
            for i in range(first, last):
                row = block[int(self.indptr[i]) - lo : int(self.indptr[i + 1]) - lo]
                yield row or self.empty
            first = last


_BLOCK = 1 << 20


def _build_bm25(vocab_list: Sequence[str], rows: _Rows) -> Any:
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    vocab = {t: i for i, t in enumerate(vocab_list)}
    rows.empty = [vocab.setdefault(EMPTY, len(vocab))]
    model = bm25s.BM25(k1=BM25_K1, b=BM25_B)
    model.index(bm25s.tokenization.Tokenized(ids=rows, vocab=vocab), show_progress=False)
    return model


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


def _text_df(lexical: LexicalIndex) -> np.ndarray:
    """How many chunks' texts hold each term (header terms do not count)."""
    n = len(lexical)
    lengths = np.diff(lexical.indptr)
    if not n or not len(lexical.token_ids):
        return np.zeros(len(lexical.vocab), dtype=np.int32)
    row = np.repeat(np.arange(n, dtype=np.int64), lengths)
    offset = np.arange(len(lexical.token_ids), dtype=np.int64) - np.repeat(
        lexical.indptr[:-1], lengths
    )
    text = offset >= np.repeat(lexical.head_lengths.astype(np.int64), lengths)
    pairs = np.unique(row[text] * len(lexical.vocab) + lexical.token_ids[text])
    df = np.bincount(pairs % len(lexical.vocab), minlength=len(lexical.vocab))
    return df.astype(np.int32)
