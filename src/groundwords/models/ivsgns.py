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
epochs (no early stopping) with :func:`groundwords.training.fit`. Defaults: hidden 300 tanh, Adam
lr 1e-3, batch 64, 1,000 epochs (R² ≈ 0.9 on the planted data). Collell et al. used a linear map and a one-hidden-layer network trained
on the MSE; the hidden size / activation / optimiser here are our choices, not theirs verified.
Initialisation comes from a private ``torch.Generator(seed)`` (torch's default Linear ranges),
shuffling from :func:`~groundwords.training.fit`'s own seeded generator: same seed, same map.
"""

from __future__ import annotations

import math

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
