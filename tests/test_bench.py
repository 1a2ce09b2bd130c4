"""The bench module produces a results record with the expected keys (issue 6).

Runs on the tiny corpus with the hashing embedder; timings are never asserted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from citechat import bench_million
from citechat.bench import BenchConfig, percentiles, run_bench, summary, targets
from citechat.cli import main
from citechat.config import Settings


@pytest.fixture
def questions(tmp_path: Path) -> Path:
    path = tmp_path / "questions.jsonl"
    rows = [
        {"id": str(i), "question": q}
        for i, q in enumerate(
            ["Who was appointed new director?", "Why were schools closed?", "What did Ed Balls do?"]
            * 3
        )
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_bench_record_has_every_part(
    fake_settings: Settings, questions: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bench" / "results.jsonl"
    config = BenchConfig(
        fake_settings,
        out=out,
        build_corpus=fake_settings.corpus,
        build_questions=questions,
        seed_corpus=fake_settings.corpus,
        seed_questions=questions,
        questions=3,
        skip=frozenset({"cold", "peer", "ingest"}),
        work=tmp_path / "work",
        log=lambda _: None,
    )
    record = run_bench(config)
    assert json.loads(out.read_text().splitlines()[-1]) == record
    assert {
        "time",
        "mode",
        "machine",
        "git",
        "embedder",
        "build",
        "incremental",
        "latency",
        "rss_mb",
        "targets",
    } <= set(record)
    assert {"cpus", "cpu", "python", "load_avg_1m"} <= set(record["machine"])
    build = record["build"]
    for key in (
        "index_s",
        "floor_s",
        "floor_chunks_only_s",
        "ratio_vs_floor",
        "ratio_vs_chunks_only",
        "texts_embedded",
        "chunks",
        "sentences",
        "store",
    ):
        assert key in build
    assert build["documents"] == 2 and build["store"] == "flat"
    inc = record["incremental"]
    assert inc["docs_changed"] == 1 and inc["docs_added"] == 0 and inc["action"] == "updated"
    assert 0 < inc["texts_embedded"] < build["texts_embedded"]
    for name in ("seed", "build"):
        stages = record["latency"][name]["stages_ms"]
        assert {
            "retrieve_embed",
            "retrieve_dense",
            "retrieve_bm25",
            "retrieve_fuse",
            "answer",
            "total",
        } <= set(stages)
        assert set(stages["total"]) == {"p50", "p95"}
        assert record["latency"][name]["questions"] == 3
    assert record["rss_mb"]["index"] > 0
    assert record["targets"]["incremental ratio <= 0.02"]["value"] == inc["ratio"]
    assert record["targets"]["1M recall@10 >= 0.95"]["met"] is None  # not measured
    assert "latency p50/p95" in summary(record)
    # a second run appends
    run_bench(
        BenchConfig(
            fake_settings,
            out=out,
            skip=frozenset({"build", "latency", "cold", "peer", "ingest"}),
            log=lambda _: None,
        )
    )
    assert len(out.read_text().splitlines()) == 2


def test_cold_start_part_serves_and_measures(fake_settings: Settings, tmp_path: Path) -> None:
    from citechat.bench import cold_start

    result = cold_start(fake_settings)
    assert set(result) == {"help_s", "serve_first_200_s", "peak_rss_mb"}
    assert result["serve_first_200_s"] is not None and result["peak_rss_mb"] > 0


def test_targets_and_percentiles() -> None:
    assert percentiles([]) == {"p50": 0.0, "p95": 0.0}
    assert percentiles([5.0]) == {"p50": 5.0, "p95": 5.0}
    t = targets({"million": {"chosen": {"recall_at_10": 0.97, "p50_ms": 12.0}}})
    assert t["1M recall@10 >= 0.95"] == {"value": 0.97, "met": True}
    assert t["1M search p50 ms <= 10"] == {"value": 12.0, "met": False}


def test_cli_bench_rejects_unknown_parts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--skip", "nonsense"]) == 2
    assert "unknown bench parts" in capsys.readouterr().err


def test_million_cache_resumes_and_never_fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CITECHAT_BENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(bench_million, "SHARD", 64)
    texts = bench_million.million_texts(200)
    assert len(texts) == len(set(texts)) == 200
    assert texts == bench_million.million_texts(200)  # deterministic
    cache = bench_million.VectorCache.open(200)

    class Dying:
        name = "fake"
        calls = 0

        def embed(self, batch):  # type: ignore[no-untyped-def]
            Dying.calls += 1
            if Dying.calls == 4:  # queries, then shards 0 and 1, then dies
                raise KeyboardInterrupt
            return np.ones((len(batch), 8), dtype=np.float32)

    with pytest.raises(KeyboardInterrupt):
        cache.embed(Dying())
    assert cache.done() == 2 and cache.available() == 128
    assert cache.load().shape == (128, 8)
    assert [len(b) for b in cache.batches(100)] == [64, 36]  # shard by shard, cut at the limit
    cache.embed(Dying())  # resumes at shard 2
    assert cache.done() == 4 and cache.available() == 200


def test_million_bench_record_on_a_small_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CITECHAT_BENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(bench_million, "SHARD", 1000)
    cache = bench_million.VectorCache.open(3000)
    assert bench_million.million_bench(n=3000, log=lambda _: None)["available"] is False
    # the code path only: clustered unit vectors stand in for the cached MiniLM ones
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((60, 16))

    def rows(k: int) -> np.ndarray:
        v = centres[rng.integers(0, 60, k)] + 0.5 * rng.standard_normal((k, 16))
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    cache.folder.mkdir(parents=True)
    for i in range(3):
        np.save(cache.shard_path(i), rows(1000))
    np.save(cache.folder / "queries.npy", rows(50))
    record = bench_million.million_bench(n=3000, min_vectors=100, log=lambda _: None)
    assert record["available"] and record["vectors"] == 3000
    assert {"flat", "hnsw_build_s", "build_rss_mb", "hnsw_ef_search", "index_mb", "chosen"} <= set(
        record
    )
    assert record["build_rss_mb"] > 0
    streamed = record["streamed"]
    assert streamed["rss_mb"] > 0 and streamed["recall_at_10"] >= 0.9
    chosen = record["chosen"]
    assert {"type", "M", "ef_search", "p50_ms", "p95_ms", "recall_at_10", "rss_mb"} <= set(chosen)
    assert chosen["recall_at_10"] >= 0.9


def test_ingest_part_builds_both_ways_at_two_sizes(fake_settings: Settings, tmp_path: Path) -> None:
    from citechat.bench_ingest import ingest_bench

    result = ingest_bench(fake_settings.corpus, tmp_path, copies=(1, 3), log=lambda _: None)
    runs = {(r["copies"], r["path"]): r for r in result["runs"]}
    assert set(runs) == {(k, p) for k in (1, 3) for p in ("streamed", "in_memory", "update")}
    for k in (1, 3):
        streamed, in_memory = runs[(k, "streamed")], runs[(k, "in_memory")]
        # both paths index the same corpus: the same documents, chunks and sentences
        for key in ("documents", "chunks", "sentences"):
            assert streamed[key] == in_memory[key] > 0
        assert streamed["peak_rss_mb"] > 0 and in_memory["peak_rss_mb"] > 0
        assert streamed["with_load_peak_rss_mb"] >= streamed["peak_rss_mb"]
    assert runs[(3, "streamed")]["documents"] == 3 * runs[(1, "streamed")]["documents"]
    for k in (1, 3):  # one document changed: a few texts embedded, the rest copied
        update = runs[(k, "update")]
        assert update["documents"] == runs[(k, "streamed")]["documents"]
        assert 0 < update["texts_embedded"] <= 4 and update["peak_rss_mb"] > 0
    assert set(result["mb_per_1k_chunks"]) == {"streamed", "in_memory"}
