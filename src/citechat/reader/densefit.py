"""Train the dense reader (dense.py): ``citechat train-reader --design dense``.

Per answerable training question: (question, its gold sentence, its hard negatives
from data.py: the paragraph's most question-like non-answer sentence, the top BM25
non-gold paragraph's, a random one of the paragraph).  The loss is the multiple
negatives ranking loss (sentence-transformers' MultipleNegativesRankingLoss): cross
entropy of ``scale * cosine`` over the question's own gold sentence against every
other gold sentence and hard negative in the batch.  Validation (evaluated at step 0,
i.e. the base model, then every ``eval_every`` steps and at epoch ends) picks the
checkpoint by ``top1``; the answer logit ``a * cosine + b`` and the unanswerable
calibration are fitted on validation at that checkpoint.  Seeded, deterministic for
a thread count, checkpointed every ``checkpoint_every`` steps and resumed by the
same command.

It does not load or score at answer time (dense.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import loop
from .data import Pair
from .loop import FitResult, Steps, total_steps

_CHECKPOINT = "dense-checkpoint.pt"


@dataclass(frozen=True)
class DenseConfig:
    epochs: int = 3
    #: questions per batch (each brings its gold sentence and ``negatives`` more)
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup: float = 0.1
    negatives: int = 2
    #: sentence-transformers' default for MultipleNegativesRankingLoss
    scale: float = 20.0
    n_top: int = 3
    max_len: int = 96
    question_len: int = 48
    seed: int = 13
    eval_every: int = 100
    checkpoint_every: int = 50
    max_steps: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.negatives < 0:
            raise ValueError(f"epochs and batch_size must be at least 1, got {self}")


@dataclass(frozen=True)
class Example:
    question: str
    positive: str
    negatives: tuple[str, ...]


def examples(pairs: Sequence[Pair], negatives: int) -> list[Example]:
    """One example per question with a gold pair, in first-seen order; its hard
    negatives the hardest first: the paragraph's most question-like sentence, then
    citechat's retrieved paragraphs', the in-article BM25 one's, the random rest.

    >>> from citechat.reader.inputs import ReaderInput
    >>> i = lambda s: ReaderInput("T", "", s, "", 0)
    >>> ps = [Pair("q", "Who?", i("Ann won."), 1, (0, 3), "gold"),
    ...       Pair("q", "Who?", i("It rained."), 0, None, "paragraph")]
    >>> examples(ps, 2)
    [Example(question='Who?', positive='T\\nAnn won.', negatives=('T\\nIt rained.',))]
    """
    from .dense import candidate_text

    groups: dict[str, list[Pair]] = {}
    for p in pairs:
        groups.setdefault(p.qid, []).append(p)
    out = []
    for rows in groups.values():
        gold = [p for p in rows if p.label == 1]
        if not gold:
            continue
        negs = [p for p in rows if p.label == 0]
        # the first paragraph negative is the hardest; the other paragraph ones are random
        ranked = sorted(enumerate(negs), key=lambda t: (_neg_rank(t[0], t[1].kind), t[0]))
        texts = tuple(candidate_text(p.item) for _, p in ranked[:negatives])
        out.append(Example(gold[0].question, candidate_text(gold[0].item), texts))
    return out


def _neg_rank(position: int, kind: str) -> int:
    if kind == "paragraph":
        return 0 if position == 0 else 3
    return 1 if kind == "retrieved" else 2


def evaluate(net: Any, tokenizer: Any, pairs: Sequence[Pair], config: DenseConfig) -> np.ndarray:
    """The cosine of every pair's question and candidate under ``net``."""
    from .dense import candidate_text, embed_texts

    questions = sorted({p.question for p in pairs})
    cands = sorted({candidate_text(p.item) for p in pairs})
    qv = embed_texts(net, tokenizer, questions, config.question_len).numpy()
    cv = embed_texts(net, tokenizer, cands, config.max_len).numpy()
    qi = {q: i for i, q in enumerate(questions)}
    ci = {c: i for i, c in enumerate(cands)}
    return np.array(
        [float(qv[qi[p.question]] @ cv[ci[candidate_text(p.item)]]) for p in pairs],
        dtype=np.float64,
    )


def dense_metrics(pairs: Sequence[Pair], cosines: np.ndarray) -> dict[str, float]:
    """top1, sentence AUC and unanswerable AUC (metrics.py) of ``cosines``; select = top1."""
    from .metrics import auc, by_question, question_logits

    labels = np.array([p.label for p in pairs])
    top1 = []
    for rows in by_question(pairs).values():
        if any(pairs[i].label == 1 for i in rows):
            top1.append(float(pairs[rows[int(np.argmax(cosines[rows]))]].label == 1))
    best, unans = question_logits(pairs, cosines)
    out = {
        "pairs": float(len(pairs)),
        "questions": float(len(by_question(pairs))),
        "top1": float(np.mean(top1)) if top1 else 0.0,
        "sentence_auc": auc(cosines, labels),
        "unanswerable_questions": float(unans.sum()),
        "unanswerable_auc": auc(-best, unans),
    }
    out["select"] = out["top1"]
    return out


