"""The one-million-chunk benchmark: real MiniLM vectors of real text, cached.

The texts are the sentences of the SQuAD v1.1 dev, PubMedQA and seed corpora
(:class:`Sources`: a checkout's eval/datasets and corpus) plus sliding word windows
(8, 12 and 16 words, stride 1) over their paragraphs, shuffled with a fixed seed and
cut at ``n`` (default 1,000,000).  The queries are SQuAD dev questions, which are
not among the texts.  Embedding them is slow (bench/README.md), so the vectors are
written in shards under ``~/.cache/citechat/bench/`` (``CITECHAT_BENCH_CACHE``), each
shard atomically: an interrupted run resumes at the first missing shard, and the
benchmark can run on the shards embedded so far (a shuffled prefix is a fair sample
of the whole).

It does not build citechat indexes (the vectors go straight into the vector
stores of index/stores.py) and it never fakes vectors: a missing shard is reported,
not filled with random numbers.

Run the embedding in the background, from a checkout's root::

    nohup python -m citechat.bench.million embed > ~/.cache/citechat/bench/embed.log &
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import bench_env
from ..errors import CitechatError, UsageError
from ..stats import percentile
from .common import add_source_flags, emit, peak_rss_mb, run_child

VERSION = "million-v1"
SHARD = 8192
WINDOWS = (8, 12, 16)
N_QUERIES = 1000
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Sources:
    """Where the texts and queries are read: a checkout's eval/datasets (``--datasets``:
    squad-dev/ and pubmedqa-pqal/) and its seed corpus (``--seed-corpus``: *.txt)."""

    datasets: Path = Path("eval/datasets")
    seed_corpus: Path = Path("corpus")

    @property
    def corpora(self) -> tuple[Path, ...]:
        return tuple(
            self.datasets / name / "corpus.jsonl" for name in ("squad-dev", "pubmedqa-pqal")
        )

    @property
    def questions(self) -> Path:
        return self.datasets / "squad-dev" / "questions.jsonl"

    def check(self) -> None:
        """A UsageError naming the flag when a source is missing."""
        for path in (*self.corpora, self.questions):
            if not path.is_file():
                raise UsageError(
                    f"{path} does not exist; run from a citechat checkout or pass --datasets DIR "
                    "(a checkout's eval/datasets)"
                )
        if not self.seed_corpus.is_dir():
            raise UsageError(
                f"{self.seed_corpus} is not a folder; run from a citechat checkout or pass "
                "--seed-corpus DIR (a checkout's corpus)"
            )


def cache_dir(n: int = 1_000_000) -> Path:
    """The cache folder of the first ``n`` texts' vectors (``CITECHAT_BENCH_CACHE``)."""
    return bench_env().cache / f"{VERSION}-{n}"


def _paragraphs(sources: Sources) -> Iterator[str]:
    sources.check()
    for corpus in sources.corpora:
        with open(corpus, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)["text"]
    for path in sorted(sources.seed_corpus.glob("*.txt")):
        yield from (p for p in path.read_text(encoding="utf-8").split("\n\n") if p.strip())


def million_texts(n: int, sources: Sources) -> list[str]:
    """``n`` distinct real texts (sentences and word windows), deterministic.

    Raises ValueError when the sources hold fewer than ``n`` distinct texts.
    """
    import blingfire

    seen: set[str] = set()
    texts: list[str] = []

    def add(text: str) -> None:
        if text not in seen:
            seen.add(text)
            texts.append(text)

    for para in _paragraphs(sources):
        for sent in blingfire.text_to_sentences(para.replace("\n", " ")).split("\n"):
            if len(_WORD.findall(sent)) >= 3:
                add(sent.strip())
        words = _WORD.findall(para)
        for size in WINDOWS:
            for i in range(0, max(0, len(words) - size) + 1):
                add(" ".join(words[i : i + size]))
    if len(texts) < n:
        raise ValueError(f"the sources hold {len(texts)} distinct texts, fewer than {n}")
    order = np.random.default_rng(0).permutation(len(texts))[:n]
    return [texts[i] for i in order]


def bench_queries(sources: Sources, n: int = N_QUERIES) -> list[str]:
    """The first ``n`` distinct SQuAD v1.1 dev questions."""
    sources.check()
    out: list[str] = []
    with open(sources.questions, encoding="utf-8") as fh:
        for line in fh:
            q = json.loads(line)["question"].strip()
            if q and q not in out:
                out.append(q)
            if len(out) >= n:
                break
    return out


