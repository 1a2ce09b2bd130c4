"""The index: chunk store + chunk vectors in a vector store + sentence vectors + manifest.

On disk an index folder holds generations (see generations.py)::

    index/CURRENT              -> "gen-20261123T101500-1234"   (one line)
    index/gen-.../manifest.json, chunks.jsonl, documents.jsonl,
                  vectors.npy, sentences.jsonl, sentence_vectors.npy, faiss.index,
                  lexical/ (stemmed terms, BM25, IDF: lexical.py)

A save writes a new generation in a temporary folder, renames it into place and
only then replaces CURRENT (``os.replace`` is atomic), so a reader, or a build
killed at any moment, always finds a complete generation.  Loading checks the
manifest and that the files agree with it and with each other; a missing or
damaged part raises :class:`IndexDamagedError`, never a raw traceback.  Vectors
are memory-mapped on load, so only the rows a question touches are read.

Updates are incremental: only new or changed documents (by content hash) are
chunked, and only texts whose vectors are not known (by text hash: a changed
document's unchanged sentences keep theirs) are embedded, longest first, in
bounded batches that are checkpointed in ``index/.checkpoint`` while the
writer lock is held, so a killed build resumes where it stopped.

``citechat index`` builds and updates FAISS-backed indexes with build.py,
which streams documents in batches and writes the same files, reading the old
generation with saved.py rather than loading it; :meth:`Index.updated`
(everything in memory) serves Milvus stores and indexes older than the saved
lexical part.

Chunk vectors are searched by a vector store (stores.py): FAISS flat or HNSW
by size, or Milvus.  It does not rank with BM25 or fuse scores (retrieval.py does).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..chunking import chunk_document
from ..config import Settings
from ..corpus import content_hash
from ..embedding import Embedder, embed_texts, text_key
from ..errors import IndexDamagedError, IndexError_, IndexFormatError, IndexMismatchError
from ..types import Chunk, Document, Section
from .generations import (
    CHECKPOINT,
    REBUILD,
    commit_generation,
    current_generation,
    finish_commit,
    holds_lock,
    new_generation_name,
    read_jsonl,
    read_manifest,
    sweep,
    write_lock,
)
from .generations import write_jsonl as _write_jsonl
from .lexical import LexicalIndex
from .stores import (
    LEGACY,
    FaissParams,
    FaissStore,
    MilvusStore,
    NoStore,
    VectorStore,
    chunk_key,
    milvus_spec,
    parse_store,
    store_inconsistency,
)

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

FORMAT_VERSION = 1
SPLITTER = "blingfire-lines-v1"

SentenceKey = tuple[str, int, int]
Progress = Callable[[int], None]


@dataclass(frozen=True)
class UpdateReport:
    docs_added: int = 0
    docs_changed: int = 0
    docs_removed: int = 0
    docs_kept: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_kept: int = 0
    texts_embedded: int = 0
    #: texts whose vectors were reused by text hash (unchanged sentences, a resumed build)
    texts_reused: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.docs_added or self.docs_changed or self.docs_removed)

    def summary(self) -> str:
        return (
            f"documents: {self.docs_added} added, {self.docs_changed} changed, "
            f"{self.docs_removed} removed, {self.docs_kept} kept; chunks: {self.chunks_added} "
            f"added, {self.chunks_removed} removed, {self.chunks_kept} kept"
        )


def chunking_settings(settings: Settings) -> dict[str, Any]:
    return {
        "max_tokens": settings.chunk_tokens,
        "overlap": settings.chunk_overlap,
        "splitter": SPLITTER,
    }


def faiss_params(settings: Settings) -> FaissParams:
    return FaissParams(
        flat_max=settings.flat_max,
        hnsw_m=settings.hnsw_m,
        ef_construction=settings.hnsw_ef_construction,
        ef_search=settings.hnsw_ef_search,
    )


class Index:
    """Chunks, their vectors and a vector store over them, plus sentence vectors."""

    def __init__(
        self,
        *,
        embedder: Embedder,
        settings: Settings,
        documents: dict[str, Document],
        chunks: list[Chunk],
        vectors: np.ndarray,
        sentence_keys: list[SentenceKey],
        sentence_vectors: np.ndarray,
        built_at: str | None = None,
        store: VectorStore | None = None,
        lexical: LexicalIndex | None = None,
    ) -> None:
        self.embedder = embedder
        self.settings = settings
        self.documents = documents
        self.chunks = chunks
        self.vectors = vectors
        self.sentence_keys = sentence_keys
        self.sentence_vectors = sentence_vectors
        self.sentence_row = {key: i for i, key in enumerate(sentence_keys)}
        self.built_at = built_at or _now()
        # a loaded index brings its store; a new one builds it from the vectors
        self.store: VectorStore = store if store is not None else self._new_store()
        self._lexical = lexical

    @property
    def lexical(self) -> LexicalIndex:
        """Stemmed terms, BM25 and IDF of the chunks (lexical.py): loaded with the
        index, carried over by an update, or computed from the chunks when neither."""
        if self._lexical is None:
            self._lexical = LexicalIndex.from_chunks(self.chunks)
        return self._lexical

    def _new_store(self) -> VectorStore:
        spec = parse_store(self.settings.store)
        if spec.kind == "milvus":
            keys = [chunk_key(c.chunk_id) for c in self.chunks]
            store = MilvusStore(spec, self.embedder.dim, keys)
            store.pending = self.vectors
            return store
        return FaissStore.build(self.vectors, self.embedder.dim, faiss_params(self.settings))

    @property
    def faiss(self) -> Any:
        """The FAISS structure (None for a Milvus store)."""
        return getattr(self.store, "faiss", None)

    # -- building ---------------------------------------------------------------

    @classmethod
    def build(
        cls,
        docs: Sequence[Document],
        embedder: Embedder,
        settings: Settings,
        *,
        progress: Progress | None = None,
        checkpoint: Path | None = None,
    ) -> Index:
        empty = cls(
            embedder=embedder,
            settings=settings,
            documents={},
            chunks=[],
            vectors=np.zeros((0, embedder.dim), dtype=np.float32),
            sentence_keys=[],
            sentence_vectors=np.zeros((0, embedder.dim), dtype=np.float32),
            store=NoStore(),
            lexical=LexicalIndex.from_chunks([]),
        )
        return empty.updated(docs, progress=progress, checkpoint=checkpoint)[0]

    def updated(
        self,
        docs: Sequence[Document],
        *,
        progress: Progress | None = None,
        checkpoint: Path | None = None,
    ) -> tuple[Index, UpdateReport]:
        """A new Index for ``docs``, re-embedding only new or changed text.

        Embedded batches are checkpointed in ``.checkpoint/`` inside the folder
        ``checkpoint`` (by default the index folder, when this process holds its
        writer lock) and reused by the next build if this one is killed.
        """
        if checkpoint is None and holds_lock(self.settings.index):
            checkpoint = self.settings.index
        new_docs = {d.doc_id: _with_hash(d) for d in docs}
        old_hash = {d.doc_id: d.content_hash for d in self.documents.values()}
        kept_ids = {i for i, d in new_docs.items() if old_hash.get(i) == d.content_hash}
        fresh = [d for i, d in sorted(new_docs.items()) if i not in kept_ids]
        removed = set(old_hash) - set(new_docs)
        changed = {d.doc_id for d in fresh if d.doc_id in old_hash}

        keep_rows = np.array(
            [i for i, c in enumerate(self.chunks) if c.doc_id in kept_ids], dtype=np.int64
        )
        new_chunks: list[Chunk] = []
        for doc in fresh:
            new_chunks.extend(
                chunk_document(
                    doc,
                    max_tokens=self.settings.chunk_tokens,
                    overlap=self.settings.chunk_overlap,
                )
            )
        keep_sent = [i for i, k in enumerate(self.sentence_keys) if k[0] in kept_ids]
        new_sent_keys = sorted({(c.doc_id, a, b) for c in new_chunks for a, b in c.sentences})
        texts = [c.embedding_text() for c in new_chunks]
        texts += [new_docs[d].text[a:b] for d, a, b in new_sent_keys]
        vecs, embedded = embed_texts(
            self.embedder,
            texts,
            progress=progress,
            reuse=self.known_vectors(changed),
            checkpoint=checkpoint / CHECKPOINT if checkpoint else None,
        )
        chunk_vecs, sent_vecs = vecs[: len(new_chunks)], vecs[len(new_chunks) :]

        chunks = [self.chunks[i] for i in keep_rows] + new_chunks
        vectors = np.concatenate([self.vectors[keep_rows], chunk_vecs]).astype(np.float32)
        sentence_keys = [self.sentence_keys[i] for i in keep_sent] + new_sent_keys
        sentence_vectors = np.concatenate([self.sentence_vectors[keep_sent], sent_vecs])
        # a stable order (by document, then position) makes builds reproducible
        order = np.array(
            sorted(range(len(chunks)), key=lambda i: (chunks[i].doc_id, chunks[i].start)),
            dtype=np.int64,
        )
        sorder = sorted(range(len(sentence_keys)), key=lambda i: sentence_keys[i])
        chunks = [chunks[i] for i in order]
        vectors = vectors[order] if len(order) else vectors
        index = Index(
            embedder=self.embedder,
            settings=self.settings,
            documents=dict(sorted(new_docs.items())),
            chunks=chunks,
            vectors=vectors,
            sentence_keys=[sentence_keys[i] for i in sorder],
            sentence_vectors=sentence_vectors[sorder].astype(np.float32)
            if len(sorder)
            else sentence_vectors.astype(np.float32),
            store=self._updated_store(keep_rows, order, chunks, vectors),
            lexical=self.lexical.updated(keep_rows, new_chunks, order),
        )
        report = UpdateReport(
            docs_added=len(fresh) - len(changed),
            docs_changed=len(changed),
            docs_removed=len(removed),
            docs_kept=len(kept_ids),
            chunks_added=len(new_chunks),
            chunks_removed=len(self.chunks) - len(keep_rows),
            chunks_kept=len(keep_rows),
            texts_embedded=embedded,
            texts_reused=len(texts) - embedded,
        )
        return index, report

    def known_vectors(self, doc_ids: set[str]) -> dict[bytes, np.ndarray]:
        """Old vectors of ``doc_ids``' chunks and sentences, by text hash."""
        if not doc_ids:
            return {}
        name = self.embedder.name
        known = {
            text_key(name, c.embedding_text()): self.vectors[i]
            for i, c in enumerate(self.chunks)
            if c.doc_id in doc_ids
        }
        for i, (d, a, b) in enumerate(self.sentence_keys):
            if d in doc_ids:
                known[text_key(name, self.documents[d].text[a:b])] = self.sentence_vectors[i]
        return known

    def _updated_store(
        self, keep_rows: np.ndarray, order: np.ndarray, chunks: list[Chunk], vectors: np.ndarray
    ) -> VectorStore | None:
        """This store carried over to the new rows, or None to build a new one.

        ``order[j]`` is the pre-sort position of new row ``j``; pre-sort
        positions below ``len(keep_rows)`` are kept old rows, in old-row order.
        """
        spec = parse_store(self.settings.store)
        same_kind = not self.settings.store or spec.kind == self.store.kind
        if isinstance(self.store, FaissStore) and same_kind and spec.kind == "faiss":
            new_pos = np.empty(len(order), dtype=np.int64)
            new_pos[order] = np.arange(len(order))
            old_to_new = np.full(len(self.chunks), -1, dtype=np.int64)
            old_to_new[keep_rows] = new_pos[: len(keep_rows)]
            return self.store.updated(
                old_to_new, vectors, np.sort(new_pos[len(keep_rows) :]), faiss_params(self.settings)
            )
        keep_milvus = not self.settings.store or (
            isinstance(self.store, MilvusStore) and self.store.spec == spec
        )
        if isinstance(self.store, MilvusStore) and keep_milvus:
            store = MilvusStore(
                self.store.spec, self.embedder.dim, [chunk_key(c.chunk_id) for c in chunks]
            )
            store.pending = vectors
            store.known = None if self.store.pending is not None else set(self.store.row_of)
            return store
        return None

    # -- querying ---------------------------------------------------------------

    def search_dense(self, query_vector: np.ndarray, n: int) -> list[tuple[int, float]]:
        """(chunk row, inner product) for the ``n`` nearest chunks, best first."""
        if not self.chunks or n < 1:
            return []
        scores, rows = self.store.search(query_vector.reshape(1, -1), min(n, len(self.chunks)))
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]

    def sentence_vector(self, doc_id: str, start: int, end: int) -> np.ndarray | None:
        row = self.sentence_row.get((doc_id, start, end))
        return None if row is None else self.sentence_vectors[row]

    def stats(self) -> dict[str, Any]:
        """Counts, embedder and store (:func:`index_stats` reads the same from a manifest)."""
        return {
            "documents": len(self.documents),
            "chunks": len(self.chunks),
            "sentences": len(self.sentence_keys),
            "embedder": self.embedder.name,
            "dim": self.embedder.dim,
            "store": self.store.describe()["type"],
            "built_at": self.built_at,
        }

    def is_current(self, docs: Sequence[Document]) -> bool:
        """True when ``docs`` are exactly the indexed documents, unchanged, and the
        store is the one the settings ask for (an explicit ``store`` that differs
        makes the next sync move the vectors, without re-embedding)."""
        have = {d.doc_id: d.content_hash for d in self.documents.values()}
        want = {d.doc_id: d.content_hash or content_hash(d.text) for d in docs}
        return have == want and self._store_matches()

    def _store_matches(self) -> bool:
        if not self.settings.store:
            return True
        spec = parse_store(self.settings.store)
        if isinstance(self.store, MilvusStore):
            return self.store.spec == spec
        return spec.kind == self.store.kind

    # -- persistence ------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        return manifest_of(
            self.embedder,
            self.settings,
            store=self.store.describe(),
            lexical=self.lexical.describe(),
            built_at=self.built_at,
            counts=(len(self.documents), len(self.chunks), len(self.sentence_keys)),
            documents={
                d.doc_id: {"hash": d.content_hash, "title": d.title}
                for d in self.documents.values()
            },
        )

    def save(self, folder: Path) -> Path:
        """Write a new generation atomically; returns its folder.

        A Milvus store is synced first (new chunks inserted, removed ones
        deleted); readers of the old generation skip chunks they do not know.
        """
        name = new_generation_name()
        tmp = folder / f".tmp-{name}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
            _write_jsonl(tmp / "chunks.jsonl", (asdict(c) for c in self.chunks))
            _write_jsonl(tmp / "documents.jsonl", (asdict(d) for d in self.documents.values()))
            _write_jsonl(tmp / "sentences.jsonl", (list(k) for k in self.sentence_keys))
            np.save(tmp / "vectors.npy", self.vectors)
            np.save(tmp / "sentence_vectors.npy", self.sentence_vectors)
            self.lexical.save(tmp)
            if isinstance(self.store, FaissStore):
                self.store.save(tmp)
            elif isinstance(self.store, MilvusStore):
                self.store.flush()
            # the manifest goes last: its presence marks a complete generation
            (tmp / "manifest.json").write_text(json_dumps(self.manifest()))
            final = commit_generation(folder, tmp, name)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            failure = write_failure(exc, folder)
            if failure is exc:
                raise
            raise failure from exc
        finish_commit(folder, name)
        return final

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
        entry = manifest.get("store") or LEGACY  # indexes before stores had types: flat
        try:
            documents = {}
            for row in read_jsonl(gen / "documents.jsonl"):
                row["sections"] = tuple(Section(**s) for s in row["sections"])
                documents[row["doc_id"]] = Document(**row)
            chunks = []
            for row in read_jsonl(gen / "chunks.jsonl"):
                row["sentences"] = tuple(tuple(s) for s in row["sentences"])
                chunks.append(Chunk(**row))
            sentence_keys = [(d, int(a), int(b)) for d, a, b in read_jsonl(gen / "sentences.jsonl")]
            # memory-mapped: a question reads only the rows it touches
            vectors = np.load(gen / "vectors.npy", mmap_mode="r")
            sentence_vectors = np.load(gen / "sentence_vectors.npy", mmap_mode="r")
            store: VectorStore
            if entry.get("kind") == "milvus":
                # the manifest's collection, unless the settings name another Milvus one
                asked = parse_store(settings.store)
                spec = asked if asked.kind == "milvus" else milvus_spec(entry)
                keys = [chunk_key(c.chunk_id) for c in chunks]
                store = MilvusStore(spec, int(manifest.get("dim") or embedder.dim), keys)
            else:
                store = FaissStore.load(gen, entry, ef_search=settings.hnsw_ef_search)
            lexical = LexicalIndex.load(gen, manifest.get("lexical"))
        except Exception as exc:  # json, numpy, faiss, pymilvus and dataclasses raise many types
            raise damaged(folder, exc) from exc
        why = _inconsistency(manifest, documents, chunks, vectors, sentence_keys, sentence_vectors)
        why = why or store_inconsistency(store, len(chunks), int(manifest.get("dim") or 0))
        if not why and lexical is not None and len(lexical) != len(chunks):
            why = f"lexical index has {len(lexical)} chunks, the index {len(chunks)}"
        if why:
            raise IndexDamagedError(f"the index at {folder} is damaged ({why})", REBUILD)
        return cls(
            embedder=embedder,
            settings=settings,
            documents=documents,
            chunks=chunks,
            vectors=vectors,
            sentence_keys=sentence_keys,
            sentence_vectors=sentence_vectors,
            built_at=manifest.get("built_at", ""),
            store=store,
            lexical=lexical,
        )


