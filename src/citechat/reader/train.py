"""Train the reader on SQuAD dev: ``python -m citechat.reader.train``.

split by article (data.py) -> pairs -> tokens (encoding.py) -> the frozen layers'
output, cached once (cache.py) -> the top layers and heads trained on the cache ->
the checkpoint with the best validation ``select`` (metrics.py) -> the unanswerable
calibration fitted on validation -> the artifact (artifact.py) and a report folder
(report.py).  Seeded and deterministic for a given thread count; a checkpoint is
written every ``--checkpoint-every`` steps, and the same command resumes from it.

It does not score at answer time (scoring.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import loop
from .data import (
    CORPUS_FILE,
    TEST_FILE,
    V11_FILE,
    V20_FILE,
    DataConfig,
    Pair,
    Retrieve,
    build_pairs,
    squad_split,
)
from .encoding import Encoded, Encoder
from .loop import FitResult, Steps, total_steps

DEFAULT_OUT = Path(__file__).resolve().parent / "model"
_CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 2
    batch_size: int = 32
    lr: float = 1e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.06
    span_weight: float = 1.0
    n_top: int = 2
    max_len: int = 128
    seed: int = 13
    #: evaluate every N steps, and at the end of each epoch (0: at epoch ends only)
    eval_every: int = 600
    checkpoint_every: int = 200
    #: stop after this many steps (tiny runs); None: all epochs
    max_steps: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be at least 1, got {self}")


def _targets(pairs: Sequence[Pair], encoded: Sequence[Encoded]) -> np.ndarray:
    """(N, 3) int64: label, start token, end token (-1 without a span)."""
    out = np.full((len(pairs), 3), -1, dtype=np.int64)
    for i, (p, e) in enumerate(zip(pairs, encoded, strict=True)):
        out[i, 0] = p.label
        tokens = e.token_span(*p.span) if p.span else None
        if tokens:
            out[i, 1:] = tokens
    return out


def _plan(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """An epoch's batches: shuffled, then sorted by length within windows of 50
    batches (less padding), and the batches shuffled again.  Seeded per epoch, so
    a resumed run replays the same order."""
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(len(lengths))
    window = batch_size * 50
    batches: list[list[int]] = []
    for w in range(0, len(perm), window):
        part = sorted(perm[w : w + window].tolist(), key=lambda i: (lengths[i], i))
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def _losses(
    net: Any, batch: dict[str, Any], targets: Any, span_weight: float
) -> tuple[Any, float, float]:
    import torch
    import torch.nn.functional as F

    answer, start, end = net.top(batch["hidden"], batch["attention_mask"], batch["sentence_mask"])
    bce = F.binary_cross_entropy_with_logits(answer, targets[:, 0].float())
    has = targets[:, 1] >= 0
    span = torch.zeros(())
    if bool(has.any()):
        span = (
            F.cross_entropy(start[has], targets[has, 1])
            + F.cross_entropy(end[has], targets[has, 2])
        ) / 2
    return bce + span_weight * span, float(bce.detach()), float(span.detach())


def predict(
    net: Any, cache: Any, batch_size: int = 64
) -> tuple[np.ndarray, list[tuple[int, int] | None]]:
    """(answer logits, answer spans in sentence characters) for every row of
    ``cache``, from the top layers."""
    import torch

    from .model import best_spans

    n = len(cache.encoded)
    logits = np.zeros(n, dtype=np.float64)
    chars: list[tuple[int, int] | None] = [None] * n
    order = sorted(range(n), key=lambda i: int(cache.lengths[i]))
    net.eval()
    for lo in range(0, n, batch_size):
        rows = order[lo : lo + batch_size]
        b = cache.batch(rows)
        with torch.inference_mode():
            answer, start, end = net.top(b["hidden"], b["attention_mask"], b["sentence_mask"])
        spans = best_spans(start.numpy(), end.numpy(), b["sentence_mask"].numpy())
        for k, i in enumerate(rows):
            logits[i] = float(answer[k])
            span, e = spans[k], cache.encoded[i]
            if span is not None:
                chars[i] = (e.offsets[span[0] - e.lo][0], e.offsets[span[1] - e.lo][1])
    return logits, chars


def span_texts(pairs: Sequence[Pair], spans: Sequence[tuple[int, int] | None]) -> list[str]:
    return [p.item.sentence[s[0] : s[1]] if s else "" for p, s in zip(pairs, spans, strict=True)]


def mean_loss(net: Any, cache: Any, targets: np.ndarray, span_weight: float = 1.0) -> float:
    """The training loss over all rows of ``cache``, without dropout."""
    import torch

    net.eval()
    rows = list(range(len(cache.encoded)))
    total = 0.0
    with torch.inference_mode():
        for lo in range(0, len(rows), 64):
            part = rows[lo : lo + 64]
            loss, _, _ = _losses(
                net, cache.batch(part), torch.from_numpy(targets[part]), span_weight
            )
            total += float(loss) * len(part)
    return total / max(len(rows), 1)


def _fingerprint(config: TrainConfig, *keys: str) -> str:
    return hashlib.sha256(json.dumps([asdict(config), keys]).encode()).hexdigest()[:16]


def fit(
    net: Any,
    encoder: Encoder,
    train: Sequence[Pair],
    validation: Sequence[Pair],
    config: TrainConfig,
    work: Path,
    *,
    base_sha256: str = "",
    progress: bool = True,
    stop_after: int | None = None,
) -> FitResult:
    """Train ``net``'s top layers and heads; ``work`` holds the caches and checkpoint.
    ``stop_after`` steps in this call, it checkpoints and returns as if interrupted.

    Returns the losses, the validation history, and the best checkpoint's state with
    the calibration fitted on validation at that checkpoint.
    """
    import torch

    from .cache import LowerCache, cache_key
    from .metrics import fit_logistic, question_logits, validation_metrics

    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    t0 = time.perf_counter()
    enc_train = encoder.encode([p.question for p in train], [p.item for p in train])
    enc_val = encoder.encode([p.question for p in validation], [p.item for p in validation])
    keys = (
        cache_key(base_sha256, net.split, enc_train),
        cache_key(base_sha256, net.split, enc_val),
    )
    c_train = LowerCache.build(
        net, encoder, enc_train, work / f"cache-{keys[0]}", progress=progress
    )
    c_val = LowerCache.build(net, encoder, enc_val, work / f"cache-{keys[1]}", progress=progress)
    result = FitResult(cache_seconds=time.perf_counter() - t0)
    targets = torch.from_numpy(_targets(train, enc_train))

    params_top = [p for layer in net.top_layers() for p in layer.parameters()]
    params_head = [*net.answer_head.parameters(), *net.span_head.parameters()]
    opt = torch.optim.AdamW(
        [{"params": params_top, "lr": config.lr}, {"params": params_head, "lr": config.head_lr}],
        weight_decay=config.weight_decay,
    )
    steps = Steps(
        total=total_steps(len(train), config.batch_size, config.epochs, config.max_steps),
        batch_size=config.batch_size,
        warmup=config.warmup,
        eval_every=config.eval_every,
        checkpoint_every=config.checkpoint_every,
    )

    def step_loss(rows: list[int]) -> tuple[Any, dict[str, float]]:
        loss, bce, span = _losses(net, c_train.batch(rows), targets[rows], config.span_weight)
        return loss, {"bce": bce, "span": span}

    def evaluate() -> tuple[dict[str, float], tuple[float, float]]:
        logits, raw = predict(net, c_val)
        best, unans = question_logits(validation, logits)
        calibration = fit_logistic(best, unans) if 0 < unans.sum() < len(unans) else (-1.0, 0.0)
        row = validation_metrics(validation, logits, span_texts(validation, raw), calibration)
        return row, calibration

    return loop.run(
        net,
        opt,
        [*params_top, *params_head],
        steps,
        plan=lambda epoch: _plan(c_train.lengths, config.batch_size, config.seed, epoch),
        step_loss=step_loss,
        evaluate=evaluate,
        result=result,
        checkpoint_path=work / _CHECKPOINT,
        fingerprint=_fingerprint(config, *keys),
        stop_after=stop_after,
        progress=progress,
        desc="train reader",
    )


def _commit() -> str:
    """The checkout's commit (``-dirty`` with uncommitted changes), run from the current
    folder: installed code names no checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def retriever(data: Path, index: Path, depth: int = 10) -> Retrieve:
    """citechat's hybrid retrieval over ``index`` (of ``data``'s corpus) as question ->
    paragraph ids, best first: where the answerer's confusions come from."""
    from ..config import Settings
    from ..pipeline import Pipeline

    pipe = Pipeline.load(Settings(corpus=data / CORPUS_FILE, index=index), sync=False)

    def retrieve(question: str) -> list[str]:
        hits = pipe.retriever.search(question, k=depth).hits
        return list(dict.fromkeys(h.chunk.doc_id for h in hits))

    return retrieve


