"""The web chat without a browser: rendering (escaped, cited, flagged), the Markdown
export, uploads into the corpus, streaming asks, the API endpoint and what the
server will and will not serve.  test_browser.py drives the same app in Chromium."""

from __future__ import annotations

import logging
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from citechat.app import _is_loopback, auth_from_env, create_app, launch_options, serve
from citechat.config import Settings
from citechat.errors import CitechatError, ModelError, UsageError
from citechat.pipeline import Pipeline
from citechat.render import (
    export_markdown,
    render_answer,
    render_document,
    render_passages,
    render_sources,
)
from citechat.types import Answer, Citation, SentenceSupport
from citechat.uploads import upload_name

EVIL = (
    "Evil <img src=x onerror=alert(1)> page\n\nThe director <script>alert('x')</script> was "
    "appointed <img src=x onerror=alert(1)> in secret by the council.\n"
)


@pytest.fixture
def evil_pipe(fake_settings: Settings) -> Pipeline:
    (fake_settings.corpus / "evil.txt").write_text(EVIL, encoding="utf-8")
    return Pipeline.load(fake_settings)


# -- rendering ---------------------------------------------------------------------


def test_every_view_escapes_document_text(evil_pipe: Pipeline) -> None:
    answer = evil_pipe.ask("Which director was appointed in secret by the council?")
    assert any(c.doc_id == "evil.txt" for c in answer.citations)
    html = (
        render_answer(evil_pipe, answer)
        + render_sources(evil_pipe, answer)
        + render_passages(answer)
        + "".join(render_document(evil_pipe, answer, c.n) for c in answer.citations)
    )
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<mark" in html


def test_answer_links_its_markers_and_lists_sources(pipe: Pipeline) -> None:
    answer = pipe.ask("Who was appointed new director?")
    html = render_answer(pipe, answer, turn=3)
    assert "href='#cc-3-1'" in html and ">[1]</a>" in html
    assert "<div class='cc-sources'>" in html and "Balls appoints new director" in html
    assert re.search(r"<mark>[^<]*Peter Lewis[^<]*</mark>", html)
    assert "\n\n" not in html  # a blank line would end the chat's HTML block


def test_unsupported_sentences_are_marked_and_bad_markers_stay_text(pipe: Pipeline) -> None:
    c = Citation(1, "balls.txt", "Balls appoints new director", "body", None, 0, 5, "Balls")
    answer = Answer(
        "q",
        "Lewis was named [1]. Penguins play jazz [1]. Nothing [9].",
        (c,),
        False,
        sentences=(
            SentenceSupport("Lewis was named [1].", (1,), True, 0.9),
            SentenceSupport("Penguins play jazz [1].", (1,), False, 0.12),
            SentenceSupport("Nothing [9].", (), False, 0.0),
        ),
    )
    html = render_answer(pipe, answer)
    unsupported = re.findall(r"<span class='cc-sent cc-unsupported'[^>]*>(.*?)</span>", html)
    assert [re.sub(r"<[^>]+>", "", u) for u in unsupported] == [
        "Penguins play jazz [1].",
        "Nothing [9].",
    ]
    assert html.count("<span class='cc-badge'") == 2 and "support 0.12" in html
    assert "Nothing [9]." in html and "#cc-0-9" not in html  # [9] names no source: no link


def test_the_short_answer_leads_in_bold_and_stays_escaped(pipe: Pipeline) -> None:
    c = Citation(1, "balls.txt", "Balls appoints new director", "body", None, 0, 5, "Balls")
    answer = Answer(
        "q",
        "**Peter <b>Lewis</b>** [1]. He was named [1].",
        (c,),
        False,
        sentences=(
            SentenceSupport("**Peter <b>Lewis</b>** [1].", (1,), True, 1.0),
            SentenceSupport("He was named [1].", (1,), True, 1.0),
        ),
    )
    html = render_answer(pipe, answer)
    assert "<strong class='cc-short'>Peter &lt;b&gt;Lewis&lt;/b&gt;</strong>" in html
    assert "**" not in html and "<b>" not in html


