"""What every benchmark part shares: the optional psutil, peak RSS, and child processes.

A measured step runs in a fresh ``python -m citechat.bench.<part> ...`` process, so that
its peak RSS is its own; the child prints its result as one JSON line last and the
parent reads it back (:func:`run_child`, :func:`emit`).  It measures nothing itself.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import UsageError

INSTALL_HINT = "citechat bench needs psutil; pip install 'citechat[bench]'"


def add_source_flags(parser: argparse.ArgumentParser, *, peer: bool = False) -> None:
    """``--datasets`` and ``--seed-corpus`` (and ``--peer-script`` with ``peer``): where
    the benchmark's inputs are, by default a checkout's folders relative to the current
    one, since installed code names no checkout."""
    flags = [
        ("--datasets", "DIR", "eval/datasets", "the benchmark sets: squad-dev/ and seed/"),
        ("--seed-corpus", "DIR", "corpus", "corpus of the seed questions"),
    ]
    if peer:
        flags.append(
            (
                "--peer-script",
                "PATH",
                "eval/peers/langchain_faiss.py",
                "the LangChain peer, skipped when absent",
            )
        )
    for flag, metavar, default, what in flags:
        parser.add_argument(
            flag,
            type=Path,
            metavar=metavar,
            default=Path(default),
            help=f"{what} (default ./{default}, a checkout's)",
        )


def require_psutil() -> ModuleType:
    """psutil, which only the ``[bench]`` extra installs; a one-line UsageError without it."""
    try:
        import psutil
    except ImportError as exc:
        raise UsageError(INSTALL_HINT) from exc
    return psutil


def peak_rss_mb() -> float:
    """This process's peak RSS in MB.  VmHWM, not ru_maxrss: a child started by vfork
    (as subprocess does) inherits its parent's ru_maxrss, so a small child of a big
    parent would report the parent's size."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_child(module: str, *args: str, env: Mapping[str, str] | None = None) -> Any:
    """Run ``python -m MODULE ARGS`` and return the JSON of the last line it printed.

    Raises RuntimeError with the end of the child's stderr when it fails.
    """
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench child {module} {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def emit(result: Any) -> int:
    """The child side of :func:`run_child`: print ``result`` as the last line; exit 0."""
    print(json.dumps(result), flush=True)
    return 0