@dataclass
class VectorCache:
    """Sharded vectors of :func:`million_texts` under :func:`cache_dir`."""

    folder: Path
    n: int

    @classmethod
    def open(cls, n: int = 1_000_000) -> VectorCache:
        return cls(cache_dir(n), n)

    def shard_path(self, i: int) -> Path:
        return self.folder / f"vectors-{i:05d}.npy"

    @property
    def shards(self) -> int:
        return (self.n + SHARD - 1) // SHARD

    def done(self) -> int:
        """Shards written so far (a prefix: shards are embedded in order)."""
        i = 0
        while i < self.shards and self.shard_path(i).is_file():
            i += 1
        return i

    def available(self) -> int:
        return min(self.n, self.done() * SHARD)

    def load(self, limit: int | None = None) -> np.ndarray:
        """The first ``limit`` cached vectors (all cached ones by default), float32."""
        shapes: list[
            tuple[int, ...]
        ] = []  # from the headers: the result is allocated once, then filled
        while self.shard_path(len(shapes)).is_file():
            shapes.append(np.load(self.shard_path(len(shapes)), mmap_mode="r").shape)
        rows = sum(s[0] for s in shapes)
        rows = min(rows, self.n if limit is None else limit)
        out = np.empty((rows, shapes[0][1] if shapes else 384), dtype=np.float32)
        row = 0
        for part in self.batches(rows):
            out[row : row + len(part)] = part
            row += len(part)
        return out

    def batches(self, limit: int | None = None) -> Iterator[np.ndarray]:
        """The first ``limit`` cached vectors, one shard at a time (bounded memory)."""
        left = self.available() if limit is None else limit
        i = 0
        while left > 0 and self.shard_path(i).is_file():
            part = np.load(self.shard_path(i))[:left]
            left -= len(part)
            i += 1
            yield part.astype(np.float32, copy=False)

    def queries(self) -> np.ndarray | None:
        path = self.folder / "queries.npy"
        return np.load(path) if path.is_file() else None

    def embed(
        self, embedder: object, sources: Sources, *, worker: int = 0, workers: int = 1
    ) -> None:
        """Embed every missing shard ``i`` with ``i % workers == worker``, in order.

        A killed run resumes at its first missing shard; two workers (one per
        core) fill alternate shards, so the finished prefix grows at both rates.
        """
        texts = million_texts(self.n, sources)
        self.folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()
        meta_path = self.folder / "meta.json"
        meta = {
            "version": VERSION,
            "n": self.n,
            "texts_sha256": digest,
            "embedder": getattr(embedder, "name", "?"),
        }
        if meta_path.is_file():
            old = json.loads(meta_path.read_text())
            if old != meta:
                raise ValueError(f"{self.folder} holds vectors of other texts: {old}")
        else:
            meta_path.write_text(json.dumps(meta, indent=1))
        if worker == 0 and not (self.folder / "queries.npy").is_file():
            _save_atomic(self.folder / "queries.npy", embedder.embed(bench_queries(sources)))  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        count = 0
        for i in range(worker, self.shards, workers):
            if self.shard_path(i).is_file():
                continue
            part = texts[i * SHARD : (i + 1) * SHARD]
            _save_atomic(self.shard_path(i), embedder.embed(part).astype(np.float32))  # type: ignore[attr-defined]
            count += len(part)
            rate = count / (time.perf_counter() - t0)
            print(
                f"{time.strftime('%H:%M:%S')} shard {i + 1}/{self.shards} "
                f"({rate:.0f} texts/s, {self.done()} done)",
                file=sys.stderr,
                flush=True,
            )


