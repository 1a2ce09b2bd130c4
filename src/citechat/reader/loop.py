"""The training loop both reader designs share: warm-up then linear decay, gradient
clipping, validation every ``eval_every`` steps and at each epoch's end (the best
row by ``select`` kept with its weights and calibration), and a checkpoint every
``checkpoint_every`` steps that a later call resumes from, to the same weights.

What a step computes (its loss), how an epoch's batches are drawn and what a
validation row holds are the caller's (train.py for the cross-encoder, densefit.py
for the dense reader).  It builds no data and writes no artifact.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: a step's loss (a scalar tensor) and the extra numbers logged beside it
StepLoss = Callable[[list[int]], tuple[Any, dict[str, float]]]
#: a validation row (``select`` picks the best) and the calibration fitted with it
Evaluate = Callable[[], tuple[dict[str, float], tuple[float, float]]]


@dataclass
class FitResult:
    losses: list[dict[str, float]] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=dict)
    best_state: dict[str, Any] = field(default_factory=dict)
    calibration: tuple[float, float] = (-1.0, 0.0)
    train_seconds: float = 0.0
    cache_seconds: float = 0.0
    pairs_per_second: float = 0.0


@dataclass(frozen=True)
class Steps:
    """How long to train and when to look: ``total`` optimiser steps."""

    total: int
    batch_size: int
    warmup: float
    eval_every: int
    checkpoint_every: int


def total_steps(n_items: int, batch_size: int, epochs: int, max_steps: int | None) -> int:
    """Steps for ``epochs`` passes over ``n_items``, capped by ``max_steps``.

    >>> total_steps(10, 4, 2, None), total_steps(10, 4, 2, 5)
    (6, 5)
    """
    total = -(-n_items // batch_size) * epochs
    return total if max_steps is None else min(total, max_steps)


def warmup_linear(warmup: float, total: int) -> Callable[[int], float]:
    """The learning-rate factor: up over the first ``warmup`` share, then down to 0.

    >>> f = warmup_linear(0.25, 8)
    >>> [round(f(s), 2) for s in (0, 1, 4, 7)]
    [0.5, 1.0, 0.67, 0.17]
    """
    warm = max(1, int(warmup * total))
    return lambda step: min((step + 1) / warm, max(0.0, (total - step) / max(1, total - warm)))


def save(path: Path, payload: dict[str, Any]) -> None:
    """``payload`` to ``path`` atomically (a kill leaves the previous checkpoint)."""
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def run(
    net: Any,
    opt: Any,
    params: Sequence[Any],
    steps: Steps,
    *,
    plan: Callable[[int], list[list[int]]],
    step_loss: StepLoss,
    evaluate: Evaluate,
    result: FitResult,
    checkpoint_path: Path,
    fingerprint: str,
    eval_at_start: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    desc: str = "train reader",
) -> FitResult:
    """Train ``params`` of ``net`` with ``opt`` for ``steps.total`` steps, resuming
    from ``checkpoint_path`` when it holds this ``fingerprint``.  ``plan(epoch)``
    gives an epoch's batches (item indices).  After ``stop_after`` steps in this
    call it checkpoints and returns as if interrupted."""
    import torch
    from tqdm import tqdm

    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_linear(steps.warmup, steps.total))
    step, epoch, next_batch = 0, 0, 0
    if checkpoint_path.is_file():
        saved = torch.load(checkpoint_path, weights_only=False)
        if saved.get("fingerprint") == fingerprint:
            net.load_state_dict(saved["trainable"], strict=False)
            opt.load_state_dict(saved["optimizer"])
            sched.load_state_dict(saved["scheduler"])
            torch.set_rng_state(saved["rng"])
            step, epoch, next_batch = saved["step"], saved["epoch"], saved["next_batch"]
            result.losses, result.history = saved["losses"], saved["history"]
            result.best, result.best_state = saved["best"], saved["best_state"]
            result.calibration = tuple(saved["calibration"])
            result.train_seconds = saved["train_seconds"]
        else:
            print(
                f"{checkpoint_path} is from another configuration: starting afresh",
                file=sys.stderr,
            )

    def validate() -> None:
        row, calibration = evaluate()
        row.update(step=float(step), epoch=float(epoch))
        result.history.append(row)
        if not result.best or row["select"] > result.best["select"]:
            result.best = row
            result.best_state = {k: v.clone() for k, v in net.trainable_state().items()}
            result.calibration = calibration

    def checkpoint() -> None:
        save(
            checkpoint_path,
            {
                "fingerprint": fingerprint,
                "trainable": net.trainable_state(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "rng": torch.get_rng_state(),
                "step": step,
                "epoch": epoch,
                "next_batch": next_batch,
                "losses": result.losses,
                "history": result.history,
                "best": result.best,
                "best_state": result.best_state,
                "calibration": list(result.calibration),
                "train_seconds": result.train_seconds,
            },
        )

    if eval_at_start and not result.history:
        validate()  # step 0: the untrained model, the score to beat
    total = steps.total
    bar = tqdm(total=total, initial=step, desc=desc, unit="step", disable=not progress)
    started, first_step = time.perf_counter(), step
    while step < total:
        batches = plan(epoch)
        for bi in range(next_batch, len(batches)):
            if step >= total:
                break
            net.train()
            loss, extra = step_loss(batches[bi])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(params), 1.0)
            opt.step()
            sched.step()
            step, next_batch = step + 1, bi + 1
            value = float(loss.detach())
            result.losses.append({"step": step, "epoch": epoch, "loss": value, **extra})
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3f}")
            if next_batch == len(batches):
                epoch, next_batch = epoch + 1, 0
            if (
                (steps.eval_every and step % steps.eval_every == 0)
                or next_batch == 0
                or step == total
            ):
                validate()
                bar.set_postfix(loss=f"{value:.3f}", val=f"{result.history[-1]['select']:.3f}")
            if step % steps.checkpoint_every == 0 or step == total:
                result.train_seconds += time.perf_counter() - started
                started = time.perf_counter()
                checkpoint()
            if stop_after is not None and step - first_step >= stop_after:
                result.train_seconds += time.perf_counter() - started
                started = time.perf_counter()
                checkpoint()
                total = step  # leave both loops
            if next_batch == 0 or step >= total:
                break
    bar.close()
    result.train_seconds += time.perf_counter() - started
    done = step - first_step
    if done and result.train_seconds:
        result.pairs_per_second = done * steps.batch_size / result.train_seconds
    return result
