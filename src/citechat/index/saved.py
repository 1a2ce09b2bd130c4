"""A saved index read for an update (or by a server before it loads it).

An update reads only this from the current generation: its row tables
(tables.py: each document's hash and where its line is, each JSONL row's byte
offset and which rows belong to which document, mapped from the generation's
``rows/``), the vectors memory-mapped, the lexical part and the FAISS store.
Runs of kept documents are then linked (their lines: rowfiles.py, their vectors:
segments.py), not read (build.py).

It runs the check :meth:`Index.load` runs (:class:`~.manifest.GenerationCheck`:
counts against the manifest, shapes, spans inside their documents, the store and
lexical part against the chunks), raising :class:`IndexDamagedError` the same way.
"""

from __future__ import annotations

import json
import mmap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Settings
from ..embedding import Embedder, text_key
from ..errors import IndexDamagedError
from .generations import current_generation, read_manifest
from .lexical import LexicalIndex
from .manifest import GenerationCheck, check_compatible, damaged
from .rowfiles import open_file
from .segments import PREFIX, SegmentedVectors, VectorArray, open_vectors
from .stores import (
    StoreCheck,
    StoreRows,
    VectorStore,
    carries_over,
    load_store,
    peek_store,
    wanted_store,
)
from .tables import RowTables, chunk_from_row, open_rows

__all__ = ["SavedIndex"]


class HashView(Mapping[str, str]):
    """``doc_id -> content hash`` of a generation's documents, from its row tables."""

    def __init__(self, rows: RowTables) -> None:
        self.rows = rows

    def __getitem__(self, doc_id: str) -> str:
        row = self.rows.doc_row(doc_id)
        if row is None:
            raise KeyError(doc_id)
        return self.rows.hashes[row]

    def __len__(self) -> int:
        return self.rows.n_documents

    def __iter__(self) -> Iterator[str]:
        ids = self.rows.ids
        return (ids[i] for i in range(len(ids)))


