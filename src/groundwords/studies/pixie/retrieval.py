"""Image <-> sentence retrieval with frozen word embeddings (PIXIE's §4.3 and Table 6).

One sub-command::

    python -m groundwords.studies.pixie.retrieval train --vectors V --out-dir D \
        (--manifest M --features H5 [--val-frac 0.1 --test-frac 0.1 --split-seed 0] | --precomp DIR) \
        [--hidden 1024 --epochs 30 --lr 2e-4 --lr-step 15 --margin 0.2 --batch-size 128 \
         --max-violation --grad-clip 2 --select final --seed 0 --threads 1 --device cpu --no-progress]

It trains the retrieval model :class:`~groundwords.models.vse.VSE` (a GRU over the *frozen*
word vectors ``V`` -> sentence embedding; a linear map of the image features; hinge ranking
loss of Kiros et al. 2014) and reports R@K on the test split. Comparing word vectors = running
this once per vector file on the same data: only ``V`` changes.

**Data** (both sources give the same :class:`RetrievalData`: images with features and a split,
captions as token lists pointing at their image):

* ``--manifest M --features H5`` (default setting): the manifest rows (:mod:`groundwords.data.manifest`,
  several rows may share an image ``id``, e.g. an OpenMoji's name and its aliases) with status
  ``ok`` whose image has an encoding in ``H5`` (:mod:`groundwords.data.encode`). The *images* are split
  into train / val / test: sorted ids permuted by ``numpy.random.default_rng(--split-seed)``,
  the first ``round(test_frac·N)`` are test, the next ``round(val_frac·N)`` val, the rest train.
  The split depends on the manifest, the encodings and the seed only, never on the word vectors,
  so every vector file is evaluated on the same images.
* ``--precomp DIR``: VSE++'s precomputed features (Faghri et al. 2017, e.g. ``f30k_precomp``, the
  paper's setting: Flickr30K, VGG-19 FC7, Karpathy split): ``{train,dev,test}_ims.npy`` (N, 4096)
  and ``{train,dev,test}_caps.txt``, one caption per line, 5 consecutive captions per image
  (caption j belongs to image j // 5). ``dev`` is the validation split (optional).

Captions are tokenized with :func:`groundwords.text.vocab.tokenize` (the project's one tokenizer) and
looked up in ``V`` (case-insensitively, as :func:`groundwords.evaluation.similarity.word_index` does);
out-of-vocabulary tokens are dropped, and a caption left with no token is dropped and counted.
Every input row is accounted for in ``train.json["rows"]``: ``used + empty_after_oov +
no_encoding + not_ok = total`` (manifest rows; with ``--precomp``: caption lines).

**Training** (paper §4.3, which are VSE++'s defaults): Adam, lr 2e-4 divided by 10 every
``--lr-step`` 15 epochs, 30 epochs, batch 128 captions (each with its image), margin 0.2, sum of
the violations over the batch (``--max-violation``: VSE++'s hardest negative instead), hidden
size 1024; word vectors and image features are not fine-tuned. Not in the paper, from VSE++'s
defaults: gradients clipped to norm ``--grad-clip`` 2 (0: off). Batches are drawn from a
``torch.Generator`` seeded with ``--seed`` (which also seeds the initialisation); runs are
deterministic on the CPU for a given seed and thread count. After every epoch the validation
R-sum (R@1+R@5+R@10 of both directions, in %, max 600, as in VSE++) is logged.
``--select final`` (default) reports the model after the last epoch; ``--select best-val``
reports the epoch with the best validation R-sum (what VSE++'s ``model_best`` does; the paper
does not say which it used).

**Evaluation** (:func:`recall_at_k`): on the test split, all test captions against all test
images. ``i2s``: each test image with at least one caption queries the test captions and counts
as a hit at K when *any* of its captions is in the top K (Karpathy & Fei-Fei / VSE++). ``s2i``:
each test caption queries the test images (all of them, also those whose captions were all
dropped as out of vocabulary, so the gallery does not depend on the vectors); hit when its image
is in the top K. Ties count against the model: an item scoring exactly as high as the best true
item ranks before it.

Outputs (atomic): ``D/retrieval.tsv`` with columns ``direction, k, recall, n_queries``
(direction ``i2s`` / ``s2i``, recall a fraction in [0, 1]), ``D/ranks.tsv`` with every test
query's rank (``direction, query, rank``; the query is the image id for ``i2s`` and
``caption-<index among the source captions>`` for ``s2i``, ids that do not depend on the word
vectors, so that two models' queries can be paired), then ``D/train.json`` (last: it marks
a finished run) with the hyper-parameters, inputs, row accounting, per-split counts, per-epoch
loss / learning rate / validation R@K and R-sum, timings, word-vector dimension, torch version.
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from groundwords.cli import UserError, log, run_cli, setup_logging
from groundwords.config import add_config_argument, add_section_arguments, stage_settings
from groundwords.evaluation.similarity import load_vectors, word_index
from groundwords.files import load_image_features, read_tsv, write_json, write_tsv
from groundwords.models.vse import VSE
from groundwords.text.vocab import tokenize
from groundwords.training import make_optimizer, torch_settings

SPLITS = ("train", "val", "test")
KS = (1, 5, 10)
DIRECTIONS = ("i2s", "s2i")
CAPTIONS_PER_IMAGE = 5  # VSE++ precomputed files
PRECOMP_SPLITS = {"train": "train", "dev": "val", "test": "test"}
SELECT = ("final", "best-val")
RESULT_COLUMNS = ["direction", "k", "recall", "n_queries"]


# ---------------------------------------------------------------------------------------------
# Metrics (pure functions of arrays)


def truth_mask(truth, shape: tuple[int, int]) -> np.ndarray:
    """(Q, I) boolean mask of the true items of each query.

    ``truth`` is a boolean (Q, I) array, a (Q,) integer array (one true item per query) or a
    sequence of Q iterables of item indices.
    """
    q, n = shape
    if isinstance(truth, np.ndarray) and truth.dtype == bool:
        if truth.shape != (q, n):
            raise ValueError(f"truth mask has shape {truth.shape}, scores {shape}")
        return truth
    if isinstance(truth, np.ndarray) and truth.ndim == 1 and np.issubdtype(truth.dtype, np.integer):
        truth = truth[:, None]
    if len(truth) != q:
        raise ValueError(f"{len(truth)} truth entries for {q} queries")
    mask = np.zeros((q, n), dtype=bool)
    for i, items in enumerate(truth):
        items = np.atleast_1d(np.asarray(list(items) if not isinstance(items, np.ndarray) else items,
                                         dtype=np.int64))
        if len(items) and (items.min() < 0 or items.max() >= n):
            raise ValueError(f"query {i}: true item index out of range [0, {n})")
        mask[i, items] = True
    return mask


def best_true_ranks(scores, truth) -> np.ndarray:
    """Rank (1 = best) of each query's best-scoring true item among the *false* items.

    ``rank = 1 + #{false items scoring >= the best true item}``: the other true items never
    count against a query, ties with false items always do (a constant scorer gets the worst
    rank). Every query needs at least one true item; NaN scores are an error.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a (queries, items) matrix, got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    mask = truth_mask(truth, scores.shape)
    if not mask.any(axis=1).all():
        raise ValueError("every query needs at least one true item")
    best = np.where(mask, scores, -np.inf).max(axis=1, keepdims=True)
    return 1 + ((scores >= best) & ~mask).sum(axis=1)


