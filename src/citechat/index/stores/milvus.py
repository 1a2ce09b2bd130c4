"""The Milvus store: a Milvus (or Milvus Lite) collection of chunk vectors.

``milvus://HOST:PORT/COLLECTION`` for a server or cluster, ``milvus-lite:PATH.db``
(or any path ending in ``.db``) for Milvus Lite, embedded in this process; the
same client code talks to both.  Rows are keyed by :func:`chunk_key` (a 63-bit
hash of the chunk id), so an update inserts new and re-chunked chunks and deletes
removed ones instead of re-sending everything.  The collection is written when
the store is created or updated, before the generation is committed; a reader of
an older generation skips keys it does not know.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import ConfigError, ModelError, one_line
from . import RowChange, StoreRows, StoreSpec, empty_result, parse_store

if TYPE_CHECKING:
    from ...config import Settings

#: rows per insert or delete call
BATCH = 1000


class MilvusStore:
    """A collection of chunk vectors keyed by :func:`chunk_key`.

    ``keys`` are the chunk keys of the current rows, in row order; search maps
    Milvus hits back to rows and skips keys it does not know (a newer
    generation's chunks, seen by a reader of an older one).
    """

    kind: str = "milvus"

    def __init__(self, spec: StoreSpec, dim: int, keys: Sequence[int] | np.ndarray) -> None:
        self.spec = spec
        self.dim = dim
        self.keys = np.asarray(keys, dtype=np.int64)
        self.row_of = {int(k): i for i, k in enumerate(self.keys.tolist())}
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = connect(self.spec)
        return self._client

    # -- the store protocol (see stores/__init__.py) -----------------------------------

    @classmethod
    def create(cls, spec: StoreSpec, rows: StoreRows, settings: Settings) -> MilvusStore:
        """The collection made to hold exactly ``rows`` (whatever it held before)."""
        store = cls(spec, rows.dim, rows.keys())
        store.sync(rows.vectors(), known=None, fresh=np.zeros(0, dtype=np.int64))
        return store

    @classmethod
    def load(
        cls, gen: Path, entry: dict[str, Any], rows: StoreRows, settings: Settings
    ) -> MilvusStore:
        """The manifest's collection, unless the settings name another Milvus one."""
        asked = parse_store(settings.store)
        spec = asked if asked.kind == "milvus" else cls.spec_of(entry)
        return cls(spec, rows.dim, rows.keys())

    @staticmethod
    def spec_of(entry: dict[str, Any]) -> StoreSpec:
        return StoreSpec(
            "milvus", str(entry.get("uri", "")), str(entry.get("collection", "citechat"))
        )

    def update(self, rows: StoreRows, change: RowChange, settings: Settings) -> MilvusStore:
        """Insert the new rows, delete the removed ones; the rows of a changed document
        keep their chunk ids, so they are replaced (deleted, then inserted)."""
        store = MilvusStore(self.spec, rows.dim, rows.keys())
        store.sync(rows.vectors(), known=set(self.row_of), fresh=change.new_rows)
        return store

    def save(self, gen: Path) -> None:
        """Nothing goes into the generation: the collection was written by create/update."""

    def inconsistency(self, chunks: int, dim: int) -> str | None:
        # deleted rows may still be counted until Milvus compacts: fewer is damage
        if self.count() < chunks:
            return (
                f"the Milvus collection {self.spec.collection} holds {self.count()} vectors "
                f"for {chunks} chunks"
            )
        return None

    # -- Milvus ------------------------------------------------------------------------

    def sync(
        self, vectors: np.ndarray, *, known: set[int] | None, fresh: np.ndarray
    ) -> tuple[int, int]:
        """Make the collection hold exactly this store's rows; (inserted, deleted).

        ``known`` are keys already in the collection (None: ask Milvus); ``fresh``
        rows are sent again even when their key is known (their vector changed).
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
        replaced = {int(self.keys[r]) for r in np.asarray(fresh, dtype=np.int64).tolist()}
        replaced &= known
        drop = sorted((known - want) | replaced)
        for i in range(0, len(drop), BATCH):
            c.delete(name, ids=drop[i : i + BATCH])
        add = sorted((want - known) | replaced, key=self.row_of.__getitem__)
        for i in range(0, len(add), BATCH):
            rows = [self.row_of[k] for k in add[i : i + BATCH]]
            c.insert(
                name,
                [{"id": self.keys[r].item(), "vector": vectors[r].tolist()} for r in rows],
            )
        if hasattr(c, "flush"):
            c.flush(name)
        return len(add), len(drop) - len(replaced)

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
            return empty_result(len(q))
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
            f"{one_line(str(exc), 200)}); check that the server runs "
            "or pass --store faiss"
        ) from exc
    _clients[spec.uri] = client
    return client
