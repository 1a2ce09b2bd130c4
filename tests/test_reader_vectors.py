"""The dense reader's sentence-embedding store (reader/vectors.py): round trip, keyed
by the reader's weights and each text, and a store it cannot use turns itself off
with a warning instead of failing the question."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from citechat.reader.vectors import VectorStore, text_key


def _vec(seed: int, dim: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=dim).astype(np.float32)


def test_vectors_round_trip_and_persist(tmp_path: Path) -> None:
    store = VectorStore(tmp_path, "a" * 64, dim=4)
    assert store.get(["x"]) == {}
    store.put({"x": _vec(1), "y": _vec(2)})
    again = VectorStore(tmp_path, "a" * 64, dim=4)  # a later run, a new connection
    got = again.get(["x", "y", "z"])
    assert set(got) == {"x", "y"}
    assert np.array_equal(got["x"], _vec(1)) and np.array_equal(got["y"], _vec(2))
    assert len(again) == 2


def test_another_reader_or_an_edited_text_sees_nothing(tmp_path: Path) -> None:
    VectorStore(tmp_path, "a" * 64, dim=4).put({"Final\nAnn won.": _vec(1)})
    assert VectorStore(tmp_path, "b" * 64, dim=4).get(["Final\nAnn won."]) == {}
    assert VectorStore(tmp_path, "a" * 64, dim=4).get(["Final\nAnn won!"]) == {}
    assert text_key("a") != text_key("a ")


def test_a_row_of_the_wrong_size_is_embedded_again(tmp_path: Path) -> None:
    VectorStore(tmp_path, "a" * 64, dim=3).put({"x": _vec(1, dim=3)})
    assert VectorStore(tmp_path, "a" * 64, dim=4).get(["x"]) == {}


def test_a_damaged_store_turns_off_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / f"{'a' * 32}.sqlite").write_bytes(b"not a database at all" * 100)
    with caplog.at_level(logging.WARNING, logger="citechat"):
        store = VectorStore(tmp_path, "a" * 64, dim=4)
        store.put({"x": _vec(1)})
        assert store.get(["x"]) == {}
    assert not store.usable and len(store) == 0
    assert "not used" in caplog.text and "embedded per question" in caplog.text


def test_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="weights hash"):
        VectorStore(tmp_path, "", dim=4)
    with pytest.raises(ValueError, match="dim must be at least 1, got 0"):
        VectorStore(tmp_path, "a" * 64, dim=0)
