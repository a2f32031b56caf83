"""Fetch throughput vs. number of worker threads, against a local server with latency; and
side by side with img2dataset (--img2dataset).

Real image hosts answer in tens to hundreds of milliseconds, so fetching is latency bound
and should scale almost linearly with threads until CPU (decode + hashing) or the server
saturates.  This script serves ``--images`` generated JPEGs from a local HTTP server that
adds ``--latency`` seconds to every request (run in a separate process so that it does not
compete with the fetcher for the GIL), runs :func:`groundwords.data.fetch.fetch_shard` with each
``--workers`` value, and prints images/s and the speed-up over the first value.

    python benchmarks/fetch_throughput.py [--images 300] [--latency 0.05] [--workers 1 8 32]

With ``--img2dataset PATH`` (the ``img2dataset`` command of a separate environment) it runs
instead, on the same URLs, server and cores, interleaved ``--repeats`` times: our fetch CLI
(``store: files`` and ``store: tar``; one process, ``--workers[0]`` threads) and img2dataset
(``--output_format files`` and ``webdataset``; one process, as many threads, originals kept:
``--resize_mode no``), each as a fresh command, so start-up counts for both.  It prints the
median images/s, the ratio per store, peak memory (max RSS of the command), and the bytes on
disk of our stores with and without ``--max-side``.

    python benchmarks/fetch_throughput.py --img2dataset /tmp/i2d/bin/img2dataset \
        --images 2000 --latency 0.05 --workers 16 --repeats 3
"""

from __future__ import annotations

import argparse
import hashlib
import io
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from groundwords.data.fetch import fetch_shard  # noqa: E402
from groundwords.files import read_tsv, write_tsv  # noqa: E402