class SavedIndex:
    """The current generation of an index folder, as an update reads it."""

    def __init__(self, gen: Path, manifest: dict[str, Any], settings: Settings) -> None:
        self.gen = gen
        self.manifest = manifest
        self.settings = settings
        #: where each document's rows are (tables.py); read by :meth:`open`
        self.rows = RowTables.of({}, [], [])
        self._files: dict[str, Any] = {}
        self.vectors: VectorArray = np.zeros((0, 0), dtype=np.float32)
        self.sentence_vectors: VectorArray = np.zeros((0, 0), dtype=np.float32)
        #: the store's manifest entry; the store itself is read by load_store(), late
        self.store_entry: dict[str, Any] | None = manifest.get("store")
        #: None when the saved terms are of another tokenizer: kept rows are stemmed again
        self.lexical: LexicalIndex | None = None
        #: the store as open() read it, until load_store() hands it out (see there)
        self._store: VectorStore | None = None

    @classmethod
    def open(
        cls, folder: Path, embedder: Embedder, settings: Settings, *, keep_store: bool = False
    ) -> SavedIndex:
        """Raises as :meth:`Index.load` does.  ``keep_store``: hold the store read for
        the check, for the first :meth:`load_store` (a server that loads this
        generation reads it once); else only what the check needs of it is read (an
        update reads the store late, if at all)."""
        gen = current_generation(folder)
        manifest = read_manifest(gen)
        check_compatible(manifest, embedder, settings, folder)
        saved = cls(gen, manifest, settings)
        check = GenerationCheck(folder, manifest)
        try:
            saved.rows = open_rows(gen, manifest, check)
            saved.vectors = open_vectors(gen, manifest, "vectors")
            saved.sentence_vectors = open_vectors(gen, manifest, "sentence_vectors")
            # an update reads the store late, if at all: the check reads only what it
            # needs (a FAISS file's header, not its 657 MB graph at a million chunks)
            kept = saved.load_store() if keep_store else None
            store: StoreCheck = kept if kept is not None else saved.peek_store()
            saved.lexical = LexicalIndex.load(gen, manifest.get("lexical"))
        except IndexDamagedError:
            raise
        except Exception as exc:  # json, numpy, faiss and pymilvus raise many types
            raise damaged(folder, exc) from exc
        check.parts(
            documents=saved.rows.n_documents,
            chunks=saved.n_chunks,
            sentences=saved.n_sentences,
            vectors=saved.vectors,
            sentence_vectors=saved.sentence_vectors,
            store=store,
            lexical=saved.lexical,
        )
        # else read again when the update needs it: an HNSW store held from here would
        # sit beside BM25's construction, the peak of a build
        saved._store = kept
        del store, kept
        return saved

    @classmethod
    def of_loaded(
        cls,
        gen: Path,
        manifest: dict[str, Any],
        settings: Settings,
        parts: tuple[RowTables, VectorArray, VectorArray, LexicalIndex | None, VectorStore],
    ) -> SavedIndex:
        """A generation a loaded index holds (its row tables, vectors, lexical part and
        store: checked when it was loaded), read by nothing again."""
        saved = cls(gen, manifest, settings)
        saved.rows, saved.vectors, saved.sentence_vectors, saved.lexical, saved._store = parts
        return saved

    @property
    def hashes(self) -> Mapping[str, str]:
        """doc_id -> content hash of each document."""
        return HashView(self.rows)

    def chunk_range(self, doc_id: str) -> tuple[int, int]:
        return self.rows.chunk_range(doc_id)

    def sentence_range(self, doc_id: str) -> tuple[int, int]:
        return self.rows.sentence_range(doc_id)

    # -- what an update reads -------------------------------------------------------------

    @property
    def n_chunks(self) -> int:
        return self.rows.n_chunks

    @property
    def n_sentences(self) -> int:
        return self.rows.n_sentences

    def matches(self, n_documents: int, all_known: bool) -> bool:
        """True when a corpus of ``n_documents`` documents, each one's line the line
        this index holds (``all_known``, as the spool found them: so they are exactly
        the indexed documents), needs no update: the store is the one the settings ask
        for (a FAISS index asked to move to Milvus does not match) and the terms are of
        this tokenizer, and the generation has its row tables (one written before them
        is written again, its rows copied, so that the next start maps them)."""
        return (
            all_known
            and n_documents == self.rows.n_documents
            and self.manifest.get("rows") is not None
            and carries_over(self.store_entry, wanted_store(self.settings, self.store_entry))
            and self.lexical is not None
        )

    @property
    def segmented(self) -> bool:
        """True when its vectors are segments (segments.py), which a merge would join."""
        return any(kind in self.manifest for kind in PREFIX)

    def drop_store(self) -> None:
        """Let go of the store :meth:`open` kept (an update reads it again, late)."""
        self._store = None

    def _store_rows(self) -> StoreRows:
        return StoreRows(
            self.gen,
            self.n_chunks,
            int(self.manifest.get("dim") or 0),
            segments=self.manifest.get("vectors"),
            files=self.manifest.get("files"),
        )

    def peek_store(self) -> StoreCheck:
        """What the load-time check needs of the store (:func:`~.stores.peek_store`)."""
        return peek_store(
            self.gen, self.store_entry, self._store_rows(), self.settings.replace(store="")
        )

    def load_store(self) -> VectorStore:
        """The generation's own store (the manifest's, whatever the settings name), read
        (again) for an update to extend; the one :meth:`open` kept, the first time."""
        if self._store is not None:
            store, self._store = self._store, None
            return store
        rows = self._store_rows()
        return load_store(self.gen, self.store_entry, rows, self.settings.replace(store=""))

    def document_line(self, doc_id: str) -> bytes:
        row = self.rows.doc_row(doc_id)
        if row is None:
            raise KeyError(doc_id)
        return self.row_line(row)

    def row_index(self) -> dict[str, int]:
        """``doc_id -> row`` of every document, as one dict: for a caller that looks up
        every id in an order not the tables' (the spool reads the corpus in file
        order, where each look-up in the tables is a binary search of ~20 string
        reads).  About 130 bytes a document; the caller drops it when done."""
        ids = self.rows.ids
        blob = bytes(ids.blob)
        ends = ids.ends.tolist()
        starts = [0, *ends][:-1]
        return {
            blob[a:b].decode("utf-8", "surrogatepass"): i
            for i, (a, b) in enumerate(zip(starts, ends, strict=True))
        }

    def row_line(self, row: int) -> bytes:
        """The line of document row ``row`` of documents.jsonl."""
        return self._span("documents.jsonl", self.rows.doc_offsets, row, row + 1)

    def chunk_lines(self, lo: int, hi: int) -> bytes:
        """Rows ``lo:hi`` of chunks.jsonl, as bytes."""
        return self._span("chunks.jsonl", self.rows.chunk_offsets, lo, hi)

    def sentence_lines(self, lo: int, hi: int) -> bytes:
        return self._span("sentences.jsonl", self.rows.sentence_offsets, lo, hi)

    def known_vectors(self, doc_ids: set[str], embedder_name: str) -> dict[bytes, np.ndarray]:
        """Old vectors of ``doc_ids``' chunks and sentences, by text hash (as
        :meth:`Index.known_vectors`), parsing only those documents' rows."""
        known: dict[bytes, np.ndarray] = {}
        for doc_id in sorted(doc_ids):
            lo, hi = self.chunk_range(doc_id)
            for i, line in enumerate(_rows(self.chunk_lines(lo, hi)), start=lo):
                chunk = chunk_from_row(json.loads(line))
                known[text_key(embedder_name, chunk.embedding_text())] = self.vectors[i]
            text = json.loads(self.document_line(doc_id))["text"]
            lo, hi = self.sentence_range(doc_id)
            for i, (a, b) in enumerate(self.rows.sentence_spans[lo:hi].tolist(), start=lo):
                known[text_key(embedder_name, text[a:b])] = self.sentence_vectors[i]
        return known

    def release(self) -> None:
        """Unmap the pages of the vector and term-id files read so far.  They stay in
        the page cache, but no longer count in this process's RSS, which would
        otherwise grow to the size of every file an update copies.  Without numpy's
        mmap object this does nothing."""
        arrays = []
        for vectors in (self.vectors, self.sentence_vectors):
            if isinstance(vectors, SegmentedVectors):
                vectors.release()
            else:
                arrays.append(vectors)
        if self.lexical is not None:
            self.lexical.release()
        for mapped in arrays:
            mm = getattr(mapped, "_mmap", None)  # numpy.memmap keeps its mmap object here
            if isinstance(mm, mmap.mmap):
                mm.madvise(mmap.MADV_DONTNEED)

    def close(self) -> None:
        self._files.clear()  # the files close when dropped

    def _span(self, name: str, offsets: np.ndarray, lo: int, hi: int) -> bytes:
        if hi <= lo:
            return b""
        return self._read(name, int(offsets[lo]), int(offsets[hi] - offsets[lo]))

    def _read(self, name: str, offset: int, length: int) -> bytes:
        file = self._files.get(name)
        if file is None:
            file = self._files[name] = open_file(self.gen, self.rows.files, name)
        data: bytes = file.read(offset, offset + length)
        return data


def _rows(data: bytes) -> list[bytes]:
    return [line for line in data.split(b"\n") if line.strip()]
