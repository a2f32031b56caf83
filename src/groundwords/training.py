"""The training loop every model shares, and the outputs every training stage writes.

:func:`fit` optimises any model with a ``loss(batch) -> {"total": ..., ...}`` method over a dict of
example tensors (shuffled per epoch from a seeded generator; Adam, SGD or SparseAdam; constant or
word2vec's linear learning-rate decay; SGD's momentum, a step budget, or the caller's own update
step for loops that need one: IESG's alternating updates, the retrieval model's clipped steps).
:func:`check_finite` and :func:`finish_run` are the shared tail of the training stages. :func:`torch_settings` runs a stage with a given number of
threads and a forked RNG; :func:`write_outputs` writes ``vectors.npy``, ``vocab.txt``,
``loss.csv``, ``vectors.txt`` and, last, ``train.json``.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from groundwords.cli import UserError, log
from groundwords.files import atomic_path, write_json

OPTIMIZERS = ("adam", "sgd", "sparse_adam")


def make_optimizer(model: torch.nn.Module, name: str, lr: float, momentum: float = 0.0) -> list[torch.optim.Optimizer]:
    """Optimisers for ``model``.

    adam: torch.optim.Adam over everything (dense gradients; the paper's setting).
    sgd: SGD (with ``momentum``, if > 0); works with dense and sparse gradients (the model decides which).
    sparse_adam: SparseAdam for the model's sparse parameters + Adam for the dense rest.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adam":
        # fused: one kernel per step instead of ~10 passes over every parameter (same maths)
        return [torch.optim.Adam(params, lr=lr, fused=True)]
    if name == "sgd":
        return [torch.optim.SGD(params, lr=lr, momentum=momentum)]
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


def fit(
    model: torch.nn.Module,
    data: dict[str, torch.Tensor],
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
    momentum: float = 0.0,
    max_steps: int | None = None,
    step_fn: Callable[[dict[str, torch.Tensor]], dict] | None = None,
) -> list[dict]:
    """Optimise ``model.loss`` over ``data`` (a dict of tensors sharing their first dim).

    Each epoch draws a fresh permutation from a generator seeded with ``seed`` and feeds
    ``model.loss`` batches ``{key: tensor[idx]}``. ``lr_schedule="linear"`` decays the
    learning rate linearly to ``lr * 1e-4`` over the whole run (word2vec style).
    Returns one dict per epoch: example-weighted means of every loss component, ``seconds``,
    ``words_per_s`` and ``examples_per_s``. ``words_per_epoch`` defaults to the number of
    examples (one target word per example, as in CBOW).
    ``momentum``: SGD's momentum (``optimizer="sgd"``). ``max_steps``: stop after this many
    updates, also within an epoch (``epochs`` is then an upper bound). ``step_fn(batch)``: makes
    the update itself in place of ``model.loss`` + backward + the optimiser's step (e.g. IESG's
    alternating word and image steps, each with its own optimiser) and returns the losses to
    average (tensors or floats).
    """
    n = next(iter(data.values())).shape[0]
    if any(v.shape[0] != n for v in data.values()):
        raise ValueError("all data tensors must have the same first dimension")
    if n == 0:
        raise UserError("no training examples")
    words_per_epoch = n if words_per_epoch is None else words_per_epoch
    device = next(iter(data.values())).device
    opts = make_optimizer(model, optimizer, lr, momentum) if step_fn is None else []
    shuffler = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(n / batch_size)
    total_steps = steps_per_epoch * epochs
    step = 0
    history = []
    model.train()
    for epoch in range(1, epochs + 1):
        if max_steps is not None and step >= max_steps:
            break
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=shuffler).to(device)
        sums: dict[str, torch.Tensor] = {}
        weights: dict[str, float | torch.Tensor] = {}
        bar = tqdm(total=n, desc=f"epoch {epoch}/{epochs}", unit="ex", unit_scale=True,
                   disable=not progress, leave=False, mininterval=1.0)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            batch = {k: v[idx] for k, v in data.items()}
            if lr_schedule == "linear":
                cur = lr * max(1e-4, 1.0 - step / total_steps)
                for opt in opts:
                    for g in opt.param_groups:
                        g["lr"] = cur
            if step_fn is not None:
                out = step_fn(batch)
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
            if max_steps is not None and step >= max_steps:
                break
        bar.close()
        seconds = time.perf_counter() - t0
        rec = {"epoch": epoch}
        for k, s in sums.items():
            w = float(weights[k])
            rec[k] = float(s) / w if w > 0 else float("nan")
            if not math.isfinite(rec[k]):
                log.warning("epoch %d: loss %s is %s", epoch, k, rec[k])
        rec.update(seconds=seconds, words_per_s=words_per_epoch / seconds, examples_per_s=n / seconds)
        history.append(rec)
        log.info("epoch %d/%d: %s (%.1fs, %.0f words/s)", epoch, epochs,
                 ", ".join(f"{k}={rec[k]:.4f}" for k in sums), seconds, rec["words_per_s"])
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
