"""IESG's inputs: the image features' normalisation, a pretrained SGNS model, (image, word) pairs resolved to rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from groundwords.cli import UserError
from groundwords.text.vocab import load_vocab
from groundwords.vectors import unit_rows

IMAGE_NORMS = ("l2", "center_l2", "none")


def normalize_images(feats: np.ndarray, mode: str, mean: np.ndarray | None = None) -> np.ndarray:
    """``none``: raw; ``l2``: unit rows; ``center_l2``: minus ``mean`` (the training images' mean), then unit rows."""
    if mode not in IMAGE_NORMS:
        raise UserError(f"unknown image normalisation {mode!r} (choose from {', '.join(IMAGE_NORMS)})")
    x = np.asarray(feats, np.float32)
    if mode == "none":
        return x
    if mode == "center_l2":
        if mean is None:
            raise ValueError("center_l2 needs the training images' mean")
        x = x - np.asarray(mean, np.float32)
    return unit_rows(x, axis=1, eps=1e-12).astype(np.float32)


def load_sgns(sgns_dir) -> tuple[list[str], np.ndarray, np.ndarray, Path]:
    """(words, vectors, counts, dir) of a ``pretrain`` output directory."""
    d = Path(sgns_dir)
    for name in ("vectors.npy", "vocab.txt", "vocab.tsv"):
        if not (d / name).is_file():
            raise UserError(f"{d}: missing {name} (not a finished 'iesg pretrain' output directory)")
    words = (d / "vocab.txt").read_text(encoding="utf-8").splitlines()
    vectors = np.load(d / "vectors.npy")
    vocab = load_vocab(d / "vocab.tsv")
    if len(words) != len(vectors) or vocab["word"].astype(str).tolist() != words:
        raise UserError(f"{d}: vocab.txt, vocab.tsv and vectors.npy do not match")
    return words, vectors, vocab["count"].to_numpy(np.float64), d


def resolve_pairs(table: pd.DataFrame, words: list[str], image_ids: list[str]) -> pd.DataFrame:
    """The table with ``word_id`` (-1: out of vocabulary) and ``image_row`` (-1: no features)."""
    return table.assign(
        word_id=pd.Index(words).get_indexer(table["word"].astype(str)),
        image_row=pd.Index(image_ids).get_indexer(table["image_id"].astype(str)),
    )
