"""Where each document, chunk and sentence of a generation is: row tables as arrays.

A loaded index does not hold its chunks, documents or sentence keys as Python
objects (it did until issue 17: about 5 KB a chunk, 7 GB at a million).  The generation's writer
(:class:`RowWriter`, used by build.py) writes its three JSONL files and, beside
them, these tables; readers map them and read one row from the files when asked::

    gen-.../rows/doc_ids.bin, doc_id_ends.npy      document ids (UTF-8), sorted, concatenated;
                                                   id i is bytes [ends[i-1], ends[i])
    gen-.../rows/doc_hashes.bin, doc_hash_ends.npy each document's content hash, the same way
    gen-.../rows/doc_offsets.npy       int64 (documents + 1): byte offset of each line of
                                       documents.jsonl, then the file's size
    gen-.../rows/chunk_offsets.npy     int64 (chunks + 1): the same for chunks.jsonl
    gen-.../rows/sentence_offsets.npy  int64 (sentences + 1): the same for sentences.jsonl
    gen-.../rows/doc_chunks.npy        int64 (documents, 2): each document's chunk rows [lo, hi)
    gen-.../rows/doc_sentences.npy     int64 (documents, 2): its sentence rows [lo, hi)
    gen-.../rows/sentence_spans.npy    int64 (sentences, 2): each sentence's (start, end)
    gen-.../rows/sentence_docs.npy     int32 (sentences): each sentence's document row

An update's JSONL files may be byte segments (rowfiles.py): the offsets are then into
the logical file, their runs' concatenation.

A generation written before these tables (no ``rows`` entry in its manifest) has them
computed from its files at load (:func:`scan_rows`, in memory: arrays, not objects).

It does not check spans against their documents' texts for a generation with
tables (the writer wrote both; :func:`scan_rows` checks each one, as before), and it
does not build chunks (build.py) or search (view.py, retrieval.py).
"""

from __future__ import annotations

import functools
import json
import mmap
import os
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..types import Chunk, Document, Section
from .generations import npy_from_raw
from .manifest import GenerationCheck
from .rowfiles import FileWriter, open_file

__all__ = ["RowTables", "RowWriter", "Strings", "open_rows", "scan_rows"]

ROWS = "rows"
#: the manifest's ``rows`` entry: which tables a generation holds
ROWS_VERSION = 1
_ARRAYS = (
    "doc_id_ends",
    "doc_hash_ends",
    "doc_offsets",
    "chunk_offsets",
    "sentence_offsets",
    "doc_chunks",
    "doc_sentences",
    "sentence_spans",
    "sentence_docs",
)


def _encode(s: str) -> bytes:
    # surrogatepass: a lone surrogate (from a JSON corpus) is kept; UTF-8 keeps code
    # point order, so the bytes sort as the ids do
    return s.encode("utf-8", "surrogatepass")


class Strings:
    """Strings stored end to end: ``blob`` (bytes, or a mapped file) and each one's end
    offset.

    >>> s = Strings.of(["a.txt", "b.txt"])
    >>> s[1], s.find("a.txt"), s.find("c.txt")
    ('b.txt', 0, None)
    """

    def __init__(self, blob: bytes | mmap.mmap, ends: np.ndarray) -> None:
        self.blob = blob
        self.ends = ends
        #: the last position found: an update looks ids up in sorted order, so the next
        #: one is tried before a binary search (a wrong guess costs one comparison; a
        #: race between threads only makes a guess wrong)
        self._hint = -1
        # a question looks up the same few documents many times
        self.find = functools.lru_cache(maxsize=4096)(self._find)  # type: ignore[method-assign]

    @classmethod
    def of(cls, items: Sequence[str]) -> Strings:
        data = [_encode(s) for s in items]
        ends = np.cumsum([len(d) for d in data], dtype=np.int64)
        return cls(b"".join(data), ends)

    def __len__(self) -> int:
        return len(self.ends)

    def raw(self, i: int) -> bytes:
        ends = self.ends
        return self.blob[int(ends[i - 1]) if i > 0 else 0 : int(ends[i])]

    def __getitem__(self, i: int) -> str:
        return self.raw(i).decode("utf-8", "surrogatepass")

    def find(self, s: str) -> int | None:
        """The position of ``s`` in these sorted strings (binary search), or None."""
        return self._find(s)

    def _find(self, s: str) -> int | None:
        key = _encode(s)
        guess = self._hint + 1
        if 0 <= guess < len(self.ends) and self.raw(guess) == key:
            self._hint = guess
            return guess
        lo, hi = 0, len(self.ends)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.raw(mid) < key:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(self.ends) and self.raw(lo) == key:
            self._hint = lo
            return lo
        return None


