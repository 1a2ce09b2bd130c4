"""The quantised FAISS store types (issue 17): ``hnsw_sq8`` (HNSW over 8-bit codes) and
``ivf_pq`` (IVF over product codes, re-ranked by 8-bit codes) build, search, save and
load, take updates with tombstones; the size rule picks flat / hnsw / hnsw_sq8 from
settings; manifests of older types load as before."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from citechat.config import Settings
from citechat.corpus import load_corpus
from citechat.embedding import HashingEmbedder
from citechat.errors import ConfigError
from citechat.index import Index, current_generation
from citechat.index.stores import StoreRows, load_store
from citechat.index.stores.faiss import FaissParams, FaissStore, ivf_lists, train_size

from .test_store import unit_rows

QUANTISED = ("hnsw_sq8", "ivf_pq")


def recall_at_10(store: FaissStore, exact: FaissStore, queries: np.ndarray) -> float:
    _, truth = exact.search(queries, 10)
    _, found = store.search(queries, 10)
    return float(np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found, strict=True)]))


def test_the_size_rule_picks_flat_then_hnsw_then_hnsw_sq8() -> None:
    params = FaissParams(flat_max=100, hnsw_max=1000)
    assert [params.kind_for(n) for n in (1, 100, 101, 1000, 1001, 10**7)] == [
        "flat",
        "flat",
        "hnsw",
        "hnsw",
        "hnsw_sq8",
        "hnsw_sq8",
    ]
    # a named type holds at every size
    assert {FaissParams(type="ivf_pq").kind_for(n) for n in (1, 10**6)} == {"ivf_pq"}
    # the defaults: flat to 100,000, HNSW-Flat to 500,000, 8-bit HNSW above (README)
    assert [FaissParams().kind_for(n) for n in (100_000, 500_000, 500_001)] == [
        "flat",
        "hnsw",
        "hnsw_sq8",
    ]


def test_the_thresholds_and_type_are_settings_from_the_environment() -> None:
    env = {"CITECHAT_HNSW_MAX": "2000", "CITECHAT_IVF_NPROBE": "8", "CITECHAT_PQ_M": "16"}
    settings = Settings.load(env=env)
    params = FaissParams.of(settings)
    assert (params.hnsw_max, params.ivf_nprobe, params.pq_m, params.type) == (2000, 8, 16, "")
    assert FaissParams.of(Settings.load(env={"CITECHAT_FAISS_TYPE": "ivf_pq"})).type == "ivf_pq"
    with pytest.raises(ConfigError, match=r"faiss_type must be one of .*got 'pq' \(CITECHAT_"):
        Settings.load(env={"CITECHAT_FAISS_TYPE": "pq"})
    with pytest.raises(ConfigError, match="hnsw_max must be a whole number of at least 1, got 0"):
        Settings(hnsw_max=0)
    with pytest.raises(ConfigError, match="faiss_type must be one of"):
        FaissParams(type="ivf")


@pytest.mark.parametrize("type_", QUANTISED)
def test_a_quantised_store_is_close_to_exact_search_and_repeatable(type_: str) -> None:
    vectors = unit_rows(4000, seed=2)
    queries = unit_rows(200, seed=3)
    exact = FaissStore.build(vectors, 32, FaissParams())
    params = FaissParams(type=type_, hnsw_m=16, pq_m=8, ivf_nprobe=16)
    store = FaissStore.build(vectors, 32, params)
    assert store.type == type_ and store.count() == 4000
    assert recall_at_10(store, exact, queries) >= 0.9
    # trained on the first vectors with FAISS's fixed seeds: a rebuild, streamed in
    # batches as an index build reads them, answers the same
    again = FaissStore.build_from(
        (vectors[i : i + 700] for i in range(0, 4000, 700)), 4000, 32, params
    )
    if type_ == "ivf_pq":  # IVF answers do not depend on insertion order
        np.testing.assert_array_equal(again.search(queries, 10)[1], store.search(queries, 10)[1])
    else:  # HNSW's graph does, slightly
        assert np.mean(again.search(queries, 10)[1] == store.search(queries, 10)[1]) > 0.9
    assert store.describe()["params"]["train"] == train_size(type_, 4000) == 4000


def test_ivf_pq_records_its_lists_and_a_sub_quantiser_count_that_fits() -> None:
    vectors = unit_rows(2000, seed=4)
    # 48 does not divide 32: the most sub-quantisers up to 48 that do (32)
    store = FaissStore.build(vectors, 32, FaissParams(type="ivf_pq"))
    params = store.describe()["params"]
    assert (params["nlist"], params["pq_m"], params["refine"]) == (ivf_lists(2000), 32, "sq8")
    assert params["nprobe"] == FaissParams.ivf_nprobe


@pytest.mark.parametrize("type_", QUANTISED)
def test_a_quantised_store_takes_updates_with_tombstones_then_rebuilds(type_: str) -> None:
    vectors = unit_rows(600, seed=4)
    params = FaissParams(type=type_, hnsw_m=8, pq_m=8)
    store = FaissStore.build(vectors[:500], 32, params)
    old_to_new = np.concatenate([np.full(10, -1), np.arange(490)])
    new = vectors[10:]
    updated = store.updated(old_to_new, new, np.arange(490, 590), params)
    assert updated.type == type_ and updated.faiss is not store.faiss
    assert updated.count() == 590 and updated.describe()["tombstones"] == 10
    _, rows = updated.search(new[[0, 300, 589]], 1)
    assert rows[:, 0].tolist() == [0, 300, 589]  # kept and new rows, with the old training
    drop_most = np.concatenate([np.full(400, -1), np.arange(190)])
    rebuilt = updated.updated(
        np.concatenate([drop_most, np.full(100, -1)]), new[:190], np.arange(0), params
    )
    assert rebuilt.count() == 190 and rebuilt.describe()["tombstones"] == 0


def test_an_hnsw_store_grown_past_hnsw_max_is_rebuilt_as_hnsw_sq8() -> None:
    vectors = unit_rows(700, seed=6)
    params = FaissParams(flat_max=100, hnsw_max=600, hnsw_m=8)
    store = FaissStore.build(vectors[:500], 32, params)
    assert store.type == "hnsw"
    grown = store.updated(np.arange(500), vectors, np.arange(500, 700), params)
    assert grown.type == "hnsw_sq8" and grown.count() == 700
    assert grown.describe()["tombstones"] == 0


@pytest.mark.parametrize("type_", QUANTISED)
def test_an_index_of_a_quantised_type_records_it_and_loads_it(
    fake_settings: Settings, type_: str
) -> None:
    docs = load_corpus(fake_settings.corpus)
    emb = HashingEmbedder(256)
    settings = fake_settings.replace(faiss_type=type_, hnsw_m=8, pq_m=16, hnsw_ef_search=40)
    built = Index.build(docs, emb, settings, folder=settings.index)
    manifest = json.loads((current_generation(settings.index) / "manifest.json").read_text())
    entry = manifest["store"]
    assert (entry["kind"], entry["type"], entry["tombstones"]) == ("faiss", type_, 0)
    assert entry["params"]["train"] == len(built.chunks)
    # search-time knobs come from the settings of the process that loads it
    loaded = Index.load(settings.index, emb, settings.replace(ivf_nprobe=3))
    assert loaded.store.describe()["type"] == type_
    if type_ == "hnsw_sq8":
        assert loaded.store.faiss.hnsw.efSearch == 40  # type: ignore[attr-defined]
    else:
        import faiss

        assert faiss.extract_index_ivf(loaded.store.faiss).nprobe == 3  # type: ignore[attr-defined]
    q = emb.embed(["appointment of a new director"])[0]
    exact = Index.build(docs, emb, fake_settings)
    assert loaded.search_dense(q, 3)[0][0] == exact.search_dense(q, 3)[0][0]


def test_manifests_of_the_older_types_load_as_before(tmp_path: Path) -> None:
    vectors = unit_rows(300, seed=9)
    rows = StoreRows(tmp_path, 300, 32)
    settings = Settings(embedder="hashing-64", hnsw_ef_search=50)
    hnsw = FaissStore.build(vectors, 32, FaissParams(flat_max=10, hnsw_m=8))
    hnsw.save(tmp_path)
    # as an issue-6 index wrote it: no train, no nprobe
    entry = {
        "kind": "faiss",
        "type": "hnsw",
        "metric": "inner_product",
        "params": {"M": 8, "ef_construction": 80, "ef_search": 96},
        "tombstones": 0,
    }
    loaded = load_store(tmp_path, entry, rows, settings)
    assert type(loaded.faiss).__name__ == "IndexHNSWFlat"  # type: ignore[attr-defined]
    assert loaded.faiss.hnsw.efSearch == 50  # type: ignore[attr-defined]
    assert loaded.search(vectors[:3], 1)[1][:, 0].tolist() == [0, 1, 2]
    FaissStore.build(vectors, 32, FaissParams()).save(tmp_path)
    for old in ({"kind": "faiss"}, {"kind": "faiss", "type": "flat"}, None):
        flat = load_store(tmp_path, old, rows, settings)
        assert flat.describe()["type"] == "flat" and flat.count() == 300
