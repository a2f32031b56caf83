"""The retrieval data of PIXIE's Table 6: images (features, split) and their captions, from the
manifest + encodings or from VSE++'s precomputed features, and the captions looked up in a vector
file (see :mod:`groundwords.studies.pixie.retrieval` for the rules)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from groundwords.cli import UserError, log
from groundwords.data.manifest import read_captions
from groundwords.evaluation.similarity import word_index
from groundwords.files import load_image_features
from groundwords.grounding.word_images import split_images
from groundwords.text.vocab import tokenize

CAPTIONS_PER_IMAGE = 5  # VSE++ precomputed files
PRECOMP_SPLITS = {"train": "train", "dev": "validation", "test": "test"}


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


def from_manifest(manifest, features_h5, *, val_frac: float = 0.1, test_frac: float = 0.1,
                  split_seed: int = 0) -> RetrievalData:
    """Captions of the manifest rows with status ``ok`` and an encoded image, split by image."""
    if not Path(manifest).is_file():
        raise UserError(f"manifest not found: {manifest}")
    df = read_captions(manifest, "the manifest TSV", "rank, row, id, caption, url, status")
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
    split_of = split_images(image_ids, val_frac, test_frac, split_seed, every_split=True)
    split = np.array([split_of[i] for i in image_ids], dtype=object)
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
    caption j of a split belongs to image j // 5 of that split. ``dev`` (validation) is optional."""
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
