"""Index folders on disk: generations, the CURRENT pointer, the writer lock, the sweep.

An index folder holds generations (``gen-<UTC time>-<pid>``) and a one-line
``CURRENT`` file naming the live one.  A writer holds ``.lock`` (an ``flock``,
dropped by the kernel when the holder dies, even by ``kill -9``) and sweeps
what killed writers left: ``.tmp-gen-*`` folders, ``.CURRENT.tmp`` and
generations CURRENT does not name.  ``.checkpoint/`` is not swept: it holds
the embedded batches of an interrupted build, which the next build reuses.

It does not know what a generation contains (build.py writes it, manifest.py checks it
for view.py and saved.py, which read it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import IndexDamagedError, IndexError_, IndexLockedError

REBUILD = "run `citechat index --rebuild`"
#: generation folder names as save() writes them; CURRENT must name one
_GEN_NAME = re.compile(r"gen-[0-9T]+-[0-9]+")
#: embedded batches of a build in progress (or of one that was killed)
CHECKPOINT = ".checkpoint"
log = logging.getLogger("citechat")


#: index folders whose writer lock this process holds (resolved paths)
_held: set[Path] = set()


def holds_lock(folder: Path) -> bool:
    """True while this process holds ``folder``'s writer lock (:func:`write_lock`)."""
    return folder.resolve() in _held


def new_generation_name() -> str:
    return f"gen-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S%f')}-{os.getpid()}"


def current_generation(folder: Path) -> Path:
    """The generation folder that ``folder/CURRENT`` names.

    Raises :class:`IndexError_` when there is no index, and
    :class:`IndexDamagedError` when CURRENT is unreadable or names no generation.
    """
    pointer = folder / "CURRENT"
    if not pointer.is_file():
        raise IndexError_(f"no index at {folder}", "run `citechat index` to build it")
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, ValueError) as exc:
        raise IndexDamagedError(
            f"the index at {folder} is damaged (CURRENT is unreadable: {exc.__class__.__name__})",
            REBUILD,
        ) from exc
    # only a name save() writes: a damaged CURRENT must not point outside the folder
    if not _GEN_NAME.fullmatch(name) or not (folder / name).is_dir():
        raise IndexDamagedError(
            f"the index at {folder} is damaged (CURRENT names {name[:80]!r}, which is missing)",
            REBUILD,
        )
    return folder / name


def read_manifest(gen: Path) -> dict[str, Any]:
    try:
        data = json.loads((gen / "manifest.json").read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except (OSError, ValueError) as exc:
        raise IndexDamagedError(
            f"the index manifest in {gen} is unreadable ({exc.__class__.__name__})", REBUILD
        ) from exc


@contextlib.contextmanager
def write_lock(folder: Path, *, wait_s: float = 30.0) -> Iterator[None]:
    """Hold the index's writer lock; wait up to ``wait_s`` then refuse.

    The lock is an ``flock`` on ``folder/.lock``: the kernel drops it when the
    holder dies, even by ``kill -9``, so a killed build never blocks the next.
    Once it is held, leftovers of killed writers are swept (:func:`sweep`).
    """
    import fcntl

    try:
        folder.mkdir(parents=True, exist_ok=True)
        fh = open(folder / ".lock", "a+")  # noqa: SIM115 - closed in the finally below
    except OSError as exc:
        raise IndexError_(
            f"cannot write the index folder {folder} ({exc.strerror or exc})",
            "pass --index FOLDER (or set CITECHAT_INDEX) to a folder you can write",
        ) from exc
    try:
        deadline = time.monotonic() + wait_s
        waited = False
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IndexLockedError(
                        f"another `citechat index` is writing {folder}",
                        "wait for it to finish and try again",
                    ) from None
                if not waited:
                    log.warning(
                        "another `citechat index` is writing %s; waiting %g s", folder, wait_s
                    )
                    waited = True
                time.sleep(0.2)
        held = folder.resolve()
        try:
            _held.add(held)
            sweep(folder)
            yield
        finally:
            _held.discard(held)
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        fh.close()


def sweep(folder: Path) -> list[str]:
    """Remove what killed writers left in ``folder``; returns the names removed.

    Always ``.tmp-gen-*`` folders and ``.CURRENT.tmp``; generations other than
    the current one only when CURRENT names a complete one (an unreadable
    CURRENT leaves them for a rebuild to replace).  Call it holding the lock.
    """
    try:
        keep: str | None = current_generation(folder).name
    except IndexError_:
        keep = None
    removed = []
    for child in sorted(folder.iterdir()):
        stale = child.name.startswith(".tmp-gen-") or child.name == ".CURRENT.tmp"
        if keep is not None and child.name.startswith("gen-") and child.name != keep:
            stale = True
        if not stale:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
        removed.append(child.name)
    if removed:
        log.info("removed leftovers of an interrupted build in %s: %s", folder, ", ".join(removed))
    return removed


def read_jsonl(path: Path) -> Iterator[Any]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def npy_from_raw(raw: Path, npy: Path, dtype: Any, shape: tuple[int, ...]) -> None:
    """Write ``npy`` (NumPy's format) holding the raw little-endian array in ``raw``,
    copied in blocks: neither file is ever held in memory whole."""
    import numpy as np

    expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if raw.stat().st_size != expected:
        raise ValueError(f"{raw.name} holds {raw.stat().st_size} bytes, expected {expected}")
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False}
    with open(raw, "rb") as src, open(npy, "wb") as dst:
        np.lib.format.write_array_header_1_0(dst, {**header, "shape": shape})
        shutil.copyfileobj(src, dst, 1 << 22)
        dst.flush()
        os.fsync(dst.fileno())


