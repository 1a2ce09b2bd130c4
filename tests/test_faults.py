"""Faults and bad input (issue 7): nothing a user can feed in or break ends in a
traceback or loses the last good index.

Covers bad corpus files through ``citechat index``, every kind of index damage
through the library and the CLI, builds killed with a real SIGKILL at each step
of a save, two concurrent ``citechat index`` processes, hostile questions, a
generator that is down or slow, and the CLI's error contract (one line, exit
code by error class, ``--debug`` shows the traceback).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from citechat import cli
from citechat.cli import main
from citechat.config import Settings
from citechat.corpus import load_corpus
from citechat.embedding import HashingEmbedder
from citechat.errors import (
    CitechatError,
    ConfigError,
    CorpusError,
    IndexDamagedError,
    IndexError_,
    IndexFormatError,
    IndexLockedError,
    IndexMismatchError,
    ModelError,
    UsageError,
)
from citechat.index import Index, current_generation, sweep, sync_index, write_lock
from citechat.pipeline import Pipeline
from citechat.types import Answer

QUESTION = "Who was appointed new director?"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# --- helpers -------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, fake_settings: Settings, tmp_path: Path) -> Settings:
    monkeypatch.setenv("CITECHAT_CORPUS", str(fake_settings.corpus))
    monkeypatch.setenv("CITECHAT_INDEX", str(fake_settings.index))
    monkeypatch.setenv("CITECHAT_EMBEDDER", "hashing-256")
    monkeypatch.chdir(tmp_path)
    return fake_settings


def child_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "CITECHAT_CORPUS": str(settings.corpus),
        "CITECHAT_INDEX": str(settings.index),
        "CITECHAT_EMBEDDER": "hashing-256",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUTF8": "1",
    }


def run_citechat(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``citechat`` command in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "citechat", *args],
        env=child_env(settings),
        cwd=settings.index.parent,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
        check=False,
    )


def one_line_error(err: str) -> str:
    """The stderr of a failed command, asserted to be one error line without a traceback."""
    lines = [ln for ln in err.splitlines() if ln.startswith("citechat: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def blank_pdf(path: Path, *, password: str | None = None) -> Path:
    """A one-page PDF with no text (a scan), optionally password-protected."""
    import pypdf

    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=200, height=200)
    if password:
        writer.encrypt(password, algorithm="RC4-128")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        writer.write(fh)
    return path


def assert_cites_corpus(answer: Answer, index: Index) -> None:
    for c in answer.citations:
        assert index.documents[c.doc_id].text[c.start : c.end] == c.quote


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith((".tmp-", ".CURRENT")))


def generations(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("gen-"))


# --- bad corpus files -------------------------------------------------------------


def make_unreadable(monkeypatch: pytest.MonkeyPatch, file: Path, folder: Path) -> None:
    """chmod 000 a file and a folder; as root (tests here run as root, where chmod
    does not stop reads) the same PermissionError is raised by patched calls."""
    file.chmod(0)
    folder.chmod(0)
    if not IS_ROOT:
        return
    real_read_bytes, real_scandir = Path.read_bytes, os.scandir

    def read_bytes(self: Path) -> bytes:
        if self.name == file.name:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_read_bytes(self)

    def scandir(path: object = ".") -> object:
        if Path(str(path)).name == folder.name:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr(os, "scandir", scandir)


@pytest.fixture
def bad_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Two good documents, three non-UTF-8 ones and every kind of bad file."""
    c = tmp_path / "corpus"
    write(c / "good.txt", "Balls appoints director\n\nEd Balls appointed Peter Lewis.\n")
    write(c / "snow.md", "# Snow\n\nHeavy snow closed schools in London.\n")
    write(c / "latin1.txt", "Café society\n\nNaïve reviews cost £5 in Zürich.\n".encode("latin-1"))
    write(c / "cp1252.txt", "Quotes\n\nIt’s “quoted” and costs €5 — really.\n".encode("cp1252"))
    write(c / "utf16.txt", "Snowman\n\nThe ☃ melted in Kraków.\n".encode("utf-16"))
    write(c / "garbage.pdf", bytes(range(256)) * 8 + b"not a pdf")
    write(c / "empty.txt", b"")
    write(c / "blank.md", " \n\t\n")
    write(c / "binary.txt", b"\x00\x01\x02ELF\x00")
    blank_pdf(c / "scan.pdf")
    blank_pdf(c / "locked.pdf", password="secret")
    write(c / "script.html", "<html><body><script>var x = 1;</script></body></html>")
    # 50 MB of text: over the default 50 MB limit (corpus.MAX_BYTES)
    with (c / "huge.txt").open("wb") as fh:
        fh.write(b"Huge\n\n")
        chunk = b"All work and no play makes Jack a dull boy. " * 1000
        while fh.tell() <= 50_000_000:
            fh.write(chunk)
    os.symlink(c, c / "loop")  # a folder that contains itself
    os.symlink(c / "self.txt", c / "self.txt")  # a file link to itself
    write(c / "secret.txt", "Secret\n\nNobody may read this.\n")
    write(c / "locked-folder" / "inside.txt", "Inside\n\nNot readable.\n")
    make_unreadable(monkeypatch, c / "secret.txt", c / "locked-folder")
    yield c
    (c / "locked-folder").chmod(0o755)  # so tmp_path can be removed
    (c / "secret.txt").chmod(0o644)