def recall_at_k(scores, truth, ks: Iterable[int] = KS) -> dict[int, float]:
    """``{k: fraction of queries whose best true item ranks <= k}`` (see :func:`best_true_ranks`).

    ``scores`` (Q, I): query q's score for item i; ``truth``: see :func:`truth_mask`.
    NaN for every k when there is no query.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape[0] == 0:
        return {int(k): float("nan") for k in ks}
    ranks = best_true_ranks(scores, truth)
    return {int(k): float((ranks <= k).mean()) for k in ks}


def rsum(recalls: dict[str, dict[int, float]]) -> float:
    """VSE++'s R-sum: R@1 + R@5 + R@10 of both directions, in percent (max 600)."""
    return float(sum(100.0 * r for d in DIRECTIONS for r in recalls[d].values()))


# ---------------------------------------------------------------------------------------------
# Data


@dataclass
class RetrievalData:
    """Images (features, split) and captions (token lists) pointing at them.

    ``rows``: accounting of the source rows before the vocabulary is applied (``total``,
    ``not_ok``, ``no_encoding``, ``captions`` = rows that became captions).
    """

    image_ids: list[str]
    features: np.ndarray          # (N_img, k) float32
    image_split: np.ndarray       # (N_img,) split names
    caption_image: np.ndarray     # (N_cap,) int64 rows of ``image_ids``
    captions: list[list[str]]     # (N_cap,) token lists
    rows: dict = field(default_factory=dict)
    source: str = ""

    def __post_init__(self):
        n_img, n_cap = len(self.image_ids), len(self.captions)
        if self.features.shape[0] != n_img or len(self.image_split) != n_img or len(self.caption_image) != n_cap:
            raise ValueError("inconsistent RetrievalData lengths")


