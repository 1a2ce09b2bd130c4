"""Baselines on the reader's own validation candidates: is the trained reader better
than what citechat already has?

    python eval/reader/baselines.py [--reader FOLDER] [--out baselines.json]

Builds the validation pairs exactly as ``citechat train-reader`` evaluates them
(``squad_split`` -> ``build_pairs(..., every=2)``, seed 13) and scores each question's
candidates by

* ``cosine``: the bundled MiniLM bi-encoder, cos(question, sentence), what the
  heuristic's cosine feature is;
* ``cosine_context``: the same with the sentence's header prepended;
* ``overlap``: the number of stemmed terms the sentence shares with the question;
* ``idf_overlap``: the IDF-weighted share of the question's terms in the sentence
  (IDF over the validation sentences);
* ``reader``: a trained reader artifact, when ``--reader`` is given.

top1 = answerable questions whose best candidate is the gold sentence (metrics.py),
and the unanswerable AUC of the best candidate's score.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np

from citechat.reader.data import DataConfig, build_pairs, squad_split
from citechat.reader.metrics import auc, by_question, question_logits
from citechat.text import term_set


def top1(pairs: list, scores: np.ndarray) -> float:
    hits = []
    for rows in by_question(pairs).values():
        if any(pairs[i].label == 1 for i in rows):
            hits.append(pairs[rows[int(np.argmax(scores[rows]))]].label == 1)
    return float(np.mean(hits))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("eval/datasets/squad-dev"))
    ap.add_argument("--reader", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    config = DataConfig()
    split = squad_split(args.data, config)
    pairs, _ = build_pairs(
        args.data, split.validation, seed=13, config=config, every=config.validation_questions_every
    )
    from sentence_transformers import SentenceTransformer

    from citechat.embedding import bundled_model_path

    model = SentenceTransformer(bundled_model_path(), device="cpu")
    questions = sorted({p.question for p in pairs})
    qv = dict(
        zip(
            questions,
            model.encode(questions, batch_size=64, normalize_embeddings=True),
            strict=True,
        )
    )
    sents = sorted({p.item.sentence for p in pairs})
    sv = dict(
        zip(sents, model.encode(sents, batch_size=64, normalize_embeddings=True), strict=True)
    )
    ctx = sorted({f"{p.item.header}\n{p.item.sentence}" for p in pairs})
    cv = dict(zip(ctx, model.encode(ctx, batch_size=64, normalize_embeddings=True), strict=True))
    df = Counter(t for s in sents for t in term_set(s))
    idf = {t: math.log(1 + len(sents) / n) for t, n in df.items()}

    def idf_overlap(q: str, s: str) -> float:
        want = term_set(q)
        total = sum(idf.get(t, 0.0) for t in want)
        return sum(idf.get(t, 0.0) for t in want & term_set(s)) / total if total else 0.0

    scores = {
        "cosine": np.array([float(qv[p.question] @ sv[p.item.sentence]) for p in pairs]),
        "cosine_context": np.array(
            [float(qv[p.question] @ cv[f"{p.item.header}\n{p.item.sentence}"]) for p in pairs]
        ),
        "overlap": np.array(
            [len(term_set(p.question) & term_set(p.item.sentence)) for p in pairs], dtype=float
        ),
        "idf_overlap": np.array([idf_overlap(p.question, p.item.sentence) for p in pairs]),
    }
    scores["cosine+idf_overlap"] = scores["cosine"] + 0.5 * scores["idf_overlap"]
    if args.reader:
        from citechat.reader import Reader

        reader = Reader.load(args.reader)
        logits = np.zeros(len(pairs))
        for rows in by_question(pairs).values():
            out = reader.score(pairs[rows[0]].question, [pairs[i].item for i in rows])
            logits[rows] = [s.logit for s in out]
        scores["reader"] = logits
    labels = np.array([p.label for p in pairs])
    result = {}
    for name, s in scores.items():
        best, unans = question_logits(pairs, s)
        result[name] = {
            "top1": round(top1(pairs, s), 3),
            "sentence_auc": round(auc(s, labels), 3),
            "unanswerable_auc": round(auc(-best, unans), 3),
        }
        print(name, result[name])
    n_q = len(by_question(pairs))
    cands = Counter(len(r) for r in by_question(pairs).values())
    print(f"{len(pairs)} pairs, {n_q} questions, candidates per question {dict(cands)}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
