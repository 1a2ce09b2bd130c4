"""The FAISS store: a FAISS structure saved in each index generation (``faiss.index``).

The type is chosen by size: exact inner-product search (``IndexFlatIP``) up to
``Settings.flat_max`` vectors, HNSW above it (graph search: approximate, and far
faster at a million vectors).  The choice and its parameters go into the
manifest; a manifest without them (older indexes) is flat.  An update extends an
HNSW graph, removed rows left as tombstones until they pass
:data:`MAX_TOMBSTONES`; a flat store is rebuilt (a copy is cheap).  Batches of
an HNSW store are inserted block by block, which gives a slightly worse graph
than one insert of all of them.  README, "One machine, a million chunks", has
the speed, recall and memory of each.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import ConfigError
from . import RowChange, StoreRows, StoreSpec, empty_result

if TYPE_CHECKING:
    from ...config import Settings

#: HNSW can drop this share of its rows as tombstones before an update rebuilds it
MAX_TOMBSTONES = 0.2


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

    @classmethod
    def of(cls, settings: Settings) -> FaissParams:
        return cls(
            flat_max=settings.flat_max,
            hnsw_m=settings.hnsw_m,
            ef_construction=settings.hnsw_ef_construction,
            ef_search=settings.hnsw_ef_search,
        )


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

    # -- the store protocol (see stores/__init__.py) -----------------------------------

    @classmethod
    def create(cls, spec: StoreSpec, rows: StoreRows, settings: Settings) -> FaissStore:
        return cls.build_from(rows.blocks(), rows.n, rows.dim, FaissParams.of(settings))

    @staticmethod
    def spec_of(entry: dict[str, Any]) -> StoreSpec:
        return StoreSpec()

    def update(self, rows: StoreRows, change: RowChange, settings: Settings) -> FaissStore:
        """Extend an HNSW graph in place (the store is this build's own: a copy would
        double its memory); rebuild a flat store from the rows."""
        return self.updated(
            change.old_to_new,
            rows.vectors(),
            change.new_rows,
            FaissParams.of(settings),
            rebuild=functools.partial(FaissStore.create, StoreSpec(), rows, settings),
            in_place=True,
        )

    def inconsistency(self, chunks: int, dim: int) -> str | None:
        if self.count() != chunks or self.faiss.d != dim:
            return f"the FAISS index holds {self.count()} vectors for {chunks} chunks"
        return None

    @classmethod
    def build(cls, vectors: np.ndarray, dim: int, params: FaissParams) -> FaissStore:
        # one add: HNSW inserts a whole batch level by level, which gives a better graph
        # (a higher recall) than batches would, and the caller holds the vectors anyway
        return cls.build_from([vectors], len(vectors), dim, params)

    @classmethod
    def build_from(
        cls, batches: Iterable[np.ndarray], n: int, dim: int, params: FaissParams
    ) -> FaissStore:
        """A store of ``n`` vectors added batch by batch, for a caller that streams them
        and never holds them all (FAISS keeps its own copy: holding the input too
        about doubles the builder's peak)."""
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
            return self.faiss.search(q, k) if k > 0 else empty_result(len(q))
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
        cls, gen: Path, entry: dict[str, Any], rows: StoreRows, settings: Settings
    ) -> FaissStore:
        """The store saved in ``gen``; the settings' ``hnsw_ef_search`` (a search-time
        knob) overrides the one it was built with."""
        import faiss

        index = faiss.read_index(str(gen / "faiss.index"))
        type_ = str(entry.get("type", "flat"))
        labels = None
        if entry.get("tombstones") is not None and (gen / "faiss_labels.npy").exists():
            labels = np.load(gen / "faiss_labels.npy")
        params = dict(entry.get("params") or {})
        if type_ == "hnsw":
            params["ef_search"] = settings.hnsw_ef_search
        return cls(index, type_, params, labels)


def _remap(labels: np.ndarray, old_to_new: np.ndarray) -> np.ndarray:
    return np.where(labels >= 0, old_to_new[np.maximum(labels, 0)], -1).astype(np.int64)