# -- checks and helpers ----------------------------------------------------------------


def check_compatible(
    manifest: dict[str, Any], embedder: Embedder, settings: Settings, folder: Path
) -> None:
    """Raise :class:`IndexMismatchError` unless ``manifest`` fits this embedder and chunking.

    Another format (an index from another citechat version) raises the
    subclass :class:`IndexFormatError`, which ``sync_index`` fixes by rebuilding.
    """
    if manifest.get("format") != FORMAT_VERSION:
        raise IndexFormatError(
            f"the index at {folder} has format {str(manifest.get('format'))[:40]!r} "
            f"(citechat {str(manifest.get('citechat_version'))[:40]}), this citechat "
            f"reads format {FORMAT_VERSION}",
            REBUILD,
        )
    # by name only: embedder.dim would load the model just to compare
    if manifest.get("embedder") != embedder.name:
        raise IndexMismatchError(
            f"the index at {folder} was built with embedder "
            f"{str(manifest.get('embedder'))[:200]!r}, not {embedder.name!r}",
            "run `citechat index --rebuild` or use the same embedder (--embedder)",
        )
    if manifest.get("chunking") != chunking_settings(settings):
        raise IndexMismatchError(
            f"the index at {folder} was built with chunking {str(manifest.get('chunking'))[:200]}, "
            f"not {chunking_settings(settings)}",
            REBUILD,
        )


