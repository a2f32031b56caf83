"""Nearest neighbours by cosine similarity (WIELD's Table 3, PIXIE's Table 5)."""

from __future__ import annotations

import numpy as np

from groundwords.vectors import unit_rows


def nearest_neighbours(words: list[str], vectors: np.ndarray, queries: list[str], k: int = 5) -> dict[str, list]:
    """Top-``k`` cosine neighbours (word, cosine) of each query word; [] for a word not in the vocabulary."""
    index = {w.lower(): i for i, w in reversed(list(enumerate(words)))}
    unit = unit_rows(vectors, axis=1, eps=1e-12)
    out = {}
    for q in queries:
        i = index.get(q.lower())
        if i is None:
            out[q] = []
            continue
        sims = unit @ unit[i]
        sims[i] = -np.inf
        top = np.argsort(-sims, kind="stable")[:k]
        out[q] = [(words[j], float(sims[j])) for j in top if np.isfinite(sims[j])]
    return out
