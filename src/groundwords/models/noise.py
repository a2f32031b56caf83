"""Sampling helpers of the word2vec-family models: alias tables, the noise-word sampler, seeded generators."""

from __future__ import annotations

import numpy as np
import torch


def alias_table(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker/Vose alias table: exact O(1) sampling from a discrete distribution.

    Draw ``i`` uniformly, ``u`` uniform in [0, 1): the sample is ``i if u < accept[i] else alias[i]``.
    """
    n = len(probs)
    scaled = np.asarray(probs, dtype=np.float64) * n / np.sum(probs)
    accept, alias = np.ones(n), np.arange(n)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        accept[s], alias[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    return accept, alias  # leftovers (numerical round-off) keep accept = 1


class NoiseSampler:
    """Draw word ids ∝ ``weights`` with the alias method and a private seeded generator."""

    def __init__(self, weights, seed: int = 0):
        accept, alias = alias_table(np.clip(np.asarray(weights, dtype=np.float64), 0, None))
        self.accept = torch.from_numpy(accept).float()
        self.alias = torch.from_numpy(alias).long()
        self.n, self.seed = len(accept), seed
        self.generator: torch.Generator | None = None

    def __call__(self, shape, device="cpu") -> torch.Tensor:
        device = torch.device(device)
        if self.generator is None or self.generator.device != device:
            self.generator = torch.Generator(device=device).manual_seed(self.seed)
            self.accept, self.alias = self.accept.to(device), self.alias.to(device)
        i = torch.randint(0, self.n, shape, generator=self.generator, device=device)
        u = torch.rand(shape, generator=self.generator, device=device)
        return torch.where(u < self.accept[i], i, self.alias[i])


def seeded_generator(current: torch.Generator | None, seed: int, device) -> torch.Generator:
    device = torch.device(device)
    if current is None or current.device != device:
        current = torch.Generator(device=device).manual_seed(seed)
    return current


def keep_probabilities(counts, sample: float) -> np.ndarray:
    """Per-word probability of keeping an occurrence (gensim's ``sample`` formula; 1 if sample <= 0)."""
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones(len(counts))
    t = sample * counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        p = (np.sqrt(counts / t) + 1.0) * t / counts
    return np.where(counts > 0, np.minimum(p, 1.0), 1.0)
