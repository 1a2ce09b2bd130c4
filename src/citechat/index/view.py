"""The index, loaded: chunk store + chunk vectors in a vector store + sentence vectors.

On disk an index folder holds generations (see generations.py)::

    index/CURRENT              -> "gen-20261123T101500-1234"   (one line)
    index/gen-.../manifest.json, chunks.jsonl, documents.jsonl,
                  vectors.npy, sentences.jsonl, sentence_vectors.npy, faiss.index,
                  lexical/ (stemmed terms, BM25, IDF: lexical.py),
                  rows/ (where each row is in the files: tables.py)

Generations are written by one writer, build.py (through
generations.new_generation: a temporary folder renamed into place, then CURRENT
replaced atomically), so a reader, or a build killed at any moment, always finds
a complete generation.  :meth:`Index.build` goes through it too, for documents
held in memory.  Loading checks the manifest and that the files agree with it
and with each other (manifest.GenerationCheck, which saved.py runs as well); a
missing or damaged part raises :class:`IndexDamagedError`, never a raw
traceback.  Nothing is read whole: vectors and row tables are memory-mapped,
documents and chunks read from their files when a question asks for them
(lazy.py), so a loaded index holds the vector store plus a few megabytes.

Chunk vectors are searched by a vector store (stores/): FAISS flat or HNSW by
size, or Milvus.  It does not rank with BM25 or fuse scores (retrieval.py does).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Settings
from ..embedding import Embedder
from ..errors import IndexDamagedError
from ..types import Chunk, Document
from .build import UpdateReport, write_streamed
from .generations import (
    current_generation,
    holds_lock,
    read_manifest,
    sweep,
    write_lock,
)
from .lazy import ChunkView, DocumentView, SentenceKeyView
from .lexical import LexicalIndex
from .manifest import (
    FORMAT_VERSION,
    GenerationCheck,
    check_compatible,
    damaged,
    index_stats,
)
from .saved import SavedIndex
from .segments import VectorArray, open_vectors
from .stores import StoreRows, VectorStore, load_store
from .tables import RowTables, open_rows

__all__ = [
    "FORMAT_VERSION",
    "Index",
    "UpdateReport",
    "check_compatible",
    "current_generation",
    "index_stats",
    "read_manifest",
    "sweep",
    "write_lock",
]

SentenceKey = tuple[str, int, int]
Progress = Callable[[int], None]


class Index:
    """Chunks, their vectors and a vector store over them, plus sentence vectors."""

    def __init__(
        self,
        *,
        embedder: Embedder,
        settings: Settings,
        documents: Mapping[str, Document],
        chunks: Sequence[Chunk],
        vectors: VectorArray,
        sentence_keys: Sequence[SentenceKey],
        sentence_vectors: VectorArray,
        built_at: str,
        store: VectorStore,
        lexical: LexicalIndex | None = None,
        generation: str = "",
        rows: RowTables | None = None,
        manifest: dict[str, Any] | None = None,
        path: Path | None = None,
    ) -> None:
        self.embedder = embedder
        self.settings = settings
        #: read from the generation's files when loaded (lazy.py), or as given
        self.documents = documents
        self.chunks = chunks
        self.vectors = vectors
        self.sentence_keys = sentence_keys
        self.sentence_vectors = sentence_vectors
        #: where each document's chunks and sentences are (tables.py)
        self.rows = rows or RowTables.of(documents, chunks, sentence_keys)
        self.built_at = built_at
        self.store = store
        self._lexical = lexical
        #: the lexical part as the generation holds it (None: of another tokenizer)
        self.loaded_lexical = lexical
        #: the generation folder's name ("gen-20261203T071500123456-42"): which build this is
        self.generation = generation
        #: the generation's manifest and folder, when it was read from one
        self.manifest = manifest or {}
        self.path = path

    @property
    def lexical(self) -> LexicalIndex:
        """Stemmed terms, BM25 and IDF of the chunks (lexical.py): loaded with the
        index, or computed from the chunks when its terms are of another tokenizer."""
        if self._lexical is None:
            self._lexical = LexicalIndex.from_chunks(self.chunks)
        return self._lexical

    # -- building ---------------------------------------------------------------

    @classmethod
    def build(
        cls,
        docs: Sequence[Document],
        embedder: Embedder,
        settings: Settings,
        *,
        folder: Path | None = None,
        progress: Progress | None = None,
    ) -> Index:
        """The index of ``docs``, written by the one writer (build.py) and loaded.

        Into a new generation of ``folder`` (under its writer lock), or, without one,
        into a temporary folder removed once the index is loaded (its memory-mapped
        files stay readable until the index is dropped).  The settings' store is
        used: a Milvus collection is filled either way.
        """
        if folder is None:
            with tempfile.TemporaryDirectory(prefix="citechat-index-") as tmp:
                return cls._build_into(Path(tmp), docs, embedder, settings, progress)
        if holds_lock(folder):
            return cls._build_into(folder, docs, embedder, settings, progress)
        with write_lock(folder):
            return cls._build_into(folder, docs, embedder, settings, progress)

    @classmethod
    def _build_into(
        cls,
        folder: Path,
        docs: Sequence[Document],
        embedder: Embedder,
        settings: Settings,
        progress: Progress | None,
    ) -> Index:
        here = settings.replace(index=folder)
        write_streamed(
            here,
            embedder,
            None,
            docs=docs,
            progress=(lambda texts, n: progress) if progress else None,
        )
        return cls.load(folder, embedder, settings)

    # -- querying ---------------------------------------------------------------

    def search_dense(self, query_vector: np.ndarray, n: int) -> list[tuple[int, float]]:
        """(chunk row, inner product) for the ``n`` nearest chunks, best first."""
        if not self.chunks or n < 1:
            return []
        scores, rows = self.store.search(query_vector.reshape(1, -1), min(n, len(self.chunks)))
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]

    def sentence_vector(self, doc_id: str, start: int, end: int) -> np.ndarray | None:
        row = self.rows.sentence_row(doc_id, start, end)
        return None if row is None else self.sentence_vectors[row]

    def chunk_rows(self, doc_id: str) -> range:
        """The rows of ``doc_id``'s chunks (empty for an unknown document).

        >>> index.chunk_rows("balls.txt")  # doctest: +SKIP
        range(0, 3)
        """
        return range(*self.rows.chunk_range(doc_id))

    def chunk_row(self, chunk: Chunk) -> int | None:
        """The row of ``chunk`` (by its id, among its document's rows), or None."""
        for row in self.chunk_rows(chunk.doc_id):
            if self.chunks[row].chunk_id == chunk.chunk_id:
                return row
        return None

    def stats(self) -> dict[str, Any]:
        """Counts, embedder and store (:func:`index_stats` reads the same from a manifest)."""
        return {
            "documents": len(self.documents),
            "chunks": len(self.chunks),
            "sentences": len(self.sentence_keys),
            "embedder": self.embedder.name,
            # the saved vectors' width: embedder.dim would load the model (seconds) just
            # to show the index status, before anyone has asked a question
            "dim": int(self.vectors.shape[1]),
            "store": self.store.describe()["type"],
            "built_at": self.built_at,
        }

    @classmethod
    def from_saved(cls, saved: SavedIndex, embedder: Embedder) -> Index:
        """The generation ``saved`` read and checked (:meth:`SavedIndex.open`), served
        as it is: its row tables, mapped vectors, lexical part and the store it kept
        (read again only if it kept none).  What :meth:`load` gives, without a second
        read (``sync_index`` finds an index current this way)."""
        gen, rows = saved.gen, saved.rows
        return cls(
            embedder=embedder,
            settings=saved.settings,
            documents=DocumentView(gen, rows),
            chunks=ChunkView(gen, rows),
            vectors=saved.vectors,
            sentence_keys=SentenceKeyView(rows),
            sentence_vectors=saved.sentence_vectors,
            built_at=saved.manifest.get("built_at", ""),
            store=saved.load_store(),
            lexical=saved.lexical,
            generation=gen.name,
            rows=rows,
            manifest=saved.manifest,
            path=gen,
        )

    @classmethod
    def load(cls, folder: Path, embedder: Embedder, settings: Settings) -> Index:
        """The index saved in ``folder``.

        Raises :class:`IndexError_` when there is none, :class:`IndexMismatchError`
        when it was built with another embedder, chunking or format, and
        :class:`IndexDamagedError` when a file is missing, truncated or
        disagrees with the others.
        """
        gen = current_generation(folder)
        manifest = read_manifest(gen)
        check_compatible(manifest, embedder, settings, folder)
        check = GenerationCheck(folder, manifest)
        try:
            rows = open_rows(gen, manifest, check)
            # memory-mapped: a question reads only the rows it touches
            vectors = open_vectors(gen, manifest, "vectors")
            sentence_vectors = open_vectors(gen, manifest, "sentence_vectors")
            chunks = ChunkView(gen, rows)
            ids = lambda: (c.chunk_id for c in chunks)  # noqa: E731 - read by Milvus only
            dim = int(manifest.get("dim") or 0)
            store_rows = StoreRows(gen, rows.n_chunks, dim, ids, segments=manifest.get("vectors"))
            store = load_store(gen, manifest.get("store"), store_rows, settings)
            lexical = LexicalIndex.load(gen, manifest.get("lexical"))
        except IndexDamagedError:
            raise
        except Exception as exc:  # json, numpy, faiss, pymilvus and dataclasses raise many types
            raise damaged(folder, exc) from exc
        check.parts(
            documents=rows.n_documents,
            chunks=rows.n_chunks,
            sentences=rows.n_sentences,
            vectors=vectors,
            sentence_vectors=sentence_vectors,
            store=store,
            lexical=lexical,
        )
        return cls(
            embedder=embedder,
            settings=settings,
            documents=DocumentView(gen, rows),
            chunks=chunks,
            vectors=vectors,
            sentence_keys=SentenceKeyView(rows),
            sentence_vectors=sentence_vectors,
            built_at=manifest.get("built_at", ""),
            store=store,
            lexical=lexical,
            generation=gen.name,
            rows=rows,
            manifest=manifest,
            path=gen,
        )
