"""Encode stage: a frozen image encoder turns every fetched image into one feature vector.

The encoders themselves (EfficientNet-Lite0 offline, or any Hugging Face image model) are in
:mod:`groundwords.data.encoders`.

:func:`encode_images` reads the fetch table (``id``, ``path``, ``status``), decodes the ``ok``
images (unique by id, in order of first appearance) in ``DataLoader`` workers and writes the
HDF5 feature file described in docs/formats.md. Images that cannot be decoded are listed in the
dataset ``failed_ids`` instead of stopping the run.

Resumable and atomic: encoded rows go to segment files in the folder ``{out}.partial``, each
written atomically (the first after a few batches, later ones larger), so even a hard kill
leaves only whole segments. A rerun keeps the ids already encoded if the encoder settings match
and encodes only the rest; images that failed before are tried again. The finished file is
written atomically onto ``{out}``, and the partial folder disappears.

Relative image paths are taken relative to the current directory (where Snakemake runs); if no
file is there, relative to the folder of the images TSV. A path ``{shard}.tar::{member}`` is a
member of a tar shard (``fetch.store: tar``); each DataLoader worker opens the tar once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlparse

import h5py
import numpy as np
import torch
from tqdm import tqdm

from groundwords.cli import UserError, run_cli, setup_logging
from groundwords.config import add_config_argument, add_section_arguments, stage_settings
from groundwords.data.encoders import download_encoder, load_encoder, load_rgb
from groundwords.data.images import split_tar_path, tar_member_path
from groundwords.files import STR, atomic_path, read_tsv

log = logging.getLogger("groundwords.data.encode")


#: attributes that must agree between a partial folder and the current run for it to be resumed
RESUME_KEYS = ("model", "pooling", "dim", "image_size", "dtype")
#: attributes written to the finished HDF5 file
FILE_ATTRS = ("model", "pooling", "dim", "image_size", "dtype")

FLUSH_EVERY = 8  # batches in the partial folder's first segment (then segments double in size)
SEGMENT_ROWS = 8192  # the largest segment (rows); a hard kill loses at most one segment's worth
CHUNK_ROWS = 128  # rows per HDF5 chunk of ``features``
#: test hook: the encoder SIGKILLs itself right after this many batches of one run
KILL_AT_BATCH_ENV = "GROUNDWORDS_KILL_AT_STEP"
MAX_FAILURE_WARNINGS = 20  # individual warnings for undecodable images; the rest go to debug


# ---------------------------------------------------------------------------------------------
# Preprocessing: small picklable callables (PIL image -> C x H x W float tensor), so DataLoader
# workers get a copy without the model.


# ---------------------------------------------------------------------------------------------
# Encoders


# ---------------------------------------------------------------------------------------------
# Data loading


class ImageDataset(torch.utils.data.Dataset):
    """``(index, tensor or None, error or None)`` per image path; decoding errors are returned,
    not raised, so one bad file does not stop the DataLoader."""

    def __init__(self, paths: list[str], preprocess: Callable):
        self.paths, self.preprocess = paths, preprocess
        self.draft_size = getattr(preprocess, "draft_size", None)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            return i, self.preprocess(load_rgb(self.paths[i], self.draft_size)), None
        except Exception as e:  # noqa: BLE001 -- any decoding problem marks the image failed
            return i, None, f"{type(e).__name__}: {e}"


def collate(items):
    """-> (indices of decoded images, stacked tensors or None, [(index, error), ...])."""
    ok = [(i, x) for i, x, _ in items if x is not None]
    failed = [(i, err) for i, x, err in items if x is None]
    if not ok:
        return [], None, failed
    return [i for i, _ in ok], torch.stack([x for _, x in ok]), failed


def resolve_path(p: str, base: Path) -> str:
    """An image path from the TSV: absolute, file:// URL, or relative (cwd first, then ``base``);
    ``"{shard}.tar::{member}"`` (fetch.store: tar) resolves its tar file the same way."""
    in_tar = split_tar_path(p)
    if in_tar is not None:
        return tar_member_path(resolve_path(in_tar[0], base), in_tar[1])
    if p.startswith("file://"):
        return unquote(urlparse(p).path)
    path = Path(p)
    if path.is_absolute() or path.exists() or not (base / path).exists():
        return str(path)
    return str(base / path)


def read_images_table(images_tsv) -> tuple[list[str], list[str]]:
    """Ids and paths of the ``ok`` rows, unique by id, in order of first appearance."""
    df = read_tsv(images_tsv, dtype={"id": str, "path": str, "status": str})
    missing = {"id", "path", "status"} - set(df.columns)
    if missing:
        raise UserError(f"{images_tsv}: missing column(s) {', '.join(sorted(missing))}")
    df = df[df["status"] == "ok"].drop_duplicates("id", keep="first")
    base = Path(images_tsv).resolve().parent
    return df["id"].tolist(), [resolve_path(p, base) for p in df["path"]]


# ---------------------------------------------------------------------------------------------
# The partial (resume) state: a folder ``{out}.partial`` of segment files, each written atomically
# (``seg-NNNNNN.npz``: ``ids``, ``features``), plus ``settings.json`` (the encoder attributes). A
# segment is durable the moment it appears, so a hard kill (SIGKILL, power loss, OOM killer) loses
# at most the rows encoded since the last segment and never leaves a torn file: HDF5 is not safe
# against that (a file killed between flushes can open fine and fail later, "bad heap index").


def _segments(folder: Path) -> list[Path]:
    return sorted(folder.glob("seg-*.npz"))


def _open_partial(folder: Path, attrs: dict) -> tuple[list[Path], list[str]]:
    """Resume (or start) the partial folder; returns its segments and the ids they hold."""
    settings = {k: attrs[k] for k in RESUME_KEYS}
    if folder.is_dir():
        try:
            old = json.loads((folder / "settings.json").read_text(encoding="utf-8"))
            if old == json.loads(json.dumps(settings, default=str)):
                segs, done = _segments(folder), []
                for seg in segs:
                    with np.load(seg, allow_pickle=False) as z:
                        done.extend(z["ids"].tolist())
                return segs, done
            log.warning("partial folder %s was made with different encoder settings (%s, now %s); "
                        "starting over", folder, old, settings)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            log.warning("partial folder %s is damaged (%s); starting over", folder, e)
        shutil.rmtree(folder)
    elif folder.exists():
        folder.unlink()
    folder.mkdir(parents=True)
    with atomic_path(folder / "settings.json") as tmp:
        tmp.write_text(json.dumps(settings, default=str), encoding="utf-8")
    return [], []


class _SegmentWriter:
    """Buffers encoded rows and writes them as the partial folder's next segment file. Segments
    grow geometrically (``FLUSH_EVERY`` batches first, then doubling up to ``SEGMENT_ROWS`` rows),
    so a short run is durable early and a long one does not make millions of files."""

    def __init__(self, folder: Path, segments: list[Path], first_rows: int):
        self.folder, self.segments, self.target = folder, list(segments), max(1, first_rows)
        self.ids: list[str] = []
        self.feats: list[np.ndarray] = []

    def add(self, ids: list[str], feats: np.ndarray) -> None:
        self.ids.extend(ids)
        self.feats.append(np.asarray(feats, dtype=np.float32))
        if len(self.ids) >= self.target:
            self.flush()
            self.target = min(SEGMENT_ROWS, 2 * self.target)

    def flush(self) -> None:
        if not self.ids:
            return
        seg = self.folder / f"seg-{len(self.segments):06d}.npz"
        with atomic_path(seg, suffix=".npz") as tmp:
            np.savez(tmp, ids=np.array(self.ids, dtype=str), features=np.concatenate(self.feats))
        self.segments.append(seg)
        self.ids, self.feats = [], []


def _finalize(folder: Path, out: Path, want: list[str], failed: list[str], attrs: dict) -> None:
    """Write ``out`` (rows in ``want`` order, ``failed_ids``, attributes) atomically from the
    partial folder's segments, then remove the folder."""
    pos = {i: r for r, i in enumerate(want)}
    with atomic_path(out, suffix=".h5") as tmp, h5py.File(tmp, "w") as g:
        g.create_dataset("ids", data=np.array(want, dtype=object), dtype=STR)
        dst = g.create_dataset("features", shape=(len(want), attrs["dim"]), dtype=np.float32,
                               chunks=(min(max(len(want), 1), CHUNK_ROWS), attrs["dim"]) if want else None)
        for seg in _segments(folder):
            with np.load(seg, allow_pickle=False) as z:
                ids, feats = z["ids"].tolist(), z["features"]
            rows = [(pos[i], r) for r, i in enumerate(ids) if i in pos]
            if not rows:
                continue
            rows.sort()
            to, src = np.array([t for t, _ in rows]), np.array([r for _, r in rows])
            if to[-1] - to[0] == len(to) - 1:  # the usual case: a contiguous run of the output
                dst[to[0]:to[-1] + 1] = feats[src]
            else:
                dst[to] = feats[src]
        g.create_dataset("failed_ids", data=np.array(failed, dtype=object), dtype=STR)
        g.attrs.update({k: attrs[k] for k in FILE_ATTRS})
    shutil.rmtree(folder)


