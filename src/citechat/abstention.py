"""Abstention: one calibrated decision for "the documents do not answer this".

A logistic model over a handful of absolute evidence features of a question's
retrieval and candidate answer sentences (see :data:`FEATURES`) gives the
probability that the documents hold the answer; below ``threshold`` the
answerer declines.  The coefficients are fitted by ``eval/calibrate_abstention.py``
on SQuAD v2.0 dev (questions written by others, half of them unanswerable) and
shipped as package data (``abstention.json``), so the runtime needs only a dot
product.  The features are computed once per question in answering.py
(``Reading.features``, from the candidate sentences the answerer reads too).

The last four features (``pred_cov5``, ``rare_missing``, ``typed_best``,
``unknown_cos``) were added for on-topic near misses (issue 15); the packaged model
predates them and gives them weight 0.  A model fitted with them on near misses made
by removal (``eval/abstention_removal.py``, ``eval/abstention/removal-2026-12-03.json``)
separates the news tuning questions better (AUC 0.60 -> 0.80 on the 72 seed
questions) but SQuAD v2.0's held-out articles worse (0.645 -> 0.575), so it is not
the packaged one; the ``abstention_model`` setting (:func:`configured`) lets a
corpus use it or another fitted file (README, "Near misses made by removal").
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Literal

from .errors import ConfigError

#: feature names, in the order of the coefficients
FEATURES = (
    "evidence",  # cos/lex mix of the best sentence (the old single threshold)
    "cosine",  # best sentence-question cosine
    "lexical",  # best sentence's lexical coverage of the question
    "typed",  # best answer-type support (0 when the question has no answer type)
    "has_type",  # 1 when the question asks for a person, time, number or place
    "entity_cov",  # IDF-weighted share of the question's names in the top chunk
    "term_cov",  # IDF-weighted share of the question's terms in the top chunk
    "unknown",  # IDF-weighted share of the question's terms found in no chunk
    "dense",  # cosine of the top chunk (0 when the mode has no dense search)
    "reader_cosine",  # a dense reader's best cosine over what it read (0 without one)
    # "near but not in" (issue 15): what the best sentences leave out of the question
    "pred_cov5",  # IDF-weighted share of the question's predicates in the top-5 sentences
    "rare_missing",  # 1 when the question's rarest term is in none of the top-5 sentences
    "typed_best",  # answer-type support of the best sentence itself
    # words the documents never use weigh differently on topic (a paraphrase) and off it
    "unknown_cos",  # unknown * cosine
)


@dataclass(frozen=True)
class AbstentionModel:
    """``p(answerable) = sigmoid(intercept + coef · features)``; decline below ``threshold``."""

    coef: tuple[float, ...]
    intercept: float
    threshold: float
    #: where the numbers come from (data set, split, date), for the README and reports
    calibrated_on: str = ""
    #: the embedder whose cosines it was fitted on; its similarity features mean
    #: nothing for another embedder
    embedder: str = ""
    #: the type gate: a question that asks for a kind of phrase (a name, a date, a
    #: number) that none of its best candidate sentences offers near its words is also
    #: declined when p(answerable) is below this (an on-topic near-fact: "On what date
    #: was the report published?" over passages that name no date); 0 turns it off
    type_gate: float = 0.0

    def __post_init__(self) -> None:
        if len(self.coef) != len(FEATURES):
            raise ConfigError(
                f"abstention model has {len(self.coef)} coefficients for "
                f"{len(FEATURES)} features; re-run eval/calibrate_abstention.py"
            )
        for name in ("threshold", "type_gate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"abstention {name} must be in [0, 1], got {value}")

    def p_answerable(self, features: Mapping[str, float]) -> float:
        """
        >>> m = AbstentionModel((1.0,) + (0.0,) * (len(FEATURES) - 1), -0.5, 0.5)
        >>> round(m.p_answerable({"evidence": 0.5}), 3)
        0.5
        """
        z = self.intercept + sum(
            c * float(features.get(name, 0.0)) for c, name in zip(self.coef, FEATURES, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def declines(self, features: Mapping[str, float]) -> bool:
        """
        >>> m = AbstentionModel((1.0,) + (0.0,) * (len(FEATURES) - 1), -0.5, 0.4, type_gate=0.6)
        >>> m.declines({"evidence": 0.5}), m.declines({"evidence": 0.5, "has_type": 1.0})
        (False, True)
        >>> m.declines({"evidence": 0.5, "has_type": 1.0, "typed": 0.2})
        False
        """
        p = self.p_answerable(features)
        if p < self.threshold:
            return True
        untyped = features.get("has_type", 0.0) > 0.0 and features.get("typed", 0.0) <= 0.0
        return untyped and p < self.type_gate

    def with_threshold(self, threshold: float) -> AbstentionModel:
        return replace(self, threshold=threshold)

    def to_json(self) -> dict[str, object]:
        return {"features": list(FEATURES), **asdict(self)}

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> AbstentionModel:
        names = data.get("features")
        coefs = data.get("coef")
        if (
            isinstance(names, list)
            and isinstance(coefs, list)
            and 0 < len(names) == len(coefs) < len(FEATURES)
            and names == list(FEATURES[: len(names)])
        ):
            # a model fitted before the later features: it gives them no weight
            pad = [0.0] * (len(FEATURES) - len(names))
            data = {**data, "features": list(FEATURES), "coef": [*coefs, *pad]}
        elif names != list(FEATURES):
            raise ConfigError(
                f"abstention model features {names} do not match this version's {list(FEATURES)};"
                " re-run eval/calibrate_abstention.py"
            )
        try:
            coef = tuple(float(c) for c in data["coef"])  # type: ignore[attr-defined]
            return cls(
                coef=coef,
                intercept=float(data["intercept"]),  # type: ignore[arg-type]
                threshold=float(data["threshold"]),  # type: ignore[arg-type]
                calibrated_on=str(data.get("calibrated_on", "")),
                embedder=str(data.get("embedder", "")),
                type_gate=float(data.get("type_gate", 0.0)),  # type: ignore[arg-type]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"abstention model is malformed ({exc!r})") from exc

    @classmethod
    def load(cls, path: Path | None = None) -> AbstentionModel:
        """The given file, or the calibrated model shipped with the package."""
        try:
            if path is None:
                text = resources.files("citechat").joinpath("abstention.json").read_text("utf-8")
            else:
                text = path.read_text(encoding="utf-8")
            data = json.loads(text)
        except (OSError, ValueError) as exc:
            where = path or "the packaged abstention.json"
            raise ConfigError(f"cannot read abstention model {where}: {exc}") from exc
        return cls.from_json(data)


def configured(path: Path | None, embedder: str) -> AbstentionModel | Literal["packaged"]:
    """The abstention model a ``abstention_model`` setting names ("packaged" when it
    names none): one fitted on a corpus's own questions (``eval/abstention_removal.py
    fit``) may decide there.  A model fitted on another embedder's cosines is refused.
    """
    if path is None:
        return "packaged"
    model = AbstentionModel.load(path)
    if model.embedder and model.embedder != embedder:
        raise ConfigError(
            f"abstention model {path} was fitted for embedder {model.embedder!r}, not "
            f"{embedder!r}; fit one for this embedder or unset abstention_model",
            "abstention_model",
        )
    return model
