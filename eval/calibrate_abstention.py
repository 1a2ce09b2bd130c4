"""Fit the abstention model (src/citechat/abstention.json) on SQuAD v2.0 dev.

    python eval/calibrate_abstention.py --corpus eval/datasets/squad-dev/corpus.jsonl \
        --index /tmp/squad --questions eval/datasets/squad-dev/questions_v2.0.jsonl \
        --every 3 --out src/citechat/abstention.json

SQuAD v2.0 dev questions were written by crowdworkers, about half of them
unanswerable from the paragraph they were written on, so they are data we did
not write.  Articles are split in two (alternating by sorted title): the model
is fitted on one half, and the other half says how it does on articles it has
not seen.  A logistic regression (scikit-learn) over the features of
``ExtractiveAnswerer.features``; standardisation is folded into the shipped
coefficients so the runtime needs only a dot product.  The threshold is the
highest one whose wrongly-declined rate on answerable training questions stays
within ``--max-wrongly-declined``.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from tqdm import tqdm

from citechat.abstention import FEATURES, AbstentionModel
from citechat.answering import ExtractiveAnswerer
from citechat.config import Settings
from citechat.evaluation import is_answerable, read_questions
from citechat.pipeline import Pipeline


def rates(p: np.ndarray, y: np.ndarray, t: float) -> tuple[float, float]:
    """(declined unanswerable, wrongly declined answerable) at threshold ``t``."""
    declined = p < t
    return float(declined[y == 0].mean()), float(declined[y == 1].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--questions", type=Path, required=True)
    ap.add_argument("--every", type=int, default=3, help="use every Nth question")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--max-wrongly-declined", type=float, default=0.05)
    ap.add_argument("--out", type=Path, help="where to write the fitted model (JSON)")
    ap.add_argument(
        "--features",
        type=Path,
        help="an .npz cache of the computed features: read if it exists, else written",
    )
    args = ap.parse_args()

    if args.features and args.features.is_file():
        cached = np.load(args.features)
        Xa, ya, tr = cached["X"], cached["y"], cached["train"]
        n_rows, n_titles, n_train_titles = (
            len(ya),
            int(cached["titles"]),
            int(cached["train_titles"]),
        )
    else:
        pipe = Pipeline.load(Settings(corpus=args.corpus, index=args.index))
        ans = ExtractiveAnswerer(pipe.retriever, abstention=None)
        rows = [r for r in read_questions(args.questions, args.limit)][:: args.every]
        rows = [r for r in rows if is_answerable(r) is not None]
        titles = sorted({str(r.get("title", "")) for r in rows})
        train_titles = set(titles[::2])
        X, y, train = [], [], []
        for row in tqdm(rows, desc="features", unit="q"):
            r = pipe.retrieve(row["question"], args.k)  # as ask() retrieves
            cands = ans.candidates(row["question"], r)
            feats = ans.features(row["question"], r, cands)
            X.append([feats[name] for name in FEATURES])
            y.append(1 if is_answerable(row) else 0)
            train.append(str(row.get("title", "")) in train_titles)
        Xa, ya, tr = np.array(X), np.array(y), np.array(train)
        n_rows, n_titles, n_train_titles = len(rows), len(titles), len(train_titles)
        if args.features:
            np.savez(
                args.features, X=Xa, y=ya, train=tr, titles=n_titles, train_titles=n_train_titles
            )

    mean, scale = Xa[tr].mean(axis=0), Xa[tr].std(axis=0)
    scale[scale == 0] = 1.0
    clf = LogisticRegression(C=1.0, max_iter=2000)
    clf.fit((Xa[tr] - mean) / scale, ya[tr])
    coef = clf.coef_[0] / scale
    intercept = float(clf.intercept_[0] - (clf.coef_[0] * mean / scale).sum())

    def prob(x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(x @ coef + intercept)))

    p_tr, p_te = prob(Xa[tr]), prob(Xa[~tr])
    threshold = 0.0
    for t in np.arange(0.0, 1.0, 0.01):
        if rates(p_tr, ya[tr], float(t))[1] <= args.max_wrongly_declined:
            threshold = round(float(t), 2)

    print(f"{n_rows} questions: {tr.sum()} train, {(~tr).sum()} held out (other articles)")
    print("feature weights (per unit of the raw feature):")
    for name, c in zip(FEATURES, coef, strict=True):
        print(f"  {name:<11} {c:+.3f}")
    print("threshold  train: declined-unanswerable / wrongly-declined | held out: same")
    for t in sorted({0.2, 0.25, 0.3, 0.35, 0.4, 0.5, threshold}):
        a, b = rates(p_tr, ya[tr], t)
        c, d = rates(p_te, ya[~tr], t)
        mark = "  <- chosen" if t == threshold else ""
        print(f"  {t:.2f}      {a:.3f} / {b:.3f}           | {c:.3f} / {d:.3f}{mark}")
    # the old single rule, for comparison: the best sentence's evidence below 0.36
    ev = Xa[:, FEATURES.index("evidence")]
    old_d = (ev < 0.36)[~tr]
    print(
        "old evidence<0.36 rule, held out: "
        f"{old_d[ya[~tr] == 0].mean():.3f} / {old_d[ya[~tr] == 1].mean():.3f}"
    )
    if args.out:
        model = AbstentionModel(
            coef=tuple(round(float(c), 6) for c in coef),
            intercept=round(intercept, 6),
            threshold=threshold,
            calibrated_on=(
                f"{args.questions.name}, every {args.every} questions, articles "
                f"{n_train_titles}/{n_titles} (train), fitted {dt.date.today()}"
            ),
            embedder=Settings().embedder,
        )
        model.save(args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