# ---------------------------------------------------------------------------------------------


def encode_images(images_tsv, out_h5, *, model: str, pooling: str = "mean", batch_size: int = 64,
                  num_workers: int = 2, device: str = "auto", dtype: str = "float32",
                  progress: bool = True) -> dict:
    """Encode the ``ok`` images of ``images_tsv`` into the HDF5 feature file ``out_h5``.

    Resumes from the folder ``{out_h5}.partial`` when present (see the module docstring). Returns
    stats: ``n`` (rows in the output), ``n_encoded`` / ``n_failed`` (this run), ``n_resumed``
    (rows kept from the partial folder), ``seconds`` and ``images_per_s`` (this run's decoding +
    encoding, model loading excluded), ``device``.
    """
    if batch_size < 1:
        raise UserError(f"encoder.batch_size must be >= 1 (got {batch_size})")
    if num_workers < 0:
        raise UserError(f"encoder.num_workers must be >= 0 (got {num_workers})")
    ids, paths = read_images_table(images_tsv)
    if not ids:
        raise UserError(f"{images_tsv}: no images with status 'ok' to encode")
    out = Path(out_h5)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(f"{out}.partial")

    encoder = load_encoder(model, pooling, device, dtype)
    attrs = encoder.attrs
    log.info("encoder %s (pooling %s): %d-d features, %s px input, %s on %s",
             model, pooling, encoder.dim, encoder.image_size, attrs["dtype"], attrs["device"])

    if encoder.device.type == "cpu":
        # torch keeps every thread of the budget (OMP_NUM_THREADS, which Snakemake sets to the
        # rule's threads); the decoding workers run beside it and sleep once the prefetch queue
        # is full: on a CPU the forward pass is the bottleneck. Measured on 2 cores
        # (EfficientNet-Lite0, images/s, 1 torch thread + 2 workers / 2 + 2 / 2 + 0): OpenMoji's
        # 160 px PNGs 23 / 38 / 39; 1024 x 768 JPEGs 21 / 26 / 27.
        log.info("CPU: %d torch thread(s), %d decoding workers beside them",
                 torch.get_num_threads(), num_workers)
    writer, failed = None, []
    try:
        segments, done = _open_partial(partial, attrs)
        writer = _SegmentWriter(partial, segments, FLUSH_EVERY * batch_size)
        t0 = time.perf_counter()
        done_set = set(done)
        todo = [k for k, i in enumerate(ids) if i not in done_set]
        if done:
            log.info("resuming from %s: %d images already encoded, %d to go",
                     partial, len(ids) - len(todo), len(todo))
        log.info("encoding %d images (batch size %d, %d workers)", len(todo), batch_size, num_workers)
        _encode_todo(encoder, ids, paths, todo, writer, failed,
                     batch_size=batch_size, num_workers=num_workers, progress=progress)
    finally:
        if writer is not None:  # an exception or Ctrl-C keeps what was encoded
            writer.flush()
    seconds = time.perf_counter() - t0

    want = _kept_ids(ids, done, writer.segments[len(segments):], failed)
    _finalize(partial, out, want, failed, attrs)

    processed = len(todo)
    stats = _encode_stats(processed, failed, want, done_set, seconds, attrs["device"])
    if failed:
        log.warning("%d of %d images could not be decoded (listed in failed_ids of %s)",
                    len(failed), len(ids), out)
    log.info("encoded %d images in %.1f s (%.1f images/s on %s); %s: %d x %d",
             processed, seconds, stats["images_per_s"], attrs["device"], out, len(want), encoder.dim)
    return stats


