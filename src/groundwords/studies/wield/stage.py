"""Train word embeddings (WIELD / vanilla CBOW / image-input CBOW) on captions + images.

:func:`train` is the pipeline stage: read captions / vocabulary / image features
(:mod:`groundwords.studies.wield.inputs`), build the CBOW examples (:mod:`groundwords.text.captions`),
build the model, train it (:func:`groundwords.training.fit`, the model-agnostic training loop, or
the compiled word2vec kernel) and write ``vectors.txt`` (word2vec text format), ``vectors.npy``,
``vocab.txt``, ``loss.csv`` and ``train.json`` atomically into ``out_dir``.

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

Options (:func:`train`'s arguments):

* ``optimizer="sgd"`` / ``"sparse_adam"`` switch the embedding tables to sparse gradients.
* ``shared_negatives=g``: groups of g examples share their noise words (speed; 1 = word2vec).
* ``lr_schedule="linear"``: decay the learning rate linearly to ~0 (word2vec style).
* ``threads``: torch intra-op threads (None: torch's default). Torch parallelises every
  small op, so when other processes compete for the cores (e.g. parallel Snakemake jobs)
  more threads than free cores is much *slower* than one thread: give each job its share.
* ``engine="numba"`` (WIELD with ``objective="negative"`` and ``optimizer="sgd"`` on the CPU):
  the same objective and initialisation trained by the compiled kernel of
  :mod:`groundwords.w2v_fast`, one example at a time at rate ``lr / batch_size`` (the torch
  batch mean's per-example rate), examples in corpus order, ``threads`` Hogwild threads
  (deterministic with one thread only); with γ > 0 the image head steps once per ``image_block``
  examples (the block's summed gradients; 1: per example). ``"torch"``: :func:`groundwords.training.fit`.
* ``checkpoint_seconds``: None, no checkpoint; else keep ``out_dir/checkpoint.pt``
  (:class:`groundwords.checkpoints.Checkpoint`, saved at epoch ends and this often within one;
  0: epoch ends only) and resume from it; it is removed once the outputs are written. Both
  engines resume bit for bit (numba: with one thread; see :mod:`groundwords.w2v_fast`).

Several runs in one process: one ``--point 'OPTIONS'`` per run (``wield.train_jobs: grid``, one
Snakemake job per grid); each run starts from its seed as a process of its own would (the same
bytes out) and saves the seconds of starting Python and importing torch.

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

from groundwords.checkpoints import CHECKPOINT_NAME, Checkpoint, file_identity
from groundwords.cli import UserError, log, parse_points, run_cli, setup_logging
from groundwords.config import add_config_argument, add_section_arguments, stage_settings
from groundwords.models import WIELD, ImageInputCBOW
from groundwords.studies.wield.inputs import read_inputs, training_examples
from groundwords.studies.wield.variants import STAGE_KEYS
from groundwords.training import OPTIMIZERS, finish_run, fit, torch_settings, training_settings

MODELS = ("wield", "imginput")
IMAGE_MODES = ("caption", "word")
LR_SCHEDULES = ("constant", "linear")
ENGINES = ("torch", "numba")


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


def _fit_numba(net: WIELD, examples, counts, feats, *, epochs, batch_size, lr, lr_schedule, seed,
               threads, image_block, checkpoint) -> list[dict]:
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
        image_block=image_block, checkpoint=checkpoint,
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
    captions_tsv, vocab_tsv, images_h5, out_dir, *, gamma: float = 0.0, dim: int = 100, window: int = 2,
    epochs: int = 20, batch_size: int = 20, lr: float = 1e-3, optimizer: str = "adam", seed: int = 0,
    objective: str = "softmax", negatives: int = 5, train_dead_images: bool = False, threads: int | None = None,
    device: str = "cpu", progress: bool = True, lr_schedule: str = "constant", shared_negatives: int = 1,
    image_dim: int | None = None, model: str = "wield", lam: float = 0.0, image_input: str | None = None,
    image_target: str | None = None, engine: str = "torch", image_block: int = 64, checkpoint_seconds: float | None = None,
) -> dict:
    """Train WIELD (γ = 0: vanilla CBOW) or ImageInputCBOW and write its outputs to ``out_dir``.

    ``model="wield"``: ``gamma`` and ``image_target`` ("caption" default, or "word").
    ``model="imginput"``: ``lam`` and ``image_input`` ("caption" default, or "word");
    ``gamma`` must stay 0. With a "word" mode ``images_h5`` is keyed by word (module docstring).
    Only captions whose image is alive (status "ok" and present in ``images_h5``; with a
    word-keyed file: status "ok") are used, unless ``train_dead_images`` (then the image loss
    is masked out for the others; an image input is zero for them).
    ``image_dim``: if given, the image targets must have exactly this many dimensions.
    ``optimizer``, ``shared_negatives``, ``lr_schedule``, ``threads``, ``engine``, ``image_block``
    and ``checkpoint_seconds``: see "Options" in the module docstring.
    Returns the ``train.json`` record (with ``engine``, ``threads`` and ``deterministic``).
    """
    _check_engine(engine, model, objective, optimizer, shared_negatives, device)
    _check_args(gamma, dim, window, epochs, batch_size, lr, objective, negatives, optimizer, lr_schedule)
    image_input, image_target = _check_model_args(model, gamma, lam, image_input, image_target)
    _check_run_args(shared_negatives, device)
    images_by = "word" if "word" in (image_input, image_target) else "caption"
    caps, vocab, image_ids, feats = read_inputs(captions_tsv, vocab_tsv, images_h5, image_dim)
    words = vocab["word"].astype(str).tolist()
    examples, stats, word_rows_t = training_examples(
        caps, words, image_ids, feats, images_h5, model=model, gamma=gamma, window=window,
        train_dead_images=train_dead_images, images_by=images_by, image_input=image_input)
    hyper = {
        "gamma": gamma if model == "wield" else None, "lam": lam if model == "imginput" else None,
        "image_input": image_input, "image_target": image_target, "dim": dim, "window": window, "epochs": epochs,
        "batch_size": batch_size, "lr": lr, "optimizer": optimizer, "lr_schedule": lr_schedule, "seed": seed,
        "objective": objective, "negatives": negatives if objective == "negative" else None,
        "shared_negatives": shared_negatives if objective == "negative" else None,
        "image_block": image_block if engine == "numba" and gamma > 0 else None,
        "train_dead_images": train_dead_images,
    }
    inputs = (captions_tsv, vocab_tsv, images_h5)
    ckpt = _checkpoint(out_dir, checkpoint_seconds, model, hyper, device, engine, inputs)
    dev = torch.device(device)
    with torch_settings(threads, dev):
        torch.manual_seed(seed)
        counts = vocab["count"].to_numpy(dtype=np.float64)
        net, data = _model_and_data(model, len(words), feats, word_rows_t, examples, counts, dev, dim=dim,
                                    gamma=gamma, lam=lam, image_input=image_input, objective=objective,
                                    negatives=negatives, optimizer=optimizer, shared_negatives=shared_negatives,
                                    seed=seed)
        history, used_threads, train_seconds = _run_engine(
            engine, net, data, examples, counts, feats, epochs=epochs, batch_size=batch_size, lr=lr,
            optimizer=optimizer, lr_schedule=lr_schedule, seed=seed, threads=threads, progress=progress, ckpt=ckpt,
            image_block=image_block)
        vectors = net.word_vectors().cpu().numpy()
    info = _train_info(model, hyper, inputs, words, feats, images_by, stats, history, epochs, train_seconds,
                       device=device, engine=engine, used_threads=used_threads)
    finish_run(out_dir, words, vectors, history, info, model="WIELD" if model == "wield" else "image-input CBOW")
    log.info("wrote %s: %d x %d vectors, %.0f words/s", out_dir, *vectors.shape, info["words_per_s"])
    return info


def _check_engine(engine, model, objective, optimizer, shared_negatives, device) -> None:
    if engine not in ENGINES:
        raise UserError(f"engine must be one of {', '.join(ENGINES)} (got {engine!r})")
    if engine == "numba" and (model != "wield" or objective != "negative" or optimizer != "sgd"
                              or shared_negatives != 1 or torch.device(device).type != "cpu"):
        raise UserError("engine numba trains WIELD with objective negative, optimizer sgd, shared negatives 1 "
                        f"on the cpu (got model {model}, objective {objective}, optimizer {optimizer}, "
                        f"shared negatives {shared_negatives}, device {device}); use engine torch")


def _check_run_args(shared_negatives, device) -> None:
    if shared_negatives < 1:
        raise UserError(f"shared negatives must be >= 1 (got {shared_negatives})")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device!r} requested but CUDA is not available")


def _checkpoint(out_dir, seconds, model, hyper, device, engine, inputs) -> Checkpoint | None:
    """The run's checkpoint (None without ``seconds``): its settings name the hyperparameters, the
    device and the inputs' identities."""
    if seconds is None:
        return None
    return Checkpoint(Path(out_dir) / CHECKPOINT_NAME, {
        "stage": "train", "model": model, **hyper, "device": str(device), "engine": engine,
        "inputs": [file_identity(f) for f in inputs]}, seconds)


