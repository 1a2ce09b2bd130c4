"""Vector stores and scale (issue 6): index type chosen by size and written to the
manifest, old manifests load as flat, HNSW recall against exact search, HNSW
updates with tombstones, resumable checkpointed embedding, text-hash reuse."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from citechat import embedding
from citechat.config import Settings
from citechat.corpus import load_corpus
from citechat.embedding import HashingEmbedder, embed_texts
from citechat.errors import ConfigError
from citechat.index import Index, current_generation, sync_index
from citechat.index.generations import CHECKPOINT
from citechat.index.stores import (
    RowChange,
    StoreRows,
    StoreSpec,
    carries_over,
    create_store,
    load_store,
    parse_store,
)
from citechat.index.stores.faiss import FaissParams, FaissStore


def unit_rows(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Clustered unit vectors (closer to text embeddings than uniform noise)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 50), dim))
    v = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def many_docs_corpus(folder: Path, n: int) -> Path:
    folder.mkdir()
    words = ["snow", "london", "school", "bus", "council", "director", "report", "police"]
    rng = np.random.default_rng(1)
    for i in range(n):
        body = ". ".join(" ".join(rng.choice(words, 6)) for _ in range(3))
        (folder / f"d{i:03d}.txt").write_text(f"Doc {i}\n\n{body}.\n")
    return folder


# -- choosing the store ----------------------------------------------------------------


def test_parse_store_specs() -> None:
    assert parse_store(None) == parse_store("faiss") == StoreSpec()
    assert parse_store("milvus://10.0.0.5:19530/news") == StoreSpec(
        "milvus", "http://10.0.0.5:19530", "news"
    )
    assert parse_store("milvus://h:1") == StoreSpec("milvus", "http://h:1", "citechat")
    assert parse_store("milvus-lite:./index/m.db#docs") == StoreSpec(
        "milvus", "./index/m.db", "docs"
    )
    assert parse_store("/data/x.db").uri == "/data/x.db"
    for bad in ("redis://x", "milvus://", "milvus://h:1/bad-name", "milvus-lite:"):
        with pytest.raises(ConfigError):
            parse_store(bad)


def test_flat_below_threshold_hnsw_above_and_in_the_manifest(fake_settings: Settings) -> None:
    docs = load_corpus(fake_settings.corpus)
    emb = HashingEmbedder(256)
    flat = Index.build(docs, emb, fake_settings)
    assert flat.store.describe()["type"] == "flat"
    small = fake_settings.replace(flat_max=2, hnsw_m=8, hnsw_ef_search=40)
    hnsw = Index.build(docs, emb, small, folder=small.index)
    assert len(hnsw.chunks) > 2
    manifest = json.loads((current_generation(small.index) / "manifest.json").read_text())
    assert manifest["store"]["kind"] == "faiss"
    assert manifest["store"]["type"] == "hnsw"
    assert manifest["store"]["params"] == {"M": 8, "ef_construction": 80, "ef_search": 40}
    loaded = Index.load(small.index, emb, small)
    assert loaded.store.describe()["type"] == "hnsw"
    assert loaded.store.faiss.hnsw.efSearch == 40  # type: ignore[attr-defined]
    q = emb.embed(["appointment of a new director"])[0]
    assert loaded.search_dense(q, 3)[0][0] == flat.search_dense(q, 3)[0][0]


def test_a_manifest_without_a_store_entry_loads_as_flat(fake_settings: Settings) -> None:
    sync_index(fake_settings)
    gen = current_generation(fake_settings.index)
    manifest = json.loads((gen / "manifest.json").read_text())
    del manifest["store"]
    manifest["faiss"] = {"type": "IndexFlatIP", "metric": "inner_product"}  # as issue-5 wrote it
    (gen / "manifest.json").write_text(json.dumps(manifest))
    index = Index.load(fake_settings.index, HashingEmbedder(256), fake_settings)
    assert index.store.describe()["type"] == "flat"
    assert sync_index(fake_settings).action == "loaded"


def test_faiss_params_are_validated() -> None:
    with pytest.raises(ConfigError, match="hnsw_m must be at least 1, got 0"):
        FaissParams(hnsw_m=0)


# -- HNSW recall -------------------------------------------------------------------------


def test_hnsw_recall_at_10_against_exact_search() -> None:
    vectors = unit_rows(4000, seed=2)
    queries = unit_rows(200, seed=3)
    params = FaissParams(flat_max=1000, hnsw_m=16, ef_construction=80, ef_search=64)
    exact = FaissStore.build(vectors, 32, FaissParams())
    approx = FaissStore.build(vectors, 32, params)
    assert (exact.type, approx.type) == ("flat", "hnsw")
    _, truth = exact.search(queries, 10)
    _, found = approx.search(queries, 10)
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found, strict=True)])
    assert recall >= 0.95


def test_a_stream_of_batches_builds_the_same_store() -> None:
    vectors = unit_rows(1000, seed=4)
    queries = unit_rows(20, seed=5)
    whole = FaissStore.build(vectors, 32, FaissParams())
    streamed_flat = FaissStore.build_from(
        (vectors[i : i + 300] for i in range(0, 1000, 300)), 1000, 32, FaissParams()
    )
    streamed = FaissStore.build_from(
        (vectors[i : i + 128] for i in range(0, 1000, 128)), 1000, 32, FaissParams(flat_max=500)
    )
    assert (streamed_flat.count(), streamed.count(), streamed.type) == (1000, 1000, "hnsw")
    expected = whole.search(queries, 5)
    np.testing.assert_array_equal(streamed_flat.search(queries, 5)[1], expected[1])
    assert np.mean(streamed.search(queries, 5)[1] == expected[1]) > 0.9


def test_hnsw_update_adds_and_tombstones_then_rebuilds() -> None:
    vectors = unit_rows(600, seed=4)
    params = FaissParams(flat_max=100, hnsw_m=8)
    store = FaissStore.build(vectors[:500], 32, params)
    # rows 0..9 removed; the rest shift down by 10; 100 new rows at the end
    old_to_new = np.concatenate([np.full(10, -1), np.arange(490)])
    new = vectors[10:]
    updated = store.updated(old_to_new, new, np.arange(490, 590), params)
    assert updated.faiss is not store.faiss and store.faiss.ntotal == 500  # old one untouched
    assert updated.count() == 590 and updated.describe()["tombstones"] == 10
    _scores, rows = updated.search(new[[0, 300, 589]], 1)
    assert rows[:, 0].tolist() == [0, 300, 589]
    assert np.all(rows >= 0)
    # past MAX_TOMBSTONES the store is rebuilt without them
    drop_most = np.concatenate([np.full(400, -1), np.arange(190)])
    rebuilt = updated.updated(
        np.concatenate([drop_most, np.full(100, -1)]), new[:190], np.arange(0), params
    )
    assert rebuilt.count() == 190 and rebuilt.describe()["tombstones"] == 0


def test_hnsw_index_update_save_load_round_trip(tmp_path: Path) -> None:
    corpus = many_docs_corpus(tmp_path / "corpus", 30)
    settings = Settings(
        corpus=corpus, index=tmp_path / "index", embedder="hashing-64", flat_max=10, hnsw_m=8
    )
    first = sync_index(settings).index
    assert first.store.describe()["type"] == "hnsw"
    (corpus / "d000.txt").unlink()
    (corpus / "d001.txt").write_text("Doc 1\n\nA completely different story about ferries.\n")
    second = sync_index(settings).index
    assert second.store.count() == len(second.chunks)
    again = Index.load(settings.index, HashingEmbedder(64), settings)
    q = HashingEmbedder(64).embed(["a completely different story about ferries"])[0]
    best = again.chunks[again.search_dense(q, 1)[0][0]]
    assert best.doc_id == "d001.txt"
    assert all(0 <= r < len(again.chunks) for r, _ in again.search_dense(q, 50))


# -- embedding: once per text, checkpointed, resumable -----------------------------------


class FailingEmbedder(HashingEmbedder):
    """Embeds ``fail_after`` texts, then raises (a build killed half-way)."""

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__(256)
        self.fail_after = fail_after
        self.seen: list[str] = []

    def embed(self, texts):  # type: ignore[no-untyped-def]
        if self.fail_after is not None and len(self.seen) + len(texts) > self.fail_after:
            raise KeyboardInterrupt("killed half-way")
        self.seen.extend(texts)
        return super().embed(texts)


def test_interrupted_build_resumes_from_its_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedding, "EMBED_BUFFER", 8)
    monkeypatch.setattr(embedding, "EMBED_SLICE", 4)
    corpus = many_docs_corpus(tmp_path / "corpus", 12)
    settings = Settings(corpus=corpus, index=tmp_path / "index", embedder="hashing-256")
    dying = FailingEmbedder(fail_after=20)
    with pytest.raises(KeyboardInterrupt):
        sync_index(settings, embedder=dying)
    batches = sorted((settings.index / CHECKPOINT).glob("stream-*/batch-*.npz"))
    assert len(batches) == 2  # two full buffers of 8 made it to disk, the third did not
    resumed = FailingEmbedder()
    result = sync_index(settings, embedder=resumed)
    assert result.report is not None and result.report.texts_reused >= 16
    assert not set(resumed.seen) & set(dying.seen[:16])  # checkpointed texts not re-embedded
    assert not (settings.index / CHECKPOINT).exists()  # consumed by the save
    # the resumed index equals a clean build
    clean = Index.build(load_corpus(corpus), HashingEmbedder(256), settings)
    assert np.allclose(result.index.vectors, clean.vectors)
    assert np.allclose(result.index.sentence_vectors, clean.sentence_vectors)


def test_a_changed_document_reuses_its_unchanged_sentences(fake_settings: Settings) -> None:
    emb = FailingEmbedder()
    sync_index(fake_settings, embedder=emb)
    emb.seen.clear()
    path = fake_settings.corpus / "weather.txt"
    path.write_text(path.read_text() + "Trains ran late.\n")
    report = sync_index(fake_settings, embedder=emb).report
    assert report is not None and report.docs_changed == 1
    assert "Heavy snow closed schools across London on Monday." not in emb.seen
    assert "Trains ran late." in emb.seen and report.texts_reused >= 1


def test_embed_texts_embeds_each_distinct_text_once_longest_first() -> None:
    emb = FailingEmbedder()
    texts = ["b", "a much longer text here", "b", "mid text"]
    vectors, n = embed_texts(emb, texts)
    assert n == 3 and emb.seen == ["a much longer text here", "mid text", "b"]
    assert np.allclose(vectors, HashingEmbedder(256).embed(texts))


# -- the store protocol, the same checks over every backend (STYLE.md habit 18) ---------


def _milvus_spec(tmp_path: Path) -> str:
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    return f"milvus-lite:{tmp_path / 'contract.db'}#contract"


STORES: dict[str, Callable[[Path], tuple[str, dict[str, Any]]]] = {
    "faiss flat": lambda tmp_path: ("faiss", {}),
    "faiss hnsw": lambda tmp_path: ("faiss", {"flat_max": 10, "hnsw_m": 8}),
    "faiss hnsw_sq8": lambda tmp_path: ("faiss", {"flat_max": 10, "hnsw_max": 20, "hnsw_m": 8}),
    "faiss ivf_pq": lambda tmp_path: ("faiss", {"faiss_type": "ivf_pq", "pq_m": 8}),
    "milvus lite": lambda tmp_path: (_milvus_spec(tmp_path), {}),
}


def _rows(folder: Path, vectors: np.ndarray, ids: list[str]) -> StoreRows:
    """A generation's chunk rows as the writer leaves them for the store."""
    folder.mkdir()
    np.save(folder / "vectors.npy", vectors)
    (folder / "chunks.jsonl").write_text("".join(json.dumps({"chunk_id": i}) + "\n" for i in ids))
    return StoreRows(folder, len(ids), vectors.shape[1])


