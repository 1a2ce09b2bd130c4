"""Choose the reader's weight and decline threshold on questions it was not trained on.

    python eval/reader_sweep.py --reader src/citechat/reader/model \
        --corpus eval/datasets/squad-dev/corpus.jsonl --index eval/results/squad-index \
        --questions eval/datasets/squad-dev/questions_reader_validation.jsonl

Each question is read once: the heuristic's candidates (``CITECHAT_READER=off``), then
the reader's verdict on the top ``--depth`` of them.  Every weight of the mix
``(1 - w) * heuristic + w * reader`` is then scored offline: does the top sentence hold
a gold answer, is its document gold, what F1 does its short answer get; and every
decline threshold on the reader's P(unanswerable): unanswerables declined vs answerables
wrongly declined.  Use the validation set (``eval/reader_sets.py``) or the seed tune
split, never the sets the numbers are reported on.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from citechat.config import Settings
from citechat.evaluation import (
    gold_contained,
    gold_docs,
    is_answerable,
    read_questions,
    token_f1,
)
from citechat.pipeline import Pipeline
from citechat.reader import Reader
from citechat.reader.dense import DenseReader
from citechat.rereading import DEPTH, ReaderStage

WEIGHTS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: multipliers of the swap: the heuristic's cosine feature (weight 0.3) replaced by the
#: dense reader's at 0.3, or counted more
SWAPS = (0.0, 0.15, 0.3, 0.5, 0.8, 1.2)
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reader", type=Path, required=True, help="the reader artifact folder")
    ap.add_argument("--corpus", type=Path, default=Path("corpus"))
    ap.add_argument("--index", type=Path, default=Path("index"))
    ap.add_argument("--questions", type=Path, required=True)
    ap.add_argument("--split", help="only the rows of this split (e.g. tune)")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--depth", type=int, default=DEPTH)
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--out", type=Path, help="write the sweep as JSON here too")
    args = ap.parse_args()

    settings = Settings.load().replace(corpus=args.corpus, index=args.index, reader="off")
    pipe = Pipeline.load(settings)
    stage = ReaderStage(Reader.load(args.reader), depth=args.depth)
    rows = read_questions(args.questions, args.limit, args.split)
    records: list[dict[str, Any]] = []
    for row in tqdm(rows, unit="q"):
        reading = pipe.read(row["question"], args.k)
        head = reading.candidates[: args.depth]
        inputs = stage.inputs(pipe.index, head)
        scores = stage.reader.score(reading.query, inputs)
        texts = {d: pipe.index.documents[d].text for d in {c.hit.chunk.doc_id for c in head}}
        # a dense reader's own cosine, for the swap sweep (its logit is a * cosine + b)
        cos_ft = (
            stage.reader.cosines(reading.query, inputs)
            if isinstance(stage.reader, DenseReader)
            else [c.cosine for c in head]
        )
        records.append(
            {
                "answerable": is_answerable(row),
                "answers": row.get("answers") or [],
                "gold": set(gold_docs(row)),
                "cands": [
                    (
                        c.score,
                        s.p_answer,
                        c.hit.chunk.doc_id,
                        c.text,
                        texts[c.hit.chunk.doc_id][s.span[0] : s.span[1]] if s.span else c.text,
                        c.penalty * (f - c.cosine),
                    )
                    for c, s, f in zip(head, scores, cos_ft, strict=True)
                ],
                "p_unanswerable": stage.reader.p_unanswerable(scores),
            }
        )
    answerable = [r for r in records if r["answerable"] is not False and r["answers"]]
    out: dict[str, object] = {"questions": len(records), "answerable": len(answerable)}
    print(f"{len(records)} questions, {len(answerable)} answerable with gold")
    print("weight  top sentence holds gold  top doc is gold  short F1")
    sweep: list[dict[str, float]] = []
    for w in WEIGHTS:
        held: list[float] = []
        doc: list[float] = []
        f1: list[float] = []
        for r in answerable:
            if not r["cands"]:
                held.append(0.0)
                doc.append(0.0)
                f1.append(0.0)
                continue
            top = max(r["cands"], key=lambda c: (1 - w) * c[0] + w * c[1])
            held.append(gold_contained(top[3], r["answers"]))
            doc.append(float(top[2] in r["gold"]) if r["gold"] else 0.0)
            f1.append(token_f1(top[4], r["answers"]))
        row = {
            "weight": w,
            "held": float(np.mean(held)),
            "doc": float(np.mean(doc)),
            "short_f1": float(np.mean(f1)),
        }
        sweep.append(row)
        print(f"{w:6.2f}  {row['held']:.3f}  {row['doc']:.3f}  {row['short_f1']:.3f}")
    out["weights"] = sweep
    print("swap  (heuristic + m * penalty * (reader cosine - base cosine))  holds gold  doc gold")
    swaps: list[dict[str, float]] = []
    for m in SWAPS:
        held, doc = [], []
        for r in answerable:
            if not r["cands"]:
                held.append(0.0)
                doc.append(0.0)
                continue
            top = max(r["cands"], key=lambda c: c[0] + m * c[5])
            held.append(gold_contained(top[3], r["answers"]))
            doc.append(float(top[2] in r["gold"]) if r["gold"] else 0.0)
        swaps.append({"m": m, "held": float(np.mean(held)), "doc": float(np.mean(doc))})
        print(f"{m:5.2f}  {swaps[-1]['held']:.3f}  {swaps[-1]['doc']:.3f}")
    out["swaps"] = swaps
    unans = [r for r in records if r["answerable"] is False]
    ans = [r for r in records if r["answerable"] is not False]
    if unans and ans:
        print("decline at P(unanswerable) >=  declined unanswerable  wrongly declined")
        rates: list[dict[str, float]] = []
        for t in THRESHOLDS:
            d_u = float(np.mean([r["p_unanswerable"] >= t for r in unans]))
            d_a = float(np.mean([r["p_unanswerable"] >= t for r in ans]))
            rates.append({"threshold": t, "declined_unanswerable": d_u, "wrongly_declined": d_a})
            print(f"{t:5.2f}  {d_u:.3f}  {d_a:.3f}")
        out["thresholds"] = rates
    if args.out:
        args.out.write_text(json.dumps(out, indent=2, default=float), encoding="utf-8")


if __name__ == "__main__":
    main()