def split_images(image_ids: Sequence[str], val_frac: float, test_frac: float, seed: int) -> np.ndarray:
    """Split names for ``image_ids`` (any order, unique): a seeded permutation of the sorted ids,
    first ``round(test_frac·N)`` test, next ``round(val_frac·N)`` val, rest train."""
    if not (0 < test_frac < 1 and 0 <= val_frac < 1 and val_frac + test_frac < 1):
        raise UserError(f"need 0 < test fraction, 0 <= val fraction and val + test < 1 "
                        f"(got val {val_frac}, test {test_frac})")
    ids = np.asarray(list(image_ids), dtype=object)
    if len(set(ids.tolist())) != len(ids):
        raise ValueError("image ids must be unique")
    n = len(ids)
    n_test, n_val = int(round(test_frac * n)), int(round(val_frac * n))
    if n_test < 1 or n - n_test - n_val < 1 or (val_frac > 0 and n_val < 1):
        raise UserError(f"{n} images cannot be split into train / val / test with fractions "
                        f"{1 - val_frac - test_frac:g} / {val_frac:g} / {test_frac:g} (too few images)")
    order = np.argsort(ids.astype(str), kind="stable")
    perm = order[np.random.default_rng(seed).permutation(n)]
    split = np.full(n, "train", dtype=object)
    split[perm[:n_test]] = "test"
    split[perm[n_test:n_test + n_val]] = "val"
    return split


