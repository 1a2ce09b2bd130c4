"""PDF bytes -> page texts that read as prose, with page numbers and printed labels.

Text comes from PDFium (pypdfium2, Apache-2.0/BSD), which keeps the spaces between
words where pypdf's default extraction ran them together ("canbe customized").  Each
page then loses what is furniture rather than content:

* running headers and footers: a line in the first or last two lines of a page that,
  digits aside, recurs there on at least three pages (a chapter title over its pages,
  "Filesystem Hierarchy Standard", "Page 14 of 50"), and bare page numbers;
* the hard line wrap: lines of one paragraph are joined with a space, and a word
  hyphenated at a line break ("configu-" + "ration") is joined whole;
* the PDF's outline (bookmarks), where it has one, gives the headings a page's text
  sits under, so its citations carry a heading path as HTML's do;
* table-of-contents and index pages, found by their dot leaders and trailing page
  numbers, are marked so the corpus can leave them out of what is indexed: they name
  every topic and would otherwise outrank the pages they list.

It reads bytes and returns :class:`PdfPage` objects; building Documents and sections
is :mod:`citechat.corpus`'s job.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class PdfError(Exception):
    """The PDF cannot be read; the message is the one-line reason."""


@dataclass(frozen=True)
class PdfPage:
    """One page: ``number`` is 1-based as a viewer shows it; ``label`` is the page label
    the PDF defines ("iv", "14"), None without one; ``contents`` marks a table of
    contents or index page."""

    number: int
    label: str | None
    text: str
    contents: bool = False


@dataclass(frozen=True)
class PdfText:
    """The pages, the metadata title, and the outline (bookmarks) as (level from 1,
    title, 1-based page number) in document order."""

    pages: tuple[PdfPage, ...]
    title: str
    outline: tuple[tuple[int, str, int], ...] = ()


#: the margin lines per page edge that may hold a running header or footer
EDGE_LINES = 2
#: a line shorter than this never wraps on to the next
MIN_WRAPPED = 40
#: a margin line recurring on this many pages is a running header or footer
MIN_REPEATS = 3
_NUMBER = re.compile(r"\d+")
_ROMAN = re.compile(r"(?i)[ivxlcdm]+")
_PAGE_NUMBER = re.compile(r"(?i)(?:page\s+)?(?:\d+|[ivxlcdm]+)(?:\s+of\s+\d+)?")
#: "3.2. /bin : Essential commands ....... 14", "Index, 12, 45-47"
_LISTING = re.compile(r"(?:\.\s?){3,}\s*[\divxlc]+$|\S\s+\d+(?:[-–]\d+)?(?:,\s*\d+(?:[-–]\d+)?)*$")
_NUMBERED_HEADING = re.compile(r"(?:\d+\.)+\d*\s+\S|[A-Z]\.\d+(?:\.\d+)*\.?\s+\S")
_SOFT_HYPHEN = re.compile("[\ufffe\x02](?:\r?\n)?")
_HYPHENATED = re.compile(r"[^\W\d_]-$")
_SENTENCE_END = re.compile(r"[.!?:;)\]”\"']$")


def read_pdf(data: bytes) -> PdfText:
    """The cleaned pages of a PDF and its metadata title ("" when it has none).

    Raises :class:`PdfError` for a damaged or password-protected file.
    """
    import pypdfium2 as pdfium  # native library: loaded only when a corpus has PDFs

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise PdfError("password-protected PDF") from None
        raise PdfError(f"unreadable PDF: {exc}") from None
    try:
        raw: list[tuple[str | None, list[str]]] = []
        for i in range(len(pdf)):
            page = pdf[i]
            textpage = page.get_textpage()
            text = textpage.get_text_range()
            textpage.close()
            page.close()
            raw.append((pdf.get_page_label(i) or None, _lines(text)))
        title = str(pdf.get_metadata_dict().get("Title") or "").strip()
        outline = _outline(pdf)
    finally:
        pdf.close()
    return PdfText(clean_pages(raw), title, outline)


def _outline(pdf: Any) -> tuple[tuple[int, str, int], ...]:
    """The bookmarks that point at a page; a damaged outline is no outline."""
    out = []
    try:
        for mark in pdf.get_toc():
            dest = mark.get_dest()
            index = dest.get_index() if dest is not None else None
            title = " ".join((mark.get_title() or "").split())
            if title and index is not None and 0 <= index < len(pdf):
                out.append((mark.level + 1, title, index + 1))
    except Exception:  # an outline is optional: the text is still read
        return ()
    return tuple(out)


def clean_pages(raw: Sequence[tuple[str | None, list[str]]]) -> tuple[PdfPage, ...]:
    """(label, lines) per page -> pages without running headers/footers, unwrapped.

    >>> def page(n, word):
    ...     return (None, [f"Guide, chapter {n}", f"The {word} line of text runs on and on to the"
    ...                    " full width, until on-", "ward it goes.", f"So ends {word}.", f"{n}"])
    >>> print(clean_pages([page(1, "first"), page(2, "second"), page(3, "third")])[2].text)
    The third line of text runs on and on to the full width, until onward it goes.
    So ends third.
    """
    counts: Counter[str] = Counter()
    for _, lines in raw:
        counts.update({_shape(lines[i]) for i in _edges(lines)})
    pages = []
    for number, (label, lines) in enumerate(raw, start=1):
        kept = _without_chrome(lines, label, counts)
        pages.append(PdfPage(number, label, unwrap(kept), is_contents(kept)))
    return tuple(pages)


def is_contents(lines: list[str]) -> bool:
    """A table of contents or index page: most lines end in a page number.

    >>> is_contents([f"{n}. Topic {n} ........ {n + 3}" for n in range(1, 9)])
    True
    >>> is_contents(["A paragraph that ends in a year, 2015", "and more prose."])
    False
    >>> is_contents(["7.6. Contributors ........................ 43"])
    True
    """
    lines = [line for line in lines if line.strip()]
    listed = sum(bool(_LISTING.search(line)) for line in lines)
    leaders = sum("...." in line for line in lines)
    if listed >= 0.8 * len(lines) and leaders >= 1:
        return True  # the last page of a contents list may hold a line or two
    if listed < 5 or listed < 0.5 * len(lines):
        return False
    return leaders >= 3 or listed >= 0.8 * len(lines)


def unwrap(lines: list[str]) -> str:
    """Join the hard-wrapped lines of each paragraph; a paragraph ends at a short line
    or before a numbered heading, and a word hyphenated at a line break is joined.

    >>> print(unwrap(["1. Intro", "The execution timings of these scripts can be cus-",
    ...               "tomized, as the next section shows in some detail, and", "so on.",
    ...               "Another paragraph starts here."]))
    1. Intro
    The execution timings of these scripts can be customized, as the next section shows in some \
