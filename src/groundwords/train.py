"""Train word embeddings (WIELD / vanilla CBOW / image-input CBOW) on captions + images.

Two layers:

* :func:`fit` is the model-agnostic training loop: seeds, per-epoch shuffling with its own
  ``torch.Generator``, batches sliced straight from tensors (no DataLoader, no per-example
  Python), optimiser, optional linear learning-rate decay, per-epoch loss bookkeeping, tqdm
  progress and throughput. Any model following the :mod:`groundwords.models` interface
  (``loss(batch) -> dict``, ``word_vectors()``, ``sparse_parameters()``) can use it. With a
  :class:`Checkpoint` it saves its whole state (model, optimisers, counters, every RNG) at epoch
  ends and every ``training.checkpoint_seconds``, and resumes from it bit for bit.
* :func:`train` is the pipeline stage: read captions / vocabulary / image features, build the
  CBOW examples (:mod:`groundwords.corpus`), build the model, call :func:`fit` and write
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
import contextlib
import json
import math
import os
import pickle
import signal
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .config import add_section_arguments, section_settings
from .corpus import build_examples, word_rows
from .io import UserError, atomic_path, log, read_features, read_tsv, run_cli, setup_logging, write_json
from .models import WIELD, ImageInputCBOW
from .vocab import load_vocab

OPTIMIZERS = ("adam", "sgd", "sparse_adam")
MODELS = ("wield", "imginput")
IMAGE_MODES = ("caption", "word")
LR_SCHEDULES = ("constant", "linear")


# ---------------------------------------------------------------------------------------------
# Generic training loop


def make_optimizer(model: torch.nn.Module, name: str, lr: float) -> list[torch.optim.Optimizer]:
    """Optimisers for ``model``.

    adam: torch.optim.Adam over everything (dense gradients; the paper's setting).
    sgd: plain SGD; works with dense and sparse gradients (the model decides which).
    sparse_adam: SparseAdam for the model's sparse parameters + Adam for the dense rest.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adam":
        # fused: one kernel per step instead of ~10 passes over every parameter (same maths)
        return [torch.optim.Adam(params, lr=lr, fused=True)]
    if name == "sgd":
        return [torch.optim.SGD(params, lr=lr)]
    if name == "sparse_adam":
        sparse = model.sparse_parameters() if hasattr(model, "sparse_parameters") else []
        sparse_ids = {id(p) for p in sparse}
        dense = [p for p in params if id(p) not in sparse_ids]
        opts = []
        if sparse:
            opts.append(torch.optim.SparseAdam(sparse, lr=lr))
        if dense:
            opts.append(torch.optim.Adam(dense, lr=lr, fused=True))
        return opts
    raise UserError(f"unknown optimizer {name!r} (choose from {', '.join(OPTIMIZERS)})")


@contextlib.contextmanager
def torch_settings(threads: int | None = None, device: str | torch.device = "cpu"):
    """Run a training stage with ``threads`` torch threads and a forked global RNG (seeding inside
    does not change the caller's state); everything is restored on exit.

    Off the CPU, deterministic algorithms are switched on as well. The CPU kernels used here are
    deterministic already, and on the CPU the switch would only cost ~2 s of importing torch's
    compiler stack in every job.
    """
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        try:
            if threads:
                torch.set_num_threads(threads)
            if torch.device(device).type != "cpu":
                torch.use_deterministic_algorithms(True, warn_only=True)
            yield
        finally:
            torch.set_num_threads(prev_threads)
            if torch.are_deterministic_algorithms_enabled() != prev_det:
                torch.use_deterministic_algorithms(prev_det, warn_only=prev_det_warn)


# ---------------------------------------------------------------------------------------------
# Checkpoints (resume an interrupted run bit for bit)

#: test hook: a training process SIGKILLs itself right after this many optimiser steps of one fit
KILL_AT_STEP_ENV = "GROUNDWORDS_KILL_AT_STEP"
CHECKPOINT_NAME = "checkpoint.pt"  # in a training stage's output directory


def training_settings(args: argparse.Namespace) -> dict:
    """The ``training`` config section from a stage's parsed CLI (``add_section_arguments(p, "training")``)."""
    return section_settings("training", {k: getattr(args, k) for k in ("checkpoint_seconds",)
                                         if getattr(args, k, None) is not None})


def file_identity(path) -> list | None:
    """(path, size, mtime_ns) of an input file, for a checkpoint's settings (None: no file)."""
    if path is None:
        return None
    st = Path(path).stat()
    return [str(path), st.st_size, st.st_mtime_ns]


class Checkpoint:
    """The checkpoint file of one training run (``<out_dir>/checkpoint.pt``).

    ``settings``: everything the run's result depends on (hyperparameters, input file identities,
    see :func:`file_identity`); a checkpoint whose settings differ is ignored with a warning.
    ``seconds``: within an epoch, save at most this often (0: at epoch ends only; every epoch
    end saves). :func:`fit` saves and resumes through it; the stage calls :meth:`remove` once
    its outputs are written.
    """

    FORMAT = 1

    def __init__(self, path, settings: dict, seconds: float = 0.0):
        if not (seconds >= 0 and math.isfinite(seconds)):
            raise UserError(f"training.checkpoint_seconds must be a finite number >= 0 (got {seconds})")
        self.path, self.seconds = Path(path), float(seconds)
        self.settings = json.loads(json.dumps(settings, sort_keys=True, default=str))
        self.n_saved = 0

    def load(self, fit_settings: dict) -> dict | None:
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError) as e:  # not torn (atomic), but foreign
            log.warning("%s: cannot read the checkpoint (%s); training from the start", self.path, e)
            return None
        want = {"format": self.FORMAT, "settings": self.settings, "fit": fit_settings}
        if {k: state.get(k) for k in want} != want:
            have = state.get("settings") if isinstance(state.get("settings"), dict) else {}
            diff = sorted(k for k in {**have, **self.settings} if have.get(k) != self.settings.get(k))
            log.warning("%s: a checkpoint of other settings (%s); training from the start", self.path,
                        ", ".join(diff) or "format or training loop")
            return None
        log.info("%s: resuming after epoch %d, step %d", self.path, state["epoch"], state["step"])
        return state

    def save(self, state: dict) -> None:
        with atomic_path(self.path, suffix=".pt") as tmp:
            torch.save({"format": self.FORMAT, "settings": self.settings, **state}, tmp)
        self.n_saved += 1

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _generator_slots(model: torch.nn.Module):
    """(name, owner, attribute) of every place a private ``torch.Generator`` lives or may live
    (lazily created ones are None until first use, so every None attribute is a candidate):
    module attributes, and attributes of groundwords helper objects held by a module (e.g.
    ``NoiseSampler.generator``)."""
    for mname, mod in model.named_modules():
        for attr, val in vars(mod).items():
            if val is None or isinstance(val, torch.Generator):
                yield f"{mname}:{attr}", mod, attr
            elif (not isinstance(val, (torch.nn.Module, torch.Tensor, np.ndarray, dict, list, tuple))
                  and type(val).__module__.startswith("groundwords")):
                for a2, v2 in vars(val).items():
                    if v2 is None or isinstance(v2, torch.Generator):
                        yield f"{mname}:{attr}.{a2}", val, a2


