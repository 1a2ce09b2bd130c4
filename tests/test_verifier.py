"""The optional NLI / cross-encoder verifier (CITECHAT_VERIFIER), with fake
CrossEncoders standing in for real models (none ships on PyPI for offline use)."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest
import sentence_transformers

from citechat.citations import CrossEncoderJudge, load_judge, verify
from citechat.embedding import HashingEmbedder
from citechat.errors import ModelError


class FakeNLI:
    """Three logits per pair in the label order of a real NLI cross-encoder;
    "entails" when every word of the claim is in the passage."""

    loaded: ClassVar[list[str]] = []
    config = SimpleNamespace(id2label={0: "contradiction", 1: "entailment", 2: "neutral"})

    def __init__(self, name: str, device: str | None = None) -> None:
        self.loaded.append(name)

    def predict(self, pairs: Sequence[tuple[str, str]], **_: object) -> np.ndarray:
        out = []
        for passage, claim in pairs:
            words = set(claim.lower().strip(".").split())
            entailed = words <= set(passage.lower().strip(".").split())
            out.append([0.0, 5.0, 0.0] if entailed else [5.0, 0.0, 0.0])
        return np.array(out)


class FakeRelevance(FakeNLI):
    config = SimpleNamespace(id2label={0: "LABEL_0"})

    def predict(self, pairs: Sequence[tuple[str, str]], **_: object) -> np.ndarray:
        return np.array([row[1] - 2.5 for row in super().predict(pairs)])


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    load_judge.cache_clear()
    FakeNLI.loaded = []


TEXT = "Peter Lewis was appointed director [1]. Penguins play jazz [1]."
QUOTES = ["Balls said peter lewis was appointed director of services."]


@pytest.mark.parametrize("fake", [FakeNLI, FakeRelevance])
def test_judge_decides_support(monkeypatch: pytest.MonkeyPatch, fake: type[FakeNLI]) -> None:
    monkeypatch.setattr(sentence_transformers, "CrossEncoder", fake)
    judged = verify(TEXT, QUOTES, HashingEmbedder(64), judge=load_judge("fake/nli"))
    assert [s.supported for s in judged] == [True, False]
    assert judged[0].score > 0.9 and judged[1].score < 0.1


def test_judge_is_loaded_once_per_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sentence_transformers, "CrossEncoder", FakeNLI)
    judge = load_judge("fake/nli")
    assert load_judge("fake/nli") is judge
    judge("a", ["a"])
    judge("b", ["b"])
    assert FakeNLI.loaded == ["fake/nli"]


def test_model_without_entailment_label_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class Sentiment(FakeNLI):
        config = SimpleNamespace(id2label={0: "negative", 1: "positive"})

    monkeypatch.setattr(sentence_transformers, "CrossEncoder", Sentiment)
    with pytest.raises(ModelError, match="none is 'entailment'"):
        CrossEncoderJudge("fake/sentiment")("a", ["a"])


def test_unloadable_verifier_is_a_one_line_model_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(name: str, device: str | None = None) -> None:
        raise OSError("no such model")

    monkeypatch.setattr(sentence_transformers, "CrossEncoder", broken)
    with pytest.raises(ModelError, match=r"cannot load verifier 'x'.*CITECHAT_VERIFIER"):
        CrossEncoderJudge("x")("a", ["a"])


def test_without_a_judge_the_embedding_check_is_used() -> None:
    plain = verify(TEXT, QUOTES, HashingEmbedder(64))
    assert plain[0].supported and not plain[1].supported
