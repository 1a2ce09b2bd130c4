"""Sentence vectors as segments (segments.py): an update links the old generation's
vectors and writes only the changed documents' rows; reads across segments equal a
clean build's; too many dead rows or runs merge them back into one array."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from citechat.cli import main
from citechat.config import Settings
from citechat.corpus import load_corpus
from citechat.embedding import HashingEmbedder
from citechat.errors import IndexDamagedError
from citechat.index import Index, current_generation, sync_index
from citechat.index import segments as seg_module
from citechat.index.segments import SegmentedVectors
from helpers import current_manifest, station_index


@pytest.fixture
def many(tmp_path: Path) -> Settings:
    return station_index(tmp_path)


def _clean(settings: Settings, tmp_path: Path) -> Index:
    other = settings.replace(index=tmp_path / "clean")
    return Index.build(load_corpus(settings.corpus), HashingEmbedder(256), other)


def test_segmented_vectors_read_rows_across_segments() -> None:
    a = np.arange(12.0, dtype=np.float32).reshape(6, 2)
    b = np.arange(100.0, 104.0, dtype=np.float32).reshape(2, 2)
    runs = np.array([[0, 0, 2], [1, 0, 2], [0, 4, 6]])
    v = SegmentedVectors([a, b], runs)
    whole = np.concatenate([a[0:2], b, a[4:6]])
    assert v.shape == (6, 2) and len(v) == 6
    assert np.array_equal(np.asarray(v), whole)
    for i in range(-6, 6):
        assert np.array_equal(v[i], whole[i])
    assert np.array_equal(v[1:5], whole[1:5])
    assert np.array_equal(v[np.array([5, 0, 3])], whole[[5, 0, 3]])
    assert np.array_equal(v[np.array([-1, 2])], whole[[-1, 2]])
    mask = np.array([True, False, True, False, False, True])
    assert np.array_equal(v[mask], whole[mask])
    assert v.pieces(1, 5) == [(0, 1, 2), (1, 0, 2), (0, 4, 5)]
    with pytest.raises(IndexError):
        v[6]
    with pytest.raises(IndexError):
        v[np.array([0, 6])]


def test_an_update_links_the_old_vectors_and_writes_only_the_changed_rows(
    many: Settings, tmp_path: Path
) -> None:
    old_gen = current_generation(many.index)
    inodes = {}
    for kind in ("vectors", "sentence_vectors"):  # a build: one array each
        assert (old_gen / f"{kind}.npy").exists() and kind not in current_manifest(many)
        inodes[kind] = (old_gen / f"{kind}.npy").stat().st_ino
    doc = many.corpus / "doc07.txt"
    doc.write_text(doc.read_text() + "One new sentence about hail.\n", encoding="utf-8")

    result = sync_index(many)
    assert result.action == "updated"
    gen = current_generation(many.index)
    ranges = {
        "vectors": result.index.rows.chunk_range("doc07.txt"),
        "sentence_vectors": result.index.rows.sentence_range("doc07.txt"),
    }
    clean = _clean(many, tmp_path)
    again = Index.load(many.index, HashingEmbedder(256), many)
    for kind, (lo, hi) in ranges.items():
        entry = current_manifest(many)[kind]
        assert not (gen / f"{kind}.npy").exists()
        linked, new = (gen / name for name in entry["segments"])
        assert linked.stat().st_ino == inodes[kind]  # old rows: a hard link, nothing written
        # the changed document's rows, nothing else
        assert int(np.load(new, mmap_mode="r").shape[0]) == hi - lo > 0
        for index in (result.index, again):
            assert isinstance(getattr(index, kind), SegmentedVectors)
            assert np.array_equal(np.asarray(getattr(index, kind)), getattr(clean, kind))
    assert ranges["sentence_vectors"][1] - ranges["sentence_vectors"][0] == 5
    query = clean.embedder.embed(["rain on day 2 at station 7"])[0]
    assert again.search_dense(query, 5) == clean.search_dense(query, 5)
    lo = ranges["sentence_vectors"][0]
    keys = list(clean.sentence_keys)
    for key in (keys[0], keys[lo], keys[-1]):
        got, want = again.sentence_vector(*key), clean.sentence_vector(*key)
        assert got is not None and want is not None and np.array_equal(got, want)


def test_updates_chain_segments_then_merge_when_rows_die(many: Settings, tmp_path: Path) -> None:
    for i in (3, 11):
        doc = many.corpus / f"doc{i:02d}.txt"
        doc.write_text(doc.read_text() + f"Update {i} came late.\n", encoding="utf-8")
        sync_index(many)
    for kind in ("vectors", "sentence_vectors"):
        # the build's array and one segment per update
        assert len(current_manifest(many)[kind]["segments"]) == 3
    for i in range(0, 20, 2):  # half the documents removed: most linked rows are dead
        (many.corpus / f"doc{i:02d}.txt").unlink()
    result = sync_index(many)
    gen = current_generation(many.index)
    clean = _clean(many, tmp_path)
    for kind in ("vectors", "sentence_vectors"):
        assert kind not in current_manifest(many) and (gen / f"{kind}.npy").exists()
        assert np.array_equal(np.asarray(getattr(result.index, kind)), getattr(clean, kind))
    assert not (gen / "segments").exists()


def test_too_many_runs_merge(
    many: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(seg_module, "MAX_RUNS", 2)
    doc = many.corpus / "doc05.txt"
    doc.write_text(doc.read_text() + "A late line.\n", encoding="utf-8")
    sync_index(many)  # runs: old, new, old: three
    assert "sentence_vectors" not in current_manifest(many) and "vectors" not in current_manifest(
        many
    )
    index = Index.load(many.index, HashingEmbedder(256), many)
    clean = _clean(many, tmp_path)
    assert np.array_equal(np.asarray(index.sentence_vectors), clean.sentence_vectors)
    assert np.array_equal(np.asarray(index.vectors), clean.vectors)


def test_a_removed_document_only_is_runs_of_the_old_array(many: Settings) -> None:
    (many.corpus / "doc19.txt").unlink()
    sync_index(many)
    for kind in ("vectors", "sentence_vectors"):  # nothing new written, the old linked
        entry = current_manifest(many)[kind]
        assert len(entry["segments"]) == 1 and entry["runs"][0][0] == 0
    for name in ("documents.jsonl", "chunks.jsonl", "sentences.jsonl"):  # the same for lines
        entry = current_manifest(many)["files"][name]
        assert len(entry["segments"]) == 1 and entry["runs"][0][0] == 0
    # each of the five old files linked, nothing new
    assert len(os.listdir(current_generation(many.index) / "segments")) == 5


def test_a_damaged_segment_is_named(many: Settings) -> None:
    doc = many.corpus / "doc07.txt"
    doc.write_text(doc.read_text() + "One new sentence about hail.\n", encoding="utf-8")
    sync_index(many)
    gen = current_generation(many.index)
    manifest = current_manifest(many)
    manifest["sentence_vectors"]["runs"][0][2] = 10**6
    (gen / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexDamagedError, match="outside its segment"):
        Index.load(many.index, HashingEmbedder(256), many)


def test_optimize_merges_the_segments_without_embedding(many: Settings, tmp_path: Path) -> None:
    doc = many.corpus / "doc07.txt"
    doc.write_text(doc.read_text() + "One new sentence about hail.\n", encoding="utf-8")
    sync_index(many)
    assert "vectors" in current_manifest(many) and "sentence_vectors" in current_manifest(many)
    assert sync_index(many).report is None  # current: a plain sync writes nothing

    code = main(
        [
            "--corpus",
            str(many.corpus),
            "--index",
            str(many.index),
            "--embedder",
            "hashing-256",
            "index",
            "--optimize",
        ]
    )
    assert code == 0
    gen = current_generation(many.index)
    assert "vectors" not in current_manifest(many) and "sentence_vectors" not in current_manifest(
        many
    )
    assert not (gen / "segments").exists()
    index = Index.load(many.index, HashingEmbedder(256), many)
    clean = _clean(many, tmp_path)
    assert np.array_equal(index.vectors, clean.vectors)
    assert np.array_equal(index.sentence_vectors, clean.sentence_vectors)
    again = sync_index(many, optimize=True)  # nothing left to merge: nothing written
    assert again.report is None and current_generation(many.index) == gen
