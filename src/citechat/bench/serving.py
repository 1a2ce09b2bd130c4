"""``citechat bench --full``'s ``serve`` part: a million-chunk index served from one process.

The build corpus (SQuAD dev) is copied ``copies`` times as the ``ingest`` part copies
it (370 copies: about a million chunks), indexed by ``citechat index`` with the
``hashing-384`` embedder (vectors of MiniLM's size, no model: what is measured is
the index's memory, not the model's), then ``citechat serve`` is started on it with
the heuristic (extractive) answerer (``CITECHAT_READER=off``).  Reported: the
server's peak RSS (its process tree, sampled from start until ``settle_s`` after
the first HTTP 200 and one question over HTTP, so the corpus check after start-up
counts), the seconds to the first HTTP 200, and the warm per-stage question latency
of a pipeline over the same index (ask.py's path, ``Answer.latency_ms``).

A corpus and index already in ``work`` (``serve-x{copies}.jsonl``,
``serve-index-x{copies}``) are reused: ``citechat index`` then only checks them
(``index_action`` says which).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import Settings
from .common import require_psutil
from .ingest import EMBEDDER, write_copies
from .run import _ask_over_http, _child_env, _citechat, _free_port, _tree_rss, question_latency


def serve_bench(
    source: Path,
    questions: Path,
    work: Path,
    *,
    copies: int = 370,
    n_questions: int = 200,
    settle_s: float = 180.0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Build (or reuse) the copied index and serve it; the record."""
    corpus = work / f"serve-x{copies}.jsonl"
    if not corpus.is_file():
        log(f"bench: serve: writing {copies} copies of {source}")
        write_copies(source, copies, corpus)
    settings = Settings(corpus=corpus, index=work / f"serve-index-x{copies}", embedder=EMBEDDER)
    env = {**_child_env(settings), "CITECHAT_READER": "off"}
    log(f"bench: serve: citechat index of {corpus}")
    t0 = time.perf_counter()
    out = subprocess.run(
        [*_citechat(), "index", "--json"], env=env, capture_output=True, text=True, check=True
    )
    index_s = time.perf_counter() - t0
    indexed = json.loads(out.stdout)
    record: dict[str, Any] = {
        "copies": copies,
        "embedder": EMBEDDER,
        "reader": "off",
        **{k: indexed["index"][k] for k in ("documents", "chunks", "sentences", "store")},
        "index_action": indexed["action"],
        "index_s": round(index_s, 1),
        "index_gb": round(sum(p.stat().st_size for p in settings.index.rglob("*")) / 2**30, 2),
    }
    log("bench: serve: citechat serve to the first HTTP 200")
    record.update(_serve(env, settle_s))
    log(f"bench: serve: question latency over {record['chunks']} chunks")
    latency = question_latency(replace(settings, reader="off"), questions, n_questions)
    record["latency"] = latency
    return record


def _serve(env: dict[str, str], settle_s: float) -> dict[str, Any]:
    run = serve_once(env, timeout_s=600.0, settle_s=settle_s)
    peak, peak_at_200, after, first_200 = run["peak"], run["at_200"], run["after"], run["first_200"]
    return {
        "serve_first_200_s": round(first_200, 2) if first_200 is not None else None,
        "serve_peak_rss_mb": round(peak / 2**20, 1),
        "serve_rss_at_first_200_mb": round(peak_at_200 / 2**20, 1),
        "serve_rss_after_settle_mb": round(after / 2**20, 1),
        "settle_s": settle_s,
    }


def serve_once(env: dict[str, str], *, timeout_s: float, settle_s: float) -> dict[str, Any]:
    """Start ``citechat serve``, sample its process tree's RSS until the first HTTP 200
    (or ``timeout_s``), ask one question over HTTP, keep sampling for ``settle_s``,
    stop it.  Seconds to the 200 (None without one) and RSS in bytes: the peak, the
    peak at the 200 and the size at the end."""
    psutil = require_psutil()
    port = _free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*_citechat(), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    peak = 0
    first_200 = None
    try:
        ps = psutil.Process(proc.pid)
        while time.perf_counter() - t0 < timeout_s and proc.poll() is None:
            peak = max(peak, _tree_rss(ps))
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    if resp.status == 200:
                        first_200 = time.perf_counter() - t0
                        break
            except OSError:
                time.sleep(0.1)
        peak_at_200 = peak
        if first_200 is not None:
            _ask_over_http(port)
            peak = max(peak, _tree_rss(ps))
            settled = time.perf_counter()
            while time.perf_counter() - settled < settle_s and proc.poll() is None:
                peak = max(peak, _tree_rss(ps))
                time.sleep(0.2)
        after = _tree_rss(ps) if proc.poll() is None else 0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {"first_200": first_200, "peak": peak, "at_200": peak_at_200, "after": after}
