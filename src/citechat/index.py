"""The index: FAISS vectors + chunk store + sentence vectors + manifest.json.

On disk an index folder holds generations::

    index/CURRENT              -> "gen-20261123T101500-1234"   (one line)
    index/gen-.../manifest.json, chunks.jsonl, documents.jsonl,
                  vectors.npy, sentences.jsonl, sentence_vectors.npy, faiss.index

A save writes a new generation in a temporary folder, renames it into place and
only then replaces CURRENT (``os.replace`` is atomic), so a reader, or a build
killed at any moment, always finds a complete generation.  Old generations are
removed after the switch, and whatever a killed writer left behind (``.tmp-gen-*``
folders, generations CURRENT does not name) is swept by the next writer.  A lock
file stops two writers interleaving: the second waits, then refuses.

Loading checks the manifest and that the files agree with it and with each
other; a missing or damaged part raises :class:`IndexDamagedError` (a rebuild
from the corpus fixes it), never a raw traceback.

Updates are incremental: only new or changed documents (by content hash) are
chunked and embedded; removed documents are dropped.  Loading an index built
with another embedder or chunking raises :class:`IndexMismatchError`.

It does not rank with BM25 or fuse scores (retrieval.py does).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
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
from .errors import (
    IndexDamagedError,
    IndexError_,
    IndexFormatError,
    IndexLockedError,
    IndexMismatchError,
)
from .types import Chunk, Document, Section

FORMAT_VERSION = 1
SPLITTER = "blingfire-lines-v1"

REBUILD = "run `citechat index --rebuild`"
#: generation folder names as save() writes them; CURRENT must name one
_GEN_NAME = re.compile(r"gen-[0-9T]+-[0-9]+")
log = logging.getLogger("citechat")

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

        name = f"gen-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S%f')}-{os.getpid()}"
        tmp = folder / f".tmp-{name}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
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
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, OSError):  # disk full, read-only, permissions
                raise IndexError_(
                    f"cannot write the index at {folder} ({exc.strerror or exc}); the last "
                    "complete index is kept",
                    "free disk space or fix the folder's permissions, or pass --index FOLDER",
                ) from exc
            raise
        _remove_old_generations(folder, keep=name)
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
        except Exception as exc:  # json, numpy, faiss and dataclasses raise many types
            lines = str(exc).strip().splitlines()
            raise IndexDamagedError(
                f"the index at {folder} is damaged ({exc.__class__.__name__}: "
                f"{lines[0][:200] if lines else 'unreadable'})",
                REBUILD,
            ) from exc
        why = _inconsistency(
            manifest, documents, chunks, vectors, sentence_keys, sentence_vectors, faiss_index
        )
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
            faiss_index=faiss_index,
        )


# -- helpers ----------------------------------------------------------------------


def current_generation(folder: Path) -> Path:
    """The generation folder that ``folder/CURRENT`` names.

    Raises :class:`IndexError_` when there is no index, and
    :class:`IndexDamagedError` when CURRENT is unreadable or names no generation.
    """
    pointer = folder / "CURRENT"
    if not pointer.is_file():
        raise IndexError_(f"no index at {folder}", "run `citechat index` to build it")
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, ValueError) as exc:
        raise IndexDamagedError(
            f"the index at {folder} is damaged (CURRENT is unreadable: {exc.__class__.__name__})",
            REBUILD,
        ) from exc
    # only a name save() writes: a damaged CURRENT must not point outside the folder
    if not _GEN_NAME.fullmatch(name) or not (folder / name).is_dir():
        raise IndexDamagedError(
            f"the index at {folder} is damaged (CURRENT names {name[:80]!r}, which is missing)",
            REBUILD,
        )
    return folder / name


def read_manifest(gen: Path) -> dict[str, Any]:
    try:
        data = json.loads((gen / "manifest.json").read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except (OSError, ValueError) as exc:
        raise IndexDamagedError(
            f"the index manifest in {gen} is unreadable ({exc.__class__.__name__})", REBUILD
        ) from exc


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
    if manifest.get("chunking") != _chunking_settings(settings):
        raise IndexMismatchError(
            f"the index at {folder} was built with chunking {str(manifest.get('chunking'))[:200]}, "
            f"not {_chunking_settings(settings)}",
            REBUILD,
        )


def _inconsistency(
    manifest: dict[str, Any],
    documents: dict[str, Document],
    chunks: list[Chunk],
    vectors: np.ndarray,
    sentence_keys: list[SentenceKey],
    sentence_vectors: np.ndarray,
    faiss_index: Any,
) -> str | None:
    """Why the loaded parts disagree, or None.

    A file cut at a line boundary still parses, so counts are checked against
    the manifest (written last) and against each other.
    """
    counts = manifest.get("counts")
    if not isinstance(counts, dict):
        return "manifest has no counts"
    if counts.get("documents") != len(documents):
        return f"{len(documents)} documents, the manifest says {counts.get('documents')}"
    if counts.get("chunks") != len(chunks):
        return f"{len(chunks)} chunks, the manifest says {counts.get('chunks')}"
    if counts.get("sentences") != len(sentence_keys):
        return f"{len(sentence_keys)} sentences, the manifest says {counts.get('sentences')}"
    dim = manifest.get("dim")
    for what, array, rows in (
        ("chunk", vectors, chunks),
        ("sentence", sentence_vectors, sentence_keys),
    ):
        if array.ndim != 2 or array.shape != (len(rows), dim):
            return f"{what} vectors have shape {array.shape}, expected ({len(rows)}, {dim})"
    if faiss_index.ntotal != len(chunks) or faiss_index.d != dim:
        return f"the FAISS index holds {faiss_index.ntotal} vectors for {len(chunks)} chunks"
    for doc_id, start, end in [(c.doc_id, c.start, c.end) for c in chunks] + sentence_keys:
        doc = documents.get(doc_id)
        if doc is None or not 0 <= start <= end <= len(doc.text):
            return f"a chunk or sentence of {doc_id!r} points outside its document"
    return None


@contextlib.contextmanager
def write_lock(folder: Path, *, wait_s: float = 30.0) -> Iterator[None]:
    """Hold the index's writer lock; wait up to ``wait_s`` then refuse.

    The lock is an ``flock`` on ``folder/.lock``: the kernel drops it when the
    holder dies, even by ``kill -9``, so a killed build never blocks the next.
    Once it is held, leftovers of killed writers are swept (:func:`sweep`).
    """
    import fcntl

    try:
        folder.mkdir(parents=True, exist_ok=True)
        fh = open(folder / ".lock", "a+")  # noqa: SIM115 - closed in the finally below
    except OSError as exc:
        raise IndexError_(
            f"cannot write the index folder {folder} ({exc.strerror or exc})",
            "pass --index FOLDER (or set CITECHAT_INDEX) to a folder you can write",
        ) from exc
    try:
        deadline = time.monotonic() + wait_s
        waited = False
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IndexLockedError(
                        f"another `citechat index` is writing {folder}",
                        "wait for it to finish and try again",
                    ) from None
                if not waited:
                    log.warning(
                        "another `citechat index` is writing %s; waiting %g s", folder, wait_s
                    )
                    waited = True
                time.sleep(0.2)
        try:
            sweep(folder)
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        fh.close()


def sweep(folder: Path) -> list[str]:
    """Remove what killed writers left in ``folder``; returns the names removed.

    Always ``.tmp-gen-*`` folders and ``.CURRENT.tmp``; generations other than
    the current one only when CURRENT names a complete one (an unreadable
    CURRENT leaves them for a rebuild to replace).  Call it holding the lock.
    """
    try:
        keep: str | None = current_generation(folder).name
    except IndexError_:
        keep = None
    removed = []
    for child in sorted(folder.iterdir()):
        stale = child.name.startswith(".tmp-gen-") or child.name == ".CURRENT.tmp"
        if keep is not None and child.name.startswith("gen-") and child.name != keep:
            stale = True
        if not stale:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
        removed.append(child.name)
    if removed:
        log.info("removed leftovers of an interrupted build in %s: %s", folder, ", ".join(removed))
    return removed


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
