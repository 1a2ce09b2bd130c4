"""End-to-end tests of the web chat in headless Chromium (Playwright, sync API).

The app is served in-process on a free port; most tests use the fake hashing
embedder (fast), the seed-question test the real seed pipeline.  Screenshots go
to ``test-artifacts/`` (git-ignored) for a person to look at.  Chromium must be
installed (``/usr/bin/chromium``, or set CITECHAT_CHROMIUM): without it these
tests fail, they do not skip, so CI cannot pass without running them.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from citechat.config import Settings
from citechat.pipeline import Pipeline

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path(os.environ.get("CITECHAT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
#: generous: the 2-core CI machine may be busy with other tests
TIMEOUT_MS = 90_000

EVIL = (
    "Evil <img src=x onerror=\"window.__pwned='title'\"> page\n\n"
    "The director <script>window.__pwned='script';alert(1)</script> was appointed "
    "<img src=x onerror=\"window.__pwned='img';alert(1)\"> in secret by the council.\n"
)

#: a long document: the cited sentence sits far below the top of the panel
LONG = (
    "Harbour report\n\n"
    + "".join(f"Paragraph {i} is about nets, ropes and tides on the quay.\n\n" for i in range(80))
    + "The lighthouse keeper Morwenna Tregarthen repainted the lamp room in violet.\n"
)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: the browser tests need it "
            "(apt-get install chromium, or set CITECHAT_CHROMIUM to its path)",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: pip install -e '.[test]'", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Page:
    """A fresh browser page that records dialogs and page errors."""

    def __init__(self, browser: Any, url: str, name: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.name = name
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto(url)
        self.page.wait_for_selector("#cc-question textarea")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def ask(self, question: str) -> Any:
        """Ask and wait for the finished answer bubble; returns its locator."""
        before = self.page.locator("#cc-chat .cc-answer:not(.cc-streaming)").count()
        self.page.fill("#cc-question textarea", question)
        self.page.click("#cc-send")
        answers = self.page.locator("#cc-chat .cc-answer:not(.cc-streaming):not(.cc-meta)")
        answers.nth(before).wait_for()
        return answers.nth(before)

    def screenshot(self, suffix: str = "") -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{self.name}{suffix}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    pages: list[Page] = []
    failed_before = request.session.testsfailed

    def opener(url: str) -> Page:
        pages.append(Page(browser, url, request.node.name))
        return pages[-1]

    yield opener
    failed = request.session.testsfailed > failed_before
    for i, page in enumerate(pages):
        if failed:  # what the page looked like when the test failed
            page.screenshot(f"-failed-{i}")
        page.close()
    for page in pages:
        assert not page.errors, f"JavaScript errors on the page: {page.errors}"


@pytest.mark.integration
def test_seed_question_shows_cited_title_and_highlighted_quote(
    seed_pipeline: Pipeline, open_page: Any, serve_chat: Any
) -> None:
    with serve_chat(seed_pipeline) as url:
        ui = open_page(url)
        answer = ui.ask("Who did Ed Balls appoint to run Haringey's children's services?")
        card = answer.locator(".cc-source").first
        assert "Balls and Ofsted stand by decisions" in card.inner_text()
        quote = card.locator("mark").inner_text()
        doc = seed_pipeline.index.documents["002_a97dc062ef764fe9.txt"]
        assert quote.strip() and " ".join(quote.split()) in " ".join(doc.text.split())
        meta = card.locator(".cc-meta").inner_text()
        assert "article" in meta and doc.source and doc.source in meta  # publisher · kind
        assert not doc.date or doc.date in meta
        # the card quoting the appointment opens the long article at that sentence
        answer.locator(".cc-source").filter(has_text="Peter Lewis").first.click()
        mark = ui.page.locator("#cc-document mark#cc-highlight")
        mark.wait_for()
        assert "Peter Lewis" in mark.inner_text()
        ui.screenshot()


@pytest.fixture
def page_with(
    fake_settings: Settings, open_page: Any, serve_chat: Any
) -> Callable[[str, str], AbstractContextManager[Page]]:
    """``with page_with(name, text) as ui``: a page on the web chat of the tiny corpus
    with the document ``name`` added, served until the block ends."""

    @contextmanager
    def opened(name: str, text: str) -> Iterator[Page]:
        (fake_settings.corpus / name).write_text(text, encoding="utf-8")
        with serve_chat(Pipeline.load(fake_settings)) as url:
            yield open_page(url)

    return opened


def test_clicking_a_citation_opens_the_document_scrolled_to_the_span(page_with: Any) -> None:
    with page_with("harbour.txt", LONG) as ui:
        answer = ui.ask("Who repainted the lamp room of the lighthouse?")
        assert "Morwenna Tregarthen" in answer.inner_text()
        ui.page.locator("#cc-document .cc-meta").filter(has_text="Click a citation").wait_for()
        answer.locator("a.cc-cite").first.click()  # the [1] in the answer text
        mark = ui.page.locator("#cc-document mark#cc-highlight")
        mark.wait_for()
        assert "Morwenna Tregarthen repainted the lamp room" in mark.inner_text()
        assert "Harbour report" in ui.page.locator("#cc-document h4").inner_text()
        # the highlight was scrolled into view inside the long document
        ui.page.wait_for_function(
            """() => {
                const m = document.querySelector('#cc-document mark#cc-highlight');
                const box = m.closest('.cc-doc').getBoundingClientRect();
                const r = m.getBoundingClientRect();
                return m.closest('.cc-doc').scrollTop > 0 && r.top >= box.top
                    && r.bottom <= box.bottom + 1;
            }"""
        )
        ui.screenshot()

        # a second answer; the first answer's source card still opens its own document
        second = ui.ask("Which director was appointed to the borough?")
        assert second.locator("a.cc-cite").first.get_attribute("href") == "#cc-1-1"
        answer.locator(".cc-source").first.click()
        ui.page.locator("#cc-document h4").filter(has_text="Harbour report").wait_for()
        second.locator(".cc-source").first.click()
        ui.page.locator("#cc-document h4").filter(has_text="Balls appoints").wait_for()


def test_injected_script_in_a_document_runs_nothing(page_with: Any) -> None:
    with page_with("evil.txt", EVIL) as ui:
        answer = ui.ask("Which director was appointed in secret by the council?")
        assert "<script>window.__pwned" in answer.inner_text()  # shown as text
        answer.locator("a.cc-cite").first.click()
        ui.page.locator("#cc-document mark#cc-highlight").wait_for()
        time.sleep(1.0)  # give any injected handler time to fire
        ui.screenshot()
        assert ui.page.evaluate("typeof window.__pwned") == "undefined"
        assert ui.dialogs == []
        injected = ui.page.locator(
            "#cc-chat script, #cc-chat img[src='x'], #cc-document script, #cc-document img"
        )
        assert injected.count() == 0
        assert "<img src=x" in ui.page.locator("#cc-document .cc-doc").inner_text()


def test_llm_answer_streams_then_is_replaced_by_the_verified_answer(
    fake_settings: Settings, open_page: Any, serve_chat: Any, fake_llm: Any
) -> None:
    pipe = Pipeline.load(fake_settings)
    question = "Who was appointed as the new director?"
    hits = pipe.retriever.search(question, pipe.settings.top_k).hits
    n = next(i for i, h in enumerate(hits, 1) if h.chunk.doc_id == "balls.txt")
    reply = (
        f"Ed Balls ordered the appointment of Peter Lewis as the new director [{n}]. "
        f"Penguins play jazz in the town hall on Tuesdays [{n}]."
    )
    fake_llm(pipe, reply).delay = 0.15  # one word every 0.15 s
    pipe.default_answerer = "fake"
    with serve_chat(pipe) as url:
        ui = open_page(url)
        ui.page.fill("#cc-question textarea", question)
        ui.page.click("#cc-send")
        streaming = ui.page.locator("#cc-chat .cc-streaming")
        streaming.wait_for()
        first = streaming.inner_text()
        ui.page.wait_for_function(
            "n => { const s = document.querySelector('#cc-chat .cc-streaming');"
            " return s && s.innerText.length > n; }",
            arg=len(first),
        )
        ui.screenshot("-streaming")
        assert "Penguins play jazz" not in first  # it really arrived piece by piece
        assert ui.page.locator("#cc-send").is_disabled()  # no second question meanwhile
        final = ui.page.locator("#cc-chat .cc-answer:not(.cc-streaming):not(.cc-meta)").first
        final.wait_for()
        assert streaming.count() == 0
        flagged = final.locator(".cc-unsupported")
        assert "Penguins play jazz" in flagged.inner_text()
        assert final.locator(".cc-badge").inner_text() == "unsupported"
        assert "Peter Lewis" in final.locator(".cc-sent:not(.cc-unsupported)").first.inner_text()
        assert "Peter Lewis" in final.locator(".cc-source mark").first.inner_text()
        ui.page.wait_for_function("() => !document.querySelector('#cc-send').disabled")
        ui.screenshot()


def test_upload_a_document_then_ask_about_it(
    fake_settings: Settings, open_page: Any, tmp_path: Path, serve_chat: Any
) -> None:
    pipe = Pipeline.load(fake_settings)
    upload = tmp_path / "up"
    upload.mkdir()
    new = upload / "Otter survey (2024).txt"
    new.write_text(
        "Otter survey finds families on the Wandle\n\n"
        "Volunteers counted fourteen otters along the river Wandle in Croydon.\n",
        encoding="utf-8",
    )
    taken = upload / "weather.txt"  # the corpus has a weather.txt: must not be replaced
    taken.write_text("Fog in Leeds\n\nThick fog delayed trains in Leeds.\n", encoding="utf-8")
    wrong = upload / "tool.exe"
    wrong.write_bytes(b"MZ\x00\x00")
    before = (fake_settings.corpus / "weather.txt").read_text(encoding="utf-8")
    with serve_chat(pipe) as url:
        ui = open_page(url)
        ui.page.click("#cc-add button, #cc-add .label-wrap")
        ui.page.locator("#cc-upload input[type=file]").set_input_files([str(new), str(taken)])
        status = ui.page.locator("#cc-upload-status")
        status.filter(has_text="Otter survey").wait_for()
        text = status.inner_text()
        assert "Otter_survey_2024.txt" in text
        assert "weather-2.txt" in text and "renamed from weather.txt" in text
        assert "4 documents" in text  # the index status after the upload
        ui.screenshot("-uploaded")
        # a wrong type is refused with a clear message (the server refuses it too:
        # test_app.py), and nothing is written
        ui.page.locator("#cc-upload input[type=file]").set_input_files([str(wrong)])
        ui.page.get_by_text("Invalid file type: tool.exe").wait_for()

        answer = ui.ask("How many otters did volunteers count along the Wandle?")
        assert "fourteen otters" in answer.inner_text()
        assert "Otter survey finds families" in answer.locator(".cc-source").first.inner_text()
        ui.screenshot()
    assert (fake_settings.corpus / "Otter_survey_2024.txt").is_file()
    assert (fake_settings.corpus / "weather.txt").read_text(encoding="utf-8") == before
    assert (fake_settings.corpus / "weather-2.txt").is_file()
    assert not list(fake_settings.corpus.glob("*.exe")) and not list(
        fake_settings.corpus.glob("tool*")
    )


def test_settings_passages_and_markdown_export(
    fake_settings: Settings, open_page: Any, serve_chat: Any
) -> None:
    pipe = Pipeline.load(fake_settings)
    with serve_chat(pipe) as url:
        ui = open_page(url)
        ui.page.click("#cc-settings button, #cc-settings .label-wrap")
        status = ui.page.locator("#cc-index-status")
        status.filter(has_text="2 documents").wait_for()
        assert "hashing-256" in status.inner_text()
        ui.page.locator("#cc-show input[type=checkbox]").check()
        ui.ask("Who was appointed new director?")
        passages = ui.page.locator("#cc-passages")
        passages.filter(has_text="Retrieved passages").wait_for()
        assert re.search(r"score \d\.\d{4}", passages.inner_text())
        ui.screenshot()
        with ui.page.expect_download() as info:
            ui.page.click("#cc-export")
        path = info.value.path()
        assert info.value.suggested_filename.endswith(".md")
        md = Path(path).read_text(encoding="utf-8")
        assert "## 1. Who was appointed new director?" in md
        assert "**Sources**" in md and "1. Balls appoints new director" in md
        assert "> " in md and "Peter Lewis" in md


def test_two_browser_sessions_keep_their_own_conversations(
    fake_settings: Settings, open_page: Any, serve_chat: Any
) -> None:
    pipe = Pipeline.load(fake_settings)
    with serve_chat(pipe) as url:
        ann, bob = open_page(url), open_page(url)
        ann.ask("Who was appointed new director?")
        bob.ask("What closed schools across London?")
        assert "Heavy snow" not in ann.page.locator("#cc-chat").inner_text()
        assert "Peter Lewis" not in bob.page.locator("#cc-chat").inner_text()
        for ui, title in ((ann, "Balls appoints"), (bob, "Snow in London")):
            ui.page.locator("#cc-chat a.cc-cite").first.click()
            ui.page.locator("#cc-document h4").filter(has_text=title).wait_for()
        bob.screenshot()


def test_a_citation_whose_document_changed_says_so(
    fake_settings: Settings, open_page: Any, serve_chat: Any
) -> None:
    harbour = fake_settings.corpus / "harbour.txt"
    harbour.write_text(LONG, encoding="utf-8")
    pipe = Pipeline.load(fake_settings)
    with serve_chat(pipe) as url:
        ui = open_page(url)
        answer = ui.ask("Who repainted the lamp room of the lighthouse?")
        assert "Morwenna Tregarthen" in answer.inner_text()
        # the document is edited and re-indexed after the answer was written
        harbour.write_text(
            LONG.replace("Harbour report\n\n", "Harbour report\n\nCorrected on Monday.\n\n"),
            encoding="utf-8",
        )
        pipe.refresh()
        answer.locator("a.cc-cite").first.click()
        notice = ui.page.locator("#cc-document .cc-stale")
        notice.wait_for()
        assert "This document changed after the answer was written" in notice.inner_text()
        assert ui.page.locator("#cc-document mark").count() == 0
        assert "Morwenna Tregarthen" in ui.page.locator("#cc-document .cc-quoted").inner_text()
        assert "Corrected on Monday." in ui.page.locator("#cc-document .cc-doc").inner_text()
        ui.screenshot()


DATED = (
    "Page last updated at 15:29 GMT, Saturday, 7 February 2009\n\n"
    "Council review published\n\n"
    "The council review found that managers rarely checked the records kept by staff.\n\n"
    "Copyright © 2009 BBC. Read more.\n\n"
    "2 Responses to Council review published\n\n"
    "  1. Lou 11 April , 2013 at 11:00 pm #\n\n"
    "    The council review is right that managers never checked the records.\n"
)


def test_source_cards_show_publisher_date_and_commenter(page_with: Any) -> None:
    with page_with("review.txt", DATED) as ui:
        answer = ui.ask("What did the council review find by February 2009?")
        assert "As of 7 February 2009 [1]: According to BBC News" in answer.inner_text()
        # the reader comments of 2013 were left out, and the answer says so
        assert "dated after 28 February 2009" in answer.locator(".cc-notice").inner_text()
        card = answer.locator(".cc-source").first
        assert "Council review published" in card.locator(".cc-title").inner_text()
        assert card.locator(".cc-meta").inner_text() == "BBC News · 7 February 2009 · article"
        comment = ui.ask("Is the council review right that managers never checked the records?")
        card = comment.locator(".cc-source.comment").first
        assert "reader comment by Lou, 11 April 2013" in card.locator(".cc-meta").inner_text()
        ui.screenshot()


def test_source_cards_show_the_pdf_page_and_the_heading_path(
    fake_settings: Settings, open_page: Any, serve_chat: Any
) -> None:
    """Issue 16: a PDF source names its page (and printed label), a Markdown source the
    path of headings it sits under, on the card and in the document panel."""
    from test_pdftext import book_pdf

    book_pdf(fake_settings.corpus / "book.pdf")
    (fake_settings.corpus / "guide.md").write_text(
        "# Harbour guide\n\nThe harbour has two piers.\n\n## Lighthouse keeping\n\n"
        "Morwenna Tregarthen repainted the lamp room of the lighthouse in spring.\n",
        encoding="utf-8",
    )
    with serve_chat(Pipeline.load(fake_settings)) as url:
        ui = open_page(url)
        answer = ui.ask("How often are log files rotated under the variable data folder?")
        card = answer.locator(".cc-source").filter(has_text="A Small Guide to Folders").first
        assert card.locator(".cc-where").inner_text() == "p. 5 (printed 3)"
        card.click()
        panel = ui.page.locator("#cc-document .cc-where")
        panel.filter(has_text="p. 5 (printed 3)").wait_for()
        ui.screenshot("-pdf")

        second = ui.ask("Who repainted the lamp room of the lighthouse?")
        card = second.locator(".cc-source").filter(has_text="Morwenna").first
        assert card.locator(".cc-where").inner_text() == "Harbour guide › Lighthouse keeping"
        ui.screenshot("-heading")
