"""On-topic unanswerables made by removal: abstention training rows that look like the failure.

    python eval/abstention_removal.py features eval/datasets/docs/questions.jsonl \
        --split tune --corpus eval/datasets/docs/corpus --index /tmp/docs-index \
        --out /tmp/rows-docs.jsonl
    python eval/abstention_removal.py fit /tmp/rows-*.jsonl --tune /tmp/feats-tune.jsonl \
        --out src/citechat/abstention.json
    python eval/abstention_removal.py score /tmp/feats-heldout.jsonl --model A.json --model B.json

The seed corpus's unanswerables are near misses: the documents talk about the
question's subject, its names and most of its words, but hold no sentence that
states what is asked.  SQuAD v2.0's unanswerables are of another kind, so a model
fitted on them alone seldom declines the news ones.  ``features`` makes such near
misses from answerable questions with a known answer: every sentence that holds a
gold answer string or overlaps a gold evidence quote is taken out of the retrieved
chunks (the chunk's text, its sentences and its dense cosine, re-embedded without
them; a chunk left empty is dropped), and the question's features are computed
again, as citechat computes them, over what is left.  That row is labelled
unanswerable; the question as it is, answerable.  Questions without gold (the
set's own unanswerables) give one row as they are.  ``--no-removal`` writes the
questions as they are only (for tuning sets).  ``--off-topic`` asks a corpus the
questions written for another one (labelled unanswerable): the removed twins share
every question-side feature with their originals (the share of the question's terms
that no chunk holds, say), so without such rows the fit may learn that an unknown
word means "answerable".

``fit`` fits the logistic model (scikit-learn, standardisation folded into the
coefficients as in calibrate_abstention.py) on the rows, grouped by article or
document so a question and its removed twin never sit on both sides of a
split, each source weighted to the same total so a small news set counts as
much as SQuAD.  It prints the rates on the ``--tune`` rows (features of tuning
questions, ``--no-removal``) for a grid of thresholds and type gates, and writes
the model with the threshold and gate given (chosen on the tuning rows, never on
a report split).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from citechat.abstention import FEATURES, AbstentionModel
from citechat.answer_metrics import normalize_answer
from citechat.config import Settings
from citechat.evaluation import is_answerable, read_questions
from citechat.pipeline import Pipeline
from citechat.reading import Reading, SentenceScorer, rerank_by_evidence
from citechat.retrieval import Retrieval
from citechat.types import Hit

#: (doc_id, start, end) of an evidence quote
Span = tuple[str, int, int]


def gold_spans(row: dict[str, Any], texts: dict[str, str]) -> list[Span]:
    """The (doc_id, start, end) of the row's evidence quotes found verbatim."""
    out = []
    for ev in row.get("evidence") or []:
        quote = ev.get("quote") or ""
        text = texts.get(ev.get("doc", ""), "")
        at = text.find(quote) if quote else -1
        if at >= 0:
            out.append((ev["doc"], at, at + len(quote)))
    return out


def is_gold(
    text: str, doc: str, a: int, b: int, answers: Sequence[str], spans: Sequence[Span]
) -> bool:
    """Does the sentence ``doc[a:b]`` hold a gold answer or overlap a gold quote?"""
    norm = normalize_answer(text)
    if any(normalize_answer(g) and normalize_answer(g) in norm for g in answers):
        return True
    return any(d == doc and a < e and s < b for d, s, e in spans)


def removed(
    pipe: Pipeline,
    hits: Sequence[Hit],
    answers: Sequence[str],
    spans: Sequence[Span],
    qvec: np.ndarray,
) -> tuple[list[Hit], int]:
    """``hits`` without their gold sentences (re-embedded), and how many were taken."""
    index = pipe.index
    out: list[Hit] = []
    taken = 0
    for hit in hits:
        chunk = hit.chunk
        text = index.documents[chunk.doc_id].text
        keep = [
            (a, b)
            for a, b in chunk.sentences
            if not is_gold(text[a:b], chunk.doc_id, a, b, answers, spans)
        ]
        if len(keep) == len(chunk.sentences):
            out.append(hit)
            continue
        taken += len(chunk.sentences) - len(keep)
        if not keep:
            continue
        new = dataclasses.replace(
            chunk, text=" ".join(text[a:b] for a, b in keep), sentences=tuple(keep)
        )
        dense = float(index.embedder.embed([new.embedding_text()])[0] @ qvec)
        out.append(dataclasses.replace(hit, chunk=new, dense_score=dense))
    return [dataclasses.replace(h, rank=i) for i, h in enumerate(out, 1)], taken