def calibrations(
    pairs: Sequence[Pair], cosines: np.ndarray
) -> tuple[tuple[float, float], tuple[float, float], dict[str, float]]:
    """(answer (a, b), unanswerable (w, b), decline rates at p > 0.5), fitted on
    ``pairs``: logit = a * cosine + b; P(unanswerable) = sigmoid(w * best logit + b)."""
    from .metrics import fit_logistic, question_logits

    labels = np.array([p.label for p in pairs])
    answer = fit_logistic(cosines, labels) if 0 < labels.sum() < len(labels) else (1.0, 0.0)
    logits = answer[0] * cosines + answer[1]
    best, unans = question_logits(pairs, logits)
    unanswerable = fit_logistic(best, unans) if 0 < unans.sum() < len(unans) else (-1.0, 0.0)
    p = 1.0 / (1.0 + np.exp(-(unanswerable[0] * best + unanswerable[1])))
    rates = {}
    if unans.any():
        rates["declined_unanswerable"] = float((p[unans == 1] > 0.5).mean())
    if (unans == 0).any():
        rates["wrongly_declined"] = float((p[unans == 0] > 0.5).mean())
    return answer, unanswerable, rates


def _batch_loss(net: Any, tokenizer: Any, batch: Sequence[Example], config: DenseConfig) -> Any:
    import torch
    import torch.nn.functional as F

    from .dense import tokens

    q = net.embed(**tokens(tokenizer, [e.question for e in batch], config.question_len))
    docs = [e.positive for e in batch] + [n for e in batch for n in e.negatives]
    d = net.embed(**tokens(tokenizer, docs, config.max_len))
    logits = config.scale * q @ d.T
    return F.cross_entropy(logits, torch.arange(len(batch)))


def mean_loss(net: Any, tokenizer: Any, data: Sequence[Example], config: DenseConfig) -> float:
    """The training loss over ``data`` in fixed batches, without dropout."""
    import torch

    net.eval()
    total = 0.0
    with torch.inference_mode():
        for lo in range(0, len(data), config.batch_size):
            part = data[lo : lo + config.batch_size]
            total += float(_batch_loss(net, tokenizer, part, config)) * len(part)
    return total / max(len(data), 1)


def _fingerprint(config: DenseConfig, data: Sequence[Example], base_sha256: str) -> str:
    h = hashlib.sha256(json.dumps([asdict(config), base_sha256]).encode())
    for e in data:
        h.update(json.dumps([e.question, e.positive, e.negatives]).encode())
    return h.hexdigest()[:16]


def fit(
    net: Any,
    tokenizer: Any,
    train: Sequence[Pair],
    validation: Sequence[Pair],
    config: DenseConfig,
    work: Path,
    *,
    base_sha256: str = "",
    progress: bool = True,
    stop_after: int | None = None,
) -> FitResult:
    """Train ``net``'s top layers; ``work`` holds the checkpoint.  ``stop_after``
    steps in this call, it checkpoints and returns as if interrupted.  The result's
    ``calibration`` is the unanswerable one; ``best["answer_a"]``/``["answer_b"]``
    the answer logit's."""
    import torch

    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    data = examples(train, config.negatives)
    if not data:
        raise ValueError("no training question has a gold sentence")
    params = [p for layer in net.top_layers() for p in layer.parameters()]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps = Steps(
        total=total_steps(len(data), config.batch_size, config.epochs, config.max_steps),
        batch_size=config.batch_size,
        warmup=config.warmup,
        eval_every=config.eval_every,
        checkpoint_every=config.checkpoint_every,
    )

    def plan(epoch: int) -> list[list[int]]:
        order = np.random.default_rng([config.seed, epoch]).permutation(len(data)).tolist()
        return [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]

    def step_loss(batch: list[int]) -> tuple[Any, dict[str, float]]:
        return _batch_loss(net, tokenizer, [data[i] for i in batch], config), {}

    def run_eval() -> tuple[dict[str, float], tuple[float, float]]:
        cos = evaluate(net, tokenizer, validation, config)
        row = dense_metrics(validation, cos)
        answer, unanswerable, rates = calibrations(validation, cos)
        row.update(rates)
        row.update(answer_a=answer[0], answer_b=answer[1])
        return row, unanswerable

    return loop.run(
        net,
        opt,
        params,
        steps,
        plan=plan,
        step_loss=step_loss,
        evaluate=run_eval,
        result=FitResult(),
        checkpoint_path=work / _CHECKPOINT,
        fingerprint=_fingerprint(config, data, base_sha256),
        eval_at_start=True,
        stop_after=stop_after,
        progress=progress,
        desc="train dense reader",
    )
