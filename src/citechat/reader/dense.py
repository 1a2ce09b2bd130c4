"""The dense reader: the bundled MiniLM fine-tuned as a question -> answer-sentence
bi-encoder (its top layers retrained), scoring a candidate by cosine similarity.

Why not the cross-encoder (model.py): on the reader's own validation candidates the
untrained bi-encoder's cosine already puts the gold sentence first for 0.794 of
questions (with the chunk header), the trained cross-encoder for 0.602
(eval/reader/README.md).  Starting from the base model's embedding keeps what it
knows: before any training step this reader *is* the base cosine.

    net = DenseNet(bert, n_top=2)
    q, s = net.embed(**tokens(["Who won?"])), net.embed(**tokens(["Final\\nAnn won."]))
    float(q @ s.T)                                    # cosine, in [-1, 1]

A candidate's answer logit is ``a * cosine + b`` (``answer_calibration``, fitted on
validation pairs), so ``p_answer`` is a probability; P(unanswerable) pools the best
logit as the cross-encoder's does (:meth:`Reader.p_unanswerable`), but ``declines`` is
False: at answer time the abstention model keeps deciding (rereading.py), since on
the seed tune split this calibration declined 1 of 9 unanswerables and 4 of 12
answerables.  It finds no short answer span (``span`` is None): the answer quotes the
whole sentence.  Its ``cosine`` rides on each score for rereading.py.

The sentence side does not depend on the question, so with a :class:`VectorStore`
(vectors.py) each candidate is embedded once, by :meth:`DenseReader.prepare` (a whole
index's sentences, when the reader is loaded) or on its first question, and at
answer time only the question is encoded.

It does not train (densefit.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .artifact import Manifest
from .inputs import ReaderInput, ReaderScore
from .model import TopTrained
from .scoring import Reader, load_trained, sigmoid
from .vectors import VectorStore

#: the manifest's ``kind`` of a dense reader
KIND = "dense"
QUESTION_LEN = 48


def candidate_text(item: ReaderInput) -> str:
    """What the sentence side embeds: the chunk header, then the sentence.

    >>> candidate_text(ReaderInput("Final | comment by Ann", "", "Ann won.", "", 0))
    'Final | comment by Ann\\nAnn won.'
    """
    return f"{item.header}\n{item.sentence}" if item.header else item.sentence


class DenseNet(TopTrained):
    """``bert`` is a ``transformers`` BertModel; mean pooling and unit length, as
    all-MiniLM-L6-v2 is trained; only its top ``n_top`` layers train (no heads)."""

    def embed(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, hidden) unit-length mean-pooled embeddings."""
        out = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        m = attention_mask[..., None].to(out.dtype)
        mean = (out * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(mean, dim=-1)


def tokens(tokenizer: Any, texts: Sequence[str], max_len: int) -> dict[str, torch.Tensor]:
    t = tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_len, return_tensors="pt"
    )
    return {k: t[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in t}


def embed_texts(
    net: DenseNet, tokenizer: Any, texts: Sequence[str], max_len: int, batch_size: int = 64
) -> torch.Tensor:
    """(len(texts), hidden) embeddings, batched by length, in input order."""
    out = torch.zeros(len(texts), int(net.bert.config.hidden_size))
    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
    net.eval()
    with torch.inference_mode():
        for lo in range(0, len(order), batch_size):
            rows = order[lo : lo + batch_size]
            out[rows] = net.embed(**tokens(tokenizer, [texts[i] for i in rows], max_len))
    return out


class DenseReader(Reader):
    """A loaded dense reader: the same ``score`` / ``p_unanswerable`` as :class:`Reader`."""

    declines = False
    gives_cosine = True

    def __init__(  # the base class keeps a cross-encoder's Encoder; this keeps a tokenizer
        self,
        net: DenseNet,
        tokenizer: Any,
        manifest: Manifest,
        *,
        batch_size: int = 32,
        vectors: Path | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.net = net.eval()
        self.tokenizer = tokenizer
        self.manifest = manifest
        self.batch_size = batch_size
        dim = int(net.bert.config.hidden_size)
        #: candidate embeddings kept between questions (None: embedded every time)
        self.store = None if vectors is None else VectorStore(vectors, manifest.weights_sha256, dim)

    @classmethod
    def load(
        cls,
        folder: Path,
        *,
        base: Path | None = None,
        batch_size: int = 32,
        vectors: Path | None = None,
    ) -> DenseReader:
        net, tokenizer, manifest = load_trained(folder, base, DenseNet)
        return cls(net, tokenizer, manifest, batch_size=batch_size, vectors=vectors)

    def _embed(self, texts: Sequence[str]) -> torch.Tensor:
        return embed_texts(self.net, self.tokenizer, texts, self.manifest.max_len, self.batch_size)

    def candidate_vectors(self, texts: Sequence[str]) -> torch.Tensor:
        """(len(texts), hidden) embeddings of candidate texts: stored ones looked up,
        the rest embedded (and stored)."""
        if self.store is None or not self.store.usable:
            return self._embed(texts)
        known = self.store.get(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            fresh = self._embed(missing).numpy()
            made = dict(zip(missing, fresh, strict=True))
            self.store.put(made)
            known.update(made)
        return torch.from_numpy(np.stack([known[t] for t in texts]))

    def prepare(self, items: Sequence[ReaderInput]) -> int:
        """Embed and store the candidates of ``items`` not stored yet (an index's
        sentences, before its questions); how many were embedded."""
        if self.store is None or not self.store.usable:
            return 0
        texts = list(dict.fromkeys(candidate_text(i) for i in items))
        known = self.store.get(texts)
        missing = [t for t in texts if t not in known]
        for lo in range(0, len(missing), 1024):  # stored in parts: an interrupt keeps the rest
            part = missing[lo : lo + 1024]
            self.store.put(dict(zip(part, self._embed(part).numpy(), strict=True)))
        return len(missing)

    def cosines(self, question: str, items: Sequence[ReaderInput]) -> list[float]:
        if not items:
            return []
        q = self._embed([question])[0]
        vecs = self.candidate_vectors([candidate_text(i) for i in items])
        return (vecs @ q).tolist()

    def score(self, question: str, items: Sequence[ReaderInput]) -> list[ReaderScore]:
        """One :class:`ReaderScore` per item, in order; no span (whole sentences)."""
        if not items:
            return []
        a, b = self.manifest.answer_calibration
        out = []
        for cos in self.cosines(question, items):
            logit = a * cos + b
            out.append(ReaderScore(sigmoid(logit), logit, None, "", cosine=cos))
        return out
