"""Vector arrays as immutable segments, so that an update writes only new rows.

A generation's sentence vectors (the largest file of an index: 1.5 KB a sentence at
384 dimensions, 609 MB of a 1.1 GB index at 86,656 chunks) and chunk vectors (133 MB
there) are each one of two forms (``<kind>``: ``sentence_vectors`` or ``vectors``)::

    gen-.../<kind>.npy                    one array, rows in row order (a build)
    gen-.../segments/<sv|cv>-<gen>.npy    immutable segments, each written once by the
                                          generation it is named after and hard-linked
                                          into every later generation that keeps rows of it

The second form is described by the manifest's ``<kind>`` entry::

    {"segments": ["segments/sv-gen-A.npy", "segments/sv-gen-B.npy"],
     "runs": [[0, 0, 1200], [1, 0, 5], [0, 1207, 396704]]}

``runs`` are (segment, first row, end row) in sentence-row order: the logical array is
their concatenation.  An update links the old segments (no bytes written), writes one
segment of the changed documents' rows, and the removed rows are whatever no run names
(tombstones by omission).  When the dead rows of the linked segments pass
:data:`MAX_DEAD_SHARE`, or the runs pass :data:`MAX_RUNS`, the update writes one
array again (a merge).  Every generation's folder holds all its files (links, not
pointers to another folder), so removing an old generation, ``kill -9`` at any point
and the sweep behave as before.

The JSONL files are segmented the same way (rowfiles.py) and the FAISS store of an
update over segments is the old one linked plus a scan (stores/layered.py).  It does not
segment the row tables or the lexical part: those are still written whole by an update
(README, "Updates").
"""

from __future__ import annotations

import mmap
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .generations import npy_from_raw, npy_header_length

__all__ = [
    "MAX_DEAD_SHARE",
    "MAX_RUNS",
    "SegmentWriter",
    "SegmentedVectors",
    "VectorArray",
    "linked_or_merge",
    "open_vectors",
    "read_rows",
    "run_pieces",
]

#: what each kind's segment files are called
PREFIX = {"sentence_vectors": "sv", "vectors": "cv"}
SEGMENTS = "segments"
#: a merge once this share of the linked segments' rows is dead
MAX_DEAD_SHARE = 0.25
#: a merge once the logical array is cut into more runs than this (each costs a
#: search step per read, and a line of the manifest)
MAX_RUNS = 64
#: rows copied at a time by a merge
_BLOCK = 8192


def linked_or_merge(
    runs: Sequence[Sequence[int]], size: Callable[[int], int], force: bool
) -> list[int] | None:
    """The old segments (ids >= 0; -1 is the new one) that ``runs`` keep rows of, to
    link; None when the update writes one file again instead (a merge): forced, more
    than :data:`MAX_RUNS` runs, or more than :data:`MAX_DEAD_SHARE` of the linked
    segments' ``size`` (rows here, bytes in rowfiles.py) dead.

    >>> linked_or_merge([(0, 0, 8), (-1, 0, 2)], lambda s: 10, False)
    [0]
    >>> linked_or_merge([(0, 0, 5), (-1, 0, 2)], lambda s: 10, False) is None
    True
    """
    used = sorted({seg for seg, _, _ in runs if seg >= 0})
    linked = sum(size(s) for s in used)
    live_old = sum(hi - lo for seg, lo, hi in runs if seg >= 0)
    if force or len(runs) > MAX_RUNS or linked - live_old > MAX_DEAD_SHARE * linked:
        return None
    return used


