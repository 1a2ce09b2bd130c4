"""Files a user adds through the web chat: checked, named safely, copied into the
corpus folder without overwriting anything.

It does not index them (:meth:`citechat.pipeline.Pipeline.add_documents` does,
through index/sync.py).
"""

from __future__ import annotations

import re
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from .corpus import SUFFIXES, load_document
from .errors import CitechatError, UsageError
from .index.sync import SyncResult


@dataclass(frozen=True)
class AddReport:
    """What :meth:`Pipeline.add_documents` did: ``added`` pairs each uploaded
    name with the doc_id it was saved as; ``rejected`` pairs a name with why."""

    added: tuple[tuple[str, str], ...]
    rejected: tuple[tuple[str, str], ...]
    sync: SyncResult | None


def upload_name(name: str) -> str:
    """A safe corpus file name for an uploaded file: its last path part, only
    letters, digits, ``.``, ``-`` and ``_``, no leading dot, suffix lower-cased.

    >>> upload_name("../../etc/Passwd.TXT"), upload_name("C:\\\\tmp\\\\My report (v2).md")
    ('Passwd.txt', 'My_report_v2.md')
    >>> upload_name(".bashrc.txt"), upload_name("????.pdf")
    ('bashrc.txt', 'upload.pdf')
    """
    base = re.split(r"[/\\]", unicodedata.normalize("NFKC", name))[-1]
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = re.sub(r"[^\w.-]+", "_", stem).strip("._-")[:100].rstrip("._-") or "upload"
    suffix = re.sub(r"[^\w]+", "", suffix).lower()
    return f"{stem}.{suffix}" if suffix else stem


def check_upload(name: str, path: Path, limit_bytes: int) -> str:
    """The safe name for an upload, or UsageError saying why it cannot go in."""
    safe = upload_name(name)
    suffix = Path(safe).suffix
    if suffix not in SUFFIXES:
        kinds = ", ".join(sorted(SUFFIXES))
        raise UsageError(f"{suffix or 'no extension'} files are not supported; upload {kinds}")
    size = path.stat().st_size
    if size > limit_bytes:
        raise UsageError(
            f"{size / 2**20:.1f} MB is over the {limit_bytes / 2**20:g} MB upload limit "
            "(CITECHAT_MAX_UPLOAD_MB)"
        )
    try:
        doc = load_document(path, safe, max_bytes=limit_bytes)
    except CitechatError as exc:
        raise UsageError(str(exc).removeprefix(f"cannot load {path}: ")) from None
    if not doc.sections:
        raise UsageError("no readable text in it (a scanned PDF needs OCR first)")
    return safe


def copy_new(src: Path, folder: Path, name: str) -> str:
    """Copy ``src`` into ``folder`` under ``name`` (or ``stem-2.ext`` ... when taken);
    exclusive create, so an existing file or a planted symlink is never written through."""
    stem, suffix = Path(name).stem, Path(name).suffix
    root = folder.resolve()
    for n in range(1, 1000):
        candidate = root / (name if n == 1 else f"{stem}-{n}{suffix}")
        if candidate.parent != root:  # cannot happen with upload_name's output
            raise UsageError(f"refusing to write {candidate} outside {root}")
        try:
            out = open(candidate, "xb")  # noqa: SIM115 - closed below, removed on failure
        except FileExistsError:
            continue
        try:
            with out, open(src, "rb") as inp:
                shutil.copyfileobj(inp, out)
        except OSError as exc:
            candidate.unlink(missing_ok=True)
            raise UsageError(f"could not save {name} in {folder}: {exc.strerror or exc}") from exc
        return candidate.name
    raise UsageError(f"too many files named like {name} in {folder}; rename the upload")