def main(
    argv: Sequence[str] | None = None, *, prog: str = "python -m citechat.reader.train"
) -> int:
    from ..config import omp_num_threads
    from ..errors import UsageError

    ap = argparse.ArgumentParser(prog=prog, description=__doc__)
    ap.add_argument(
        "--data",
        type=Path,
        default=Path("eval/datasets/squad-dev"),
        help="SQuAD dev as converted by eval/convert_squad.py (default ./eval/datasets/squad-dev)",
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="artifact folder")
    ap.add_argument(
        "--report",
        type=Path,
        default=Path("eval/reader/report"),
        help="report folder: curves, metrics.json (default ./eval/reader/report)",
    )
    ap.add_argument(
        "--work",
        type=Path,
        default=Path.home() / ".cache" / "citechat" / "reader-train",
        help="caches and the resumable checkpoint",
    )
    ap.add_argument("--base", type=Path, help="base model folder (default: the bundled MiniLM)")
    ap.add_argument("--threads", type=int, default=int(omp_num_threads() or "2"))
    ap.add_argument("--limit-questions", type=int, help="a tiny run: this many questions a split")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument(
        "--retrieval-index",
        type=Path,
        help="a citechat index of the SQuAD corpus (citechat --corpus DATA/corpus.jsonl "
        "--index FOLDER index): adds hard negatives from citechat's own retrieval",
    )
    ap.add_argument(
        "--design",
        choices=("dense", "cross"),
        default="dense",
        help="dense: fine-tuned bi-encoder (densefit.py, the default); cross: cross-encoder "
        "with a span head (this module)",
    )
    from .densefit import DenseConfig

    defaults = {"cross": asdict(TrainConfig()), "dense": asdict(DenseConfig())}
    for name in dict.fromkeys([*defaults["dense"], *defaults["cross"]]):
        value = defaults["dense"].get(name, defaults["cross"].get(name))
        kind = type(value) if value is not None else int
        ap.add_argument(
            "--" + name.replace("_", "-"),
            type=kind,
            default=None,
            help=f"default {defaults['dense'].get(name, '-')} (dense), "
            f"{defaults['cross'].get(name, '-')} (cross)",
        )
    args = ap.parse_args(argv)
    needed = (CORPUS_FILE, V11_FILE, V20_FILE, TEST_FILE)
    missing = [f for f in needed if not (args.data / f).is_file()]
    if missing:
        raise UsageError(
            f"no {missing[0]} in {args.data}; run from a checkout or pass --data "
            "with the SQuAD dev folder (eval/datasets/squad-dev)"
        )
    mine = defaults[args.design]
    foreign = [n for n in [*defaults["dense"], *defaults["cross"]] if n not in mine]
    given = [n for n in foreign if getattr(args, n) is not None]
    if given:
        raise UsageError(
            f"--{given[0].replace('_', '-')} is not a setting of --design {args.design}; "
            "drop it or choose the other design"
        )
    values = {k: (v if getattr(args, k) is None else getattr(args, k)) for k, v in mine.items()}
    config: TrainConfig | DenseConfig = (
        DenseConfig(**values) if args.design == "dense" else TrainConfig(**values)
    )
    data_config = DataConfig(limit_questions=args.limit_questions)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from . import artifact, densefit, report
    from .dense import DenseNet
    from .model import ReaderNet
    from .scoring import bundled_base, load_base

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    base = args.base or bundled_base()
    base_sha = artifact.sha256_file(artifact.base_weights(base))
    split = squad_split(args.data, data_config)
    retrieve = None if args.retrieval_index is None else retriever(args.data, args.retrieval_index)
    train, train_stats = build_pairs(
        args.data, split.train, seed=config.seed, config=data_config, retrieve=retrieve
    )
    val, val_stats = build_pairs(
        args.data,
        split.validation,
        seed=config.seed,
        config=data_config,
        every=data_config.validation_questions_every,
    )
    print(
        f"articles: {len(split.train)} train, {len(split.validation)} validation, "
        f"{len(split.heldout)} held out (abstention), {len(split.test)} test; "
        f"pairs: {len(train)} train, {len(val)} validation"
    )
    bert, tokenizer = load_base(base)
    answer_calibration = (1.0, 0.0)
    if isinstance(config, DenseConfig):
        net: Any = DenseNet(bert, config.n_top)
        result = densefit.fit(
            net,
            tokenizer,
            train,
            val,
            config,
            args.work,
            base_sha256=base_sha,
            progress=not args.no_progress,
        )
        answer_calibration = (result.best["answer_a"], result.best["answer_b"])
    else:
        net = ReaderNet(bert, config.n_top)
        result = fit(
            net,
            Encoder(tokenizer, max_len=config.max_len),
            train,
            val,
            config,
            args.work,
            base_sha256=base_sha,
            progress=not args.no_progress,
        )
    command = "python -m citechat.reader.train " + shlex.join(
        sys.argv[1:] if argv is None else list(argv)
    )
    training = {
        "command": command.strip(),
        "design": args.design,
        "seed": config.seed,
        "threads": args.threads,
        "commit": _commit(),
        "config": asdict(config),
        "data": {
            **asdict(data_config),
            "retrieval_index": None if args.retrieval_index is None else str(args.retrieval_index),
            "train": asdict(train_stats),
            "validation": asdict(val_stats),
        },
        "split": split.as_json(),
        "validation": result.best,
        "pairs_per_second": round(result.pairs_per_second, 2),
        "train_seconds": round(result.train_seconds, 1),
        "cache_seconds": round(result.cache_seconds, 1),
    }
    manifest = artifact.save(
        args.out,
        result.best_state,
        artifact.Manifest(
            base_sha256=base_sha,
            weights_sha256="",
            n_layers=len(bert.encoder.layer),
            n_top=config.n_top,
            max_len=config.max_len,
            calibration=result.calibration,
            training=training,
            kind="dense" if args.design == "dense" else "cross",
            answer_calibration=answer_calibration,
        ),
    )
    report.write(args.report, result, training)
    size = (args.out / artifact.WEIGHTS).stat().st_size / 1e6
    shown = ", ".join(
        f"{k} {result.best[k]:.3f}" for k in ("select", "qa_f1", "top1") if k in result.best
    )
    print(
        f"wrote {args.out} ({size:.1f} MB, weights {manifest.weights_sha256[:12]}) and "
        f"{args.report}; validation {shown}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
