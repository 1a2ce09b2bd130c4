"""The FAISS store of an update over segmented vectors (stores/layered.py): a flat store
is the vector segments themselves (no file written), an HNSW store the old graph
hard-linked with its dead rows skipped plus an exact scan of the new rows; searches
equal a fresh build's of the same corpus."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from citechat.config import Settings
from citechat.corpus import load_corpus
from citechat.embedding import HashingEmbedder
from citechat.errors import IndexDamagedError
from citechat.index import Index, current_generation, sync_index
from citechat.index.stores.layered import LayeredStore
from citechat.retrieval import Retriever
from helpers import station_index

QUERIES = (
    "rain on day 2 at station 7",
    "hail at station 3",
    "millimetres measured on day 0",
    "a late report of snow",
)


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    return station_index(tmp_path, **kw)


def _store_entry(settings: Settings) -> dict[str, Any]:
    gen = current_generation(settings.index)
    entry: dict[str, Any] = json.loads((gen / "manifest.json").read_text())["store"]
    return entry


def _change(settings: Settings) -> None:
    """One document changed, one removed, one added."""
    doc = settings.corpus / "doc07.txt"
    doc.write_text(doc.read_text() + "Hail fell at station 7 on day 5.\n", encoding="utf-8")
    (settings.corpus / "doc12.txt").unlink()
    (settings.corpus / "doc99.txt").write_text("Late report\n\nSnow at station 99.\n")


def _untied(hits: list[tuple[int, float]]) -> list[tuple[float, int]]:
    """Hits by score, then row, without those tied with the last (FAISS orders exact ties
    as it likes, and either of two tied rows may be the one cut)."""
    last = hits[-1][1] if hits else None
    return sorted((-round(s, 6), r) for r, s in hits if s != last)


def _same_searches(settings: Settings, tmp_path: Path) -> Index:
    """The index at ``settings`` searches as a fresh build of its corpus does."""
    index = Index.load(settings.index, HashingEmbedder(256), settings)
    clean = Index.build(
        load_corpus(settings.corpus),
        HashingEmbedder(256),
        settings.replace(index=tmp_path / f"clean-{len(list(tmp_path.iterdir()))}"),
    )
    assert [c.chunk_id for c in index.chunks] == [c.chunk_id for c in clean.chunks]
    for question in QUERIES:
        query = clean.embedder.embed([question])[0]
        for n in (1, 5, len(clean.chunks)):
            got, want = index.search_dense(query, n), clean.search_dense(query, n)
            assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-6)
            assert _untied(got) == _untied(want)
        hits = Retriever(index).search(question, 5).hits, Retriever(clean).search(question, 5).hits
        assert [(h.chunk.chunk_id, round(h.score, 5)) for h in hits[0]] == [
            (h.chunk.chunk_id, round(h.score, 5)) for h in hits[1]
        ]
    return index


def test_a_flat_store_update_writes_no_store(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert (current_generation(settings.index) / "faiss.index").exists()  # a build writes it
    _change(settings)
    result = sync_index(settings)
    assert result.action == "updated"
    gen = current_generation(settings.index)
    entry = _store_entry(settings)
    assert entry["type"] == "flat" and entry["layered"]["base"] is None
    assert not (gen / "faiss.index").exists()  # the vector segments are the store
    index = _same_searches(settings, tmp_path)
    assert isinstance(index.store, LayeredStore)
    # every live row once, the removed document's never
    _, rows = index.store.search(index.embedder.embed(["rain"]), len(index.chunks) + 3)
    assert sorted(rows[0][rows[0] >= 0].tolist()) == list(range(len(index.chunks)))
    assert (rows[0][len(index.chunks) :] == -1).all()

    doc = settings.corpus / "doc03.txt"  # a second update: still no store file
    doc.write_text(doc.read_text() + "Fog on day 9.\n", encoding="utf-8")
    sync_index(settings)
    assert "layered" in _store_entry(settings)
    assert not (current_generation(settings.index) / "faiss.index").exists()
    _same_searches(settings, tmp_path)


def test_an_hnsw_store_update_links_the_graph(tmp_path: Path) -> None:
    # HNSW over a few dozen rows, searched with a wide beam: exact, so comparable
    settings = _settings(tmp_path, flat_max=8, hnsw_ef_search=512)
    old_gen = current_generation(settings.index)
    assert _store_entry(settings)["type"] == "hnsw"
    inode = (old_gen / "faiss.index").stat().st_ino
    _change(settings)
    sync_index(settings)
    gen = current_generation(settings.index)
    entry = _store_entry(settings)
    assert entry["type"] == "hnsw"
    assert entry["layered"]["base"] == f"segments/cv-{old_gen.name}.npy"
    assert (gen / "faiss.index").stat().st_ino == inode  # linked, not written
    assert entry["layered"]["scanned"] > 0
    index = _same_searches(settings, tmp_path)
    _, rows = index.store.search(index.embedder.embed(["rain"]), len(index.chunks))
    assert sorted(rows[0].tolist()) == list(range(len(index.chunks)))

    doc = settings.corpus / "doc15.txt"  # chained: the same graph, two scanned segments
    doc.write_text(doc.read_text() + "Wind on day 8.\n", encoding="utf-8")
    sync_index(settings)
    assert (current_generation(settings.index) / "faiss.index").stat().st_ino == inode
    assert _store_entry(settings)["layered"]["base"] == entry["layered"]["base"]
    _same_searches(settings, tmp_path)


def test_too_many_scanned_rows_build_the_store_again(tmp_path: Path) -> None:
    settings = _settings(tmp_path, flat_max=8, hnsw_ef_search=512)
    for i in range(20, 32):  # more new rows than flat_max
        (settings.corpus / f"doc{i:02d}.txt").write_text(f"New {i}\n\nSleet on day {i}.\n")
    sync_index(settings)
    entry = _store_entry(settings)
    assert "layered" not in entry and entry["type"] == "hnsw"
    _same_searches(settings, tmp_path)


def test_a_merge_builds_the_store_again(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _change(settings)
    sync_index(settings)
    assert "layered" in _store_entry(settings)
    sync_index(settings, optimize=True)
    assert "layered" not in _store_entry(settings)
    assert (current_generation(settings.index) / "faiss.index").exists()
    _same_searches(settings, tmp_path)


@pytest.mark.parametrize("damage", ["base missing", "base names no segment"])
def test_a_damaged_layered_store_is_named_and_rebuilt(tmp_path: Path, damage: str) -> None:
    settings = _settings(tmp_path, flat_max=8, hnsw_ef_search=512)
    _change(settings)
    sync_index(settings)
    gen = current_generation(settings.index)
    if damage == "base missing":
        (gen / "faiss.index").unlink()
    else:
        manifest = json.loads((gen / "manifest.json").read_text())
        manifest["store"]["layered"]["base"] = "segments/cv-gen-0-0.npy"
        (gen / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexDamagedError) as info:
        Index.load(settings.index, HashingEmbedder(256), settings)
    assert "--rebuild" in str(info.value) and "\n" not in str(info.value)
    result = sync_index(settings)
    assert result.action == "rebuilt"
    _same_searches(settings, tmp_path)
