"""``citechat bench``'s ``ingest`` part: does an index build's memory grow with the corpus?

The build corpus is copied ``k`` times, each copy a distinct document (its id and a
closing line differ), and indexed from scratch by ``citechat index``'s streamed path
and by ``Index.build`` with every document loaded in memory first (the library
call; both go through the same writer, so the difference is what the caller holds), each
in a fresh process whose peak RSS (VmHWM) is the builder's.  The embedder is
``hashing-384``: its vectors have MiniLM's size (384 float32), which is what the
memory is about, without MiniLM's encoding time; the model's own memory comes on
top of either path alike.

Reported per size: documents, chunks, sentences, build seconds and peak RSS of
each path, then a streamed update of the streamed index after one document
changed (``update``: seconds, peak RSS, texts embedded, and what it wrote:
``written_bytes``, the new generation's files that are not hard links of the old one's,
of its ``generation_bytes``,
and ``write_calls_mb``, every byte the process passed to ``write``, temporary files
included; Linux only, else None), and the growth of each
path's peak per 1,000 chunks between the smallest and largest size.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .common import emit, peak_rss_mb, run_child

EMBEDDER = "hashing-384"
PATHS = ("streamed", "in_memory")
MODES = (*PATHS, "update")


def write_copies(source: Path, copies: int, out: Path) -> Path:
    """A JSONL corpus of ``copies`` distinct copies of every document of ``source``."""
    from ..corpus import iter_corpus

    with open(out, "w", encoding="utf-8") as dst:
        for c in range(copies):
            for doc in iter_corpus(source):
                record = {"id": f"{doc.doc_id}~{c}", "title": doc.title}
                record["text"] = f"{doc.text}\n\nCopy {c} of {doc.doc_id}."
                dst.write(json.dumps(record) + "\n")
    return out


def ingest_bench(
    source: Path,
    work: Path,
    *,
    copies: Sequence[int] = (1, 8),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Build ``source`` copied each of ``copies`` times both ways, then update the
    streamed index after one changed document; the runs and the growth per 1,000
    chunks.  ``work`` holds the copies and indexes."""
    runs = []
    for k in copies:
        corpus = write_copies(source, k, work / f"ingest-x{k}.jsonl")
        for path in PATHS:
            log(f"bench: ingest {k} x {source.name} ({path}, child process)")
            runs.append(
                {"copies": k, "path": path, **_child(path, corpus, work / f"idx-{path}-{k}")}
            )
        log(f"bench: ingest {k} x {source.name} (one document changed, streamed update)")
        changed = _change_one(corpus, work / f"ingest-x{k}-changed.jsonl")
        runs.append(
            {"copies": k, "path": "update", **_child("update", changed, work / f"idx-streamed-{k}")}
        )
    out: dict[str, Any] = {"embedder": EMBEDDER, "corpus": str(source), "runs": runs}
    small, large = min(copies), max(copies)
    if small != large:
        out["mb_per_1k_chunks"] = {}
        for path in PATHS:
            a, b = (
                next(r for r in runs if r["copies"] == k and r["path"] == path)
                for k in (small, large)
            )
            chunks = (b["chunks"] - a["chunks"]) / 1000
            out["mb_per_1k_chunks"][path] = round((b["peak_rss_mb"] - a["peak_rss_mb"]) / chunks, 2)
    return out


def _change_one(corpus: Path, out: Path) -> Path:
    """``corpus`` with one sentence added to its middle record."""
    lines = corpus.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[len(lines) // 2])
    record["text"] += "\n\nOne sentence added for the update benchmark."
    lines[len(lines) // 2] = json.dumps(record)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def _child(path: str, corpus: Path, index: Path) -> dict[str, Any]:
    return dict(run_child("citechat.bench.ingest", path, str(corpus), str(index)))


def build(path: str, corpus: Path, index: Path) -> dict[str, Any]:
    """One build from scratch in this process (the child side).  ``peak_rss_mb`` is the
    builder's; for the streamed path, ``with_load_peak_rss_mb`` adds loading the
    finished index, as ``citechat index`` and ``serve`` do after a build (what a
    loaded index holds is the server's memory, not the build's)."""
    from ..config import Settings
    from ..corpus import load_corpus
    from ..embedding import load_embedder
    from ..index import Index, index_stats
    from ..index.build import write_streamed
    from ..index.generations import current_generation, read_manifest, write_lock
    from ..index.saved import SavedIndex

    settings = Settings(corpus=corpus, index=index, embedder=EMBEDDER)
    embedder = load_embedder(EMBEDDER)
    embedder.embed(["warm up"])
    out: dict[str, Any] = {}
    start = time.perf_counter()
    if path == "update":  # an index of the corpus before the change is at ``index``
        linked = {f.stat().st_ino for f in current_generation(index).rglob("*") if f.is_file()}
        wrote = _write_calls()
        start = time.perf_counter()
        with write_lock(index):
            old = SavedIndex.open(index, embedder, settings)
            report = write_streamed(settings, embedder, old)
        assert report is not None
        out["update_s"] = round(time.perf_counter() - start, 1)
        out["peak_rss_mb"] = peak_rss_mb()
        out["texts_embedded"] = report.texts_embedded
        new = [f.stat() for f in current_generation(index).rglob("*") if f.is_file()]
        out["written_bytes"] = sum(s.st_size for s in new if s.st_ino not in linked)
        out["generation_bytes"] = sum(s.st_size for s in new)
        after = _write_calls()
        calls = None if wrote is None or after is None else (after - wrote) / 1e6
        out["write_calls_mb"] = None if calls is None else round(calls, 3)
        stats = index_stats(read_manifest(current_generation(index)))
        return {k: stats[k] for k in ("documents", "chunks", "sentences")} | out
    if path == "streamed":
        with write_lock(index):
            write_streamed(settings, embedder, None)
        out["build_s"] = round(time.perf_counter() - start, 1)
        out["peak_rss_mb"] = peak_rss_mb()
        built = Index.load(index, embedder, settings)
        out["with_load_peak_rss_mb"] = peak_rss_mb()
    else:
        built = Index.build(load_corpus(corpus), embedder, settings, folder=index)
        out["build_s"] = round(time.perf_counter() - start, 1)
        out["peak_rss_mb"] = peak_rss_mb()
    return {
        "documents": len(built.documents),
        "chunks": len(built.chunks),
        "sentences": len(built.sentence_keys),
        **out,
    }


def _write_calls() -> int | None:
    """Bytes this process has passed to ``write`` so far (Linux's ``wchar``), or None."""
    try:
        with open("/proc/self/io", encoding="ascii") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("wchar:"))
    except (OSError, StopIteration, ValueError):
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """The child side of :func:`_child`: ``python -m citechat.bench.ingest MODE CORPUS INDEX``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[0] not in MODES:
        print(
            "usage: python -m citechat.bench.ingest streamed|in_memory|update CORPUS INDEX",
            file=sys.stderr,
        )
        return 2
    return emit(build(args[0], Path(args[1]), Path(args[2])))


if __name__ == "__main__":
    sys.exit(main())
