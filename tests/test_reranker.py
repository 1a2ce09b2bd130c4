"""The optional cross-encoder reranker, with a fake CrossEncoder standing in for
a real model (none ships on PyPI for offline use): it must reorder the fused
candidates by the cross-encoder's scores, report its time, feed the answerer,
and fail with a one-line ModelError when the model cannot load."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pytest
import sentence_transformers

from citechat.config import Settings
from citechat.errors import ModelError
from citechat.pipeline import Pipeline
from citechat.retrieval import Retriever


class KeywordCrossEncoder:
    """Scores a (query, passage) pair by whether the passage holds a keyword;
    returns raw logits, as real ms-marco cross-encoders do."""

    loaded: ClassVar[list[str]] = []
    keyword = "snow"

    def __init__(self, name: str, device: str | None = None) -> None:
        self.loaded.append(name)

    def predict(self, pairs: Sequence[tuple[str, str]], **_: object) -> np.ndarray:
        return np.array([4.0 if self.keyword in p.lower() else -4.0 for _, p in pairs])


@pytest.fixture
def fake_cross_encoder(monkeypatch: pytest.MonkeyPatch) -> type[KeywordCrossEncoder]:
    KeywordCrossEncoder.loaded = []
    monkeypatch.setattr(sentence_transformers, "CrossEncoder", KeywordCrossEncoder)
    return KeywordCrossEncoder


def test_reranker_reorders_by_cross_encoder_scores(
    fake_settings: Settings, fake_cross_encoder: type[KeywordCrossEncoder]
) -> None:
    pipe = Pipeline.load(fake_settings)
    query = "Peter Lewis director appointment"
    plain = Retriever(pipe.index).search(query, k=3)
    assert plain.hits[0].chunk.doc_id == "balls.txt"

    reranked = Retriever(pipe.index, reranker="fake/ce").search(query, k=3)
    # the fake prefers the snow article, whatever the fused order said
    assert reranked.hits[0].chunk.doc_id == "weather.txt"
    assert "rerank" in reranked.timings
    assert fake_cross_encoder.loaded == ["fake/ce"]
    # logits were squashed to (0, 1) and are sorted
    scores = [h.score for h in reranked.hits]
    assert all(0 < s < 1 for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert [h.rank for h in reranked.hits] == list(range(1, len(scores) + 1))


def test_model_loads_once_per_retriever(
    fake_settings: Settings, fake_cross_encoder: type[KeywordCrossEncoder]
) -> None:
    pipe = Pipeline.load(fake_settings)
    r = Retriever(pipe.index, reranker="fake/ce")
    r.search("snow", k=2)
    r.search("director", k=2)
    assert fake_cross_encoder.loaded == ["fake/ce"]


def test_pipeline_uses_the_configured_reranker(
    fake_settings: Settings, fake_cross_encoder: type[KeywordCrossEncoder]
) -> None:
    pipe = Pipeline.load(fake_settings.replace(reranker="fake/ce"))
    answer = pipe.ask("Who was appointed as the new director?")
    assert fake_cross_encoder.loaded == ["fake/ce"]
    assert answer.hits[0].chunk.doc_id == "weather.txt"


def test_unloadable_reranker_is_a_one_line_model_error(
    fake_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(name: str, device: str | None = None) -> None:
        raise OSError(f"{name} is not a folder or a model id")

    monkeypatch.setattr(sentence_transformers, "CrossEncoder", broken)
    pipe = Pipeline.load(fake_settings)
    with pytest.raises(ModelError, match=r"cannot load reranker 'nope'.*CITECHAT_RERANKER") as exc:
        Retriever(pipe.index, reranker="nope").search("snow", k=2)
    assert "\n" not in str(exc.value)


def test_a_cross_encoder_replaces_the_evidence_rerank(
    fake_settings: Settings, fake_cross_encoder: type[KeywordCrossEncoder]
) -> None:
    answer = Pipeline.load(fake_settings.replace(reranker="fake/ce")).ask("Who is the director?")
    assert "retrieve_rerank" in answer.latency_ms
    assert "retrieve_evidence" not in answer.latency_ms
