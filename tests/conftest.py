"""Shared fixtures: a tiny fake corpus with the hashing embedder (fast), and the
real seed corpus with the bundled MiniLM (integration, loaded once per session)."""

from __future__ import annotations

import shutil
from pathlib import Path

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