def _inconsistency(
    manifest: dict[str, Any],
    documents: dict[str, Document],
    chunks: list[Chunk],
    vectors: np.ndarray,
    sentence_keys: list[SentenceKey],
    sentence_vectors: np.ndarray,
) -> str | None:
    """Why the loaded parts disagree, or None.

    A file cut at a line boundary still parses, so counts are checked against
    the manifest (written last) and against each other.
    """
    counts = (len(documents), len(chunks), len(sentence_keys))
    why = count_inconsistency(manifest, counts, vectors, sentence_vectors)
    if why:
        return why
    for doc_id, start, end in [(c.doc_id, c.start, c.end) for c in chunks] + sentence_keys:
        doc = documents.get(doc_id)
        if doc is None or not 0 <= start <= end <= len(doc.text):
            return f"a chunk or sentence of {doc_id!r} points outside its document"
    return None


def damaged(folder: Path, exc: Exception) -> IndexDamagedError:
    """The one-line error for a part of the index at ``folder`` that failed to read."""
    lines = str(exc).strip().splitlines()
    return IndexDamagedError(
        f"the index at {folder} is damaged ({exc.__class__.__name__}: "
        f"{lines[0][:200] if lines else 'unreadable'})",
        REBUILD,
    )


def count_inconsistency(
    manifest: dict[str, Any],
    counts: tuple[int, int, int],
    vectors: np.ndarray,
    sentence_vectors: np.ndarray,
) -> str | None:
    """Why (documents, chunks, sentences) counts and the vector arrays disagree with
    the manifest and each other, or None."""
    said = manifest.get("counts")
    if not isinstance(said, dict):
        return "manifest has no counts"
    for what, n in zip(("documents", "chunks", "sentences"), counts, strict=True):
        if said.get(what) != n:
            return f"{n} {what}, the manifest says {said.get(what)}"
    dim = manifest.get("dim")
    for what, array, rows in (
        ("chunk", vectors, counts[1]),
        ("sentence", sentence_vectors, counts[2]),
    ):
        if array.ndim != 2 or array.shape != (rows, dim):
            return f"{what} vectors have shape {array.shape}, expected ({rows}, {dim})"
    return None


