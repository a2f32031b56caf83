"""The WIELD stage's inputs: the captions, the vocabulary and the image encodings read and checked
(:func:`read_inputs`), and the CBOW training examples built from them (:func:`training_examples`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from groundwords.cli import UserError, log
from groundwords.data.manifest import read_captions
from groundwords.files import read_features
from groundwords.text.captions import build_examples, word_rows
from groundwords.text.vocab import load_vocab


def read_inputs(captions_tsv, vocab_tsv, images_h5, image_dim):
    """(captions, vocabulary, image ids, image features); the ids and features are None without ``images_h5``."""
    for name, p in (("captions", captions_tsv), ("vocabulary", vocab_tsv), ("images", images_h5)):
        if p is not None and not Path(p).is_file():
            raise UserError(f"{name} file not found: {p}")
    caps = read_captions(captions_tsv, "captions TSV", "rank, row, id, caption, status, path")
    vocab = load_vocab(vocab_tsv)
    if vocab.empty:
        raise UserError(f"{vocab_tsv}: the vocabulary is empty")
    ids, feats = None, None
    if images_h5 is not None:
        try:
            ids, feats, _ = read_features(images_h5)
        except (OSError, KeyError) as e:
            raise UserError(f"{images_h5}: not an HDF5 feature file with 'ids' and 'features' ({e})") from e
        if feats.ndim != 2 or feats.shape[0] != len(ids) or feats.shape[1] < 1:
            raise UserError(f"{images_h5}: features have shape {feats.shape}, expected ({len(ids)}, k>=1)")
        if image_dim is not None and feats.shape[1] != image_dim:
            raise UserError(f"{images_h5}: image targets are {feats.shape[1]}-d but {image_dim}-d were "
                            "expected (is this the PCA-projected file?)")
        if not np.isfinite(feats).all():
            raise UserError(f"{images_h5}: image targets contain NaN or infinite values")
    return caps, vocab, ids, feats


def keying_hint(images_by: str, image_ids, words, images_h5) -> str:
    """A hint when the image file looks keyed the other way (by word vs by caption image)."""
    if image_ids is None or not len(image_ids):
        return ""
    n_words = int((word_rows(image_ids, words) >= 0).sum())  # image ids that are vocabulary words
    if images_by == "caption" and 2 * n_words >= len(image_ids):
        return (f" The ids of {images_h5} look like words ({n_words}/{len(image_ids)} are vocabulary words): "
                "a word-keyed file needs --image-target word (wield) or --image-input word (imginput).")
    if images_by == "word" and n_words == 0:
        return (f" None of the {len(image_ids)} ids of {images_h5} is a vocabulary word: --image-target word "
                "/ --image-input word need word-level features (ids = words, e.g. word_images PCA).")
    return ""


def training_examples(caps, words: list[str], image_ids, feats, images_h5, *, model: str, gamma: float,
                      window: int, train_dead_images: bool, images_by: str, image_input: str | None):
    """The CBOW examples of the captions (:func:`groundwords.text.captions.build_examples`), their
    statistics and, for ``image_input="word"``, each word's image row (a tensor; else None);
    refuses a run without examples, or without the image encodings it needs."""
    if gamma > 0 and feats is None:
        raise UserError("gamma > 0 needs image targets (--images)")
    if model == "imginput" and feats is None:
        raise UserError("--model imginput needs image encodings (--images)")
    hint = keying_hint(images_by, image_ids, words, images_h5)
    if images_by == "word" and hint:
        raise UserError(f"no vocabulary word has an image encoding in {images_h5}.{hint}")
    examples, stats = build_examples(caps, words, image_ids, window=window, train_dead_images=train_dead_images,
                                     image_target=images_by)
    if len(examples) == 0:
        raise UserError(
            f"no training examples: {stats['n_captions_total']} captions, {stats['n_captions_live_image']} "
            f"with a live image in {images_h5}, {stats['n_captions']} used, {stats['n_tokens']} tokens "
            f"({stats['n_oov_dropped']} out of vocabulary). Check that the captions, vocabulary and image "
            f"file belong to the same subset, or use --train-dead-images.{hint}")
    word_rows_t = None
    if image_input == "word":
        # the input is built from the context words: drop the centre-word rows (never used)
        rows = word_rows(words, image_ids)
        has = np.append(rows >= 0, False)  # + padding
        examples.image_row = np.full(len(examples), -1, dtype=np.int64)
        stats["n_examples_with_image"] = int(has[examples.context].any(axis=1).sum())
        word_rows_t = torch.from_numpy(rows)
    if gamma > 0 and stats["n_examples_with_image"] == 0:
        raise UserError(f"gamma > 0 but no training example has a live image target.{hint}")
    log.info("corpus: %d/%d captions, %d tokens (%d OOV dropped), %d examples (%d with an image), "
             "context width %d", stats["n_captions"], stats["n_captions_total"], stats["n_tokens"],
             stats["n_oov_dropped"], stats["n_examples"], stats["n_examples_with_image"], stats["context_width"])
    return examples, stats, word_rows_t
