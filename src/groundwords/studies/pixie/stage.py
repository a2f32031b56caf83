"""The PIXIE stage (Ailem et al., EMNLP 2018): per-word visual features, then PIXIE training.

Two sub-commands::

    python -m groundwords.studies.pixie.stage features --word-images T --features H5 --out H5 \
        [--hide N --hidden-out TSV --seed S --scale minmax|none]
    python -m groundwords.studies.pixie.stage train --corpus F --vocab V --visual H5 --out-dir D ...

``features``
    x_w = the mean of the image encodings (HDF5 from :mod:`groundwords.data.encode`, ids = image
    ids) of word w's images in the word-image table (:mod:`groundwords.grounding.word_images`), **all
    splits** (PIXIE's visual features are word-level inputs, not a retrieval task); an image
    listed twice for one word counts once, images without an encoding are skipped. Then
    (``--scale minmax``, default) every dimension is min-max scaled to [0, 1] over the written
    words (constant dimensions become 0): the VAE decoder's means are sigmoids
    (:mod:`groundwords.models.pixie`), so features must lie in [0, 1]. The per-dimension
    ``scale_min``/``scale_max`` are stored as JSON attrs (``scaling`` names the method).
    ``--vocab V``: only the words of a vocabulary TSV are kept (before ``--hide`` draws).
    ``--exclude-split S``: the images a ``retrieval split`` table puts in validation or test are
    left out, so a retrieval evaluation on the same images (PIXIE's Table 6 on the embedded
    data) never sees its test images through the word features.
    ``--hide N``: a random subset of N visual words (numpy ``default_rng(--seed)``, drawn
    from the sorted word list) is withheld from the output and written one per line to
    ``--hidden-out`` (the paper's Table 3: visual propagation to words without images);
    the scaling is computed without them. Output HDF5: ``ids`` = words (sorted),
    ``features``, ``counts`` (images averaged per word).
``train``
    PIXIE (:class:`~groundwords.models.pixie.PIXIE`) with Adam (paper: lr 1e-3) via
    :func:`groundwords.training.fit` on the skip-gram pairs of a tokenized corpus
    (:func:`~groundwords.text.skipgram.skipgram_pairs`, word2vec reduced windows and
    subsampling ``--sample``, drawn once, reused for every epoch). The visual features are
    aligned to the vocabulary: words without features get a zero row and ``has_visual``
    False (their z_w is 0, the text term is plain SGNS). Defaults: dim 100, window 10, J 1,
    hidden 500 (paper); ``--negatives`` 5 (paper: 64, slower). Writes ``concat_vectors.txt``
    (PIXIE⊕ [e_w, m_w μ_φ(x_w)], word2vec text, 2·dim columns) and, via
    :func:`groundwords.training.write_outputs`, ``vectors.npy``, ``vocab.txt``, ``vectors.txt``
    (PIXIE+ e_w + m_w μ_φ(x_w)), ``loss.csv`` (epoch, ce, total, ...) and ``train.json``
    (last; with the full per-epoch history including the VAE terms ``nll_x`` and ``kl``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from groundwords.checkpoints import file_identity, stage_checkpoint
from groundwords.cli import UserError, log, run_cli, setup_logging
from groundwords.config import add_config_argument, add_section_arguments, stage_settings
from groundwords.devices import resolve_device
from groundwords.files import atomic_path, load_image_features, read_feature_matrix, write_features
from groundwords.grounding.word_features import pair_means
from groundwords.grounding.word_images import read_word_images
from groundwords.models.pixie import MIN_VAR, PIXIE, VAE_ROWS, VAE_WEIGHTINGS
from groundwords.models.sgns import SGNS
from groundwords.text.corpora import corpus_ids
from groundwords.text.skipgram import keep_probabilities, skipgram_pairs
from groundwords.text.vocab import load_vocab
from groundwords.training import (
    check_finite,
    fit,
    torch_settings,
    training_settings,
    write_outputs,
    write_word2vec_text,
)

SCALINGS = ("minmax", "none")
OPTIMIZERS = ("adam", "sparse_adam")


# ---------------------------------------------------------------------------------------------
# features


def held_out_images(split_tsv) -> set[str]:
    """Image ids of a ``retrieval split`` table whose split is not ``train``."""
    if not Path(split_tsv).is_file():
        raise UserError(f"split table not found: {split_tsv}")
    df = pd.read_csv(split_tsv, sep="\t", dtype=str, keep_default_na=False)
    if not {"image_id", "split"} <= set(df.columns):
        raise UserError(f"{split_tsv}: expected columns image_id, split (python -m groundwords.studies.pixie.retrieval split)")
    return set(df.loc[df["split"] != "train", "image_id"])


def minmax_scale(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-dimension (x − min) / (max − min) into [0, 1]; constant dimensions → 0. Returns (scaled, min, max)."""
    lo, hi = x.min(0), x.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.clip((x - lo) / span, 0.0, 1.0).astype(np.float32), lo, hi