def _encode_stats(processed: int, failed: list[str], want: list[str], done_set: set[str], seconds: float,
                  device: str) -> dict:
    return {"n": len(want), "n_encoded": processed - len(failed), "n_failed": len(failed),
            "n_resumed": len(done_set & set(want)), "seconds": round(seconds, 3),
            "images_per_s": round(processed / seconds, 2) if seconds > 0 else 0.0,
            "device": device}


def _encode_todo(encoder, ids: list[str], paths: list[str], todo: list[int], writer: _SegmentWriter,
                 failed: list[str], *, batch_size: int, num_workers: int, progress: bool) -> None:
    """Decode and encode the images ``todo`` (indices into ``ids``/``paths``) batch by batch into
    ``writer``; the ids of images that cannot be decoded are appended to ``failed``."""
    kill_at = int(os.environ.get(KILL_AT_BATCH_ENV) or 0)
    loader = torch.utils.data.DataLoader(
        ImageDataset([paths[k] for k in todo], encoder.preprocess),
        batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate,
        pin_memory=encoder.device.type == "cuda",
    )
    # a bar redrawn every 30 s in log files, 10 times a second on a terminal
    interval = 0.1 if sys.stderr.isatty() else 30.0
    with tqdm(total=len(todo), unit="img", disable=not progress, smoothing=0.1,
              mininterval=interval, desc="encode") as bar:
        for b, (ok, x, bad) in enumerate(loader, 1):
            for j, err in bad:
                k = todo[j]
                failed.append(ids[k])
                level = logging.WARNING if len(failed) <= MAX_FAILURE_WARNINGS else logging.DEBUG
                log.log(level, "cannot decode image %s (%s): %s", ids[k], paths[k], err)
            if ok:
                writer.add([ids[todo[j]] for j in ok], encoder.forward(x).numpy())
            bar.update(len(ok) + len(bad))
            if kill_at and b == kill_at:  # tests only: a hard kill at a chosen point
                os.kill(os.getpid(), signal.SIGKILL)