def _model_and_data(model, vocab_size, feats, word_rows_t, examples, counts, dev, *, dim, gamma, lam, image_input,
                    objective, negatives, optimizer, shared_negatives, seed):
    """The model (its word part initialised from the global RNG, seeded by the caller) and the
    examples' tensors, on ``dev``."""
    feats_t = torch.from_numpy(feats) if feats is not None else None
    common = dict(objective=objective, negatives=negatives, counts=counts,
                  sparse=optimizer in ("sgd", "sparse_adam"), shared_negatives=shared_negatives, seed=seed)
    if model == "wield":
        net = WIELD(vocab_size, dim, image_dim=0 if feats is None else feats.shape[1], gamma=gamma,
                    image_targets=feats_t, **common)
    else:
        net = ImageInputCBOW(vocab_size, dim, image_dim=feats.shape[1], lam=lam, image_input=image_input,
                             image_features=feats_t, word_rows=word_rows_t, **common)
    net = net.to(dev)
    data = {
        "context": torch.from_numpy(examples.context).to(dev),
        "target": torch.from_numpy(examples.target).to(dev),
    }
    if image_input != "word":  # the "word" input never sees per-example rows
        data["image_row"] = torch.from_numpy(examples.image_row).to(dev)
    return net, data


def _run_engine(engine, net, data, examples, counts, feats, *, epochs, batch_size, lr, optimizer, lr_schedule,
                seed, threads, progress, ckpt, image_block) -> tuple[list[dict], int, float]:
    """Train ``net`` in place with ``engine``; returns (history, threads used, seconds)."""
    t0 = time.perf_counter()
    if engine == "numba":
        used_threads = max(1, int(threads or 1))
        history = _fit_numba(net, examples, counts, feats, epochs=epochs, batch_size=batch_size, lr=lr,
                             lr_schedule=lr_schedule, seed=seed, threads=used_threads, image_block=image_block,
                             checkpoint=ckpt)
    else:
        history = fit(net, data, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                      lr_schedule=lr_schedule, seed=seed, progress=progress, checkpoint=ckpt,
                      manual_grads=getattr(net, "has_manual_grads", False))
        used_threads = torch.get_num_threads()
    return history, used_threads, time.perf_counter() - t0


