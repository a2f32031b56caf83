"""The training loop every model shares, and the outputs every training stage writes.

:func:`fit` optimises any model with a ``loss(batch) -> {"total": ..., ...}`` method over a dict of
example tensors (shuffled per epoch from a seeded generator; Adam, SGD or SparseAdam; constant or
word2vec's linear learning-rate decay; SGD's momentum, a step budget, or the caller's own update
step for loops that need one: IESG's alternating updates, the retrieval model's clipped steps).
A :class:`groundwords.checkpoints.Checkpoint` saves a run's whole state (model, optimisers,
counters, every RNG) every ``training.checkpoint_seconds`` and after the last epoch, and
:func:`fit` resumes from it bit for bit.
:func:`check_finite` and :func:`finish_run` are the shared tail of the training stages;
:func:`torch_settings` runs a stage with a given number of threads and a forked RNG;
:func:`write_outputs` writes ``vectors.npy``, ``vocab.txt``, ``loss.csv``, ``vectors.txt`` and,
last, ``train.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from groundwords.checkpoints import (
    CHECKPOINT_NAME,
    Checkpoint,
    kill_hook_step,
    kill_if,
    restore_training_state,
    training_state,
)
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


def training_settings(args: argparse.Namespace) -> dict:
    """The ``training`` config section from a stage's parsed CLI (``add_section_arguments(p, "training")``)."""
    return section_settings("training", {k: getattr(args, k) for k in ("checkpoint_seconds",)
                                         if getattr(args, k, None) is not None})


# ---------------------------------------------------------------------------------------------
# The training loop


