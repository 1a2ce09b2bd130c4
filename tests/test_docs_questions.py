"""The documentation test set (issue 16): a Debian HTML manual and a PDF standard,
read as citechat reads them, and the hand-written questions over them.

Checks the data (verbatim quotes, gold pages confirmed by a second PDF extractor) and
what the readers keep: every paragraph and code block of each manual page, no chrome,
word spaces in the PDF, and each gold quote inside a section of its gold page.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from citechat.corpus import load_corpus
from citechat.types import Document

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "eval/datasets/docs"
CORPUS = DOCS / "corpus"
ROWS = [json.loads(line) for line in (DOCS / "questions.jsonl").read_text("utf-8").splitlines()]
PAGES = sorted((CORPUS / "debian-faq").glob("*.html"))
#: the DocBook chrome of each manual page: navigation bars and the per-page contents
CHROME_CLASSES = ("navheader", "navfooter", "toc")


@cache
def corpus() -> dict[str, Document]:
    return {d.doc_id: d for d in load_corpus(CORPUS)}


def _norm(text: str) -> str:
    return " ".join(text.split())


def _section_at(doc: Document, at: int) -> Any:
    return next((s for s in doc.sections if s.start <= at < s.end), None)


def test_rows_are_well_formed() -> None:
    assert len(ROWS) >= 30
    assert len({r["id"] for r in ROWS}) == len(ROWS)
    types = {r["type"] for r in ROWS}
    assert types == {"pdf", "html", "unanswerable"}
    assert sum(r["type"] == "pdf" for r in ROWS) >= 15
    for r in ROWS:
        assert r["answerable"] == (r["type"] != "unanswerable")
        assert bool(r["answers"]) == bool(r["evidence"]) == r["answerable"]
        assert ("gold_page" in r) == (r["type"] == "pdf")


@pytest.mark.parametrize("row", [r for r in ROWS if r["answerable"]], ids=lambda r: r["id"])
def test_quotes_are_verbatim_and_cited_text(row: dict[str, Any]) -> None:
    (ev,) = row["evidence"]
    assert row["gold_docs"] == [ev["doc"]]
    doc = corpus()[ev["doc"]]
    at = doc.text.find(ev["quote"])
    assert at >= 0, ev["quote"]
    section = _section_at(doc, at)
    assert section is not None and at + len(ev["quote"]) <= section.end  # citable text
    assert any(_norm(a).casefold() in _norm(doc.text).casefold() for a in row["answers"])
    if "gold_page" in row:
        assert section.page == row["gold_page"]


@pytest.mark.parametrize("row", [r for r in ROWS if "gold_page" in r], ids=lambda r: r["id"])
def test_gold_pages_agree_with_a_second_extractor(row: dict[str, Any]) -> None:
    """pypdf, reading the same file, finds the quote's words on the gold page: the page
    numbers are the file's, not an artefact of citechat's own reader."""
    page = _pypdf_pages()[row["gold_page"] - 1]
    quote = re.sub(r"\s+", "", row["evidence"][0]["quote"])
    assert quote in page


@cache
def _pypdf_pages() -> list[str]:
    import pypdf

    reader = pypdf.PdfReader(CORPUS / "fhs-3.0.pdf")
    return [re.sub(r"\s+", "", p.extract_text() or "") for p in reader.pages]


def test_pdf_words_keep_their_spaces_and_contents_pages_are_not_indexed() -> None:
    doc = corpus()["fhs-3.0.pdf"]
    assert doc.title == "Filesystem Hierarchy Standard"
    assert "The operating system kernel must be located in either / or /boot." in doc.text
    words = "\n".join(doc.section_text(s) for s in doc.sections).split()
    # words run together would show as long tokens of letters ("canbecustomized")
    long = [w for w in words if re.fullmatch(r"[A-Za-z]{19,}", w.strip(".,;:()"))]
    assert len(long) < 0.001 * len(words), long
    indexed = {s.page for s in doc.sections}
    assert {4, 5, 6}.isdisjoint(indexed)  # the table of contents
    assert {8, 22, 44} <= indexed
    cited = "\n".join(doc.section_text(s) for s in doc.sections)
    assert ". . . . ." not in cited and "......" not in cited
    # without an outline, the numbered headings give the heading path
    at = doc.text.find("/run/crond.pid would contain")
    assert _section_at(doc, at).heading == (
        "Chapter 3. The Root Filesystem › 3.15. /run : Run-time variable data"
        " › 3.15.2. Requirements"
    )
    # the running header (the chapter's title over its pages) is gone from the pages
    p21 = next(s for s in doc.sections if s.page == 21)
    assert not doc.section_text(p21).startswith("The Root Filesystem")


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_manual_page_keeps_every_paragraph_and_code_block(path: Path) -> None:
    import lxml.html

    html = path.read_text("utf-8")
    root = lxml.html.document_fromstring(html.split("?>", 1)[-1])
    chrome = " or ".join(f"contains(@class, '{c}')" for c in CHROME_CLASSES)
    doc = corpus()[f"debian-faq/{path.name}"]
    cited = _norm("\n".join(doc.section_text(s) for s in doc.sections))
    for el in root.xpath(f"//body//*[self::p or self::pre][not(ancestor-or-self::*[{chrome}])]"):
        text = _norm(el.text_content())
        if text:
            assert text in cited, (path.name, text[:80])
    for el in root.xpath(f"//*[{chrome}]//a"):
        # the navigation's and contents' link texts are not quoted as page text
        label = _norm(el.text_content())
        if len(label) > 20:
            assert cited.count(label) <= _norm(doc.text).count(label)
    lines = set(doc.text.splitlines())
    assert "Prev" not in doc.text.split() and not lines & {"Next", "Home", "Up"}
    assert "Table of Contents" not in doc.text
