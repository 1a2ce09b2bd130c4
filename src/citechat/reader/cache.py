"""The frozen layers' output, computed once per training pair and kept on disk.

Training only changes the top layers, so the embeddings and lower layers would
compute the same activations every epoch; caching them (float16, one row per
token, ragged) turns each training step into a pass over the top layers alone.
The cache is written block by block with a progress file, so an interrupted
build resumes where it stopped, and it is keyed by a hash of the base weights,
the layer split and the token ids, so a stale cache is never read.

It does not train (train.py).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .encoding import Encoded, Encoder

_PROGRESS = "progress.json"
_HIDDEN = "hidden.npy"


def cache_key(base_sha256: str, split: int, encoded: Sequence[Encoded]) -> str:
    """A short hash of everything the cached activations depend on."""
    h = hashlib.sha256(f"{base_sha256}:{split}:{len(encoded)}".encode())
    for e in encoded:
        h.update(np.asarray(e.input_ids, dtype=np.int32).tobytes())
        h.update(np.asarray(e.token_type_ids, dtype=np.int8).tobytes())
    return h.hexdigest()[:16]


class LowerCache:
    """Row ``i``'s activations are ``hidden[offsets[i] : offsets[i] + lengths[i]]``."""

    def __init__(self, folder: Path, encoded: Sequence[Encoded], hidden: np.ndarray) -> None:
        self.folder = folder
        self.encoded = encoded
        self.lengths = np.array([len(e.input_ids) for e in encoded], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        self.hidden = hidden

    @classmethod
    def build(
        cls,
        net: Any,
        encoder: Encoder,
        encoded: Sequence[Encoded],
        folder: Path,
        *,
        batch_size: int = 64,
        progress: bool = True,
    ) -> LowerCache:
        """Compute (or resume, or reuse) the cache of ``encoded`` in ``folder``."""
        import torch
        from tqdm import tqdm

        folder.mkdir(parents=True, exist_ok=True)
        lengths = [len(e.input_ids) for e in encoded]
        total, width = int(sum(lengths)), int(net.bert.config.hidden_size)
        order = sorted(range(len(encoded)), key=lambda i: (lengths[i], i))
        blocks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        prog_path = folder / _PROGRESS
        done = 0
        if prog_path.is_file() and (folder / _HIDDEN).is_file():
            saved = json.loads(prog_path.read_text())
            if saved.get("rows") == len(encoded) and saved.get("batch_size") == batch_size:
                done = int(saved["blocks"])
        mode = "r+" if done else "w+"
        hidden = np.lib.format.open_memmap(
            folder / _HIDDEN, mode=mode, dtype=np.float16, shape=(max(total, 1), width)
        )
        out = cls(folder, encoded, hidden)
        if done < len(blocks):
            net.eval()
            bar = tqdm(
                total=len(blocks), initial=done, desc="cache lower layers", disable=not progress
            )
            for b in range(done, len(blocks)):
                rows = blocks[b]
                arrays = encoder.batch([encoded[i] for i in rows])
                with torch.inference_mode():
                    h = net.lower(
                        torch.from_numpy(arrays["input_ids"]),
                        torch.from_numpy(arrays["token_type_ids"]),
                        torch.from_numpy(arrays["attention_mask"]),
                    ).numpy()
                for k, i in enumerate(rows):
                    a = int(out.offsets[i])
                    hidden[a : a + lengths[i]] = h[k, : lengths[i]]
                if b % 20 == 19 or b == len(blocks) - 1:
                    hidden.flush()
                    tmp = prog_path.with_suffix(".tmp")
                    tmp.write_text(
                        json.dumps(
                            {"rows": len(encoded), "batch_size": batch_size, "blocks": b + 1}
                        )
                    )
                    os.replace(tmp, prog_path)
                bar.update(1)
            bar.close()
        out.hidden = np.load(folder / _HIDDEN, mmap_mode="r")
        return out

    def batch(self, rows: Sequence[int]) -> dict[str, Any]:
        """Torch tensors for rows: hidden (B, L, H) float32, attention_mask, sentence_mask."""
        import torch

        lens = self.lengths[list(rows)]
        width = int(lens.max()) if len(lens) else 0
        h = np.zeros((len(rows), width, self.hidden.shape[1]), dtype=np.float32)
        attn = np.zeros((len(rows), width), dtype=np.int64)
        sent = np.zeros((len(rows), width), dtype=np.int64)
        for k, i in enumerate(rows):
            a, n = int(self.offsets[i]), int(self.lengths[i])
            h[k, :n] = self.hidden[a : a + n]
            attn[k, :n] = 1
            e = self.encoded[i]
            sent[k, e.lo : e.hi] = 1
        return {
            "hidden": torch.from_numpy(h),
            "attention_mask": torch.from_numpy(attn),
            "sentence_mask": torch.from_numpy(sent),
        }
