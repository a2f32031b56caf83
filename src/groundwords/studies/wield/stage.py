"""Train word embeddings (WIELD / vanilla CBOW / image-input CBOW) on captions + images.

Two layers:

* :func:`fit` is the model-agnostic training loop: seeds, per-epoch shuffling with its own
  ``torch.Generator``, batches sliced straight from tensors (no DataLoader, no per-example
  Python), optimiser, optional linear learning-rate decay, per-epoch loss bookkeeping, tqdm
  progress and throughput. Any model following the :mod:`groundwords.models` interface
  (``loss(batch) -> dict``, ``word_vectors()``, ``sparse_parameters()``) can use it.
* :func:`train` is the pipeline stage: read captions / vocabulary / image features, build the
  CBOW examples (:mod:`groundwords.text.captions`), build the model, call :func:`fit` and write
  ``vectors.txt`` (word2vec text format), ``vectors.npy``, ``vocab.txt``, ``loss.csv`` and
  ``train.json`` atomically into ``out_dir``.

Models and controls (``--model``):

* ``wield`` (default; the paper's §3.4): the image is a prediction *target*, weight γ
  (``--gamma``; 0 = vanilla CBOW). ``--image-target caption`` (default): the caption's image;
  ``--image-target word`` (the control proposed in §6.2): the centre word's own word-level
  image encoding, so words of one caption get different targets.
* ``imginput`` (§5.1, Table 1): the image is an *input*, weight λ (``--lam``; 0 = vanilla
  CBOW, bit-identical to ``wield`` with γ = 0). ``--image-input caption`` (default): the
  caption's image; ``--image-input word``: the mean word-level encoding of the context words.
* ``--window`` >= the longest caption (e.g. 1000): every context is the whole rest of the
  caption, the caption co-occurrence baseline of §6.2 (rows compacted, see the corpus module).

``--images`` holds caption image encodings (ids = caption image ids) by default, and
word-level encodings (ids = words) with ``--image-target word`` / ``--image-input word``.
In every mode only captions with a live image are trained on unless ``--train-dead-images``
(for comparability between runs); with a word-keyed file, "live" means status "ok".

Defaults follow the paper: dim 100, window 2, 20 epochs, batch 20, Adam lr 1e-3, full
softmax. Runs are deterministic on CPU for a given seed and thread count.

Throughput ("words/s") counts the corpus positions trained on (the CBOW target words), like
gensim's "effective words"; only the optimisation loop is timed (not reading/tokenising).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from groundwords.cli import UserError, log, run_cli, setup_logging
from groundwords.config import add_config_argument, add_section_arguments, stage_settings
from groundwords.data.manifest import read_captions
from groundwords.files import read_features
from groundwords.models import WIELD, ImageInputCBOW
from groundwords.studies.wield.variants import STAGE_KEYS
from groundwords.text.captions import build_examples, word_rows
from groundwords.text.vocab import load_vocab
from groundwords.training import (
    CHECKPOINT_NAME,
    OPTIMIZERS,
    Checkpoint,
    file_identity,
    finish_run,
    fit,
    torch_settings,
    training_settings,
)

MODELS = ("wield", "imginput")
IMAGE_MODES = ("caption", "word")
LR_SCHEDULES = ("constant", "linear")
ENGINES = ("torch", "numba")


# ---------------------------------------------------------------------------------------------
# Generic training loop


# ---------------------------------------------------------------------------------------------
# Outputs


# ---------------------------------------------------------------------------------------------
# The pipeline stage


def _check_args(gamma, dim, window, epochs, batch_size, lr, objective, negatives, optimizer, lr_schedule):
    checks = [
        (gamma >= 0 and math.isfinite(gamma), f"gamma must be a finite number >= 0 (got {gamma})"),
        (dim >= 1, f"dim must be >= 1 (got {dim})"),
        (window >= 1, f"window must be >= 1 (got {window})"),
        (epochs >= 1, f"epochs must be >= 1 (got {epochs})"),
        (batch_size >= 1, f"batch size must be >= 1 (got {batch_size})"),
        (lr > 0, f"learning rate must be > 0 (got {lr})"),
        (objective in ("softmax", "negative"), f"objective must be 'softmax' or 'negative' (got {objective!r})"),
        (negatives >= 1, f"negatives must be >= 1 (got {negatives})"),
        (optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)} (got {optimizer!r})"),
        (lr_schedule in LR_SCHEDULES, f"lr schedule must be one of {', '.join(LR_SCHEDULES)} (got {lr_schedule!r})"),
    ]
    for ok, msg in checks:
        if not ok:
            raise UserError(msg)


def _check_model_args(model, gamma, lam, image_input, image_target) -> tuple[str | None, str | None]:
    """Validate the model choice; returns (image_input, image_target) with defaults filled in
    for the model that uses them and None for the other."""
    if model not in MODELS:
        raise UserError(f"model must be one of {', '.join(MODELS)} (got {model!r})")
    if not (math.isfinite(lam) and lam >= 0):
        raise UserError(f"lam must be a finite number >= 0 (got {lam})")
    for name, v in (("image input", image_input), ("image target", image_target)):
        if v is not None and v not in IMAGE_MODES:
            raise UserError(f"{name} must be one of {', '.join(IMAGE_MODES)} (got {v!r})")
    if model == "wield":
        if lam != 0:
            raise UserError("--lam applies to --model imginput only (WIELD weights its image loss with --gamma)")
        if image_input is not None:
            raise UserError("--image-input applies to --model imginput only (WIELD: --image-target)")
        return None, image_target or "caption"
    if gamma != 0:
        raise UserError("--gamma applies to --model wield only (imginput weights its image input with --lam)")
    if image_target is not None:
        raise UserError("--image-target applies to --model wield only (imginput: --image-input)")
    return image_input or "caption", None


def _keying_hint(images_by: str, image_ids, words, images_h5) -> str:
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


def _read_inputs(captions_tsv, vocab_tsv, images_h5, image_dim):
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


def _fit_numba(net: WIELD, examples, counts, feats, *, epochs, batch_size, lr, lr_schedule, seed,
               threads) -> list[dict]:
    """Train ``net`` (WIELD, negative sampling) in place with :mod:`groundwords.w2v_fast`."""
    from groundwords import w2v_fast  # numba compiles on first use: only when this engine runs

    syn0 = net.emb.weight.detach().numpy().copy()
    syn1 = net.out.weight.detach().numpy().copy()
    head = net.image_head if net.gamma > 0 else None
    img_w = head.weight.detach().numpy().copy() if head is not None else None
    img_b = head.bias.detach().numpy().copy() if head is not None else None
    history = w2v_fast.train_cbow_arrays(
        syn0, syn1, examples.context, examples.target, examples.pad, counts, negatives=net.negatives,
        epochs=epochs, alpha=lr / batch_size, linear=lr_schedule == "linear", seed=seed, threads=threads,
        gamma=net.gamma, image_row=examples.image_row, image_targets=feats, img_w=img_w, img_b=img_b,
        on_epoch_end=lambda r: log.info("epoch %d/%d: ce=%.4f (%.1fs, %.0f words/s)", r["epoch"], epochs,
                                        r["ce"], r["seconds"], r["words_per_s"]))
    with torch.no_grad():
        net.emb.weight.copy_(torch.from_numpy(syn0))
        net.out.weight.copy_(torch.from_numpy(syn1))
        if head is not None:
            head.weight.copy_(torch.from_numpy(img_w))
            head.bias.copy_(torch.from_numpy(img_b))
    return history


def train(
    captions_tsv,
    vocab_tsv,
    images_h5,
    out_dir,
    *,
    gamma: float = 0.0,
    dim: int = 100,
    window: int = 2,
    epochs: int = 20,
    batch_size: int = 20,
    lr: float = 1e-3,
    optimizer: str = "adam",
    seed: int = 0,
    objective: str = "softmax",
    negatives: int = 5,
    train_dead_images: bool = False,
    threads: int | None = None,
    device: str = "cpu",
    progress: bool = True,
    lr_schedule: str = "constant",
    shared_negatives: int = 1,
    image_dim: int | None = None,
    model: str = "wield",
    lam: float = 0.0,
    image_input: str | None = None,
    image_target: str | None = None,
    engine: str = "torch",
    checkpoint_seconds: float | None = None,
) -> dict:
    """Train WIELD (γ = 0: vanilla CBOW) or ImageInputCBOW and write its outputs to ``out_dir``.

    ``model="wield"``: ``gamma`` and ``image_target`` ("caption" default, or "word").
    ``model="imginput"``: ``lam`` and ``image_input`` ("caption" default, or "word");
    ``gamma`` must stay 0. With a "word" mode ``images_h5`` is keyed by word (module docstring).
    Only captions whose image is alive (status "ok" and present in ``images_h5``; with a
    word-keyed file: status "ok") are used, unless ``train_dead_images`` (then the image loss
    is masked out for the others; an image input is zero for them).
    ``optimizer="sgd"`` / ``"sparse_adam"`` switch the embedding tables to sparse gradients.
    ``shared_negatives=g``: groups of g examples share their noise words (speed; 1 = word2vec).
    ``lr_schedule="linear"``: decay the learning rate linearly to ~0 (word2vec style).
    ``image_dim``: if given, the image targets must have exactly this many dimensions.
    ``threads``: torch intra-op threads (None: torch's default). Torch parallelises every
    small op, so when other processes compete for the cores (e.g. parallel Snakemake jobs)
    more threads than free cores is much *slower* than one thread: give each job its share.
    ``engine="numba"`` (WIELD with ``objective="negative"`` and ``optimizer="sgd"`` on the CPU):
    the same objective and initialisation trained by the compiled kernel of
    :mod:`groundwords.w2v_fast`, one example at a time at rate ``lr / batch_size`` (the torch
    batch mean's per-example rate), examples in corpus order, ``threads`` Hogwild threads
    (deterministic with one thread only). ``"torch"``: :func:`fit`.
    ``checkpoint_seconds`` (torch engine): None, no checkpoint; else keep ``out_dir/checkpoint.pt``
    (:class:`groundwords.training.Checkpoint`, saved at epoch ends and this often within one;
    0: epoch ends only) and resume from it; it is removed once the outputs are written.
    Returns the ``train.json`` record (with ``engine``, ``threads`` and ``deterministic``).
    """
    if engine not in ENGINES:
        raise UserError(f"engine must be one of {', '.join(ENGINES)} (got {engine!r})")
    if engine == "numba" and (model != "wield" or objective != "negative" or optimizer != "sgd"
                              or shared_negatives != 1 or torch.device(device).type != "cpu"):
        raise UserError("engine numba trains WIELD with objective negative, optimizer sgd, shared negatives 1 "
                        f"on the cpu (got model {model}, objective {objective}, optimizer {optimizer}, "
                        f"shared negatives {shared_negatives}, device {device}); use engine torch")
    _check_args(gamma, dim, window, epochs, batch_size, lr, objective, negatives, optimizer, lr_schedule)
    image_input, image_target = _check_model_args(model, gamma, lam, image_input, image_target)
    images_by = "word" if "word" in (image_input, image_target) else "caption"
    if shared_negatives < 1:
        raise UserError(f"shared negatives must be >= 1 (got {shared_negatives})")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device!r} requested but CUDA is not available")
    caps, vocab, image_ids, feats = _read_inputs(captions_tsv, vocab_tsv, images_h5, image_dim)
    words = vocab["word"].astype(str).tolist()
    if gamma > 0 and feats is None:
        raise UserError("gamma > 0 needs image targets (--images)")
    if model == "imginput" and feats is None:
        raise UserError("--model imginput needs image encodings (--images)")
    hint = _keying_hint(images_by, image_ids, words, images_h5)
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

    hyper = {
        "gamma": gamma if model == "wield" else None,
        "lam": lam if model == "imginput" else None,
        "image_input": image_input, "image_target": image_target,
        "dim": dim, "window": window, "epochs": epochs, "batch_size": batch_size,
        "lr": lr, "optimizer": optimizer, "lr_schedule": lr_schedule, "seed": seed,
        "objective": objective, "negatives": negatives if objective == "negative" else None,
        "shared_negatives": shared_negatives if objective == "negative" else None,
        "train_dead_images": train_dead_images,
    }
    ckpt = None
    if checkpoint_seconds is not None and engine == "torch":
        ckpt = Checkpoint(Path(out_dir) / CHECKPOINT_NAME, {
            "stage": "train", "model": model, **hyper, "device": str(device),
            "inputs": [file_identity(f) for f in (captions_tsv, vocab_tsv, images_h5)]}, checkpoint_seconds)
    dev = torch.device(device)
    with torch_settings(threads, dev):
        torch.manual_seed(seed)
        feats_t = torch.from_numpy(feats) if feats is not None else None
        counts = vocab["count"].to_numpy(dtype=np.float64)
        common = dict(objective=objective, negatives=negatives, counts=counts,
                      sparse=optimizer in ("sgd", "sparse_adam"), shared_negatives=shared_negatives, seed=seed)
        if model == "wield":
            net = WIELD(len(words), dim, image_dim=0 if feats is None else feats.shape[1], gamma=gamma,
                        image_targets=feats_t, **common)
        else:
            net = ImageInputCBOW(len(words), dim, image_dim=feats.shape[1], lam=lam, image_input=image_input,
                                 image_features=feats_t, word_rows=word_rows_t, **common)
        net = net.to(dev)
        data = {
            "context": torch.from_numpy(examples.context).to(dev),
            "target": torch.from_numpy(examples.target).to(dev),
        }
        if image_input != "word":  # the "word" input never sees per-example rows
            data["image_row"] = torch.from_numpy(examples.image_row).to(dev)
        t0 = time.perf_counter()
        if engine == "numba":
            used_threads = max(1, int(threads or 1))
            history = _fit_numba(net, examples, counts, feats, epochs=epochs, batch_size=batch_size, lr=lr,
                                 lr_schedule=lr_schedule, seed=seed, threads=used_threads)
        else:
            history = fit(net, data, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                          lr_schedule=lr_schedule, seed=seed, progress=progress, checkpoint=ckpt,
                          manual_grads=getattr(net, "has_manual_grads", False))
            used_threads = torch.get_num_threads()
        train_seconds = time.perf_counter() - t0
        vectors = net.word_vectors().cpu().numpy()

    n_words = stats["n_examples"] * epochs
    final = history[-1]
    info = {
        "model": model,
        "hyperparameters": hyper,
        "inputs": {"captions": str(captions_tsv), "vocab": str(vocab_tsv), "images": str(images_h5)},
        "vocab_size": len(words),
        "image_dim": None if feats is None else int(feats.shape[1]),
        "images_keyed_by": images_by,
        **stats,
        "n_words": n_words,
        "train_seconds": train_seconds,
        "words_per_s": n_words / train_seconds,
        "examples_per_s": stats["n_examples"] * epochs / train_seconds,
        "final_loss": {k: (None if not math.isfinite(final.get(k, math.nan)) else final[k])
                       for k in ("ce", "mse", "total")},
        "torch_version": torch.__version__,
        "device": str(device),
        "engine": engine,
        "threads": used_threads,
        "deterministic": engine == "torch" or used_threads == 1,
    }
    finish_run(out_dir, words, vectors, history, info, model="WIELD" if model == "wield" else "image-input CBOW")
    log.info("wrote %s: %d x %d vectors, %.0f words/s", out_dir, *vectors.shape, info["words_per_s"])
    return info


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m groundwords.studies.wield.stage", description=__doc__.split("\n")[0])
    p.add_argument("--captions", required=True, help="captions TSV (rank, row, id, caption, status, path)")
    p.add_argument("--vocab", required=True, help="vocabulary TSV (word, count)")
    p.add_argument("--images", required=True,
                   help="image features HDF5 (ids, features: PCA-projected); ids are caption image ids, "
                        "or words with --image-target word / --image-input word")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--model", choices=MODELS, default="wield",
                   help="wield: image as target (paper 3.4); imginput: image as input (paper 5.1, Table 1)")
    p.add_argument("--gamma", type=float, default=None,
                   help="wield: image loss weight (0: vanilla CBOW); required with --model wield")
    p.add_argument("--image-target", choices=IMAGE_MODES, default=None,
                   help="wield: the caption's image (default) or the centre word's own word-level "
                        "encoding (paper 6.2 control; --images keyed by word)")
    p.add_argument("--lam", type=float, default=0.0,
                   help="imginput: weight of the image input (0: vanilla CBOW, = wield gamma 0)")
    p.add_argument("--image-input", choices=IMAGE_MODES, default=None,
                   help="imginput: the caption's image (default) or the mean word-level encoding of "
                        "the context words (--images keyed by word)")
    # the wield.* settings: --config JSON (as the rule passes them) and/or one option per key;
    # the schema owns their defaults (a variant's --window overrides wield.window)
    add_config_argument(p, "wield")
    add_section_arguments(p, "wield", only=STAGE_KEYS)
    add_section_arguments(p, "training")  # --checkpoint-seconds
    p.add_argument("--seed", type=int, default=0, help="the run's seed (one of wield.seeds)")
    p.add_argument("--shared-negatives", type=int, default=1,
                   help="groups of this many examples share their noise words (speed; 1: word2vec)")
    p.add_argument("--image-dim", type=int, default=None, help="fail unless the image targets have this size")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    a = p.parse_args(argv)
    if a.model == "wield" and a.gamma is None:
        p.error("--gamma is required with --model wield")
    setup_logging()
    gamma = 0.0 if a.gamma is None else a.gamma
    s = stage_settings(a, "wield", only=STAGE_KEYS)
    train(a.captions, a.vocab, a.images, a.out_dir, gamma=gamma, **s, seed=a.seed, progress=not a.no_progress,
          checkpoint_seconds=training_settings(a)["checkpoint_seconds"], shared_negatives=a.shared_negatives, image_dim=a.image_dim,
          model=a.model, lam=a.lam, image_input=a.image_input, image_target=a.image_target)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
