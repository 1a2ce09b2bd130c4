"""Abstention: one calibrated decision for "the documents do not answer this".

A logistic model over a handful of absolute evidence features of a question's
retrieval and candidate answer sentences (see :data:`FEATURES`) gives the
probability that the documents hold the answer; below ``threshold`` the
answerer declines.  The coefficients are fitted by ``eval/calibrate_abstention.py``
on SQuAD v2.0 dev (questions written by others, half of them unanswerable) and
shipped as package data (``abstention.json``), so the runtime needs only a dot
product.  The features are computed once per question in answering.py
(``Reading.features``, from the candidate sentences the answerer reads too).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

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

    def __post_init__(self) -> None:
        if len(self.coef) != len(FEATURES):
            raise ConfigError(
                f"abstention model has {len(self.coef)} coefficients for "
                f"{len(FEATURES)} features; re-run eval/calibrate_abstention.py"
            )
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"abstention threshold must be in [0, 1], got {self.threshold}")

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
        return self.p_answerable(features) < self.threshold

    def with_threshold(self, threshold: float) -> AbstentionModel:
        return AbstentionModel(
            self.coef, self.intercept, threshold, self.calibrated_on, self.embedder
        )

    def to_json(self) -> dict[str, object]:
        return {"features": list(FEATURES), **asdict(self)}

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> AbstentionModel:
        names = data.get("features")
        if names != list(FEATURES):
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