def generator_states(model: torch.nn.Module) -> dict:
    return {name: {"device": str(getattr(owner, attr).device), "state": getattr(owner, attr).get_state()}
            for name, owner, attr in _generator_slots(model) if getattr(owner, attr) is not None}


def set_generator_states(model: torch.nn.Module, states: dict) -> None:
    for name, owner, attr in _generator_slots(model):
        if name in states:
            g = torch.Generator(device=states[name]["device"])
            g.set_state(states[name]["state"])
            setattr(owner, attr, g)


def training_state(model: torch.nn.Module, opts: list[torch.optim.Optimizer]) -> dict:
    """The checkpoint entries every training loop saves: model and optimiser states, the global
    torch RNG's and the model's private generators' states (:class:`Checkpoint`)."""
    return {"model": model.state_dict(), "optimizers": [o.state_dict() for o in opts],
            "torch_rng": torch.get_rng_state(), "generators": generator_states(model)}


def restore_training_state(state: dict, model: torch.nn.Module, opts: list[torch.optim.Optimizer]) -> None:
    """Undo :func:`training_state` (the model and optimisers already built as at the run's start)."""
    model.load_state_dict(state["model"])
    for opt, sd in zip(opts, state["optimizers"], strict=True):
        opt.load_state_dict(sd)
    torch.set_rng_state(state["torch_rng"])
    set_generator_states(model, state["generators"])


