"""The FAISS store: a FAISS structure saved in each index generation (``faiss.index``).

The type is chosen by size (:meth:`FaissParams.kind_for`): exact inner-product
search (``flat``, ``IndexFlatIP``) up to ``Settings.flat_max`` vectors, an HNSW
graph over the full vectors (``hnsw``, ``IndexHNSWFlat``) up to
``Settings.hnsw_max``, and an HNSW graph over 8-bit scalar-quantised vectors
(``hnsw_sq8``, ``IndexHNSWSQ``: a quarter of the vector memory) above it.
``ivf_pq`` (an inverted file of product-quantised codes, re-ranked by 8-bit
codes) is the smallest; it is only built when ``Settings.faiss_type`` names it.
The choice and its parameters go into the manifest; a manifest without them
(older indexes) is flat.  An update extends an HNSW or IVF store, removed rows
left as tombstones until they pass :data:`MAX_TOMBSTONES`; a flat store is
rebuilt (a copy is cheap).  Quantised types are trained on the first
:func:`train_size` vectors (the quantiser's ranges, the IVF centroids: FAISS's
fixed seeds, so a build is repeatable); vectors added later are coded with
that training.  Batches of an HNSW store are inserted block by block, which
gives a slightly worse graph than one insert of all of them.  README, "One
machine, a million chunks", has the speed, recall and memory of each.
"""

from __future__ import annotations

import functools
import itertools
import math
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
#: the store types, smallest memory last; the ones an update can extend
TYPES = ("flat", "hnsw", "hnsw_sq8", "ivf_pq")
INCREMENTAL = ("hnsw", "hnsw_sq8", "ivf_pq")
#: an ivf_pq search re-ranks this many times k candidates by their 8-bit codes
REFINE_K_FACTOR = 4


