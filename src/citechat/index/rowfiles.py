"""A generation's JSONL files as immutable byte segments, so an update writes only new lines.

``documents.jsonl``, ``chunks.jsonl`` and ``sentences.jsonl`` are each one of two forms::

    gen-.../<name>                               one file (a build)
    gen-.../segments/<stem>-<gen>.jsonl          immutable segments, each written by the
                                                 generation it is named after and
                                                 hard-linked into every later one that
                                                 keeps lines of it

The second is described by the manifest's ``files`` entry, by name::

    {"chunks.jsonl": {"segments": ["segments/chunks-gen-A.jsonl", ...],
                      "runs": [[0, 0, 81920], [1, 0, 377], [0, 82301, 83080334]]}}

``runs`` are (segment, first byte, end byte): the logical file is their concatenation,
and the row tables' offsets (tables.py) are offsets into it, so readers (lazy.py,
saved.py) read a row's bytes through the runs (:class:`LogicalFile`).  A removed
document's lines are in no run.  As for the vector segments (segments.py), an update
merges a file back into one when the dead bytes of its linked segments pass
``MAX_DEAD_SHARE`` or its runs pass ``MAX_RUNS``, and ``--optimize`` merges always.

It does not know what a line holds (tables.py writes the row tables).
"""

from __future__ import annotations

import os
import shutil
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from .segments import SEGMENTS, linked_or_merge, run_pieces

__all__ = ["FileWriter", "LogicalFile", "open_file"]

#: bytes copied at a time by a merge
_BLOCK = 1 << 22


class LogicalFile:
    """A read-only byte file made of runs of segment files (or one file: one run).

    Reads use ``os.pread`` (no shared position: threads may read at once)."""

    def __init__(self, paths: list[Path], runs: np.ndarray, names: list[str] | None = None) -> None:
        self.paths = paths
        #: each segment's name, relative to its generation (None: one whole file)
        self.names = names
        self.fds = [os.open(p, os.O_RDONLY) for p in paths]
        for fd in self.fds:
            weakref.finalize(self, os.close, fd)
        self.runs = np.asarray(runs, dtype=np.int64).reshape(-1, 3)
        lengths = self.runs[:, 2] - self.runs[:, 1]
        self.ends = np.cumsum(lengths)
        self.starts = self.ends - lengths
        self.size = int(self.ends[-1]) if len(self.ends) else 0

    def read(self, offset: int, end: int) -> bytes:
        """Bytes ``[offset, end)`` of the logical file."""
        out = []
        for seg, a, b in self.pieces(offset, end):
            out.append(os.pread(self.fds[seg], b - a, a))
        return out[0] if len(out) == 1 else b"".join(out)

    def pieces(self, lo: int, hi: int) -> list[tuple[int, int, int]]:
        """Bytes ``[lo, hi)`` as (segment, first byte, end byte) of its segments."""
        return run_pieces(self.runs, self.starts, self.ends, lo, hi)


def open_file(gen: Path, files: dict[str, Any] | None, name: str) -> LogicalFile:
    """The generation's file ``name``: whole, or its segments as the manifest's ``files``
    entry describes them (a missing segment raises OSError; a run outside one, or a
    segment named outside ``segments/``, ValueError)."""
    entry = (files or {}).get(name)
    if entry is None:
        path = gen / name
        size = os.stat(path).st_size
        return LogicalFile([path], np.array([[0, 0, size]]))
    names = entry.get("segments") if isinstance(entry, dict) else None
    runs = np.asarray(entry.get("runs") if isinstance(entry, dict) else None, dtype=np.int64)
    if not isinstance(names, list) or runs.ndim != 2 or runs.shape[1:] != (3,):
        raise ValueError(f"the manifest's {name} entry is {str(entry)[:80]!r}")
    paths = []
    for seg in names:
        path = gen / str(seg)
        if path.parent != gen / SEGMENTS:  # a damaged manifest must not point elsewhere
            raise ValueError(f"segment {str(seg)[:80]!r} is outside {SEGMENTS}/")
        paths.append(path)
    sizes = [os.stat(p).st_size for p in paths]
    for seg, lo, hi in runs.tolist():
        if not (0 <= seg < len(paths) and 0 <= lo <= hi <= sizes[seg]):
            raise ValueError(f"run {[seg, lo, hi]} of {name} is outside its segment")
    return LogicalFile(paths, runs, [str(n) for n in names])


