"""The ``citechat`` command: index | ask | serve | eval | bench.  Thin: parse, call, print.

Defaults come from CITECHAT_* variables (see config.py).  Errors a user can fix
print one line without a traceback (``--debug`` shows it) and exit with the
code of their :class:`~citechat.errors.CitechatError` class.
Heavy libraries are imported inside the commands so ``citechat --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .bench.common import add_source_flags
from .config import Settings
from .errors import CitechatError, UsageError, one_line

log = logging.getLogger("citechat")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="citechat",
        description="Ask questions of a folder of documents; every claim cites its passage.",
    )
    p.add_argument("--version", action="version", version=f"citechat {__version__}")
    p.add_argument(
        "--corpus",
        type=Path,
        help="folder or .jsonl of documents (env CITECHAT_CORPUS; default ./corpus)",
    )
    p.add_argument("--index", type=Path, help="index folder (env CITECHAT_INDEX; default ./index)")
    p.add_argument(
        "--embedder",
        help="sentence-transformers model name or path "
        "(env CITECHAT_EMBEDDER; default: bundled all-MiniLM-L6-v2)",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("index", help="build or update the index (only changed documents)")
    s.add_argument("--rebuild", action="store_true", help="ignore the old index, build anew")
    s.add_argument(
        "--optimize",
        action="store_true",
        help="merge the vector segments of past updates into one array each "
        "(an update does once a quarter of their rows are removed ones)",
    )
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.add_argument(
        "--store",
        help="where chunk vectors are searched: faiss (default), milvus://HOST:PORT/COLLECTION "
        "or milvus-lite:PATH.db (env CITECHAT_STORE); changing it moves the vectors, "
        "nothing is re-embedded",
    )

    s = sub.add_parser("ask", help="answer one question with citations")
    s.add_argument("question")
    s.add_argument("-k", type=int, help="passages to retrieve (env CITECHAT_TOP_K; default 5)")
    s.add_argument("--json", action="store_true", help="print the answer as JSON")
    s.add_argument("--answerer", help="extractive | transformers:MODEL | openai:URL#MODEL")
    s.add_argument(
        "--history",
        type=Path,
        help='JSON file of earlier turns: [["user", "..."], ["assistant", "..."]]',
    )

    s = sub.add_parser("serve", help="start the web chat")
    s.add_argument("--host", help="address to bind (env CITECHAT_HOST; default 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (env CITECHAT_PORT; default 7860)")
    s.add_argument("--answerer", help="default answerer for the chat")
    s.add_argument("--share", action="store_true", help="ask Gradio for a public share link")

    s = sub.add_parser(
        "eval",
        help="run a question set, write per-question results and a report",
        description="Run a question set and write per-question results (JSONL). When the "
        "questions carry gold, also write a report folder (metrics.json, report.md, plots).",
    )
    s.add_argument("questions", type=Path, help="JSONL of {id, question[, answers, gold_docs]}")
    s.add_argument("--out", type=Path, required=True, help="results JSONL to write")
    s.add_argument("--limit", type=int, help="only the first N questions")
    s.add_argument(
        "--split",
        help='only the questions whose "split" field is this (e.g. tune or report)',
    )
    s.add_argument("-k", type=int, help="passages to retrieve (default 10 for eval)")
    s.add_argument(
        "--answerer",
        action="append",
        help="extractive | transformers:MODEL | openai:URL#MODEL; repeat to compare answerers",
    )
    s.add_argument(
        "--compare",
        action="store_true",
        help="run BM25 only, dense only, hybrid (and hybrid + reranker when one is set) side "
        "by side; results go to OUT.<config>.jsonl",
    )
    s.add_argument(
        "--peer",
        action="append",
        metavar="NAME=RESULTS.jsonl",
        help="score another system's results file (same schema, e.g. from "
        "eval/peers/langchain_faiss.py) next to citechat's",
    )
    s.add_argument(
        "--report",
        type=Path,
        help="report folder (default eval/reports/<dataset>-<timestamp>; written when "
        "the questions carry gold)",
    )
    s.add_argument("--no-report", action="store_true", help="write no report folder")
    s.add_argument("--json", action="store_true", help="print the metrics as JSON")
    s = sub.add_parser(
        "bench",
        help="measure build, latency, cold start and scale; append to bench/results.jsonl",
        description="Measure build, latency, cold start and scale on a checkout's benchmark "
        "sets and append one record to a JSONL file. Needs the bench extra: "
        "pip install 'citechat[bench]'.",
    )
    s.add_argument(
        "--full", action="store_true", help="also the 1M-vector benchmark (slow; env BENCH_FULL=1)"
    )
    s.add_argument("--out", type=Path, default=Path("bench/results.jsonl"), help="JSONL to append")
    add_source_flags(s, peer=True)
    s.add_argument("--questions", type=int, default=200, help="questions per latency set (200)")
    s.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="PART",
        help="build | latency | cold | peer | ingest | million | serve; repeat to skip several",
    )
    s.add_argument(
        "--work",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the corpora and indexes in DIR (default: a temporary folder); an index "
        "of the serve part already there is checked, not built again",
    )
    s.add_argument("--json", action="store_true", help="print the whole record as JSON")
    # its own options (citechat train-reader --help): parsed by citechat.reader.train
    sub.add_parser(
        "train-reader",
        add_help=False,
        help="train citechat's answer model on SQuAD dev (make train; see --help)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "train-reader":  # only train-reader takes options of its own
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    logging.basicConfig(
        level=logging.INFO if args.debug else logging.WARNING,
        format="citechat: %(levelname)s: %(message)s",
    )
    try:
        settings = Settings.load().replace(
            corpus=args.corpus,
            index=args.index,
            embedder=args.embedder,
            origin={"corpus": "--corpus", "index": "--index", "embedder": "--embedder"},
        )
        handler: Callable[[argparse.Namespace, Settings], int] = _COMMANDS[args.command]
        return handler(args, settings)
    except CitechatError as exc:
        if args.debug:
            raise
        print(f"citechat: error: {one_line(exc, limit=500)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("citechat: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a file the library did not expect to fail: name it, no traceback
        if args.debug:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        why = exc.strerror or one_line(exc, limit=500)
        print(
            f"citechat: error: cannot access{where} ({why}); "
            "check the path, its permissions and the free disk space",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:  # a bug: one line for the user, the traceback on --debug
        if args.debug:
            raise
        print(
            f"citechat: internal error: {type(exc).__name__}: {one_line(exc, limit=500)}; "
            "run again with --debug for the traceback and please report it",
            file=sys.stderr,
        )
        return 1


def _progress_bar(desc: str) -> Callable[[int, int], Callable[[int], None]]:
    def start(total: int, docs: int) -> Callable[[int], None]:
        from tqdm import tqdm

        bar = tqdm(
            total=total,
            desc=f"{desc} ({docs} documents)",
            unit="text",
            disable=None,
            file=sys.stderr,
        )
        return lambda n: (bar.update(n), bar.refresh())[-1] or None

    return start


def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    from .index import sync_index

    # Settings checks the store's form, so a bad value fails before any work
    settings = settings.replace(store=args.store, origin={"store": "--store"})
    result = sync_index(
        settings,
        rebuild=args.rebuild,
        optimize=args.optimize,
        progress=_progress_bar("embedding"),
    )
    report = result.report
    stats = result.stats
    if args.json:
        out: dict[str, Any] = {
            "action": result.action,
            "index": stats,
            "skipped": [{"path": p, "reason": r} for p, r in result.skipped],
        }
        if report:
            out["report"] = report.__dict__
        print(json.dumps(out, indent=1))
        return 0
    if report is None:
        print(f"index is up to date: {stats['documents']} documents, {stats['chunks']} chunks")
    else:
        print(f"index {result.action} at {settings.index}: {report.summary()}")
    if result.skipped:
        print(
            f"skipped {len(result.skipped)} file(s): "
            + "; ".join(f"{p} ({r})" for p, r in result.skipped)
        )
    return 0


def _read_history(path: Path | None) -> list[tuple[str, str]]:
    if path is None:
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        turns = [(str(role), str(text)) for role, text in data]
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(
            f"cannot read history file {path} ({exc}); it must be a JSON list of [role, text] pairs"
        ) from exc
    return turns


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from .pipeline import Pipeline

    if not args.question.strip():
        raise UsageError('the question is empty; pass a question, e.g. citechat ask "Who ...?"')
    settings = settings.replace(top_k=args.k, origin={"top_k": "-k"})
    pipe = Pipeline.load(settings, answerer=args.answerer)
    answer = pipe.ask(args.question, history=_read_history(args.history))
    if args.json:
        print(json.dumps(answer.to_json(), ensure_ascii=False, indent=1))
        return 0
    if answer.notice:
        print(f"note: {answer.notice}")
    print(answer.text)
    flagged = [s for s in answer.sentences if not s.supported]
    if flagged:
        print("\nunsupported: " + " | ".join(s.text for s in flagged))
    if answer.citations:
        print("\nSources:")
        for c in answer.citations:
            where = f", {c.location()}" if c.location() else ""
            print(f"[{c.n}] {c.label()} — {c.doc_id}{where} chars {c.start}-{c.end}")
            print(f"    “{c.quote}”")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    settings = settings.replace(
        host=args.host, port=args.port, origin={"host": "--host", "port": "--port"}
    )
    from .app import serve  # gradio: after the settings are known to be good

    serve(settings, answerer=args.answerer, share=args.share)
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    import shlex

    from .evaluation import has_gold, run_eval
    from .report import (
        default_report_dir,
        format_summary,
        headline_table,
        report_meta,
        summary_json,
        write_report,
    )

    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {args.limit}")
    peers = dict(_peer_arg(p) for p in args.peer or [])
    k = 10 if args.k is None else args.k
    result = run_eval(
        settings,
        args.questions,
        args.out,
        limit=args.limit,
        k=k,
        answerer=args.answerer,
        compare=args.compare,
        peers=peers,
        split=args.split,
    )
    report = None
    if not args.no_report and (args.report or any(has_gold(r) for r in result.rows)):
        folder = args.report or default_report_dir(args.questions)
        meta = report_meta(
            settings,
            args.questions,
            questions_count=len(result.rows),
            k=k,
            command=shlex.join(["citechat", *sys.argv[1:]]),  # best effort: as typed
        )
        report = write_report(folder, result.runs, result.rows, meta)
    if args.json:
        print(
            json.dumps(
                {**summary_json(result), "report": str(report) if report else None}, indent=1
            )
        )
        return 0
    if len(result.runs) == 1:
        print(format_summary(result.runs[0].summary) + "\n")
    print(headline_table(result.runs))
    for run in result.runs:
        print(f"results ({run.name}): {run.results_file}")
    if report:
        print(f"report: {report}")
    return 0


def _peer_arg(value: str) -> tuple[str, Path]:
    name, sep, path = value.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise UsageError(f"--peer takes NAME=RESULTS.jsonl, got {value!r}")
    return name.strip(), Path(path.strip())


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from .bench.run import BenchConfig, run_bench, summary
    from .config import bench_env

    config = BenchConfig.from_checkout(
        settings,
        datasets=args.datasets,
        seed_corpus=args.seed_corpus,
        peer_script=args.peer_script,
        out=args.out,
        questions=args.questions,
        skip=frozenset(args.skip),
        full=args.full or bench_env().full,
        work=args.work,
    )
    record = run_bench(config)
    print(json.dumps(record, indent=1) if args.json else summary(record))
    print(f"appended to {args.out}", file=sys.stderr)
    return 0


def cmd_train_reader(args: argparse.Namespace, settings: Settings) -> int:
    from .reader.train import main as train_main

    return train_main(args.extra, prog="citechat train-reader")


_COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "index": cmd_index,
    "ask": cmd_ask,
    "serve": cmd_serve,
    "eval": cmd_eval,
    "bench": cmd_bench,
    "train-reader": cmd_train_reader,
}

if __name__ == "__main__":
    sys.exit(main())