SKIPPED = {
    "garbage.pdf": "unreadable PDF",
    "empty.txt": "empty file",
    "blank.md": "empty file",
    "binary.txt": "binary file, not text",
    "scan.pdf": "no extractable text (image-only PDF?)",
    "locked.pdf": "password-protected PDF",
    "script.html": "no text in HTML",
    "huge.txt": "larger than 50 MB limit",
    "loop": "symlink loop or folder already read",
    "self.txt": "cannot read file: Too many levels of symbolic links",
    "secret.txt": "cannot read file: Permission denied",
    "locked-folder": "cannot read folder: Permission denied",
}


def assert_skips(skipped: dict[str, str]) -> None:
    assert sorted(skipped) == sorted(SKIPPED)
    for name, reason in SKIPPED.items():
        assert skipped[name].startswith(reason), (name, skipped[name])
        assert "\n" not in skipped[name]


DECODED = {
    "latin1.txt": ("Café society\n\nNaïve reviews cost £5 in Zürich.\n", "cp1252"),
    "cp1252.txt": ("Quotes\n\nIt’s “quoted” and costs €5 — really.\n", "cp1252"),
    "utf16.txt": ("Snowman\n\nThe ☃ melted in Kraków.\n", None),
}


def test_library_skips_each_bad_file_with_its_reason(bad_corpus: Path) -> None:
    skipped: dict[str, str] = {}
    docs = load_corpus(bad_corpus, on_skip=lambda p, r: skipped.update({Path(p).name: r}))
    assert_skips(skipped)
    assert [d.doc_id for d in docs] == sorted(["good.txt", "snow.md", *DECODED])
    for doc in docs:
        if doc.doc_id in DECODED:
            assert doc.text == DECODED[doc.doc_id][0]
        for s in doc.sections:
            assert doc.text[s.start : s.end] == doc.section_text(s)