@pytest.mark.parametrize("kind", STORES)
def test_every_store_builds_updates_saves_and_loads(tmp_path: Path, kind: str) -> None:
    spec, params = STORES[kind](tmp_path)
    settings = Settings(embedder="hashing-64", store=spec, **params)
    vectors = unit_rows(60, seed=7)
    ids = [f"d{i // 3}.txt#{i % 3}" for i in range(60)]
    rows = _rows(tmp_path / "gen-1", vectors, ids)
    store = create_store(parse_store(spec), rows, settings)
    assert store.count() == 60 and store.inconsistency(60, 32) is None
    assert store.inconsistency(61, 32) is not None  # fewer vectors than chunks: damage
    _, found = store.search(vectors[[0, 17, 59]], 3)
    assert found[:, 0].tolist() == [0, 17, 59]
    assert store.search(vectors[:1], 100)[1].shape == (1, 60)  # k past the end: all rows
    store.save(rows.folder)
    entry = store.describe()
    assert entry["kind"] == parse_store(spec).kind and carries_over(entry, parse_store(spec))
    loaded = load_store(rows.folder, entry, rows, settings)
    np.testing.assert_array_equal(loaded.search(vectors[:5], 4)[1], store.search(vectors[:5], 4)[1])

    # an update: documents d0 and d1 removed (rows 0-5), d2 changed (rows 6-8: same chunk
    # ids, new vectors), five new chunks of d99 at the end
    fresh = unit_rows(8, seed=8)
    new_vectors = np.concatenate([fresh[:3], vectors[9:], fresh[3:]])
    new_ids = ids[6:9] + ids[9:] + [f"d99.txt#{i}" for i in range(5)]
    old_to_new = np.concatenate([np.full(9, -1), np.arange(3, 54)])
    new_rows = np.concatenate([np.arange(3), np.arange(54, 59)])
    rows2 = _rows(tmp_path / "gen-2", new_vectors, new_ids)
    updated = loaded.update(rows2, RowChange(old_to_new, new_rows), settings)
    assert updated.count() == 59 and updated.inconsistency(59, 32) is None
    _, found = updated.search(new_vectors[[0, 2, 3, 30, 58]], 1)
    assert found[:, 0].tolist() == [0, 2, 3, 30, 58]  # changed, kept and new rows
    _, found = updated.search(vectors[:6], 59)
    assert np.all(found < 59)  # removed rows are never answered, as any row
    updated.save(rows2.folder)
    again = load_store(rows2.folder, updated.describe(), rows2, settings)
    assert again.count() == 59
    assert again.search(new_vectors[[58]], 1)[1][0, 0] == 58