def _kept_ids(ids: list[str], done: list[str], new_segments: list, failed: list[str]) -> list[str]:
    """The ids of the output, in ``ids`` order: resumed (``done``) or encoded into ``new_segments``
    by this run, and not ``failed``."""
    failed_set = set(failed)
    encoded = set(done)
    for seg in new_segments:
        with np.load(seg, allow_pickle=False) as z:
            encoded.update(z["ids"].tolist())
    return [i for i in ids if i in encoded and i not in failed_set]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m groundwords.data.encode", description=__doc__.split("\n")[0])
    p.add_argument("--images", help="fetch table (TSV with id, path, status)")
    p.add_argument("--out", required=True, help="HDF5 feature file to write (with --download-only: "
                   "a JSON stamp)")
    p.add_argument("--download-only", action="store_true",
                   help="only fetch --model from the Hugging Face Hub into its cache")
    # the encoder.* settings: --config JSON (as the rules pass them) or one option each; defaults: the schema's
    add_config_argument(p, "encoder")
    add_section_arguments(p, "encoder", exclude=("device",))
    p.add_argument("--device", help="auto, cpu, cuda (or cuda:N) (config key encoder.device)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    setup_logging()
    device = a.device
    a.device = None  # cuda:N is no schema value: checked by the encoder
    s = stage_settings(a, "encoder")
    if device is not None:
        s["device"] = device
    if a.download_only:
        return download_encoder(s["model"], a.out)
    if not a.images:
        p.error("--images is required")
    if threading.current_thread() is threading.main_thread():
        # a scheduler's SIGTERM (e.g. a Slurm time limit) writes the rows encoded so far as a segment
        signal.signal(signal.SIGTERM, _raise_interrupt)
    encode_images(a.images, a.out, **s, progress=not a.no_progress)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