def test_comment_sources_name_the_commenter(pipe: Pipeline) -> None:
    answer = pipe.ask("Does joint working let people shift responsibility onto the process?")
    html = render_sources(pipe, answer)
    assert "reader comment by Nick Bromley" in html
    assert "class='cc-source comment'" in html


def test_markdown_export_has_each_question_answer_and_numbered_sources(pipe: Pipeline) -> None:
    first = pipe.ask("Who was appointed new director?")
    second = pipe.ask("What closed schools across London?")
    md = export_markdown(pipe, [first, second])
    assert md.startswith("# citechat conversation")
    assert "## 1. Who was appointed new director?" in md
    assert "## 2. What closed schools across London?" in md
    assert md.count("**Sources**") == 2
    assert "1. Balls appoints new director — article (balls.txt, characters" in md
    assert "   > " + first.citations[0].quote in md
    assert first.text in md and second.text in md


# -- uploads -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("report.txt", "report.txt"),
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\win.ini.md", "win.ini.md"),
        ("/abs/path/Notes.HTML", "Notes.html"),
        (".hidden.txt", "hidden.txt"),
        ("<img src=x onerror=alert(1)>.txt", "img_src_x_onerror_alert_1.txt"),
        ("Überblick – März.md", "Überblick_März.md"),
        ("...", "upload"),
        ("a" * 300 + ".pdf", "a" * 100 + ".pdf"),
    ],
)
def test_upload_names_are_sanitised(name: str, safe: str) -> None:
    assert upload_name(name) == safe


def _file(folder: Path, name: str, text: str | bytes) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_upload_is_indexed_and_never_overwrites(pipe: Pipeline, tmp_path: Path) -> None:
    corpus = pipe.settings.corpus
    before = (corpus / "weather.txt").read_text(encoding="utf-8")
    up = tmp_path / "up"
    new = _file(up, "otters.txt", "Otters\n\nVolunteers counted fourteen otters on the Wandle.\n")
    same = _file(up, "weather.txt", "Fog\n\nThick fog delayed trains in Leeds.\n")
    sneaky = _file(up, "x.txt", "Escape\n\nThis file tries to escape the corpus folder.\n")
    report = pipe.add_documents(
        [("otters.txt", new), ("weather.txt", same), ("../../escape.txt", sneaky)]
    )
    assert report.added == (
        ("otters.txt", "otters.txt"),
        ("weather.txt", "weather-2.txt"),
        ("../../escape.txt", "escape.txt"),
    )
    assert report.rejected == ()
    assert (corpus / "weather.txt").read_text(encoding="utf-8") == before
    assert not (tmp_path / "escape.txt").exists() and (corpus / "escape.txt").is_file()
    assert {"otters.txt", "weather-2.txt", "escape.txt"} <= set(pipe.index.documents)
    answer = pipe.ask("How many otters did volunteers count?")
    assert answer.citations[0].doc_id == "otters.txt"


def test_bad_uploads_are_rejected_with_reasons(fake_settings: Settings, tmp_path: Path) -> None:
    pipe = Pipeline.load(fake_settings.replace(max_upload_mb=0.001))
    up = tmp_path / "up"
    files = [
        ("tool.exe", _file(up, "tool.exe", b"MZ\x00\x00")),
        ("big.txt", _file(up, "big.txt", "Big\n\n" + "word " * 400)),
        ("empty.md", _file(up, "empty.md", "")),
        ("binary.txt", _file(up, "binary.txt", b"\x00\x01\x02 not text")),
        ("fake.pdf", _file(up, "fake.pdf", b"this is not a pdf")),
        ("ok.txt", _file(up, "ok.txt", "Fine\n\nA small file about kites.\n")),
    ]
    report = pipe.add_documents(files)
    reasons = dict(report.rejected)
    assert "not supported" in reasons["tool.exe"]
    assert "upload limit" in reasons["big.txt"] and "CITECHAT_MAX_UPLOAD_MB" in reasons["big.txt"]
    assert "empty" in reasons["empty.md"]
    assert "binary" in reasons["binary.txt"]
    assert "fake.pdf" in reasons
    assert report.added == (("ok.txt", "ok.txt"),)
    names = {p.name for p in pipe.settings.corpus.iterdir()}
    assert names == {"balls.txt", "weather.txt", "ok.txt"}


