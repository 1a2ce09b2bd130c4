"""Shared fixtures: a tiny fake corpus with the hashing embedder (fast), and the
real seed corpus with the bundled MiniLM (integration, loaded once per session)."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from citechat.config import Settings

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "corpus"

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
