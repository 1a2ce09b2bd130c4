"""Plain helpers the test modules share (the fixtures are in conftest.py).

Importable as ``helpers``: pyproject's ``pythonpath = ["tests"]`` puts this folder on
``sys.path``, which ``--import-mode=importlib`` does not do by itself.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from citechat.config import Settings
from citechat.evaluation import QuestionScore
from citechat.index import Index, current_generation, sync_index
from citechat.types import Answer

QUESTION = "Who was appointed new director?"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def write(path: Path, content: str | bytes) -> Path:
    """``content`` written to ``path`` (text as UTF-8), its folders made first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def one_line_error(err: str) -> str:
    """The stderr of a failed command, asserted to be one error line without a traceback."""
    lines = [ln for ln in err.splitlines() if ln.startswith("citechat: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def child_env(settings: Settings) -> dict[str, str]:
    """The environment of a child ``citechat`` on ``settings``' corpus and index."""
    return {
        **os.environ,
        "CITECHAT_CORPUS": str(settings.corpus),
        "CITECHAT_INDEX": str(settings.index),
        "CITECHAT_EMBEDDER": "hashing-256",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUTF8": "1",
    }


def run_citechat(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``citechat`` command in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "citechat", *args],
        env=child_env(settings),
        cwd=settings.index.parent,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
        check=False,
    )


def assert_cites_corpus(answer: Answer, index: Index) -> None:
    """Every citation quotes its document's text exactly at its span."""
    for c in answer.citations:
        assert index.documents[c.doc_id].text[c.start : c.end] == c.quote


def leftovers(folder: Path) -> list[str]:
    """What killed writers leave in an index folder: temporary generations and CURRENTs."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith((".tmp-", ".CURRENT")))


def generations(folder: Path) -> list[str]:
    """The committed generation folders of an index folder."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("gen-"))


def latency_score(latency: dict[str, float]) -> QuestionScore:
    """The score of a question that holds only its latencies (ms by stage)."""
    return QuestionScore(
        qtype=None, answerable=None, abstained=False, retrieval_only=False, latency=latency
    )


def record_calls(
    monkeypatch: pytest.MonkeyPatch, owner: object, name: str, argument: str
) -> list[Any]:
    """A list that gets ``argument`` of each call of ``owner.name``, which still runs:
    ``owner`` a module (a function) or a class (a method, ``self`` bound as usual)."""
    real = getattr(owner, name)
    signature = inspect.signature(real)
    calls: list[Any] = []

    @functools.wraps(real)
    def recorded(*args: Any, **kwargs: Any) -> Any:
        calls.append(signature.bind(*args, **kwargs).arguments[argument])
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, recorded)
    return calls


def pipeline_over(tmp_path: Path, files: dict[str, str]) -> Any:
    """The pipeline (hashing embedder) of a corpus of ``files`` (name -> text) in
    ``tmp_path``, with a snow report beside them so retrieval has something to pass over."""
    from citechat.pipeline import Pipeline

    corpus = tmp_path / "corpus"
    files = {"weather.txt": "Snow in London\n\nHeavy snow closed schools across London.\n", **files}
    for name, text in files.items():
        write(corpus / name, text)
    return Pipeline.load(Settings(corpus=corpus, index=tmp_path / "index", embedder="hashing-256"))


def pdf_file(objects: list[bytes]) -> bytes:
    """A PDF file of numbered ``objects`` (object 1 the catalogue), with its xref table."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def write_station_corpus(folder: Path, n: int) -> None:
    """``n`` small rain reports (``doc00.txt``…) in ``folder``: the corpus the index
    segment, row-file and layered-store tests update."""
    folder.mkdir(exist_ok=True)
    for i in range(n):
        text = f"Report {i}\n\n" + " ".join(
            f"Station {i} measured {j * 7 + i} millimetres of rain on day {j}." for j in range(4)
        )
        (folder / f"doc{i:02d}.txt").write_text(text + "\n", encoding="utf-8")


def station_index(tmp_path: Path, n: int = 20, **settings: Any) -> Settings:
    """Settings of an index of ``n`` station reports under ``tmp_path``, built
    (``hashing-256``; ``settings`` override the rest)."""
    corpus = tmp_path / "corpus"
    write_station_corpus(corpus, n)
    out = Settings(corpus=corpus, index=tmp_path / "index", embedder="hashing-256", **settings)
    sync_index(out)
    return out


def current_manifest(settings: Settings) -> dict[str, Any]:
    """The manifest of the index's current generation."""
    data: dict[str, Any] = json.loads(
        (current_generation(settings.index) / "manifest.json").read_text()
    )
    return data