detail, and so on.
    Another paragraph starts here.
    """
    lines = [line.strip() for line in lines]
    if not any(lines):
        return ""
    # the width of a full line on this page: the median of the longer lines; a page
    # of short lines only (a title page, a list) is not wrapped prose
    widths = sorted(len(line) for line in lines if len(line) >= MIN_WRAPPED)
    if not widths:
        return "\n".join(line for line in lines if line)
    full = widths[len(widths) // 2]
    out: list[str] = []
    current = ""
    for i, line in enumerate(lines):
        if not line:
            if current:
                out.append(current)
            current = ""
            continue
        if not current:
            current = line
        elif _HYPHENATED.search(current) and line[:1].islower():
            current = current[:-1] + line
        elif current.endswith("/"):  # a path wrapped after a slash: "/var/" + "opt/"
            current += line
        else:
            current += " " + line
        following = lines[i + 1] if i + 1 < len(lines) else ""
        short = len(line) < max(MIN_WRAPPED, 0.8 * full)
        ends = short and (_SENTENCE_END.search(line) is not None or len(line) < 0.5 * full)
        ragged = short and not line[-1:].isalnum()
        if not following or ends or ragged or _starts_block(following):
            out.append(current)
            current = ""
    if current:
        out.append(current)
    return "\n".join(out)


def _starts_block(line: str) -> bool:
    return bool(_NUMBERED_HEADING.match(line)) or (line[:1] != "" and line[:1] in "•◦▪–*")


def _lines(text: str) -> list[str]:
    # PDFium joins a word hyphenated at a line break itself, leaving U+FFFE (or U+0002)
    # where the hyphen and the break were
    text = _SOFT_HYPHEN.sub("", text).replace("\x00", "")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [" ".join(line.split()) for line in text.split("\n")]


def _edges(lines: list[str]) -> list[int]:
    """Indexes of the first and last ``EDGE_LINES`` non-empty lines of a page."""
    filled = [i for i, line in enumerate(lines) if line]
    if len(filled) <= 2 * EDGE_LINES:
        return filled[:1] + filled[-1:] if len(filled) > 2 else []
    return filled[:EDGE_LINES] + filled[-EDGE_LINES:]


def _shape(line: str) -> str:
    """A margin line with its numbers blanked, so "Page 3" and "Page 4" match."""
    return _NUMBER.sub("#", line.casefold())


def _without_chrome(lines: list[str], label: str | None, counts: Counter[str]) -> list[str]:
    chrome = {i for i in _edges(lines) if counts[_shape(lines[i])] >= MIN_REPEATS}
    filled = [i for i, line in enumerate(lines) if line]
    # a page number heads or ends even a page of a line or two (under a running header)
    margins = {*filled[:EDGE_LINES], *filled[-EDGE_LINES:]}
    chrome |= {i for i in margins if _is_page_number(lines[i], label)}
    return [line for i, line in enumerate(lines) if i not in chrome]


def _is_page_number(line: str, label: str | None) -> bool:
    return line == label or (
        _PAGE_NUMBER.fullmatch(line) is not None and (not _ROMAN.fullmatch(line) or len(line) <= 5)
    )