def test_uploads_need_a_corpus_folder(fake_settings: Settings, tmp_path: Path) -> None:
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text('{"id": "a", "title": "A", "text": "Kites fly high."}\n', encoding="utf-8")
    pipe = Pipeline.load(Settings(corpus=jsonl, index=tmp_path / "ix", embedder="hashing-256"))
    with pytest.raises(UsageError, match="not a folder"):
        pipe.add_documents([("x.txt", _file(tmp_path / "up", "x.txt", "X\n\nY.\n"))])


# -- streaming and in-flight answers -----------------------------------------------------


def test_ask_stream_yields_pieces_then_the_verified_answer(pipe: Pipeline, fake_llm: Any) -> None:
    items = list(pipe.ask_stream("Who was appointed new director?"))
    assert len(items) == 1 and isinstance(items[0], Answer)  # extractive: no pieces
    assert items[0].text == pipe.ask("Who was appointed new director?").text

    fake_llm(pipe, "Ed Balls ordered the appointment of Peter Lewis [1].")
    items = list(pipe.ask_stream("Who was appointed new director?", answerer="fake"))
    *pieces, answer = items
    assert all(isinstance(p, str) for p in pieces) and len(pieces) > 3
    assert isinstance(answer, Answer) and answer.answerer == "fake"
    assert "Peter Lewis" in answer.citations[0].quote and answer.sentences[0].supported
    assert {"retrieve", "answer", "verify", "total"} <= set(answer.latency_ms)


def test_an_upload_during_an_answer_does_not_break_it(
    pipe: Pipeline, fake_llm: Any, tmp_path: Path
) -> None:
    fake = fake_llm(pipe, "Ed Balls ordered the appointment of Peter Lewis [1].")
    fake.hold = threading.Event()  # waits at its first word until told to go on
    stream = pipe.ask_stream("Who was appointed new director?", answerer="fake")
    assert next(stream) == "Ed "  # retrieval done, generation under way
    old_index = pipe.index
    new = _file(tmp_path / "up", "kites.txt", "Kites\n\nKites fly over Parliament Hill.\n")
    pipe.add_documents([("kites.txt", new)])
    assert pipe.index is not old_index and "kites.txt" in pipe.index.documents
    fake.hold.set()
    *_, answer = list(stream)
    assert isinstance(answer, Answer)
    c = answer.citations[0]
    assert old_index.documents[c.doc_id].text[c.start : c.end] == c.quote


# -- serving ---------------------------------------------------------------------------


@pytest.fixture
def served(pipe: Pipeline, serve_chat: Any) -> Iterator[tuple[str, Pipeline]]:
    with serve_chat(pipe) as url:
        yield url, pipe


