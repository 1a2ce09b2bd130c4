from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from citechat.app import _is_loopback, auth_from_env, create_app, render_document, render_sources
from citechat.config import Settings
from citechat.errors import CitechatError
from citechat.pipeline import Pipeline


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def evil_pipe(fake_settings: Settings) -> Pipeline:
    (fake_settings.corpus / "evil.txt").write_text(
        "Evil page\n\nThe director <script>alert('x')</script> was appointed "
        "<img src=x onerror=alert(1)> in secret by the council.\n",
        encoding="utf-8",
    )
    return Pipeline.load(fake_settings)


def test_sources_and_document_are_escaped(evil_pipe: Pipeline) -> None:
    answer = evil_pipe.ask("Which director was appointed in secret by the council?")
    assert any(c.doc_id == "evil.txt" for c in answer.citations)
    html = render_sources(evil_pipe, answer) + "".join(
        render_document(evil_pipe, answer, c.n) for c in answer.citations
    )
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html
    assert "<mark" in html


def test_comment_sources_name_the_commenter(fake_settings: Settings) -> None:
    pipe = Pipeline.load(fake_settings)
    answer = pipe.ask("Does joint working let people shift responsibility onto the process?")
    html = render_sources(pipe, answer)
    assert "reader comment by Nick Bromley" in html


def test_loopback_and_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _is_loopback("127.0.0.1") and _is_loopback("localhost") and not _is_loopback("0.0.0.0")
    monkeypatch.setenv("CITECHAT_AUTH", "ann:secret")
    assert auth_from_env() == ("ann", "secret")
    monkeypatch.setenv("CITECHAT_AUTH", "nopassword")
    with pytest.raises(CitechatError, match="user:password"):
        auth_from_env()


@pytest.fixture
def served(fake_settings: Settings) -> Iterator[tuple[str, Pipeline]]:
    pipe = Pipeline.load(fake_settings)
    demo = create_app(pipe)
    port = _free_port()
    demo.queue().launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True
    )
    try:
        yield f"http://127.0.0.1:{port}/", pipe
    finally:
        demo.close()


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
    empty = client.predict("   ", 3, "[]", api_name="/ask")
    assert "empty" in empty["error"]


def test_app_builds_without_launching(fake_settings: Settings, tmp_path: Path) -> None:
    demo = create_app(Pipeline.load(fake_settings))
    assert demo.title == "citechat"
