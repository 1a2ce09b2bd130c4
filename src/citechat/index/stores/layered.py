"""A FAISS store over segmented chunk vectors that an update extends without writing it.

When an update leaves the chunk vectors as segments (segments.py), the store of the new
generation is made of what is already on disk::

    base   the old generation's ``faiss.index`` (an HNSW graph), hard-linked: its FAISS
           ids are the physical rows of one vector segment (``base``), the array it was
           built from; the rows of it no run names are dead, skipped by a FAISS
           ``IDSelectorBitmap`` at search time (nothing is rewritten)
    scan   every other live row (or every row, when there is no base: a flat store),
           searched exactly by ``faiss.knn`` over the mapped segment rows, run by run:
           the same inner products as ``IndexFlatIP``, read from the vector segments
           themselves, so a flat store costs no file at all

The answers of both are merged by score (ties by row).  Nothing of the store is written
by an update that takes this path: the manifest's ``store`` entry names the base segment
(``layered``).  It is taken while the scanned rows stay at most ``flat_max`` and the dead
rows of the base at most ``MAX_TOMBSTONES`` of it (faiss.py); else the store is built
again from the rows as before, as it is when the vectors are merged into one array.

It does not segment IVF stores (they are extended as faiss.py does) or Milvus ones.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..segments import SEGMENTS, SegmentedVectors
from . import StoreRows, StoreSpec, empty_result
from .faiss import MAX_TOMBSTONES, FaissParams, FaissStore

if TYPE_CHECKING:
    from ...config import Settings

#: base types whose search takes an ID selector (HNSW over full or 8-bit vectors)
LAYERED_BASES = ("hnsw", "hnsw_sq8")
#: the file a base is saved in (the old generation's, linked)
BASE_FILE = "faiss.index"


class LayeredStore:
    """An optional base FAISS index over one vector segment plus an exact scan of the
    other live rows (module docstring).  ``vectors``: the generation's segmented chunk
    vectors; ``base``: the segment index whose physical rows the base's ids are."""

    kind: str = "faiss"

    def __init__(
        self,
        vectors: SegmentedVectors,
        base: int | None,
        base_file: Path | None,
        entry: dict[str, Any],
        ef_search: int | None = None,
    ) -> None:
        self.vectors = vectors
        self.base = base
        #: where the base is read from (the old generation's while an update writes)
        self.base_file = base_file
        self.type = str(entry.get("type", "flat")) if base is not None else "flat"
        self.params: dict[str, Any] = dict(entry.get("params") or {}) if base is not None else {}
        if ef_search is not None and base is not None:
            self.params["ef_search"] = ef_search
        self._index: Any = None  # the base, read at the first search
        self._live: np.ndarray | None = None  # its live rows, as a bitmap
        self._lock = threading.Lock()
        # logical row of each live physical row: runs sorted by (segment, first row)
        runs = vectors.runs
        order = np.lexsort((runs[:, 1], runs[:, 0]))
        self._runs = runs[order]
        self._starts = vectors.starts[order]

    # -- what the build asks -----------------------------------------------------------

    @classmethod
    def take(
        cls,
        old_entry: dict[str, Any] | None,
        old_gen: Path,
        rows: StoreRows,
        settings: Settings,
    ) -> LayeredStore | None:
        """The store of an update's segmented ``rows`` from the old generation's store
        (manifest ``old_entry``, in ``old_gen``), or None when this path does not fit:
        the vectors are one array, the old store is not FAISS flat or HNSW, or too many
        rows would be scanned or dead."""
        entry = old_entry or {"type": "flat"}
        if rows.segments is None or entry.get("kind", "faiss") != "faiss" or not rows.n:
            return None
        vectors = rows.vectors()
        if not isinstance(vectors, SegmentedVectors):
            return None
        params = FaissParams.of(settings)
        type_ = str(entry.get("type", "flat"))
        base: int | None = None
        labelled = (old_gen / "faiss_labels.npy").exists()  # ids that are not rows
        # tombstones of a FaissStore are labelled ids; a layered one's are dead base rows
        tombstones = bool(entry.get("tombstones")) and entry.get("layered") is None
        if type_ in LAYERED_BASES and not tombstones and not labelled:
            # the segment the base was built over: the one named, or the old array's
            name = (entry.get("layered") or {}).get("base") or f"{SEGMENTS}/cv-{old_gen.name}.npy"
            if name not in vectors.names or params.kind_for(rows.n) != type_:
                return None
            base = vectors.names.index(name)
        elif type_ != "flat" or params.kind_for(rows.n) != "flat":
            return None
        store = cls(vectors, base, old_gen / BASE_FILE if base is not None else None, entry)
        if base is not None:
            size = len(vectors.segments[base])
            if store.scanned() > params.flat_max or store.base_dead() > MAX_TOMBSTONES * size:
                return None
        return store

    def scanned(self) -> int:
        """Live rows outside the base (searched exactly)."""
        return self.count() - self.base_live()

    def base_dead(self) -> int:
        """Rows of the base no run names (removed or changed since it was built)."""
        return 0 if self.base is None else len(self.vectors.segments[self.base]) - self.base_live()

    def base_live(self) -> int:
        if self.base is None:
            return 0
        at = self._runs[:, 0] == self.base
        return int((self._runs[at, 2] - self._runs[at, 1]).sum())

    # -- the store protocol (see stores/__init__.py) -----------------------------------

    @staticmethod
    def spec_of(entry: dict[str, Any]) -> StoreSpec:
        return StoreSpec()

    @classmethod
    def load(
        cls, gen: Path, entry: dict[str, Any], rows: StoreRows, settings: Settings
    ) -> LayeredStore:
        """The layered store a manifest ``entry`` describes; raises ValueError when it
        does not fit the generation's vectors (the check names it damaged)."""
        vectors = rows.vectors()
        base_name = (entry.get("layered") or {}).get("base")
        if not isinstance(vectors, SegmentedVectors):
            raise ValueError("a layered store over vectors that are not segments")
        base = None
        if base_name is not None:
            if base_name not in vectors.names or not (gen / BASE_FILE).is_file():
                raise ValueError(f"the store's base {str(base_name)[:80]!r} is missing")
            base = vectors.names.index(base_name)
        return cls(
            vectors,
            base,
            gen / BASE_FILE if base is not None else None,
            entry,
            ef_search=settings.hnsw_ef_search,
        )

    def update(self, rows: StoreRows, change: Any, settings: Settings) -> FaissStore:
        """Built again from the rows (an update that does not take :meth:`take`)."""
        return FaissStore.create(StoreSpec(), rows, settings)

    def count(self) -> int:
        return int(self.vectors.shape[0])

    def inconsistency(self, chunks: int, dim: int) -> str | None:
        if self.count() != chunks or self.vectors.shape[1] != dim:
            return f"the FAISS store holds {self.count()} vectors for {chunks} chunks"
        return None

    def describe(self) -> dict[str, Any]:
        base = None if self.base is None else self.vectors.names[self.base]
        return {
            "kind": "faiss",
            "type": self.type,
            "metric": "inner_product",
            "params": self.params,
            # the base's dead rows, skipped at search time
            "tombstones": self.base_dead(),
            "layered": {"base": base, "scanned": self.scanned()},
        }

    def save(self, gen: Path) -> None:
        """Link the base into ``gen`` (a copy where the file system has no links)."""
        if self.base_file is None or self.base_file.parent == gen:
            return
        try:
            os.link(self.base_file, gen / BASE_FILE)
        except OSError:
            shutil.copyfile(self.base_file, gen / BASE_FILE)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        q = np.ascontiguousarray(queries.reshape(-1, self.vectors.shape[1]), dtype=np.float32)
        k = min(k, self.count())
        if k <= 0:
            return empty_result(len(q))
        scores, rows = [], []
        for (seg, lo, hi), start in zip(self._runs.tolist(), self._starts.tolist(), strict=True):
            if seg == self.base:
                continue
            block = self.vectors.segments[seg][lo:hi]
            s, i = faiss.knn(
                q, np.ascontiguousarray(block), min(k, hi - lo), faiss.METRIC_INNER_PRODUCT
            )
            scores.append(s)
            rows.append(np.where(i >= 0, i + start, -1))
        if self.base is not None:
            s, i = self._search_base(q, k)
            scores.append(s)
            rows.append(np.where(i >= 0, self._logical(self.base, np.maximum(i, 0)), -1))
        return _best(np.concatenate(scores, axis=1), np.concatenate(rows, axis=1), k)

    # -- the base ------------------------------------------------------------------------

    def _search_base(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        with self._lock:  # a server's threads search at once: read the base once
            if self._index is None:
                assert self.base_file is not None and self.base is not None
                live = np.zeros(len(self.vectors.segments[self.base]), dtype=bool)
                for seg, lo, hi in self._runs.tolist():
                    if seg == self.base:
                        live[lo:hi] = True
                # IDSelectorBitmap reads bit i of byte i // 8, lowest bit first
                self._live = np.packbits(live, bitorder="little")
                self._index = faiss.read_index(str(self.base_file))
        assert self._live is not None
        selector = faiss.IDSelectorBitmap(len(self._live), faiss.swig_ptr(self._live))
        search = faiss.SearchParametersHNSW(  # type: ignore[attr-defined]
            sel=selector, efSearch=int(self.params.get("ef_search", 96))
        )
        s, i = self._index.search(q, k, params=search)
        return s, i

    def _logical(self, seg: int, phys: np.ndarray) -> np.ndarray:
        """Logical rows of live physical rows ``phys`` of segment ``seg``."""
        at = np.flatnonzero(self._runs[:, 0] == seg)
        r = at[np.searchsorted(self._runs[at, 1], phys, side="right") - 1]
        return np.asarray(self._starts[r] + phys - self._runs[r, 1], dtype=np.int64)


def _best(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of each query's candidates, by score then row (-1 pads)."""
    scores = np.where(rows >= 0, scores, -np.inf).astype(np.float32)
    out_s = np.full((len(scores), k), -np.inf, dtype=np.float32)
    out_r = np.full((len(scores), k), -1, dtype=np.int64)
    for i in range(len(scores)):
        order = np.lexsort((rows[i], -scores[i]))
        order = order[rows[i][order] >= 0][:k]
        out_s[i, : len(order)] = scores[i][order]
        out_r[i, : len(order)] = rows[i][order]
    return out_s, out_r
