"""Citations: [n] markers <-> sources, and checks that cited passages support each sentence.

``verify(answer_text, sources, embedder)`` splits an answer into sentences,
maps each ``[n]`` to its source (1-based, bounds-checked: ``[0]`` or ``[9]``
with three sources is dropped, never wrapped around), and scores how well the
cited passages support the sentence: cosine similarity of embeddings plus
the share of the sentence's content terms found in the passages.  When a
cross-encoder or NLI model is configured (``CITECHAT_VERIFIER``), it judges
support instead (:class:`CrossEncoderJudge`).

It does not generate text and it does not retrieve.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, TypeVar

import numpy as np

from .chunking import split_sentences
from .embedding import Embedder
from .errors import ModelError
from .text import terms
from .types import MARKER_PATTERN, SentenceSupport

MARKER = re.compile(MARKER_PATTERN)
#: a sentence is supported when its score reaches this (0..1)
SUPPORT_THRESHOLD = 0.5

T = TypeVar("T")


def source_for(n: int, sources: Sequence[T]) -> T | None:
    """Source ``n`` (1-based) or None when out of range.

    Python would read ``sources[0 - 1]`` as the LAST source, so a model's
    ``[0]`` would silently cite the wrong passage: that is why the bounds
    check lives here, in the one place numbers become positions.

    >>> source_for(1, ["a", "b"]), source_for(0, ["a", "b"]), source_for(3, ["a", "b"])
    ('a', None, None)
    """
    if 1 <= n <= len(sources):
        return sources[n - 1]
    return None


def markers(text: str) -> list[int]:
    """Marker numbers in order of appearance.

    >>> markers("A [1]. B [2][10] and [x].")
    [1, 2, 10]
    """
    return [int(m) for m in MARKER.findall(text)]


def strip_markers(text: str) -> str:
    """The text without [n] markers, including ones that removing others forms.

    >>> strip_markers("Peter Lewis [1]."), strip_markers("odd [1[2]] nesting")
    ('Peter Lewis.', 'odd  nesting')
    """
    while True:  # "[1[2]]" -> "[1]" -> "": each pass shortens the text, so this ends
        stripped = MARKER.sub("", text)
        if stripped == text:
            break
        text = stripped
    return re.sub(r"\s+([.,;:!?])", r"\1", text).strip()


@dataclass(frozen=True)
class AnswerSentence:
    """One sentence of an answer's text (its span in that text) and the ``[n]`` it cites."""

    start: int
    end: int
    text: str
    cited: tuple[int, ...]


def answer_sentences(text: str) -> list[AnswerSentence]:
    """Sentences of an answer with the markers each carries; a marker right
    after a full stop (``… end. [2]``) belongs to the sentence before it."""
    spans = split_sentences(text)
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if (merged and MARKER.fullmatch(text[a:b].strip())) or (
            merged and re.fullmatch(rf"(\s*{MARKER_PATTERN})+\s*", text[a:b])
        ):
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return [AnswerSentence(a, b, text[a:b], tuple(markers(text[a:b]))) for a, b in merged]


def support_score(
    sentence: str,
    passages: Sequence[str],
    embedder: Embedder,
    *,
    vectors: Sequence[np.ndarray] | None = None,
) -> float:
    """How well ``passages`` support ``sentence``, 0..1: mean of the best
    cosine similarity and the share of the sentence's terms in the passages.
    ``vectors``: the claim's and then each passage's embedding, when the caller
    has them already (the index keeps its sentences'), so none is embedded again.

    >>> from citechat.embedding import HashingEmbedder
    >>> e = HashingEmbedder(64)
    >>> claim = "Peter Lewis was appointed."
    >>> support_score(claim, ["Peter Lewis was appointed director."], e) > 0.8
    True
    """
    claim = strip_markers(sentence)
    if not passages or not claim:
        return 0.0
    if vectors is None:
        vecs = embedder.embed([claim, *passages])
    elif len(vectors) == len(passages) + 1:
        vecs = np.asarray(vectors)
    else:
        raise ValueError(f"{len(vectors)} vectors for a claim and {len(passages)} passages")
    cosine = float(np.max(vecs[1:] @ vecs[0]))
    claim_terms = set(terms(claim))
    if claim_terms:
        found = set().union(*(terms(p) for p in passages))
        coverage = len(claim_terms & found) / len(claim_terms)
    else:
        coverage = 0.0
    return max(0.0, min(1.0, 0.5 * max(cosine, 0.0) + 0.5 * coverage))