def make_features(word_images_tsv, features_h5, out_h5, *, hide: int = 0, hidden_out=None, seed: int = 0,
                  scale: str = "minmax", vocab_tsv=None, exclude_split=None) -> dict:
    if scale not in SCALINGS:
        raise UserError(f"unknown scaling {scale!r} (choose from {', '.join(SCALINGS)})")
    if hide < 0:
        raise UserError(f"--hide must be >= 0 (got {hide})")
    if hide and not hidden_out:
        raise UserError("--hide needs --hidden-out (where the withheld words are written)")
    table = read_word_images(word_images_tsv)
    image_ids, feats = load_image_features(features_h5)
    n_excluded = 0
    if exclude_split is not None:  # keep the retrieval val/test images out of the word features
        held = held_out_images(exclude_split)
        drop = table["image_id"].astype(str).isin(held)
        n_excluded = int(table.loc[drop, "image_id"].nunique())
        table = table[~drop]
        log.info("excluding %d images of the retrieval validation/test split (%s)", n_excluded, exclude_split)
    words, means, counts = pair_means(table, image_ids, feats)
    if not words:
        raise UserError(f"no word of {word_images_tsv} has an image encoded in {features_h5} (check the image ids)")
    n_with_images = len(words)
    if vocab_tsv is not None:  # only words the models can use: the hidden subset is drawn among them
        if not Path(vocab_tsv).is_file():
            raise UserError(f"vocabulary not found: {vocab_tsv}")
        keep = np.isin(np.array(words, dtype=object), load_vocab(vocab_tsv)["word"].astype(str).to_numpy())
        if not keep.any():
            raise UserError(f"no word with images in {word_images_tsv} is in the vocabulary {vocab_tsv}")
        words, means, counts = [w for w, k in zip(words, keep) if k], means[keep], counts[keep]
    hidden: list[str] = []
    if hide:
        if hide >= len(words):
            raise UserError(f"pixie.hide (--hide) = {hide}, but there are only {len(words)} visual words (vocabulary "
                            f"words with an encoded image; at least one must stay visible): set pixie.hide below {len(words)}")
        hidden = sorted(np.random.default_rng(seed).choice(np.array(words, dtype=object), hide, replace=False))
        keep = ~np.isin(np.array(words, dtype=object), hidden)
        words, means, counts = [w for w, k in zip(words, keep) if k], means[keep], counts[keep]
    attrs = {"kind": "pixie_word_features", "source_features": str(features_h5),
             "word_images": str(word_images_tsv), "scaling": scale, "n_hidden": len(hidden), "hide_seed": seed,
             "n_words_with_images": n_with_images, "vocab": str(vocab_tsv) if vocab_tsv else "",
             "n_excluded_images": n_excluded}
    if scale == "minmax":
        means, lo, hi = minmax_scale(means)
        attrs.update(scale_min=lo.tolist(), scale_max=hi.tolist())
    write_features(out_h5, words, means, attrs, extra={"counts": counts})
    if hidden_out:
        with atomic_path(hidden_out) as tmp:
            tmp.write_text("".join(w + "\n" for w in hidden), encoding="utf-8")
    log.info("pixie features -> %s: %d words x %d dims (%d hidden, scaling %s)", out_h5, len(words),
             means.shape[1], len(hidden), scale)
    return {"words": len(words), "dim": int(means.shape[1]), "hidden": hidden}


# ---------------------------------------------------------------------------------------------
# train


def align_visual(words: list[str], visual_h5) -> tuple[np.ndarray, np.ndarray, dict]:
    """(features (V, k) with zero rows for words without features, has_visual (V,), attrs)."""
    ids, feats, attrs = read_feature_matrix(visual_h5, "visual features")
    index = pd.Index(words)
    if not index.is_unique:
        raise UserError(f"duplicate words in the vocabulary / vectors (e.g. {index[index.duplicated()][0]!r})")
    rows = index.get_indexer(ids)
    ok = rows >= 0
    if not ok.any():
        raise UserError(f"no word of {visual_h5} ({len(ids)} words) is in the vocabulary ({len(words)} words)")
    out = np.zeros((len(words), feats.shape[1]), np.float32)
    out[rows[ok]] = feats[ok]
    mask = np.zeros(len(words), bool)
    mask[rows[ok]] = True
    return out, mask, attrs