class FileWriter:
    """Writes a generation's file ``name``: new bytes into its own segment, kept bytes
    as runs of the old generation's (``old``: its file, in ``old_gen``); :meth:`finish`
    links, merges or writes one file."""

    def __init__(
        self,
        tmp: Path,
        name: str,
        old: LogicalFile | None = None,
        old_gen: Path | None = None,
        *,
        merge: bool = False,
    ) -> None:
        self.tmp = tmp
        self.name = name
        self.stem = name.removesuffix(".jsonl")
        self.old = old
        self.old_gen = old_gen
        self.merge = merge
        self.new_path = tmp / f".{name}.new"
        self.fh = open(self.new_path, "wb")  # noqa: SIM115 - closed by finish()
        self.new_bytes = 0
        #: (segment, first, end): segment -1 is this generation's new one
        self.runs: list[list[int]] = []
        self.size = 0

    def add(self, data: bytes) -> None:
        if not data:
            return
        self.fh.write(data)
        self._run(-1, self.new_bytes, self.new_bytes + len(data))
        self.new_bytes += len(data)

    def keep(self, lo: int, hi: int) -> None:
        """Bytes ``[lo, hi)`` of the old file, kept as they are."""
        assert self.old is not None
        for seg, a, b in self.old.pieces(lo, hi):
            self._run(seg, a, b)

    def _run(self, seg: int, lo: int, hi: int) -> None:
        self.size += hi - lo
        last = self.runs[-1] if self.runs else None
        if last is not None and last[0] == seg and last[2] == lo:
            last[2] = hi
        else:
            self.runs.append([seg, lo, hi])

    def close(self) -> None:
        """Flush and fsync the new bytes."""
        if not self.fh.closed:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()

    def finish(self, gen_name: str) -> dict[str, Any] | None:
        """Write the file; the manifest's entry for it (None: one whole file)."""
        self.close()
        runs = self.runs
        if all(seg == -1 for seg, _, _ in runs):  # a build, or nothing kept
            os.replace(self.new_path, self.tmp / self.name)
            return None
        assert self.old is not None
        old = self.old
        used = linked_or_merge(runs, lambda s: os.stat(old.paths[s]).st_size, self.merge)
        if used is None:
            self._merge()
            return None
        (self.tmp / SEGMENTS).mkdir(exist_ok=True)
        index = {s: i for i, s in enumerate(used)}
        names = [self._link(s) for s in used]
        if self.new_bytes:
            index[-1] = len(names)
            names.append(f"{SEGMENTS}/{self.stem}-{gen_name}.jsonl")
            os.replace(self.new_path, self.tmp / names[-1])
        else:
            self.new_path.unlink()
        return {"segments": names, "runs": [[index[s], lo, hi] for s, lo, hi in runs]}

    def _link(self, seg: int) -> str:
        """Hard-link old segment ``seg`` into this generation (a copy where the file
        system has no links); its name here."""
        assert self.old is not None and self.old_gen is not None
        source = self.old.paths[seg]
        if self.old.names is None:  # a whole file becomes a segment named after its generation
            name = f"{SEGMENTS}/{self.stem}-{self.old_gen.name}.jsonl"
        else:
            name = self.old.names[seg]
        try:
            os.link(source, self.tmp / name)
        except OSError:
            shutil.copyfile(source, self.tmp / name)
        return name

    def _merge(self) -> None:
        """Write every live byte into one file again."""
        assert self.old is not None
        out_path = self.tmp / self.name
        with open(self.new_path, "rb") as new, open(out_path, "wb") as out:
            for seg, lo, hi in self.runs:
                for a in range(lo, hi, _BLOCK):
                    n = min(hi, a + _BLOCK) - a
                    if seg == -1:
                        out.write(os.pread(new.fileno(), n, a))
                    else:
                        out.write(os.pread(self.old.fds[seg], n, a))
            out.flush()
            os.fsync(out.fileno())
        self.new_path.unlink()
