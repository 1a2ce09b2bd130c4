"""Shared fixtures: a tiny fake corpus with the hashing embedder (fast), the CLI
pointed at it, its built index and its pipeline, a fake LLM answerer registered as
``fake`` the way a plugin would be, and the real seed corpus with the bundled MiniLM
(integration, loaded once per session).  Plain helpers are in helpers.py."""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from citechat.answerers import register_answerer, unregister_answerer
from citechat.config import Settings
from citechat.generation import GenerativeAnswerer, Messages
from citechat.retrieval import Retriever

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "corpus"

# The reader model is off unless a test asks for it (``@pytest.mark.reader``): the
# tests of everything else pin today's heuristic answers and stay fast.  Subprocesses
# (the CLI, ``citechat serve``) read the variable; this process, the fixture below.
os.environ["CITECHAT_READER"] = "off"


@pytest.fixture(autouse=True)
def _reader_off(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("reader") is None:
        import citechat.pipeline
        from citechat.rereading import ReaderChoice

        monkeypatch.setattr(citechat.pipeline, "load_reader", lambda spec: ReaderChoice(None))


TINY = {
    "balls.txt": (
        "Balls appoints new director\n\n"
        "The children's secretary Ed Balls ordered the appointment of a new director, "
        "Peter Lewis. He demanded monthly updates on progress in the borough.\n\n"
        "Inspectors found systemic failings in management.\n\n"
        "2 Responses to Balls appoints new director\n\n"
        "  1. Nick Bromley 11 April , 2013 at 11:00 pm #\n\n"
        "    Joint working lets people shift responsibility onto the process.\n"
    ),
    "weather.txt": (
        "Snow in London\n\n"
        "Heavy snow closed schools across London on Monday. Buses were withdrawn.\n"
    ),
}


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, text in TINY.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def fake_settings(tmp_path: Path, tiny_corpus: Path) -> Settings:
    return Settings(corpus=tiny_corpus, index=tmp_path / "index", embedder="hashing-256")


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, fake_settings: Settings, tmp_path: Path) -> Settings:
    """The ``citechat`` command of this process pointed at the tiny corpus (CITECHAT_*
    variables, the hashing embedder), run from ``tmp_path``."""
    monkeypatch.setenv("CITECHAT_CORPUS", str(fake_settings.corpus))
    monkeypatch.setenv("CITECHAT_INDEX", str(fake_settings.index))
    monkeypatch.setenv("CITECHAT_EMBEDDER", "hashing-256")
    monkeypatch.chdir(tmp_path)
    return fake_settings


@pytest.fixture
def built(fake_settings: Settings) -> Settings:
    """The tiny corpus with its index built, and a folder beside it (``outside``)."""
    from citechat.index import sync_index

    sync_index(fake_settings)
    (fake_settings.index.parent / "outside").mkdir()  # a target for "CURRENT points outside"
    return fake_settings


@pytest.fixture
def pipe(fake_settings: Settings):  # type: ignore[no-untyped-def]
    """The pipeline of the tiny corpus (hashing embedder)."""
    from citechat.pipeline import Pipeline

    return Pipeline.load(fake_settings)


class FakeLLM(GenerativeAnswerer):
    """A queued-reply LLM (llm's ``MockModel.enqueue``): each generation replies
    with the next queued text, word by word, and records its prompt.  ``delay``:
    seconds before each word; ``hold``: an event it waits for after the first
    word (an answer caught in flight)."""

    def __init__(self, name: str, retriever: Retriever, settings: Settings) -> None:
        super().__init__(name, retriever, settings)
        self.replies: list[str] = []
        self.prompts: list[Messages] = []
        self.delay = 0.0
        self.hold: threading.Event | None = None

    def enqueue(self, *replies: str) -> FakeLLM:
        self.replies.extend(replies)
        return self

    def generate(self, messages: Messages, max_new_tokens: int) -> Iterator[str]:
        self.prompts.append(messages)
        assert self.replies, (
            f"{self.name} was asked {len(self.prompts)} times; enqueue more replies"
        )
        for i, word in enumerate(re.findall(r"\S+\s*", self.replies.pop(0))):
            time.sleep(self.delay)
            yield word
            if i == 0 and self.hold is not None:
                self.hold.wait(10)


@pytest.fixture
def fake_llm() -> Iterator[Callable[..., FakeLLM]]:
    """Registers the ``fake`` answerer (``fake`` or ``fake:<name>``: a :class:`FakeLLM`)
    for one test, as a plugin would, and gives ``new(pipe, *replies)``: the fake a
    pipeline asks for ``pipe.answerer("fake")``, with ``replies`` enqueued."""

    def factory(argument: str, retriever: Retriever, settings: Settings) -> FakeLLM:
        return FakeLLM(f"fake:{argument}" if argument else "fake", retriever, settings)

    def new(pipe: Any, *replies: str, spec: str = "fake") -> FakeLLM:
        fake = pipe.answerer(spec)
        assert isinstance(fake, FakeLLM)
        return fake.enqueue(*replies)

    register_answerer("fake", factory, form="fake:<name>")
    try:
        yield new
    finally:
        unregister_answerer("fake")


@pytest.fixture(scope="session")
def seed_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The real seed corpus (copied) and a session-wide index built with MiniLM."""
    base = tmp_path_factory.mktemp("seed")
    corpus = base / "corpus"
    shutil.copytree(SEED, corpus)
    return Settings(corpus=corpus, index=base / "index")


@pytest.fixture(scope="session")
def seed_pipeline(seed_settings: Settings):  # type: ignore[no-untyped-def]
    from citechat.pipeline import Pipeline

    return Pipeline.load(seed_settings)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """A function that returns a TCP port on 127.0.0.1 that nothing listens on."""
    return _free_port


@contextmanager
def _serving(pipe: Any) -> Iterator[str]:
    from citechat.app import create_app, launch_options

    demo = create_app(pipe)
    demo.queue(default_concurrency_limit=8)
    _, url, _ = demo.launch(
        server_name="127.0.0.1",
        server_port=_free_port(),
        prevent_thread_lock=True,
        quiet=True,
        **launch_options(pipe.settings),
    )
    try:
        yield url
    finally:
        demo.close()


@pytest.fixture(scope="session")
def serve_chat() -> Callable[[Any], AbstractContextManager[str]]:
    """``with serve_chat(pipe) as url``: the web chat of ``pipe`` served in this process
    on a free port, as ``citechat serve`` launches it (queue, 8 at a time), until the
    block ends."""
    return _serving
