"""Vector stores: where the index's chunk vectors are searched, one backend per file.

Two kinds, chosen by ``--store`` / ``CITECHAT_STORE`` (:func:`parse_store`)::

    faiss.py   FAISS, saved in each generation (faiss.index): exact inner-product
               search up to Settings.flat_max vectors, HNSW above (the default)
    milvus.py  a Milvus collection: milvus://HOST:PORT/COLLECTION (a server or
               cluster) or milvus-lite:PATH.db (embedded); rows keyed by chunk_key

Every backend follows :class:`VectorStore`; callers (the build, the readers) go
through :func:`create_store`, :func:`load_store` and :func:`carries_over` and never
ask which backend they hold.  A store answers ``search(vectors, k) -> (scores,
rows)`` with chunk rows of its generation (``-1`` pads a short answer).  It does
not embed and does not know about documents: the index owns the chunk list.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ...errors import ConfigError

if TYPE_CHECKING:
    from ...config import Settings

__all__ = [
    "LEGACY",
    "RowChange",
    "StoreCheck",
    "StoreRows",
    "StoreSpec",
    "VectorStore",
    "carries_over",
    "chunk_key",
    "create_store",
    "load_store",
    "parse_store",
    "peek_store",
    "wanted_store",
]

#: the manifest entry of indexes written before stores had types
LEGACY = {"kind": "faiss", "type": "flat", "metric": "inner_product"}
#: vectors per block when a store is built from the vectors file (200 MB of 384-d)
STORE_BLOCK = 131_072


@dataclass(frozen=True)
class StoreSpec:
    """A parsed ``--store`` value.

    >>> parse_store("milvus://db.local:19530/news")
    StoreSpec(kind='milvus', uri='http://db.local:19530', collection='news')
    >>> parse_store("./index/milvus.db").uri
    './index/milvus.db'
    """

    kind: str = "faiss"
    uri: str = ""
    collection: str = "citechat"


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


def parse_store(spec: str | None) -> StoreSpec:
    """``faiss`` | ``milvus://HOST:PORT[/COLLECTION]`` | ``milvus-lite:PATH[#COLLECTION]``
    | ``PATH.db[#COLLECTION]``."""
    spec = (spec or "faiss").strip()
    if spec == "faiss":
        return StoreSpec()
    collection = "citechat"
    if spec.startswith("milvus://"):
        hostport, _, name = spec[len("milvus://") :].partition("/")
        if not hostport:
            raise ConfigError(f"store {spec!r} names no host; use milvus://HOST:PORT/COLLECTION")
        uri = f"http://{hostport}"
        collection = name.strip("/") or collection
    elif spec.startswith("milvus-lite:") or spec.split("#")[0].endswith(".db"):
        path, _, name = spec.removeprefix("milvus-lite:").partition("#")
        if not path:
            raise ConfigError(f"store {spec!r} names no file; use milvus-lite:./index/milvus.db")
        uri, collection = path, name or collection
    else:
        raise ConfigError(
            f"unknown store {spec!r}; use faiss, milvus://HOST:PORT/COLLECTION "
            "or milvus-lite:PATH.db"
        )
    if not _NAME.fullmatch(collection):
        raise ConfigError(
            f"Milvus collection name {collection!r} must be letters, digits and _, "
            "starting with a letter"
        )
    return StoreSpec("milvus", uri, collection)


def chunk_key(chunk_id: str) -> int:
    """A stable 63-bit key for a chunk id (Milvus keys are int64).

    >>> chunk_key("a.txt#0") == chunk_key("a.txt#0") != chunk_key("a.txt#1")
    True
    """
    return int.from_bytes(hashlib.blake2b(chunk_id.encode(), digest_size=8).digest(), "big") >> 1


# -- what a store is built from ------------------------------------------------------


@dataclass
class StoreRows:
    """A generation's chunk rows as a store reads them: ``vectors.npy`` (``n`` rows of
    ``dim``) and the chunk ids of ``chunks.jsonl``, both in row order, read on demand."""

    folder: Path
    n: int
    dim: int
    #: the chunk ids in row order, when the caller holds them (else chunks.jsonl is read)
    chunk_ids: Callable[[], Iterable[str]] | None = field(default=None, repr=False)
    #: the manifest's ``vectors`` entry when the vectors are segments (segments.py)
    segments: dict[str, Any] | None = None
    #: the manifest's ``files`` entry when chunks.jsonl is segments (rowfiles.py)
    files: dict[str, Any] | None = None
    _keys: np.ndarray | None = field(default=None, repr=False)

    def vectors(self) -> Any:
        """All rows, memory-mapped (a store reads the rows it sends): an array, or one
        read through its segments (``segments.SegmentedVectors``)."""
        if not self.n:
            return np.zeros((0, self.dim), dtype=np.float32)
        from ..segments import open_vectors

        return open_vectors(self.folder, {"vectors": self.segments}, "vectors")

    def blocks(self, size: int | None = None) -> Iterator[np.ndarray]:
        """The rows, ``size`` at a time, read with plain file reads (a memory map would
        count every page read in the builder's RSS)."""
        from ..segments import read_rows

        size = size or STORE_BLOCK
        for first in range(0, self.n, size):
            end = min(self.n, first + size)
            yield read_rows(self.folder, self.segments, "vectors", self.dim, first, end)

    def keys(self) -> np.ndarray:
        """:func:`chunk_key` of each row's chunk id (int64)."""
        if self._keys is None:
            ids = self.chunk_ids() if self.chunk_ids else self._read_chunk_ids()
            self._keys = np.asarray([chunk_key(c) for c in ids], dtype=np.int64)
        return self._keys

    def _read_chunk_ids(self) -> Iterator[str]:
        from ..rowfiles import open_file

        file = open_file(self.folder, self.files, "chunks.jsonl")
        rest = b""
        for first in range(0, file.size, 1 << 22):
            *lines, rest = (rest + file.read(first, min(file.size, first + (1 << 22)))).split(b"\n")
            yield from (json.loads(line)["chunk_id"] for line in lines if line.strip())
        if rest.strip():
            yield json.loads(rest)["chunk_id"]


@dataclass(frozen=True)
class RowChange:
    """How an update moved the rows: ``old_to_new[r]`` is the new row of old row ``r``
    (``-1``: removed); ``new_rows`` are the rows of new or re-chunked chunks (sorted)."""

    old_to_new: np.ndarray
    new_rows: np.ndarray


class VectorStore(Protocol):
    """One backend (faiss.py, milvus.py).  The class also has ``create(spec, rows,
    settings)``, ``load(gen, entry, rows, settings)`` and ``spec_of(entry)``, which
    :func:`create_store`, :func:`load_store` and :func:`carries_over` call."""

    kind: str

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each (len(queries), k), best first; rows -1 past the end."""
        ...

    def count(self) -> int:
        """Vectors that searches can return."""
        ...

    def describe(self) -> dict[str, Any]:
        """The manifest entry: kind, type, parameters."""
        ...

    def update(self, rows: StoreRows, change: RowChange, settings: Settings) -> VectorStore:
        """The store of the updated rows: removed rows dropped, ``change.new_rows``
        added (or everything rebuilt, where that is the better choice)."""
        ...

    def save(self, gen: Path) -> None:
        """Write what the store keeps in generation folder ``gen`` (before the manifest)."""
        ...

    def inconsistency(self, chunks: int, dim: int) -> str | None:
        """Why this store cannot serve ``chunks`` rows of ``dim``, or None."""
        ...


class StoreCheck(Protocol):
    """What the load-time check asks of a store (a :class:`VectorStore`, or what a
    backend's ``peek(gen, entry)`` reads of one without loading it)."""

    def inconsistency(self, chunks: int, dim: int) -> str | None: ...


#: store kind -> the module of its backend and its class (imported when first used)
BACKENDS: dict[str, tuple[str, str]] = {
    "faiss": (".faiss", "FaissStore"),
    "milvus": (".milvus", "MilvusStore"),
}


def backend(kind: str) -> Any:
    """The class of the backend for ``kind`` (see :data:`BACKENDS`)."""
    try:
        module, name = BACKENDS[kind]
    except KeyError:
        raise ConfigError(f"unknown store kind {kind!r}; use one of {sorted(BACKENDS)}") from None
    return getattr(importlib.import_module(module, __name__), name)


def _entry_kind(entry: dict[str, Any] | None) -> str:
    return str((entry or LEGACY).get("kind", "faiss"))


def wanted_store(settings: Settings, entry: dict[str, Any] | None) -> StoreSpec:
    """The store a build writes: the one the settings name, else the old index's
    (manifest ``entry``), else FAISS."""
    if settings.store:
        return parse_store(settings.store)
    if entry is not None:
        spec: StoreSpec = backend(_entry_kind(entry)).spec_of(entry)
        return spec
    return StoreSpec()


def carries_over(entry: dict[str, Any] | None, spec: StoreSpec) -> bool:
    """True when the store of manifest ``entry`` is the one ``spec`` asks for, so an
    update extends it rather than creating one."""
    entry = entry or LEGACY
    same: bool = backend(_entry_kind(entry)).spec_of(entry) == spec
    return same


def create_store(spec: StoreSpec, rows: StoreRows, settings: Settings) -> VectorStore:
    """A new store of ``spec``'s kind holding ``rows``."""
    store: VectorStore = backend(spec.kind).create(spec, rows, settings)
    return store


def load_store(
    gen: Path, entry: dict[str, Any] | None, rows: StoreRows, settings: Settings
) -> VectorStore:
    """The store a generation's manifest ``entry`` describes (None: an old flat one)."""
    entry = entry or LEGACY
    store: VectorStore = backend(_entry_kind(entry)).load(gen, entry, rows, settings)
    return store


def peek_store(
    gen: Path, entry: dict[str, Any] | None, rows: StoreRows, settings: Settings
) -> StoreCheck:
    """Enough of the store of manifest ``entry`` for the load-time check: the backend's
    ``peek`` where it has one (FAISS reads a file's header, not its graph), else the
    store itself (:func:`load_store`)."""
    entry = entry or LEGACY
    peek = getattr(backend(_entry_kind(entry)), "peek", None)
    found: StoreCheck | None = peek(gen, entry) if peek is not None else None
    return found if found is not None else load_store(gen, entry, rows, settings)


def empty_result(nq: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((nq, 0), dtype=np.float32), np.zeros((nq, 0), dtype=np.int64)
