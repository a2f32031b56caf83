"""Fetch throughput vs. number of worker threads, against a local server with latency.

Real image hosts answer in tens to hundreds of milliseconds, so fetching is latency bound
and should scale almost linearly with threads until CPU (decode + hashing) or the server
saturates.  This script serves ``--images`` generated JPEGs from a local HTTP server that
adds ``--latency`` seconds to every request (run in a separate process so that it does not
compete with the fetcher for the GIL), runs :func:`groundwords.fetch.fetch_shard` with each
``--workers`` value, and prints images/s and the speed-up over the first value.

    python benchmarks/fetch_throughput.py [--images 300] [--latency 0.05] [--workers 1 8 32]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from groundwords.fetch import fetch_shard  # noqa: E402
from groundwords.io import read_tsv, write_tsv  # noqa: E402


def make_jpegs(n: int, size=(320, 240)) -> list[bytes]:
    """``n`` distinct smallish JPEGs (a gradient with an index-dependent tint)."""
    w, h = size
    base = Image.linear_gradient("L").resize(size)
    out = []
    for i in range(n):
        tint = Image.new("RGB", size, ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256))
        im = Image.merge("RGB", (base, base.rotate(90).resize(size), base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
        im = Image.blend(im, tint, 0.4)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def serve(images: list[bytes], latency: float, port_queue, stop) -> None:
    """Child process: serve ``/img/{i}.jpg`` until ``stop`` is set."""
    from _httpserver import LocalServer, Reply

    with LocalServer(latency=latency) as server:
        for i, data in enumerate(images):
            server.route(f"/img/{i}.jpg", Reply(body=data, headers={"Content-Type": "image/jpeg"}))
        port_queue.put(server.port)
        stop.wait()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=300, help="number of images (default %(default)s)")
    ap.add_argument("--latency", type=float, default=0.05, help="seconds added per request (default %(default)s)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 8, 32], help="thread counts (default %(default)s)")
    args = ap.parse_args(argv)

    images = make_jpegs(args.images)
    ctx = mp.get_context("spawn")
    port_queue, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=serve, args=(images, args.latency, port_queue, stop), daemon=True)
    server.start()
    try:
        port = port_queue.get(timeout=60)
        urls = [f"http://127.0.0.1:{port}/img/{i}.jpg" for i in range(args.images)]
        rows = [dict(rank=i, row=i, id=hashlib.sha1(u.encode()).hexdigest()[:16], caption=f"image {i}", url=u,
                     status="ok") for i, u in enumerate(urls)]
        print(f"{args.images} JPEGs (mean {sum(map(len, images)) / len(images) / 1024:.1f} KiB), "
              f"{args.latency * 1000:.0f} ms latency per request, {os.cpu_count()} CPUs")
        print(f"{'workers':>8} {'seconds':>8} {'images/s':>9} {'speed-up':>9}")
        base = None
        with tempfile.TemporaryDirectory(prefix="fetch-bench-") as tmp:
            manifest = Path(tmp) / "manifest.tsv"
            write_tsv(pd.DataFrame(rows), manifest)
            for workers in args.workers:
                run = Path(tmp) / f"w{workers}"
                t0 = time.perf_counter()
                fetch_shard(manifest, 0, 1, run / "shard.tsv", run / "images", workers=workers, progress=False)
                elapsed = time.perf_counter() - t0
                statuses = read_tsv(run / "shard.tsv", dtype=str)["status"].value_counts().to_dict()
                if statuses != {"ok": args.images}:
                    raise SystemExit(f"unexpected statuses with {workers} workers: {statuses}")
                rate = args.images / elapsed
                base = base or rate
                print(f"{workers:>8} {elapsed:>8.2f} {rate:>9.1f} {rate / base:>8.1f}x")
    finally:
        stop.set()
        server.join(timeout=10)


if __name__ == "__main__":
    main()