def manifest_of(
    embedder: Embedder,
    settings: Settings,
    *,
    store: dict[str, Any],
    lexical: dict[str, Any],
    built_at: str,
    counts: tuple[int, int, int],
    documents: dict[str, dict[str, str]],
) -> dict[str, Any]:
    """A generation's manifest.json (written last: its presence marks it complete)."""
    return {
        "format": FORMAT_VERSION,
        "citechat_version": __version__,
        "embedder": embedder.name,
        "dim": embedder.dim,
        "chunking": chunking_settings(settings),
        "store": store,
        "lexical": lexical,
        "built_at": built_at,
        "counts": dict(zip(("documents", "chunks", "sentences"), counts, strict=True)),
        "documents": documents,
    }


def index_stats(manifest: dict[str, Any]) -> dict[str, Any]:
    """:meth:`Index.stats` of a saved index, from its manifest (nothing else is read)."""
    counts = manifest.get("counts") or {}
    return {
        "documents": counts.get("documents"),
        "chunks": counts.get("chunks"),
        "sentences": counts.get("sentences"),
        "embedder": manifest.get("embedder"),
        "dim": manifest.get("dim"),
        "store": (manifest.get("store") or {}).get("type"),
        "built_at": manifest.get("built_at"),
    }


def write_failure(exc: BaseException, folder: Path) -> BaseException:
    """What a failed generation write raises: an OSError (disk full, read-only,
    permissions) as a one-line :class:`IndexError_`, anything else as it is."""
    if isinstance(exc, OSError):
        return IndexError_(
            f"cannot write the index at {folder} ({exc.strerror or exc}); the last "
            "complete index is kept",
            "free disk space or fix the folder's permissions, or pass --index FOLDER",
        )
    return exc


def _with_hash(doc: Document) -> Document:
    return doc if doc.content_hash else replace(doc, content_hash=content_hash(doc.text))


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def json_dumps(data: Any) -> str:
    import json

    return json.dumps(data, indent=1)
