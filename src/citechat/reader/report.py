"""The training report folder: loss.png, validation.png and metrics.json.

It draws with matplotlib's Agg backend (no display) and reads only what
:func:`citechat.reader.train.fit` returned; it does not train.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

_CURVES = ("select", "qa_f1", "top1", "span_f1", "sentence_auc", "unanswerable_auc")


def _smooth(values: list[float], window: int) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if len(v) < window or window < 2:
        return v
    kernel = np.ones(window) / window
    return np.convolve(v, kernel, mode="valid")


def write(folder: Path, result: Any, training: dict[str, Any]) -> None:
    """Write the report of ``result`` (a FitResult) and ``training`` (the manifest's
    training record) into ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    window = max(1, len(result.losses) // 50)
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in ("loss", "bce", "span"):
        if not result.losses or key not in result.losses[0]:
            continue  # the dense reader has one loss
        ys = _smooth([row[key] for row in result.losses], window)
        ax.plot(np.arange(len(ys)) + window, ys, label=key)
    ax.set_xlabel("step")
    ax.set_ylabel(f"training loss (mean of {window} steps)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "loss.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [row["step"] for row in result.history]
    for key in _CURVES:
        if not any(key in row for row in result.history):
            continue  # the dense reader has no span metrics
        ax.plot(steps, [row.get(key, np.nan) for row in result.history], marker="o", label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("validation")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "validation.png", dpi=110)
    plt.close(fig)

    metrics = {
        "training": training,
        "best": result.best,
        "calibration": list(result.calibration),
        "history": result.history,
        "final_loss": result.losses[-1] if result.losses else None,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
