"""``citechat bench``'s run: how fast citechat is, measured side by side, as one record.

One run measures, in this order (each part can be skipped):

* ``build``: a full index build of a corpus (``make bench``: SQuAD v1.1 dev) against
  its floor, a bare ``SentenceTransformer.encode`` of exactly the texts the index
  embeds (chunks and sentences) with the same model and batch size, and against
  encoding the chunks only; then one changed document, incrementally
  (``incremental``).  Run in a child process, whose peak RSS is the index's.
* ``latency``: warm per-stage question latency (embed, dense, BM25, fuse,
  rerank, answer, verify, total), p50/p95, on the seed corpus and on the build
  corpus, from ``Answer.latency_ms``.
* ``cold``: ``citechat --help`` and ``citechat serve`` to the first HTTP 200,
  with the server's peak RSS.
* ``peer``: LangChain's FAISS retriever (a checkout's eval/peers/langchain_faiss.py,
  ``peer_script``) on the same questions, as a retrieval-latency ratio, when it is
  installed.
* ``ingest``: peak RSS of index builds as the corpus grows, the streamed build
  against the in-memory one (ingest.py): the build corpus copied 1 and 8
  times (1 and 32 with ``--full``).
* ``million`` (``--full``): HNSW vs exact search over a million real MiniLM
  vectors (million.py).
* ``serve`` (``--full``): ``citechat serve`` of a million-chunk index (the build
  corpus copied 370 times, ``hashing-384``): peak RSS, first HTTP 200, question
  latency (serving.py).

Machines are noisy, so every comparison is also given as a ratio of two
numbers measured in the same run.  Timings are reported, never asserted.
The inputs are paths of a checkout (``eval/datasets``, ``corpus``), given as
:class:`BenchConfig` fields (``citechat bench --datasets``, ``--seed-corpus``,
``--peer-script``); a missing one is a UsageError naming its flag.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import embedding  # noqa: F401 - sets OMP_WAIT_POLICY before anything loads torch
from ..config import Settings
from ..errors import UsageError
from ..stats import percentiles
from .common import emit, peak_rss_mb, require_psutil, run_child

PARTS = ("build", "latency", "cold", "peer", "ingest", "million", "serve")
#: a checkout's benchmark sets and seed corpus, relative to its root (``make bench``)
DATASETS = Path("eval/datasets")
SEED_CORPUS = Path("corpus")


@dataclass(frozen=True)
class BenchConfig:
    """What to measure and on what; the paths are relative to a checkout's root, as
    ``make bench`` runs it (:meth:`from_checkout` fills them from ``citechat bench``'s
    flags)."""

    settings: Settings
    out: Path | None = Path("bench/results.jsonl")
    build_corpus: Path = DATASETS / "squad-dev" / "corpus.jsonl"
    build_questions: Path = DATASETS / "squad-dev" / "questions_v1.1_first1000.jsonl"
    seed_corpus: Path = SEED_CORPUS
    seed_questions: Path = DATASETS / "seed" / "questions.jsonl"
    peer_script: Path = Path("eval/peers/langchain_faiss.py")
    questions: int = 200
    skip: frozenset[str] = frozenset()
    full: bool = False
    work: Path | None = None
    log: Callable[[str], None] = field(default=lambda s: print(s, file=sys.stderr, flush=True))

    def __post_init__(self) -> None:
        unknown = set(self.skip) - set(PARTS)
        if unknown:
            raise UsageError(f"unknown bench parts {sorted(unknown)}; known: {', '.join(PARTS)}")
        if self.questions < 1:
            raise UsageError(f"--questions must be at least 1, got {self.questions}")

    @classmethod
    def from_checkout(
        cls,
        settings: Settings,
        *,
        datasets: Path = DATASETS,
        seed_corpus: Path = SEED_CORPUS,
        **fields: Any,
    ) -> BenchConfig:
        """The benchmark sets under ``datasets`` (a checkout's eval/datasets): SQuAD v1.1
        dev as the build corpus and its 1,000-question subset, the seed questions over
        ``seed_corpus``."""
        return cls(
            settings,
            build_corpus=datasets / "squad-dev" / "corpus.jsonl",
            build_questions=datasets / "squad-dev" / "questions_v1.1_first1000.jsonl",
            seed_corpus=seed_corpus,
            seed_questions=datasets / "seed" / "questions.jsonl",
            **fields,
        )

    def check_inputs(self) -> None:
        """A UsageError naming the flag when a path a part to run reads is missing."""
        used = {
            "build": ("build_corpus",),
            "latency": ("seed_corpus", "seed_questions", "build_corpus", "build_questions"),
            "cold": ("seed_corpus",),
            "ingest": ("build_corpus",),
            "serve": ("build_corpus", "build_questions"),
        }
        for part, names in used.items():
            if part in self.skip:
                continue
            for name in names:
                path = getattr(self, name)
                if not path.exists():
                    flag = "--seed-corpus DIR" if name == "seed_corpus" else "--datasets DIR"
                    raise UsageError(
                        f"{path} does not exist (the {part} part reads it); run from a "
                        f"citechat checkout, pass {flag}, or --skip {part}"
                    )


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Measure, append one record to ``config.out`` (when set) and return it.

    psutil (the ``[bench]`` extra) and every input are checked before any work.
    """
    require_psutil()
    config.check_inputs()
    with tempfile.TemporaryDirectory(prefix="citechat-bench-") as tmp:
        work = config.work or Path(tmp)
        record: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "mode": "full" if config.full else "quick",
            "machine": machine_info(),
            "git": _git_commit(),
            "embedder": config.settings.embedder,
        }
        if "build" not in config.skip:
            config.log(f"bench: building an index of {config.build_corpus} (child process)")
            record["build"], record["incremental"] = _child(
                "build", config.settings, corpus=config.build_corpus, index=work / "build"
            )
            record.setdefault("rss_mb", {})["index"] = record["build"].pop("peak_rss_mb")
        if "latency" not in config.skip:
            record["latency"] = {}
            sets = [("seed", config.seed_corpus, config.seed_questions, work / "seed")]
            sets.append(("build", config.build_corpus, config.build_questions, work / "build"))
            for name, corpus, questions, index in sets:
                config.log(f"bench: question latency on {corpus}")
                settings = replace(config.settings, corpus=corpus, index=index, reader="off")
                record["latency"][name] = question_latency(settings, questions, config.questions)
            # the same seed questions with the reader model on, as the settings name it
            # (the bundled one by default; CITECHAT_READER=off leaves this part out)
            if config.settings.reader != "off":
                config.log(f"bench: question latency on {config.seed_corpus} with the reader")
                settings = replace(config.settings, corpus=config.seed_corpus, index=work / "seed")
                record["latency"]["seed_reader"] = question_latency(
                    settings, config.seed_questions, config.questions
                )
        if "cold" not in config.skip:
            config.log("bench: cold start of citechat --help and citechat serve")
            seed = replace(config.settings, corpus=config.seed_corpus, index=work / "seed")
            record["cold_start"] = cold_start(seed)
            record.setdefault("rss_mb", {})["serve"] = record["cold_start"].pop("peak_rss_mb")
        if "peer" not in config.skip:
            config.log("bench: the LangChain FAISS peer")
            record["peer"] = peer_latency(config, record.get("latency", {}).get("build"), work)
        if "ingest" not in config.skip:
            from .ingest import ingest_bench

            copies = (1, 32) if config.full else (1, 8)
            record["ingest"] = ingest_bench(
                config.build_corpus, work, copies=copies, log=config.log
            )
        if config.full and "million" not in config.skip:
            from .million import million_bench

            config.log("bench: a million real-text vectors, HNSW vs exact")
            record["million"] = million_bench(log=config.log)
        if config.full and "serve" not in config.skip:
            from .serving import serve_bench

            record["serve"] = serve_bench(
                config.build_corpus, config.build_questions, work, log=config.log
            )
        record["targets"] = targets(record)
    if config.out is not None:
        config.out.parent.mkdir(parents=True, exist_ok=True)
        with open(config.out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return record


# -- parts ----------------------------------------------------------------------------


def build_and_update(settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """The floor, a full build and a one-document update of ``settings.corpus``.

    Runs in the child process (:func:`_child`); the model is loaded and warm first.
    """
    from ..embedding import load_embedder
    from ..index import sync_index

    embedder = load_embedder(settings.embedder)
    embedder.embed(["warm up the model"] * 8)
    t0, c0 = time.perf_counter(), time.process_time()
    result = sync_index(settings, embedder=embedder, rebuild=True)
    build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    build_rss = peak_rss_mb()
    index = result.index
    chunk_texts = list(dict.fromkeys(c.embedding_text() for c in index.chunks))
    sent_texts = [index.documents[d].text[a:b] for d, a, b in index.sentence_keys]
    texts = list(dict.fromkeys(chunk_texts + sent_texts))
    floor_chunks_s, floor_chunks_cpu = _floor(embedder, chunk_texts)
    floor_s, floor_cpu = _floor(embedder, texts)
    build = {
        "corpus": str(settings.corpus),
        "documents": len(index.documents),
        "chunks": len(index.chunks),
        "sentences": len(index.sentence_keys),
        "texts_embedded": len(texts),
        "store": index.store.describe()["type"],
        "index_s": round(build_s, 3),
        "floor_s": round(floor_s, 3),
        "floor_chunks_only_s": round(floor_chunks_s, 3),
        "ratio_vs_floor": round(build_s / floor_s, 3),
        "ratio_vs_chunks_only": round(build_s / floor_chunks_s, 3),
        # CPU seconds move less than wall time when other work shares the cores
        "index_cpu_s": round(build_cpu, 2),
        "floor_cpu_s": round(floor_cpu, 2),
        "floor_chunks_only_cpu_s": round(floor_chunks_cpu, 2),
        "cpu_ratio_vs_floor": round(build_cpu / floor_cpu, 3),
        "cpu_ratio_vs_chunks_only": round(build_cpu / floor_chunks_cpu, 3),
        "batch_size": getattr(embedder, "batch_size", None),
    }
    incremental = _one_document_update(settings, embedder, build_s)
    # the index's own peak is the build's; the floor's batches of long texts come after
    build["peak_rss_mb"] = build_rss
    build["child_peak_rss_mb"] = peak_rss_mb()
    return build, incremental


def _one_document_update(settings: Settings, embedder: Any, build_s: float) -> dict[str, Any]:
    """Change one document of (a copy of) the corpus and time the update."""
    import shutil

    from ..index import sync_index

    src = settings.corpus
    copy = settings.index.parent / f"changed-{src.name}"
    added = " One sentence was added to this document for the benchmark."
    if src.is_dir():
        shutil.copytree(src, copy, dirs_exist_ok=True)
        files = sorted(p for p in copy.rglob("*") if p.suffix in (".txt", ".md"))
        target = files[len(files) // 2]
        target.write_text(target.read_text(encoding="utf-8") + added + "\n", encoding="utf-8")
        documents = len(files)
    else:
        lines = [line for line in src.read_text(encoding="utf-8").splitlines() if line.strip()]
        row = json.loads(lines[len(lines) // 2])
        row["text"] += added
        lines[len(lines) // 2] = json.dumps(row, ensure_ascii=False)
        copy.write_text("\n".join(lines) + "\n", encoding="utf-8")
        documents = len(lines)
    t0 = time.perf_counter()
    result = sync_index(replace(settings, corpus=copy), embedder=embedder)
    update_s = time.perf_counter() - t0
    report = result.report
    return {
        "documents": documents,
        "docs_changed": report.docs_changed if report else 0,
        "docs_added": report.docs_added if report else 0,
        "texts_embedded": report.texts_embedded if report else 0,
        "texts_reused": report.texts_reused if report else 0,
        "update_s": round(update_s, 3),
        "full_build_s": round(build_s, 3),
        "ratio": round(update_s / build_s, 4),
        "action": result.action,
    }


def _floor(embedder: Any, texts: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of a bare ``SentenceTransformer.encode`` of ``texts`` (one call)."""
    from ..embedding import SentenceTransformerEmbedder

    t0, c0 = time.perf_counter(), time.process_time()
    if isinstance(embedder, SentenceTransformerEmbedder):
        model: Any = embedder._load()
        model.encode(texts, batch_size=embedder.batch_size, normalize_embeddings=True)
    else:
        embedder.embed(texts)
    return time.perf_counter() - t0, time.process_time() - c0


def question_latency(settings: Settings, questions: Path, limit: int) -> dict[str, Any]:
    """Warm per-stage latency of the pipeline over the first ``limit`` questions; with
    the reader on, the reader's own load error (not a silent fallback) is raised."""
    from ..pipeline import Pipeline

    pipe = Pipeline.load(settings)
    notice = pipe.reader().notice
    if notice:
        raise UsageError(f"{notice} Set CITECHAT_READER=off to bench without it.")
    rows = [json.loads(line) for line in questions.read_text(encoding="utf-8").splitlines() if line]
    asked = [r["question"] for r in rows if r.get("question")][: limit + 5]
    for q in asked[:5]:  # warm-up: model, BM25 and caches
        pipe.ask(q)
    stages: dict[str, list[float]] = {}
    for q in asked[5:]:
        for stage, ms in pipe.ask(q).latency_ms.items():
            stages.setdefault(stage, []).append(ms)
    return {
        "corpus": str(settings.corpus),
        "chunks": len(pipe.index.chunks),
        "questions": len(asked[5:]),
        "stages_ms": {s: percentiles(v) for s, v in sorted(stages.items())},
    }


def cold_start(settings: Settings, *, timeout_s: float = 120.0) -> dict[str, Any]:
    """``citechat --help`` (median of 3) and ``citechat serve`` to the first HTTP 200."""
    from .serving import serve_once  # serving.py imports this module

    require_psutil()
    env = _child_env(settings)
    helps = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([*_citechat(), "--help"], env=env, capture_output=True, check=True)
        helps.append(time.perf_counter() - t0)
    # the index is built beforehand: cold start is loading, not embedding
    subprocess.run([*_citechat(), "index"], env=env, capture_output=True, check=True)
    run = serve_once(env, timeout_s=timeout_s, settle_s=0.0)
    first_200, peak = run["first_200"], run["peak"]
    return {
        "help_s": round(statistics.median(helps), 3),
        "serve_first_200_s": round(first_200, 2) if first_200 is not None else None,
        "peak_rss_mb": round(peak / 2**20, 1),
    }


def _ask_over_http(port: int) -> None:
    try:
        from gradio_client import Client

        Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
            "Who did Ed Balls appoint?", 5, "[]", api_name="/ask"
        )
    except Exception:  # the API shape belongs to app.py; RSS after start-up still counts
        pass


def _tree_rss(ps: Any) -> int:
    total = 0
    for p in [ps, *ps.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except Exception:  # a child that just exited
            continue
    return int(total)


def peer_latency(config: BenchConfig, ours: dict[str, Any] | None, work: Path) -> dict[str, Any]:
    """LangChain FAISS retrieval latency on the build questions, as a ratio to ours."""
    script = config.peer_script
    if not script.is_file():
        return {"available": False, "why": f"{script} does not exist (--peer-script)"}
    try:
        import langchain_community  # noqa: F401
    except ImportError:
        return {"available": False, "why": "the peers extra is not installed (make eval-peers)"}
    out = work / "peer.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            str(script),
            "--corpus",
            str(config.build_corpus),
            "--questions",
            str(config.build_questions),
            "--out",
            str(out),
            "--limit",
            str(config.questions + 5),
        ],
        env=_child_env(config.settings),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not out.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"available": False, "why": f"the peer script failed: {tail[0][:300]}"}
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line]
    theirs = percentiles([r["latency_ms"]["retrieve"] for r in rows[5:]])
    meta_path = out.with_name(out.stem + ".meta.json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    record: dict[str, Any] = {"available": True, "retrieve_ms": theirs, "meta": meta}
    if ours:
        mine = ours["stages_ms"].get("retrieve")
        total = ours["stages_ms"].get("total")
        if mine and theirs["p50"]:
            record["ratio_retrieve_p50"] = round(mine["p50"] / theirs["p50"], 3)
        if total and theirs["p50"]:
            record["ratio_total_p50"] = round(total["p50"] / theirs["p50"], 3)
    return record


def targets(record: dict[str, Any]) -> dict[str, Any]:
    """Each issue-6 target: the measured value and whether it is met (None: not measured)."""

    def get(*path: str) -> Any:
        node: Any = record
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node

    le, ge = "<=", ">="
    checks: list[tuple[str, Any, str, float]] = [
        ("build ratio vs floor", get("build", "ratio_vs_floor"), le, 1.2),
        ("seed p50 ms", get("latency", "seed", "stages_ms", "total", "p50"), le, 30),
        (
            "seed with reader p50 ms",
            get("latency", "seed_reader", "stages_ms", "total", "p50"),
            le,
            250,
        ),
        (
            "seed with reader p95 ms",
            get("latency", "seed_reader", "stages_ms", "total", "p95"),
            le,
            500,
        ),
        ("seed p95 ms", get("latency", "seed", "stages_ms", "total", "p95"), le, 100),
        ("build-corpus p50 ms", get("latency", "build", "stages_ms", "total", "p50"), le, 30),
        ("build-corpus p95 ms", get("latency", "build", "stages_ms", "total", "p95"), le, 100),
        ("serve to first 200 s", get("cold_start", "serve_first_200_s"), le, 10),
        ("--help s", get("cold_start", "help_s"), le, 0.5),
        ("incremental ratio", get("incremental", "ratio"), le, 0.02),
        ("index peak RSS MB", get("rss_mb", "index"), le, 1536),
        ("serve peak RSS MB", get("rss_mb", "serve"), le, 1536),
        ("1M search p50 ms", get("million", "chosen", "p50_ms"), le, 10),
        ("1M recall@10", get("million", "chosen", "recall_at_10"), ge, 0.95),
        ("1M search RSS MB", get("million", "chosen", "rss_mb"), le, 2048),
        ("1M-chunk serve peak RSS MB", get("serve", "serve_peak_rss_mb"), le, 2048),
        ("1M-chunk serve first 200 s", get("serve", "serve_first_200_s"), le, 15),
        ("1M-chunk p50 ms", get("serve", "latency", "stages_ms", "total", "p50"), le, 60),
    ]
    out: dict[str, Any] = {}
    for name, value, op, limit in checks:
        met = None if value is None else (value <= limit if op == le else value >= limit)
        out[f"{name} {op} {limit:g}"] = {"value": value, "met": met}
    return out


def summary(record: dict[str, Any]) -> str:
    """A few lines for the terminal: each target with its measured value."""
    lines = [
        f"citechat bench ({record['mode']}, {record['machine'].get('cpu')}, "
        f"{record['machine'].get('cpus')} cores, load {record['machine'].get('load_avg_1m')})"
    ]
    for stage_set, data in record.get("latency", {}).items():
        stages = ", ".join(f"{k} {v['p50']:g}/{v['p95']:g}" for k, v in data["stages_ms"].items())
        lines.append(f"latency p50/p95 ms on {stage_set} ({data['chunks']} chunks): {stages}")
    for name, check in record.get("targets", {}).items():
        mark = {True: "met", False: "NOT met", None: "not measured"}[check["met"]]
        lines.append(f"  {name:<32} {check['value']!s:>10}  {mark}")
    return "\n".join(lines)


# -- helpers --------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """The machine a record was measured on: CPU, cores, RAM, load, library versions."""
    import numpy

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu": _cpu_model(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "numpy": numpy.__version__,
        "ram_gb": round(require_psutil().virtual_memory().total / 2**30, 1),
    }
    for name in ("torch", "faiss", "sentence_transformers"):
        try:
            info[name] = __import__(name).__version__
        except Exception:  # not installed or no version: leave it out
            continue
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _citechat() -> list[str]:
    return [sys.executable, "-m", "citechat"]


def _child_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "CITECHAT_CORPUS": str(settings.corpus),
        "CITECHAT_INDEX": str(settings.index),
        "CITECHAT_EMBEDDER": settings.embedder,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }


def _child(part: str, settings: Settings, *, corpus: Path, index: Path) -> Any:
    """Run ``part`` in a fresh process (so its peak RSS is its own); its JSON result."""
    settings = replace(settings, corpus=corpus, index=index)
    return run_child("citechat.bench.run", part, env=_child_env(settings))


def main(argv: Sequence[str] | None = None) -> int:
    """The child side of :func:`_child`: ``python -m citechat.bench.run build``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["build"]:
        print("usage: python -m citechat.bench.run build  (run by citechat bench)", file=sys.stderr)
        return 2
    return emit(build_and_update(Settings.load()))


if __name__ == "__main__":
    sys.exit(main())