def run_pieces(
    runs: np.ndarray, starts: np.ndarray, ends: np.ndarray, lo: int, hi: int
) -> list[tuple[int, int, int]]:
    """Logical positions ``[lo, hi)`` of a concatenation of ``runs`` (segment, first,
    end; ``starts``/``ends`` their logical bounds) as (segment, first, end) pieces of
    the segments: rows of the vector segments here, bytes of the JSONL segments in
    rowfiles.py.

    >>> runs = np.array([[0, 10, 15], [1, 0, 5]])
    >>> run_pieces(runs, np.array([0, 5]), np.array([5, 10]), 3, 7)
    [(0, 13, 15), (1, 0, 2)]
    """
    out = []
    r = int(np.searchsorted(ends, lo, side="right"))
    while lo < hi and r < len(runs):
        seg, a, _ = (int(x) for x in runs[r])
        start = int(starts[r])
        end = min(hi, int(ends[r]))
        out.append((seg, a + lo - start, a + end - start))
        lo = end
        r += 1
    return out


class SegmentedVectors:
    """A read-only 2-D array made of runs of rows of mapped segment files.

    >>> a, b = np.arange(8.0).reshape(4, 2), np.arange(8.0, 12).reshape(2, 2)
    >>> v = SegmentedVectors([a, b], np.array([[0, 0, 1], [1, 0, 2], [0, 3, 4]]))
    >>> v.shape, v[1].tolist(), v[1:3].tolist()
    ((4, 2), [8.0, 9.0], [[8.0, 9.0], [10.0, 11.0]])
    """

    def __init__(
        self, segments: Sequence[np.ndarray], runs: np.ndarray, names: Sequence[str] = ()
    ) -> None:
        self.segments = list(segments)
        #: each segment's file, relative to its generation (read from one)
        self.names = list(names)
        self.runs = np.asarray(runs, dtype=np.int64).reshape(-1, 3)
        lengths = self.runs[:, 2] - self.runs[:, 1]
        self.ends = np.cumsum(lengths)
        self.starts = self.ends - lengths
        dim = int(self.segments[0].shape[1]) if self.segments else 0
        self.shape = (int(self.ends[-1]) if len(self.ends) else 0, dim)
        self.ndim = 2
        self.dtype = self.segments[0].dtype if self.segments else np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """Every row, read into memory (``np.asarray(vectors)``)."""
        out = self.take(np.arange(self.shape[0]))
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            i = int(key) + (self.shape[0] if key < 0 else 0)
            if not 0 <= i < self.shape[0]:
                raise IndexError(f"row {key} of {self.shape[0]}")
            r = int(np.searchsorted(self.ends, i, side="right"))
            seg, lo, _ = self.runs[r]
            return np.asarray(self.segments[int(seg)][int(lo + i - self.starts[r])])
        if isinstance(key, slice):
            return self.take(np.arange(*key.indices(self.shape[0])))
        rows = np.asarray(key)
        if rows.dtype == bool:  # a mask, as NumPy reads one
            return self.take(np.flatnonzero(rows))
        rows = rows.astype(np.int64)
        if len(rows) and (rows.min() < -self.shape[0] or rows.max() >= self.shape[0]):
            raise IndexError(f"rows outside 0..{self.shape[0]}")
        return self.take(np.where(rows < 0, rows + self.shape[0], rows))

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (in range) as one array."""
        out = np.empty((len(rows), self.shape[1]), dtype=self.dtype)
        if not len(rows):
            return out
        r = np.searchsorted(self.ends, rows, side="right")
        phys = self.runs[r, 1] + rows - self.starts[r]
        segs = self.runs[r, 0]
        for s in np.unique(segs):
            at = segs == s
            out[at] = self.segments[int(s)][phys[at]]
        return out

    def pieces(self, lo: int, hi: int) -> list[tuple[int, int, int]]:
        """Rows ``[lo, hi)`` as (segment, first row, end row) of its segments."""
        return run_pieces(self.runs, self.starts, self.ends, lo, hi)

    def release(self) -> None:
        """Unmap the pages read so far (see SavedIndex.release)."""
        for seg in self.segments:
            mm = getattr(seg, "_mmap", None)
            if isinstance(mm, mmap.mmap):
                mm.madvise(mmap.MADV_DONTNEED)


#: what a generation's sentence vectors are read as
VectorArray = np.ndarray | SegmentedVectors


def open_vectors(gen: Path, manifest: dict[str, Any], kind: str) -> VectorArray:
    """The generation's ``kind`` vectors, memory-mapped: its one array, or its segments
    (a missing or cut segment, or a run outside one, raises ValueError or OSError)."""
    entry = manifest.get(kind)
    if entry is None:
        return np.load(gen / f"{kind}.npy", mmap_mode="r")
    names, runs = _entry(entry, kind)
    segments = []
    for name in names:
        path = gen / str(name)
        if path.parent != gen / SEGMENTS:  # a damaged manifest must not point elsewhere
            raise ValueError(f"segment {str(name)[:80]!r} is outside {SEGMENTS}/")
        segments.append(np.load(path, mmap_mode="r"))
    for seg, lo, hi in runs.tolist():
        if not (0 <= seg < len(segments) and 0 <= lo <= hi <= len(segments[seg])):
            raise ValueError(f"run {[seg, lo, hi]} is outside its segment")
    if len({s.shape[1:] for s in segments}) > 1:
        raise ValueError("the segments' vectors differ in width")
    return SegmentedVectors(segments, runs, [str(n) for n in names])


def _entry(entry: Any, kind: str) -> tuple[list[str], np.ndarray]:
    names = entry.get("segments") if isinstance(entry, dict) else None
    runs = np.asarray(entry.get("runs") if isinstance(entry, dict) else None, dtype=np.int64)
    if not isinstance(names, list) or runs.ndim != 2 or runs.shape[1:] != (3,):
        raise ValueError(f"the manifest's {kind} entry is {str(entry)[:80]!r}")
    return [str(n) for n in names], runs


def read_rows(gen: Path, entry: Any, kind: str, dim: int, lo: int, hi: int) -> np.ndarray:
    """Rows ``[lo, hi)`` of the generation's ``kind`` vectors (``entry``: the manifest's,
    None for one array), read with plain file reads: a memory map would count every
    page read in the reader's RSS."""
    if entry is None:
        pieces = [(f"{kind}.npy", lo, hi)]
    else:
        names, runs = _entry(entry, kind)
        view = SegmentedVectors([np.zeros((0, dim))], runs)
        pieces = [(names[s], a, b) for s, a, b in view.pieces(lo, hi)]
    out = []
    for name, a, b in pieces:
        path = gen / name
        header = npy_header_length(path)
        flat = np.fromfile(path, dtype="<f4", count=(b - a) * dim, offset=header + 4 * dim * a)
        out.append(flat.reshape(b - a, dim))
    return out[0] if len(out) == 1 else np.concatenate(out).reshape(-1, dim)