@dataclass(frozen=True)
class RowTables:
    """The tables of one generation (memory-mapped, or computed in memory)."""

    ids: Strings
    hashes: Strings
    doc_offsets: np.ndarray
    chunk_offsets: np.ndarray
    sentence_offsets: np.ndarray
    doc_chunks: np.ndarray
    doc_sentences: np.ndarray
    sentence_spans: np.ndarray
    sentence_docs: np.ndarray
    #: the manifest's ``files`` entry: which JSONL files are segments (rowfiles.py)
    files: dict[str, Any] | None = None

    @classmethod
    def of(
        cls,
        documents: Mapping[str, Document],
        chunks: Sequence[Chunk],
        sentence_keys: Sequence[tuple[str, int, int]],
    ) -> RowTables:
        """The tables of an index held in memory (no files: offsets are all 0)."""
        ids = sorted(documents)
        row_of = {doc_id: i for i, doc_id in enumerate(ids)}
        chunk_docs = np.asarray([row_of[c.doc_id] for c in chunks], dtype=np.int64)
        sentence_docs = np.asarray([row_of[d] for d, _, _ in sentence_keys], dtype=np.int32)
        spans = np.asarray([(a, b) for _, a, b in sentence_keys], dtype=np.int64).reshape(-1, 2)
        return cls(
            ids=Strings.of(ids),
            hashes=Strings.of([documents[i].content_hash for i in ids]),
            doc_offsets=np.zeros(len(ids) + 1, dtype=np.int64),
            chunk_offsets=np.zeros(len(chunks) + 1, dtype=np.int64),
            sentence_offsets=np.zeros(len(sentence_keys) + 1, dtype=np.int64),
            doc_chunks=doc_ranges(chunk_docs, len(ids)),
            doc_sentences=doc_ranges(sentence_docs, len(ids)),
            sentence_spans=spans,
            sentence_docs=sentence_docs,
        )

    @property
    def n_documents(self) -> int:
        return len(self.ids)

    @property
    def n_chunks(self) -> int:
        return max(0, len(self.chunk_offsets) - 1)

    @property
    def n_sentences(self) -> int:
        return len(self.sentence_spans)

    def doc_row(self, doc_id: str) -> int | None:
        return self.ids.find(doc_id)

    def chunk_range(self, doc_id: str) -> tuple[int, int]:
        """The document's chunk rows ``[lo, hi)``; (0, 0) for an unknown one."""
        row = self.doc_row(doc_id)
        if row is None:
            return (0, 0)
        return int(self.doc_chunks[row, 0]), int(self.doc_chunks[row, 1])

    def sentence_range(self, doc_id: str) -> tuple[int, int]:
        row = self.doc_row(doc_id)
        if row is None:
            return (0, 0)
        return int(self.doc_sentences[row, 0]), int(self.doc_sentences[row, 1])

    def sentence_row(self, doc_id: str, start: int, end: int) -> int | None:
        """The row of sentence ``(doc_id, start, end)``, or None."""
        lo, hi = self.sentence_range(doc_id)
        spans = self.sentence_spans[lo:hi]
        at = np.flatnonzero((spans[:, 0] == start) & (spans[:, 1] == end))
        return int(lo + at[0]) if len(at) else None

    def inconsistency(self, sizes: dict[str, int], counts: tuple[int, int, int]) -> str | None:
        """Why these tables do not fit files of ``sizes`` (by name) and ``counts``
        (documents, chunks, sentences), or None; reads a few values, not the arrays."""
        docs, chunks, sentences = counts
        shapes = {
            "doc ids": (len(self.ids), docs),
            "doc hashes": (len(self.hashes), docs),
            "document offsets": (len(self.doc_offsets), docs + 1),
            "chunk offsets": (len(self.chunk_offsets), chunks + 1),
            "sentence offsets": (len(self.sentence_offsets), sentences + 1),
            "document chunk rows": (len(self.doc_chunks), docs),
            "document sentence rows": (len(self.doc_sentences), docs),
            "sentence spans": (len(self.sentence_spans), sentences),
            "sentence documents": (len(self.sentence_docs), sentences),
        }
        for what, (n, want) in shapes.items():
            if n != want:
                return f"the row tables hold {n} {what}, expected {want}"
        for what, strings in (("ids", self.ids), ("hashes", self.hashes)):
            if len(strings) and int(strings.ends[-1]) != len(strings.blob):
                return f"the row tables' document {what} are cut short"
        for name, offsets in (
            ("documents.jsonl", self.doc_offsets),
            ("chunks.jsonl", self.chunk_offsets),
            ("sentences.jsonl", self.sentence_offsets),
        ):
            if int(offsets[-1]) != sizes[name] or int(offsets[0]) > sizes[name]:
                return f"the row tables do not match {name} ({sizes[name]} bytes)"
        return None


