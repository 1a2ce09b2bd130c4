"""The bench package produces a results record with the expected keys (issue 6).

Runs on the tiny corpus with the hashing embedder; timings are never asserted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from citechat.bench import million as bench_million
from citechat.bench.run import BenchConfig, run_bench, summary, targets
from citechat.cli import main
from citechat.config import Settings, bench_env
from citechat.errors import ConfigError, UsageError
from citechat.stats import percentile, percentiles
from helpers import latency_score

CHECKOUT = Path(__file__).resolve().parents[1]
SOURCES = bench_million.Sources(CHECKOUT / "eval" / "datasets", CHECKOUT / "corpus")


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
    from citechat.bench.run import cold_start

    result = cold_start(fake_settings)
    assert set(result) == {"help_s", "serve_first_200_s", "peak_rss_mb"}
    assert result["serve_first_200_s"] is not None and result["peak_rss_mb"] > 0


def test_targets_and_percentiles() -> None:
    assert percentiles([]) == {"p50": 0.0, "p95": 0.0}
    assert percentiles([5.0]) == {"p50": 5.0, "p95": 5.0}
    # linear interpolation (numpy's default), the definition citechat eval reports too:
    # position (n - 1) * q / 100 = 3 * 0.95 = 2.85 -> 30 + 0.85 * (40 - 30)
    assert percentile([40.0, 10.0, 30.0, 20.0], 95) == pytest.approx(38.5)
    assert percentiles([10.0, 20.0, 30.0, 40.0]) == {"p50": 25.0, "p95": 38.5}
    assert percentiles([1, 2, 3, 4, 100]) == {"p50": 3.0, "p95": 80.8}
    with pytest.raises(ValueError):
        percentile([], 50)
    t = targets({"million": {"chosen": {"recall_at_10": 0.97, "p50_ms": 12.0}}})
    assert t["1M recall@10 >= 0.95"] == {"value": 0.97, "met": True}
    assert t["1M search p50 ms <= 10"] == {"value": 12.0, "met": False}


def test_eval_and_bench_share_one_percentile() -> None:
    from citechat.evaluation import latency_summary

    values = [40.0, 10.0, 30.0, 20.0]
    lat = latency_summary([latency_score({"total": v}) for v in values])["total"]
    assert {k: lat[k] for k in ("p50", "p95")} == percentiles(values)


def test_cli_bench_rejects_unknown_parts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--skip", "nonsense"]) == 2
    assert "unknown bench parts" in capsys.readouterr().err


def test_cli_bench_without_psutil_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil raises ImportError
    assert main(["bench", "--skip", "build"]) == 2
    err = capsys.readouterr().err
    assert err == "citechat: error: citechat bench needs psutil; pip install 'citechat[bench]'\n"


def test_cli_bench_names_the_flag_of_a_missing_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"
    assert main(["bench", "--datasets", str(missing), "--out", str(tmp_path / "r.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(missing / "squad-dev") in err and "--datasets" in err
    args = ["bench", "--seed-corpus", str(missing), "--skip", "build", "--skip", "ingest"]
    assert main([*args, "--datasets", str(CHECKOUT / "eval" / "datasets")]) == 2
    err = capsys.readouterr().err
    assert "--seed-corpus" in err and str(missing) in err
    assert not (tmp_path / "r.jsonl").exists()  # nothing measured, nothing appended


def test_bench_env_is_read_in_config() -> None:
    env = bench_env(
        {"BENCH_FULL": "1", "CITECHAT_BENCH_CACHE": "/x", "CITECHAT_BENCH_THREADS": "2"}
    )
    assert env.full and env.cache == Path("/x") and env.threads == 2
    assert not bench_env({"BENCH_FULL": "0"}).full and bench_env({}).threads == 1
    with pytest.raises(ConfigError, match="CITECHAT_BENCH_THREADS"):
        bench_env({"CITECHAT_BENCH_THREADS": "many"})


def test_million_sources_name_their_flag(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--datasets"):
        bench_million.million_texts(10, bench_million.Sources(tmp_path, SOURCES.seed_corpus))
    with pytest.raises(UsageError, match="--seed-corpus"):
        bench_million.Sources(SOURCES.datasets, tmp_path / "none").check()
    assert bench_million.main(["embed", "10", "--datasets", str(tmp_path)]) == 2


def test_million_cache_resumes_and_never_fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CITECHAT_BENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(bench_million, "SHARD", 64)
    texts = bench_million.million_texts(200, SOURCES)
    assert len(texts) == len(set(texts)) == 200
    assert texts == bench_million.million_texts(200, SOURCES)  # deterministic
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
        cache.embed(Dying(), SOURCES)
    assert cache.done() == 2 and cache.available() == 128
    assert cache.load().shape == (128, 8)
    assert [len(b) for b in cache.batches(100)] == [64, 36]  # shard by shard, cut at the limit
    cache.embed(Dying(), SOURCES)  # resumes at shard 2
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
    from citechat.bench.ingest import ingest_bench

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
        # the old sentence vectors are linked, not written again (segments.py)
        assert 0 < update["written_bytes"] <= update["generation_bytes"]
        assert update["write_calls_mb"] is None or update["write_calls_mb"] > 0
    # at k = 3 the changed document's rows are few: the rest stays linked
    assert runs[(3, "update")]["written_bytes"] < runs[(3, "update")]["generation_bytes"]
    assert set(result["mb_per_1k_chunks"]) == {"streamed", "in_memory"}


def test_million_hnsw_baseline_is_hnsw_flat_above_hnsw_max(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bench's HNSW-Flat baseline stays HNSW-Flat where the size rule picks 8-bit
    codes (a million vectors): the first run after hnsw_sq8 became the default above
    hnsw_max labelled an 8-bit store "hnsw"."""
    import dataclasses

    import faiss

    from citechat.index.stores import faiss as faiss_store

    monkeypatch.setenv("CITECHAT_BENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(bench_million, "SHARD", 500)

    # the size rule as at a million vectors: past hnsw_max
    @dataclasses.dataclass(frozen=True)
    class PastHnswMax(faiss_store.FaissParams):
        hnsw_max: int = 10

    monkeypatch.setattr(faiss_store, "FaissParams", PastHnswMax)
    cache = bench_million.VectorCache.open(500)
    cache.folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    v = rng.standard_normal((500, 16)).astype(np.float32)
    np.save(cache.shard_path(0), v / np.linalg.norm(v, axis=1, keepdims=True))
    out = tmp_path / "out"
    out.mkdir()
    bench_million._build_child(out, 500, 500, "whole")
    built = faiss.read_index(str(out / "hnsw.index"))
    assert isinstance(built, faiss.IndexHNSWFlat) and built.ntotal == 500
    assert PastHnswMax(flat_max=1).kind_for(500) == "hnsw_sq8"  # what the rule would build


def test_serve_part_serves_a_copied_index_and_reuses_it(
    fake_settings: Settings, questions: Path, tmp_path: Path
) -> None:
    from citechat.bench.serving import serve_bench

    corpus = tmp_path / "docs.jsonl"
    corpus.write_text(
        json.dumps({"id": "a", "title": "Snow", "text": "Heavy snow closed schools in London."})
        + "\n"
    )
    work = tmp_path / "work"
    work.mkdir()
    result = serve_bench(
        corpus, questions, work, copies=3, n_questions=2, settle_s=0.5, log=lambda _: None
    )
    assert result["documents"] == 3 and result["chunks"] >= 3 and result["copies"] == 3
    assert result["index_action"] == "built" and result["reader"] == "off"
    assert result["serve_first_200_s"] is not None and result["serve_peak_rss_mb"] > 0
    assert result["serve_peak_rss_mb"] >= result["serve_rss_at_first_200_mb"] > 0
    assert result["latency"]["questions"] == 2 and "total" in result["latency"]["stages_ms"]
    again = serve_bench(
        corpus, questions, work, copies=3, n_questions=2, settle_s=0, log=lambda _: None
    )
    assert again["index_action"] == "loaded" and again["chunks"] == result["chunks"]
    record = {"serve": again}
    checks = targets(record)
    assert checks["1M-chunk serve peak RSS MB <= 2048"]["value"] == again["serve_peak_rss_mb"]
    assert checks["1M-chunk p50 ms <= 60"]["met"] is not None
