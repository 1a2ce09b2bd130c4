"""Tune the extractive answerer's weights and abstention threshold on real question sets.

    python eval/calibrate.py --corpus eval/datasets/squad-dev/corpus.jsonl --index /tmp/squad \
        --questions eval/datasets/squad-dev/questions_v2.0.jsonl --limit 600

Retrieves once per question, keeps every candidate sentence's features, then
grid-searches (w_cos, w_lex, w_prior) for "the top sentence contains a gold
answer" on answerable questions, and reports, for a range of thresholds, the
share of unanswerable questions declined and answerable ones wrongly declined.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from citechat.answer_metrics import normalize_answer
from citechat.config import Settings
from citechat.evaluation import is_answerable, read_questions
from citechat.pipeline import Pipeline


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--questions", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--entity-weight", type=float, default=0.4)
    ap.add_argument(
        "--type-weights",
        default="0,0.05,0.1,0.15,0.2,0.3,0.4",
        help="comma-separated answer-type weights to try",
    )
    args = ap.parse_args()
    pipe = Pipeline.load(Settings(corpus=args.corpus, index=args.index))
    ans = pipe.answerer("extractive")
    ans.entity_weight = args.entity_weight  # type: ignore[attr-defined]
    rows = read_questions(args.questions, args.limit)
    data = []
    for row in rows:
        r = pipe.retriever.search(row["question"], args.k)
        cands = ans.candidates(row["question"], r)  # type: ignore[attr-defined]
        golds = [normalize_answer(g) for g in row.get("answers") or []]
        feats = [
            (
                c.cosine,
                c.lexical,
                c.prior,
                c.penalty,
                c.typed,
                any(g and g in normalize_answer(c.text) for g in golds),
            )
            for c in cands
        ]
        data.append((is_answerable(row), feats))
    grid = [x / 20 for x in range(0, 21)]
    type_grid = [float(x) for x in args.type_weights.split(",")]
    answerable = [np.array(feats, dtype=float) for ok, feats in data if ok and feats]
    n = max(len(answerable), 1)
    results = []
    for wc, wl, wt in itertools.product(grid, grid, type_grid):
        wp = round(1 - wc - wl, 4)
        if wp < 0:
            continue
        w = np.array([wc, wl, wp, wt])
        top_ok = 0
        for f in answerable:
            score = (f[:, [0, 1, 2, 4]] @ w) * f[:, 3]
            top_ok += int(f[int(np.argmax(score)), 5])
        results.append((top_ok / n, wc, wl, wp, wt))
    results.sort(reverse=True)
    print(f"best weights (top sentence holds a gold answer), {len(answerable)} questions:")
    for acc, wc, wl, wp, wt in results[:8]:
        print(f"  cos {wc:.2f} lex {wl:.2f} prior {wp:.2f} type {wt:.2f}: {acc:.3f}")
    wc, wl, wp = ans.weights  # type: ignore[attr-defined]
    wt_now = ans.type_weight  # type: ignore[attr-defined]
    for lead in (0.0, 0.8, 0.85, 0.9, 0.95):
        # the answer's first sentence: among the sentences within `lead` of the best
        # score (at most 3), the one with the best answer-type support
        top_ok = 0
        for f in answerable:
            score = (f[:, [0, 1, 2, 4]] @ np.array([wc, wl, wp, wt_now])) * f[:, 3]
            order = np.argsort(-score, kind="stable")[:3]
            short = [i for i in order if score[i] >= lead * score[order[0]]] if lead else order[:1]
            first = max(short, key=lambda i: (f[i, 4], score[i]))
            top_ok += int(f[first, 5])
        print(f"  type-first lead within {lead:.2f} of the best: {top_ok / n:.3f}")
    for acc, *ws in results:
        if (ws[0], ws[1]) == (wc, wl) and ws[3] in type_grid:
            print(f"  at current (cos, lex, prior) = {ans.weights}, type {ws[3]:.2f}: {acc:.3f}")  # type: ignore[attr-defined]
    print("threshold: declined unanswerable / wrongly declined answerable")
    table = {}
    for t in [x / 100 for x in range(30, 71, 2)]:
        du = nu = wd = na = 0
        for ok, feats in data:
            best = max(
                feats,
                key=lambda f: (wc * f[0] + wl * f[1] + wp * f[2] + wt_now * f[4]) * f[3],
                default=None,
            )
            # abstention uses the absolute evidence of the chosen sentence (no rank prior)
            top = 0.0 if best is None else (wc * best[0] + wl * best[1]) / (wc + wl) * best[3]
            if ok is False:
                nu += 1
                du += top < t
            elif ok:
                na += 1
                wd += top < t
        table[t] = (du / max(nu, 1), wd / max(na, 1))
        print(f"  {t:.2f}: {table[t][0]:.3f} / {table[t][1]:.3f}")
    print(json.dumps({"questions": len(data)}))


if __name__ == "__main__":
    main()
