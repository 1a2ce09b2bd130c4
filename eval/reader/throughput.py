"""Measure the reader's training and inference speed on this machine (1-2 minutes).

    OMP_NUM_THREADS=1 python eval/reader/throughput.py --threads 1 --seconds 12

Real SQuAD pairs (the first training questions), batch 32, three ways to train:
every layer fine-tuned, the lower layers frozen (run each step, no backward),
and the top layers on cached lower-layer activations (what train.py does), plus
the one-off cost of filling that cache and the warm latency of Reader.score for
16 and 32 candidates.  Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=12.0, help="per measurement")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--n-top", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import numpy as np
    import torch

    from citechat.reader import artifact
    from citechat.reader.cache import LowerCache
    from citechat.reader.data import DataConfig, build_pairs, squad_split
    from citechat.reader.encoding import Encoder
    from citechat.reader.model import ReaderNet
    from citechat.reader.scoring import Reader, bundled_base, load_base
    from citechat.reader.train import _losses, _targets

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = ROOT / "eval" / "datasets" / "squad-dev"
    split = squad_split(data)
    pairs, _ = build_pairs(data, split.train[:1], seed=13, config=DataConfig(limit_questions=80))
    base = bundled_base()
    bert, tok = load_base(base)
    net = ReaderNet(bert, args.n_top)
    enc = Encoder(tok)
    encoded = enc.encode([p.question for p in pairs], [p.item for p in pairs])
    targets = torch.from_numpy(_targets(pairs, encoded))
    lengths = [len(e.input_ids) for e in encoded]
    bs = args.batch_size
    batches = [list(range(i, i + bs)) for i in range(0, len(pairs) - bs + 1, bs)]
    out: dict[str, float | int | str] = {
        "threads": args.threads,
        "batch_size": bs,
        "n_top": args.n_top,
        "mean_tokens": round(float(np.mean(lengths)), 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }

    def timed(step, name: str) -> None:  # type: ignore[no-untyped-def]
        step(batches[0])  # warm-up
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            step(batches[n % len(batches)])
            n += 1
        out[name] = round(n * bs / (time.perf_counter() - t0), 2)
        print(name, out[name], "pairs/s", flush=True)

    def full_step(rows: list[int]) -> None:
        b = {k: torch.from_numpy(v) for k, v in enc.batch([encoded[i] for i in rows]).items()}
        answer, start, end = net(**b)
        t = targets[rows]
        has = t[:, 1] >= 0
        loss = torch.nn.functional.binary_cross_entropy_with_logits(answer, t[:, 0].float())
        loss = (
            loss
            + (
                torch.nn.functional.cross_entropy(start[has], t[has, 1])
                + torch.nn.functional.cross_entropy(end[has], t[has, 2])
            )
            / 2
        )
        loss.backward()
        net.zero_grad(set_to_none=True)

    net.train()
    for p in net.bert.parameters():
        p.requires_grad_(True)
    net.bert.train()
    timed(full_step, "train_all_layers_pairs_per_s")
    for p in net.bert.parameters():
        p.requires_grad_(False)
    for layer in net.top_layers():
        for p in layer.parameters():
            p.requires_grad_(True)
    net.train()
    timed(full_step, f"train_frozen_lower_{net.split}_pairs_per_s")

    t0 = time.perf_counter()
    cache = LowerCache.build(
        net, enc, encoded, Path("/tmp/reader-throughput-cache"), progress=False
    )
    out["cache_fill_pairs_per_s"] = round(len(encoded) / (time.perf_counter() - t0), 2)
    print("cache fill", out["cache_fill_pairs_per_s"], "pairs/s", flush=True)

    def cached_step(rows: list[int]) -> None:
        loss, _, _ = _losses(net, cache.batch(rows), targets[rows], 1.0)
        loss.backward()
        net.zero_grad(set_to_none=True)

    net.train()
    timed(cached_step, "train_cached_top_pairs_per_s")

    folder = Path("/tmp/reader-throughput-artifact")
    manifest = artifact.Manifest(
        base_sha256=artifact.sha256_file(artifact.base_weights(base)),
        weights_sha256="",
        n_layers=len(bert.encoder.layer),
        n_top=args.n_top,
        max_len=enc.max_len,
    )
    artifact.save(folder, net.trainable_state(), manifest)
    out["artifact_mb"] = round((folder / artifact.WEIGHTS).stat().st_size / 1e6, 2)
    t0 = time.perf_counter()
    reader = Reader.load(folder)
    out["load_seconds"] = round(time.perf_counter() - t0, 2)
    # ~96-token candidates: pairs near the mean length
    near = [p for p, n in zip(pairs, lengths, strict=True) if 86 <= n <= 106]
    for n in (16, 32):
        items = [p.item for p in near[:n]]
        reader.score(near[0].question, items)  # warm
        times = []
        for _ in range(7):
            t0 = time.perf_counter()
            reader.score(near[0].question, items)
            times.append((time.perf_counter() - t0) * 1000)
        out[f"score_{n}_ms_median"] = round(statistics.median(times), 1)
        print(f"score {n}", out[f"score_{n}_ms_median"], "ms", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
