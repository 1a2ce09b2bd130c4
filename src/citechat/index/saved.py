"""A saved index read for an update, without loading it as objects.

:meth:`Index.load` builds every chunk, document and sentence key as a Python
object (gigabytes at a million chunks: README, "Streamed, resumable
ingestion").  An update needs much less, and this reads only that from the
current generation: each document's hash and where its line is, each JSONL
row's byte offset and which rows belong to which document, the vectors
memory-mapped, the lexical part and the FAISS store.  Rows of a kept document
are then copied as bytes (build.py).

It runs the check :meth:`Index.load` runs (:class:`~.manifest.GenerationCheck`:
counts against the manifest, shapes, spans inside their documents, the store and
lexical part against the chunks), raising :class:`IndexDamagedError` the same way.
"""

from __future__ import annotations

import json
import mmap
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Settings
from ..embedding import Embedder, text_key
from ..errors import IndexDamagedError
from ..types import Chunk
from .generations import current_generation, read_manifest
from .lexical import LexicalIndex
from .manifest import GenerationCheck, check_compatible, damaged
from .stores import StoreRows, VectorStore, carries_over, load_store, wanted_store

__all__ = ["SavedIndex"]


class SavedIndex:
    """The current generation of an index folder, as an update reads it."""

    def __init__(self, gen: Path, manifest: dict[str, Any], settings: Settings) -> None:
        self.gen = gen
        self.manifest = manifest
        self.settings = settings
        #: doc_id -> content hash
        self.hashes: dict[str, str] = {}
        #: doc_id -> (byte offset, length) of its documents.jsonl line, and its text length
        self._doc_at: dict[str, tuple[int, int, int]] = {}
        self.chunk_rows: dict[str, tuple[int, int]] = {}
        self.sentence_rows: dict[str, tuple[int, int]] = {}
        self._chunk_offsets = array("q")
        self._sentence_offsets = array("q")
        self._files: dict[str, Any] = {}
        self.vectors: np.ndarray = np.zeros((0, 0), dtype=np.float32)
        self.sentence_vectors: np.ndarray = np.zeros((0, 0), dtype=np.float32)
        #: the store's manifest entry; the store itself is read by load_store(), late
        self.store_entry: dict[str, Any] | None = manifest.get("store")
        #: None when the saved terms are of another tokenizer: kept rows are stemmed again
        self.lexical: LexicalIndex | None = None

    @classmethod
    def open(cls, folder: Path, embedder: Embedder, settings: Settings) -> SavedIndex:
        """Raises as :meth:`Index.load` does."""
        gen = current_generation(folder)
        manifest = read_manifest(gen)
        check_compatible(manifest, embedder, settings, folder)
        saved = cls(gen, manifest, settings)
        check = GenerationCheck(folder, manifest)
        try:
            saved._scan(check)
            saved.vectors = np.load(gen / "vectors.npy", mmap_mode="r")
            saved.sentence_vectors = np.load(gen / "sentence_vectors.npy", mmap_mode="r")
            store = saved.load_store()
            saved.lexical = LexicalIndex.load(gen, manifest.get("lexical"))
        except IndexDamagedError:
            raise
        except Exception as exc:  # json, numpy, faiss and pymilvus raise many types
            raise damaged(folder, exc) from exc
        check.parts(
            chunks=saved.n_chunks,
            sentences=saved.n_sentences,
            vectors=saved.vectors,
            sentence_vectors=saved.sentence_vectors,
            store=store,
            lexical=saved.lexical,
        )
        # read again when the update needs it: an HNSW store held from here would sit
        # beside BM25's construction, the peak of a build
        del store
        return saved

    def _scan(self, check: GenerationCheck) -> None:
        for offset, line in _lines(self.gen / "documents.jsonl"):
            row = json.loads(line)
            doc_id = row["doc_id"]
            self.hashes[doc_id] = row["content_hash"]
            self._doc_at[doc_id] = (offset, len(line), len(row["text"]))
            check.document(doc_id, len(row["text"]))
        for offsets, rows, name in (
            (self._chunk_offsets, self.chunk_rows, "chunks.jsonl"),
            (self._sentence_offsets, self.sentence_rows, "sentences.jsonl"),
        ):
            groups = _Groups(rows)
            for offset, line in _lines(self.gen / name):
                row = json.loads(line)
                doc_id, start, end = (
                    (row["doc_id"], row["start"], row["end"]) if isinstance(row, dict) else row
                )
                check.span(doc_id, int(start), int(end))
                groups.add(doc_id)
                offsets.append(offset)
            groups.close()
            offsets.append((self.gen / name).stat().st_size)

    # -- what an update reads -------------------------------------------------------------

    @property
    def n_chunks(self) -> int:
        return max(0, len(self._chunk_offsets) - 1)

    @property
    def n_sentences(self) -> int:
        return max(0, len(self._sentence_offsets) - 1)

    def matches(self, hashes: dict[str, str]) -> bool:
        """True when these are exactly the indexed documents, the store is the one the
        settings ask for (a FAISS index asked to move to Milvus does not match) and
        the terms are of this tokenizer."""
        return (
            hashes == self.hashes
            and carries_over(self.store_entry, wanted_store(self.settings, self.store_entry))
            and self.lexical is not None
        )

    def load_store(self) -> VectorStore:
        """The generation's own store (the manifest's, whatever the settings name), read
        (again) for an update to extend."""
        dim = int(self.manifest.get("dim") or 0)
        rows = StoreRows(self.gen, self.n_chunks, dim)
        return load_store(self.gen, self.store_entry, rows, self.settings.replace(store=""))

    def document_line(self, doc_id: str) -> bytes:
        offset, length, _ = self._doc_at[doc_id]
        return self._read("documents.jsonl", offset, length)

    def chunk_lines(self, lo: int, hi: int) -> bytes:
        """Rows ``lo:hi`` of chunks.jsonl, as bytes."""
        return self._span("chunks.jsonl", self._chunk_offsets, lo, hi)

    def sentence_lines(self, lo: int, hi: int) -> bytes:
        return self._span("sentences.jsonl", self._sentence_offsets, lo, hi)

    def known_vectors(self, doc_ids: set[str], embedder_name: str) -> dict[bytes, np.ndarray]:
        """Old vectors of ``doc_ids``' chunks and sentences, by text hash (as
        :meth:`Index.known_vectors`), parsing only those documents' rows."""
        known: dict[bytes, np.ndarray] = {}
        for doc_id in sorted(doc_ids):
            lo, hi = self.chunk_rows.get(doc_id, (0, 0))
            for i, line in enumerate(_rows(self.chunk_lines(lo, hi)), start=lo):
                row = json.loads(line)
                row["sentences"] = tuple(tuple(s) for s in row["sentences"])
                known[text_key(embedder_name, Chunk(**row).embedding_text())] = self.vectors[i]
            text = json.loads(self.document_line(doc_id))["text"]
            lo, hi = self.sentence_rows.get(doc_id, (0, 0))
            for i, line in enumerate(_rows(self.sentence_lines(lo, hi)), start=lo):
                _, a, b = json.loads(line)
                known[text_key(embedder_name, text[a:b])] = self.sentence_vectors[i]
        return known

    def release(self) -> None:
        """Unmap the pages of the vector and term-id files read so far.  They stay in
        the page cache, but no longer count in this process's RSS, which would
        otherwise grow to the size of every file an update copies.  Without numpy's
        mmap object this does nothing."""
        arrays = [self.vectors, self.sentence_vectors]
        if self.lexical is not None:
            arrays.append(self.lexical.token_ids)
        for mapped in arrays:
            mm = getattr(mapped, "_mmap", None)  # numpy.memmap keeps its mmap object here
            if isinstance(mm, mmap.mmap):
                mm.madvise(mmap.MADV_DONTNEED)

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()

    def _span(self, name: str, offsets: array[int], lo: int, hi: int) -> bytes:
        if hi <= lo:
            return b""
        return self._read(name, offsets[lo], offsets[hi] - offsets[lo])

    def _read(self, name: str, offset: int, length: int) -> bytes:
        fh = self._files.get(name)
        if fh is None:
            fh = self._files[name] = open(self.gen / name, "rb")  # noqa: SIM115 - close()
        fh.seek(offset)
        data: bytes = fh.read(length)
        return data


class _Groups:
    """``doc_id -> (first row, end row)`` of rows that come grouped by document, as
    every generation's rows are; a ValueError (damage) when a document's rows are split."""

    def __init__(self, out: dict[str, tuple[int, int]]) -> None:
        self.out = out
        self.current: str | None = None
        self.start = 0
        self.n = 0

    def add(self, doc_id: str) -> None:
        if doc_id != self.current:
            self.close()
            if doc_id in self.out:
                raise ValueError(f"the rows of {doc_id!r} are not together")
            self.current, self.start = doc_id, self.n
        self.n += 1

    def close(self) -> None:
        if self.current is not None:
            self.out[self.current] = (self.start, self.n)
            self.current = None


def _rows(data: bytes) -> list[bytes]:
    return [line for line in data.split(b"\n") if line.strip()]


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line) of each non-blank line of ``path``."""
    offset = 0
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                yield offset, line
            offset += len(line)
