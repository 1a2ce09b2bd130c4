"""Sweep fusion methods for hybrid retrieval: document-level hit@1 / hit@5 of
weighted reciprocal rank fusion and of convex combinations of normalised scores,
over each question's 50 dense and 50 BM25 candidates (before answering).

    python eval/fusion_sweep.py --corpus eval/datasets/squad-dev/corpus.jsonl \
        --index eval/results/squad-index \
        --questions eval/datasets/squad-dev/questions_v1.1_first1000.jsonl
    python eval/fusion_sweep.py --corpus corpus --index index \
        --questions eval/datasets/seed/questions.jsonl
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from citechat.config import Settings
from citechat.evaluation import gold_docs, read_questions
from citechat.pipeline import Pipeline
from citechat.retrieval import RRF_K, convex_fuse

Scored = Sequence[tuple[int, float]]
Fuse = Callable[[Scored, Scored], list[int]]


def weighted_rrf(dense_weight: float) -> Fuse:
    def fuse(dense: Scored, sparse: Scored) -> list[int]:
        scores: dict[int, float] = {}
        for weight, ranked in ((dense_weight, dense), (1.0, sparse)):
            for rank, (row, _) in enumerate(ranked, 1):
                scores[row] = scores.get(row, 0.0) + weight / (RRF_K + rank)
        return sorted(scores, key=lambda row: (-scores[row], row))

    return fuse


def convex(dense_weight: float) -> Fuse:
    return lambda dense, sparse: [row for row, _ in convex_fuse(dense, sparse, dense_weight)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--questions", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=1000)
    args = ap.parse_args()
    pipe = Pipeline.load(Settings(corpus=args.corpus, index=args.index))
    index, retriever = pipe.index, pipe.retriever
    data = []
    for row in read_questions(args.questions, args.limit):
        if not gold_docs(row):
            continue
        qvec = index.embedder.embed([row["question"]])[0]
        dense = index.search_dense(qvec, 50)
        sparse = retriever.bm25_search(row["question"], 50)
        data.append((set(gold_docs(row)), dense, sparse))

    def hits(fuse: Fuse) -> tuple[float, float]:
        h1 = h5 = 0
        for gold, dense, sparse in data:
            docs: list[str] = []
            for r in fuse(dense, sparse):
                doc = index.chunks[r].doc_id
                if doc not in docs:
                    docs.append(doc)
            h1 += bool(docs and docs[0] in gold)
            h5 += bool(set(docs[:5]) & gold)
        return h1 / len(data), h5 / len(data)

    print(f"{len(data)} questions with gold documents; hit@1 / hit@5")
    rows: list[tuple[str, Fuse]] = [
        ("dense only", lambda d, s: [r for r, _ in d]),
        ("bm25 only", lambda d, s: [r for r, _ in s or d]),
    ]
    rows += [(f"rrf, dense weight {w}", weighted_rrf(w)) for w in (1.0, 0.7, 0.5, 0.3)]
    rows += [(f"convex, dense weight {w}", convex(w)) for w in (0.2, 0.3, 0.4, 0.5, 0.6)]
    for name, fuse in rows:
        h1, h5 = hits(fuse)
        print(f"  {name:<26} {h1:.3f} / {h5:.3f}")


if __name__ == "__main__":
    main()
