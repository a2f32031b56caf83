"""The IESG stage: skip-gram pretraining, IESG + L2-baseline training, image-word matching.

Reproduces Luo, "Exploration on Grounded Word Embedding: Matching Words and Images with
Image-Enhanced Skip-Gram Model" (Tables 1-3, Figure 3). Three sub-commands::

    python -m groundwords.studies.iesg.stage pretrain --corpus F [--vocab V | --min-count N] --out-dir D ...
    python -m groundwords.studies.iesg.stage train --sgns D --corpus F --word-images T --features H5 --out-dir D2 ...
    python -m groundwords.studies.iesg.stage evaluate --model-dir D2 --word-images T --features H5 --out-tsv O ...

``pretrain``
    SGNS (:mod:`groundwords.models.sgns`) on a tokenized corpus (:mod:`groundwords.text.corpora`).
    Defaults are the word2vec tool's skip-gram defaults (dim 100, window 5, 5 negatives,
    sample 1e-3, 5 epochs, α 0.025 decayed linearly; the paper pretrains with that tool).
    Writes ``vectors.npy``, ``vocab.txt``, ``vectors.txt``, ``loss.csv``, ``train.json``
    (like :func:`groundwords.training.write_outputs`) plus ``context_vectors.npy`` (the output
    table) and ``vocab.tsv`` (word, count: the noise distribution and Figure 3's term
    frequencies). Without ``--vocab`` the vocabulary is built from the corpus (``--min-count``).
``train``
    reads the SGNS model, the word-image table (:mod:`groundwords.grounding.word_images`) and the image
    encodings (HDF5 from :mod:`groundwords.data.encode`, ids = image ids). Only the **train** split
    is used; pairs whose word is out of the SGNS vocabulary or whose image has no encoding are
    dropped (counted in ``train.json``). Image encodings are L2-normalised first
    (``--image-norm l2``, not in the paper: it keeps Momentum SGD at lr 0.01 stable for any
    encoder's feature scale; ``none`` keeps them raw; ``center_l2`` subtracts the training
    images' mean first, saved as ``image_mean.npy`` for ``evaluate``: pooled CNN features are
    non-negative and share one dominant direction, which a linear map trained by SGD from zero
    learns first, so without centring every image projects to nearly the same vector; see
    ``docs/fidelity.md``). The same features feed the L2 baseline and IESG. Then

    * the **L2 baseline**: ``W_p`` onto the fixed SGNS vectors by Momentum SGD with IESG's lr,
      momentum, batch size and number of steps (``--l2-fit sgd``,
      :func:`~groundwords.studies.iesg.fitting.fit_l2_sgd`), or by exact least squares (``--l2-fit lstsq``,
      :func:`~groundwords.studies.iesg.fitting.fit_l2_projection`, optionally ridge);
    * **IESG** (:class:`~groundwords.models.iesg.IESG`): the corpus windows (fixed window 5,
      no subsampling) centred on words with a training image, alternating eq. 1 / eq. 2
      updates with Momentum SGD (lr 0.01, momentum 0.9, batch 16, λ 5, margin 1, K = 5 noise
      words inside the hinge: see :mod:`groundwords.models.iesg` for this reading of λ).
      ``--max-examples`` caps the number of (centre, context) pairs (seeded sample).

    Writes ``projection_l2.npy``, ``projection_iesg.npy`` (k × d), the IESG word vectors
    (``vectors.npy``, ``vocab.txt``, ``vectors.txt``), ``loss.csv`` (epoch, word, image, total,
    seconds, examples_per_s) and ``train.json`` (last: it marks a finished run).
``evaluate``
    bidirectional matching (:mod:`groundwords.evaluation.matching`) on one split (default ``test``):
    the L2 baseline scores with the SGNS vectors (``train.json`` names the SGNS directory;
    ``--sgns`` overrides it), IESG with its own. Both models see the same candidate sets.
    Writes a TSV ``model, direction, split, scoring, pairs_used, pairs_total, coverage,
    n_candidates, p_at_1, p_at_5, p_at_10`` (P@k in [0, 1]) and optionally P@1 per
    every pair's rank (``--ranks-tsv``; Figure 3's P@1 per term-frequency bin is made from them by
    :mod:`groundwords.studies.wield.tables`).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from groundwords.checkpoints import file_identity, stage_checkpoint
from groundwords.cli import UserError, log, run_cli, setup_logging
from groundwords.config import add_config_argument, add_section_arguments, stage_settings
from groundwords.devices import resolve_device
from groundwords.evaluation import matching as retrieval
from groundwords.files import atomic_path, write_json, write_tsv
from groundwords.models.iesg import IESG
from groundwords.studies.iesg.fitting import fit_alternating, fit_l2_projection, fit_l2_sgd, word_image_index
from groundwords.studies.iesg.inputs import (
    corpus_examples,
    load_sgns,
    training_pairs,
)
from groundwords.studies.iesg.matching import (
    evaluate,
)
from groundwords.text.corpora import corpus_ids, iter_corpus
from groundwords.text.skipgram import DEFAULT_ENGINE as SGNS_DEFAULT_ENGINE
from groundwords.text.skipgram import train_sgns
from groundwords.text.vocab import load_vocab, vocab_from_counts
from groundwords.training import (
    check_finite,
    torch_settings,
    training_settings,
    write_outputs,
    write_word2vec_text,
)

L2_FITS = ("sgd", "lstsq")


def _check(conditions) -> None:
    for ok, msg in conditions:
        if not ok:
            raise UserError(msg)


def stage_device(device: str, engine: str | None = None) -> torch.device:
    """The torch device of ``iesg.device`` (:func:`groundwords.devices.resolve_device`). ``engine``
    (pretrain): the numba engine is CPU-only, so ``cuda`` with it is an error and ``auto`` keeps it
    on the CPU."""
    if engine == "numba":
        if device not in ("auto", "cpu"):
            raise UserError(f"iesg.device = {device}, but iesg.sgns.engine numba runs on the CPU only: "
                            "set iesg.sgns.engine: torch to pretrain on the GPU (or iesg.device: auto or cpu)")
        return torch.device("cpu")
    return resolve_device(device, "iesg.device")


# ---------------------------------------------------------------------------------------------
# pretrain


def pretrain_vocab(corpus, vocab_tsv=None, min_count: int = 5) -> pd.DataFrame:
    """The vocabulary TSV ``vocab_tsv``, or (None) one built from the corpus with ``min_count``."""
    if vocab_tsv is not None:
        vocab = load_vocab(vocab_tsv)
    else:
        counts: Counter = Counter()
        for toks in iter_corpus(corpus):
            counts.update(toks)
        vocab = vocab_from_counts(counts, min_count)
    if vocab.empty:
        raise UserError("the vocabulary is empty (lower --min-count or use a larger corpus)")
    return vocab


def pretrain(corpus, out_dir, *, vocab_tsv=None, min_count: int = 5, dim: int = 100, window: int = 5,
             negatives: int = 5, sample: float = 1e-3, epochs: int = 5, batch_size: int = 1024,
             alpha: float = 0.025, shrink: bool = True, seed: int = 0,
             threads: int | None = 1, progress: bool = True, engine: str = SGNS_DEFAULT_ENGINE,
             checkpoint_seconds: float | None = None, device: str = "cpu") -> dict:
    """Train SGNS on a tokenized corpus and write its outputs (see the module docstring).

    ``engine``: "numba" (the compiled word2vec kernel, ``threads`` Hogwild threads; deterministic
    with one thread only) or "torch" (:func:`groundwords.training.fit`); see
    :func:`groundwords.text.skipgram.train_sgns`. ``train.json`` records ``engine``, ``threads``,
    ``deterministic`` and ``device``. ``checkpoint_seconds``: None, no checkpoint; else resume
    from / save ``out_dir/checkpoint.pt`` (:class:`groundwords.checkpoints.Checkpoint`; either engine). ``device``
    (``iesg.device``): auto, cpu or cuda (torch engine; see :func:`stage_device`)."""
    _check([(dim >= 1, "dim must be >= 1"), (window >= 1, "window must be >= 1"),
            (negatives >= 1, "negatives must be >= 1"), (epochs >= 1, "epochs must be >= 1"),
            (batch_size >= 1, "batch size must be >= 1"), (alpha > 0, "alpha must be > 0"),
            (sample >= 0, "sample must be >= 0")])
    dev = stage_device(device, engine)
    vocab = pretrain_vocab(corpus, vocab_tsv, min_count)
    words = vocab["word"].astype(str).tolist()
    enc = corpus_ids(corpus, words)
    if len(enc.tokens) < 2:
        raise UserError(f"{corpus}: fewer than 2 in-vocabulary tokens")
    log.info("sgns: %d sentences, %d tokens (%d OOV dropped), vocabulary %d on %s",
             enc.n_captions, len(enc.tokens), enc.n_oov, len(words), dev)
    hyper = {"dim": dim, "window": window, "negatives": negatives, "sample": sample, "epochs": epochs,
             "batch_size": batch_size, "alpha": alpha, "shrink": shrink, "seed": seed}
    with torch_settings(threads, dev):
        t0 = time.perf_counter()
        ckpt = stage_checkpoint(out_dir, {"stage": "iesg pretrain", **hyper, "engine": engine, "min_count": min_count,
                                          "inputs": [file_identity(corpus), file_identity(vocab_tsv)]},
                                checkpoint_seconds, dev)
        model, history, stats = train_sgns(enc.tokens, enc.offsets, vocab["count"].to_numpy(np.float64), **hyper,
                                           progress=progress, engine=engine, threads=threads or 1,
                                           checkpoint=ckpt, device=dev)
        seconds = time.perf_counter() - t0
        used_threads = stats.pop("threads")
    vectors = model.word_vectors().cpu().numpy()
    check_finite("SGNS", vectors, lower="--alpha")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "context_vectors.npy", suffix=".npy") as tmp:
        np.save(tmp, model.context_vectors().cpu().numpy())
    write_tsv(vocab[["word", "count"]], out_dir / "vocab.tsv")
    info = {
        "model": "sgns",
        "hyperparameters": {**hyper, "optimizer": "sgd", "min_count": min_count, "engine": engine},
        "inputs": {"corpus": str(corpus), "vocab": None if vocab_tsv is None else str(vocab_tsv)},
        "vocab_size": len(words), "n_sentences": enc.n_captions, "n_tokens": int(len(enc.tokens)),
        "n_oov_dropped": enc.n_oov, **stats, "train_seconds": seconds,
        "pairs_per_s": stats["n_pairs"] / seconds if seconds > 0 else None,
        "final_loss": history[-1].get("total"), "torch_version": torch.__version__, "threads": used_threads,
        "device": str(dev),
    }
    write_outputs(out_dir, words, vectors, history, info)
    log.info("wrote %s: %d x %d SGNS vectors (%.0f pairs/s)", out_dir, *vectors.shape, info["pairs_per_s"] or 0)
    return info


# ---------------------------------------------------------------------------------------------
# train


def fit_l2_baseline(X: np.ndarray, Y: np.ndarray, *, l2_fit: str, l2_ridge: float, steps: int, batch_size: int,
                    lr: float, momentum: float, seed: int, threads, dev: torch.device) -> tuple[np.ndarray, float]:
    """The L2-distance baseline's ``W_p`` onto the fixed SGNS vectors ``Y``, by SGD with IESG's optimiser
    and step count (the paper's training) or exactly (lstsq); returns ``(W_p, train MSE)``."""
    if l2_fit == "sgd":
        with torch_settings(threads, dev):
            W, _ = fit_l2_sgd(X, Y, steps=max(steps, 1), batch_size=batch_size, lr=lr, momentum=momentum,
                              seed=seed, device=dev)
    else:
        W = fit_l2_projection(X, Y, ridge=l2_ridge)
    return W, float(np.mean((X @ W - Y) ** 2))


def context_vectors(sgns_path: Path, context_table: str) -> np.ndarray | None:
    """SGNS's output vectors for ``context_table`` output (None: shared)."""
    if context_table != "output":
        return None
    if not (sgns_path / "context_vectors.npy").is_file():
        raise UserError(f"{sgns_path}: no context_vectors.npy for --context-table output")
    return np.load(sgns_path / "context_vectors.npy")


def check_train_settings(*, window, negatives, epochs, batch_size, lr, momentum, lam, l2_ridge, l2_fit,
                         context_table) -> None:
    """A UserError for the first of :func:`train`'s settings out of its range."""
    _check([(window >= 1, "window must be >= 1"), (negatives >= 1, "negatives must be >= 1"),
            (epochs >= 1, "epochs must be >= 1"), (batch_size >= 1, "batch size must be >= 1"),
            (lr > 0, "lr must be > 0"), (0 <= momentum < 1, "momentum must be in [0, 1)"),
            (lam > 0, "lambda must be > 0"), (l2_ridge >= 0, "l2 ridge must be >= 0"),
            (l2_fit in L2_FITS, f"l2 fit must be one of {', '.join(L2_FITS)}"),
            (context_table in ("shared", "output"), "context table must be 'shared' or 'output'")])


def write_train_outputs(out_dir: Path, words: list[str], arrays: dict[str, np.ndarray], history: list[dict],
                        info: dict) -> None:
    """The ``.npy`` arrays, ``vocab.txt``, ``vectors.txt`` (``arrays["vectors.npy"]``), ``loss.csv``,
    then ``train.json`` (``info``; last: its presence marks a finished run)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        with atomic_path(out_dir / name, suffix=".npy") as tmp:
            np.save(tmp, arr)
    with atomic_path(out_dir / "vocab.txt") as tmp:
        tmp.write_text("".join(w + "\n" for w in words), encoding="utf-8")
    write_word2vec_text(out_dir / "vectors.txt", words, arrays["vectors.npy"])
    loss = pd.DataFrame(history).reindex(columns=["epoch", "word", "image", "total", "seconds", "examples_per_s"])
    with atomic_path(out_dir / "loss.csv") as tmp:
        loss.to_csv(tmp, index=False, lineterminator="\n", na_rep="nan")
    write_json(info, out_dir / "train.json")
    log.info("wrote %s (IESG final losses: word %.4f, image %.4f; L2 baseline train MSE %.4g)",
             out_dir, info["final_loss"]["word"], info["final_loss"]["image"], info["l2_train_mse"])


def train(sgns_dir, corpus, word_images_tsv, features_h5, out_dir, *, window: int = 5, negatives: int = 5,
          margin: float = 1.0, lam: float = 5.0, lr: float = 0.01, momentum: float = 0.9, batch_size: int = 16,
          epochs: int = 1, max_examples: int = 0, image_norm: str = "l2", context_table: str = "shared",
          image_updates_words: bool = False, l2_fit: str = "sgd", l2_ridge: float = 0.0, seed: int = 0,
          threads: int | None = 1, progress: bool = True, checkpoint_seconds: float | None = None,
          device: str = "cpu") -> dict:
    """Train the L2 baseline and IESG and write their outputs (see the module docstring).

    ``checkpoint_seconds``: None, no checkpoint; else resume from / save ``out_dir/checkpoint.pt``
    (:class:`groundwords.checkpoints.Checkpoint`), removed once ``train.json`` is written.
    ``device`` (``iesg.device``): auto, cpu or cuda; both models train there."""
    check_train_settings(window=window, negatives=negatives, epochs=epochs, batch_size=batch_size, lr=lr,
                         momentum=momentum, lam=lam, l2_ridge=l2_ridge, l2_fit=l2_fit, context_table=context_table)
    dev = stage_device(device)
    words, E, counts, sgns_path = load_sgns(sgns_dir)
    w_ids, rows, feats, image_mean, stats = training_pairs(word_images_tsv, features_h5, words, image_norm)
    offsets, wi_rows = word_image_index(w_ids, rows, len(words))
    data = corpus_examples(corpus, words, offsets, window, max_examples, seed, stats)
    W_l2, l2_mse = fit_l2_baseline(feats[rows], E[w_ids], l2_fit=l2_fit, l2_ridge=l2_ridge, batch_size=batch_size,
                                   steps=epochs * -(-len(data["centre"]) // batch_size), lr=lr, momentum=momentum,
                                   seed=seed, threads=threads, dev=dev)
    log.info("iesg: %d train pairs (%d images, %d words), %d corpus examples, on %s", stats["train_pairs_used"],
             stats["train_images_used"], stats["train_words_used"], stats["n_examples"], dev)
    hyper = {"window": window, "negatives": negatives, "margin": margin, "lambda": lam, "lr": lr,
             "momentum": momentum, "batch_size": batch_size, "epochs": epochs, "max_examples": max_examples,
             "image_norm": image_norm, "context_table": context_table, "image_updates_words": image_updates_words}
    with torch_settings(threads, dev):
        model = IESG(E, feats, offsets, wi_rows, counts=counts, margin=margin, lam=lam, negatives=negatives,
                     context_vectors=context_vectors(sgns_path, context_table),
                     image_updates_words=image_updates_words, seed=seed).to(dev)
        ckpt = stage_checkpoint(out_dir, {
            "stage": "iesg train", **{k: v for k, v in hyper.items() if k != "lambda"}, "lam": lam, "seed": seed,
            "inputs": [file_identity(f) for f in (sgns_path / "vectors.npy", corpus, word_images_tsv, features_h5)]},
            checkpoint_seconds, dev)
        t0 = time.perf_counter()
        history = fit_alternating(model, {k: v.to(dev) for k, v in data.items()}, epochs=epochs,
                                  batch_size=batch_size, lr=lr, momentum=momentum, seed=seed, progress=progress,
                                  checkpoint=ckpt)
        seconds = time.perf_counter() - t0
        used_threads = torch.get_num_threads()
    vectors, W_iesg = model.word_vectors().cpu().numpy(), model.projection().cpu().numpy()
    check_finite("IESG", vectors, W_iesg)
    info = {
        "model": "iesg",
        "hyperparameters": {**hyper, "l2_fit": l2_fit, "l2_ridge": l2_ridge, "seed": seed},
        "inputs": {"sgns": str(sgns_path), "corpus": str(corpus), "word_images": str(word_images_tsv),
                   "features": str(features_h5)},
        "vocab_size": len(words), "dim": int(E.shape[1]), "image_dim": int(feats.shape[1]), **stats,
        "l2_train_mse": l2_mse, "train_seconds": seconds,
        "final_loss": {k: history[-1][k] for k in ("word", "image", "total")},
        "torch_version": torch.__version__, "threads": used_threads, "device": str(dev),
    }
    write_train_outputs(Path(out_dir), words, {"projection_l2.npy": W_l2, "projection_iesg.npy": W_iesg,
                                               "vectors.npy": vectors.astype(np.float32),
                                               "image_mean.npy": image_mean.astype(np.float32)}, history, info)
    if ckpt is not None:
        ckpt.remove()
    return info


# ---------------------------------------------------------------------------------------------
# CLI (evaluate: groundwords.studies.iesg.matching)


def build_parser() -> argparse.ArgumentParser:
    """The CLI: every iesg.* setting arrives as --config JSON (the rule's part of the iesg section) or
    as its own --key-name option; the schema's default fills in the rest (no default is repeated here)."""
    p = argparse.ArgumentParser(prog="python -m groundwords.studies.iesg.stage", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    a = sub.add_parser("pretrain", help="skip-gram with negative sampling on a tokenized corpus")
    a.add_argument("--corpus", required=True, help="tokenized corpus (python -m groundwords.text.corpora)")
    a.add_argument("--vocab", help="vocabulary TSV (word, count); default: built from the corpus (iesg.min_count)")
    a.add_argument("--out-dir", required=True)
    add_section_arguments(a, "iesg.sgns")
    add_section_arguments(a, "iesg", only=("min_count",))
    a.add_argument("--batch-size", type=int, default=1024, help="pairs per batch (not a config key)")
    a.add_argument("--no-shrink", action="store_true", help="fixed windows (no word2vec reduced window)")
    add_section_arguments(a, "training")  # --checkpoint-seconds

    t = sub.add_parser("train", help="IESG and the L2-distance baseline")
    t.add_argument("--sgns", required=True, help="'pretrain' output directory")
    t.add_argument("--corpus", required=True, help="tokenized corpus (the word term's windows)")
    t.add_argument("--word-images", required=True, help="TSV word, image_id, path, split")
    t.add_argument("--features", required=True, help="image encodings HDF5 (ids = image ids)")
    t.add_argument("--out-dir", required=True)
    add_section_arguments(t, "iesg.model")
    add_section_arguments(t, "training")  # --checkpoint-seconds

    for q in (a, t):
        add_config_argument(q, "iesg")
        add_section_arguments(q, "iesg", only=("seed", "threads", "device"))
        q.add_argument("--no-progress", action="store_true")

    e = sub.add_parser("evaluate", help="image-word matching P@1/5/10, L2 baseline and IESG")
    e.add_argument("--model-dir", required=True, help="'train' output directory")
    e.add_argument("--word-images", required=True)
    e.add_argument("--features", required=True)
    e.add_argument("--out-tsv", required=True)
    e.add_argument("--sgns", help="SGNS directory (default: the one recorded in train.json)")
    e.add_argument("--split", choices=("train", "validation", "test"), default="test")
    add_config_argument(e, "iesg")
    add_section_arguments(e, "iesg", only=("candidates", "seed"))
    e.add_argument("--scoring", choices=retrieval.SCORINGS, default="dot")
    e.add_argument("--image-pool", choices=("split", "all"), default="split",
                   help="word->image candidates from the evaluated split's images, or from all images")
    e.add_argument("--ranks-tsv", help="also write the rank of every evaluated pair")
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    setup_logging()
    if args.cmd == "pretrain":
        s = stage_settings(args, "iesg", only=("sgns", "min_count", "seed", "threads", "device"))
        pretrain(args.corpus, args.out_dir, vocab_tsv=args.vocab, min_count=s["min_count"], **s["sgns"],
                 batch_size=args.batch_size, shrink=not args.no_shrink, seed=s["seed"], threads=s["threads"],
                 progress=not args.no_progress, checkpoint_seconds=training_settings(args)["checkpoint_seconds"],
                 device=s["device"])
    elif args.cmd == "train":
        s = stage_settings(args, "iesg", only=("model", "seed", "threads", "device"))
        train(args.sgns, args.corpus, args.word_images, args.features, args.out_dir, **s["model"],
              seed=s["seed"], threads=s["threads"], progress=not args.no_progress,
              checkpoint_seconds=training_settings(args)["checkpoint_seconds"], device=s["device"])
    else:
        s = stage_settings(args, "iesg", only=("candidates", "seed"))
        evaluate(args.model_dir, args.word_images, args.features, args.out_tsv, sgns_dir=args.sgns,
                 split=args.split, n_negatives=s["candidates"], seed=s["seed"], scoring=args.scoring,
                 image_pool=args.image_pool, ranks_tsv=args.ranks_tsv)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
