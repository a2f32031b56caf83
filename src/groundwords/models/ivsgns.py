"""IV-SGNS: "imagined" visual vectors (Collell, Zhang & Moens, AAAI 2017).

A map f from text to vision is fitted on the words that have both an SGNS vector e_w and a
visual feature vector v_w, by least squares::

    min_f  1/(N k) Σ_w ‖f(e_w) − v_w‖²

* ``linear``:    f(e) = A e + b;
* ``nonlinear``: f(e) = A₂ tanh(A₁ e + b₁) + b₂, one hidden layer (default 300 units).

Every word with an SGNS vector (with or without images) then gets imagined features f(e_w),
and its multimodal vector is the concatenation::

    x_w = [e_w / ‖e_w‖, f(e_w) / ‖f(e_w)‖]

(L2-normalising each half, so neither modality dominates the cosine; ``normalize=False``
keeps both raw). Training: the linear map is the least-squares solution, computed exactly
(``torch.linalg.lstsq``; the minimum-norm one if there are fewer words than text dimensions):
Adam at lr 1e-3 for the former default of 200 epochs left R² at 0.1-0.3 on a few hundred words
(``docs/planted.md``). The nonlinear map: Adam over shuffled mini-batches for a fixed number of
epochs (no early stopping) with :func:`groundwords.train.fit`. Defaults: hidden 300 tanh, Adam
lr 1e-3, batch 64, 1,000 epochs (R² ≈ 0.9 on the planted data). Collell et al. used a linear map and a one-hidden-layer network trained
on the MSE; the hidden size / activation / optimiser here are our choices, not theirs verified.
Initialisation comes from a private ``torch.Generator(seed)`` (torch's default Linear ranges),
shuffling from :func:`~groundwords.train.fit`'s own seeded generator: same seed, same map.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MAPPINGS = ("linear", "nonlinear")


class Imagination(nn.Module):
    """f: text vectors (N, d) → visual features (N, k). Batches: ``x`` (N, d), ``y`` (N, k)."""

    def __init__(self, in_dim: int, out_dim: int, mapping: str = "linear", hidden: int = 300, *, seed: int = 0):
        super().__init__()
        if mapping not in MAPPINGS:
            raise ValueError(f"mapping must be one of {MAPPINGS} (got {mapping!r})")
        self.mapping = mapping
        with torch.random.fork_rng(devices=[]):
            if mapping == "linear":
                self.net = nn.Linear(in_dim, out_dim)
            else:
                self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Linear(hidden, out_dim))
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in self.net.modules():
                if isinstance(layer, nn.Linear):
                    bound = 1.0 / math.sqrt(layer.in_features)
                    layer.weight.uniform_(-bound, bound, generator=g)
                    layer.bias.uniform_(-bound, bound, generator=g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mse = F.mse_loss(self(batch["x"]), batch["y"])
        return {"total": mse, "mse": mse}

    def sparse_parameters(self) -> list[nn.Parameter]:
        return []


def fit_imagination(x, y, *, mapping: str = "linear", hidden: int = 300, epochs: int = 1000,
                    batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
                    progress: bool = False) -> tuple[Imagination, list[dict]]:
    """Fit f on (x: text vectors, y: visual features): exactly (linear) or with Adam (nonlinear);
    returns (f, per-epoch history)."""
    from ..train import fit  # here: groundwords.train imports the models package

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
    history = fit(f, {"x": x, "y": y}, epochs=epochs, batch_size=batch_size, lr=lr, optimizer="adam",
                  seed=seed, progress=progress)
    return f, history


@torch.no_grad()
def fit_quality(f: Imagination, x, y) -> dict[str, float]:
    """``mse`` and ``r2`` = 1 − SSE / Σ‖y − ȳ‖² of f on (x, y)."""
    x, y = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    sse = (f(x) - y).pow(2).sum().item()
    sst = (y - y.mean(0)).pow(2).sum().item()
    return {"mse": sse / y.numel(), "r2": 1.0 - sse / sst if sst > 0 else math.nan}


@torch.no_grad()
def imagined_vectors(f: Imagination, text, normalize: bool = True, chunk: int = 8192) -> np.ndarray:
    """[e_w/‖e_w‖, f(e_w)/‖f(e_w)‖] for every row of ``text`` (N, d) → (N, d + k) float32."""
    text = torch.as_tensor(text, dtype=torch.float32)
    parts = []
    for s in range(0, len(text), chunk):
        e = text[s:s + chunk]
        v = f(e)
        if normalize:
            e, v = F.normalize(e, dim=1), F.normalize(v, dim=1)
        parts.append(torch.cat([e, v], 1))
    out = torch.cat(parts) if parts else torch.zeros(0, text.shape[1] + f(text[:0]).shape[1])
    return out.numpy().astype(np.float32)