def npy_header_length(path: Path) -> int:
    """Bytes before the data of the ``.npy`` file ``path`` (to read its rows in blocks)."""
    import numpy as np

    with open(path, "rb") as fh:
        major, _ = np.lib.format.read_magic(fh)
        if major == 1:
            np.lib.format.read_array_header_1_0(fh)
        else:
            np.lib.format.read_array_header_2_0(fh)
        return fh.tell()


@dataclass
class PendingGeneration:
    """A generation being written by :func:`new_generation`: its files go in ``path``
    (a ``.tmp-gen-*`` folder) until it is committed as ``folder/name``."""

    folder: Path
    name: str
    path: Path
    cancelled: bool = False

    def cancel(self) -> None:
        """Commit nothing: the temporary folder is removed when the block ends."""
        self.cancelled = True


@contextlib.contextmanager
def new_generation(folder: Path) -> Iterator[PendingGeneration]:
    """Write a generation of the index at ``folder``: the one way every writer does.

    Yields a temporary folder; when the block ends it is committed (fsynced, renamed
    into place, then CURRENT replaced by a renamed pointer, each an atomic
    ``os.replace``; then the checkpoint and the old generations are removed).  An
    exception removes the temporary folder instead and leaves the last complete
    index in place; an OSError (disk full, permissions) becomes a one-line
    :class:`IndexError_`.  A process killed at any point leaves CURRENT naming a
    complete generation, the old one or the new one, and leftovers for
    :func:`sweep`.  The caller holds the writer lock.
    """
    name = new_generation_name()
    gen = PendingGeneration(folder, name, folder / f".tmp-{name}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        gen.path.mkdir()
        yield gen
        if gen.cancelled:
            shutil.rmtree(gen.path)
            return
        _commit(folder, gen.path, gen.name)
    except BaseException as exc:
        shutil.rmtree(gen.path, ignore_errors=True)  # gone already once renamed into place
        failure = write_failure(exc, folder)
        if failure is exc:
            raise
        raise failure from exc
    # the embedded batches are in the new generation; the old one is read by nothing new
    shutil.rmtree(folder / CHECKPOINT, ignore_errors=True)
    remove_old_generations(folder, keep=gen.name)


def _commit(folder: Path, tmp: Path, name: str) -> None:
    """Move the complete generation ``tmp`` into place as ``folder/name`` and point
    CURRENT at it."""
    fsync_dir(tmp)
    os.replace(tmp, folder / name)
    pointer = folder / ".CURRENT.tmp"
    pointer.write_text(name + "\n")
    with open(pointer, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(pointer, folder / "CURRENT")
    fsync_dir(folder)


def write_failure(exc: BaseException, folder: Path) -> BaseException:
    """What a failed generation write raises: an OSError (disk full, read-only,
    permissions) as a one-line :class:`IndexError_`, anything else as it is."""
    if isinstance(exc, OSError):
        return IndexError_(
            f"cannot write the index at {folder} ({exc.strerror or exc}); the last "
            "complete index is kept",
            "free disk space or fix the folder's permissions, or pass --index FOLDER",
        )
    return exc


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_old_generations(folder: Path, keep: str) -> None:
    for child in folder.iterdir():
        if (
            child.name != keep
            and child.is_dir()
            and (child.name.startswith("gen-") or child.name.startswith(".tmp-gen-"))
        ):
            shutil.rmtree(child, ignore_errors=True)
