"""Faults of the index (issue 7): every kind of damage through the library and the
CLI is rebuilt or named in one line with its fix, another model's index is refused,
a failed save keeps the last good index, leftovers of killed writers are swept."""

import errno
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from citechat.cli import main
from citechat.config import Settings
from citechat.embedding import HashingEmbedder
from citechat.errors import (
    IndexDamagedError,
    IndexError_,
    IndexFormatError,
    IndexLockedError,
    IndexMismatchError,
)
from citechat.index import Index, current_generation, sweep, sync_index, write_lock
from helpers import QUESTION, generations, leftovers, one_line_error, run_citechat

# --- a damaged index ---------------------------------------------------------------


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _drop_last_line(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:-1]), encoding="utf-8")


def _manifest(gen: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((gen / "manifest.json").read_text())
    return data


def _edit_manifest(gen: Path, **changes: object) -> None:
    manifest = json.loads((gen / "manifest.json").read_text())
    manifest.update(changes)
    (gen / "manifest.json").write_text(json.dumps(manifest))


def _lexical_segment(gen: Path, which: int = -1) -> Path:
    return gen / "lexical" / str(_manifest(gen)["lexical"]["segments"][which])


def _point_current(gen: Path, name: str | bytes) -> None:
    pointer = gen.parent / "CURRENT"
    pointer.write_bytes(name if isinstance(name, bytes) else name.encode())


DAMAGE: dict[str, Callable[[Path], object]] = {
    "faiss truncated": lambda gen: _truncate(gen / "faiss.index"),
    "faiss missing": lambda gen: (gen / "faiss.index").unlink(),
    "faiss empty": lambda gen: (gen / "faiss.index").write_bytes(b""),
    "chunks missing": lambda gen: (gen / "chunks.jsonl").unlink(),
    "chunks truncated mid-line": lambda gen: _truncate(gen / "chunks.jsonl"),
    "chunks cut at a line end": lambda gen: _drop_last_line(gen / "chunks.jsonl"),
    "documents cut at a line end": lambda gen: _drop_last_line(gen / "documents.jsonl"),
    "sentences truncated": lambda gen: _truncate(gen / "sentences.jsonl", 0.7),
    "vectors truncated": lambda gen: _truncate(gen / "vectors.npy"),
    "sentence vectors missing": lambda gen: (gen / "sentence_vectors.npy").unlink(),
    "lexical terms truncated": lambda gen: _truncate(_lexical_segment(gen) / "token_ids.npy"),
    "lexical vocabulary missing": lambda gen: (gen / "lexical" / "vocab.json").unlink(),
    "lexical vocabulary cut": lambda gen: _truncate(gen / "lexical" / "vocab.json", 0.7),
    "BM25 postings missing": lambda gen: (_lexical_segment(gen) / "post_rows.npy").unlink(),
    "BM25 postings truncated": lambda gen: _truncate(_lexical_segment(gen) / "post_tf.npy"),
    "lexical segment missing": lambda gen: shutil.rmtree(_lexical_segment(gen)),
    "lexical frequencies missing": lambda gen: (gen / "lexical" / "df.npy").unlink(),
    "lexical runs outside": lambda gen: _edit_manifest(
        gen, lexical={**_manifest(gen)["lexical"], "runs": [[0, 0, 10**9]]}
    ),
    "lexical segment outside": lambda gen: _edit_manifest(
        gen, lexical={**_manifest(gen)["lexical"], "segments": ["../../x"]}
    ),
    "lexical counts wrong": lambda gen: _edit_manifest(
        gen, lexical={**_manifest(gen)["lexical"], "chunks": 1}
    ),
    "row tables missing": lambda gen: shutil.rmtree(gen / "rows"),
    "row offsets truncated": lambda gen: _truncate(gen / "rows" / "chunk_offsets.npy"),
    "row ids cut": lambda gen: _truncate(gen / "rows" / "doc_ids.bin", 0.9),
    "row spans missing": lambda gen: (gen / "rows" / "sentence_spans.npy").unlink(),
    "rows entry garbage": lambda gen: _edit_manifest(gen, rows={"version": "x"}),
    "manifest missing": lambda gen: (gen / "manifest.json").unlink(),
    "manifest garbage": lambda gen: (gen / "manifest.json").write_bytes(b"\x89\xff{not json"),
    "manifest not an object": lambda gen: (gen / "manifest.json").write_text("[1, 2]"),
    "manifest wrong counts": lambda gen: _edit_manifest(gen, counts={"documents": 7}),
    "CURRENT names a missing generation": lambda gen: _point_current(gen, "gen-20990101T0-1"),
    "CURRENT garbage bytes": lambda gen: _point_current(gen, b"\xff\xfe\x00garbage"),
    "CURRENT points outside": lambda gen: _point_current(gen, "../outside"),
    "generation deleted": lambda gen: shutil.rmtree(gen),
    "another citechat format": lambda gen: _edit_manifest(gen, format=99, citechat_version="9.0"),
}


def _segments(gen: Path, kind: str = "sentence_vectors") -> list[Path]:
    return [gen / name for name in _manifest(gen)[kind]["segments"]]


def _edit_runs(gen: Path, runs: object, kind: str = "sentence_vectors") -> None:
    _edit_manifest(gen, **{kind: {**_manifest(gen)[kind], "runs": runs}})


def _file_segments(gen: Path, name: str) -> list[Path]:
    return [gen / seg for seg in _manifest(gen)["files"][name]["segments"]]


def _edit_file_runs(gen: Path, name: str, runs: object) -> None:
    files = _manifest(gen)["files"]
    _edit_manifest(gen, files={**files, name: {**files[name], "runs": runs}})


#: damage to a generation whose sentence vectors are segments (an update's, segments.py)
SEGMENT_DAMAGE: dict[str, Callable[[Path], object]] = {
    "segment missing": lambda gen: _segments(gen)[0].unlink(),
    "new segment truncated": lambda gen: _truncate(_segments(gen)[-1]),
    "segment folder missing": lambda gen: shutil.rmtree(gen / "segments"),
    "runs garbage": lambda gen: _edit_runs(gen, "x"),
    "run outside its segment": lambda gen: _edit_runs(gen, [[0, 0, 10**9]]),
    "run of no segment": lambda gen: _edit_runs(gen, [[7, 0, 1]]),
    "runs short of the sentences": lambda gen: _edit_runs(gen, [[0, 0, 1]]),
    "chunk vector segment missing": lambda gen: _segments(gen, "vectors")[0].unlink(),
    "new chunk vector segment truncated": lambda gen: _truncate(_segments(gen, "vectors")[-1]),
    "chunk vector runs short": lambda gen: _edit_runs(gen, [[0, 0, 1]], "vectors"),
    "chunk vector runs garbage": lambda gen: _edit_runs(gen, [1, 2], "vectors"),
    "segment outside the generation": lambda gen: _edit_manifest(
        gen, sentence_vectors={"segments": ["../../outside/x.npy"], "runs": []}
    ),
    # the JSONL files as segments (rowfiles.py)
    "chunk lines segment missing": lambda gen: _file_segments(gen, "chunks.jsonl")[0].unlink(),
    "new document lines truncated": lambda gen: _truncate(
        _file_segments(gen, "documents.jsonl")[-1]
    ),
    "new sentence lines missing": lambda gen: _file_segments(gen, "sentences.jsonl")[-1].unlink(),
    "file runs garbage": lambda gen: _edit_file_runs(gen, "chunks.jsonl", "x"),
    "file run outside its segment": lambda gen: _edit_file_runs(
        gen, "chunks.jsonl", [[0, 0, 10**9]]
    ),
    "file runs short of the rows": lambda gen: _edit_file_runs(gen, "documents.jsonl", [[0, 0, 5]]),
    "file segment outside the generation": lambda gen: _edit_manifest(
        gen,
        files={**_manifest(gen)["files"], "chunks.jsonl": {"segments": ["../x"], "runs": []}},
    ),
    "whole file left instead of segments": lambda gen: _edit_manifest(gen, files={}),
    # the lexical part as segments (lexical.py): the old one linked, the new one written
    "linked lexical segment missing": lambda gen: shutil.rmtree(_lexical_segment(gen, 0)),
    "new lexical postings truncated": lambda gen: _truncate(
        _lexical_segment(gen) / "post_indptr.npy"
    ),
    "linked lexical terms truncated": lambda gen: _truncate(
        _lexical_segment(gen, 0) / "token_indptr.npy"
    ),
}
MISMATCH: dict[str, Callable[[Path], None]] = {
    "another embedder": lambda gen: _edit_manifest(gen, embedder="some/other-model", dim=384),
    "another chunking": lambda gen: _edit_manifest(gen, chunking={"max_tokens": 999}),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_index_load_says_how_to_fix_it(built: Settings, damage: str) -> None:
    DAMAGE[damage](current_generation(built.index))
    with pytest.raises((IndexDamagedError, IndexFormatError)) as err:
        Index.load(built.index, HashingEmbedder(256), built)
    message = str(err.value)
    assert "\n" not in message and str(built.index) in message
    assert message.endswith("; run `citechat index --rebuild`")


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_index_is_rebuilt_by_sync_index(
    built: Settings, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    DAMAGE[damage](current_generation(built.index))
    with caplog.at_level(logging.WARNING, logger="citechat"):
        result = sync_index(built)
    assert result.action == "rebuilt"
    assert f"; rebuilding it from the corpus {built.corpus}" in caplog.text
    assert "run `citechat index --rebuild`; rebuilding" not in caplog.text
    again = Index.load(built.index, HashingEmbedder(256), built)
    assert set(again.documents) == {"balls.txt", "weather.txt"}
    assert generations(built.index) == [current_generation(built.index).name]
    assert (built.index.parent / "outside").is_dir()  # nothing outside the index is touched


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_index_cli_index_rebuilds(
    built: Settings, cli_env: Settings, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    DAMAGE[damage](current_generation(built.index))
    assert main(["index"]) == 0
    assert f"index rebuilt at {built.index}" in capsys.readouterr().out


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_index_cli_ask_still_answers(
    built: Settings,
    cli_env: Settings,
    damage: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    DAMAGE[damage](current_generation(built.index))
    with caplog.at_level(logging.WARNING, logger="citechat"):
        assert main(["ask", QUESTION]) == 0
    assert "Sources:" in capsys.readouterr().out
    assert "rebuilding it from the corpus" in caplog.text


def test_damaged_index_in_a_real_process_warns_in_one_line(built: Settings) -> None:
    _truncate(current_generation(built.index) / "faiss.index")
    proc = run_citechat(built, "ask", QUESTION)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    (warning,) = proc.stderr.strip().splitlines()
    assert warning.startswith(f"citechat: WARNING: the index at {built.index} is damaged (")
    assert warning.endswith(f"; rebuilding it from the corpus {built.corpus}")
    assert "Sources:" in proc.stdout


def test_damaged_index_without_the_corpus_is_a_one_line_error(built: Settings) -> None:
    _truncate(current_generation(built.index) / "chunks.jsonl")
    shutil.rmtree(built.corpus)
    proc = run_citechat(built, "ask", QUESTION)
    assert proc.returncode == 3
    assert "corpus not found" in one_line_error(proc.stderr)


@pytest.mark.parametrize("mismatch", MISMATCH)
def test_index_of_another_model_is_refused_not_rebuilt(
    built: Settings, cli_env: Settings, mismatch: str, capsys: pytest.CaptureFixture[str]
) -> None:
    gen = current_generation(built.index)
    MISMATCH[mismatch](gen)
    with pytest.raises(IndexMismatchError, match=r"; run `citechat index --rebuild`"):
        Index.load(built.index, HashingEmbedder(256), built)
    with pytest.raises(IndexMismatchError):
        sync_index(built)
    for command in (["index"], ["ask", QUESTION]):
        assert main(command) == 4
        err = one_line_error(capsys.readouterr().err)
        assert "was built with" in err and "--rebuild" in err
    assert current_generation(built.index) == gen  # the other model's work is kept
    assert main(["index", "--rebuild"]) == 0
    assert "index rebuilt" in capsys.readouterr().out


def test_failed_save_keeps_the_previous_index(
    built: Settings,
    cli_env: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = current_generation(built.index)
    (built.corpus / "extra.txt").write_text("Extra\n\nMore text.\n")

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", disk_full)
    with pytest.raises(IndexError_, match="No space left on device"):
        sync_index(built)
    assert main(["index"]) == 4
    err = one_line_error(capsys.readouterr().err)
    assert "the last complete index is kept" in err and "free disk space" in err
    assert current_generation(built.index) == before and not leftovers(built.index)
    assert "extra.txt" not in Index.load(built.index, HashingEmbedder(256), built).documents


def test_index_folder_that_is_a_file_is_a_one_line_error(
    cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_env.index.write_text("not a folder")
    assert main(["index"]) == 4
    err = one_line_error(capsys.readouterr().err)
    assert f"cannot write the index folder {cli_env.index}" in err and "--index" in err


def test_sweep_removes_what_a_killed_writer_left(built: Settings) -> None:
    current = current_generation(built.index)
    (built.index / ".tmp-gen-1-2").mkdir()
    (built.index / "gen-20000101T000000000000-9").mkdir()
    (built.index / ".CURRENT.tmp").write_text("gen-x\n")
    assert sweep(built.index) == [".CURRENT.tmp", ".tmp-gen-1-2", "gen-20000101T000000000000-9"]
    assert generations(built.index) == [current.name] and not leftovers(built.index)
    # with CURRENT unreadable, generations are kept for a rebuild to replace
    (built.index / "CURRENT").write_text("nonsense")
    assert sweep(built.index) == [] and generations(built.index) == [current.name]


def test_writer_lock_is_released_after_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), write_lock(tmp_path):
        raise RuntimeError("boom")
    with write_lock(tmp_path, wait_s=0):
        pass


def test_lock_refusal_is_an_index_error(tmp_path: Path) -> None:
    with (
        write_lock(tmp_path),
        pytest.raises(IndexLockedError) as err,
        write_lock(tmp_path, wait_s=0),
    ):
        pass
    assert err.value.exit_code == 4


@pytest.fixture
def segmented(built: Settings) -> Settings:
    """``built`` after an update that added a document: its sentence vectors are the
    build's array, linked, and a segment of the new document's rows."""
    (built.corpus / "extra.txt").write_text("Extra news\n\nA brand new article appeared.\n")
    sync_index(built)
    assert "sentence_vectors" in _manifest(current_generation(built.index))
    return built


@pytest.mark.parametrize("damage", SEGMENT_DAMAGE)
def test_a_damaged_segment_is_named_and_rebuilt(segmented: Settings, damage: str) -> None:
    SEGMENT_DAMAGE[damage](current_generation(segmented.index))
    with pytest.raises(IndexDamagedError) as info:
        Index.load(segmented.index, HashingEmbedder(256), segmented)
    assert "damaged" in str(info.value) and "--rebuild" in str(info.value)
    assert "\n" not in str(info.value)
    result = sync_index(segmented)
    assert result.action == "rebuilt"
    assert "extra.txt" in result.index.documents
    assert result.index.sentence_vectors.shape[0] == len(result.index.sentence_keys)


def test_every_message_names_a_fix(built: Settings) -> None:
    """Each damage message ends with what to run."""
    messages = []
    for damage in ("manifest missing", "faiss truncated", "CURRENT garbage bytes"):
        sync_index(built, rebuild=True)
        DAMAGE[damage](current_generation(built.index))
        with pytest.raises(IndexError_) as err:
            Index.load(built.index, HashingEmbedder(256), built)
        messages.append(str(err.value))
    shutil.rmtree(built.index)
    with pytest.raises(IndexError_) as err:
        Index.load(built.index, HashingEmbedder(256), built)
    messages.append(str(err.value))
    assert all("; run `citechat index" in m for m in messages), messages
