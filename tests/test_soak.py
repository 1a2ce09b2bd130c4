"""Soak test: one served web chat, 10 concurrent API sessions, 200 questions.

Every answer must come back without an error, every citation must quote its
document exactly, and memory must not run away.  RSS at the start and end (and
latencies, for information only) go to stdout and ``test-artifacts/soak.json``.
The hashing embedder keeps it fast; the code paths are the real ones.
"""

from __future__ import annotations

import gc
import json
import shutil
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from citechat.config import Settings
from citechat.pipeline import Pipeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "corpus"
QUESTIONS = ROOT / "eval" / "datasets" / "seed" / "questions.jsonl"
ARTIFACT = ROOT / "test-artifacts" / "soak.json"
SESSIONS = 10
TOTAL = 200
#: generous: the point is to catch a leak per question, not to measure
MAX_RSS_GROWTH_MB = 300

ODD = [
    "Who did Ed Balls appoint?" + " really" * 500,  # over the 2,000-character limit
    "Who\x00 did Ed\x1b[31m Balls appoint?\u200f",
    "👩‍💼 Who did Ed Balls appoint? 新主任 المدير",
    "[1] [0] [99] Sharon Shoesmith?",
]


def rss_mb() -> float:
    """Resident memory of this process (server and clients) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    import resource  # not Linux: peak instead of current

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_soak_200_questions_from_10_sessions(tmp_path: Path, serve_chat: Any) -> None:
    from gradio_client import Client

    shutil.copytree(SEED, tmp_path / "corpus")
    settings = Settings(
        corpus=tmp_path / "corpus", index=tmp_path / "index", embedder="hashing-256"
    )
    pipe = Pipeline.load(settings)
    texts = {d.doc_id: d.text for d in pipe.index.documents.values()}
    seed = [json.loads(line)["question"] for line in QUESTIONS.read_text().splitlines() if line]
    pool = seed + ODD
    work = [pool[i % len(pool)] for i in range(TOTAL)]

    errors: list[str] = []
    latencies: list[float] = []
    lock = threading.Lock()
    with serve_chat(pipe) as url:
        Client(url, verbose=False).predict(seed[0], 5, "[]", api_name="/ask")  # warm up
        gc.collect()
        rss_start = rss_mb()
        t0 = time.perf_counter()

        def session(number: int) -> int:
            client = Client(url, verbose=False)
            turns: list[list[str]] = []
            done = 0
            for question in work[number::SESSIONS]:
                started = time.perf_counter()
                try:
                    data: dict[str, Any] = client.predict(
                        question, 5, json.dumps(turns[-4:]), api_name="/ask"
                    )
                except Exception as exc:  # counted, not raised: the soak reports all
                    with lock:
                        errors.append(f"session {number}: {type(exc).__name__}: {exc}")
                    continue
                with lock:
                    latencies.append((time.perf_counter() - started) * 1000)
                    if "error" in data:
                        errors.append(f"session {number}: {data['error']}")
                        continue
                    if not data["answer"]:
                        errors.append(f"session {number}: empty answer to {question[:60]!r}")
                    for c in data["citations"]:
                        if texts[c["doc_id"]][c["start"] : c["end"]] != c["quote"]:
                            errors.append(f"session {number}: citation {c} is not in the corpus")
                turns += [["user", data["question"]], ["assistant", data["answer"]]]
                done += 1
            return done

        with ThreadPoolExecutor(SESSIONS) as ex:
            answered = sum(ex.map(session, range(SESSIONS)))
        wall_s = time.perf_counter() - t0
        gc.collect()
        rss_end = rss_mb()

    report = {
        "questions": TOTAL,
        "sessions": SESSIONS,
        "answered": answered,
        "errors": len(errors),
        "rss_start_mb": round(rss_start, 1),
        "rss_end_mb": round(rss_end, 1),
        "rss_growth_mb": round(rss_end - rss_start, 1),
        "wall_s": round(wall_s, 2),
        "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
        "latency_ms_max": round(max(latencies), 1) if latencies else None,
        "embedder": settings.embedder,
    }
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps(report, indent=1) + "\n")
    print("soak:", json.dumps(report))
    assert errors == [], errors[:5]
    assert answered == TOTAL
    assert rss_end - rss_start < MAX_RSS_GROWTH_MB, report
