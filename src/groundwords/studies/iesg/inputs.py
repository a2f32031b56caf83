"""IESG's inputs: the image features' normalisation, a pretrained SGNS model, the training (image, word)
pairs resolved to rows, and the corpus examples of IESG's word term."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from groundwords.cli import UserError
from groundwords.files import load_image_features
from groundwords.grounding.word_images import read_word_images
from groundwords.text.corpora import corpus_ids
from groundwords.text.skipgram import skipgram_pairs
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


def iesg_examples(enc, has_image: np.ndarray, window: int, max_examples: int, seed: int) -> dict[str, torch.Tensor]:
    """(centre, context) pairs of the corpus whose centre word has a training image."""
    c, x = skipgram_pairs(enc.tokens, enc.offsets, window, shrink=False, centres=has_image, rng=seed)
    if max_examples and len(c) > max_examples:
        keep = np.sort(np.random.default_rng(seed).choice(len(c), size=max_examples, replace=False))
        c, x = c[keep], x[keep]
    return {"centre": torch.from_numpy(c), "context": torch.from_numpy(x)}


def corpus_examples(corpus, words: list[str], offsets: np.ndarray, window: int, max_examples: int, seed: int,
                    stats: dict) -> dict[str, torch.Tensor]:
    """IESG's examples (:func:`iesg_examples`): the corpus windows centred on words with a training
    image (``offsets``: :func:`word_image_index`'s); their counts are added to ``stats``."""
    enc = corpus_ids(corpus, words)
    data = iesg_examples(enc, np.diff(offsets) > 0, window, max_examples, seed)
    stats.update(n_corpus_tokens=len(enc.tokens), n_examples=len(data["centre"]),
                 n_centre_words_with_examples=len(np.unique(data["centre"].numpy())))
    return data


def training_pairs(word_images_tsv, features_h5, words: list[str], image_norm: str):
    """The usable train-split (image, word) pairs: ``(word ids, image rows, normalised features of
    every image, the training images' mean, pair counts)``; a UserError when there is none."""
    table = read_word_images(word_images_tsv)
    image_ids, raw = load_image_features(features_h5)
    pairs = resolve_pairs(table, words, image_ids)
    tr = pairs[pairs["split"] == "train"]
    usable = tr[(tr["word_id"] >= 0) & (tr["image_row"] >= 0)]
    # the centring mean comes from the training images only (each image once)
    image_mean = raw[np.unique(usable["image_row"].to_numpy(np.int64))].mean(0) if len(usable) else None
    feats = normalize_images(raw, image_norm, image_mean)
    stats = {"train_pairs_total": len(tr), "train_pairs_used": len(usable),
             "train_pairs_oov_word": int((tr["word_id"] < 0).sum()),
             "train_pairs_no_features": int((tr["image_row"] < 0).sum()),
             "train_images_used": int(usable["image_id"].nunique()),
             "train_words_used": int(usable["word"].nunique())}
    if usable.empty:
        raise UserError(f"no usable training (image, word) pairs: {len(tr)} train pairs, "
                        f"{stats['train_pairs_oov_word']} with a word outside the SGNS vocabulary, "
                        f"{stats['train_pairs_no_features']} whose image is not in {features_h5}")
    return usable["word_id"].to_numpy(np.int64), usable["image_row"].to_numpy(np.int64), feats, image_mean, stats
