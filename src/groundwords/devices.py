"""The compute device of a stage: one resolver for every ``*.device`` config key (auto | cpu | cuda)."""

from __future__ import annotations

import torch

from groundwords.cli import UserError

#: the values of a ``*.device`` config key
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str = "auto", key: str = "device") -> torch.device:
    """``auto`` -> cuda if a CUDA GPU is available, else cpu; otherwise the named torch device
    (``cpu``, ``cuda``, ``cuda:1``). A :class:`UserError` names the config ``key`` (e.g.
    ``iesg.device``) when the value is no device or asks for CUDA on a machine without it."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise UserError(f"{key} = {device!r} is not a device ({', '.join(DEVICES)})") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{key} = {device}, but no CUDA GPU is available (use auto or cpu)")
    return dev