def open_rows(gen: Path, manifest: dict[str, Any], check: GenerationCheck) -> RowTables:
    """The generation's tables: mapped from ``rows/`` when its manifest records them
    (a missing or cut file raises, which the caller reports as damage), else computed
    from its files by :func:`scan_rows` (a generation written before them)."""
    entry = manifest.get("rows")
    if entry is None:
        return scan_rows(gen, check)
    if not isinstance(entry, dict) or entry.get("version") != ROWS_VERSION:
        raise check.damage(f"the manifest's rows entry is {str(entry)[:80]!r}")
    folder = gen / ROWS

    def load(name: str) -> np.ndarray:
        # a plain ndarray over the mapped file: numpy.memmap's indexing costs microseconds
        return np.load(folder / f"{name}.npy", mmap_mode="r").view(np.ndarray)

    def blob(name: str) -> bytes | mmap.mmap:
        with open(folder / name, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:  # an empty file cannot be mapped
                return b""
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)

    tables = RowTables(
        ids=Strings(blob("doc_ids.bin"), load("doc_id_ends")),
        hashes=Strings(blob("doc_hashes.bin"), load("doc_hash_ends")),
        **{name: load(name) for name in _ARRAYS if not name.endswith("_ends")},
        files=manifest.get("files"),
    )
    counts = manifest.get("counts") or {}
    sizes = {n: open_file(gen, tables.files, n).size for n in _FILES}
    n = [int(counts.get(k) or 0) for k in ("documents", "chunks", "sentences")]
    why = tables.inconsistency(sizes, (n[0], n[1], n[2]))
    if why:
        raise check.damage(why)
    return tables


_FILES = ("documents.jsonl", "chunks.jsonl", "sentences.jsonl")


