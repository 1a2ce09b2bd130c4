"""Faults from the corpus (issue 7): every kind of bad file through the library and
``citechat index`` is skipped with its reason, never a traceback."""

import errno
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from citechat.cli import main
from citechat.config import Settings
from citechat.corpus import load_corpus
from citechat.embedding import HashingEmbedder
from citechat.index import Index
from helpers import IS_ROOT, one_line_error, write


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

    def scandir(path: str | os.PathLike[str] = ".") -> object:
        if Path(str(path)).name == folder.name:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

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


def test_pdf_encrypted_only_to_set_permissions_is_read(tmp_path: Path) -> None:
    """An empty user password (permissions only) opens without any password; PDFium
    decrypts RC4 and AES itself, so no cryptography package is needed."""
    import pypdf

    from test_pdftext import book_pdf

    reader = pypdf.PdfReader(book_pdf(tmp_path / "plain.pdf"))
    writer = pypdf.PdfWriter(clone_from=reader)
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    (tmp_path / "c").mkdir()
    with (tmp_path / "c" / "perm.pdf").open("wb") as fh:
        writer.write(fh)
    (doc,) = load_corpus(tmp_path / "c")
    assert "hierarchy of folders" in doc.text and doc.sections[0].page is not None


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


def test_a_file_name_that_is_not_utf8_is_skipped_and_the_rest_indexed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A Latin-1 name (b"caf\\xe9.txt") used to stop the whole build with an internal
    UnicodeEncodeError; now that file is skipped with the fix, and the rest indexed."""
    corpus = tmp_path / "corpus"
    write(corpus / "snow.txt", "Snow\n\nSnow closed the schools across the city.\n")
    try:
        with open(os.path.join(os.fsencode(corpus), b"caf\xe9.txt"), "wb") as f:
            f.write(b"Cafe\n\nThe cafe opened in 2009.\n")
    except OSError:  # a file system that only takes UTF-8 names: nothing to test
        pytest.skip("this file system refuses non-UTF-8 file names")
    monkeypatch.setenv("CITECHAT_EMBEDDER", "hashing-256")
    index = tmp_path / "index"
    code = main(["--corpus", str(corpus), "--index", str(index), "index"])
    out = capsys.readouterr().out
    assert code == 0 and "1 added" in out
    assert "caf\\xe9.txt (file name is not valid UTF-8; rename it" in out
    loaded = Index.load(index, HashingEmbedder(256), Settings(embedder="hashing-256"))
    assert set(loaded.documents) == {"snow.txt"}