def text_inputs(corpus, vocab_tsv):
    """(words, counts, corpus token ids) of a vocabulary TSV and a tokenized corpus, checked."""
    if not Path(vocab_tsv).is_file():
        raise UserError(f"vocabulary not found: {vocab_tsv}")
    vocab = load_vocab(vocab_tsv)
    if vocab.empty:
        raise UserError(f"{vocab_tsv}: the vocabulary is empty")
    words = vocab["word"].astype(str).tolist()
    enc = corpus_ids(corpus, words)
    if len(enc.tokens) < 2:
        raise UserError(f"{corpus}: fewer than 2 in-vocabulary tokens")
    return words, vocab["count"].to_numpy(np.float64), enc


def check_settings(*conditions) -> None:
    """A UserError with the message of the first ``(ok, message)`` that is not ok."""
    for ok, msg in conditions:
        if not ok:
            raise UserError(msg)


def stage_device(device: str) -> torch.device:
    """The torch device of ``pixie.device`` (auto, cpu, cuda; :func:`groundwords.devices.resolve_device`)."""
    return resolve_device(device, "pixie.device")


def visual_inputs(words: list[str], visual_h5) -> tuple[np.ndarray, np.ndarray, dict]:
    """:func:`align_visual` (None: no features, the SGNS baseline), warning about features outside [0, 1]."""
    if visual_h5 is None:  # plain SGNS, trained exactly as PIXIE is (same pairs, optimiser, seed)
        return np.zeros((len(words), 0), np.float32), np.zeros(len(words), bool), {}
    feats, mask, vattrs = align_visual(words, visual_h5)
    if feats[mask].min() < 0 or feats[mask].max() > 1:
        log.warning("%s: features outside [0, 1]; the VAE's sigmoid decoder means cannot fit them "
                    "(make them with 'pixie features --scale minmax')", visual_h5)
    return feats, mask, vattrs


def build_model(n_words: int, counts, feats, mask, centres, *, visual: bool, dim, negatives, J, hidden,
                vae_weight, min_var, vae_weighting, optimizer, seed, vae_rows: str = "batch") -> SGNS:
    """SGNS (``visual`` False) or PIXIE, initialised from the global torch RNG seeded with ``seed``."""
    torch.manual_seed(seed)  # SGNS's embedding initialisation uses the global RNG
    sparse = optimizer == "sparse_adam"
    if not visual:
        return SGNS(n_words, dim, counts=counts, negatives=negatives, sparse=sparse, seed=seed)
    return PIXIE(n_words, dim, counts=counts, visual_features=torch.from_numpy(feats),
                 has_visual=torch.from_numpy(mask), negatives=negatives, J=J, hidden=hidden,
                 vae_weight=vae_weight, min_var=min_var, vae_weighting=vae_weighting, vae_rows=vae_rows,
                 pairs_per_word=np.bincount(centres, minlength=n_words), sparse=sparse, seed=seed)


