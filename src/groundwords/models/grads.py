"""What the models' hand-written gradients share (``manual_grads`` of WIELD, SGNS, PIXIE, V-SGNS)."""

from __future__ import annotations

import torch


def zeroed_grad(weight: torch.Tensor) -> torch.Tensor:
    """``weight.grad``, all zero, for a step to accumulate into (its buffer is reused between steps)."""
    if weight.grad is None:
        weight.grad = torch.zeros_like(weight)
    else:
        weight.grad.zero_()
    return weight.grad
