"""Vector stores: where the index's chunk vectors are searched.

Two kinds, chosen by ``--store`` / ``CITECHAT_STORE`` (:func:`parse_store`):

``faiss`` (default)
    A FAISS structure saved in each index generation (``faiss.index``).  The
    type is chosen by size: exact inner-product search (``IndexFlatIP``) up to
    ``Settings.flat_max`` vectors, HNSW above it (graph search, ~20x faster at a
    million vectors with recall@10 above 0.95).  The choice and its parameters
    go into the manifest; a manifest without them (older indexes) is flat.

``milvus``
    A Milvus collection: ``milvus://HOST:PORT/COLLECTION`` for a server or
    cluster, ``milvus-lite:PATH.db`` (or any path ending in ``.db``) for Milvus
    Lite, embedded in this process.  The same client code talks to both.  Rows
    are keyed by a 63-bit hash of the chunk id, so an update inserts new
    chunks and deletes removed ones instead of re-sending everything.

A store answers ``search(vectors, k) -> (scores, rows)`` with chunk rows of
the current generation (``-1`` pads a short answer).  It does not embed and
does not know about documents: view.py owns the chunk list.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from ..errors import ConfigError, ModelError

StoreKind = Literal["faiss", "milvus"]
#: the manifest entry of indexes written before stores had types
LEGACY = {"kind": "faiss", "type": "flat", "metric": "inner_product"}
#: HNSW can drop this share of its rows as tombstones before an update rebuilds it
MAX_TOMBSTONES = 0.2


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


class VectorStore(Protocol):
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


# -- FAISS -------------------------------------------------------------------------


@dataclass(frozen=True)
class FaissParams:
    """How a FAISS store is built; validated here so a bad setting names itself."""

    flat_max: int = 100_000
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 96

    def __post_init__(self) -> None:
        for name in ("flat_max", "hnsw_m", "ef_construction", "ef_search"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")

    def kind_for(self, n: int) -> str:
        """``flat`` up to ``flat_max`` vectors, ``hnsw`` above.

        >>> FaissParams(flat_max=10).kind_for(10), FaissParams(flat_max=10).kind_for(11)
        ('flat', 'hnsw')
        """
        return "flat" if n <= self.flat_max else "hnsw"


class FaissStore:
    """A FAISS index over chunk vectors; HNSW ones may hold removed rows as tombstones.

    ``labels[i]`` is the chunk row of FAISS id ``i`` (``-1``: removed), or None
    when FAISS ids are the rows (always for flat stores).
    """

    kind: str = "faiss"

    def __init__(self, index: Any, type_: str, params: dict[str, int], labels: Any = None) -> None:
        self.faiss = index
        self.type = type_
        self.params = params
        self.labels: np.ndarray | None = labels
        if type_ == "hnsw":
            index.hnsw.efSearch = params.get("ef_search", FaissParams.ef_search)

    @classmethod
    def build(cls, vectors: np.ndarray, dim: int, params: FaissParams) -> FaissStore:
        # one add: HNSW inserts a whole batch level by level, which gives a better graph
        # than batches would (recall@10 0.992 vs 0.986 at a million), and the caller
        # holds the vectors anyway
        return cls.build_from([vectors], len(vectors), dim, params)

    @classmethod
    def build_from(
        cls, batches: Iterable[np.ndarray], n: int, dim: int, params: FaissParams
    ) -> FaissStore:
        """A store of ``n`` vectors added batch by batch, for a caller that streams them
        and never holds them all (FAISS keeps its own copy: holding the input too
        doubles the builder's peak, 1.8 GB vs about 3.3 GB at a million 384-d vectors)."""
        import faiss

        type_ = params.kind_for(n)
        index: Any
        if type_ == "flat":
            index = faiss.IndexFlatIP(dim)
            used: dict[str, int] = {}
        else:
            index = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = params.ef_construction
            used = {
                "M": params.hnsw_m,
                "ef_construction": params.ef_construction,
                "ef_search": params.ef_search,
            }
        for batch in batches:
            if len(batch):
                index.add(np.ascontiguousarray(batch, dtype=np.float32))
        return cls(index, type_, used)

    def updated(
        self,
        old_to_new: np.ndarray,
        vectors: np.ndarray,
        new_rows: np.ndarray,
        params: FaissParams,
        *,
        rebuild: Callable[[], FaissStore] | None = None,
        in_place: bool = False,
    ) -> FaissStore:
        """The store after an update.

        ``old_to_new[r]`` is the new row of old chunk row ``r`` (-1: removed);
        ``vectors`` are all new-row vectors (used for a rebuild); ``new_rows``
        the rows added.  Flat stores are rebuilt (a copy, cheap); an HNSW store
        of the right type gets the new vectors added and removed rows
        tombstoned, until tombstones pass :data:`MAX_TOMBSTONES`.  A rebuild
        calls ``rebuild`` when given (a caller that streams the vectors from disk).
        ``in_place`` extends this store's graph instead of a copy (a caller that owns
        it: the copy would double an HNSW store's memory).
        """
        if rebuild is None:
            rebuild = functools.partial(FaissStore.build, vectors, vectors.shape[1], params)
        if self.type != "hnsw" or params.kind_for(len(vectors)) != "hnsw":
            return rebuild()
        import faiss

        labels = old_to_new if self.labels is None else _remap(self.labels, old_to_new)
        dead = int((labels < 0).sum())
        if dead > MAX_TOMBSTONES * (len(labels) + len(new_rows)):
            return rebuild()
        index = self.faiss if in_place else faiss.clone_index(self.faiss)
        if len(new_rows):
            index.add(np.ascontiguousarray(vectors[new_rows], dtype=np.float32))
        labels = np.concatenate([labels, new_rows.astype(np.int64)])
        same = dead == 0 and np.array_equal(labels, np.arange(len(labels)))
        return FaissStore(index, "hnsw", self.params, None if same else labels)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries.reshape(-1, self.faiss.d), dtype=np.float32)
        if self.labels is None:
            k = min(k, self.faiss.ntotal)
            return self.faiss.search(q, k) if k > 0 else _empty(len(q))
        # tombstones take slots in FAISS's answer: ask for more, drop them, keep k
        dead = int((self.labels < 0).sum())
        scores, ids = self.faiss.search(q, min(k + dead, self.faiss.ntotal))
        rows = np.where(ids >= 0, self.labels[np.maximum(ids, 0)], -1)
        out_s = np.full((len(q), k), -np.inf, dtype=np.float32)
        out_r = np.full((len(q), k), -1, dtype=np.int64)
        for i in range(len(q)):
            keep = rows[i] >= 0
            n = min(k, int(keep.sum()))
            out_s[i, :n] = scores[i][keep][:n]
            out_r[i, :n] = rows[i][keep][:n]
        return out_s, out_r

    def count(self) -> int:
        if self.labels is None:
            return int(self.faiss.ntotal)
        return int((self.labels >= 0).sum())

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "faiss",
            "type": self.type,
            "metric": "inner_product",
            "params": self.params,
            "tombstones": 0 if self.labels is None else int((self.labels < 0).sum()),
        }

    def save(self, folder: Path) -> None:
        import faiss

        faiss.write_index(self.faiss, str(folder / "faiss.index"))
        if self.labels is not None:
            np.save(folder / "faiss_labels.npy", self.labels)

    @classmethod
    def load(
        cls, folder: Path, entry: dict[str, Any], *, ef_search: int | None = None
    ) -> FaissStore:
        """The store saved in ``folder``; ``ef_search`` (a search-time knob) overrides the
        one it was built with."""
        import faiss

        index = faiss.read_index(str(folder / "faiss.index"))
        type_ = str(entry.get("type", "flat"))
        labels = None
        if entry.get("tombstones") is not None and (folder / "faiss_labels.npy").exists():
            labels = np.load(folder / "faiss_labels.npy")
        params = dict(entry.get("params") or {})
        if type_ == "hnsw" and ef_search is not None:
            params["ef_search"] = ef_search
        return cls(index, type_, params, labels)