@dataclass(frozen=True)
class FaissParams:
    """How a FAISS store is built; validated here so a bad setting names itself."""

    flat_max: int = 100_000
    hnsw_max: int = 500_000
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 96
    #: a type for every size ("" : by size, see :meth:`kind_for`)
    type: str = ""
    ivf_nprobe: int = 32
    pq_m: int = 48

    def __post_init__(self) -> None:
        counts = ("flat_max", "hnsw_max", "hnsw_m", "ef_construction", "ef_search")
        for name in (*counts, "ivf_nprobe", "pq_m"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.type and self.type not in TYPES:
            raise ConfigError(
                f"faiss_type must be one of {', '.join(TYPES)} (or empty: by size), "
                f"got {self.type!r}"
            )

    def kind_for(self, n: int) -> str:
        """``flat`` up to ``flat_max`` vectors, ``hnsw`` up to ``hnsw_max``, ``hnsw_sq8``
        above; ``type`` when set.

        >>> p = FaissParams(flat_max=10, hnsw_max=20)
        >>> p.kind_for(10), p.kind_for(11), p.kind_for(20), p.kind_for(21)
        ('flat', 'hnsw', 'hnsw', 'hnsw_sq8')
        """
        if self.type:
            return self.type
        if n <= self.flat_max:
            return "flat"
        return "hnsw" if n <= self.hnsw_max else "hnsw_sq8"

    @classmethod
    def of(cls, settings: Settings) -> FaissParams:
        return cls(
            flat_max=settings.flat_max,
            hnsw_max=settings.hnsw_max,
            hnsw_m=settings.hnsw_m,
            ef_construction=settings.hnsw_ef_construction,
            ef_search=settings.hnsw_ef_search,
            type=settings.faiss_type,
            ivf_nprobe=settings.ivf_nprobe,
            pq_m=settings.pq_m,
        )


def ivf_lists(n: int) -> int:
    """IVF lists for ``n`` vectors: about 4 sqrt(n), a power of two, at most ``n``
    (k-means needs a vector a list).

    >>> ivf_lists(150_000), ivf_lists(1_000_000), ivf_lists(10), ivf_lists(3)
    (2048, 4096, 10, 3)
    """
    return min(1 << max(3, round(math.log2(4 * math.sqrt(max(n, 1))))), max(n, 1))


def train_size(type_: str, n: int) -> int:
    """How many of the first vectors train a quantised store (0: no training).

    An 8-bit quantiser learns each dimension's range (a sample is plenty); IVF's
    k-means wants about 40 vectors per list.

    >>> train_size("flat", 10**6), train_size("hnsw_sq8", 10**6), train_size("ivf_pq", 10**6)
    (0, 65536, 163840)
    """
    if type_ == "hnsw_sq8":
        return min(n, 65_536)
    if type_ == "ivf_pq":
        return min(n, max(65_536, 40 * ivf_lists(n)))
    return 0


class FaissStore:
    """A FAISS index over chunk vectors; HNSW ones may hold removed rows as tombstones.

    ``labels[i]`` is the chunk row of FAISS id ``i`` (``-1``: removed), or None
    when FAISS ids are the rows (always for flat stores).
    """

    kind: str = "faiss"

    def __init__(self, index: Any, type_: str, params: dict[str, Any], labels: Any = None) -> None:
        self.faiss = index
        self.type = type_
        self.params = params
        self.labels: np.ndarray | None = labels
        if type_ in ("hnsw", "hnsw_sq8"):
            index.hnsw.efSearch = params.get("ef_search", FaissParams.ef_search)
        elif type_ == "ivf_pq":
            import faiss

            faiss.extract_index_ivf(index).nprobe = params.get("nprobe", FaissParams.ivf_nprobe)
            index.k_factor = params.get("k_factor", REFINE_K_FACTOR)

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
        type_ = params.kind_for(n)
        index, used = _new_index(type_, n, dim, params)
        batches = iter(batches)
        want = train_size(type_, n)
        if want:
            # the first vectors train the quantiser, then are added like the rest
            head: list[np.ndarray] = []
            held = 0
            for batch in batches:
                head.append(np.ascontiguousarray(batch, dtype=np.float32))
                held += len(batch)
                if held >= want:
                    break
            first = np.concatenate(head) if head else np.zeros((0, dim), dtype=np.float32)
            del head
            # a one-vector store: k-means of two centroids wants two points
            index.train(first[:want] if want > 1 else np.tile(first[:1], (2, 1)))
            batches = itertools.chain([first], batches)
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
        the rows added.  Flat stores are rebuilt (a copy, cheap); an HNSW or IVF
        store whose type the size rule still picks gets the new vectors added
        (coded with its training) and removed rows tombstoned, until tombstones
        pass :data:`MAX_TOMBSTONES`.  A rebuild
        calls ``rebuild`` when given (a caller that streams the vectors from disk).
        ``in_place`` extends this store's graph instead of a copy (a caller that owns
        it: the copy would double an HNSW store's memory).
        """
        if rebuild is None:
            rebuild = functools.partial(FaissStore.build, vectors, vectors.shape[1], params)
        if (
            self.type not in INCREMENTAL
            or params.kind_for(len(vectors)) != self.type
            or not self.faiss.is_trained  # built empty: nothing trained its quantiser
        ):
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
        return FaissStore(index, self.type, self.params, None if same else labels)

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

    @staticmethod
    def peek(gen: Path, entry: dict[str, Any]) -> FaissHeader | None:
        """The vector count and dimension of the saved ``faiss.index`` from its header,
        without reading the structure (657 MB of HNSW at a million chunks); None for
        a layered store (whose load reads no graph)."""
        if entry.get("layered") is not None:
            return None
        with open(gen / "faiss.index", "rb") as fh:
            head = fh.read(16)
        if len(head) < 16:
            raise ValueError(f"faiss.index has {len(head)} bytes, not a FAISS header")
        # every FAISS index starts: a four-byte type code, d (int32), ntotal (int64)
        dim = int(np.frombuffer(head, "<i4", 1, 4)[0])
        count = int(np.frombuffer(head, "<i8", 1, 8)[0])
        if entry.get("tombstones") is not None and (gen / "faiss_labels.npy").exists():
            labels = np.load(gen / "faiss_labels.npy", mmap_mode="r")
            if len(labels) != count:
                raise ValueError(f"{len(labels)} FAISS labels for {count} vectors")
            count = int((labels >= 0).sum())
        return FaissHeader(count, dim)

    @classmethod
    def load(
        cls, gen: Path, entry: dict[str, Any], rows: StoreRows, settings: Settings
    ) -> FaissStore:
        """The store saved in ``gen``; the settings' ``hnsw_ef_search`` and
        ``ivf_nprobe`` (search-time knobs) override the ones it was built with.  An
        update's store over segmented vectors is a :class:`~.layered.LayeredStore`."""
        import faiss

        if entry.get("layered") is not None:
            from .layered import LayeredStore

            return LayeredStore.load(gen, entry, rows, settings)  # type: ignore[return-value]

        index = faiss.read_index(str(gen / "faiss.index"))
        type_ = str(entry.get("type", "flat"))
        labels = None
        if entry.get("tombstones") is not None and (gen / "faiss_labels.npy").exists():
            labels = np.load(gen / "faiss_labels.npy")
        params = dict(entry.get("params") or {})
        if type_ in ("hnsw", "hnsw_sq8"):
            params["ef_search"] = settings.hnsw_ef_search
        elif type_ == "ivf_pq":
            params["nprobe"] = settings.ivf_nprobe
        return cls(index, type_, params, labels)


@dataclass(frozen=True, slots=True)
class FaissHeader:
    """What a saved FAISS file's header says: enough for the load-time check."""

    count: int
    dim: int

    def inconsistency(self, chunks: int, dim: int) -> str | None:
        if self.count != chunks or self.dim != dim:
            return f"the FAISS index holds {self.count} vectors for {chunks} chunks"
        return None


def _new_index(type_: str, n: int, dim: int, params: FaissParams) -> tuple[Any, dict[str, Any]]:
    """An empty FAISS index of ``type_`` for ``n`` vectors and the parameters it records."""
    import faiss

    ip = faiss.METRIC_INNER_PRODUCT
    if type_ == "flat":
        return faiss.IndexFlatIP(dim), {}
    hnsw = {
        "M": params.hnsw_m,
        "ef_construction": params.ef_construction,
        "ef_search": params.ef_search,
    }
    index: Any
    if type_ == "hnsw":
        index = faiss.IndexHNSWFlat(dim, params.hnsw_m, ip)
    elif type_ == "hnsw_sq8":
        sq8: Any = faiss.ScalarQuantizer.QT_8bit
        index = faiss.IndexHNSWSQ(dim, sq8, params.hnsw_m, ip)
        hnsw["train"] = train_size(type_, n)
    else:
        # the most sub-quantisers up to pq_m that split the dimension evenly (PQ needs it)
        pq_m = max(m for m in range(1, min(params.pq_m, dim) + 1) if dim % m == 0)
        nlist = ivf_lists(n)
        # 8 bits a code (256 centroids a sub-space) unless too few vectors train them
        nbits = max(1, min(8, int(math.log2(max(train_size(type_, n), 2)))))
        ivf: Any = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, pq_m, nbits, ip)
        refine: Any = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, ip)
        index = faiss.IndexRefine(ivf, refine)
        # IndexRefine does not own the parts it wraps: keep them alive with it
        index.own_fields = index.own_refine_index = True
        ivf.this.disown()
        refine.this.disown()
        index.k_factor = REFINE_K_FACTOR
        return index, {
            "nlist": nlist,
            "pq_m": pq_m,
            "nbits": nbits,
            "nprobe": params.ivf_nprobe,
            "k_factor": REFINE_K_FACTOR,
            "refine": "sq8",
            "train": train_size(type_, n),
        }
    index.hnsw.efConstruction = params.ef_construction
    return index, hnsw


def _remap(labels: np.ndarray, old_to_new: np.ndarray) -> np.ndarray:
    return np.where(labels >= 0, old_to_new[np.maximum(labels, 0)], -1).astype(np.int64)
