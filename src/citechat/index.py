"""The index: FAISS vectors + chunk store + sentence vectors + manifest.json.

On disk an index folder holds generations::

    index/CURRENT              -> "gen-20261123T101500-1234"   (one line)
    index/gen-.../manifest.json, chunks.jsonl, documents.jsonl,
                  vectors.npy, sentences.jsonl, sentence_vectors.npy, faiss.index

A save writes a new generation in a temporary folder, renames it into place and
only then replaces CURRENT (``os.replace`` is atomic), so a reader, or a build
killed at any moment, always finds a complete generation.  Old generations are
removed after the switch.  A lock file stops two writers interleaving.

Updates are incremental: only new or changed documents (by content hash) are
chunked and embedded; removed documents are dropped.  Loading an index built
with another embedder or chunking raises :class:`IndexMismatchError`.

It does not rank with BM25 or fuse scores (retrieval.py does).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .chunking import chunk_document
from .config import Settings
from .corpus import content_hash
from .embedding import Embedder
from .errors import IndexError_, IndexLockedError, IndexMismatchError
from .types import Chunk, Document, Section

FORMAT_VERSION = 1
SPLITTER = "blingfire-lines-v1"
_FILES = (
    "manifest.json",
    "chunks.jsonl",
    "documents.jsonl",
    "vectors.npy",
    "sentences.jsonl",
    "sentence_vectors.npy",
    "faiss.index",
)

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

    @property
    def changed(self) -> bool:
        return bool(self.docs_added or self.docs_changed or self.docs_removed)

    def summary(self) -> str:
        return (
            f"documents: {self.docs_added} added, {self.docs_changed} changed, "
            f"{self.docs_removed} removed, {self.docs_kept} kept; chunks: {self.chunks_added} "
            f"added, {self.chunks_removed} removed, {self.chunks_kept} kept"
        )


def _chunking_settings(settings: Settings) -> dict[str, Any]:
    return {
        "max_tokens": settings.chunk_tokens,
        "overlap": settings.chunk_overlap,
        "splitter": SPLITTER,
    }


class Index:
    """Chunks, their vectors and a FAISS index over them, plus sentence vectors."""

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
        faiss_index: Any = None,
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
        # a loaded index brings its FAISS structure; a new one builds it from the vectors
        self.faiss = faiss_index if faiss_index is not None else _make_faiss(vectors, embedder.dim)

    # -- building ---------------------------------------------------------------

    @classmethod
    def build(
        cls,
        docs: Sequence[Document],
        embedder: Embedder,
        settings: Settings,
        *,
        progress: Progress | None = None,
    ) -> Index:
        empty = cls(
            embedder=embedder,
            settings=settings,
            documents={},
            chunks=[],
            vectors=np.zeros((0, embedder.dim), dtype=np.float32),
            sentence_keys=[],
            sentence_vectors=np.zeros((0, embedder.dim), dtype=np.float32),
        )
        return empty.updated(docs, progress=progress)[0]

    def updated(
        self, docs: Sequence[Document], *, progress: Progress | None = None
    ) -> tuple[Index, UpdateReport]:
        """A new Index for ``docs``, re-embedding only new or changed documents."""
        new_docs = {d.doc_id: _with_hash(d) for d in docs}
        old_hash = {d.doc_id: d.content_hash for d in self.documents.values()}
        kept_ids = {i for i, d in new_docs.items() if old_hash.get(i) == d.content_hash}
        fresh = [d for i, d in sorted(new_docs.items()) if i not in kept_ids]
        removed = set(old_hash) - set(new_docs)
        changed = {d.doc_id for d in fresh if d.doc_id in old_hash}

        keep_rows = [i for i, c in enumerate(self.chunks) if c.doc_id in kept_ids]
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
        vecs = _embed_batched(self.embedder, texts, progress)
        chunk_vecs, sent_vecs = vecs[: len(new_chunks)], vecs[len(new_chunks) :]

        chunks = [self.chunks[i] for i in keep_rows] + new_chunks
        vectors = np.concatenate([self.vectors[keep_rows], chunk_vecs]).astype(np.float32)
        sentence_keys = [self.sentence_keys[i] for i in keep_sent] + new_sent_keys
        sentence_vectors = np.concatenate([self.sentence_vectors[keep_sent], sent_vecs])
        # a stable order (by document, then position) makes builds reproducible
        order = sorted(range(len(chunks)), key=lambda i: (chunks[i].doc_id, chunks[i].start))
        sorder = sorted(range(len(sentence_keys)), key=lambda i: sentence_keys[i])
        index = Index(
            embedder=self.embedder,
            settings=self.settings,
            documents=dict(sorted(new_docs.items())),
            chunks=[chunks[i] for i in order],
            vectors=vectors[order] if len(order) else vectors,
            sentence_keys=[sentence_keys[i] for i in sorder],
            sentence_vectors=sentence_vectors[sorder].astype(np.float32)
            if len(sorder)
            else sentence_vectors.astype(np.float32),
        )
        report = UpdateReport(
            docs_added=len(fresh) - len(changed),
            docs_changed=len(changed),
            docs_removed=len(removed),
            docs_kept=len(kept_ids),
            chunks_added=len(new_chunks),
            chunks_removed=len(self.chunks) - len(keep_rows),
            chunks_kept=len(keep_rows),
            texts_embedded=len(texts),
        )
        return index, report

    # -- querying ---------------------------------------------------------------

    def search_dense(self, query_vector: np.ndarray, n: int) -> list[tuple[int, float]]:
        """(chunk row, inner product) for the ``n`` nearest chunks, best first."""
        if not self.chunks or n < 1:
            return []
        q = np.ascontiguousarray(query_vector.reshape(1, -1), dtype=np.float32)
        scores, rows = self.faiss.search(q, min(n, len(self.chunks)))
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]

    def sentence_vector(self, doc_id: str, start: int, end: int) -> np.ndarray | None:
        row = self.sentence_row.get((doc_id, start, end))
        return None if row is None else self.sentence_vectors[row]

    def stats(self) -> dict[str, Any]:
        return {
            "documents": len(self.documents),
            "chunks": len(self.chunks),
            "sentences": len(self.sentence_keys),
            "embedder": self.embedder.name,
            "dim": self.embedder.dim,
            "built_at": self.built_at,
        }

    def is_current(self, docs: Sequence[Document]) -> bool:
        """True when ``docs`` are exactly the indexed documents, unchanged."""
        have = {d.doc_id: d.content_hash for d in self.documents.values()}
        want = {d.doc_id: d.content_hash or content_hash(d.text) for d in docs}
        return have == want

    # -- persistence ------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "citechat_version": __version__,
            "embedder": self.embedder.name,
            "dim": self.embedder.dim,
            "chunking": _chunking_settings(self.settings),
            "faiss": {"type": type(self.faiss).__name__, "metric": "inner_product"},
            "built_at": self.built_at,
            "counts": {
                "documents": len(self.documents),
                "chunks": len(self.chunks),
                "sentences": len(self.sentence_keys),
            },
            "documents": {
                d.doc_id: {"hash": d.content_hash, "title": d.title}
                for d in self.documents.values()
            },
        }

    def save(self, folder: Path) -> Path:
        """Write a new generation atomically; returns its folder."""
        import faiss

        folder.mkdir(parents=True, exist_ok=True)
        name = f"gen-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S%f')}-{os.getpid()}"
        tmp = folder / f".tmp-{name}"
        tmp.mkdir()
        try:
            _write_jsonl(tmp / "chunks.jsonl", (asdict(c) for c in self.chunks))
            _write_jsonl(tmp / "documents.jsonl", (asdict(d) for d in self.documents.values()))
            _write_jsonl(tmp / "sentences.jsonl", (list(k) for k in self.sentence_keys))
            np.save(tmp / "vectors.npy", self.vectors)
            np.save(tmp / "sentence_vectors.npy", self.sentence_vectors)
            faiss.write_index(self.faiss, str(tmp / "faiss.index"))
            # the manifest goes last: its presence marks a complete generation
            (tmp / "manifest.json").write_text(json.dumps(self.manifest(), indent=1))
            _fsync_dir(tmp)
            final = folder / name
            os.replace(tmp, final)
            pointer = folder / ".CURRENT.tmp"
            pointer.write_text(name + "\n")
            with open(pointer, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(pointer, folder / "CURRENT")
            _fsync_dir(folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _remove_old_generations(folder, keep=name)
        return final

    @classmethod
    def load(cls, folder: Path, embedder: Embedder, settings: Settings) -> Index:
        gen = current_generation(folder)
        manifest = read_manifest(gen)
        check_compatible(manifest, embedder, settings, folder)
        try:
            import faiss

            documents = {}
            for row in _read_jsonl(gen / "documents.jsonl"):
                row["sections"] = tuple(Section(**s) for s in row["sections"])
                documents[row["doc_id"]] = Document(**row)
            chunks = []
            for row in _read_jsonl(gen / "chunks.jsonl"):
                row["sentences"] = tuple(tuple(s) for s in row["sentences"])
                chunks.append(Chunk(**row))
            sentence_keys = [
                (d, int(a), int(b)) for d, a, b in _read_jsonl(gen / "sentences.jsonl")
            ]
            vectors = np.load(gen / "vectors.npy")
            sentence_vectors = np.load(gen / "sentence_vectors.npy")
            faiss_index = faiss.read_index(str(gen / "faiss.index"))
        except Exception as exc:
            raise IndexError_(
                f"the index at {folder} is damaged ({exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'}); "
                "run `citechat index --rebuild`"
            ) from exc
        if (
            len(chunks) != len(vectors)
            or faiss_index.ntotal != len(chunks)
            or len(sentence_keys) != len(sentence_vectors)
        ):
            raise IndexError_(
                f"the index at {folder} is damaged (row counts disagree); "
                "run `citechat index --rebuild`"
            )
        return cls(
            embedder=embedder,
            settings=settings,
            documents=documents,
            chunks=chunks,
            vectors=vectors,
            sentence_keys=sentence_keys,
            sentence_vectors=sentence_vectors,
            built_at=manifest.get("built_at", ""),
            faiss_index=faiss_index,
        )


# -- helpers ----------------------------------------------------------------------


def current_generation(folder: Path) -> Path:
    pointer = folder / "CURRENT"
    if not pointer.is_file():
        raise IndexError_(f"no index at {folder}; run `citechat index` to build it")
    name = pointer.read_text().strip()
    gen = folder / name
    if not name or not gen.is_dir():
        raise IndexError_(
            f"the index at {folder} is damaged (CURRENT names {name!r}, which is missing); "
            "run `citechat index --rebuild`"
        )
    return gen


def read_manifest(gen: Path) -> dict[str, Any]:
    try:
        data = json.loads((gen / "manifest.json").read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except (OSError, ValueError) as exc:
        raise IndexError_(
            f"the index manifest in {gen} is unreadable ({exc.__class__.__name__}); "
            "run `citechat index --rebuild`"
        ) from exc


def check_compatible(
    manifest: dict[str, Any], embedder: Embedder, settings: Settings, folder: Path
) -> None:
    if manifest.get("format") != FORMAT_VERSION:
        raise IndexMismatchError(
            f"the index at {folder} has format {manifest.get('format')!r}, this citechat "
            f"reads format {FORMAT_VERSION}; run `citechat index --rebuild`"
        )
    if manifest.get("embedder") != embedder.name:
        raise IndexMismatchError(
            f"the index at {folder} was built with embedder {manifest.get('embedder')!r}, "
            f"not {embedder.name!r}; run `citechat index --rebuild` or use the same embedder"
        )
    if manifest.get("chunking") != _chunking_settings(settings):
        raise IndexMismatchError(
            f"the index at {folder} was built with chunking {manifest.get('chunking')}, "
            f"not {_chunking_settings(settings)}; run `citechat index --rebuild`"
        )


@contextlib.contextmanager
def write_lock(folder: Path, *, wait_s: float = 30.0) -> Iterator[None]:
    """Hold the index's writer lock; wait up to ``wait_s`` then refuse."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as fh:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IndexLockedError(
                        f"another `citechat index` is writing {folder}; wait for it to "
                        "finish and try again"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _make_faiss(vectors: np.ndarray, dim: int) -> Any:
    import faiss

    index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def _embed_batched(
    embedder: Embedder, texts: Sequence[str], progress: Progress | None, batch: int = 256
) -> np.ndarray:
    parts = [np.zeros((0, embedder.dim), dtype=np.float32)]
    for i in range(0, len(texts), batch):
        part = texts[i : i + batch]
        parts.append(embedder.embed(part))
        if progress:
            progress(len(part))
    return np.concatenate(parts).astype(np.float32)


def _with_hash(doc: Document) -> Document:
    if doc.content_hash:
        return doc
    from dataclasses import replace

    return replace(doc, content_hash=content_hash(doc.text))


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _write_jsonl(path: Path, rows: Iterator[Any] | Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _read_jsonl(path: Path) -> Iterator[Any]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_old_generations(folder: Path, keep: str) -> None:
    for child in folder.iterdir():
        if (
            child.name != keep
            and child.is_dir()
            and (child.name.startswith("gen-") or child.name.startswith(".tmp-gen-"))
        ):
            shutil.rmtree(child, ignore_errors=True)