def _train_info(model, hyper, inputs, words, feats, images_by, stats, history, epochs, train_seconds, *,
                device, engine, used_threads) -> dict:
    """The ``train.json`` record."""
    n_words = stats["n_examples"] * epochs
    final = history[-1]
    return {
        "model": model,
        "hyperparameters": hyper,
        "inputs": dict(zip(("captions", "vocab", "images"), map(str, inputs))),
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m groundwords.studies.wield.stage", description=__doc__.split("\n")[0])
    p.add_argument("--captions", required=True, help="captions TSV (rank, row, id, caption, status, path)")
    p.add_argument("--vocab", required=True, help="vocabulary TSV (word, count)")
    p.add_argument("--images", required=True,
                   help="image features HDF5 (ids, features: PCA-projected); ids are caption image ids, "
                        "or words with --image-target word / --image-input word")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--point", action="append", metavar="OPTIONS",
                   help="train several runs in this process, one after another (wield.train_jobs: grid): each "
                        "--point's OPTIONS (one quoted string, e.g. '--out-dir D --gamma 10') are added to the "
                        "other options for one run; each run's outputs equal its own process's, byte for byte")
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
    return p


def main(argv=None) -> None:
    p = _parser()
    runs, points = parse_points(p, argv)  # all checked first
    setup_logging()
    if any(a.model == "wield" and a.gamma is None for a in runs):
        p.error("--gamma is required with --model wield")
    for i, a in enumerate(runs):
        if len(runs) > 1:
            log.info("run %d of %d: %s", i + 1, len(runs), points[i])
        _train_run(a)


def _train_run(a: argparse.Namespace) -> dict:
    """:func:`train` with the parsed options of one run."""
    gamma = 0.0 if a.gamma is None else a.gamma
    s = stage_settings(a, "wield", only=STAGE_KEYS)
    return train(a.captions, a.vocab, a.images, a.out_dir, gamma=gamma, **s, seed=a.seed, progress=not a.no_progress,
                 checkpoint_seconds=training_settings(a)["checkpoint_seconds"], shared_negatives=a.shared_negatives,
                 image_dim=a.image_dim, model=a.model, lam=a.lam, image_input=a.image_input,
                 image_target=a.image_target)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
