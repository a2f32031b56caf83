"""Checkpoints: resume an interrupted training run bit for bit.

:class:`Checkpoint` is the checkpoint file of one run (``<out_dir>/checkpoint.pt``);
:func:`groundwords.training.fit` saves a run's whole state to it (model, optimisers, counters,
every RNG: :func:`training_state`) every ``training.checkpoint_seconds`` and after the last
epoch, and resumes from it (:func:`restore_training_state`). :func:`file_identity` names an input
file in a checkpoint's settings; :func:`kill_hook_step` / :func:`kill_if` let the tests interrupt
a run.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import signal
from pathlib import Path

import numpy as np
import torch

from groundwords.cli import UserError, log
from groundwords.files import atomic_path
from groundwords.optimizers import Optimizer

#: test hook: a training process SIGKILLs itself right after this many optimiser steps of one fit
KILL_AT_STEP_ENV = "GROUNDWORDS_KILL_AT_STEP"
CHECKPOINT_NAME = "checkpoint.pt"  # in a training stage's output directory


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
    ``seconds``: save at most this often, between steps or at an epoch end, and always after the
    last epoch (0: at every epoch end, never within one); see :meth:`due`.
    :func:`groundwords.training.fit` saves and resumes through it; the stage calls :meth:`remove`
    once its outputs are written.
    """

    FORMAT = 3  # 3: + the caller's state of fit(state=...); 2: groundwords.optimizers' state dicts (1: torch.optim's)

    def __init__(self, path, settings: dict, seconds: float = 0.0):
        if not (seconds >= 0 and math.isfinite(seconds)):
            raise UserError(f"training.checkpoint_seconds must be a finite number >= 0 (got {seconds})")
        self.path, self.seconds = Path(path), float(seconds)
        self.settings = json.loads(json.dumps(settings, sort_keys=True, default=str))
        self.n_saved = 0

    def due(self, since_save: float, *, epoch_end: bool = False, last: bool = False) -> bool:
        """Whether a training loop saves now, ``since_save`` seconds after its last save (or its
        start): within an epoch once ``seconds`` (> 0) have passed; at an epoch end also then, at
        every epoch end when ``seconds`` is 0, and always after the ``last`` epoch (so many short
        epochs, e.g. IV-SGNS's 1,000, do not write one checkpoint each)."""
        if epoch_end and (last or not self.seconds):
            return True
        return bool(self.seconds) and since_save >= self.seconds

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


def stage_checkpoint(out_dir, settings: dict, seconds: float | None, dev: torch.device) -> Checkpoint | None:
    """The run's :class:`groundwords.checkpoints.Checkpoint` (None without ``seconds``); its settings name
    the device unless it is the CPU (a checkpoint resumes on the device it was made on)."""
    if seconds is None:
        return None
    return Checkpoint(Path(out_dir) / CHECKPOINT_NAME,
                      {**settings, **({} if dev.type == "cpu" else {"device": str(dev)})}, seconds)


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