def _remap(labels: np.ndarray, old_to_new: np.ndarray) -> np.ndarray:
    return np.where(labels >= 0, old_to_new[np.maximum(labels, 0)], -1).astype(np.int64)


def _empty(nq: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((nq, 0), dtype=np.float32), np.zeros((nq, 0), dtype=np.int64)


# -- Milvus ------------------------------------------------------------------------


def chunk_key(chunk_id: str) -> int:
    """A stable 63-bit primary key for a chunk id (Milvus keys are int64).

    >>> chunk_key("a.txt#0") == chunk_key("a.txt#0") != chunk_key("a.txt#1")
    True
    """
    return int.from_bytes(hashlib.blake2b(chunk_id.encode(), digest_size=8).digest(), "big") >> 1


class MilvusStore:
    """A Milvus (or Milvus Lite) collection of chunk vectors, keyed by :func:`chunk_key`.

    ``keys`` are the chunk keys of the current rows, in row order; search maps
    Milvus hits back to rows and skips keys it does not know (a newer
    generation's chunks, seen by a reader of an older one).
    """

    kind: str = "milvus"

    def __init__(self, spec: StoreSpec, dim: int, keys: Sequence[int]) -> None:
        self.spec = spec
        self.dim = dim
        self.keys = np.asarray(keys, dtype=np.int64)
        self.row_of = {int(k): i for i, k in enumerate(self.keys)}
        self._client: Any = None
        #: vectors not yet sent to Milvus (a new or updated index), sent on first use
        self.pending: np.ndarray | None = None
        #: keys the collection is known to hold (the previous store's), or None: ask it
        self.known: set[int] | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = connect(self.spec)
        return self._client

    def flush(self) -> tuple[int, int]:
        """Send :attr:`pending` vectors, if any; (inserted, deleted)."""
        if self.pending is None:
            return 0, 0
        done = self.sync(self.pending, known=self.known)
        self.pending, self.known = None, None
        return done

    def sync(self, vectors: np.ndarray, *, known: set[int] | None = None) -> tuple[int, int]:
        """Make the collection hold exactly this store's rows; (inserted, deleted).

        ``known`` are keys already in the collection; None asks Milvus (all ids).
        """
        c = self.client
        name = self.spec.collection
        if not c.has_collection(name):
            c.create_collection(
                name,
                dimension=self.dim,
                metric_type="IP",
                auto_id=False,
                consistency_level="Strong",
            )
            known = set()
        elif known is None:
            known = self.existing_keys()
        want = set(self.row_of)
        add = sorted(want - known, key=self.row_of.__getitem__)
        for i in range(0, len(add), 1000):
            rows = [self.row_of[k] for k in add[i : i + 1000]]
            c.insert(
                name,
                [{"id": self.keys[r].item(), "vector": vectors[r].tolist()} for r in rows],
            )
        drop = sorted(known - want)
        for i in range(0, len(drop), 1000):
            c.delete(name, ids=drop[i : i + 1000])
        if hasattr(c, "flush"):
            c.flush(name)
        return len(add), len(drop)

    def existing_keys(self) -> set[int]:
        it = self.client.query_iterator(
            self.spec.collection, batch_size=4096, filter="id >= 0", output_fields=["id"]
        )
        out: set[int] = set()
        while True:
            page = it.next()
            if not page:
                it.close()
                return out
            out.update(int(r["id"]) for r in page)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(queries, dtype=np.float32).reshape(-1, self.dim)
        if k < 1 or not len(self.keys):
            return _empty(len(q))
        self.flush()
        k = min(k, len(self.keys))
        res = self.client.search(
            self.spec.collection,
            data=q.tolist(),
            limit=min(k + 16, 16384),
            output_fields=["id"],
            search_params={"metric_type": "IP"},
        )
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        rows = np.full((len(q), k), -1, dtype=np.int64)
        for i, hits in enumerate(res):
            j = 0
            for hit in hits:
                row = self.row_of.get(int(hit["id"]))
                if row is None or j >= k:
                    continue
                scores[i, j], rows[i, j] = float(hit["distance"]), row
                j += 1
        return scores, rows

    def count(self) -> int:
        if self.pending is not None:
            return len(self.keys)
        if not self.client.has_collection(self.spec.collection):
            return 0
        stats = self.client.get_collection_stats(self.spec.collection)
        return int(stats.get("row_count", 0))

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "milvus",
            "type": "milvus",
            "metric": "inner_product",
            "uri": self.spec.uri,
            "collection": self.spec.collection,
        }