def label_of(row: dict[str, Any]) -> int | None:
    """1 answerable, 0 not, None unknown; a row with evidence quotes and no other
    gold (a disagreement case: both sides answer it) is answerable."""
    known = is_answerable(row)
    if known is None:
        return 1 if row.get("evidence") else None
    return int(known)


def record(reading: Reading, ans: Any, **extra: Any) -> dict[str, Any]:
    declined, p = ans.decide(reading)
    quoted = bool(reading.candidates and reading.candidates[0].quoted)
    return {**extra, "quoted": quoted, "declined_now": declined, "p_now": p, **reading.features}


def features(args: argparse.Namespace) -> None:
    # CITECHAT_* variables apply (the embedder, say), then the corpus and index given
    settings = dataclasses.replace(Settings.load(), corpus=args.corpus, index=args.index)
    pipe = Pipeline.load(settings, sync=args.sync)
    rows = read_questions(args.questions, None, args.split)
    if args.exclude:
        drop = {str(r.get("title")) for p in args.exclude for r in read_questions(p)}
        rows = [r for r in rows if str(r.get("title")) not in drop]
    rows = [r for r in rows if label_of(r) is not None][:: args.every]
    texts = {d: doc.text for d, doc in pipe.index.documents.items()}
    scorer = SentenceScorer(pipe.retriever)
    ans = pipe.answerer()
    depth = max(args.k, pipe.settings.evidence_depth)
    source = args.source or args.questions.stem
    with open(args.out, "w", encoding="utf-8") as out:
        for row in tqdm(rows, desc=source, unit="q"):
            q = row["question"]
            label = 0 if args.off_topic else label_of(row)
            group = str(row.get("title") or (row.get("gold_docs") or [row["id"]])[0])
            base = {"source": source, "id": row["id"], "group": group}
            reading = pipe.read(q, args.k)
            out.write(json.dumps(record(reading, ans, **base, kind="as is", y=label)) + "\n")
            answers = [a for a in row.get("answers") or [] if a]
            spans = gold_spans(row, texts)
            if args.no_removal or args.off_topic or not label or not (answers or spans):
                continue
            retrieval = pipe.retriever.search(q, depth)
            if retrieval.query_vector is None:
                continue
            hits, taken = removed(pipe, retrieval.hits, answers, spans, retrieval.query_vector)
            if not taken or not hits:
                continue
            r2 = Retrieval(hits, retrieval.query_vector, retrieval.timings, retrieval.query)
            reading = rerank_by_evidence(scorer.read(q, r2), args.k)
            reading = scorer.read_parts(reading)
            out.write(
                json.dumps(record(reading, ans, **base, kind="removed", y=0, taken=taken)) + "\n"
            )


def load_rows(paths: Sequence[Path]) -> list[dict[str, Any]]:
    return [json.loads(line) for p in paths for line in p.open(encoding="utf-8") if line.strip()]


def matrix(rows: Sequence[dict[str, Any]]) -> np.ndarray:
    return np.array([[float(r.get(n, 0.0)) for n in FEATURES] for r in rows])


def rates(model: AbstentionModel, rows: Sequence[dict[str, Any]]) -> tuple[int, int, int, int]:
    """(unanswerables declined, unanswerables, answerables declined, answerables);
    a question whose best sentence holds its quote is never declined (as in decide)."""
    du = nu = da = na = 0
    for r in rows:
        d = (not r.get("quoted")) and model.declines(r)
        if r["y"]:
            na, da = na + 1, da + d
        else:
            nu, du = nu + 1, du + d
    return du, nu, da, na


