"""The optimisers of the one training loop: Adam, SGD (with momentum) and SparseAdam.

They make exactly torch.optim's updates (Adam: the same fused kernel as
``torch.optim.Adam(fused=True)``; SGD: ``torch.optim.SGD``'s single-tensor update; SparseAdam:
torch's own functional ``sparse_adam``), bit for bit — ``tests/test_optimizers.py`` runs both
side by side — but without ``torch.optim.Optimizer``, whose methods import ``torch._dynamo``
(the whole compiler stack, ~1.5 s of CPU) the first time they run in a process: every training
job of the pipeline paid that, more than many of them spend training.

The interface is the part of torch.optim's that :func:`groundwords.training.fit` and the
checkpoints use: ``param_groups[0]["lr"]`` (settable), ``zero_grad(set_to_none=True)``,
``step()``, ``state_dict()``, ``load_state_dict()``. Only parameters with a gradient are
updated (as in torch.optim): WIELD's image head at γ = 0 never moves.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim._functional import sparse_adam

BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, the papers' Adam
EPS = 1e-8


class Optimizer:
    """What the three optimisers share: the parameter list, the learning rate, the state."""

    STATE_KEYS: tuple[str, ...] = ()

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        if not lr > 0:
            raise ValueError(f"learning rate must be > 0 (got {lr})")
        self.param_groups = [{"lr": float(lr)}]
        self.state: dict[int, dict] = {}  # parameter index -> its state

    @property
    def lr(self) -> float:
        return self.param_groups[0]["lr"]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def with_grad(self) -> list[tuple[int, torch.nn.Parameter]]:
        return [(i, p) for i, p in enumerate(self.params) if p.grad is not None]

    def state_dict(self) -> dict:
        return {"kind": type(self).__name__, "lr": self.lr,
                "state": {i: dict(s) for i, s in self.state.items()}}

    def load_state_dict(self, sd: dict) -> None:
        if sd.get("kind") != type(self).__name__:
            raise ValueError(f"a {sd.get('kind')} state cannot be loaded into {type(self).__name__}")
        self.param_groups[0]["lr"] = sd["lr"]
        self.state = {}
        for i, s in sd["state"].items():
            p = self.params[int(i)]
            self.state[int(i)] = {k: (v.to(p.device, copy=True) if torch.is_tensor(v) else v) for k, v in s.items()}


class Adam(Optimizer):
    """Adam (Kingma & Ba) with torch's defaults (betas 0.9/0.999, eps 1e-8, no weight decay),
    dense gradients; one fused kernel per device and dtype (``torch._fused_adam_``)."""

    @torch.no_grad()
    def step(self) -> None:
        groups: dict[tuple, list[list]] = {}
        for i, p in self.with_grad():
            if p.grad.is_sparse:
                raise RuntimeError("Adam does not support sparse gradients (optimizer sparse_adam does)")
            s = self.state.get(i)
            if s is None:  # as torch.optim.Adam(fused=True) initialises it
                s = self.state[i] = {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                                     "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                     "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
            g = groups.setdefault((p.device, p.dtype), [[], [], [], [], []])
            for lst, t in zip(g, (p, p.grad, s["exp_avg"], s["exp_avg_sq"], s["step"])):
                lst.append(t)
        for params, grads, exp_avgs, exp_avg_sqs, steps in groups.values():
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=self.lr,
                               beta1=BETAS[0], beta2=BETAS[1], weight_decay=0.0, eps=EPS, maximize=False,
                               grad_scale=None, found_inf=None)


class SGD(Optimizer):
    """Plain SGD, or heavy-ball momentum (``buf = m·buf + g``, first ``buf = g``; ``p -= lr·buf``);
    dense or sparse gradients (sparse only without momentum, as in torch.optim.SGD)."""

    def __init__(self, params, lr: float, momentum: float = 0.0):
        super().__init__(params, lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1) (got {momentum})")
        self.momentum = float(momentum)

    @torch.no_grad()
    def step(self) -> None:
        for i, p in self.with_grad():
            grad = p.grad
            if self.momentum:
                s = self.state.get(i)
                if s is None:
                    self.state[i] = s = {"momentum_buffer": grad.detach().clone()}
                else:
                    s["momentum_buffer"].mul_(self.momentum).add_(grad)
                grad = s["momentum_buffer"]
            p.add_(grad, alpha=-self.lr)


class SparseAdam(Optimizer):
    """Lazy Adam for sparse gradients (``torch.optim.SparseAdam``): only the rows in the
    gradient move, and only their moments decay."""

    @torch.no_grad()
    def step(self) -> None:
        for i, p in self.with_grad():
            if not p.grad.is_sparse:
                raise RuntimeError("SparseAdam needs sparse gradients (optimizer adam takes dense ones)")
            s = self.state.get(i)
            if s is None:
                s = self.state[i] = {"step": 0, "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                     "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
            s["step"] += 1
            sparse_adam([p], [p.grad], [s["exp_avg"]], [s["exp_avg_sq"]], [s["step"]], eps=EPS,
                        beta1=BETAS[0], beta2=BETAS[1], lr=self.lr, maximize=False)