def test_api_returns_structured_citations(served: tuple[str, Pipeline]) -> None:
    from gradio_client import Client

    url, pipe = served
    client = Client(url, verbose=False)
    data: dict[str, Any] = client.predict(
        "Who was appointed new director?", 3, "[]", api_name="/ask"
    )
    assert data["abstained"] is False
    c = data["citations"][0]
    assert pipe.index.documents[c["doc_id"]].text[c["start"] : c["end"]] == c["quote"]
    assert "Peter Lewis" in c["quote"]
    assert data["sentences"] and data["sentences"][0]["supported"] is True
    empty = client.predict("   ", 3, "[]", api_name="/ask")
    assert "empty" in empty["error"]
    bad = client.predict("Who?", 3, "{not json", api_name="/ask")
    assert "history_json" in bad["error"]
    api = client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/ask"}  # chat, uploads: page only
    assert not api["unnamed_endpoints"]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_no_route_serves_corpus_or_other_files(served: tuple[str, Pipeline]) -> None:
    url, pipe = served
    corpus_file = (pipe.settings.corpus / "balls.txt").resolve()
    readme = Path(__file__).resolve().parents[1] / "README.md"
    for path in (corpus_file, readme, Path("/etc/passwd")):
        for prefix in ("gradio_api/file=", "file="):
            assert _status(f"{url}{prefix}{path}") in (403, 404), path


def test_launch_options_and_serve_defaults(
    fake_settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import gradio as gr

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: calls.append(kw))
    monkeypatch.setattr(gr.Blocks, "block_thread", lambda self: calls.append({"blocked": True}))
    warmed: list[Pipeline] = []
    monkeypatch.setattr("citechat.app.warm_up", warmed.append)
    monkeypatch.delenv("CITECHAT_AUTH", raising=False)
    settings = fake_settings.replace(max_upload_mb=2.0)
    assert launch_options(settings)["max_file_size"] == 2 * 1024 * 1024
    serve(settings)
    # launched without blocking, the embedder warmed while the page is up, then blocked
    assert calls[-1] == {"blocked": True} and len(warmed) == 1
    launched = calls[-2]
    assert launched["prevent_thread_lock"] is True
    assert launched["server_name"] == "127.0.0.1" and launched["share"] is False
    assert launched["auth"] is None and launched["show_error"] is False
    assert "allowed_paths" not in launched
    assert "anyone who can reach" not in caplog.text
    monkeypatch.setenv("CITECHAT_AUTH", "ann:secret")
    with caplog.at_level(logging.WARNING, logger="citechat"):
        serve(settings.replace(host="0.0.0.0"))
    assert calls[-2]["server_name"] == "0.0.0.0" and calls[-2]["auth"] == ("ann", "secret")
    assert "anyone who can reach this address" in caplog.text


def test_loopback_and_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _is_loopback("127.0.0.1") and _is_loopback("localhost") and _is_loopback("::1")
    assert not _is_loopback("0.0.0.0") and not _is_loopback("192.168.1.5")
    monkeypatch.setenv("CITECHAT_AUTH", "ann:secret")
    assert auth_from_env() == ("ann", "secret")
    monkeypatch.setenv("CITECHAT_AUTH", "nopassword")
    with pytest.raises(CitechatError, match="user:password"):
        auth_from_env()


def test_app_builds_without_launching(pipe: Pipeline) -> None:
    demo = create_app(pipe)
    assert demo.title == "citechat"
    assert not demo.is_running


def _handler(demo: Any, name: str) -> Any:
    return next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == name)