def train(
    X: np.ndarray, y: np.ndarray, w: np.ndarray, used: Sequence[int], C: float
) -> tuple[np.ndarray, float]:
    """(coefficients per unit of the raw features, intercept) of a weighted logistic fit."""
    from sklearn.linear_model import LogisticRegression

    Xu = X[:, used]
    mean, scale = Xu.mean(axis=0), Xu.std(axis=0)
    scale[scale == 0] = 1.0
    clf = LogisticRegression(C=C, max_iter=5000)
    clf.fit((Xu - mean) / scale, y, sample_weight=w)
    coef = np.zeros(X.shape[1])
    coef[list(used)] = clf.coef_[0] / scale
    return coef, float(clf.intercept_[0] - (clf.coef_[0] * mean / scale).sum())


def fit(args: argparse.Namespace) -> None:
    from sklearn.model_selection import GroupKFold

    every = [r for r in load_rows(args.rows) if not (args.as_is_only and r["kind"] != "as is")]

    def left_out(r: dict[str, Any]) -> bool:
        # SQuAD v2.0's own unanswerables (written against one paragraph, adversarial)
        # can be left out: the model then learns "the gold sentence is gone" alone
        return r["source"] in args.no_unanswerable and r["kind"] == "as is" and r["y"] == 0

    rows = [r for r in every if not left_out(r)]
    # or weighed as a source of their own ("squad:unanswerable" in --weight)
    rows = [
        {**r, "source": f"{r['source']}:unanswerable"}
        if r["source"] in args.own_source and r["kind"] == "as is" and r["y"] == 0
        else r
        for r in rows
    ]
    X, y = matrix(rows), np.array([r["y"] for r in rows])
    sources = sorted({r["source"] for r in rows})
    # each source the same total weight, each label within a source the same
    w = np.zeros(len(rows))
    for s in sources:
        for lab in (0, 1):
            mask = np.array([r["source"] == s and r["y"] == lab for r in rows])
            if mask.any():
                w[mask] = args.weight.get(s, 1.0) / (2 * mask.sum())
    w *= len(rows) / w.sum()
    used = [i for i, n in enumerate(FEATURES) if n not in set(args.drop)]
    coef, intercept = train(X, y, w, used, args.C)
    # out-of-fold p(answerable), folds by article / document: how the rows' own
    # sources fare on articles the model did not see
    groups = [f"{r['source']}:{r['group']}" for r in rows]
    oof = [dict(r) for r in rows]
    folds = min(5, len(set(groups)))
    for tr, te in GroupKFold(n_splits=folds).split(X, y, groups):
        c, b = train(X[tr], y[tr], w[tr], used, args.C)
        for i in te:
            oof[i]["_z"] = float(X[i] @ c + b)
    # the rows left out of the fit are scored by the model fitted on all the rest
    oof += [{**r, "_z": float(matrix([r])[0] @ coef + intercept)} for r in every if left_out(r)]
    for s in sources:
        n0 = sum(1 for r in rows if r["source"] == s and r["y"] == 0)
        n1 = sum(1 for r in rows if r["source"] == s and r["y"] == 1)
        print(f"  {s:<28} answerable {n1:>5}  unanswerable {n0:>5}")
    print("weights:", " ".join(f"{n}={c:+.3f}" for n, c in zip(FEATURES, coef, strict=True)))
    model = AbstentionModel(
        coef=tuple(round(float(c), 6) for c in coef),
        intercept=round(intercept, 6),
        threshold=args.threshold,
        type_gate=args.type_gate,
        calibrated_on=args.note,
        embedder=Settings().embedder,
    )
    tune = {p.stem: load_rows([p]) for p in args.tune}
    cv = {
        f"{s} (5-fold, as is; left-out rows unseen)": [
            r for r in oof if r["source"] == s and r["kind"] == "as is"
        ]
        for s in args.cv
    }
    print("threshold gate | " + " | ".join([*tune, *cv]))
    for t in args.grid:
        for g in (0.0, *args.gates):
            if g and g <= t:
                continue
            m = dataclasses.replace(model, threshold=t, type_gate=g)
            cells = []
            for trows in tune.values():
                du, nu, da, na = rates(m, trows)
                cells.append(f"{du:>3}/{nu:<3} {da:>3}/{na:<4}")
            for crows in cv.values():
                du, nu, da, na = rates_oof(m, crows)
                cells.append(f"{du / max(nu, 1):.3f} {da / max(na, 1):.3f}")
            mark = " <-" if (t, g) == (args.threshold, args.type_gate) else ""
            print(f"  {t:.2f}  {g:.2f}  | " + " | ".join(cells) + mark)
    if args.out:
        model.save(args.out)
        print(f"wrote {args.out}")


