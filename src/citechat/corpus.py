"""Read a corpus folder into :class:`~citechat.types.Document` objects.

A corpus is a folder (searched recursively) of ``.txt``, ``.md``,
``.markdown``, ``.html``, ``.htm`` and ``.pdf`` files and ``.jsonl`` files of
``{"id", "title", "text"}`` records, or one such ``.jsonl`` file.  Each
document keeps its text exactly as decoded, so every offset indexes
``Document.text``, and marks the citable parts as sections: the article body
and, one section each, the reader comments.  Page chrome (navigation, share
prompts, "Leave a Reply" forms, related links) lies outside every section.

Web pages saved as text are split by the line heuristics in
:mod:`citechat.boilerplate`; HTML goes through trafilatura and PDF through
:mod:`citechat.pdftext` (one section per page, with its page number and
label).  A file that cannot be read (garbage, empty, over ``max_bytes``, binary,
password-protected or image-only PDF, HTML without text, a symlink
loop, no permission) is skipped and reported with a one-line reason, never
fatal; text that is not UTF-8 is decoded as UTF-16 (with a BOM), cp1252 or
latin-1.  This module does not chunk, embed, or remember what it read before:
change detection compares :attr:`Document.content_hash` downstream.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from citechat import boilerplate as bp
from citechat.errors import CorpusError, one_line
from citechat.headings import (
    Heading,
    markdown_code_blocks,
    markdown_headings,
    numbered_headings,
    split_at_headings,
)
from citechat.types import Document, Section

log = logging.getLogger("citechat")

MAX_BYTES = 50_000_000
TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown"})
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf"}
OnSkip = Callable[[Path | str, str], None]


class _Unreadable(Exception):
    """A file to skip; the message is the one-line reason."""


def content_hash(text: str) -> str:
    """SHA-256 hex digest of ``text``, to tell when a document changed.

    >>> content_hash("abc")[:12]
    'ba7816bf8f01'
    """
    # surrogatepass: JSON may carry lone surrogates ("\\ud800") that strict
    # UTF-8 refuses to encode.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def load_corpus(
    path: Path, *, on_skip: OnSkip | None = None, max_bytes: int = MAX_BYTES
) -> list[Document]:
    """All readable documents under ``path``, sorted by ``doc_id``.

    ``path`` is a folder, searched recursively (hidden files and folders are
    ignored; symlinked folders are read once), or a single file.  ``doc_id``
    is the file's path relative to the folder ("news/bbc.txt"), or a JSONL
    record's ``id``.  Files that cannot be read, and JSONL lines
    ("docs.jsonl:3"), are passed to ``on_skip(path, reason)`` (default: a
    logged warning) and left out; a corpus with no readable document at all
    raises :class:`CorpusError`.

    >>> load_corpus(Path("no/such/folder"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    citechat.errors.CorpusError: corpus not found: no/such/folder; pass --corpus FOLDER ...
    """
    docs: dict[str, Document] = {}
    for doc in iter_corpus(path, on_skip=on_skip, max_bytes=max_bytes):
        docs[doc.doc_id] = doc
    return [docs[doc_id] for doc_id in sorted(docs)]


def iter_corpus(
    path: Path, *, on_skip: OnSkip | None = None, max_bytes: int = MAX_BYTES
) -> Iterator[Document]:
    """The readable documents under ``path`` one at a time, in file order (not
    sorted by ``doc_id``), for a reader that must not hold the whole corpus.

    Skips and duplicates (the first is kept) are as in :func:`load_corpus`.  A
    missing corpus raises :class:`CorpusError` at once; one with no readable
    document raises it once every file has been tried.
    """
    skip = on_skip or _log_skip
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"corpus not found: {path}; pass --corpus FOLDER or set CITECHAT_CORPUS")
    if path.is_dir():
        return _documents(path, _walk(path, skip), skip, max_bytes)
    if path.is_file():
        return _documents(path, iter([(path, path.name)]), skip, max_bytes)
    raise CorpusError(f"not a corpus: {path}; pass a folder or a .jsonl file")


def _documents(
    root: Path, files: Iterator[tuple[Path, str]], skip: OnSkip, max_bytes: int
) -> Iterator[Document]:
    seen: set[str] = set()
    for file, doc_id in files:
        # a JSONL file is read as it is consumed: a failure half-way keeps what came before
        try:
            found: Iterator[Document] | list[Document]
            if file.suffix.lower() == ".jsonl":
                found = _read_jsonl(file, skip, max_bytes)
            else:
                found = [_read(file, doc_id, max_bytes)]
            for doc in found:
                if doc.doc_id in seen:
                    skip(file, f"duplicate doc_id {doc.doc_id!r}; kept the first")
                else:
                    seen.add(doc.doc_id)
                    yield doc
        except _Unreadable as exc:
            skip(file, one_line(str(exc)))
        except Exception as exc:  # a parser bug on one odd file must not stop the rest
            log.debug("unexpected error reading %s", file, exc_info=True)
            skip(file, one_line(f"cannot parse: {type(exc).__name__}: {exc}"))
    if not seen:
        raise CorpusError(
            f"no readable documents in {root}; add .txt, .md, .html, .pdf or .jsonl files"
        )


def load_document(path: Path, doc_id: str, *, max_bytes: int = MAX_BYTES) -> Document:
    """One ``.txt``/``.md``/``.html``/``.pdf`` file as a Document.

    Raises :class:`CorpusError` naming the file and why it cannot be read.
    """
    try:
        return _read(Path(path), doc_id, max_bytes)
    except _Unreadable as exc:
        raise CorpusError(f"cannot load {path}: {one_line(str(exc))}") from None
    except Exception as exc:  # as in load_corpus: one odd file is an error, not a crash
        log.debug("unexpected error reading %s", path, exc_info=True)
        raise CorpusError(
            f"cannot load {path}: {one_line(f'cannot parse: {type(exc).__name__}: {exc}')}"
        ) from exc


def parse_text(text: str, doc_id: str) -> Document:
    """A web page saved as text (.txt, .md) as a Document.

    The headline becomes the title; the article body and each reader comment
    become sections; chrome between them is left out (see
    :func:`citechat.boilerplate.split_page`).  With no headline the title is
    the file name's stem.

    >>> page = "News\\n\\nIt rained.\\n\\n2 Comments\\n  1. Wet!\\n  2. Ann 3 May 2009 #\\n    Dry."
    >>> doc = parse_text(page, "d")
    >>> doc.title, [(s.kind, doc.section_text(s), s.commenter) for s in doc.sections]
    ('News', [('body', 'It rained.', None), ('comment', 'Wet!', None), ('comment', 'Dry.', 'Ann')])
    """
    page = bp.split_page(text)
    return Document(
        doc_id=doc_id,
        text=text,
        title=page.title or Path(doc_id).stem,
        sections=page.sections,
        source=page.source,
        date=page.date,
        author=page.author,
        content_hash=content_hash(text),
    )


def parse_markdown(text: str, doc_id: str) -> Document:
    """A Markdown file as a Document: as :func:`parse_text`, with body sections cut at
    each ``#`` heading (each piece knows its heading path) and each fenced code block
    a block, quoted whole.

    >>> doc = parse_markdown("# APT\\n\\nIntro text.\\n\\n## Setup\\n\\nEdit the file.", "a.md")
    >>> [(doc.section_text(s), s.heading) for s in doc.sections]
    [('Intro text.', 'APT'), ('Edit the file.', 'APT › Setup')]
    """
    doc = parse_text(text, doc_id)
    headings = markdown_headings(text)
    if doc.title.startswith("#"):
        doc = replace(doc, title=headings[0].title if headings else doc.title.lstrip("# "))
    blocks = tuple((a, b, "code") for a, b in markdown_code_blocks(text))
    # the page heuristics may take a fence line ("```") for chrome: a body section
    # holds the whole of each code block it touches
    body = [_cover(s, blocks) if s.kind == "body" else s for s in doc.sections]
    sections = split_at_headings(text, body, headings)
    return replace(doc, sections=sections, blocks=blocks)


def _cover(section: Section, blocks: tuple[tuple[int, int, str], ...]) -> Section:
    start, end = section.start, section.end
    for a, b, _ in blocks:
        if a < end and start < b:
            start, end = min(start, a), max(end, b)
    return replace(section, start=start, end=end)


# --- files ------------------------------------------------------------------


def _log_skip(path: Path | str, reason: str) -> None:
    log.warning("skipped %s: %s", path, reason)


def _walk(root: Path, skip: OnSkip) -> Iterator[tuple[Path, str]]:
    """(file, doc_id) for every corpus file under ``root``, in sorted order."""

    def folder_error(exc: OSError) -> None:
        skip(Path(exc.filename or root), f"cannot read folder: {exc.strerror}")

    # Symlinked folders are followed, but each real folder only once: a link
    # back to an ancestor would otherwise loop forever.
    seen = {os.path.realpath(root)}
    for dirpath, dirnames, filenames in os.walk(root, onerror=folder_error, followlinks=True):
        kept = []
        for name in sorted(dirnames):
            if name.startswith("."):
                continue
            real = os.path.realpath(os.path.join(dirpath, name))
            if real in seen:
                skip(Path(dirpath, name), "symlink loop or folder already read")
                continue
            seen.add(real)
            kept.append(name)
        dirnames[:] = kept  # os.walk descends only into what is left here
        for name in sorted(filenames):
            suffix = os.path.splitext(name)[1].lower()
            if name.startswith(".") or (suffix not in SUFFIXES and suffix != ".jsonl"):
                continue
            file = Path(dirpath, name)
            doc_id = file.relative_to(root).as_posix()
            if not _utf8(doc_id):
                # os.walk keeps undecodable bytes of a name as surrogates: an id that
                # no JSON file, manifest or page can hold
                shown = os.fsencode(doc_id).decode("utf-8", "backslashreplace")
                skip(shown, "file name is not valid UTF-8; rename it (convmv -f latin1 -t utf8)")
                continue
            yield file, doc_id


def _utf8(name: str) -> bool:
    """
    >>> _utf8("café.txt"), _utf8("caf\\udce9.txt")
    (True, False)
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size == 0:
            raise _Unreadable("empty file")
        if size > max_bytes:
            raise _Unreadable(f"larger than {max_bytes / 1e6:g} MB limit")
        return path.read_bytes()
    except OSError as exc:
        raise _Unreadable(f"cannot read file: {exc.strerror or exc}") from None


def _decode(data: bytes, path: Path) -> str:
    """Text of ``data``: UTF-8 (BOM dropped), else cp1252/latin-1 with a warning."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise _Unreadable("bad UTF-16 text") from None
    if b"\x00" in data:
        raise _Unreadable("binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    text, encoding = _not_utf8(data)
    log.warning("%s is not UTF-8; decoded it as %s", path, encoding)
    return text


def _not_utf8(data: bytes) -> tuple[str, str]:
    """(text, encoding) of bytes that are not UTF-8: cp1252, else latin-1."""
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:  # cp1252 leaves five bytes undefined; latin-1 none
        return data.decode("latin-1"), "latin-1"


def _read(path: Path, doc_id: str, max_bytes: int) -> Document:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise _Unreadable(f"unsupported file type {suffix or '(none)'}")
    data = _read_bytes(path, max_bytes)
    if suffix == ".pdf":
        return _parse_pdf(data, doc_id)
    text = _decode(data, path)
    if not text.strip():
        raise _Unreadable("empty file")
    if suffix in HTML_SUFFIXES:
        return _parse_html(text, doc_id)
    if suffix in MARKDOWN_SUFFIXES:
        return parse_markdown(text, doc_id)
    return parse_text(text, doc_id)


def _read_jsonl(path: Path, skip: OnSkip, max_bytes: int) -> Iterator[Document]:
    """One Document per ``{"id", "title", "text"}`` line; bad lines are skipped.

    Read line by line, so a JSONL corpus may be any size; ``max_bytes`` limits
    each record.  UTF-16 files (rare) are decoded whole, within ``max_bytes``.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError as exc:
        raise _Unreadable(f"cannot read file: {exc.strerror or exc}") from None
    if not head:
        raise _Unreadable("empty file")
    if head in (b"\xff\xfe", b"\xfe\xff"):
        lines: Iterator[str] = iter(_decode(_read_bytes(path, max_bytes), path).split("\n"))
    else:
        lines = _utf8_lines(path, skip, max_bytes)
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            skip(where, f"bad JSON: {exc.msg}")
            continue
        if not isinstance(record, dict):
            skip(where, "not a JSON object")
            continue
        doc_id, body, title = record.get("id"), record.get("text"), record.get("title")
        if isinstance(doc_id, bool) or not isinstance(doc_id, str | int) or doc_id == "":
            skip(where, 'no "id"')
        elif not isinstance(body, str) or not body.strip():
            skip(where, 'no "text"')
        else:
            yield _whole_text_document(str(doc_id), body, title if isinstance(title, str) else "")


def _utf8_lines(path: Path, skip: OnSkip, max_bytes: int) -> Iterator[str]:
    """The lines of ``path`` split on "\\n" only (JSON strings may hold a raw U+2028
    that ``splitlines`` would cut), decoded as UTF-8, else cp1252/latin-1 with one
    warning; a line over ``max_bytes`` becomes an empty line, reported."""
    warned = False
    try:
        with open(path, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if lineno == 1:
                    raw = raw.removeprefix(b"\xef\xbb\xbf")
                if len(raw) > max_bytes:
                    skip(f"{path}:{lineno}", f"record larger than {max_bytes / 1e6:g} MB limit")
                    yield ""
                    continue
                try:
                    yield raw.decode("utf-8")
                    continue
                except UnicodeDecodeError:
                    pass
                text, encoding = _not_utf8(raw)
                if not warned:
                    log.warning("%s is not UTF-8; decoded its lines as %s", path, encoding)
                    warned = True
                yield text
    except OSError as exc:
        raise _Unreadable(f"cannot read file: {exc.strerror or exc}") from None


def _whole_text_document(doc_id: str, text: str, title: str) -> Document:
    """A Document whose single body section is all of ``text`` (trimmed)."""
    return Document(
        doc_id=doc_id,
        text=text,
        title=" ".join(title.split()) or doc_id,
        sections=(Section("body", *bp.trim(text, 0, len(text))),),
        content_hash=content_hash(text),
    )


def _parse_html(html: str, doc_id: str) -> Document:
    from citechat.htmltext import extract

    try:
        page = extract(html)
    except Exception as exc:  # lxml raises many types on broken markup
        raise _Unreadable(f"unparseable HTML: {exc}") from None
    if not page.text.strip():
        raise _Unreadable("no text in HTML")
    meta = _html_metadata(html)
    # the comments follow the article, a blank line apart, one section each
    text, comment_spans = page.text, []
    for comment in page.comments:
        text += "\n\n"
        comment_spans.append(Section("comment", len(text), len(text) + len(comment)))
        text += comment
    main = Section("body", *bp.trim(text, 0, len(page.text)))
    body = split_at_headings(text, [main], page.headings)
    title = meta.get("title") or page.h1 or parse_text(page.text, doc_id).title
    # a heading's permalink sign (Sphinx's "¶") is not part of the title
    title = " ".join(title.split()).rstrip("¶#").strip()
    return Document(
        doc_id=doc_id,
        text=text,
        title=title,
        sections=(*body, *comment_spans),
        source=meta.get("sitename") or None,
        date=meta.get("date") or None,
        author=meta.get("author") or None,
        content_hash=content_hash(text),
        blocks=page.blocks,
    )


def _pdf_heading(
    text: str, starts: dict[int | None, int], level: int, title: str, page: int
) -> Heading | None:
    """A bookmark as a heading: its title's line on its page when the page shows it,
    else the top of that page.  None for a page that is not indexed."""
    if page not in starts:
        return None
    start = starts[page]
    end = text.find("\n\n", start)
    end = len(text) if end < 0 else end
    wanted = " ".join(title.split()).casefold()
    at = start
    for line in text[start:end].split("\n"):
        if " ".join(line.split()).casefold().startswith(wanted):
            return Heading(at, at + len(line), level, title)
        at += len(line) + 1
    return Heading(start, start, level, title)


def _html_metadata(html: str) -> dict[str, Any]:
    """The page's title, site name, date and author, as trafilatura reads them."""
    from trafilatura.metadata import extract_metadata  # heavy (htmldate): only for HTML

    try:
        # no extensive date search: a date the page does not declare is not invented
        found = extract_metadata(html, extensive=False)
    except Exception:  # metadata is optional; a page that breaks it still has text
        log.debug("no metadata from HTML", exc_info=True)
        return {}
    return {} if found is None else found.as_dict()


def _parse_pdf(data: bytes, doc_id: str) -> Document:
    from citechat.pdftext import PdfError, read_pdf

    try:
        pdf = read_pdf(data)
    except PdfError as exc:
        raise _Unreadable(str(exc)) from None
    except Exception as exc:  # PDFium raises on damaged files in many ways
        raise _Unreadable(f"unreadable PDF: {type(exc).__name__}: {exc}") from None
    # One body section per page, so every chunk and citation knows its page; a table
    # of contents or index page is in the text but in no section: it is never indexed.
    parts: list[str] = []
    sections: list[Section] = []
    offset = 0
    for page in pdf.pages:
        if not page.text.strip():
            continue
        if parts:
            offset += 2  # the "\n\n" between pages
        parts.append(page.text)
        if not page.contents:
            a, b = bp.trim(page.text, 0, len(page.text))
            span = Section("body", offset + a, offset + b)
            sections.append(replace(span, page=page.number, page_label=page.label))
        offset += len(page.text)
    text = "\n\n".join(parts)
    if not sections:
        raise _Unreadable("no extractable text (image-only PDF?)")
    if pdf.outline:
        starts = {s.page: s.start for s in sections}
        marks = [_pdf_heading(text, starts, *item) for item in pdf.outline]
        found = [h for h in marks if h is not None]
    else:  # no bookmarks: the numbered headings on the indexed pages
        found = [h for s in sections for h in numbered_headings(text, s.start, s.end)]
    sections = list(split_at_headings(text, sections, found))
    title = pdf.title
    first_line = text.strip().split("\n", 1)[0]
    if not title and len(first_line.split()) <= bp.HEADLINE_MAX_WORDS:
        title = first_line
    return Document(
        doc_id=doc_id,
        text=text,
        title=" ".join(title.split()) or doc_id,
        sections=tuple(sections),
        content_hash=content_hash(text),
    )