def store_inconsistency(store: VectorStore, chunks: int, dim: int) -> str | None:
    if isinstance(store, FaissStore):
        if store.count() != chunks or store.faiss.d != dim:
            return f"the FAISS index holds {store.count()} vectors for {chunks} chunks"
    elif isinstance(store, MilvusStore) and store.count() < chunks:
        # deleted rows may still be counted until Milvus compacts: fewer is damage
        return (
            f"the Milvus collection {store.spec.collection} holds {store.count()} vectors "
            f"for {chunks} chunks"
        )
    return None


def milvus_spec(entry: dict[str, Any]) -> StoreSpec:
    return StoreSpec("milvus", str(entry.get("uri", "")), str(entry.get("collection", "citechat")))


class NoStore:
    """The store of the empty index a build starts from (nothing to search)."""

    kind = "none"

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        nq = len(queries.reshape(len(queries), -1))
        return np.zeros((nq, 0), dtype=np.float32), np.zeros((nq, 0), dtype=np.int64)

    def count(self) -> int:
        return 0

    def describe(self) -> dict[str, Any]:
        return {"kind": "none", "type": "none"}


_clients: dict[str, Any] = {}


def connect(spec: StoreSpec) -> Any:
    """A MilvusClient for ``spec`` (one per URI per process: Milvus Lite allows one)."""
    if spec.uri in _clients:
        return _clients[spec.uri]
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:
        raise ConfigError(
            "the Milvus store needs pymilvus; install it with pip install 'citechat[milvus]'"
        ) from exc
    if not spec.uri.startswith("http"):
        Path(spec.uri).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    try:
        client = MilvusClient(spec.uri)
    except Exception as exc:  # grpc, network and Milvus Lite start-up errors
        raise ModelError(
            f"cannot reach Milvus at {spec.uri} ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); check that the server runs "
            "or pass --store faiss"
        ) from exc
    _clients[spec.uri] = client
    return client
