"""Read-only views of a generation's documents, chunks and sentence keys, read from its
files on demand: what :class:`~.view.Index` serves from instead of Python objects.

``documents`` is a ``Mapping[str, Document]``, ``chunks`` a ``Sequence[Chunk]`` and
``sentence_keys`` a ``Sequence[(doc_id, start, end)]``, each giving the objects a
load used to build, found through the row tables (tables.py) and read with
``os.pread`` (no shared file position, so threads can read at once).  The last few
documents and chunks read are kept (an LRU); iterating reads a file front to back
without keeping anything.  A view holds its files open: a generation replaced
(and removed) under a running server stays readable until the view is dropped.

It does not write (build.py) or check the files (tables.py and manifest.py do).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Generic, TypeVar, overload

from ..types import Chunk, Document
from .rowfiles import open_file
from .tables import RowTables, chunk_from_row, document_from_row

__all__ = ["ChunkView", "DocumentView", "SentenceKeyView"]

SentenceKey = tuple[str, int, int]
#: documents kept once read (a text can be megabytes: a PDF book)
DOCUMENT_CACHE = 128
#: chunks kept once read (a question reads a few dozen)
CHUNK_CACHE = 4096
#: bytes read at a time when a view is iterated
_BLOCK = 1 << 22


class _File:
    """One file of a generation (whole, or its segments: rowfiles.py), opened once,
    read at offsets."""

    def __init__(self, gen: Path, rows: RowTables, name: str) -> None:
        self.file = open_file(gen, rows.files, name)

    def read(self, offset: int, end: int) -> bytes:
        return self.file.read(offset, end)

    def lines(self, offset: int, end: int) -> Iterator[bytes]:
        """The non-blank lines of bytes ``[offset, end)``, read in blocks."""
        rest = b""
        while offset < end:
            block = rest + self.read(offset, min(end, offset + _BLOCK))
            offset = min(end, offset + _BLOCK)
            *whole, rest = block.split(b"\n")
            yield from (line for line in whole if line.strip())
        if rest.strip():
            yield rest


class DocumentView(Mapping[str, Document]):
    """``doc_id -> Document``, each read from documents.jsonl when asked."""

    def __init__(self, gen: Path, rows: RowTables) -> None:
        self.rows = rows
        self.file = _File(gen, rows, "documents.jsonl")
        self._read = functools.lru_cache(maxsize=DOCUMENT_CACHE)(self._row)

    def _row(self, row: int) -> Document:
        line = self.file.read(int(self.rows.doc_offsets[row]), int(self.rows.doc_offsets[row + 1]))
        return document_from_row(json.loads(line))

    def __getitem__(self, doc_id: str) -> Document:
        row = self.rows.doc_row(doc_id) if isinstance(doc_id, str) else None
        if row is None:
            raise KeyError(doc_id)
        return self._read(row)

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self.rows.doc_row(doc_id) is not None

    def __len__(self) -> int:
        return self.rows.n_documents

    def __iter__(self) -> Iterator[str]:
        ids = self.rows.ids
        return (ids[i] for i in range(len(ids)))


T = TypeVar("T")


class _RowView(Sequence[T], Generic[T]):
    """A sequence of rows, each made by ``_item(row)``; equal to any sequence with the
    same items."""

    #: what a row is called in an out-of-range error
    NOUN = "row"

    def _item(self, row: int) -> T:
        raise NotImplementedError

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> list[T]: ...
    def __getitem__(self, i: int | slice) -> T | list[T]:
        n = len(self)
        if isinstance(i, slice):
            return [self._item(j) for j in range(*i.indices(n))]
        j = int(i)
        if not -n <= j < n:
            raise IndexError(f"{self.NOUN} row {i} out of range ({n} {self.NOUN}s)")
        return self._item(j % n)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {len(self)} rows>"


class ChunkView(_RowView[Chunk]):
    """Chunk rows, each read from chunks.jsonl when asked."""

    NOUN = "chunk"

    def __init__(self, gen: Path, rows: RowTables) -> None:
        self.rows = rows
        self.file = _File(gen, rows, "chunks.jsonl")
        self._read = functools.lru_cache(maxsize=CHUNK_CACHE)(self._row)

    def _item(self, row: int) -> Chunk:
        return self._read(row)

    def _row(self, row: int) -> Chunk:
        offsets = self.rows.chunk_offsets
        return chunk_from_row(json.loads(self.file.read(int(offsets[row]), int(offsets[row + 1]))))

    def __len__(self) -> int:
        return self.rows.n_chunks

    def __iter__(self) -> Iterator[Chunk]:
        offsets = self.rows.chunk_offsets
        if not len(self):
            return
        for line in self.file.lines(int(offsets[0]), int(offsets[-1])):
            yield chunk_from_row(json.loads(line))


class SentenceKeyView(_RowView[SentenceKey]):
    """``(doc_id, start, end)`` of each sentence row, from the row tables alone."""

    NOUN = "sentence"

    def __init__(self, rows: RowTables) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return self.rows.n_sentences

    def _item(self, row: int) -> SentenceKey:
        a, b = self.rows.sentence_spans[row]
        return self.rows.ids[int(self.rows.sentence_docs[row])], int(a), int(b)

    def __iter__(self) -> Iterator[SentenceKey]:
        rows, ids = self.rows, self.rows.ids
        last, doc_id = -1, ""
        for lo in range(0, len(self), _ROWS_AT_ONCE):
            spans = rows.sentence_spans[lo : lo + _ROWS_AT_ONCE].tolist()
            docs = rows.sentence_docs[lo : lo + _ROWS_AT_ONCE].tolist()
            for (a, b), doc in zip(spans, docs, strict=True):
                if doc != last:
                    last, doc_id = doc, ids[doc]
                yield doc_id, a, b


_ROWS_AT_ONCE = 65536