class SegmentWriter:
    """Writes a generation's ``kind`` vectors: new rows into its own segment, kept
    rows as runs of the old generation's (``old``: its vectors of that kind, in
    ``old_gen``); :meth:`finish` links, merges or writes one array."""

    def __init__(
        self,
        tmp: Path,
        kind: str,
        dim: int,
        old: VectorArray | None,
        old_gen: Path | None,
        *,
        merge: bool = False,
    ) -> None:
        self.tmp = tmp
        #: one array whatever the runs (``citechat index --optimize``)
        self.merge = merge
        self.kind = kind
        self.file = f"{kind}.npy"
        self.prefix = PREFIX[kind]
        self.dim = dim
        self.raw_path = tmp / f".{kind}.raw"
        self.raw = open(self.raw_path, "wb")  # noqa: SIM115 - closed by finish()
        self.new_rows = 0
        self.old = old
        self.old_gen = old_gen
        #: (segment, first, end): segment -1 is this generation's new one
        self.runs: list[list[int]] = []

    @property
    def rows(self) -> int:
        return sum(hi - lo for _, lo, hi in self.runs)

    def add(self, vectors: np.ndarray) -> None:
        if not len(vectors):
            return
        self.raw.write(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
        self._run(-1, self.new_rows, self.new_rows + len(vectors))
        self.new_rows += len(vectors)

    def keep(self, lo: int, hi: int) -> None:
        """Old sentence rows ``[lo, hi)``, kept as they are."""
        old = self.old
        assert old is not None
        if isinstance(old, SegmentedVectors):
            for seg, a, b in old.pieces(lo, hi):
                self._run(seg, a, b)
        elif hi > lo:
            self._run(0, lo, hi)

    def _run(self, seg: int, lo: int, hi: int) -> None:
        last = self.runs[-1] if self.runs else None
        if last is not None and last[0] == seg and last[2] == lo:
            last[2] = hi
        else:
            self.runs.append([seg, lo, hi])

    def finish(self, name: str) -> dict[str, Any] | None:
        """Write the vectors; the manifest's ``kind`` entry (None: one array,
        ``<kind>.npy``).  ``name``: the generation's name."""
        self.raw.close()
        runs = self.runs
        old_segs = self._old_segments()
        if all(seg == -1 for seg, _, _ in runs):  # a build, or no kept rows
            npy_from_raw(self.raw_path, self.tmp / self.file, "<f4", (self.new_rows, self.dim))
            self.raw_path.unlink()
            return None
        used = linked_or_merge(runs, lambda s: len(old_segs[s]), self.merge)
        if used is None:
            self._merge(old_segs)
            return None
        (self.tmp / SEGMENTS).mkdir(exist_ok=True)
        index = {s: i for i, s in enumerate(used)}
        names = [self._link(s) for s in used]
        if self.new_rows:
            index[-1] = len(names)
            names.append(f"{SEGMENTS}/{self.prefix}-{name}.npy")
            npy_from_raw(self.raw_path, self.tmp / names[-1], "<f4", (self.new_rows, self.dim))
        self.raw_path.unlink()
        return {"segments": names, "runs": [[index[s], lo, hi] for s, lo, hi in runs]}

    def _old_segments(self) -> list[np.ndarray]:
        old = self.old
        if old is None:
            return []
        return old.segments if isinstance(old, SegmentedVectors) else [old]

    def _old_name(self, seg: int) -> str:
        """The old segment's file, relative to its generation."""
        assert self.old_gen is not None
        if not isinstance(self.old, SegmentedVectors):
            return self.file
        return self.old.names[seg]

    def _link(self, seg: int) -> str:
        """Hard-link old segment ``seg`` into this generation (a copy where the file
        system has no links); its name here."""
        assert self.old_gen is not None
        source = self.old_gen / self._old_name(seg)
        # a one-array generation's file becomes a segment named after that generation
        name = self._old_name(seg)
        if name == self.file:
            name = f"{SEGMENTS}/{self.prefix}-{self.old_gen.name}.npy"
        try:
            os.link(source, self.tmp / name)
        except OSError:
            shutil.copyfile(source, self.tmp / name)
        return name

    def _merge(self, old_segs: list[np.ndarray]) -> None:
        """Write every row into one array again (the dead ones dropped)."""
        new = (
            np.memmap(self.raw_path, dtype="<f4", mode="r", shape=(self.new_rows, self.dim))
            if self.new_rows
            else np.zeros((0, self.dim), dtype="<f4")
        )
        segs = {-1: new, **dict(enumerate(old_segs))}
        merged = self.tmp / f".{self.kind}.merged.raw"
        with open(merged, "wb") as out:
            for seg, lo, hi in self.runs:
                for a in range(lo, hi, _BLOCK):
                    block = segs[seg][a : min(hi, a + _BLOCK)]
                    out.write(np.ascontiguousarray(block, dtype="<f4").tobytes())
        del new, segs
        npy_from_raw(merged, self.tmp / self.file, "<f4", (self.rows, self.dim))
        merged.unlink()
        self.raw_path.unlink()