class RowWriter:
    """Writes a generation's documents.jsonl, chunks.jsonl and sentences.jsonl, one
    document at a time, and the row tables of what it wrote (:meth:`finish`); runs of
    kept documents of ``old`` (the old generation's tables, in ``old_gen``) are linked
    (:meth:`keep_docs`, rowfiles.py), not copied."""

    def __init__(
        self,
        tmp: Path,
        old: RowTables | None = None,
        old_gen: Path | None = None,
        *,
        merge: bool = False,
    ) -> None:
        self.tmp = tmp
        self.old = old
        self.files = {
            name: FileWriter(
                tmp,
                name,
                open_file(old_gen, old.files, name) if old and old_gen else None,
                old_gen,
                merge=merge,
            )
            for name in _FILES
        }
        #: the manifest's ``files`` entry, once finished
        self.file_entries: dict[str, Any] = {}
        self.pos = dict.fromkeys(_FILES, 0)
        self.raw: dict[str, IO[bytes]] = {
            name: open(tmp / f".{name}.raw", "wb")  # noqa: SIM115 - closed by finish()
            for name in (*_ARRAYS, "doc_ids", "doc_hashes")
        }
        self.n = {"documents": 0, "chunks": 0, "sentences": 0}
        self.ends = {"doc_ids": 0, "doc_hashes": 0}
        self.last_id: bytes | None = None

    def add(
        self,
        doc_id: str,
        content_hash: str,
        doc_line: bytes,
        chunk_lines: bytes,
        sentence_lines: bytes,
        spans: np.ndarray,
    ) -> None:
        """One document: its line, its chunks' lines, its sentences' lines and their
        (start, end) spans, one per sentence line; documents come in id order."""
        key = _encode(doc_id)
        if self.last_id is not None and key <= self.last_id:
            raise ValueError(f"documents out of order: {doc_id!r}")
        self.last_id = key
        doc = self.n["documents"]
        for name, ends, value in (
            ("doc_ids", "doc_id_ends", key),
            ("doc_hashes", "doc_hash_ends", _encode(content_hash)),
        ):
            self.raw[name].write(value)
            self.ends[name] += len(value)
            self.raw[ends].write(_q(self.ends[name]))
        self._lines("documents.jsonl", "doc_offsets", doc_line)
        c_lo = self.n["chunks"]
        self.n["chunks"] += self._lines("chunks.jsonl", "chunk_offsets", chunk_lines)
        s_lo = self.n["sentences"]
        n_sentences = self._lines("sentences.jsonl", "sentence_offsets", sentence_lines)
        spans = np.asarray(spans, dtype="<i8").reshape(-1, 2)
        if len(spans) != n_sentences:
            raise ValueError(f"{doc_id!r}: {n_sentences} sentence lines, {len(spans)} spans")
        self.n["sentences"] += n_sentences
        self.raw["doc_chunks"].write(_q(c_lo, self.n["chunks"]))
        self.raw["doc_sentences"].write(_q(s_lo, self.n["sentences"]))
        self.raw["sentence_spans"].write(spans.tobytes())
        self.raw["sentence_docs"].write(np.full(n_sentences, doc, dtype="<i4").tobytes())
        self.n["documents"] += 1

    def _lines(self, name: str, table: str, data: bytes) -> int:
        """Append ``data`` (whole lines) to ``name`` and each non-blank line's offset to
        ``table``; the number of lines."""
        if data and not data.endswith(b"\n"):
            data += b"\n"
        starts = [self.pos[name] + at for at in line_starts(data)]
        self.files[name].add(data)
        self.pos[name] += len(data)
        self.raw[table].write(np.asarray(starts, dtype="<i8").tobytes())
        return len(starts)

    def keep_docs(
        self, lo: int, hi: int, doc_line: bytes | None = None
    ) -> tuple[tuple[int, int], tuple[int, int]]:
        """Old documents ``[lo, hi)``, kept as they are, lines and all: their bytes are
        runs of the old files and their table rows the old ones, shifted (no line is
        read); their old (chunk rows, sentence rows).  ``doc_line``: the one document's
        new line (its text unchanged, so its chunks and sentences are kept)."""
        old = self.old
        assert old is not None and hi > lo and (doc_line is None or hi == lo + 1)
        first = old.ids.raw(lo)
        if self.last_id is not None and first <= self.last_id:
            raise ValueError(f"documents out of order: {first!r}")
        self.last_id = old.ids.raw(hi - 1)
        for name, ends_name, strings in (
            ("doc_ids", "doc_id_ends", old.ids),
            ("doc_hashes", "doc_hash_ends", old.hashes),
        ):
            a = int(strings.ends[lo - 1]) if lo > 0 else 0
            b = int(strings.ends[hi - 1])
            self.raw[name].write(strings.blob[a:b])
            ends = np.asarray(strings.ends[lo:hi], dtype="<i8") - a + self.ends[name]
            self.raw[ends_name].write(ends.tobytes())
            self.ends[name] += b - a
        c_lo, c_hi = int(old.doc_chunks[lo, 0]), int(old.doc_chunks[hi - 1, 1])
        s_lo, s_hi = int(old.doc_sentences[lo, 0]), int(old.doc_sentences[hi - 1, 1])
        if doc_line is None:
            self._keep_lines("documents.jsonl", "doc_offsets", old.doc_offsets, lo, hi)
        else:
            self._lines("documents.jsonl", "doc_offsets", doc_line)
        self._keep_lines("chunks.jsonl", "chunk_offsets", old.chunk_offsets, c_lo, c_hi)
        self._keep_lines("sentences.jsonl", "sentence_offsets", old.sentence_offsets, s_lo, s_hi)
        shift = self.n["chunks"] - c_lo
        self.raw["doc_chunks"].write((old.doc_chunks[lo:hi] + shift).astype("<i8").tobytes())
        shift = self.n["sentences"] - s_lo
        self.raw["doc_sentences"].write((old.doc_sentences[lo:hi] + shift).astype("<i8").tobytes())
        self.raw["sentence_spans"].write(old.sentence_spans[s_lo:s_hi].astype("<i8").tobytes())
        docs = old.sentence_docs[s_lo:s_hi].astype(np.int64) - lo + self.n["documents"]
        self.raw["sentence_docs"].write(docs.astype("<i4").tobytes())
        self.n["documents"] += hi - lo
        self.n["chunks"] += c_hi - c_lo
        self.n["sentences"] += s_hi - s_lo
        return (c_lo, c_hi), (s_lo, s_hi)

    def _keep_lines(self, name: str, table: str, offsets: np.ndarray, lo: int, hi: int) -> None:
        """Old rows ``[lo, hi)`` of ``name`` (``offsets``: the old table), linked."""
        if hi <= lo:
            return
        a, b = int(offsets[lo]), int(offsets[hi])
        self.raw[table].write((offsets[lo:hi] - a + self.pos[name]).astype("<i8").tobytes())
        writer = self.files[name]
        writer.keep(a, b)
        self.pos[name] += b - a
        assert writer.old is not None
        if b == writer.old.size and writer.old.read(b - 1, b) != b"\n":
            writer.add(b"\n")  # a last line without its newline: the next row follows
            self.pos[name] += 1

    def counts(self) -> tuple[int, int, int]:
        return self.n["documents"], self.n["chunks"], self.n["sentences"]

    def close_files(self) -> None:
        """Flush and fsync the three JSONL files' new bytes (before the vectors)."""
        for writer in self.files.values():
            writer.close()

    def finish(self) -> dict[str, Any]:
        """Write the tables into ``rows/`` and the files (linked segments or whole);
        the manifest's ``rows`` entry (:attr:`file_entries`: its ``files`` entry)."""
        self.close_files()
        gen_name = self.tmp.name.removeprefix(".tmp-")
        for name, writer in self.files.items():
            entry = writer.finish(gen_name)
            if entry is not None:
                self.file_entries[name] = entry
        for name in ("doc_offsets", "chunk_offsets", "sentence_offsets"):
            self.raw[name].write(_q(self.pos[_FILE_OF[name]]))
        for fh in self.raw.values():
            fh.close()
        out = self.tmp / ROWS
        out.mkdir()
        docs, chunks, sentences = self.counts()
        shapes = {
            "doc_id_ends": (docs,),
            "doc_hash_ends": (docs,),
            "doc_offsets": (docs + 1,),
            "chunk_offsets": (chunks + 1,),
            "sentence_offsets": (sentences + 1,),
            "doc_chunks": (docs, 2),
            "doc_sentences": (docs, 2),
            "sentence_spans": (sentences, 2),
            "sentence_docs": (sentences,),
        }
        for name, shape in shapes.items():
            dtype = "<i4" if name == "sentence_docs" else "<i8"
            npy_from_raw(self.tmp / f".{name}.raw", out / f"{name}.npy", dtype, shape)
            (self.tmp / f".{name}.raw").unlink()
        for name in ("doc_ids", "doc_hashes"):
            os.replace(self.tmp / f".{name}.raw", out / f"{name}.bin")
        return {"version": ROWS_VERSION}


