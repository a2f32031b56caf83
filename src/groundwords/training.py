"""The training loop every model shares, and the outputs every training stage writes.

:func:`fit` optimises any model with a ``loss(batch) -> {"total": ..., ...}`` method over a dict of
example tensors (shuffled per epoch from a seeded generator; Adam, SGD or SparseAdam; constant or
word2vec's linear learning-rate decay; SGD's momentum, a step budget, or the caller's own update
step for loops that need one: IESG's alternating updates, the retrieval model's clipped steps).
:class:`Checkpoint` saves a run's whole state (model, optimisers, counters, every RNG) at epoch
ends and every ``training.checkpoint_seconds``, and :func:`fit` resumes from it bit for bit.
:func:`check_finite` and :func:`finish_run` are the shared tail of the training stages;
:func:`torch_settings` runs a stage with a given number of threads and a forked RNG;
:func:`write_outputs` writes ``vectors.npy``, ``vocab.txt``, ``loss.csv``, ``vectors.txt`` and,
last, ``train.json``.
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

from groundwords.cli import UserError, log
from groundwords.config import section_settings
from groundwords.files import atomic_path, write_json
from groundwords.optimizers import SGD, Adam, Optimizer, SparseAdam

OPTIMIZERS = ("adam", "sgd", "sparse_adam")


def make_optimizer(model: torch.nn.Module, name: str, lr: float, momentum: float = 0.0) -> list[Optimizer]:
    """Optimisers for ``model`` (:mod:`groundwords.optimizers`: torch.optim's updates, bit for bit).

    adam: Adam over everything (dense gradients; the paper's setting).
    sgd: SGD (with ``momentum``, if > 0); works with dense and sparse gradients (the model decides which).
    sparse_adam: SparseAdam for the model's sparse parameters + Adam for the dense rest.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adam":
        return [Adam(params, lr=lr)]
    if name == "sgd":
        return [SGD(params, lr=lr, momentum=momentum)]
    if name == "sparse_adam":
        sparse = model.sparse_parameters() if hasattr(model, "sparse_parameters") else []
        sparse_ids = {id(p) for p in sparse}
        dense = [p for p in params if id(p) not in sparse_ids]
        opts: list[Optimizer] = []
        if sparse:
            opts.append(SparseAdam(sparse, lr=lr))
        if dense:
            opts.append(Adam(dense, lr=lr))
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

    FORMAT = 2  # 2: groundwords.optimizers' state dicts (1: torch.optim's)

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
        except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError) as e:  # atomic, but foreign
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


def training_state(model: torch.nn.Module, opts: list[Optimizer]) -> dict:
    """The checkpoint entries every training loop saves: model and optimiser states, the global
    torch RNG's and the model's private generators' states (:class:`Checkpoint`)."""
    return {"model": model.state_dict(), "optimizers": [o.state_dict() for o in opts],
            "torch_rng": torch.get_rng_state(), "generators": generator_states(model)}


def restore_training_state(state: dict, model: torch.nn.Module, opts: list[Optimizer]) -> None:
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
    momentum: float = 0.0,
    max_steps: int | None = None,
    step_fn: Callable[[dict[str, torch.Tensor]], dict] | None = None,
    manual_grads: bool = False,
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
    ``momentum``: SGD's momentum (``optimizer="sgd"``). ``max_steps``: stop after this many
    updates, also within an epoch (``epochs`` is then an upper bound). ``step_fn(batch)``: makes
    the update itself in place of ``model.loss`` + backward + the optimiser's step (e.g. IESG's
    alternating word and image steps, each with its own optimiser) and returns the losses to
    average (tensors or floats); with a ``checkpoint`` it lists its optimisers in
    ``step_fn.optimizers`` so that their states are saved and restored with the model's.
    ``manual_grads``: the model writes its gradients itself (``model.manual_grads(batch)``, which
    returns the losses like ``model.loss``) in place of autograd's backward; the optimiser steps.
    """
    step_opts = list(getattr(step_fn, "optimizers", [])) if step_fn is not None else []
    if step_fn is not None and checkpoint is not None and not step_opts:
        raise ValueError("a checkpoint with a step_fn needs the step's optimisers (step_fn.optimizers)")
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
    opts = make_optimizer(model, optimizer, lr, momentum) if step_fn is None else []
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
        restore_training_state(state, model, opts or step_opts)
        step, done, offset, prior_seconds = state["step"], state["epoch"], state["offset"], state["epoch_seconds"]
        history, sums, weights = state["history"], state["sums"], state["weights"]
        shuffler.set_state(state["shuffler"])
        if data_rng is not None:
            data_rng.bit_generator.state = state["data_rng"]
    kill_at = kill_hook_step() if checkpoint is not None else 0  # tests: interrupt a checkpointed run
    total_steps = math.ceil(n / batch_size) * epochs if fixed else None
    last_save = time.monotonic()

    def save(epoch_done: int, at: int, shuffler_state, rng_state, seconds: float) -> None:
        nonlocal last_save
        checkpoint.save({
            "fit": fit_settings, "epoch": epoch_done, "offset": at, "step": step, "epoch_seconds": seconds,
            "history": history, "shuffler": shuffler_state, "data_rng": rng_state, "sums": sums, "weights": weights,
            **training_state(model, opts or step_opts),
        })
        last_save = time.monotonic()

    model.train()
    for epoch in range(done + 1, epochs + 1):
        if max_steps is not None and step >= max_steps:
            break
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
            if step_fn is not None:
                out = step_fn(batch)
            elif manual_grads:
                out = model.manual_grads(batch)
                for opt in opts:
                    opt.step()
            else:
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
                    sums[k] = sums.get(k, 0.0) + (v.detach() if torch.is_tensor(v) else v) * w
                    weights[k] = weights.get(k, 0) + w
            bar.update(b)
            kill_if(step, kill_at)
            if max_steps is not None and step >= max_steps:
                break
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
    (out_dir / CHECKPOINT_NAME).unlink(missing_ok=True)  # the run is finished: no resume left to do


def check_finite(model: str, *arrays, lower: str = "--lr") -> None:
    """Refuse a diverged run: a UserError naming ``model`` (and the flag to ``lower``) unless every
    array is finite. Every training stage calls it before it writes anything."""
    if not all(np.isfinite(a).all() for a in arrays):
        raise UserError(f"{model} diverged: the trained vectors contain NaN/inf (lower {lower})")


def finish_run(out_dir, words: list[str], vectors: np.ndarray, history: list[dict], info: dict, *,
               model: str, lower: str = "--lr") -> dict:
    """The tail the training stages share: :func:`check_finite`, then :func:`write_outputs`
    (``train.json`` last). Returns ``info``."""
    check_finite(model, vectors, lower=lower)
    write_outputs(out_dir, words, vectors, history, info)
    return info
