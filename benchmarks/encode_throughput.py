"""Benchmark of the encode stage: is image decoding the bottleneck?

Generates ``--n`` JPEG photos-like images (default 256 at 400 x 300) in a temporary folder and
measures, for one encoder (default EfficientNet-Lite0 on the CPU):

* ``decode``: decoding + preprocessing alone, in this process (images/s, one core);
* ``bare``: the model forward alone on pre-made input tensors (images/s, after one warm-up batch),
  with every torch thread (as encode_images runs it, its decoding workers beside it);
* ``full``: :func:`groundwords.data.encode.encode_images` end to end (TSV -> HDF5; model loading
  excluded) with ``--workers`` DataLoader workers (default 0 and 2),

and prints the ratio full / bare (same thread count): close to 1 means the forward pass, not
decoding, limits the throughput. Usage::

    python benchmarks/encode_throughput.py [--n 256] [--batch-size 64] [--device cpu]
        [--model efficientnet-lite0] [--workers 0 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from groundwords.data.encode import encode_images
from groundwords.data.encoders import load_encoder, load_rgb


def make_images(folder: Path, n: int, size=(400, 300), seed=0) -> Path:
    """``n`` JPEGs with smooth gradients, blobs and mild noise (compress like photos)."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rows = []
    for i in range(n):
        img = np.zeros((h, w, 3), np.float32)
        for c in range(3):
            a, b, p = rng.uniform(-1, 1, 3)
            img[..., c] = 128 + 100 * np.sin(a * xx / 40 + b * yy / 40 + p * 6)
        for _ in range(5):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(15, 80)
            img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
        img += rng.normal(0, 8, img.shape)
        path = folder / f"img{i:04d}.jpg"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)
        rows.append({"id": f"{i:016x}", "path": str(path), "status": "ok"})
    tsv = folder / "fetched.tsv"
    pd.DataFrame(rows).to_csv(tsv, sep="\t", index=False)
    return tsv


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--model", default="efficientnet-lite0")
    p.add_argument("--pooling", default="mean")
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--json", default=None, help="also write the results here")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    res = {"model": a.model, "device": a.device, "n": a.n, "batch_size": a.batch_size,
           "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
           "loadavg_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="encode-bench-") as tmp:
        tmp = Path(tmp)
        tsv = make_images(tmp, a.n)
        paths = pd.read_csv(tsv, sep="\t")["path"].tolist()
        enc = load_encoder(a.model, a.pooling, a.device)
        draft = getattr(enc.preprocess, "draft_size", None)

        t = time.perf_counter()
        x = torch.stack([enc.preprocess(load_rgb(q, draft)) for q in paths])
        res["decode_images_per_s"] = a.n / (time.perf_counter() - t)

        # encode_images runs the model with every torch thread, whatever its number of workers
        t = torch.get_num_threads()
        batches = list(torch.split(x, a.batch_size))
        enc.forward(batches[0])  # warm-up
        start = time.perf_counter()
        for b in batches:
            enc.forward(b)
        bare = res[f"bare_t{t}_images_per_s"] = a.n / (time.perf_counter() - start)
        del enc, x, batches

        for w in a.workers:
            stats = encode_images(tsv, tmp / f"enc-{w}.h5", model=a.model, pooling=a.pooling,
                                  batch_size=a.batch_size, num_workers=w, device=a.device,
                                  progress=False)
            res[f"full_w{w}_images_per_s"] = stats["images_per_s"]
            res[f"full_w{w}_over_bare"] = stats["images_per_s"] / bare
    res["loadavg_after"] = os.getloadavg()[0]

    print(f"{a.model} on {a.device}, {a.n} JPEGs 400x300, batch {a.batch_size}, "
          f"{res['torch_threads']} torch threads, {res['cpus']} CPUs")
    print(f"  decode+preprocess (1 process): {res['decode_images_per_s']:8.1f} images/s")
    print(f"  bare model forward, {t} thread(s): {bare:8.1f} images/s")
    for w in a.workers:
        print(f"  encode_images, {w} workers ({t} thread(s)): "
              f"{res[f'full_w{w}_images_per_s']:8.1f} images/s"
              f"   full/bare = {res[f'full_w{w}_over_bare']:.2f}")
    print(f"  load average before/after: {res['loadavg_before']:.2f} / {res['loadavg_after']:.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    main()