def kill_hook_step() -> int:
    """Tests only: the step after which the process SIGKILLs itself (``GROUNDWORDS_KILL_AT_STEP``; 0: never)."""
    return int(os.environ.get(KILL_AT_STEP_ENV) or 0)


def kill_if(step: int, kill_at: int) -> None:
    if kill_at and step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)


def fit(
    model: torch.nn.Module,
    data: dict[str, torch.Tensor] | Callable[[int], dict[str, torch.Tensor]],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer: str = "adam",
    lr_schedule: str = "constant",
    seed: int = 0,
    words_per_epoch: int | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[dict], None] | None = None,
    reseed_each_epoch: bool = False,
    data_rng: np.random.Generator | None = None,
    checkpoint: Checkpoint | None = None,
) -> list[dict]:
    """Optimise ``model.loss`` over ``data`` (a dict of tensors sharing their first dim).

    Each epoch draws a fresh permutation from a generator seeded with ``seed`` (with
    ``reseed_each_epoch``: epoch ``e`` from one seeded with ``seed + e - 1``) and feeds
    ``model.loss`` batches ``{key: tensor[idx]}``. ``data`` may also be a function of the epoch
    number (1-based) returning that epoch's tensors (word2vec's per-epoch redraw of skip-gram
    pairs); ``data_rng`` is the numpy generator it draws from, so that a checkpoint can replay it.
    ``lr_schedule="linear"`` decays the learning rate linearly to ``lr * 1e-4`` over the whole run
    (word2vec style); ``"epoch_linear"`` keeps it constant within an epoch, at the linear
    schedule's value at the epoch's midpoint.
    ``checkpoint`` (:class:`Checkpoint`): resume from it if it holds a run of the same settings,
    and save it at every epoch end (and every ``checkpoint.seconds`` within an epoch): model and
    optimiser states, counters, history, the shuffler's, the global torch RNG's, the model's
    private generators' and ``data_rng``'s states, so a resumed run ends bit-identical to an
    uninterrupted one (CPU). The caller removes it once its outputs are written.
    Returns one dict per epoch: example-weighted means of every loss component, ``n_examples``,
    ``seconds``, ``words_per_s`` and ``examples_per_s``. ``words_per_epoch`` defaults to the number
    of examples (one target word per example, as in CBOW).
    """
    if lr_schedule not in ("constant", "linear", "epoch_linear"):
        raise ValueError(f"unknown lr schedule {lr_schedule!r}")
    fixed = not callable(data)
    if lr_schedule == "linear" and not fixed:
        raise ValueError("lr_schedule='linear' needs fixed data (per-epoch data: 'epoch_linear')")

    def epoch_data(epoch: int) -> tuple[dict[str, torch.Tensor], int]:
        d = data if fixed else data(epoch)
        n = next(iter(d.values())).shape[0]
        if any(v.shape[0] != n for v in d.values()):
            raise ValueError("all data tensors must have the same first dimension")
        if n == 0:
            raise UserError("no training examples")
        return d, n

    cur, n = epoch_data(1) if fixed else (None, None)
    opts = make_optimizer(model, optimizer, lr)
    shuffler = torch.Generator().manual_seed(seed)
    fit_settings = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer,
                    "lr_schedule": lr_schedule, "seed": seed, "reseed_each_epoch": reseed_each_epoch,
                    "n_examples": n}
    step, done, offset, prior_seconds = 0, 0, 0, 0.0
    history: list[dict] = []
    sums: dict[str, torch.Tensor] = {}
    weights: dict[str, float | torch.Tensor] = {}
    state = checkpoint.load(fit_settings) if checkpoint is not None else None
    if state is not None:
        restore_training_state(state, model, opts)
        step, done, offset, prior_seconds = state["step"], state["epoch"], state["offset"], state["epoch_seconds"]
        history, sums, weights = state["history"], state["sums"], state["weights"]
        shuffler.set_state(state["shuffler"])
        if data_rng is not None:
            data_rng.bit_generator.state = state["data_rng"]
    kill_at = kill_hook_step()
    total_steps = math.ceil(n / batch_size) * epochs if fixed else None
    last_save = time.monotonic()

    def save(epoch_done: int, at: int, shuffler_state, rng_state, seconds: float) -> None:
        nonlocal last_save
        checkpoint.save({
            "fit": fit_settings, "epoch": epoch_done, "offset": at, "step": step, "epoch_seconds": seconds,
            "history": history, "shuffler": shuffler_state, "data_rng": rng_state, "sums": sums, "weights": weights,
            **training_state(model, opts),
        })
        last_save = time.monotonic()

    model.train()
    for epoch in range(done + 1, epochs + 1):
        t0 = time.perf_counter() - prior_seconds
        # the states this epoch starts from: a mid-epoch checkpoint replays the draw and the shuffle
        rng_start = data_rng.bit_generator.state if data_rng is not None else None
        if not fixed:
            cur, n = epoch_data(epoch)
        if reseed_each_epoch:
            shuffler = torch.Generator().manual_seed(seed + epoch - 1)
        shuffler_start = shuffler.get_state()
        device = next(iter(cur.values())).device
        perm = torch.randperm(n, generator=shuffler).to(device)
        if offset == 0:
            sums, weights = {}, {}
        if lr_schedule == "epoch_linear":
            for opt in opts:
                for g in opt.param_groups:
                    g["lr"] = lr * max(1e-4, 1.0 - (epoch - 1 + 0.5) / epochs)
        bar = tqdm(total=n, initial=offset, desc=f"epoch {epoch}/{epochs}", unit="ex", unit_scale=True,
                   disable=not progress, leave=False, mininterval=1.0)
        for start in range(offset, n, batch_size):
            idx = perm[start:start + batch_size]
            batch = {k: v[idx] for k, v in cur.items()}
            if lr_schedule == "linear":
                lr_now = lr * max(1e-4, 1.0 - step / total_steps)
                for opt in opts:
                    for g in opt.param_groups:
                        g["lr"] = lr_now
            out = model.loss(batch)
            for opt in opts:
                opt.zero_grad(set_to_none=True)
            out["total"].backward()
            for opt in opts:
                opt.step()
            step += 1
            b = len(idx)
            with torch.no_grad():
                for k, v in out.items():
                    if k.startswith("n_"):
                        continue
                    w = out.get(f"n_{k}", b)
                    sums[k] = sums.get(k, 0.0) + v.detach() * w
                    weights[k] = weights.get(k, 0) + w
            bar.update(b)
            kill_if(step, kill_at)
            if (checkpoint is not None and checkpoint.seconds and start + b < n
                    and time.monotonic() - last_save >= checkpoint.seconds):
                save(epoch - 1, start + b, shuffler_start, rng_start, time.perf_counter() - t0)
        bar.close()
        offset, prior_seconds = 0, 0.0
        seconds = time.perf_counter() - t0
        wpe = n if words_per_epoch is None else words_per_epoch
        rec = {"epoch": epoch}
        for k, s in sums.items():
            w = float(weights[k])
            rec[k] = float(s) / w if w > 0 else float("nan")
            if not math.isfinite(rec[k]):
                log.warning("epoch %d: loss %s is %s", epoch, k, rec[k])
        rec.update(n_examples=n, seconds=seconds, words_per_s=wpe / seconds, examples_per_s=n / seconds)
        history.append(rec)
        log.info("epoch %d/%d: %s (%.1fs, %.0f words/s)", epoch, epochs,
                 ", ".join(f"{k}={rec[k]:.4f}" for k in sums), seconds, rec["words_per_s"])
        if checkpoint is not None:
            save(epoch, 0, shuffler.get_state(), data_rng.bit_generator.state if data_rng is not None else None, 0.0)
        if on_epoch_end is not None:
            on_epoch_end(rec)
    model.eval()
    return history


