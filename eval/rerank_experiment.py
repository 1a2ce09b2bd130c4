"""Rerank the fused top 20 chunks by sentence-level evidence: the experiment behind
``reading.rerank_by_evidence`` (README "Measured results").

Test: SQuAD v1.1 dev, first 1,000 questions (the issue's subset); train: every
3rd of the other 9,570.  For each candidate chunk it computes retrieval and
sentence features, prints document hit@1 / hit@5 when ranking by each feature
alone, then fits pointwise and pairwise logistic models on the train questions
(scikit-learn) and scores them on the test questions.  The best sentence's
answer score alone (``sent_score``) did as well as any learned mix on the test
questions, so that is what citechat ships.

    python eval/rerank_experiment.py --index eval/results/squad-index
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

from citechat.config import Settings
from citechat.evaluation import gold_docs, read_questions
from citechat.pipeline import Pipeline
from citechat.text import terms

FEATS = [
    "fused",
    "inv_rank",
    "dense",
    "bm25",
    "sent_cos",
    "sent_score",
    "sent_lex",
    "typed",
    "term_cov",
    "sent_cos2",
    "bigram",
    "sent_cov",
    "cos_x_lex",
]


def bigrams(ts):
    return set(itertools.pairwise(ts))


def extract(pipe, rows, n):
    index, retriever, answerer = pipe.index, pipe.retriever, pipe.answerer("extractive")
    idf = retriever.idf
    out = []
    for i, row in enumerate(rows):
        q = row["question"]
        gold = set(gold_docs(row))
        r = retriever.search(q, k=n)
        cands = answerer.candidates(q, r)
        by: dict[str, list] = {}
        for c in cands:
            by.setdefault(c.hit.chunk.chunk_id, []).append(c)
        top = r.hits[0].score if r.hits else 1.0
        bmax = max((h.bm25_score or 0.0 for h in r.hits), default=0.0) or 1.0
        asked = set(terms(q))
        qb = bigrams(terms(q))
        tot = sum(idf.get(t, 0.0) for t in asked) or 1.0
        feats, labels, docs = [], [], []
        for h in r.hits:
            cs = by.get(h.chunk.chunk_id, [])
            coss = [*sorted((c.cosine for c in cs), reverse=True), 0.0, 0.0]
            ctx = set(terms(h.chunk.embedding_text()))
            doc = index.documents[h.chunk.doc_id]
            sts = [terms(doc.text[a:b]) for a, b in h.chunk.sentences]
            big = max((len(qb & bigrams(t)) / len(qb) for t in sts), default=0.0) if qb else 0.0
            scov = max(
                (sum(idf.get(x, 0.0) for x in asked & set(t)) / tot for t in sts), default=0.0
            )
            dense = h.dense_score
            if dense is None:
                dense = float(index.vectors[index.chunks.index(h.chunk)] @ r.query_vector)
            feats.append(
                [
                    h.score / top if top > 0 else 0.0,
                    1.0 / h.rank,
                    dense,
                    (h.bm25_score or 0.0) / bmax,
                    coss[0],
                    max((c.score for c in cs), default=0.0),
                    max((c.lexical for c in cs), default=0.0),
                    max((c.typed for c in cs), default=0.0),
                    sum(idf.get(t, 0.0) for t in asked & ctx) / tot,
                    coss[1],
                    big,
                    scov,
                    coss[0] * scov,
                ]
            )
            labels.append(h.chunk.doc_id in gold)
            docs.append(h.chunk.doc_id)
        out.append((np.array(feats, dtype=np.float32), np.array(labels), docs))
        if i % 200 == 0:
            print(f"{time.strftime('%H:%M:%S')} {i}", file=sys.stderr, flush=True)
    return out


def doc_hits(data, score_fn):
    h1 = h5 = 0
    for feats, labels, docs in data:
        s = score_fn(feats)
        order = np.argsort(-s, kind="stable")
        seen: list[str] = []
        first = None
        for j in order:
            if docs[j] not in seen:
                seen.append(docs[j])
                if first is None:
                    first = labels[j]
        h1 += bool(first)
        h5 += any(labels[j] for j in order if docs[j] in seen[:5])
    return h1 / len(data), h5 / len(data)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, default=Path("eval/results/squad-index"))
    ap.add_argument("--corpus", type=Path, default=Path("eval/datasets/squad-dev/corpus.jsonl"))
    ap.add_argument("--cache", type=Path, default=Path("/tmp/rerank-feats.pkl"))
    ap.add_argument("--n", type=int, default=20)
    args = ap.parse_args()
    import pickle

    if args.cache.exists():
        train, test = pickle.loads(args.cache.read_bytes())
    else:
        pipe = Pipeline.load(Settings(corpus=args.corpus, index=args.index), sync=False)
        allq = list(read_questions(Path("eval/datasets/squad-dev/questions.jsonl"), None))
        test_q = allq[:1000]
        train_q = allq[1000:][::3]
        test = extract(pipe, test_q, args.n)
        train = extract(pipe, train_q, args.n)
        args.cache.write_bytes(pickle.dumps((train, test)))
    print("baseline fused", doc_hits(test, lambda f: f[:, 0]))
    for j, name in enumerate(FEATS):
        print(f"  only {name:10s}", doc_hits(test, lambda f, j=j: f[:, j]))
    from sklearn.linear_model import LogisticRegression

    X = np.concatenate([f for f, _, _ in train])
    y = np.concatenate([lab for _, lab, _ in train])
    pairs, pair_labels = [], []
    rng = np.random.default_rng(0)
    for f, lab, _ in train:
        pos, neg = f[lab], f[~lab]
        for a in pos:
            for b in neg:
                if rng.random() < 0.5:
                    pairs.append(a - b)
                    pair_labels.append(1)
                else:
                    pairs.append(b - a)
                    pair_labels.append(0)
    Xp, yp = np.array(pairs), np.array(pair_labels)
    for C in (0.01, 0.1, 1.0, 10.0):
        lr = LogisticRegression(C=C, max_iter=5000, fit_intercept=False).fit(Xp, yp)
        w = lr.coef_[0]
        print(
            f"pairwise C={C}",
            doc_hits(test, lambda f, w=w: f @ w),
            "train",
            doc_hits(train, lambda f, w=w: f @ w),
        )
        print(
            "   coef",
            json.dumps({k: round(float(v), 3) for k, v in zip(FEATS, lr.coef_[0], strict=True)}),
        )
    for C in (0.1, 1.0, 10.0):
        lr = LogisticRegression(C=C, max_iter=2000).fit(X, y)
        score = lr.decision_function
        print(f"LR C={C}", doc_hits(test, score), "train", doc_hits(train, score))
        print(
            "   coef",
            json.dumps({k: round(float(v), 3) for k, v in zip(FEATS, lr.coef_[0], strict=True)}),
        )


if __name__ == "__main__":
    main()
