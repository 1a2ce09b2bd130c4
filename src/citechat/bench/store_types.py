"""The million bench's store comparison: each FAISS store type over the same vectors.

For ``hnsw`` (full vectors), ``hnsw_sq8`` (8-bit codes) and ``ivf_pq`` (product
codes re-ranked by 8-bit codes), each over the cached real MiniLM vectors of
million.py: a fresh process builds citechat's store as an index build does
(``FaissStore.build_from``, blocks of ``STORE_BLOCK``) and saves it (build time,
builder peak RSS, file size); this process sweeps the search-time knob
(efSearch, nprobe) for recall@10 against exact search; a second fresh process
loads the saved file and answers every query one at a time at the default knob
(p50/p95, recall@10, its peak RSS).  Bytes per vector are the file's size over
the vectors, so a million-chunk size follows from a smaller sample.

It does not embed (million.py does) and it does not choose the default: the
thresholds in config.py do, from these numbers (README, "One machine, a million
chunks").
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .common import emit, peak_rss_mb, run_child

#: the quantised or graph types compared with exact search, and their knob sweeps
TYPES = ("hnsw", "hnsw_sq8", "ivf_pq")
SWEEP = {"hnsw": (32, 64, 96, 160), "hnsw_sq8": (32, 64, 96, 160), "ivf_pq": (8, 16, 32, 64)}


def store_types_bench(
    n: int,
    have: int,
    folder: Path,
    queries: np.ndarray,
    truth: np.ndarray,
    *,
    types: Sequence[str] = TYPES,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """``{type: {build_s, build_rss_mb, file_mb, bytes_per_vector, sweep, search}}`` over
    the first ``have`` vectors of the ``n``-text cache; ``folder`` is a scratch folder
    that holds ``queries.npy`` and ``truth.npy``."""
    import faiss

    from ..index.stores.faiss import FaissParams, FaissStore

    params = FaissParams()
    out: dict[str, Any] = {}
    for type_ in types:
        log(f"million: building {type_} over {have:,} vectors in a fresh process")
        built = run_child(
            "citechat.bench.store_types", "build", str(folder), str(n), str(have), type_
        )
        path = folder / f"{type_}.index"
        size = path.stat().st_size
        store = FaissStore(faiss.read_index(str(path)), type_, dict(built["params"]))
        sweep = {}
        for knob in SWEEP[type_]:
            _set_knob(store, type_, knob)
            sweep[str(knob)] = _single(store, queries, truth)
        del store
        log(f"million: {type_}, searching in a fresh process (RSS)")
        default = params.ivf_nprobe if type_ == "ivf_pq" else params.ef_search
        searched = run_child(
            "citechat.bench.store_types", "search", str(folder), type_, str(default)
        )
        out[type_] = {
            "build_s": built["build_s"],
            "build_rss_mb": built["rss_mb"],
            "params": built["params"],
            "file_mb": round(size / 2**20, 1),
            "bytes_per_vector": round(size / have, 1),
            "knob": "nprobe" if type_ == "ivf_pq" else "ef_search",
            "sweep": sweep,
            "search": {"knob": default, **searched},
        }
        path.unlink()
    return out


def _set_knob(store: Any, type_: str, knob: int) -> None:
    import faiss

    if type_ == "ivf_pq":
        faiss.extract_index_ivf(store.faiss).nprobe = knob
    else:
        store.faiss.hnsw.efSearch = knob


def _single(store: Any, queries: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    from .million import _single_queries

    return _single_queries(store, queries, truth)


def _blocks(batches: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """The cache's shards regrouped into blocks of ``size`` rows, as an index build reads
    its vectors file (stores/__init__.py ``StoreRows.blocks``)."""
    held: list[np.ndarray] = []
    count = 0
    for part in batches:
        held.append(part)
        count += len(part)
        if count >= size:
            block = np.concatenate(held)
            yield block[:size]
            held, count = [block[size:]], count - size
    if count:
        yield np.concatenate(held)


def _build_child(folder: Path, n: int, have: int, type_: str) -> dict[str, Any]:
    import faiss

    from ..index.stores import STORE_BLOCK
    from ..index.stores.faiss import FaissParams, FaissStore
    from .million import VectorCache

    cache = VectorCache.open(n)
    dim = np.load(cache.shard_path(0), mmap_mode="r").shape[1]
    t0 = time.perf_counter()
    store = FaissStore.build_from(
        _blocks(cache.batches(have), STORE_BLOCK), have, dim, FaissParams(type=type_)
    )
    build_s = time.perf_counter() - t0
    faiss.write_index(store.faiss, str(folder / f"{type_}.index"))
    return {"build_s": round(build_s, 1), "rss_mb": peak_rss_mb(), "params": store.params}


def _search_child(folder: Path, type_: str, knob: int) -> dict[str, Any]:
    import faiss

    from ..index.stores.faiss import FaissStore

    t0 = time.perf_counter()
    store = FaissStore(faiss.read_index(str(folder / f"{type_}.index")), type_, {})
    load_s = time.perf_counter() - t0
    _set_knob(store, type_, knob)
    result = _single(store, np.load(folder / "queries.npy"), np.load(folder / "truth.npy"))
    return {**result, "load_s": round(load_s, 2), "rss_mb": peak_rss_mb()}


def main(argv: Sequence[str] | None = None) -> int:
    """The children :func:`store_types_bench` starts (a fresh process each)."""
    p = argparse.ArgumentParser(prog="python -m citechat.bench.store_types")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("build")
    s.add_argument("folder", type=Path)
    s.add_argument("n", type=int)
    s.add_argument("have", type=int)
    s.add_argument("type", choices=TYPES)
    s = sub.add_parser("search")
    s.add_argument("folder", type=Path)
    s.add_argument("type", choices=TYPES)
    s.add_argument("knob", type=int)
    args = p.parse_args(argv)
    if args.command == "build":
        return emit(_build_child(args.folder, args.n, args.have, args.type))
    return emit(_search_child(args.folder, args.type, args.knob))


if __name__ == "__main__":
    sys.exit(main())