# ---------------------------------------------------------------------------------------------
# Outputs


def write_word2vec_text(path, words: list[str], vectors: np.ndarray) -> None:
    """word2vec text format ("V dim" header, then "word v1 ... vdim"), atomically.

    '%.9g' round-trips float32 exactly, so the file equals ``vectors.npy`` once loaded.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(f"{vectors.shape[0]} {vectors.shape[1]}\n")
        for w, row in zip(words, vectors.tolist()):
            f.write(w + " " + " ".join(f"{x:.9g}" for x in row) + "\n")


def write_outputs(out_dir, words: list[str], vectors: np.ndarray, history: list[dict], info: dict) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    with atomic_path(out_dir / "vectors.npy", suffix=".npy") as tmp:
        np.save(tmp, vectors)
    with atomic_path(out_dir / "vocab.txt") as tmp:
        tmp.write_text("".join(w + "\n" for w in words), encoding="utf-8")
    cols = ["epoch", "ce", "mse", "total", "seconds", "words_per_s"]
    loss = pd.DataFrame(history).reindex(columns=cols)
    with atomic_path(out_dir / "loss.csv") as tmp:
        loss.to_csv(tmp, index=False, lineterminator="\n", na_rep="nan")
    write_word2vec_text(out_dir / "vectors.txt", words, vectors)
    write_json(info, out_dir / "train.json")  # last: its presence marks a finished run


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
    try:
        caps = read_tsv(captions_tsv, dtype={"id": str, "caption": str, "status": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserError(f"{captions_tsv}: cannot read captions TSV ({e})") from e
    missing = [c for c in ("id", "caption", "status") if c not in caps.columns]
    if missing:
        raise UserError(f"{captions_tsv}: missing column(s) {missing} (expected rank, row, id, caption, status, path)")
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
    ``checkpoint_seconds``: None, no checkpoint; else keep ``out_dir/checkpoint.pt`` (:class:`Checkpoint`,
    saved at epoch ends and this often within one; 0: epoch ends only), resume from it, and remove
    it once the outputs are written.
    Returns the ``train.json`` record.
    """
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
        if checkpoint_seconds is not None:
            ckpt = Checkpoint(Path(out_dir) / CHECKPOINT_NAME, {
                "stage": "train", "model": model, **hyper, "device": str(device),
                "inputs": [file_identity(p) for p in (captions_tsv, vocab_tsv, images_h5)]}, checkpoint_seconds)
        t0 = time.perf_counter()
        history = fit(net, data, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                      lr_schedule=lr_schedule, seed=seed, progress=progress, checkpoint=ckpt)
        train_seconds = time.perf_counter() - t0
        used_threads = torch.get_num_threads()
        vectors = net.word_vectors().cpu().numpy()

    if not np.isfinite(vectors).all():
        raise UserError("training diverged: the word vectors contain NaN/inf (lower --lr)")
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
        "threads": used_threads,
    }
    write_outputs(out_dir, words, vectors, history, info)
    if ckpt is not None:
        ckpt.remove()
    log.info("wrote %s: %d x %d vectors, %.0f words/s", out_dir, *vectors.shape, info["words_per_s"])
    return info


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m groundwords.train", description=__doc__.split("\n")[0])
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
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--window", type=int, default=2,
                   help="context words each side; >= the longest caption (e.g. 1000): the whole caption")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--objective", choices=("softmax", "negative"), default="softmax")
    p.add_argument("--negatives", type=int, default=5, help="noise words per example (negative sampling)")
    p.add_argument("--shared-negatives", type=int, default=1,
                   help="groups of this many examples share their noise words (speed; 1: word2vec)")
    p.add_argument("--train-dead-images", action="store_true",
                   help="also train on captions whose image is dead (image loss masked out)")
    p.add_argument("--image-dim", type=int, default=None, help="fail unless the image targets have this size")
    p.add_argument("--threads", type=int, default=0,
                   help="torch intra-op threads (0: torch default). Do not oversubscribe: on a busy "
                        "machine 2 threads can be 10x slower than 1")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    add_section_arguments(p, "training")
    a = p.parse_args(argv)
    if a.model == "wield" and a.gamma is None:
        p.error("--gamma is required with --model wield")
    setup_logging()
    gamma = 0.0 if a.gamma is None else a.gamma
    train(a.captions, a.vocab, a.images, a.out_dir, gamma=gamma, dim=a.dim, window=a.window,
          epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, optimizer=a.optimizer, seed=a.seed,
          objective=a.objective, negatives=a.negatives, train_dead_images=a.train_dead_images,
          threads=a.threads or None, device=a.device, progress=not a.no_progress,
          lr_schedule=a.lr_schedule, shared_negatives=a.shared_negatives, image_dim=a.image_dim,
          model=a.model, lam=a.lam, image_input=a.image_input, image_target=a.image_target,
          checkpoint_seconds=training_settings(a)["checkpoint_seconds"])


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