def test_citechat_index_skips_bad_files_and_indexes_the_rest(
    bad_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("CITECHAT_EMBEDDER", "hashing-256")
    index = tmp_path / "index"
    with caplog.at_level(logging.WARNING, logger="citechat"):
        code = main(["--corpus", str(bad_corpus), "--index", str(index), "index"])
    out = capsys.readouterr().out
    assert code == 0
    assert "index built" in out and "5 added" in out
    assert f"skipped {len(SKIPPED)} file(s): " in out
    for name, reason in SKIPPED.items():
        assert f"{name} ({reason}" in out
    # one warning line per skipped file, naming the file and the reason
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for name, reason in SKIPPED.items():
        (line,) = [w for w in warnings if w.startswith("skipped") and f"/{name}: " in w]
        assert reason in line and "\n" not in line
    for name, (_, encoding) in DECODED.items():
        decoded = [w for w in warnings if f"{name} is not UTF-8" in w]
        assert decoded == (
            [f"{bad_corpus / name} is not UTF-8; decoded it as {encoding}"] if encoding else []
        )
    loaded = Index.load(index, HashingEmbedder(256), Settings(embedder="hashing-256"))
    assert set(loaded.documents) == {"good.txt", "snow.md", *DECODED}
    assert loaded.documents["cp1252.txt"].text == DECODED["cp1252.txt"][0]


def test_citechat_index_json_lists_skipped_files(
    bad_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--corpus", str(bad_corpus), "--index", str(tmp_path / "i"), "--embedder"]
    assert main([*args, "hashing-256", "index", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert_skips({Path(s["path"]).name: s["reason"] for s in data["skipped"]})
    assert data["index"]["documents"] == 5


def test_aes_pdf_without_cryptography_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pypdf

    def needs_cryptography(self: object, password: str) -> object:
        raise pypdf.errors.DependencyError("cryptography>=3.1 is required for AES algorithm")

    monkeypatch.setattr(pypdf.PdfReader, "decrypt", needs_cryptography)
    blank_pdf(tmp_path / "aes.pdf", password="x")
    write(tmp_path / "ok.txt", "Ok\n\nFine.\n")
    skipped: list[tuple[str, str]] = []
    load_corpus(tmp_path, on_skip=lambda p, r: skipped.append((Path(p).name, r)))
    assert skipped == [
        (
            "aes.pdf",
            "AES-encrypted PDF; reading it needs the cryptography package "
            "(pip install cryptography)",
        )
    ]


def test_a_parser_crash_skips_that_file_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import citechat.corpus

    def broken(html: str, doc_id: str) -> object:
        raise RecursionError("maximum recursion depth exceeded\n  while parsing <div>")

    monkeypatch.setattr(citechat.corpus, "_parse_html", broken)
    write(tmp_path / "deep.html", "<html><body><p>Deep.</p></body></html>")
    write(tmp_path / "ok.txt", "Ok\n\nFine.\n")
    skipped: list[tuple[str, str]] = []
    docs = load_corpus(tmp_path, on_skip=lambda p, r: skipped.append((Path(p).name, r)))
    assert [d.doc_id for d in docs] == ["ok.txt"]
    assert skipped == [
        (
            "deep.html",
            "cannot parse: RecursionError: maximum recursion depth exceeded while parsing <div>",
        )
    ]


def test_corpus_of_only_bad_files_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "c" / "garbage.pdf", b"%PDF-garbage")
    write(tmp_path / "c" / "empty.txt", b"")
    monkeypatch.setenv("CITECHAT_EMBEDDER", "hashing-256")
    args = ["--corpus", str(tmp_path / "c"), "--index", str(tmp_path / "i"), "index"]
    assert main(args) == 3
    err = one_line_error(capsys.readouterr().err)
    assert "no readable documents" in err and "add .txt" in err


@pytest.mark.skipif(IS_ROOT, reason="root reads chmod 000 files; simulated in the tests above")
def test_chmod_000_file_is_skipped(tmp_path: Path) -> None:
    write(tmp_path / "ok.txt", "Ok\n\nFine.\n")
    secret = write(tmp_path / "secret.txt", "Secret\n\nHidden.\n")
    secret.chmod(0)
    skipped: list[tuple[str, str]] = []
    try:
        load_corpus(tmp_path, on_skip=lambda p, r: skipped.append((Path(p).name, r)))
    finally:
        secret.chmod(0o644)
    assert skipped == [("secret.txt", "cannot read file: Permission denied")]


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


def _point_current(gen: Path, name: str | bytes) -> None:
    pointer = gen.parent / "CURRENT"
    pointer.write_bytes(name if isinstance(name, bytes) else name.encode())


DAMAGE: dict[str, Callable[[Path], None]] = {
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
    "lexical terms truncated": lambda gen: _truncate(gen / "lexical" / "token_ids.npy"),
    "lexical vocabulary missing": lambda gen: (gen / "lexical" / "vocab.json").unlink(),
    "lexical vocabulary cut": lambda gen: _truncate(gen / "lexical" / "vocab.json", 0.7),
    "BM25 missing": lambda gen: shutil.rmtree(gen / "lexical" / "bm25"),
    "BM25 matrix truncated": lambda gen: _truncate(gen / "lexical" / "bm25" / "data.csc.index.npy"),
    "lexical counts wrong": lambda gen: _edit_manifest(
        gen, lexical={**_manifest(gen)["lexical"], "chunks": 1}
    ),
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
MISMATCH: dict[str, Callable[[Path], None]] = {
    "another embedder": lambda gen: _edit_manifest(gen, embedder="some/other-model", dim=384),
    "another chunking": lambda gen: _edit_manifest(gen, chunking={"max_tokens": 999}),
}


@pytest.fixture
def built(fake_settings: Settings) -> Settings:
    sync_index(fake_settings)
    (fake_settings.index.parent / "outside").mkdir()  # a target for "CURRENT points outside"
    return fake_settings


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


# --- builds killed with SIGKILL; concurrent builds -------------------------------------

CHILD = textwrap.dedent(
    """
    import contextlib, os, sys, time
    from pathlib import Path
    import citechat.embedding, citechat.index, citechat.index.sync

    marks, phase = Path(sys.argv[1]), sys.argv[2]

    def mark(name):
        (marks / name).write_text(str(os.getpid()))

    def hang(name):
        mark(name)
        time.sleep(600)  # until the test kills this process

    if phase == "embedding":
        citechat.embedding.HashingEmbedder.embed = lambda self, texts: hang("embedding")
    elif phase == "writing":
        import citechat.index.build
        real_write = citechat.index.build.StreamedBuild.write_batch
        def write_then_hang(self, batch):
            real_write(self, batch)
            hang("writing")  # a batch's rows are in the temporary folder
        citechat.index.build.StreamedBuild.write_batch = write_then_hang
    elif phase == "lexical":
        import citechat.index.lexical
        real_finish = citechat.index.lexical.LexicalBuilder.finish
        def finish_then_hang(self, folder):
            entry = real_finish(self, folder)
            hang("lexical")  # vectors, terms and BM25 written; the store and manifest not yet
            return entry
        citechat.index.lexical.LexicalBuilder.finish = finish_then_hang
    elif phase == "switching":
        real_replace = os.replace
        def replace(src, dst):
            if Path(src).name == ".CURRENT.tmp":
                hang("switching")  # the new generation is in place, CURRENT not yet
            return real_replace(src, dst)
        os.replace = replace
    elif phase == "cleaning":
        import citechat.index.generations
        citechat.index.generations.remove_old_generations = lambda folder, keep: hang("cleaning")
    elif phase == "logged":
        # holds the lock until the test creates marks/go, logging when it has it
        real_embed = citechat.embedding.HashingEmbedder.embed
        def slow_embed(self, texts):
            while not (marks / "go").exists():
                time.sleep(0.05)
            return real_embed(self, texts)
        citechat.embedding.HashingEmbedder.embed = slow_embed
        real_lock = citechat.index.sync.write_lock
        @contextlib.contextmanager
        def logged_lock(folder, **kw):
            with real_lock(folder, **kw):
                with open(marks / "events", "a") as fh:
                    fh.write(f"acquired {os.getpid()}\\n")
                try:
                    yield
                finally:
                    with open(marks / "events", "a") as fh:
                        fh.write(f"released {os.getpid()}\\n")
        citechat.index.sync.write_lock = logged_lock
    elif phase == "impatient":
        import functools
        citechat.index.sync.write_lock = functools.partial(
            citechat.index.sync.write_lock, wait_s=0.5
        )

    from citechat.cli import main
    sys.exit(main(sys.argv[3:]))
    """
)


def start_child(
    settings: Settings, marks: Path, phase: str, *args: str, stderr: Path | None = None
) -> subprocess.Popen[str]:
    """A ``citechat`` process with ``phase``'s patches (see CHILD); ``stderr`` to a file."""
    marks.mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        err = stack.enter_context(stderr.open("w")) if stderr else subprocess.PIPE
        return subprocess.Popen(
            [sys.executable, "-c", CHILD, str(marks), phase, *args],
            env=child_env(settings),
            cwd=settings.index.parent,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    """Poll ``condition`` until it holds; fail (never hang) if the child exits first."""
    deadline = time.monotonic() + 120
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"child exited ({proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


@pytest.mark.parametrize("phase", ["embedding", "writing", "lexical", "switching", "cleaning"])
def test_build_killed_at_any_step(built: Settings, tmp_path: Path, phase: str) -> None:
    before = current_generation(built.index)
    (built.corpus / "extra.txt").write_text("Extra news\n\nA brand new article appeared.\n")
    marks = tmp_path / "marks"
    proc = start_child(built, marks, phase, "index")
    wait_for((marks / phase).exists, proc, f"the {phase} step")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    if phase in ("writing", "lexical"):
        assert any(n.startswith(".tmp-gen-") for n in leftovers(built.index))
    if phase == "switching":
        assert len(generations(built.index)) == 2 and ".CURRENT.tmp" in leftovers(built.index)
    # the index still loads and answers: the old one, or the new one once CURRENT moved
    landed = phase == "cleaning"
    assert (current_generation(built.index) == before) is not landed
    index = Index.load(built.index, HashingEmbedder(256), built)
    assert ("extra.txt" in index.documents) is landed
    answer = Pipeline(built, index).ask(QUESTION)
    assert answer.citations and not answer.abstained
    assert_cites_corpus(answer, index)

    # the next `citechat index` completes the update and cleans up
    proc2 = run_citechat(built, "index")
    assert proc2.returncode == 0, proc2.stderr
    assert ("up to date" if landed else "index updated") in proc2.stdout
    assert "extra.txt" in Index.load(built.index, HashingEmbedder(256), built).documents
    assert not leftovers(built.index)
    assert generations(built.index) == [current_generation(built.index).name]


def test_two_concurrent_builds_take_turns(fake_settings: Settings, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    first = start_child(fake_settings, marks, "logged", "index")
    wait_for((marks / "events").exists, first, "the first build to take the lock")
    second = start_child(fake_settings, marks, "logged", "index", stderr=tmp_path / "err2")
    wait_for(lambda: "waiting" in (tmp_path / "err2").read_text(), second, "the second to wait")
    (marks / "go").touch()
    out1, err1 = first.communicate(timeout=120)
    out2, _ = second.communicate(timeout=120)
    assert first.returncode == 0 and second.returncode == 0, err1
    assert "index built" in out1 and "up to date" in out2
    assert "another `citechat index` is writing" in (tmp_path / "err2").read_text()
    events = (marks / "events").read_text().split()
    assert events == [
        "acquired",
        str(first.pid),
        "released",
        str(first.pid),
        "acquired",
        str(second.pid),
        "released",
        str(second.pid),
    ]
    assert len(generations(fake_settings.index)) == 1 and not leftovers(fake_settings.index)


def test_a_second_build_gives_up_with_a_one_line_error(
    fake_settings: Settings, tmp_path: Path
) -> None:
    with write_lock(fake_settings.index):
        proc = start_child(fake_settings, tmp_path / "marks", "impatient", "index")
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 4
    line = one_line_error(err)
    assert "another `citechat index` is writing" in line and "try again" in line
    assert not (fake_settings.index / "CURRENT").exists()


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


# --- questions ---------------------------------------------------------------------


@pytest.mark.parametrize("question", ["", "   ", "\n\t \r\n", "\x00\x1b\u200f\u202e", "\x7f\x08"])
def test_empty_question_is_a_usage_error(
    pipe: Pipeline, cli_env: Settings, question: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(UsageError, match="the question is empty"):
        pipe.ask(question)
    assert main(["ask", question]) == 2
    assert "the question is empty" in one_line_error(capsys.readouterr().err)


def test_long_question_is_cut_with_a_notice(
    pipe: Pipeline, cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    long = QUESTION + " " + "very " * 2000
    answer = pipe.ask(long)
    assert len(answer.question) == 2000 and answer.question.startswith(QUESTION)
    assert answer.notice == "The question was cut to its first 2000 characters."
    assert main(["ask", long]) == 0
    assert "note: The question was cut to its first 2000 characters." in capsys.readouterr().out
    short = Pipeline(pipe.settings.replace(max_question_chars=10), pipe.index)
    assert short.ask(long).question == QUESTION[:10]


@pytest.mark.parametrize(
    "question",
    [
        "Who was\x00 appointed\x1b[31m new director?\x1b[0m",
        "\u202eWho was appointed new director?\u200f",
        "Who was appointed new director? 👩‍💼🎉",
        "新主任是谁？ Who was appointed new director?",
        "من هو المدير الجديد؟ Who was appointed new director?",
        "Who\u2028was\u2029appointed new director?",
    ],
)
def test_control_characters_and_any_unicode_are_fine(pipe: Pipeline, question: str) -> None:
    answer = pipe.ask(question)
    assert answer.citations and answer.citations[0].doc_id == "balls.txt"
    assert not any(ch in answer.question for ch in "\x00\x1b\u202e")
    assert_cites_corpus(answer, pipe.index)


@pytest.mark.parametrize(
    "question", ["新主任是谁？", "🎉🎉🎉", "ﷺ" * 3000, "\U0010ffff?", "[1] [0] [99]"]
)
def test_questions_without_matching_words_do_not_crash(pipe: Pipeline, question: str) -> None:
    answer = pipe.ask(question)
    assert answer.abstained or answer.citations
    assert_cites_corpus(answer, pipe.index)
    json.dumps(answer.to_json(), ensure_ascii=False)


def test_unicode_and_control_characters_through_the_real_cli(built: Settings) -> None:
    question = "\u202eWho was appointed\x1b[31m new director? 👩‍💼 新主任\u200f"
    proc = run_citechat(built, "ask", question, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["citations"][0]["doc_id"] == "balls.txt"
    assert "👩" in data["question"] and "新主任" in data["question"]
    assert "\x1b" not in data["question"] and "\u202e" not in data["question"]
    proc = run_citechat(built, "ask", " \t ")
    assert proc.returncode == 2 and "the question is empty" in one_line_error(proc.stderr)


# --- a generator that fails ------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung endpoint)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


def test_endpoint_down_falls_back_to_the_extractive_answer(pipe: Pipeline) -> None:
    spec = f"openai:http://127.0.0.1:{_closed_port()}/v1#m"
    with pytest.raises(ModelError, match="cannot be reached"):
        pipe.ask(QUESTION, answerer=spec)
    answer = pipe.ask(QUESTION, answerer=spec, fallback=True)
    assert answer.answerer == "extractive" and answer.citations and not answer.abstained
    assert answer.notice is not None
    assert answer.notice.startswith("The language model could not answer (the endpoint http://")
    assert "cannot be reached" in answer.notice
    assert answer.notice.endswith("showing the extractive answer.")
    assert_cites_corpus(answer, pipe.index)
    assert pipe.ask(QUESTION).citations  # the pipeline keeps serving


def test_endpoint_timeout_falls_back(fake_settings: Settings, silent_server: int) -> None:
    pipe = Pipeline.load(fake_settings.replace(openai_timeout=0.3))
    spec = f"openai:http://127.0.0.1:{silent_server}/v1#m"
    answer = pipe.ask(QUESTION, answerer=spec, fallback=True)
    assert answer.notice is not None and "did not answer within 0.3 s" in answer.notice
    assert answer.answerer == "extractive" and answer.citations


def test_missing_model_falls_back_and_keeps_the_question_notice(
    pipe: Pipeline, tmp_path: Path
) -> None:
    class MissingModel:  # declares the answer contract's flags (answering.Answerer)
        name, can_stream, can_condense = "transformers:missing", False, False

        def answer(self, *args: object, **kwargs: object) -> Answer:
            raise ModelError(f"GGUF file {tmp_path}/m.gguf does not exist; check the path")

    pipe.answerers["transformers:missing"] = MissingModel()  # type: ignore[assignment]
    answer = pipe.ask(QUESTION + " x" * 2000, answerer="transformers:missing", fallback=True)
    assert answer.notice is not None
    assert "does not exist" in answer.notice and "cut to its first 2000" in answer.notice
    assert answer.citations


def test_fallback_does_not_hide_other_errors(pipe: Pipeline) -> None:
    with pytest.raises(UsageError):
        pipe.ask("  ", answerer="openai:http://127.0.0.1:9/v1#m", fallback=True)
    with pytest.raises(ConfigError, match="unknown answerer"):
        pipe.ask(QUESTION, answerer="gpt", fallback=True)


# --- the errors users see ------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (CitechatError("something failed; try again"), 1),
        (UsageError("bad question; ask another"), 2),
        (ConfigError("top_k must be at least 1, got 0; pass -k 5"), 2),
        (CorpusError("corpus not found: x; pass --corpus"), 3),
        (IndexError_("no index at x", "run `citechat index`"), 4),
        (IndexDamagedError("damaged", "run `citechat index --rebuild`"), 4),
        (IndexMismatchError("other model", "run `citechat index --rebuild`"), 4),
        (IndexFormatError("other format", "run `citechat index --rebuild`"), 4),
        (IndexLockedError("locked", "wait"), 4),
        (ModelError("the endpoint x cannot be reached\nsecond line"), 5),
        (OSError(errno.EACCES, "Permission denied", "/some/file"), 1),
        (RuntimeError("a bug\nwith detail"), 1),
        (KeyboardInterrupt(), 130),
    ],
)
def test_every_error_is_one_line_with_its_exit_code(
    cli_env: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: BaseException,
    code: int,
) -> None:
    def fail(args: object, settings: object) -> int:
        raise error

    monkeypatch.setitem(cli._COMMANDS, "index", fail)
    assert main(["index"]) == code
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("citechat: ") and "Traceback" not in line
    if isinstance(error, CitechatError):
        assert line == "citechat: error: " + " ".join(str(error).split())
    elif isinstance(error, OSError):
        assert line.startswith("citechat: error: cannot access /some/file (Permission denied)")
    elif isinstance(error, RuntimeError):
        assert line == (
            "citechat: internal error: RuntimeError: a bug with detail; "
            "run again with --debug for the traceback and please report it"
        )
    if not isinstance(error, KeyboardInterrupt):
        with pytest.raises(type(error)):
            main(["--debug", "index"])


def test_debug_shows_the_traceback_in_a_real_process(fake_settings: Settings) -> None:
    missing = str(fake_settings.corpus / "nope")
    plain = run_citechat(fake_settings, "--corpus", missing, "index")
    assert plain.returncode == 3
    assert one_line_error(plain.stderr) == (
        f"citechat: error: corpus not found: {missing}; pass --corpus FOLDER or set CITECHAT_CORPUS"
    )
    debug = run_citechat(fake_settings, "--debug", "--corpus", missing, "index")
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert "citechat.errors.CorpusError: corpus not found" in debug.stderr


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