def fit(
    model: torch.nn.Module,
    data: dict[str, torch.Tensor] | Callable[[int], dict[str, torch.Tensor]],
    *, epochs: int, batch_size: int, lr: float, optimizer: str = "adam", lr_schedule: str = "constant",
    seed: int = 0, words_per_epoch: int | None = None, progress: bool = True,
    on_epoch_end: Callable[[dict], None] | None = None, reseed_each_epoch: bool = False,
    data_rng: np.random.Generator | None = None, checkpoint: Checkpoint | None = None, momentum: float = 0.0,
    max_steps: int | None = None, step_fn: Callable[[dict[str, torch.Tensor]], dict] | None = None,
    manual_grads: bool = False, state: dict | None = None,
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
    ``checkpoint`` (:class:`groundwords.checkpoints.Checkpoint`): resume from it if it holds a run
    of the same settings, and save it when :meth:`~groundwords.checkpoints.Checkpoint.due` (every
    ``checkpoint.seconds`` and after the last epoch), so a resumed run ends bit-identical to an
    uninterrupted one (CPU); :class:`_Run` lists what it holds. The caller removes it once its
    outputs are written.
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
    ``state``: the caller's own state that lives across steps and epochs (a ``step_fn``'s running
    sums, ``on_epoch_end``'s best model so far): a checkpoint saves it with the run's and a resume
    restores it into the same dict (lists in place; tensors onto the data's device).
    ``on_epoch_end(record)`` runs before the epoch-end checkpoint is saved, so what it changes is saved.
    """
    _check_fit_args(data, lr_schedule, step_fn, checkpoint)
    loop = _Loop(epochs, batch_size, lr, optimizer, momentum, lr_schedule, seed, reseed_each_epoch,
                 words_per_epoch, max_steps, progress, manual_grads, step_fn)
    run = _Run(model, data, loop, checkpoint, data_rng, {} if state is None else state)
    run.resume()
    model.train()
    for epoch in range(run.done + 1, epochs + 1):
        if run.out_of_steps():
            break
        rec = run.epoch(epoch)
        if on_epoch_end is not None:
            on_epoch_end(rec)
        run.save_epoch_end(epoch, last=epoch == epochs or run.out_of_steps())
    model.eval()
    return run.history


def _check_fit_args(data, lr_schedule: str, step_fn, checkpoint) -> None:
    """Refuse :func:`fit` arguments that do not go together."""
    if step_fn is not None and checkpoint is not None and not getattr(step_fn, "optimizers", []):
        raise ValueError("a checkpoint with a step_fn needs the step's optimisers (step_fn.optimizers)")
    if lr_schedule not in ("constant", "linear", "epoch_linear"):
        raise ValueError(f"unknown lr schedule {lr_schedule!r}")
    if lr_schedule == "linear" and callable(data):
        raise ValueError("lr_schedule='linear' needs fixed data (per-epoch data: 'epoch_linear')")


def _epoch_tensors(d: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """``d`` and its number of examples, checked."""
    n = next(iter(d.values())).shape[0]
    if any(v.shape[0] != n for v in d.values()):
        raise ValueError("all data tensors must have the same first dimension")
    if n == 0:
        raise UserError("no training examples")
    return d, n


def _set_lr(opts: list[Optimizer], lr: float) -> None:
    for opt in opts:
        for g in opt.param_groups:
            g["lr"] = lr


@dataclass(frozen=True)
class _Loop:
    """The :func:`fit` arguments that shape its loop."""

    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    momentum: float
    lr_schedule: str
    seed: int
    reseed_each_epoch: bool
    words_per_epoch: int | None
    max_steps: int | None
    progress: bool
    manual_grads: bool
    step_fn: Callable[[dict[str, torch.Tensor]], dict] | None

    def settings(self, n_examples: int | None) -> dict:
        """The loop's settings a checkpoint must match (``n_examples``: of fixed data; None: per-epoch data)."""
        return {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "optimizer": self.optimizer,
                "lr_schedule": self.lr_schedule, "seed": self.seed, "reseed_each_epoch": self.reseed_each_epoch,
                "n_examples": n_examples}


class _Run:
    """The state of one :func:`fit` run, which its checkpoint saves with the model's and the
    optimisers' states, the global torch RNG's and the model's private generators'
    (:func:`groundwords.checkpoints.training_state`): the counters (``step``; ``done``, finished
    epochs; ``offset``, examples done in the current one; ``prior_seconds``, its time so far),
    ``history``, the current epoch's loss ``sums`` and ``weights``, the ``shuffler``'s and
    ``data_rng``'s states, and the caller's ``state``."""

    def __init__(self, model, data, loop: _Loop, checkpoint: Checkpoint | None, data_rng: np.random.Generator | None,
                 state: dict):
        self.model, self.data, self.loop, self.checkpoint, self.data_rng = model, data, loop, checkpoint, data_rng
        self.state = state
        self.fixed = not callable(data)
        self.cur, self.n = _epoch_tensors(data) if self.fixed else (None, None)
        # the optimisers fit steps and schedules; a step_fn's own are only saved and restored
        self.opts = make_optimizer(model, loop.optimizer, loop.lr, loop.momentum) if loop.step_fn is None else []
        self.saved_opts = self.opts or list(getattr(loop.step_fn, "optimizers", []))
        self.shuffler = torch.Generator().manual_seed(loop.seed)
        self.fit_settings = loop.settings(self.n)
        self.step, self.done, self.offset, self.prior_seconds = 0, 0, 0, 0.0
        self.history: list[dict] = []
        self.sums: dict[str, torch.Tensor] = {}
        self.weights: dict[str, float | torch.Tensor] = {}
        self.kill_at = kill_hook_step() if checkpoint is not None else 0  # tests: interrupt a checkpointed run
        self.total_steps = math.ceil(self.n / loop.batch_size) * loop.epochs if self.fixed else None
        self.last_save = time.monotonic()

    def resume(self) -> None:
        """Continue from the checkpoint, if it holds a run of the same settings (the loop's and the stage's)."""
        state = self.checkpoint.load(self.fit_settings) if self.checkpoint is not None else None
        if state is None:
            return
        restore_training_state(state, self.model, self.saved_opts)
        self.step, self.done, self.offset = state["step"], state["epoch"], state["offset"]
        self.prior_seconds = state["epoch_seconds"]
        self.history, self.sums, self.weights = state["history"], state["sums"], state["weights"]
        self.shuffler.set_state(state["shuffler"])
        if self.data_rng is not None:
            self.data_rng.bit_generator.state = state["data_rng"]
        dev = next(iter(self.cur.values())).device if self.fixed else self.model_device()
        for k, v in state["caller"].items():
            v = _to_device(v, dev)
            if isinstance(self.state.get(k), list):
                self.state[k][:] = v
            else:
                self.state[k] = v

    def model_device(self) -> torch.device:
        p = next(iter(self.model.parameters()), None)
        return p.device if p is not None else torch.device("cpu")

    def out_of_steps(self) -> bool:
        return self.loop.max_steps is not None and self.step >= self.loop.max_steps

    def epoch(self, epoch: int) -> dict:
        """Train one epoch (the rest of it, after a mid-epoch checkpoint); returns its record."""
        loop = self.loop
        t0 = time.perf_counter() - self.prior_seconds
        # the states this epoch starts from: a mid-epoch checkpoint replays the draw and the shuffle
        rng_start = self.data_rng.bit_generator.state if self.data_rng is not None else None
        if not self.fixed:
            self.cur, self.n = _epoch_tensors(self.data(epoch))
        n = self.n
        if loop.reseed_each_epoch:
            self.shuffler = torch.Generator().manual_seed(loop.seed + epoch - 1)
        shuffler_start = self.shuffler.get_state()
        perm = torch.randperm(n, generator=self.shuffler).to(next(iter(self.cur.values())).device)
        if self.offset == 0:
            self.sums, self.weights = {}, {}
        if loop.lr_schedule == "epoch_linear":
            _set_lr(self.opts, loop.lr * max(1e-4, 1.0 - (epoch - 1 + 0.5) / loop.epochs))
        bar = tqdm(total=n, initial=self.offset, desc=f"epoch {epoch}/{loop.epochs}", unit="ex", unit_scale=True,
                   disable=not loop.progress, leave=False, mininterval=1.0)
        for start in range(self.offset, n, loop.batch_size):
            idx = perm[start:start + loop.batch_size]
            batch = {k: v[idx] for k, v in self.cur.items()}
            if loop.lr_schedule == "linear":
                _set_lr(self.opts, loop.lr * max(1e-4, 1.0 - self.step / self.total_steps))
            self.count(self.update(batch), len(idx))
            bar.update(len(idx))
            kill_if(self.step, self.kill_at)
            if self.out_of_steps():
                break
            if self.save_due() and start + len(idx) < n:
                self.save(epoch - 1, start + len(idx), shuffler_start, rng_start, time.perf_counter() - t0)
        bar.close()
        self.offset, self.prior_seconds = 0, 0.0
        return self.end_epoch(epoch, time.perf_counter() - t0)

    def update(self, batch: dict[str, torch.Tensor]) -> dict:
        """One optimisation step on ``batch``; returns its losses."""
        if self.loop.step_fn is not None:
            return self.loop.step_fn(batch)
        if self.loop.manual_grads:
            out = self.model.manual_grads(batch)
        else:
            out = self.model.loss(batch)
            for opt in self.opts:
                opt.zero_grad(set_to_none=True)
            out["total"].backward()
        for opt in self.opts:
            opt.step()
        return out

    def count(self, out: dict, b: int) -> None:
        """Add a step's losses to the epoch's example-weighted sums (``n_<k>``: component k's weight)."""
        self.step += 1
        with torch.no_grad():
            for k, v in out.items():
                if k.startswith("n_"):
                    continue
                w = out.get(f"n_{k}", b)
                self.sums[k] = self.sums.get(k, 0.0) + (v.detach() if torch.is_tensor(v) else v) * w
                self.weights[k] = self.weights.get(k, 0) + w

    def end_epoch(self, epoch: int, seconds: float) -> dict:
        """The epoch's record (mean losses, throughput), logged, added to the history and checkpointed."""
        n, epochs = self.n, self.loop.epochs
        wpe = n if self.loop.words_per_epoch is None else self.loop.words_per_epoch
        rec = {"epoch": epoch}
        for k, s in self.sums.items():
            w = float(self.weights[k])
            rec[k] = float(s) / w if w > 0 else float("nan")
            if not math.isfinite(rec[k]):
                log.warning("epoch %d: loss %s is %s", epoch, k, rec[k])
        rec.update(n_examples=n, seconds=seconds, words_per_s=wpe / seconds, examples_per_s=n / seconds)
        self.history.append(rec)
        log.info("epoch %d/%d: %s (%.1fs, %.0f words/s)", epoch, epochs,
                 ", ".join(f"{k}={rec[k]:.4f}" for k in self.sums), seconds, rec["words_per_s"])
        return rec

    def save_epoch_end(self, epoch: int, last: bool) -> None:
        """Checkpoint the run after ``epoch`` (and its ``on_epoch_end``) if one is due (``last``: the
        run's last epoch)."""
        if self.checkpoint is not None and self.checkpoint.due(time.monotonic() - self.last_save, epoch_end=True,
                                                               last=last):
            self.save(epoch, 0, self.shuffler.get_state(),
                      self.data_rng.bit_generator.state if self.data_rng is not None else None, 0.0)

    def save_due(self) -> bool:
        """Whether a mid-epoch checkpoint is due (``checkpoint.seconds`` since the last save)."""
        return self.checkpoint is not None and self.checkpoint.due(time.monotonic() - self.last_save)

    def save(self, epoch_done: int, at: int, shuffler_state, rng_state, seconds: float) -> None:
        self.checkpoint.save({
            "fit": self.fit_settings, "epoch": epoch_done, "offset": at, "step": self.step, "epoch_seconds": seconds,
            "history": self.history, "shuffler": shuffler_state, "data_rng": rng_state, "sums": self.sums,
            "weights": self.weights, "caller": self.state, **training_state(self.model, self.saved_opts),
        })
        self.last_save = time.monotonic()


def _to_device(v, dev: torch.device):
    """``v`` (a tensor, or lists / tuples / dicts of them and plain values) with its tensors on ``dev``."""
    if torch.is_tensor(v):
        return v.to(dev)
    if isinstance(v, (list, tuple)):
        return type(v)(_to_device(x, dev) for x in v)
    if isinstance(v, dict):
        return type(v)((k, _to_device(x, dev)) for k, x in v.items())
    return v


def write_word2vec_text(path, words: list[str], vectors: np.ndarray) -> None:
    """word2vec text format ("V dim" header, then "word v1 ... vdim"), atomically.

    '%.9g' round-trips float32 exactly, so the file equals ``vectors.npy`` once loaded.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    row_format = " ".join(["%.9g"] * vectors.shape[1])  # one format per row: ~2x faster than per number
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(f"{vectors.shape[0]} {vectors.shape[1]}\n")
        for w, row in zip(words, vectors.tolist()):
            f.write(w + " " + row_format % tuple(row) + "\n")


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