def make_jpegs(n: int, size=(320, 240)) -> list[bytes]:
    """``n`` distinct smallish JPEGs (a gradient with an index-dependent tint)."""
    w, h = size
    base = Image.linear_gradient("L").resize(size)
    out = []
    for i in range(n):
        tint = Image.new("RGB", size, ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256))
        im = Image.merge("RGB", (base, base.rotate(90).resize(size), base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
        im = Image.blend(im, tint, 0.4)
        for bit in range(20):  # the index in 8x8 blocks (JPEG keeps them): no two images alike
            im.paste((255, 255, 255) if (i >> bit) & 1 else (0, 0, 0), (8 * bit, 0, 8 * bit + 8, 8))
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
    ap.add_argument("--img2dataset", help="img2dataset command: compare side by side instead of the sweep")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the comparison (medians)")
    ap.add_argument("--max-side", type=int, default=128, help="the resize compared for bytes on disk")
    ap.add_argument("--size", type=int, nargs=2, default=[320, 240], metavar=("W", "H"), help="image size")
    args = ap.parse_args(argv)

    images = make_jpegs(args.images, tuple(args.size))
    ctx = mp.get_context("spawn")
    port_queue, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=serve, args=(images, args.latency, port_queue, stop), daemon=True)
    server.start()
    try:
        port = port_queue.get(timeout=60)
        urls = [f"http://127.0.0.1:{port}/img/{i}.jpg" for i in range(args.images)]
        rows = [dict(rank=i, row=i, id=hashlib.sha1(u.encode()).hexdigest()[:16], caption=f"image {i}", url=u,
                     status="ok") for i, u in enumerate(urls)]
        print(f"{args.images} JPEGs {args.size[0]}x{args.size[1]} (mean {sum(map(len, images)) / len(images) / 1024:.1f} KiB), "
              f"{args.latency * 1000:.0f} ms latency per request, {os.cpu_count()} CPUs")
        if args.img2dataset:
            compare(rows, args)
            return
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


def _timed(cmd: list[str], env=None) -> tuple[float, float]:
    """Run ``cmd``; -> (seconds, peak RSS in MiB of the command or a process it waited for)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}):\n{err.decode(errors='replace')[-3000:]}")
    return elapsed, usage.ru_maxrss / 1024  # KiB on Linux


def _disk(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _count_ok_files(run: Path, tar: bool) -> int:
    import tarfile

    if (run / "shard.tsv").exists():  # ours: the shard table says
        return int((read_tsv(run / "shard.tsv", dtype=str)["status"] == "ok").sum())
    if tar:
        n = 0
        for t in run.rglob("*.tar"):
            with tarfile.open(t) as tf:
                n += sum(m.name.endswith(".jpg") for m in tf.getmembers())
        return n
    return sum(1 for p in run.rglob("*.jpg"))


def compare(rows: list[dict], args) -> None:
    """Ours (files, tar) vs img2dataset (files, webdataset): interleaved runs, medians."""
    workers = args.workers[0]
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    timings: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="fetch-vs-i2d-") as tmp:
        tmp = Path(tmp)
        manifest = tmp / "manifest.tsv"
        write_tsv(pd.DataFrame(rows), manifest)
        (tmp / "urls.txt").write_text("".join(r["url"] + "\n" for r in rows))

        def ours(store: str, run: Path, *extra: str) -> list[str]:
            return [sys.executable, "-m", "groundwords.data.fetch", "shard", "--manifest", str(manifest), "--shard", "0",
                    "--num-shards", "1", "--out", str(run / "shard.tsv"), "--images-dir", str(run / "images"),
                    "--workers", str(workers), "--store", store, "--no-progress", *extra]

        def theirs(fmt: str, run: Path) -> list[str]:
            return [args.img2dataset, "--url_list", str(tmp / "urls.txt"), "--input_format", "txt",
                    "--output_folder", str(run), "--output_format", fmt, "--processes_count", "1",
                    "--thread_count", str(workers), "--resize_mode", "no", "--timeout", "20",
                    "--retries", "0", "--enable_wandb", "False", "--number_sample_per_shard", "10000"]

        tools = {"ours files": lambda run: ours("files", run), "img2dataset files": lambda run: theirs("files", run),
                 "ours tar": lambda run: ours("tar", run), "img2dataset webdataset": lambda run: theirs("webdataset", run)}
        for r in range(args.repeats):
            for name, make in tools.items():  # interleaved: load changes hit every tool alike
                run = tmp / f"{name.replace(' ', '-')}-{r}"
                seconds, rss = _timed(make(run), env)
                n = _count_ok_files(run, tar=name in ("ours tar", "img2dataset webdataset"))
                if n != len(rows):
                    raise SystemExit(f"{name}: {n} of {len(rows)} images stored")
                timings.setdefault(name, []).append((seconds, rss))
                print(f"  run {r + 1}/{args.repeats} {name:<24} {seconds:6.2f} s  {len(rows) / seconds:7.1f} images/s")
                if r < args.repeats - 1 or name.startswith("img2dataset"):
                    shutil.rmtree(run)
        print(f"\n{'tool':<24} {'median s':>9} {'images/s':>9} {'ratio':>7} {'peak MiB':>9}")
        med = {k: statistics.median(s for s, _ in v) for k, v in timings.items()}
        for ours_name, their_name in (("ours files", "img2dataset files"), ("ours tar", "img2dataset webdataset")):
            for k in (ours_name, their_name):
                ratio = med[their_name] / med[k]  # = our images/s over theirs, for our row
                rss = statistics.median(m for _, m in timings[k])
                print(f"{k:<24} {med[k]:9.2f} {len(rows) / med[k]:9.1f} {ratio:6.2f}x {rss:9.0f}")
        last = args.repeats - 1
        files_run, tar_run = tmp / f"ours-files-{last}", tmp / f"ours-tar-{last}"
        resized = tmp / "ours-files-max-side"
        _timed(ours("files", resized, "--max-side", str(args.max_side)), env)
        tar_bytes = sum(p.stat().st_size for p in tar_run.glob("*.tar"))
        print(f"\nbytes on disk: files {_disk(files_run / 'images'):,}  tar {tar_bytes:,}  "
              f"files with --max-side {args.max_side}: {_disk(resized / 'images'):,}")


if __name__ == "__main__":
    main()