def from_manifest(manifest, features_h5, *, val_frac: float = 0.1, test_frac: float = 0.1,
                  split_seed: int = 0) -> RetrievalData:
    """Captions of the manifest rows with status ``ok`` and an encoded image, split by image."""
    if not Path(manifest).is_file():
        raise UserError(f"manifest not found: {manifest}")
    try:
        df = read_tsv(manifest, dtype={"id": str, "caption": str, "status": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserError(f"{manifest}: cannot read the manifest TSV ({e})") from e
    missing = [c for c in ("id", "caption", "status") if c not in df.columns]
    if missing:
        raise UserError(f"{manifest}: missing column(s) {missing} (expected rank, row, id, caption, url, status)")
    enc_ids, feats = load_image_features(features_h5, unique=True)
    ok = (df["status"] == "ok").to_numpy()
    enc_row = pd.Index(enc_ids).get_indexer(df["id"].astype(str))
    live = ok & (enc_row >= 0)
    rows = {"total": len(df), "not_ok": int((~ok).sum()), "no_encoding": int((ok & (enc_row < 0)).sum()),
            "captions": int(live.sum())}
    if not live.any():
        raise UserError(f"no manifest row of {manifest} has status 'ok' and an image in {features_h5} "
                        f"({rows['total']} rows, {rows['not_ok']} not ok, {rows['no_encoding']} without encoding)")
    used_rows = enc_row[live]
    uniq = np.unique(used_rows)  # encoding rows of the used images
    image_ids = [enc_ids[r] for r in uniq]
    split = split_images(image_ids, val_frac, test_frac, split_seed)
    caption_image = np.searchsorted(uniq, used_rows).astype(np.int64)
    captions = [tokenize(c) for c in df["caption"].astype(str)[live]]
    return RetrievalData(image_ids, np.ascontiguousarray(feats[uniq]), split, caption_image, captions,
                         rows, source="manifest")


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    return [ln.rstrip("\r") for ln in lines]


def from_precomp(directory) -> RetrievalData:
    """VSE++'s precomputed features: ``{train,dev,test}_ims.npy`` + ``{...}_caps.txt``,
    caption j of a split belongs to image j // 5 of that split. ``dev`` (val) is optional."""
    d = Path(directory)
    if not d.is_dir():
        raise UserError(f"precomputed-features directory not found: {d}")
    ids, feats, split, cap_img, caps = [], [], [], [], []
    for name, our in PRECOMP_SPLITS.items():
        ims_p, caps_p = d / f"{name}_ims.npy", d / f"{name}_caps.txt"
        if not ims_p.is_file() and not caps_p.is_file() and name == "dev":
            log.warning("%s: no dev split (no validation R-sum)", d)
            continue
        for p in (ims_p, caps_p):
            if not p.is_file():
                raise UserError(f"{d}: missing {p.name} (expected {{train,dev,test}}_ims.npy and _caps.txt)")
        try:
            ims = np.load(ims_p, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise UserError(f"{ims_p}: not a .npy array ({e})") from e
        lines = _read_lines(caps_p)
        if ims.ndim != 2 or ims.shape[0] < 1:
            raise UserError(f"{ims_p}: expected an (images, features) matrix, got shape {ims.shape}")
        if len(lines) != CAPTIONS_PER_IMAGE * ims.shape[0]:
            raise UserError(f"{d}: {caps_p.name} has {len(lines)} captions but {ims_p.name} has {ims.shape[0]} "
                            f"images; expected exactly {CAPTIONS_PER_IMAGE} consecutive captions per image "
                            f"({CAPTIONS_PER_IMAGE * ims.shape[0]} lines)")
        if feats and ims.shape[1] != feats[0].shape[1]:
            raise UserError(f"{ims_p}: {ims.shape[1]}-d features, but {feats[0].shape[1]}-d in the train split")
        if not np.isfinite(ims).all():
            raise UserError(f"{ims_p}: features contain NaN or infinite values")
        base = len(ids)
        ids += [f"{name}/{i}" for i in range(ims.shape[0])]
        feats.append(ims.astype(np.float32, copy=False))
        split += [our] * ims.shape[0]
        cap_img.append(base + np.arange(len(lines), dtype=np.int64) // CAPTIONS_PER_IMAGE)
        caps += [tokenize(c) for c in lines]
    rows = {"total": len(caps), "not_ok": 0, "no_encoding": 0, "captions": len(caps)}
    return RetrievalData(ids, np.concatenate(feats), np.asarray(split, dtype=object), np.concatenate(cap_img),
                         caps, rows, source="precomp")


@dataclass
class Encoded:
    """The captions that kept at least one in-vocabulary token, as padded id matrices."""

    word_vectors: np.ndarray      # (V_used, d): the rows of the vector file the captions use
    words: list[str]
    tokens: np.ndarray            # (n, T) int64, padded with V_used
    lengths: np.ndarray           # (n,) >= 1
    caption_image: np.ndarray     # (n,) rows of RetrievalData.image_ids
    kept: np.ndarray              # (N_cap,) bool over RetrievalData.captions
    n_tokens: int
    n_oov_tokens: int


def encode_captions(data: RetrievalData, words: list[str], vectors: np.ndarray) -> Encoded:
    """Look the caption tokens up in the vectors (case-insensitively); drop OOV tokens and then
    the captions left empty. The embedding keeps only the vector rows the captions use."""
    index = word_index(words, case_insensitive=True)
    rows = [[index[t.lower()] for t in c if t.lower() in index] for c in data.captions]
    n_tokens = sum(len(c) for c in data.captions)
    n_kept = sum(len(r) for r in rows)
    kept = np.array([len(r) > 0 for r in rows], dtype=bool)
    used = np.unique(np.fromiter((i for r in rows for i in r), dtype=np.int64, count=n_kept))
    remap = {int(v): j for j, v in enumerate(used)}
    kept_rows = [r for r in rows if r]
    lengths = np.array([len(r) for r in kept_rows], dtype=np.int64)
    pad = len(used)
    tokens = np.full((len(kept_rows), int(lengths.max()) if len(lengths) else 1), pad, dtype=np.int64)
    for i, r in enumerate(kept_rows):
        tokens[i, :len(r)] = [remap[v] for v in r]
    return Encoded(np.ascontiguousarray(vectors[used], dtype=np.float32), [words[i] for i in used], tokens,
                   lengths, data.caption_image[kept], kept, n_tokens, n_tokens - n_kept)


# ---------------------------------------------------------------------------------------------
# Training and evaluation


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


def retrieval_ranks(img_emb: np.ndarray, cap_emb: np.ndarray, cap_image: np.ndarray) -> dict:
    """Per-query ranks of both directions (see :func:`best_true_ranks`): ``{"i2s": (images,
    ranks), "s2i": (captions, ranks)}``, where ``images`` are the rows of ``img_emb`` that query
    (those with a caption) and ``captions`` the rows of ``cap_emb`` (all of them)."""
    scores = img_emb.astype(np.float64) @ cap_emb.astype(np.float64).T  # (I, C)
    queries = np.unique(cap_image)  # i2s: images with at least one caption
    if len(queries) == 0:
        empty = np.zeros(0, np.int64)
        return {"i2s": (empty, empty), "s2i": (empty, empty)}
    i2s_truth = cap_image[None, :] == queries[:, None]
    return {"i2s": (queries, best_true_ranks(scores[queries], i2s_truth)),
            "s2i": (np.arange(len(cap_image)), best_true_ranks(scores.T, np.asarray(cap_image, np.int64)))}


def retrieval_recalls(img_emb: np.ndarray, cap_emb: np.ndarray, cap_image: np.ndarray,
                      ks: Iterable[int] = KS) -> tuple[dict, dict]:
    """R@K of both directions for images ``img_emb`` (I, h) and captions ``cap_emb`` (C, h) whose
    image is row ``cap_image[c]`` of ``img_emb``. Returns ``(recalls, n_queries)`` keyed by direction."""
    ks = tuple(ks)
    ranks = retrieval_ranks(img_emb, cap_emb, np.asarray(cap_image, np.int64))
    recalls = {d: {int(k): float((r <= k).mean()) if len(r) else float("nan") for k in ks}
               for d, (_, r) in ranks.items()}
    return recalls, {d: len(r) for d, (_, r) in ranks.items()}


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
            grad_clip: float, seed: int, progress: bool = True, on_epoch_end=None) -> list[dict]:
    """Adam over the trainable parameters, lr ÷ 10 every ``lr_step`` epochs (0: never), batches of
    captions with their images drawn from a generator seeded with ``seed``."""
    n = tr.n_captions
    opt = make_optimizer(model, "adam", lr)[0]
    params = [p for p in model.parameters() if p.requires_grad]
    shuffler = torch.Generator().manual_seed(seed)
    image_keys = torch.from_numpy(tr.cap_image).to(tr.tokens.device)
    history = []
    model.train()
    for epoch in range(1, epochs + 1):
        cur_lr = lr * (0.1 ** ((epoch - 1) // lr_step) if lr_step > 0 else 1.0)
        for g in opt.param_groups:
            g["lr"] = cur_lr
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=shuffler)
        total = torch.zeros((), dtype=torch.float64)
        bar = tqdm(total=n, desc=f"epoch {epoch}/{epochs}", unit="cap", disable=not progress, leave=False,
                   mininterval=1.0)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            lengths = tr.lengths[idx]
            idx_d = idx.to(tr.tokens.device)
            keys = image_keys[idx_d]
            batch = {"tokens": tr.tokens[idx_d, :int(lengths.max())], "lengths": lengths,
                     "images": tr.features[keys], "image_ids": keys}
            loss = model.loss(batch)["total"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            opt.step()
            total += loss.detach().double().cpu()
            bar.update(len(idx))
        bar.close()
        rec = {"epoch": epoch, "lr": cur_lr, "loss": float(total) / n, "seconds": time.perf_counter() - t0}
        if not math.isfinite(rec["loss"]):
            raise UserError(f"training diverged at epoch {epoch} (loss {rec['loss']}); lower --lr")
        if on_epoch_end is not None:
            on_epoch_end(rec)
        log.info("epoch %d/%d: loss/caption %.4f, lr %.2g%s (%.1fs)", epoch, epochs, rec["loss"], cur_lr,
                 f", val R-sum {rec['val_rsum']:.1f}" if rec.get("val_rsum") is not None else "", rec["seconds"])
        history.append(rec)
    model.eval()
    return history


def _check_args(hidden, epochs, lr, lr_step, margin, batch_size, grad_clip, select):
    checks = [
        (hidden >= 1, f"hidden size must be >= 1 (got {hidden})"),
        (epochs >= 1, f"epochs must be >= 1 (got {epochs})"),
        (lr > 0 and math.isfinite(lr), f"learning rate must be > 0 (got {lr})"),
        (lr_step >= 0, f"lr step must be >= 0 epochs (0: no decay; got {lr_step})"),
        (margin >= 0 and math.isfinite(margin), f"margin must be a finite number >= 0 (got {margin})"),
        (batch_size >= 2, f"batch size must be >= 2 (got {batch_size}): the negatives come from the batch"),
        (grad_clip >= 0, f"gradient clip must be >= 0 (0: off; got {grad_clip})"),
        (select in SELECT, f"select must be one of {', '.join(SELECT)} (got {select!r})"),
    ]
    for ok, msg in checks:
        if not ok:
            raise UserError(msg)


def train(vectors, out_dir, *, manifest=None, features=None, precomp=None, val_frac: float = 0.1,
          test_frac: float = 0.1, split_seed: int = 0, hidden: int = 1024, epochs: int = 30, lr: float = 2e-4,
          lr_step: int = 15, margin: float = 0.2, batch_size: int = 128, max_violation: bool = False,
          grad_clip: float = 2.0, select: str = "final", seed: int = 0, threads: int | None = 1,
          device: str = "cpu", progress: bool = True) -> dict:
    """Train the retrieval model on the train split and write ``retrieval.tsv`` + ``train.json``.

    Data from ``manifest`` + ``features`` or from ``precomp`` (exactly one). Returns train.json.
    """
    t_start = time.perf_counter()
    _check_args(hidden, epochs, lr, lr_step, margin, batch_size, grad_clip, select)
    if (precomp is None) == (manifest is None and features is None):
        raise UserError("give either --manifest and --features, or --precomp")
    if precomp is None and (manifest is None or features is None):
        raise UserError("--manifest and --features go together")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device!r} requested but CUDA is not available")
    words, vecs = load_vectors(vectors)
    if vecs.ndim != 2 or len(words) == 0 or not np.isfinite(vecs).all():
        raise UserError(f"{vectors}: the word vectors must be a non-empty finite matrix")
    if precomp is not None:
        data = from_precomp(precomp)
    else:
        data = from_manifest(manifest, features, val_frac=val_frac, test_frac=test_frac, split_seed=split_seed)
    enc = encode_captions(data, words, vecs)
    n_used = int(enc.kept.sum())
    rows = {"total": data.rows["total"], "used": n_used, "empty_after_oov": data.rows["captions"] - n_used,
            "no_encoding": data.rows["no_encoding"], "not_ok": data.rows["not_ok"]}
    assert rows["used"] + rows["empty_after_oov"] + rows["no_encoding"] + rows["not_ok"] == rows["total"]
    if n_used == 0:
        raise UserError(f"no caption has a word of {vectors} ({data.rows['captions']} captions, "
                        f"{enc.n_tokens} tokens, all out of vocabulary): do the vectors match the captions' language?")
    dev = torch.device(device)
    sets = {s: SplitTensors(data, enc, s, dev) for s in SPLITS}
    counts = {s: {"images": t.n_images, "images_with_caption": t.n_images_with_caption, "captions": t.n_captions}
              for s, t in sets.items()}
    for s in ("train", "test"):
        if sets[s].n_captions == 0:
            raise UserError(f"the {s} split has no caption with an in-vocabulary word ({counts[s]['images']} images)")
    if select == "best-val" and sets["val"].n_captions == 0:
        raise UserError("--select best-val needs a validation split with captions")
    log.info("data (%s): %d/%d rows used (%d empty after OOV, %d without encoding, %d not ok); %s; "
             "%d/%d tokens out of vocabulary", data.source, rows["used"], rows["total"], rows["empty_after_oov"],
             rows["no_encoding"], rows["not_ok"],
             ", ".join(f"{s} {c['images']} images / {c['captions']} captions" for s, c in counts.items()),
             enc.n_oov_tokens, enc.n_tokens)

    best = {"rsum": -math.inf, "epoch": None, "state": None}
    with torch_settings(threads, dev):
        torch.manual_seed(seed)
        model = VSE(enc.word_vectors, data.features.shape[1], hidden=hidden, margin=margin,
                    max_violation=max_violation).to(dev)

        def on_epoch_end(rec):
            rec["val_rsum"], rec["val"] = None, None
            if sets["val"].n_captions:
                r, _ = sets["val"].recalls(model)
                rec["val"] = r
                rec["val_rsum"] = rsum(r)
                if select == "best-val" and rec["val_rsum"] > best["rsum"]:
                    best.update(rsum=rec["val_rsum"], epoch=rec["epoch"],
                                state=copy.deepcopy(model.state_dict()))

        t0 = time.perf_counter()
        history = fit_vse(model, sets["train"], epochs=epochs, batch_size=batch_size, lr=lr, lr_step=lr_step,
                          grad_clip=grad_clip, seed=seed, progress=progress, on_epoch_end=on_epoch_end)
        train_seconds = time.perf_counter() - t0
        selected = epochs
        if select == "best-val":
            model.load_state_dict(best["state"])
            selected = best["epoch"]
        t0 = time.perf_counter()
        ranks = sets["test"].ranks(model)
        recalls = {d: {k: float((ranks.loc[ranks["direction"] == d, "rank"] <= k).mean()) for k in KS}
                   for d in DIRECTIONS}
        n_queries = {d: int((ranks["direction"] == d).sum()) for d in DIRECTIONS}
        eval_seconds = time.perf_counter() - t0
        used_threads = torch.get_num_threads()

    table = pd.DataFrame([{"direction": d, "k": k, "recall": recalls[d][k], "n_queries": n_queries[d]}
                          for d in DIRECTIONS for k in KS], columns=RESULT_COLUMNS)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_tsv(table, out_dir / "retrieval.tsv")
    write_tsv(ranks, out_dir / "ranks.tsv")
    info = {
        "task": "image-sentence retrieval (PIXIE section 4.3, Table 6)",
        "hyperparameters": {"hidden": hidden, "epochs": epochs, "lr": lr, "lr_step": lr_step, "margin": margin,
                            "batch_size": batch_size, "max_violation": max_violation, "grad_clip": grad_clip,
                            "select": select, "seed": seed, "optimizer": "adam", "loss": "sum"},
        "inputs": {"vectors": str(vectors), "source": data.source,
                   **({"precomp": str(precomp)} if precomp is not None else
                      {"manifest": str(manifest), "features": str(features), "val_frac": val_frac,
                       "test_frac": test_frac, "split_seed": split_seed})},
        "word_dim": int(vecs.shape[1]),
        "vectors_vocab_size": len(words),
        "words_used": len(enc.words),
        "image_dim": int(data.features.shape[1]),
        "rows": rows,
        "tokens": {"total": enc.n_tokens, "out_of_vocabulary": enc.n_oov_tokens},
        "splits": counts,
        "history": history,
        "selected_epoch": selected,
        "test": {d: {"recall": {str(k): v for k, v in recalls[d].items()}, "n_queries": n_queries[d]}
                 for d in DIRECTIONS},
        "test_rsum": rsum(recalls),
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "seconds": time.perf_counter() - t_start,
        "torch_version": torch.__version__,
        "device": str(device),
        "threads": used_threads,
    }
    write_json(info, out_dir / "train.json")  # last: its presence marks a finished run
    log.info("test R@1/5/10: i2s %s, s2i %s (R-sum %.1f); wrote %s",
             "/".join(f"{100 * recalls['i2s'][k]:.1f}" for k in KS),
             "/".join(f"{100 * recalls['s2i'][k]:.1f}" for k in KS), info["test_rsum"], out_dir)
    return info


def write_split(manifest, features_h5, out_tsv, *, val_frac: float = 0.1, test_frac: float = 0.1,
                split_seed: int = 0) -> pd.DataFrame:
    """The image split ``train`` uses (``image_id, split``), for stages that must keep the retrieval
    test images out of what they learn from (PIXIE's per-word visual features)."""
    data = from_manifest(manifest, features_h5, val_frac=val_frac, test_frac=test_frac, split_seed=split_seed)
    df = pd.DataFrame({"image_id": data.image_ids, "split": data.image_split})
    write_tsv(df, out_tsv)
    log.info("retrieval split -> %s: %s", out_tsv, df["split"].value_counts().to_dict())
    return df


#: the pixie.retrieval keys of the retrieval model's training
TRAIN_KEYS = ("hidden", "epochs", "lr", "lr_step", "margin", "batch_size")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m groundwords.studies.pixie.retrieval", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("split", help="write the manifest images' train/val/test split (image_id, split)")
    sp.add_argument("--manifest", required=True)
    sp.add_argument("--features", required=True)
    sp.add_argument("--val-frac", type=float, default=0.1)
    sp.add_argument("--test-frac", type=float, default=0.1)
    sp.add_argument("--split-seed", type=int, default=0)
    sp.add_argument("--out", required=True)
    t = sub.add_parser("train", help="train the retrieval model on frozen word vectors; report test R@K")
    t.add_argument("--vectors", required=True, help="word vectors (word2vec text, or a vectors.npy + vocab.txt dir)")
    t.add_argument("--out-dir", required=True)
    t.add_argument("--manifest", help="manifest TSV (id, caption, status); with --features")
    t.add_argument("--features", help="image encodings HDF5 (ids = image ids); with --manifest")
    t.add_argument("--precomp", help="VSE++ precomputed features directory ({train,dev,test}_ims.npy / _caps.txt)")
    t.add_argument("--val-frac", type=float, default=None, help="manifest: fraction of images for validation (0.1)")
    t.add_argument("--test-frac", type=float, default=None, help="manifest: fraction of images for test (0.1)")
    t.add_argument("--split-seed", type=int, default=None, help="manifest: seed of the image split (0)")
    add_config_argument(t, "pixie")  # {"retrieval": {...}, "seed": ..}; defaults: the schema's
    add_section_arguments(t, "pixie.retrieval", only=TRAIN_KEYS)
    t.add_argument("--max-violation", action="store_true", help="hardest negative only (VSE++ MH loss)")
    t.add_argument("--grad-clip", type=float, default=2.0, help="clip the gradient norm (VSE++ default; 0: off)")
    t.add_argument("--select", choices=SELECT, default="final",
                   help="report the last epoch (default) or the epoch with the best validation R-sum")
    add_section_arguments(t, "pixie", only=("seed", "threads"))
    t.add_argument("--device", default="cpu")
    t.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    a = p.parse_args(argv)
    if a.cmd == "split":
        setup_logging()
        write_split(a.manifest, a.features, a.out, val_frac=a.val_frac, test_frac=a.test_frac,
                    split_seed=a.split_seed)
        return
    if a.precomp is not None and any(v is not None for v in (a.manifest, a.features, a.val_frac, a.test_frac,
                                                               a.split_seed)):
        p.error("--precomp has its own splits: it excludes --manifest, --features, --val-frac, --test-frac, "
                "--split-seed")
    if a.precomp is None and (a.manifest is None or a.features is None):
        p.error("give --manifest and --features, or --precomp")
    setup_logging()
    s = stage_settings(a, "pixie", only=("retrieval", "seed", "threads"))
    r = {k: s["retrieval"][k] for k in TRAIN_KEYS}
    train(a.vectors, a.out_dir, manifest=a.manifest, features=a.features, precomp=a.precomp,
          val_frac=0.1 if a.val_frac is None else a.val_frac, test_frac=0.1 if a.test_frac is None else a.test_frac,
          split_seed=0 if a.split_seed is None else a.split_seed, **r, max_violation=a.max_violation,
          grad_clip=a.grad_clip, select=a.select, seed=s["seed"], threads=s["threads"], device=a.device,
          progress=not a.no_progress)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
