"""Fit the abstention model that goes with a dense reader (its ``reader_cosine`` feature).

    python eval/reader/abstention_fit.py --reader FOLDER --index /tmp/squad-index \
        --features /tmp/reader-abst.npz --out FOLDER/abstention.json

The packaged model (src/citechat/abstention.json, eval/calibrate_abstention.py) has
no reader input.  This one is fitted, with every feature of
:data:`citechat.abstention.FEATURES`, on the SQuAD v2.0 dev questions of the reader's
*validation* articles (``squad_split``: 925 questions, 550 unanswerable), which the
reader never trained on (its training articles would flatter its cosine) and which
are neither the 17 held-out v2.0 articles nor the v1.1 first-1000 ones.  Features come
from ``Pipeline.read`` with the reader on, as at answer time.  The threshold is the
highest whose wrongly-declined rate on those questions stays within
``--max-wrongly-declined``; the type gate is the packaged model's.  Held-out numbers
come from ``citechat eval`` on ``questions_v2.0_heldout.jsonl``, not from here.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from tqdm import tqdm

from citechat.abstention import FEATURES, AbstentionModel
from citechat.config import Settings
from citechat.evaluation import is_answerable, read_questions
from citechat.pipeline import Pipeline
from citechat.reader.data import V20_FILE, squad_split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reader", type=Path, required=True, help="a dense reader artifact")
    ap.add_argument("--data", type=Path, default=Path("eval/datasets/squad-dev"))
    ap.add_argument("--index", type=Path, required=True, help="an index of DATA/corpus.jsonl")
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--max-wrongly-declined", type=float, default=0.05)
    ap.add_argument("--features", type=Path, help=".npz cache: read if it exists, else written")
    ap.add_argument("--out", type=Path, help="where to write the model (JSON)")
    args = ap.parse_args()

    split = squad_split(args.data)
    rows = [r for r in read_questions(args.data / V20_FILE) if r.get("title") in split.validation]
    if args.features and args.features.is_file():
        X, y = np.load(args.features)["X"], np.load(args.features)["y"]
    else:
        settings = Settings(corpus=args.data / "corpus.jsonl", index=args.index)
        pipe = Pipeline.load(settings.replace(reader=str(args.reader)), sync=False)
        feats = []
        for row in tqdm(rows, desc="features", unit="q"):
            f = pipe.read(row["question"], args.k).features
            feats.append([f[name] for name in FEATURES])
        X = np.array(feats)
        y = np.array([1 if is_answerable(r) else 0 for r in rows])
        if args.features:
            np.savez(args.features, X=X, y=y)

    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1.0
    clf = LogisticRegression(C=1.0, max_iter=2000).fit((X - mean) / scale, y)
    coef = clf.coef_[0] / scale
    intercept = float(clf.intercept_[0] - (clf.coef_[0] * mean / scale).sum())
    p = 1.0 / (1.0 + np.exp(-(X @ coef + intercept)))
    threshold = 0.0
    for t in np.arange(0.0, 1.0, 0.01):
        if (p[y == 1] < t).mean() <= args.max_wrongly_declined:
            threshold = round(float(t), 2)
    packaged = AbstentionModel.load()
    print(f"{len(y)} questions ({int((y == 0).sum())} unanswerable), reader validation articles")
    for name, c in zip(FEATURES, coef, strict=True):
        print(f"  {name:<13} {c:+.3f}")
    declined = p < threshold
    print(
        f"threshold {threshold}: declined unanswerable {declined[y == 0].mean():.3f}, "
        f"wrongly declined {declined[y == 1].mean():.3f} (fit questions)"
    )
    if args.out:
        AbstentionModel(
            coef=tuple(round(float(c), 6) for c in coef),
            intercept=round(intercept, 6),
            threshold=threshold,
            calibrated_on=(
                f"SQuAD v2.0 dev, the reader's {len(split.validation)} validation articles "
                f"({len(y)} questions), reader {args.reader.name}, fitted {dt.date.today()}"
            ),
            embedder=packaged.embedder,
            type_gate=packaged.type_gate,
        ).save(args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
