"""The report's plots (matplotlib, Agg backend): hit@k curves, latency per stage, and
answer quality per question type.  report.py's :func:`~citechat.report.plot_all` calls
them when matplotlib is installed (the ``eval`` extra)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .evaluation import DEPTH, STAGES, Run, latency_stages
from .report import _declined


def plot_hit_at_k(path: Path, runs: Sequence[Run]) -> Path:
    import matplotlib.pyplot as plt

    levels = [("retrieval", "document level")]
    if any(r.summary["passages"].get("hit_curve") for r in runs):
        levels.append(("passages", "passage level (evidence)"))
    fig, axes = plt.subplots(1, len(levels), figsize=(5.5 * len(levels), 4), squeeze=False)
    ks = list(range(1, DEPTH + 1))
    for ax, (group, title) in zip(axes[0], levels, strict=True):
        for run in runs:
            curve = run.summary[group].get("hit_curve")
            if curve:
                ax.plot(ks, curve, "o-", label=run.name)
        ax.set(xlabel="k", ylabel="hit@k", title=f"Gold in the top k, {title}", xticks=ks)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_latency(path: Path, runs: Sequence[Run]) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    stages = [s for s in STAGES if any(s in r.summary["latency_ms"] for r in runs)] or ["total"]
    fig, axes = plt.subplots(1, len(stages), figsize=(3.2 * len(stages), 3.6), squeeze=False)
    for ax, stage in zip(axes[0], stages, strict=True):
        values = {
            run.name: [t[stage] for rec in run.records if stage in (t := latency_stages(rec))]
            for run in runs
        }
        every = [v for vs in values.values() for v in vs]
        if every:  # the same bins for every run, so the shapes compare
            bins = np.histogram_bin_edges(np.asarray(every, dtype=float), bins=30)
            for name, vs in values.items():
                if vs:
                    ax.hist(np.asarray(vs, dtype=float), bins=bins, histtype="step", label=name)
        ax.set(title=stage, xlabel="ms", ylabel="questions")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=len(labels))
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_by_type(path: Path, run: Run) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    by_type = run.summary["by_type"]
    metrics = [
        ("hit@1", lambda s: s["retrieval"].get("hit@1")),
        ("hit@5", lambda s: s["retrieval"].get("hit@5")),
        ("gold in answer", lambda s: s["answers"].get("gold_contained")),
        ("cite recall", lambda s: s["citations"].get("recall")),
        ("declined", _declined),
    ]
    types = list(by_type)
    x = np.arange(len(types))
    width = 0.8 / len(metrics)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(types)), 4))
    for i, (label, get) in enumerate(metrics):
        values = [get(by_type[t]) for t in types]
        bars = ax.bar(x + i * width, [v or 0.0 for v in values], width, label=label)
        # a real 0 and "no gold for this" both draw no bar: the label tells them apart
        ax.bar_label(bars, ["n/a" if v is None else f"{v:.2f}" for v in values], fontsize=6)
    ax.set_xticks(x + width * (len(metrics) - 1) / 2)
    ax.set_xticklabels([f"{t}\n(n={by_type[t]['questions']})" for t in types], fontsize=8)
    ax.set(ylim=(0, 1.12), title=f"By question type ({run.name})")
    ax.legend(fontsize=8, ncol=len(metrics), loc="upper center", bbox_to_anchor=(0.5, -0.18))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
