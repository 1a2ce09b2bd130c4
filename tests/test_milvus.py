"""The Milvus vector store through Milvus Lite (embedded, no server): the same code
path a Milvus cluster gets (``milvus://HOST:PORT/COLLECTION``).  Skipped when
pymilvus / milvus-lite are not installed (``pip install 'citechat[milvus]'``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from citechat.cli import main
from citechat.config import Settings
from citechat.corpus import load_corpus
from citechat.embedding import HashingEmbedder
from citechat.index import Index, current_generation, sync_index
from citechat.index.stores.milvus import MilvusStore
from citechat.retrieval import Retriever

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

ROOT = Path(__file__).resolve().parents[1]


def test_milvus_lite_store_builds_updates_and_matches_faiss(
    fake_settings: Settings, tmp_path: Path
) -> None:
    db = tmp_path / "milvus.db"
    settings = fake_settings.replace(store=f"milvus-lite:{db}#tiny")
    emb = HashingEmbedder(256)
    result = sync_index(settings, embedder=emb)
    index = result.index
    assert isinstance(index.store, MilvusStore) and db.exists()
    manifest = json.loads((current_generation(settings.index) / "manifest.json").read_text())
    assert manifest["store"] == {
        "kind": "milvus",
        "type": "milvus",
        "metric": "inner_product",
        "uri": str(db),
        "collection": "tiny",
    }
    faiss = Index.build(load_corpus(settings.corpus), emb, fake_settings)
    for q in ("new director appointed", "snow in london", "joint working responsibility"):
        v = emb.embed([q])[0]
        mine = [(r, round(s, 4)) for r, s in index.search_dense(v, 5)]
        theirs = [(r, round(s, 4)) for r, s in faiss.search_dense(v, 5)]
        assert mine == theirs
    # an update inserts the new chunks and deletes the removed ones
    (settings.corpus / "weather.txt").unlink()
    (settings.corpus / "ferry.txt").write_text("Ferry news\n\nThe ferry sank near the pier.\n")
    updated = sync_index(settings, embedder=emb).index
    assert updated.store.existing_keys() == set(updated.store.row_of)  # type: ignore[attr-defined]
    v = emb.embed(["the ferry sank"])[0]
    assert updated.chunks[updated.search_dense(v, 1)[0][0]].doc_id == "ferry.txt"
    # a fresh process-side load uses the manifest's collection without --store
    loaded = Index.load(settings.index, emb, fake_settings)
    assert isinstance(loaded.store, MilvusStore) and loaded.store.spec.collection == "tiny"
    assert loaded.search_dense(v, 1) == updated.search_dense(v, 1)
    # a changed document keeps its chunk ids: its rows are sent again, with new vectors
    balls = settings.corpus / "balls.txt"
    balls.write_text("Balls resigns\n\nEd Balls resigned from the council today.\n")
    changed = sync_index(settings, embedder=emb)
    assert changed.report is not None and changed.report.docs_changed == 1
    index = changed.index
    assert index.store.existing_keys() == set(index.store.row_of)  # type: ignore[attr-defined]
    faiss = Index.build(load_corpus(settings.corpus), emb, fake_settings)
    for q in ("ed balls resigned", "the ferry sank", "snow"):
        v = emb.embed([q])[0]
        mine = [(r, round(s, 4)) for r, s in index.search_dense(v, 3)]
        assert mine == [(r, round(s, 4)) for r, s in faiss.search_dense(v, 3)]


def test_cli_index_store_moves_vectors_without_reembedding(
    fake_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITECHAT_CORPUS", str(fake_settings.corpus))
    monkeypatch.setenv("CITECHAT_INDEX", str(fake_settings.index))
    monkeypatch.setenv("CITECHAT_EMBEDDER", "hashing-256")
    assert main(["index"]) == 0
    db = tmp_path / "m.db"
    assert main(["index", "--json", "--store", str(db)]) == 0
    manifest = json.loads((current_generation(fake_settings.index) / "manifest.json").read_text())
    assert manifest["store"]["kind"] == "milvus"
    assert main(["index", "--store", "faiss"]) == 0
    manifest = json.loads((current_generation(fake_settings.index) / "manifest.json").read_text())
    assert manifest["store"]["type"] == "flat"
    assert main(["index", "--store", "redis://nope"]) == 2


def hits_at(retriever: Retriever, questions: list[dict], k: int) -> float:
    found = 0
    for q in questions:
        docs = {h.chunk.doc_id for h in retriever.search(q["question"], k).hits}
        found += bool(docs & set(q["gold_docs"]))
    return found / len(questions)


@pytest.mark.integration
def test_milvus_lite_gives_the_same_seed_hit_at_k_as_faiss(
    seed_settings: Settings, tmp_path: Path
) -> None:
    faiss_index = sync_index(seed_settings).index
    copy = tmp_path / "index"
    shutil.copytree(seed_settings.index, copy)
    settings = seed_settings.replace(index=copy, store=f"milvus-lite:{tmp_path / 'seed.db'}")
    result = sync_index(settings)
    assert result.report is not None and result.report.texts_embedded == 0  # vectors moved
    milvus_index = result.index
    assert isinstance(milvus_index.store, MilvusStore)
    rows = [json.loads(line) for line in (ROOT / "eval/datasets/seed/questions.jsonl").open()]
    questions = [r for r in rows if r.get("gold_docs")]
    for mode in ("dense", "hybrid"):
        a = Retriever(faiss_index, mode=mode)  # type: ignore[arg-type]
        b = Retriever(milvus_index, mode=mode)  # type: ignore[arg-type]
        for k in (1, 5, 10):
            assert hits_at(a, questions, k) == hits_at(b, questions, k), (mode, k)