_FILE_OF = {
    "doc_offsets": "documents.jsonl",
    "chunk_offsets": "chunks.jsonl",
    "sentence_offsets": "sentences.jsonl",
}


def _q(*values: int) -> bytes:
    return np.asarray(values, dtype="<i8").tobytes()


def line_starts(data: bytes) -> list[int]:
    """Where each non-blank line of ``data`` starts.

    >>> line_starts(b'{"a": 1}\\n\\n[2]\\n')
    [0, 10]
    """
    starts = []
    at = 0
    for line in data.split(b"\n"):
        if line.strip():
            starts.append(at)
        at += len(line) + 1
    return starts


# -- a generation written before the tables: computed from its files ----------------------


def scan_rows(gen: Path, check: GenerationCheck) -> RowTables:
    """The tables of a generation without ``rows/``, read from its three files (each
    row parsed once; every span checked against its document's length)."""
    ids: list[str] = []
    hashes: list[str] = []
    doc_offsets = array("q")
    for offset, line in iter_lines(gen / "documents.jsonl"):
        row = json.loads(line)
        ids.append(row["doc_id"])
        hashes.append(row.get("content_hash") or "")
        doc_offsets.append(offset)
        check.document(row["doc_id"], len(row["text"]))
    doc_offsets.append((gen / "documents.jsonl").stat().st_size)
    order = sorted(range(len(ids)), key=ids.__getitem__)
    if order != list(range(len(ids))):
        raise ValueError("documents.jsonl is not in document order")
    row_of = {doc_id: i for i, doc_id in enumerate(ids)}
    chunk_offsets, _, chunk_docs = _scan_rows(gen / "chunks.jsonl", check, row_of)
    sentence_offsets, spans, docs = _scan_rows(gen / "sentences.jsonl", check, row_of)
    doc_chunks = doc_ranges(chunk_docs, len(ids))
    doc_sentences = doc_ranges(docs, len(ids))
    return RowTables(
        ids=Strings.of(ids),
        hashes=Strings.of(hashes),
        doc_offsets=np.frombuffer(doc_offsets, dtype=np.int64),
        chunk_offsets=chunk_offsets,
        sentence_offsets=sentence_offsets,
        doc_chunks=doc_chunks,
        doc_sentences=doc_sentences,
        sentence_spans=spans,
        sentence_docs=docs,
    )


