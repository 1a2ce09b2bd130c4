"""Evaluation reports: a folder with metrics.json, report.md and PNG plots.

``write_report(folder, runs, rows, meta)`` takes the scored runs of
:func:`citechat.evaluation.run_eval` (one per configuration or peer) and writes

* ``metrics.json`` -- ``{"dataset", "questions_file", "questions", "k", "created",
  "command", "settings", "runs": [{"name", "mode", "reranker", "answerer",
  "results_file", "metrics"}], "plots", "targets"}``; ``targets``: each target set in
  ``targets.json`` beside the questions file, checked against every run;
* ``report.md`` -- the headline table, the targets (met, or missed by how much),
  detail tables per metric group, the
  per-type breakdown, retrieval misses, and what each metric means;
* ``hit_at_k.png``, ``latency.png`` and (when questions have a ``type``)
  ``by_type.png``, drawn with matplotlib's Agg backend (no display needed).

It does not run questions or compute metrics (evaluation.py does).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import Settings, omp_num_threads
from .errors import UsageError
from .evaluation import (
    DEPTH,
    KS,
    STAGES,
    Evaluation,
    Run,
    doc_ranking,
    gold_docs,
)

#: headline columns: (label, metric group, key)
HEADLINE: tuple[tuple[str, str, str], ...] = (
    ("hit@1", "retrieval", "hit@1"),
    ("hit@5", "retrieval", "hit@5"),
    ("hit@10", "retrieval", "hit@10"),
    ("MRR@10", "retrieval", "mrr@10"),
    ("nDCG@10", "retrieval", "ndcg@10"),
    ("passage hit@5", "passages", "hit@5"),
    ("F1", "answers", "f1"),
    ("gold in answer", "answers", "gold_contained"),
    ("short F1", "answers", "short_f1"),
    ("cite recall", "citations", "recall"),
    ("cite precision", "citations", "precision"),
    ("declined unans.", "abstention", "declined_unanswerable"),
    ("wrongly declined", "abstention", "wrongly_declined_answerable"),
)


RANK_KEYS = (
    "questions",
    *(f"hit@{k}" for k in KS),
    *(f"recall@{k}" for k in KS),
    f"mrr@{DEPTH}",
    f"ndcg@{DEPTH}",
)
CITATION_KEYS = (
    "answers",
    "sentences",
    "citations",
    "recall",
    "precision",
    "verifier_supported",
    "verbatim",
    "answers_with_unchecked_text",
    "gold_passage_cited",
    "page_answers",
    "gold_page_cited",
)


def default_report_dir(questions: Path, root: Path = Path("eval/reports")) -> Path:
    """``eval/reports/<dataset>-<timestamp>``; the dataset is the questions' folder name.

    >>> default_report_dir(Path("eval/datasets/seed/questions.jsonl")).name.startswith("seed-")
    True
    """
    return root / f"{questions.resolve().parent.name}-{time.strftime('%Y%m%dT%H%M%S')}"


def report_meta(
    settings: Settings, questions: Path, *, questions_count: int, k: int, command: str
) -> dict[str, Any]:
    """What a reader needs to reproduce a report: data, index, models, command."""
    return {
        "dataset": questions.resolve().parent.name,
        "questions_file": str(questions),
        "questions": questions_count,
        "k": k,
        "command": command,
        "corpus": str(settings.corpus),
        "index": str(settings.index),
        "embedder": settings.embedder,
        "reranker": settings.reranker,
        "chunk_tokens": settings.chunk_tokens,
        "chunk_overlap": settings.chunk_overlap,
        # latency on a shared machine means little without the load it ran under
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "omp_num_threads": omp_num_threads(),
        "code": _git_version(),
    }


def _git_version() -> str | None:
    """``git describe --always --dirty`` of the working tree, plus a hash of the
    uncommitted diff when dirty (two dirty runs match only if the code did), or None."""
    import hashlib
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=20, check=True
        ).stdout.strip()

    try:
        described = git("describe", "--always", "--dirty")
        if described.endswith("-dirty"):
            diff = git("diff", "HEAD", "--", "src")
            described += "+" + hashlib.sha256(diff.encode()).hexdigest()[:8]
    except (OSError, subprocess.SubprocessError):
        return None
    return described or None


def load_targets(questions: Path) -> list[dict[str, Any]]:
    """The quality targets set for this question file: ``targets.json`` beside it maps
    file names to ``[{"metric": "retrieval.hit@1", "at_least": 0.88, "note": ...}]``.
    None set (or no such file): an empty list.  A malformed file is a UsageError."""
    path = questions.parent / "targets.json"
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text(encoding="utf-8")).get(questions.name, [])
        targets = [
            {"metric": str(e["metric"]), "at_least": float(e["at_least"]), "note": e.get("note")}
            for e in entries
        ]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(
            f"{path} is not a valid targets file ({exc.__class__.__name__}: {exc}); "
            'it maps question file names to [{"metric": "retrieval.hit@1", "at_least": 0.88}]'
        ) from exc
    for t in targets:
        if t["metric"].count(".") != 1:
            raise UsageError(
                f"{path}: metric {t['metric']!r} is not GROUP.KEY; use e.g. retrieval.hit@1"
            )
    return targets


def check_targets(runs: Sequence[Run], targets: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target against each run: the value, met or not, and by how much it is missed.

    >>> run = Run("hybrid", Path("r.jsonl"), [], {"retrieval": {"hit@1": 0.781}})
    >>> check_targets([run], [{"metric": "retrieval.hit@1", "at_least": 0.88, "note": None}])
    [{'metric': 'retrieval.hit@1', 'at_least': 0.88, 'note': None, 'runs': {'hybrid': \
{'value': 0.781, 'met': False, 'missed_by': 0.099}}}]
    """
    out = []
    for t in targets:
        group, key = t["metric"].split(".")
        results = {}
        for run in runs:
            value = _get(run, group, key)
            met = None if value is None else bool(value >= t["at_least"])
            missed = None if value is None or met else round(t["at_least"] - value, 4)
            results[run.name] = {"value": value, "met": met, "missed_by": missed}
        out.append({**t, "runs": results})
    return out


