"""IV-SGNS's text->vision map: fitting it (least squares or an MLP), its fit quality, and the imagined vectors."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from groundwords.models.ivsgns import Imagination
from groundwords.training import fit


def fit_imagination(x, y, *, mapping: str = "linear", hidden: int = 300, epochs: int = 1000,
                    batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
                    progress: bool = False, device: str | torch.device = "cpu",
                    checkpoint=None) -> tuple[Imagination, list[dict]]:
    """Fit f on (x: text vectors, y: visual features): exactly (linear, on the CPU) or with Adam
    (nonlinear, on ``device``, where f stays; ``checkpoint``: a
    :class:`groundwords.checkpoints.Checkpoint` to resume from and save to); returns (f, per-epoch history)."""
    x, y = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    f = Imagination(x.shape[1], y.shape[1], mapping, hidden, seed=seed)
    if mapping == "linear":  # least squares has a closed form: its exact minimiser, no epochs to tune
        X = torch.cat([x, torch.ones(len(x), 1)], 1).double()
        sol = torch.linalg.lstsq(X, y.double(), driver="gelsd").solution  # minimum norm if under-determined
        with torch.no_grad():
            f.net.weight.copy_(sol[:-1].T.float())
            f.net.bias.copy_(sol[-1].float())
        with torch.no_grad():
            mse = float(F.mse_loss(f(x), y))
        return f, [{"epoch": 1, "total": mse, "mse": mse, "solver": "lstsq"}]
    f = f.to(device)
    history = fit(f, {"x": x.to(device), "y": y.to(device)}, epochs=epochs, batch_size=batch_size, lr=lr, optimizer="adam",
                  seed=seed, progress=progress, checkpoint=checkpoint)
    return f, history


@torch.no_grad()
def fit_quality(f: Imagination, x, y) -> dict[str, float]:
    """``mse`` and ``r2`` = 1 − SSE / Σ‖y − ȳ‖² of f on (x, y) (computed on f's device)."""
    dev = _device(f)
    x, y = torch.as_tensor(x, dtype=torch.float32).to(dev), torch.as_tensor(y, dtype=torch.float32).to(dev)
    sse = (f(x) - y).pow(2).sum().item()
    sst = (y - y.mean(0)).pow(2).sum().item()
    return {"mse": sse / y.numel(), "r2": 1.0 - sse / sst if sst > 0 else math.nan}


@torch.no_grad()
def imagined_vectors(f: Imagination, text, normalize: bool = True, chunk: int = 8192) -> np.ndarray:
    """[e_w/‖e_w‖, f(e_w)/‖f(e_w)‖] for every row of ``text`` (N, d) → (N, d + k) float32."""
    text = torch.as_tensor(text, dtype=torch.float32).to(_device(f))
    parts = []
    for s in range(0, len(text), chunk):
        e = text[s:s + chunk]
        v = f(e)
        if normalize:
            e, v = F.normalize(e, dim=1), F.normalize(v, dim=1)
        parts.append(torch.cat([e, v], 1))
    out = torch.cat(parts) if parts else torch.zeros(0, text.shape[1] + f(text[:0]).shape[1])
    return out.cpu().numpy().astype(np.float32)


def _device(f: Imagination) -> torch.device:
    return next(f.parameters()).device