def _scan_rows(
    path: Path, check: GenerationCheck, row_of: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offsets, spans and document rows of the rows of a chunk or sentence file."""
    offsets, spans, docs = array("q"), array("q"), array("i")
    for offset, line in iter_lines(path):
        row = json.loads(line)
        doc_id, start, end = (
            (row["doc_id"], row["start"], row["end"]) if isinstance(row, dict) else row
        )
        check.span(doc_id, int(start), int(end))
        offsets.append(offset)
        spans.extend((int(start), int(end)))
        docs.append(row_of[doc_id])
    offsets.append(path.stat().st_size)
    return (
        np.frombuffer(offsets, dtype=np.int64),
        np.frombuffer(spans, dtype=np.int64).reshape(-1, 2),
        np.frombuffer(docs, dtype=np.int32),
    )


def doc_ranges(docs: np.ndarray, n_docs: int) -> np.ndarray:
    """Each document's rows ``[lo, hi)`` from each row's document; a ValueError when
    a document's rows are not together.

    >>> doc_ranges(np.array([1, 1, 0]), 3).tolist()
    [[2, 3], [0, 2], [0, 0]]
    """
    ranges = np.zeros((n_docs, 2), dtype=np.int64)
    if not len(docs):
        return ranges
    docs = np.asarray(docs, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
    ends = np.r_[starts[1:], len(docs)]
    run_docs = docs[starts]
    if len(np.unique(run_docs)) != len(run_docs):
        raise ValueError("the rows of a document are not together")
    ranges[run_docs, 0] = starts
    ranges[run_docs, 1] = ends
    return ranges


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line) of each non-blank line of ``path``."""
    offset = 0
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                yield offset, line
            offset += len(line)


# -- rows as objects -------------------------------------------------------------------


def document_from_row(row: dict[str, Any]) -> Document:
    row["sections"] = tuple(Section(**s) for s in row["sections"])
    row["blocks"] = tuple(tuple(b) for b in row.get("blocks", ()))
    return Document(**row)


def chunk_from_row(row: dict[str, Any]) -> Chunk:
    row["sentences"] = tuple(tuple(s) for s in row["sentences"])
    return Chunk(**row)
