"""The JSONL files as segments (rowfiles.py): an update links the old generation's
documents.jsonl, chunks.jsonl and sentences.jsonl and writes only the changed documents'
lines; what a loaded index reads equals a fresh build's; dead bytes merge them back."""

import json
from pathlib import Path

import numpy as np
import pytest

from citechat.config import Settings
from citechat.corpus import load_corpus
from citechat.embedding import HashingEmbedder
from citechat.index import Index, current_generation, sync_index
from citechat.index.rowfiles import LogicalFile
from helpers import current_manifest, station_index

FILES = ("documents.jsonl", "chunks.jsonl", "sentences.jsonl")


@pytest.fixture
def many(tmp_path: Path) -> Settings:
    return station_index(tmp_path)


def _same_as_fresh(settings: Settings, tmp_path: Path) -> Index:
    """The index at ``settings`` reads as a fresh build of its corpus does."""
    index = Index.load(settings.index, HashingEmbedder(256), settings)
    clean = Index.build(
        load_corpus(settings.corpus),
        HashingEmbedder(256),
        settings.replace(index=tmp_path / f"clean-{len(list(tmp_path.iterdir()))}"),
    )
    chunks = list(clean.chunks)
    assert list(index.chunks) == chunks
    assert [index.chunks[i] for i in range(len(chunks))] == chunks
    assert list(index.sentence_keys) == list(clean.sentence_keys)
    assert dict(index.documents) == dict(clean.documents)
    for doc_id in clean.documents:
        assert index.documents[doc_id] == clean.documents[doc_id]
    return index


def _change(settings: Settings) -> None:
    doc = settings.corpus / "doc07.txt"
    doc.write_text(doc.read_text() + "Hail fell at station 7 on day 5.\n", encoding="utf-8")
    (settings.corpus / "doc12.txt").unlink()
    (settings.corpus / "doc99.txt").write_text("Late report\n\nSnow at station 99.\n")


def test_logical_file_reads_across_runs(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"0123456789")
    (tmp_path / "b").write_bytes(b"abcdef")
    f = LogicalFile([tmp_path / "a", tmp_path / "b"], np.array([[0, 0, 3], [1, 1, 4], [0, 8, 10]]))
    whole = b"012" + b"bcd" + b"89"
    assert f.size == len(whole)
    for lo in range(len(whole)):
        for hi in range(lo, len(whole) + 1):
            assert f.read(lo, hi) == whole[lo:hi]


def test_an_update_links_the_old_lines_and_writes_only_the_changed(
    many: Settings, tmp_path: Path
) -> None:
    old_gen = current_generation(many.index)
    inodes = {name: (old_gen / name).stat().st_ino for name in FILES}
    _change(many)
    result = sync_index(many)
    assert result.action == "updated"
    gen = current_generation(many.index)
    entry = current_manifest(many)["files"]
    for name in FILES:
        assert not (gen / name).exists()
        linked, new = (gen / seg for seg in entry[name]["segments"])
        assert linked.stat().st_ino == inodes[name]  # a hard link: nothing written
        lines = [json.loads(line) for line in new.read_bytes().splitlines()]
        # only the changed and the added document's rows
        if name in ("chunks.jsonl", "documents.jsonl"):
            assert {row["doc_id"] for row in lines} == {"doc07.txt", "doc99.txt"}
        else:
            assert {row[0] for row in lines} == {"doc07.txt", "doc99.txt"}
    _same_as_fresh(many, tmp_path)

    doc = many.corpus / "doc15.txt"  # chained: the segments of both linked
    doc.write_text(doc.read_text() + "Wind on day 8.\n", encoding="utf-8")
    sync_index(many)
    assert len(current_manifest(many)["files"]["chunks.jsonl"]["segments"]) == 3
    _same_as_fresh(many, tmp_path)


def test_a_changed_title_is_a_change(tmp_path: Path) -> None:
    """A document whose text is unchanged but whose title (a JSONL corpus's) differs
    is changed: its line and its chunks are new, with the new title, as a fresh build
    cuts them; its sentences (text only) are as fresh too."""
    corpus = tmp_path / "corpus.jsonl"
    records = [
        {"id": f"r{i}", "title": f"Report {i}", "text": f"Station {i} saw rain on day {i}."}
        for i in range(6)
    ]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records))
    settings = Settings(corpus=corpus, index=tmp_path / "index", embedder="hashing-256")
    sync_index(settings)
    records[2]["title"] = "A better title"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = sync_index(settings)
    assert result.report is not None
    assert (result.report.docs_kept, result.report.docs_changed) == (5, 1)
    gen = current_generation(settings.index)
    entry = current_manifest(settings)["files"]
    new = gen / entry["documents.jsonl"]["segments"][-1]
    assert [json.loads(line)["title"] for line in new.read_bytes().splitlines()] == [
        "A better title"
    ]
    chunks = gen / entry["chunks.jsonl"]["segments"][-1]
    assert {json.loads(line)["title"] for line in chunks.read_bytes().splitlines()} == {
        "A better title"
    }
    index = _same_as_fresh(settings, tmp_path)  # titles included
    assert index.documents["r2"].title == "A better title"
    assert {c.title for c in index.chunks if c.doc_id == "r2"} == {"A better title"}


def test_dead_lines_merge_the_files(many: Settings, tmp_path: Path) -> None:
    _change(many)
    sync_index(many)
    assert "files" in current_manifest(many)
    for i in range(0, 20, 2):  # half the documents removed: most linked bytes are dead
        (many.corpus / f"doc{i:02d}.txt").unlink(missing_ok=True)
    sync_index(many)
    gen = current_generation(many.index)
    assert "files" not in current_manifest(many)
    assert all((gen / name).is_file() for name in FILES)
    _same_as_fresh(many, tmp_path)


def test_optimize_writes_whole_files(many: Settings, tmp_path: Path) -> None:
    _change(many)
    sync_index(many)
    sync_index(many, optimize=True)
    gen = current_generation(many.index)
    assert "files" not in current_manifest(many) and not (gen / "segments").exists()
    _same_as_fresh(many, tmp_path)