def test_chat_keeps_per_session_history_and_turn_numbers(
    pipe: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    respond = _handler(create_app(pipe), "respond")
    seen: list[list[tuple[str, str]]] = []
    real = pipe.ask_stream

    def spy(question: str, **kw: Any) -> Iterator[Any]:
        seen.append(list(kw["history"]))
        return real(question, **kw)

    monkeypatch.setattr(pipe, "ask_stream", spy)
    *_, last = respond("Who was appointed new director?", [], [], [], 5, "extractive", False)
    chat, turns, answers = last[:3]
    *_, last = respond("What did he demand?", chat, turns, answers, 5, "extractive", False)
    chat, turns, answers = last[:3]
    assert seen[0] == [] and seen[1] == [
        ("user", "Who was appointed new director?"),
        ("assistant", answers[0].text),
    ]
    assert len(answers) == 2 and len(chat) == 4
    assert "#cc-0-1" in chat[1]["content"] and "#cc-1-1" in chat[3]["content"]
    export = last[-2]["value"]
    assert Path(export).read_text(encoding="utf-8").count("**Sources**") == 2


def test_ask_button_is_disabled_while_an_answer_is_written(pipe: Pipeline) -> None:
    respond = _handler(create_app(pipe), "respond")
    frames = list(respond("Who was appointed new director?", [], [], [], 5, "extractive", False))
    assert len(frames) >= 2
    sends = [frame[-1] for frame in frames]
    assert all(send.get("interactive") is False for send in sends[:-1])
    assert sends[-1].get("interactive") is True and frames[-1][2]  # answered, enabled again
    # an error ends the answer too: the button comes back
    *_, failed = respond("Who was appointed?", [], [], [], 5, "no-such-answerer", False)
    assert "⚠" in failed[0][-1]["content"] and failed[-1].get("interactive") is True
    # an empty question changes nothing
    (only,) = respond("   ", [], [], [], 5, "extractive", False)
    assert "interactive" not in only[-1]


def test_warm_up_loads_the_embedder_and_logs_a_failure(
    pipe: Pipeline, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from citechat.app import warm_up

    seen: list[list[str]] = []
    monkeypatch.setattr(pipe.index.embedder, "embed", lambda texts: seen.append(list(texts)))
    warm_up(pipe)
    assert seen == [["warm up"]]

    def broken(texts: list[str]) -> None:
        raise ModelError("cannot load embedder 'x'; check the name or path")

    monkeypatch.setattr(pipe.index.embedder, "embed", broken)
    with caplog.at_level(logging.WARNING, logger="citechat"):
        warm_up(pipe)  # logged, not raised: the page stays up
    assert "cannot load embedder 'x'" in caplog.text


# -- where a source is: page and heading path (issue 16) ------------------------------

GUIDE_MD = """# Harbour guide

The harbour has two piers.

## Lighthouse keeping

Morwenna Tregarthen repainted the lamp room of the lighthouse in spring.
"""


@pytest.fixture
def where_pipe(tmp_path: Path) -> Pipeline:
    from helpers import pipeline_over
    from test_pdftext import book_pdf

    pipe = pipeline_over(tmp_path, {"guide.md": GUIDE_MD})
    book_pdf(pipe.settings.corpus / "book.pdf")
    return Pipeline.load(pipe.settings)


def test_sources_show_page_and_heading_path(where_pipe: Pipeline) -> None:
    pdf = where_pipe.ask("How often are log files rotated under the variable data folder?")
    cited = next(c for c in pdf.citations if c.doc_id == "book.pdf")
    assert (cited.page, cited.page_label) == (5, "3")
    assert "<div class='cc-meta cc-where'>p. 5 (printed 3)</div>" in render_sources(where_pipe, pdf)
    json_cited = next(c for c in pdf.to_json()["citations"] if c["doc_id"] == "book.pdf")
    assert (json_cited["page"], json_cited["page_label"], json_cited["heading"]) == (5, "3", None)

    md = where_pipe.ask("Who repainted the lamp room of the lighthouse?")
    card = render_sources(where_pipe, md)
    assert "Harbour guide › Lighthouse keeping" in card
    assert md.to_json()["citations"][0]["heading"] == "Harbour guide › Lighthouse keeping"
    panel = render_document(where_pipe, md, md.citations[0].n)
    assert "cc-where'>Harbour guide › Lighthouse keeping<" in panel

    export = export_markdown(where_pipe, [pdf, md])
    assert "(book.pdf, p. 5 (printed 3), characters" in export
    assert "(guide.md, Harbour guide › Lighthouse keeping, characters" in export


def test_sources_without_page_or_heading_show_no_where_line(pipe: Pipeline) -> None:
    answer = pipe.ask("Who was appointed new director?")
    assert answer.citations and "cc-where" not in render_sources(pipe, answer)
    assert all(c["page"] is None and c["heading"] is None for c in answer.to_json()["citations"])