def million_bench(
    *,
    n: int = 1_000_000,
    limit: int | None = None,
    min_vectors: int = 10_000,
    quantised: Sequence[str] = ("hnsw_sq8", "ivf_pq"),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """HNSW (citechat's settings above ``flat_max``) against exact search over the cached
    vectors: build time, single-query p50/p95, recall@10 and, in a child process that
    only loads the saved index and searches, its RSS.  Then the same for each of the
    ``quantised`` store types (store_types.py), side by side in ``store_types``; ``chosen``
    is the type citechat's size rule builds at this many vectors.  Uses what is cached
    so far (at most ``limit``)."""
    import tempfile

    import faiss

    from ..index.stores.faiss import FaissParams
    from .store_types import store_types_bench

    cache = VectorCache.open(n)
    have = cache.available() if limit is None else min(limit, cache.available())
    queries = cache.queries()
    if have < min_vectors or queries is None:
        return {
            "available": False,
            "why": f"{have:,} of {cache.n:,} vectors cached in {cache.folder}; run "
            "`python -m citechat.bench.million embed` first",
        }
    log(f"million: loading {have:,} cached vectors")
    vectors = cache.load(have)
    dim = vectors.shape[1]
    record: dict[str, Any] = {
        "available": True,
        "vectors": have,
        "target": cache.n,
        "texts": "SQuAD/PubMedQA/seed sentences and 8/12/16-word windows, MiniLM",
        "queries": len(queries),
    }
    log("million: exact search (ground truth)")
    flat = faiss.IndexFlatIP(dim)
    t0 = time.perf_counter()
    flat.add(vectors)
    flat_build = time.perf_counter() - t0
    _, truth = flat.search(queries, 10)
    record["flat"] = {"build_s": round(flat_build, 2), **_single_queries(flat, queries[:100])}
    del flat, vectors
    params = FaissParams()
    with tempfile.TemporaryDirectory(prefix="citechat-million-") as tmp:
        path = Path(tmp) / "hnsw.index"
        log(
            f"million: building HNSW (M={params.hnsw_m}, efConstruction="
            f"{params.ef_construction}) in a fresh process (builder RSS)"
        )
        built = _child("build", tmp, str(n), str(have), "whole")
        record["hnsw_build_s"] = built["build_s"]
        record["build_rss_mb"] = built["rss_mb"]
        log("million: the same, adding the vectors shard by shard as they are read")
        streamed = _child("build", tmp, str(n), str(have), "stream")
        streamed_index: Any = faiss.read_index(str(Path(tmp) / "hnsw-stream.index"))
        streamed_index.hnsw.efSearch = params.ef_search
        record["streamed"] = {
            **streamed,
            **_single_queries(streamed_index, queries, truth),
            "ef_search": params.ef_search,
        }
        del streamed_index
        (Path(tmp) / "hnsw-stream.index").unlink()
        index: Any = faiss.read_index(str(path))
        sweep = {}
        for ef in (32, 64, params.ef_search, 160):
            index.hnsw.efSearch = ef
            sweep[str(ef)] = _single_queries(index, queries, truth)
        record["hnsw_ef_search"] = sweep
        del index
        np.save(Path(tmp) / "queries.npy", queries)
        np.save(Path(tmp) / "truth.npy", truth)
        record["index_mb"] = round(path.stat().st_size / 2**20, 1)
        record["index_bytes_per_vector"] = round(path.stat().st_size / have, 1)
        log("million: searching in a fresh process (RSS)")
        chosen = _child("search", tmp, str(params.ef_search))
        path.unlink()
        types = store_types_bench(n, have, Path(tmp), queries, truth, types=quantised, log=log)
    record["chosen"] = {
        "type": "hnsw",
        "M": params.hnsw_m,
        "ef_construction": params.ef_construction,
        "ef_search": params.ef_search,
        "build_s": record["hnsw_build_s"],
        **chosen,
    }
    # the store types side by side; HNSW-Flat's numbers are the ones measured above
    record["store_types"] = {
        "hnsw": {
            "build_s": record["hnsw_build_s"],
            "build_rss_mb": record["build_rss_mb"],
            "params": {k: record["chosen"][k] for k in ("M", "ef_construction", "ef_search")},
            "file_mb": record["index_mb"],
            "bytes_per_vector": record["index_bytes_per_vector"],
            "knob": "ef_search",
            "sweep": record["hnsw_ef_search"],
            "search": {"knob": params.ef_search, **chosen},
        },
        **types,
    }
    # what citechat's size rule builds at this many vectors and at the target
    record["default_type"] = {"vectors": params.kind_for(have), "target": params.kind_for(n)}
    default = record["default_type"]["vectors"]
    if default in types:
        record["chosen"] = {
            "type": default,
            **types[default]["params"],
            "build_s": types[default]["build_s"],
            **types[default]["search"],
        }
    return record


def _single_queries(
    index: Any, queries: np.ndarray, truth: np.ndarray | None = None
) -> dict[str, Any]:
    """One query at a time, as citechat asks: p50/p95 ms and recall@10 against ``truth``."""
    times = []
    found = np.empty((len(queries), 10), dtype=np.int64)
    for i in range(len(queries)):
        t0 = time.perf_counter()
        _, ids = index.search(queries[i : i + 1], 10)
        times.append((time.perf_counter() - t0) * 1000)
        found[i] = ids[0]
    out: dict[str, Any] = {
        "p50_ms": round(percentile(times, 50), 3),
        "p95_ms": round(percentile(times, 95), 3),
    }
    if truth is not None:
        hits = [len(set(t) & set(f)) for t, f in zip(truth[:, :10], found, strict=True)]
        out["recall_at_10"] = round(float(np.mean(hits)) / 10, 4)
    return out


def _child(*args: str) -> dict[str, Any]:
    """Run ``python -m citechat.bench.million ARGS`` and return the JSON it prints last."""
    return dict(run_child("citechat.bench.million", *args))


def _build_child(folder: Path, n: int, have: int, how: str) -> dict[str, Any]:
    """Build citechat's HNSW store over the cached vectors and save it: build time and
    this process's peak RSS.  ``whole``: all vectors in memory, one add (as an index
    build does); ``stream``: shard by shard as they are read (``FaissStore.build_from``)."""
    import faiss

    from ..index.stores.faiss import FaissParams, FaissStore

    cache = VectorCache.open(n)
    # HNSW over full vectors at any size: the size rule would pick 8-bit codes above
    # hnsw_max, which store_types.py measures on its own
    params = FaissParams(flat_max=1, type="hnsw")
    t0 = time.perf_counter()
    if how == "whole":
        vectors = cache.load(have)
        store = FaissStore.build(vectors, vectors.shape[1], params)
        del vectors
        name = "hnsw.index"
    else:
        dim = np.load(cache.shard_path(0), mmap_mode="r").shape[1]
        store = FaissStore.build_from(cache.batches(have), have, dim, params)
        name = "hnsw-stream.index"
    build_s = time.perf_counter() - t0
    faiss.write_index(store.faiss, str(folder / name))
    return {"build_s": round(build_s, 1), "rss_mb": peak_rss_mb()}


def _search_child(folder: Path, ef_search: int) -> dict[str, Any]:
    import faiss

    t0 = time.perf_counter()
    index: Any = faiss.read_index(str(folder / "hnsw.index"))
    load_s = time.perf_counter() - t0
    index.hnsw.efSearch = ef_search
    result = _single_queries(index, np.load(folder / "queries.npy"), np.load(folder / "truth.npy"))
    return {**result, "load_s": round(load_s, 2), "rss_mb": peak_rss_mb()}


def _save_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m citechat.bench.million",
        description="Fill the million-vector cache (embed) or benchmark what it holds (bench).",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    s = sub.add_parser("embed", help="embed the missing shards (resumable; run from a checkout)")
    s.add_argument("n", type=int, nargs="?", default=1_000_000, help="texts (1,000,000)")
    s.add_argument("worker", type=int, nargs="?", default=0, help="this worker's number (0)")
    s.add_argument("workers", type=int, nargs="?", default=1, help="workers in all (1)")
    add_source_flags(s)
    s = sub.add_parser("bench", help="each store type vs exact search on the vectors cached so far")
    s.add_argument("--n", type=int, default=1_000_000, help="the cache of N texts (1,000,000)")
    s.add_argument("--limit", type=int, default=None, help="use at most this many vectors")
    # the children million_bench starts (a fresh process each, for its own peak RSS)
    s = sub.add_parser("build")
    s.add_argument("folder", type=Path)
    s.add_argument("n", type=int)
    s.add_argument("have", type=int)
    s.add_argument("how", choices=("whole", "stream"))
    s = sub.add_parser("search")
    s.add_argument("folder", type=Path)
    s.add_argument("ef_search", type=int)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m citechat.bench.million embed [N [WORKER WORKERS]]`` or ``bench``."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "build":
            return emit(_build_child(args.folder, args.n, args.have, args.how))
        if args.command == "search":
            return emit(_search_child(args.folder, args.ef_search))
        if args.command == "bench":
            log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
            return emit(million_bench(n=args.n, limit=args.limit, log=log))
        if not 0 <= args.worker < args.workers:
            raise UsageError(f"WORKER must be in 0..{args.workers - 1}, got {args.worker}")
        sources = Sources(args.datasets, args.seed_corpus)
        sources.check()  # before torch and the model load
        import torch

        torch.set_num_threads(bench_env().threads)
        from ..embedding import load_embedder

        VectorCache.open(args.n).embed(
            load_embedder(), sources, worker=args.worker, workers=args.workers
        )
    except CitechatError as exc:
        print(f"citechat: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