def _check_train(dim, window, negatives, epochs, batch_size, lr, J, hidden, vae_weight, min_var, sample, optimizer,
                 vae_weighting, vae_rows) -> None:
    check_settings((dim >= 1, "dim must be >= 1"), (window >= 1, "window must be >= 1"),
                   (negatives >= 1, "negatives must be >= 1"), (epochs >= 1, "epochs must be >= 1"),
                   (batch_size >= 1, "batch size must be >= 1"), (lr > 0, "lr must be > 0"),
                   (J >= 1, "J must be >= 1"), (hidden >= 1, "hidden must be >= 1"),
                   (vae_weight >= 0, "vae weight must be >= 0"), (0 < min_var < 1, "min var must be in (0, 1)"),
                   (sample >= 0, "sample must be >= 0"),
                   (optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
                   (vae_weighting in VAE_WEIGHTINGS, f"vae weighting must be one of {', '.join(VAE_WEIGHTINGS)}"),
                   (vae_rows in VAE_ROWS, f"vae rows must be one of {', '.join(VAE_ROWS)}"))


def train(corpus, vocab_tsv, visual_h5, out_dir, *, dim: int, window: int, negatives: int,
          sample: float, epochs: int, batch_size: int, lr: float, J: int = 1,
          hidden: int = 500, vae_weight: float = 1.0, min_var: float = MIN_VAR, vae_weighting: str = "per_word",
          vae_rows: str = "batch", optimizer: str = "adam", seed: int = 0, threads: int | None = 1, progress: bool = True,
          checkpoint_seconds: float | None = None, device: str = "cpu") -> dict:
    """Train PIXIE (or, without ``visual_h5``, plain SGNS) and write its outputs to ``out_dir``.

    ``checkpoint_seconds``: None, no checkpoint; else resume from / save ``out_dir/checkpoint.pt``
    (see :func:`groundwords.studies.wield.stage.train`). ``device`` (``pixie.device``): auto, cpu or cuda."""
    _check_train(dim, window, negatives, epochs, batch_size, lr, J, hidden, vae_weight, min_var, sample, optimizer,
                 vae_weighting, vae_rows)
    dev = stage_device(device)
    words, counts, enc = text_inputs(corpus, vocab_tsv)
    feats, mask, vattrs = visual_inputs(words, visual_h5)
    keep = keep_probabilities(counts, sample) if sample > 0 else None
    c, x = skipgram_pairs(enc.tokens, enc.offsets, window, keep_prob=keep, rng=seed)
    if len(c) == 0:
        raise UserError(f"{corpus}: no skip-gram pairs (sentences too short?)")
    log.info("pixie: %d tokens, vocabulary %d (%d with visual features), %d pairs, on %s",
             len(enc.tokens), len(words), int(mask.sum()), len(c), dev)
    hyper = {"dim": dim, "window": window, "negatives": negatives, "sample": sample,
             "epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer, "J": J,
             "hidden": hidden, "vae_weight": vae_weight, "min_var": min_var,
             "vae_weighting": vae_weighting, "vae_rows": vae_rows, "seed": seed}
    with torch_settings(threads, dev):
        model = build_model(len(words), counts, feats, mask, c, visual=visual_h5 is not None, dim=dim,
                            negatives=negatives, J=J, hidden=hidden, vae_weight=vae_weight, min_var=min_var,
                            vae_weighting=vae_weighting, vae_rows=vae_rows, optimizer=optimizer, seed=seed).to(dev)
        ckpt = stage_checkpoint(out_dir, {"stage": "pixie train", **hyper, "inputs": [
            file_identity(p) for p in (corpus, vocab_tsv, visual_h5)]}, checkpoint_seconds, dev)
        t0 = time.perf_counter()
        data = {"centre": torch.from_numpy(c).to(dev), "context": torch.from_numpy(x).to(dev)}
        history = fit(model, data, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, seed=seed,
                      words_per_epoch=len(enc.tokens), progress=progress, checkpoint=ckpt,
                      manual_grads=model.has_manual_grads)
        seconds = time.perf_counter() - t0
        used_threads = torch.get_num_threads()
        plus = model.word_vectors().cpu().numpy()
        concat = model.concat_vectors().cpu().numpy() if visual_h5 is not None else None
    info = {
        "model": "pixie" if visual_h5 is not None else "sgns",
        "hyperparameters": hyper,
        "inputs": {"corpus": str(corpus), "vocab": str(vocab_tsv), "visual": str(visual_h5) if visual_h5 else None},
        "visual_scaling": vattrs.get("scaling"), "vocab_size": len(words), "visual_dim": int(feats.shape[1]),
        "n_visual_words": int(mask.sum()), "n_tokens": int(len(enc.tokens)), "n_oov_dropped": enc.n_oov,
        "n_pairs": int(len(c)), "train_seconds": seconds, "history": history,
        "final_loss": history[-1].get("total"), "torch_version": torch.__version__, "threads": used_threads,
        "device": str(dev),
        "outputs": ({"vectors.txt": "PIXIE+ (eq. 10)", "concat_vectors.txt": "PIXIE⊕ (eq. 11)"}
                    if visual_h5 is not None else {"vectors.txt": "SGNS word vectors"}),
    }
    write_train_outputs(Path(out_dir), words, plus, concat, history, info)
    if ckpt is not None:
        ckpt.remove()
    return info


def write_train_outputs(out_dir: Path, words: list[str], plus: np.ndarray, concat: np.ndarray | None,
                        history: list[dict], info: dict) -> None:
    """PIXIE⊕'s ``concat_vectors.txt`` (``concat``; None: SGNS), then :func:`groundwords.training.write_outputs`
    of the PIXIE+ (or SGNS) vectors ``plus``; refuses non-finite vectors first."""
    check_finite("PIXIE" if concat is not None else "SGNS", plus, *([] if concat is None else [concat]))
    out_dir.mkdir(parents=True, exist_ok=True)
    if concat is not None:
        write_word2vec_text(out_dir / "concat_vectors.txt", words, concat)
    write_outputs(out_dir, words, plus, history, info)
    if concat is None:
        log.info("wrote %s: %d x %d SGNS vectors", out_dir, *plus.shape)
    else:
        log.info("wrote %s: %d x %d PIXIE+ vectors, %d x %d PIXIE⊕", out_dir, *plus.shape, *concat.shape)


# ---------------------------------------------------------------------------------------------
# CLI


def add_skipgram_args(p: argparse.ArgumentParser) -> None:
    """The corpus and skip-gram options of every model trained on text pairs (PIXIE, SGNS, V-SGNS):
    ``--config`` (the rule's ``pixie`` settings as JSON) and one option per ``pixie.text`` key,
    ``--seed``, ``--threads`` and ``--device``; their defaults are the schema's (:func:`pixie_settings`)."""
    p.add_argument("--corpus", required=True, help="tokenized corpus (python -m groundwords.text.corpora)")
    p.add_argument("--vocab", required=True, help="vocabulary TSV (word, count)")
    p.add_argument("--out-dir", required=True)
    add_config_argument(p, "pixie")
    add_section_arguments(p, "pixie.text")
    add_section_arguments(p, "pixie", only=("seed", "threads", "device"))
    p.add_argument("--no-progress", action="store_true")


def pixie_settings(args: argparse.Namespace, *parts: str, rename: dict[str, str] | None = None) -> dict:
    """The ``pixie`` settings a stage uses (``parts``, e.g. text, model; always seed, threads and device):
    ``--config`` JSON and the options given, over the schema's defaults."""
    return stage_settings(args, "pixie", only=(*parts, "seed", "threads", "device"), rename=rename)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m groundwords.studies.pixie.stage", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    f = sub.add_parser("features", help="per-word mean image features, min-max scaled to [0, 1]")
    f.add_argument("--word-images", required=True, help="TSV word, image_id, path, split")
    f.add_argument("--features", required=True, help="image encodings HDF5 (ids = image ids)")
    f.add_argument("--out", required=True, help="per-word features HDF5 to write (ids = words)")
    f.add_argument("--vocab", help="keep only the words of this vocabulary TSV (before --hide draws)")
    f.add_argument("--exclude-split", help="a 'retrieval split' table: its validation/test images are not averaged")
    f.add_argument("--hide", type=int, default=0, help="withhold N random visual words (Table 3; the rule "
                                                       "passes pixie.hide for the hidden part, 0 for all)")
    f.add_argument("--hidden-out", help="file for the withheld words, one per line")
    f.add_argument("--scale", choices=SCALINGS, default="minmax")
    add_config_argument(f, "pixie")
    add_section_arguments(f, "pixie", only=("seed",))

    t = sub.add_parser("train", help="train PIXIE (SGNS + VAE over visual features) with Adam")
    add_skipgram_args(t)
    t.add_argument("--visual", help="per-word features HDF5 ('pixie features'); without it: plain SGNS, "
                                    "trained exactly as PIXIE (the paper's SGNS baseline)")
    add_section_arguments(t, "pixie.model")
    t.add_argument("--optimizer", choices=OPTIMIZERS, default="adam",
                   help="adam: dense Adam over everything (the paper); sparse_adam: SparseAdam for the "
                        "embedding tables (only the rows of a batch move; much faster on large vocabularies)")
    add_section_arguments(t, "training")

    a = p.parse_args(argv)
    setup_logging()
    if a.cmd == "features":
        s = stage_settings(a, "pixie", only=("seed",))
        make_features(a.word_images, a.features, a.out, hide=a.hide, hidden_out=a.hidden_out, seed=s["seed"],
                      scale=a.scale, vocab_tsv=a.vocab, exclude_split=a.exclude_split)
    else:
        s = pixie_settings(a, "text", "model")
        train(a.corpus, a.vocab, a.visual, a.out_dir, **s["text"], **s["model"], optimizer=a.optimizer,
              seed=s["seed"], threads=s["threads"], progress=not a.no_progress,
              checkpoint_seconds=training_settings(a)["checkpoint_seconds"], device=s["device"])


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
