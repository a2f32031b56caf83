"""The retrieval model's training loop and per-split tensors (:mod:`groundwords.studies.pixie.retrieval`'s ``train``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from groundwords.cli import UserError, log
from groundwords.models.vse import VSE
from groundwords.studies.pixie.retrieval_data import Encoded, RetrievalData
from groundwords.studies.pixie.retrieval_metrics import (
    retrieval_ranks,
    retrieval_recalls,
)
from groundwords.training import fit, make_optimizer


@torch.no_grad()
def embed_split(model: VSE, features: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor,
                chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm embeddings (images, captions) in chunks, eval mode."""
    was = model.training
    model.eval()
    imgs = [model.encode_images(features[i:i + chunk]) for i in range(0, len(features), chunk)]
    caps = []
    for i in range(0, len(tokens), chunk):
        ln = lengths[i:i + chunk]
        caps.append(model.encode_captions(tokens[i:i + chunk, :int(ln.max())], ln))
    model.train(was)
    h = model.hidden
    return (torch.cat(imgs).cpu().numpy() if imgs else np.zeros((0, h), np.float32),
            torch.cat(caps).cpu().numpy() if caps else np.zeros((0, h), np.float32))


class SplitTensors:
    """One split's images (all of the split) and kept captions (image index local to the split)."""

    def __init__(self, data: RetrievalData, enc: Encoded, split: str, device):
        img_rows = np.flatnonzero(data.image_split == split)
        sel = data.image_split[enc.caption_image] == split
        local = np.full(len(data.image_ids), -1, dtype=np.int64)
        local[img_rows] = np.arange(len(img_rows))
        self.n_images = len(img_rows)
        self.features = torch.from_numpy(data.features[img_rows]).to(device)
        self.tokens = torch.from_numpy(enc.tokens[sel]).to(device)
        self.lengths = torch.from_numpy(enc.lengths[sel])  # stays on the CPU (pack_padded_sequence)
        self.cap_image = local[enc.caption_image[sel]]
        self.n_captions = int(sel.sum())
        self.n_images_with_caption = len(np.unique(self.cap_image))
        # query ids that do not depend on the word vectors: the image id, the caption's source index
        self.image_ids = [data.image_ids[r] for r in img_rows]
        self.caption_ids = np.flatnonzero(enc.kept)[sel]

    def recalls(self, model: VSE) -> tuple[dict, dict]:
        img, cap = embed_split(model, self.features, self.tokens, self.lengths)
        return retrieval_recalls(img, cap, self.cap_image)

    def ranks(self, model: VSE) -> pd.DataFrame:
        """Every test query's rank: ``direction, query, rank`` (query: the image id for ``i2s``,
        ``caption-<index among the source captions>`` for ``s2i``), the input of paired tests."""
        img, cap = embed_split(model, self.features, self.tokens, self.lengths)
        r = retrieval_ranks(img, cap, self.cap_image)
        (qi, ri), (qc, rc) = r["i2s"], r["s2i"]
        return pd.DataFrame({"direction": ["i2s"] * len(ri) + ["s2i"] * len(rc),
                             "query": [self.image_ids[i] for i in qi] + [f"caption-{self.caption_ids[c]}" for c in qc],
                             "rank": np.concatenate([ri, rc]).astype(np.int64)}, columns=["direction", "query", "rank"])


def fit_vse(model: VSE, tr: SplitTensors, *, epochs: int, batch_size: int, lr: float, lr_step: int,
            grad_clip: float, seed: int, progress: bool = True, on_epoch_end=None, checkpoint=None,
            state: dict | None = None) -> list[dict]:
    """Adam over the trainable parameters, lr ÷ 10 every ``lr_step`` epochs (0: never), batches of
    captions with their images drawn from a generator seeded with ``seed``, in
    :func:`groundwords.training.fit`'s loop. Returns one record per epoch: ``epoch``, ``lr``,
    ``loss`` (per caption), ``seconds`` (+ what ``on_epoch_end`` adds). ``checkpoint``: a
    :class:`groundwords.checkpoints.Checkpoint`, which also keeps ``state`` (``on_epoch_end``'s)."""
    n = tr.n_captions
    opt = make_optimizer(model, "adam", lr)[0]
    params = [p for p in model.parameters() if p.requires_grad]
    dev = tr.tokens.device
    data = {"tokens": tr.tokens, "lengths": tr.lengths.to(dev), "image_ids": torch.from_numpy(tr.cap_image).to(dev)}
    # the epoch's loss sum stays on the device (float64): read once per epoch, not synced every step
    # (in the caller's ``state``, if given, so that a checkpoint keeps it with the caller's own)
    state = {} if state is None else state
    state.update(vse_epoch=1, vse_loss=torch.zeros((), dtype=torch.float64, device=dev))

    def epoch_lr(epoch: int) -> float:
        return lr * (0.1 ** ((epoch - 1) // lr_step) if lr_step > 0 else 1.0)

    def step(batch: dict[str, torch.Tensor]) -> dict:
        if state["vse_loss"] is None:  # the first step of an epoch
            state["vse_loss"] = torch.zeros((), dtype=torch.float64, device=dev)
        for g in opt.param_groups:
            g["lr"] = epoch_lr(state["vse_epoch"])
        lengths = batch["lengths"].cpu()  # pack_padded_sequence wants them on the CPU
        keys = batch["image_ids"]
        loss = model.loss({"tokens": batch["tokens"][:, :int(lengths.max())], "lengths": lengths,
                           "images": tr.features[keys], "image_ids": keys})["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        state["vse_loss"] += loss.detach().double()
        return {}

    step.optimizers = [opt]  # saved and restored with a checkpoint

    def epoch_end(rec: dict) -> None:
        epoch, seconds = rec["epoch"], rec["seconds"]
        rec.clear()
        rec.update(epoch=epoch, lr=epoch_lr(epoch), loss=float(state["vse_loss"]) / n, seconds=seconds)
        state.update(vse_epoch=epoch + 1, vse_loss=None)
        if not math.isfinite(rec["loss"]):
            raise UserError(f"training diverged at epoch {epoch} (loss {rec['loss']}); lower --lr")
        if on_epoch_end is not None:
            on_epoch_end(rec)
        log.info("epoch %d/%d: loss/caption %.4f, lr %.2g%s (%.1fs)", epoch, epochs, rec["loss"], rec["lr"],
                 f", val R-sum {rec['val_rsum']:.1f}" if rec.get("val_rsum") is not None else "", seconds)

    return fit(model, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=progress,
               step_fn=step, on_epoch_end=epoch_end, checkpoint=checkpoint, state=state)