class Judge(Protocol):
    def __call__(self, claim: str, passages: Sequence[str]) -> float:
        """Support of ``claim`` by the best of ``passages``, 0..1."""
        ...


class CrossEncoderJudge:
    """Support judged by a sentence-transformers CrossEncoder on (passage, claim).

    An NLI model (labels such as contradiction/entailment/neutral) gives the
    softmax probability of its entailment label; a one-output model (a
    relevance cross-encoder) gives its sigmoid score.  Loaded on first use.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._model: Any = None
        self._entail: int | None = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    from sentence_transformers import CrossEncoder

                    model = CrossEncoder(self.name, device="cpu")
                except Exception as exc:
                    raise ModelError(
                        f"cannot load verifier {self.name!r}: {exc.__class__.__name__}; "
                        "check CITECHAT_VERIFIER (a cross-encoder or NLI model) or unset it"
                    ) from exc
                labels = getattr(getattr(model, "config", None), "id2label", None) or {}
                names = {int(i): str(v).lower() for i, v in dict(labels).items()}
                if len(names) > 1:
                    found = [i for i, v in names.items() if v.startswith("entail")]
                    if not found:
                        raise ModelError(
                            f"verifier {self.name!r} has labels {sorted(names.values())} "
                            "but none is 'entailment'; use an NLI or relevance cross-encoder"
                        )
                    self._entail = found[0]
                self._model = model
        return self._model

    def __call__(self, claim: str, passages: Sequence[str]) -> float:
        if not passages or not claim:
            return 0.0
        model = self._load()
        raw = np.asarray(
            model.predict(
                [(p, claim) for p in passages], show_progress_bar=False, activation_fn=None
            ),
            dtype=float,
        )
        if self._entail is not None:
            raw = raw.reshape(len(passages), -1)
            exp = np.exp(raw - raw.max(axis=1, keepdims=True))
            scores = exp[:, self._entail] / exp.sum(axis=1)
        else:
            raw = raw.reshape(len(passages))
            scores = raw if raw.min() >= 0 and raw.max() <= 1 else 1 / (1 + np.exp(-raw))
        return float(scores.max())


@lru_cache(maxsize=4)
def load_judge(name: str) -> CrossEncoderJudge:
    """One judge per model name per process (models are shared read-only)."""
    return CrossEncoderJudge(name)


def verify(
    text: str,
    quotes: Sequence[str],
    embedder: Embedder,
    *,
    threshold: float = SUPPORT_THRESHOLD,
    judge: Judge | None = None,
) -> tuple[SentenceSupport, ...]:
    """Per-sentence support of ``text`` by the sources its markers name.

    ``quotes[n - 1]`` is the passage of source n.  A marker with no such source
    is ignored; a sentence left with no valid marker is unsupported (score 0).
    With a ``judge``, it scores support instead of :func:`support_score`.
    """
    out = []
    for sent in answer_sentences(text):
        valid = tuple(n for n in sent.cited if source_for(n, quotes) is not None)
        passages = [q for n in valid if (q := source_for(n, quotes)) is not None]
        if not passages:
            score = 0.0
        elif judge is not None:
            score = judge(strip_markers(sent.text), passages)
        else:
            score = support_score(sent.text, passages, embedder)
        out.append(
            SentenceSupport(
                text=sent.text,
                citations=valid,
                supported=bool(passages) and score >= threshold,
                score=round(score, 4),
            )
        )
    return tuple(out)