def rates_oof(model: AbstentionModel, rows: Sequence[dict[str, Any]]) -> tuple[int, int, int, int]:
    """:func:`rates` with each row's out-of-fold logit (``_z``) in place of the model's."""
    du = nu = da = na = 0
    for r in rows:
        p = 1.0 / (1.0 + np.exp(-r["_z"]))
        untyped = r.get("has_type", 0.0) > 0 and r.get("typed", 0.0) <= 0
        d = (not r.get("quoted")) and (p < model.threshold or (untyped and p < model.type_gate))
        if r["y"]:
            na, da = na + 1, da + d
        else:
            nu, du = nu + 1, du + d
    return du, nu, da, na


def score(args: argparse.Namespace) -> None:
    """Each model's ROC AUC of p(answerable) and its decline rates on the rows."""
    from sklearn.metrics import roc_auc_score

    rows = load_rows(args.rows)
    y = [r["y"] for r in rows]
    for path in args.model:
        m = AbstentionModel.load(path)
        du, nu, da, na = rates(m, rows)
        auc = roc_auc_score(y, [m.p_answerable(r) for r in rows])
        print(f"{path}: AUC {auc:.3f}, declined {du}/{nu} unanswerable, {da}/{na} answerable")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("features", help="feature rows of a question set (and removed twins)")
    f.add_argument("questions", type=Path)
    f.add_argument("--corpus", type=Path, default=Settings().corpus)
    f.add_argument("--index", type=Path, default=Settings().index)
    f.add_argument("--split", default=None)
    f.add_argument("--every", type=int, default=1)
    f.add_argument("--exclude", type=Path, action="append", default=[], help="drop its titles")
    f.add_argument("--source", default=None, help="name of this set in the rows")
    f.add_argument("--no-removal", action="store_true", help="the questions as they are only")
    f.add_argument(
        "--off-topic",
        action="store_true",
        help="questions written for another corpus: every one unanswerable here, as it is",
    )
    f.add_argument("--sync", action="store_true", help="sync the index with the corpus first")
    f.add_argument("-k", type=int, default=5)
    f.add_argument("--out", type=Path, required=True)
    g = sub.add_parser("fit", help="fit the model on feature rows; rates on tuning rows")
    g.add_argument("rows", type=Path, nargs="+")
    g.add_argument("--tune", type=Path, action="append", default=[])
    g.add_argument("--threshold", type=float, default=0.3)
    g.add_argument("--type-gate", type=float, default=0.0)
    g.add_argument("--grid", type=float, nargs="+", default=[0.2, 0.3, 0.4, 0.5, 0.6])
    g.add_argument("--gates", type=float, nargs="*", default=[])
    g.add_argument("--drop", nargs="*", default=["reader_cosine"], help="features left out")
    g.add_argument("--weight", type=json.loads, default={}, help='{"source": weight}')
    g.add_argument("--cv", nargs="*", default=["squad"], help="sources to print 5-fold rates of")
    g.add_argument(
        "--no-unanswerable",
        nargs="*",
        default=[],
        help="sources whose own unanswerable questions are left out of the fit",
    )
    g.add_argument(
        "--own-source",
        nargs="*",
        default=[],
        help="sources whose own unanswerables are weighed as a source of their own",
    )
    g.add_argument("--as-is-only", action="store_true", help="leave the removed rows out")
    g.add_argument("-C", type=float, default=1.0)
    g.add_argument("--note", default="")
    g.add_argument("--out", type=Path)
    h = sub.add_parser("score", help="AUC and decline rates of model files on feature rows")
    h.add_argument("rows", type=Path, nargs="+")
    h.add_argument("--model", type=Path, action="append", required=True)
    args = ap.parse_args()
    {"features": features, "fit": fit, "score": score}[args.cmd](args)


if __name__ == "__main__":
    main()
