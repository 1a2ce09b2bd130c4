"""citechat's own answer model ("reader"): is this sentence the answer, and where in it?

A small network over the bundled all-MiniLM-L6-v2 (its top layers retrained, two
heads) that scores a question against candidate sentences in context, finds the
short answer inside each as exact document offsets, and says how likely it is that
none of them answers.  Train it with ``python -m citechat.reader.train``; load it with
:meth:`Reader.load`, which raises :class:`ReaderArtifactError` when the artifact is
missing or damaged (the caller falls back to its heuristic answerer).

Modules: inputs (dataclasses in and out), encoding (tokens), model (network),
artifact (files), scoring (Reader), dense (the dense reader) and vectors (its stored
sentence embeddings), data / cache / metrics / train / densefit / loop / report
(training).
"""

from __future__ import annotations

from .artifact import Manifest, ReaderArtifactError
from .inputs import ReaderInput, ReaderScore, header_of, inputs_for_sentences
from .scoring import Reader

__all__ = [
    "Manifest",
    "Reader",
    "ReaderArtifactError",
    "ReaderInput",
    "ReaderScore",
    "header_of",
    "inputs_for_sentences",
]