def targets_table(checked: Sequence[dict[str, Any]]) -> str:
    rows = ["| target | config | measured | |", "|---|---|---|---|"]
    for t in checked:
        for name, r in t["runs"].items():
            verdict = (
                "no value"
                if r["met"] is None
                else "met"
                if r["met"]
                else f"**missed by {r['missed_by']:.3f}**"
            )
            rows.append(
                f"| {t['metric']} ≥ {t['at_least']:g} | {name} | {_fmt(r['value'])} | {verdict} |"
            )
    return "\n".join(rows)


def primary_run(runs: Sequence[Run]) -> Run:
    """The run of the configured pipeline (hybrid, reranked when a reranker is set)
    for the first answerer: ``--compare`` lists it last among that answerer's runs."""
    own = [r for r in runs if r.config is not None]
    if not own:
        return runs[0]
    first = own[0].config.answerer if own[0].config else None
    return [r for r in own if r.config and r.config.answerer == first][-1]


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _get(run: Run, group: str, key: str) -> Any:
    return run.summary.get(group, {}).get(key)


def _latency(run: Run, stage: str, pct: str) -> Any:
    return run.summary["latency_ms"].get(stage, {}).get(pct)


def headline_table(runs: Sequence[Run]) -> str:
    """A markdown table: one row per configuration or peer, the headline metrics.

    Columns whose metric no run has (no evidence quotes, no unanswerables) are left out.
    """
    cols = [c for c in HEADLINE if any(_get(r, c[1], c[2]) is not None for r in runs)]
    head = ["config", *(c[0] for c in cols), "p50 ms", "p95 ms"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        cells = [run.name, *(_fmt(_get(run, g, k)) for _, g, k in cols)]
        cells += [_ms(_latency(run, "total", "p50")), _ms(_latency(run, "total", "p95"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _table(runs: Sequence[Run], group: str, keys: Sequence[str]) -> str:
    keys = [k for k in keys if any(_get(r, group, k) is not None for r in runs)]
    lines = ["| config | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for run in runs:
        lines.append(
            f"| {run.name} | " + " | ".join(_fmt(_get(run, group, k)) for k in keys) + " |"
        )
    return "\n".join(lines)


def _latency_table(runs: Sequence[Run]) -> str:
    stages = [s for s in STAGES if any(s in r.summary["latency_ms"] for r in runs)]
    head = [f"{s} p50 / p95" for s in stages]
    lines = ["| config | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for run in runs:
        cells = [f"{_ms(_latency(run, s, 'p50'))} / {_ms(_latency(run, s, 'p95'))}" for s in stages]
        lines.append(f"| {run.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _by_type_table(run: Run) -> str:
    by_type = run.summary.get("by_type") or {}
    cols = [
        ("n", lambda s: s["questions"]),
        ("hit@1", lambda s: s["retrieval"].get("hit@1")),
        ("hit@5", lambda s: s["retrieval"].get("hit@5")),
        ("passage hit@5", lambda s: s["passages"].get("hit@5")),
        ("F1", lambda s: s["answers"].get("f1")),
        ("gold in answer", lambda s: s["answers"].get("gold_contained")),
        ("cite recall", lambda s: s["citations"].get("recall")),
        ("cite precision", lambda s: s["citations"].get("precision")),
        ("declined", lambda s: _declined(s)),
    ]
    lines = ["| type | " + " | ".join(c[0] for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for name, summary in by_type.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(get(summary)) for _, get in cols) + " |")
    return "\n".join(lines)


def _declined(summary: dict[str, Any]) -> float | None:
    """Share of all questions of a group that were declined (answerable or not)."""
    ab = summary["abstention"]
    n = ab.get("answerable", 0) + ab.get("unanswerable", 0)
    if not n:
        return None
    declined = (ab.get("wrongly_declined_answerable") or 0) * ab.get("answerable", 0) + (
        ab.get("declined_unanswerable") or 0
    ) * ab.get("unanswerable", 0)
    return round(declined / n, 4)


def _misses(run: Run, rows: Sequence[dict[str, Any]], limit: int = 10) -> str:
    lines = []
    for row, rec in zip(rows, run.records, strict=True):
        golds = gold_docs(row)
        docs = doc_ranking(rec["retrieved"])
        if golds and not set(golds) & set(docs):
            top = ", ".join(f"`{d}`" for d in docs[:3]) or "nothing"
            gold = ", ".join(f"`{g}`" for g in golds)
            lines.append(f"- {row['id']}: {row['question']} — gold {gold}; retrieved {top}")
    if not lines:
        return f"None: every question's gold document was retrieved by {run.name}."
    more = f"\n- … and {len(lines) - limit} more" if len(lines) > limit else ""
    return f"{len(lines)} questions, gold document not retrieved at all ({run.name}):\n\n" + (
        "\n".join(lines[:limit]) + more
    )


DEFINITIONS = f"""\
- **hit@k** (doc level): share of questions with a gold document among the first k
  *documents* retrieved; a document ranks where its first chunk ranks (chunks of one
  document collapse). **recall@k**: share of a question's gold documents in the first k.
  **MRR@{DEPTH}**: mean of 1/rank of the first gold document (0 past rank {DEPTH}).
  **nDCG@{DEPTH}**: binary gains, ideal = all gold documents first.
- **passage** metrics (questions with evidence quotes): a retrieved chunk counts when its
  character span overlaps an evidence quote's span in the same document (quotes are
  located in the indexed document text); ranks are chunk ranks; recall@k is the share of
  evidence quotes covered; a chunk earns nDCG gain only for evidence not covered above it.
- **EM / F1 / gold in answer**: SQuAD normalisation (lower case, no punctuation or
  articles), best over the gold answers, on the answer text shown to the user with the
  [n] markers removed; a declined answerable question scores 0.
- **short EM / short F1**: the same, on the reader's short answer (`short_answer.text`)
  where the answer has one, else on the whole answer; **with_short_answer** counts the
  answers that had one.
- **cite recall** (ALCE-style): per answer, the share of its sentences supported by their
  own citations — the cited quote contains the sentence verbatim (checked here, whatever
  the answerer claims; **verbatim** is that share alone), or the support verifier scored
  it supported — averaged over answers that were given. Answer text that no sentence
  record covers counts as one more, unsupported sentence
  (**answers_with_unchecked_text** counts such answers).
  **cite precision**: share of citations (answerable questions) whose span overlaps gold
  evidence, or, for questions without evidence quotes, that fall in a gold document.
  **verifier supported**: share of answer sentences the verifier alone marked supported.
  **gold page cited**: of the answers given to questions with a `gold_page` (PDF
  evidence), the share with a citation of a gold document on that page (**page_answers**
  counts them).
- **declined unans.**: unanswerable questions declined; **wrongly declined**: answerable
  questions declined. Latency: milliseconds per question, warm, single thread of calls;
  p50 / p95 interpolate linearly between the two closest ranks (numpy's default, the
  definition `citechat bench` uses too).
"""


def write_report(
    folder: Path,
    runs: Sequence[Run],
    rows: Sequence[dict[str, Any]],
    meta: dict[str, Any],
) -> Path:
    """Write metrics.json, report.md and the plots into ``folder``; return report.md."""
    folder.mkdir(parents=True, exist_ok=True)
    questions_file = meta.get("questions_file")
    targets = check_targets(runs, load_targets(Path(questions_file))) if questions_file else []
    plots = plot_all(folder, runs)
    data = {
        **meta,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "runs": [
            {
                "name": r.name,
                "mode": r.config.mode if r.config else None,
                "reranker": bool(r.config and r.config.rerank and meta.get("reranker")),
                "answerer": r.config.answerer if r.config else None,
                "results_file": str(r.results_file),
                "metrics": r.summary,
            }
            for r in runs
        ],
        "plots": [p.name for p in plots],
        "targets": targets,
    }
    (folder / "metrics.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    primary = primary_run(runs)
    parts = [
        f"# Evaluation: {meta.get('dataset', '')}",
        "",
        f"- questions: {meta.get('questions')} from `{meta.get('questions_file')}`",
        f"- passages retrieved per question (k): {meta.get('k')}",
        f"- corpus `{meta.get('corpus')}`, index `{meta.get('index')}`, "
        f"embedder `{meta.get('embedder')}`, reranker `{meta.get('reranker') or 'none'}`",
        f"- command: `{meta.get('command', '')}` (code `{meta.get('code')}`)",
        f"- machine: {meta.get('cpus')} CPUs, OMP_NUM_THREADS {meta.get('omp_num_threads')}, "
        f"load average {meta.get('load_average')} "
        "(1/5/15 min, at the end of the run; latency compares only at similar load)",
        f"- created: {data['created']}",
        "",
        "## Headline",
        "",
        headline_table(runs),
        "",
    ]
    if targets:
        parts += [
            "## Targets",
            "",
            "From `targets.json` beside the questions; a miss says by how much.",
            "",
            targets_table(targets),
            "",
        ]
    parts += [
        "## Retrieval, document level",
        "",
        _table(
            runs,
            "retrieval",
            RANK_KEYS,
        ),
    ]
    if any(_get(r, "passages", "questions") for r in runs):
        parts += [
            "",
            "## Retrieval, passage level (evidence quotes)",
            "",
            _table(
                runs,
                "passages",
                [*RANK_KEYS, "evidence_quotes_not_found"],
            ),
        ]
    parts += [
        "",
        "## Answers",
        "",
        _table(
            runs,
            "answers",
            [
                "questions",
                "exact_match",
                "f1",
                "gold_contained",
                "short_exact_match",
                "short_f1",
                "with_short_answer",
            ],
        ),
        "",
        "## Citations",
        "",
        _table(
            runs,
            "citations",
            CITATION_KEYS,
        ),
        "",
        "## Abstention",
        "",
        _table(
            runs,
            "abstention",
            ["answerable", "unanswerable", "declined_unanswerable", "wrongly_declined_answerable"],
        ),
        "",
        "## Latency (ms per question)",
        "",
        _latency_table(runs),
    ]
    if primary.summary.get("by_type"):
        parts += ["", f"## By question type ({primary.name})", "", _by_type_table(primary)]
    parts += ["", "## Retrieval misses", "", _misses(primary, rows), "", "## Plots", ""]
    parts += [f"![{p.stem}]({p.name})" for p in plots]
    parts += ["", "## What the metrics mean", "", DEFINITIONS]
    report = folder / "report.md"
    report.write_text("\n".join(parts), encoding="utf-8")
    return report


# -- plots ---------------------------------------------------------------------------


def plot_all(folder: Path, runs: Sequence[Run]) -> list[Path]:
    try:
        import matplotlib
    except ImportError:  # an optional extra: the metrics and report.md are written without it
        import logging

        logging.getLogger("citechat").warning(
            "report plots skipped: matplotlib is not installed; pip install 'citechat[eval]'"
        )
        return []

    matplotlib.use("Agg")  # files only: no display, same output everywhere
    from .report_plots import plot_by_type, plot_hit_at_k, plot_latency

    out = [plot_hit_at_k(folder / "hit_at_k.png", runs)]
    out.append(plot_latency(folder / "latency.png", runs))
    primary = primary_run(runs)
    if primary.summary.get("by_type"):
        out.append(plot_by_type(folder / "by_type.png", primary))
    return out


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"questions: {summary['questions']}"]
    for group in ("retrieval", "passages", "answers", "citations", "abstention", "disagreement"):
        if group not in summary:
            continue
        values = ", ".join(
            f"{k} {v}" for k, v in summary[group].items() if not isinstance(v, list | dict)
        )
        lines.append(f"{group}: {values}")
    lat = summary["latency_ms"]
    lines.append(
        "latency_ms: "
        + ", ".join(f"{stage} p50 {v['p50']} p95 {v['p95']}" for stage, v in lat.items())
    )
    return "\n".join(lines)


def summary_json(result: Evaluation) -> dict[str, Any]:
    """A single run's metrics at the top level (as before ``--compare``), else a list."""
    if len(result.runs) == 1:
        run = result.runs[0]
        return {**run.summary, "config": run.name, "results_file": str(run.results_file)}
    return {
        "questions": len(result.rows),
        "runs": [
            {"name": r.name, "results_file": str(r.results_file), "metrics": r.summary}
            for r in result.runs
        ],
    }
