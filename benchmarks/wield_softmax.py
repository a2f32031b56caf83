"""The paper's WIELD (full softmax, Adam, γ = 10 on 32-d image targets): words/s of the training
loop's step variants, side by side in one run, interleaved, medians of repeats.

    python benchmarks/wield_softmax.py [--vocab 9459 30000] [--batch 20 1024] [--threads 1 2] [--repeats 3]

Variants (all through :func:`groundwords.training.fit`, same data, same model):

* ``reference``: autograd + ``torch.optim.Adam`` with its default (foreach) implementation —
  the step as it was before issue #10 (the baseline of the "≥ 3×" target);
* ``fused``: autograd + :class:`groundwords.optimizers.Adam` (torch's fused Adam kernel);
* ``manual``: hand-written gradients (:meth:`WIELD.manual_grads`) + the fused Adam — the pipeline's
  default for the full-softmax WIELD and image-input runs.

Examples: random CBOW windows (4 context words) over a vocabulary of ``V`` words (V = 9459 is the
size of gensim's Wikipedia excerpt at min count 5, the paper's CC vocabulary is ~9.5k words);
words/s = examples (one centre word each) per second of the loop. The γ = 0 rate of ``manual``
is measured too, for the image head's cost. Each cell times ``--steps`` optimiser steps after a
warm-up; the machine may be shared, so read the ratios (same run, interleaved), not one time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from groundwords.models.wield import WIELD
from groundwords.training import fit

IMAGE_DIM, DIM, CONTEXT = 32, 100, 4


def make_data(V: int, n: int, device: torch.device, seed: int = 0) -> tuple[dict, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    data = {"context": torch.randint(0, V, (n, CONTEXT), generator=g), "target": torch.randint(0, V, (n,), generator=g),
            "image_row": torch.randint(0, 4096, (n,), generator=g)}
    return {k: v.to(device) for k, v in data.items()}, torch.randn(4096, IMAGE_DIM, generator=g).to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_step(model: WIELD, lr: float):
    opt = torch.optim.Adam(model.parameters(), lr=lr)  # foreach (torch's default), autograd

    def step(batch):
        out = model.loss(batch)
        opt.zero_grad(set_to_none=True)
        out["total"].backward()
        opt.step()
        return out

    step.optimizers = [opt]
    return step


def rate(variant: str, V: int, batch: int, gamma: float, steps: int, data, targets) -> float:
    n = steps * batch
    sub = {k: v[:n] for k, v in data.items()}
    torch.manual_seed(0)
    model = WIELD(V, DIM, IMAGE_DIM, gamma, image_targets=targets).to(targets.device)
    kw = dict(epochs=1, batch_size=batch, lr=1e-3, progress=False)
    if variant == "reference":
        kw["step_fn"] = reference_step(model, 1e-3)
    elif variant == "manual":
        kw["manual_grads"] = True
    fit(model, {k: v[: 5 * batch] for k, v in sub.items()}, **kw)  # warm-up (allocations, first calls)
    sync(targets.device)
    t = time.perf_counter()
    fit(model, sub, **kw)
    sync(targets.device)
    return n / (time.perf_counter() - t)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--vocab", type=int, nargs="+", default=[9459])
    p.add_argument("--batch", type=int, nargs="+", default=[20, 1024])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3.0, help="rough length of one timed cell")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args(argv)
    cells = [(V, b, T) for V in a.vocab for b in a.batch for T in a.threads]
    variants = [("reference", 10.0), ("fused", 10.0), ("manual", 10.0), ("manual", 0.0)]
    results = {}
    for V, b, T in cells:
        torch.set_num_threads(T)
        data, targets = make_data(V, 400_000, torch.device(a.device))
        # size the cells from one quick reference measurement: ~a.seconds each
        probe = rate("reference", V, b, 10.0, 20, data, targets)
        steps = max(50, min(len(data["target"]) // b, int(probe * a.seconds / b)))
        runs: dict[str, list[float]] = {}
        for _ in range(a.repeats):  # interleaved: every variant once per round
            for name, gamma in variants:
                runs.setdefault(f"{name} γ={gamma:g}", []).append(rate(name, V, b, gamma, steps, data, targets))
        med = {k: statistics.median(v) for k, v in runs.items()}
        base = med["reference γ=10"]
        results[f"V={V} batch={b} threads={T}"] = {"steps": steps, "words_per_s": med, "runs": runs}
        print(f"V = {V}, batch {b}, {T} thread(s) ({a.device}), {steps} steps per timing, median of {a.repeats}:")
        for k, v in med.items():
            print(f"  {k:18s} {v:10,.0f} words/s  {v / base:5.2f}x reference")
        print(f"  image head cost (manual): γ=10 / γ=0 time = {med['manual γ=0'] / med['manual γ=10']:.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
