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

from citechat.config import Settings
from citechat.evaluation import is_answerable, normalize_answer, read_questions
from citechat.pipeline import Pipeline


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--questions", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--entity-weight", type=float, default=0.4)
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
                any(g and g in normalize_answer(c.text) for g in golds),
            )
            for c in cands
        ]
        data.append((is_answerable(row), feats))
    grid = [x / 20 for x in range(0, 21)]
    results = []
    for wc, wl in itertools.product(grid, grid):
        wp = round(1 - wc - wl, 4)
        if wp < 0:
            continue
        top_ok = n = 0
        for ok, feats in data:
            if not ok or not feats:
                continue
            n += 1
            best = max(feats, key=lambda f: (wc * f[0] + wl * f[1] + wp * f[2]) * f[3])
            top_ok += best[4]
        results.append((top_ok / max(n, 1), wc, wl, wp))
    results.sort(reverse=True)
    print("best weights (top sentence holds a gold answer):")
    for acc, wc, wl, wp in results[:5]:
        print(f"  cos {wc:.2f} lex {wl:.2f} prior {wp:.2f}: {acc:.3f}")
    cur = next(r for r in results if (r[1], r[2]) == ans.weights[:2])  # type: ignore[attr-defined]
    print(f"current {ans.weights}: {cur[0]:.3f}")  # type: ignore[attr-defined]
    wc, wl, wp = ans.weights  # type: ignore[attr-defined]
    print("threshold: declined unanswerable / wrongly declined answerable")
    table = {}
    for t in [x / 100 for x in range(30, 71, 2)]:
        du = nu = wd = na = 0
        for ok, feats in data:
            best = max(
                feats, key=lambda f: (wc * f[0] + wl * f[1] + wp * f[2]) * f[3], default=None
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
