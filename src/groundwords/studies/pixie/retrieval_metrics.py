"""The retrieval metrics of PIXIE's Table 6 (pure functions of arrays): ranks of the best true item,
R@K, VSE++'s R-sum, and both directions' ranks / recalls of image and caption embeddings (see
:mod:`groundwords.studies.pixie.retrieval`)."""

from __future__ import annotations

from typing import Iterable

import numpy as np

KS = (1, 5, 10)
DIRECTIONS = ("i2s", "s2i")


def truth_mask(truth, shape: tuple[int, int]) -> np.ndarray:
    """(Q, I) boolean mask of the true items of each query.

    ``truth`` is a boolean (Q, I) array, a (Q,) integer array (one true item per query) or a
    sequence of Q iterables of item indices.
    """
    q, n = shape
    if isinstance(truth, np.ndarray) and truth.dtype == bool:
        if truth.shape != (q, n):
            raise ValueError(f"truth mask has shape {truth.shape}, scores {shape}")
        return truth
    if isinstance(truth, np.ndarray) and truth.ndim == 1 and np.issubdtype(truth.dtype, np.integer):
        truth = truth[:, None]
    if len(truth) != q:
        raise ValueError(f"{len(truth)} truth entries for {q} queries")
    mask = np.zeros((q, n), dtype=bool)
    for i, items in enumerate(truth):
        items = np.atleast_1d(np.asarray(list(items) if not isinstance(items, np.ndarray) else items,
                                         dtype=np.int64))
        if len(items) and (items.min() < 0 or items.max() >= n):
            raise ValueError(f"query {i}: true item index out of range [0, {n})")
        mask[i, items] = True
    return mask


def best_true_ranks(scores, truth) -> np.ndarray:
    """Rank (1 = best) of each query's best-scoring true item among the *false* items.

    ``rank = 1 + #{false items scoring >= the best true item}``: the other true items never
    count against a query, ties with false items always do (a constant scorer gets the worst
    rank). Every query needs at least one true item; NaN scores are an error.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a (queries, items) matrix, got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    mask = truth_mask(truth, scores.shape)
    if not mask.any(axis=1).all():
        raise ValueError("every query needs at least one true item")
    best = np.where(mask, scores, -np.inf).max(axis=1, keepdims=True)
    return 1 + ((scores >= best) & ~mask).sum(axis=1)


def recall_at_k(scores, truth, ks: Iterable[int] = KS) -> dict[int, float]:
    """``{k: fraction of queries whose best true item ranks <= k}`` (see :func:`best_true_ranks`).

    ``scores`` (Q, I): query q's score for item i; ``truth``: see :func:`truth_mask`.
    NaN for every k when there is no query.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape[0] == 0:
        return {int(k): float("nan") for k in ks}
    ranks = best_true_ranks(scores, truth)
    return {int(k): float((ranks <= k).mean()) for k in ks}


def rsum(recalls: dict[str, dict[int, float]]) -> float:
    """VSE++'s R-sum: R@1 + R@5 + R@10 of both directions, in percent (max 600)."""
    return float(sum(100.0 * r for d in DIRECTIONS for r in recalls[d].values()))


def retrieval_ranks(img_emb: np.ndarray, cap_emb: np.ndarray, cap_image: np.ndarray) -> dict:
    """Per-query ranks of both directions (see :func:`best_true_ranks`): ``{"i2s": (images,
    ranks), "s2i": (captions, ranks)}``, where ``images`` are the rows of ``img_emb`` that query
    (those with a caption) and ``captions`` the rows of ``cap_emb`` (all of them)."""
    scores = img_emb.astype(np.float64) @ cap_emb.astype(np.float64).T  # (I, C)
    queries = np.unique(cap_image)  # i2s: images with at least one caption
    if len(queries) == 0:
        empty = np.zeros(0, np.int64)
        return {"i2s": (empty, empty), "s2i": (empty, empty)}
    i2s_truth = cap_image[None, :] == queries[:, None]
    return {"i2s": (queries, best_true_ranks(scores[queries], i2s_truth)),
            "s2i": (np.arange(len(cap_image)), best_true_ranks(scores.T, np.asarray(cap_image, np.int64)))}


def retrieval_recalls(img_emb: np.ndarray, cap_emb: np.ndarray, cap_image: np.ndarray,
                      ks: Iterable[int] = KS) -> tuple[dict, dict]:
    """R@K of both directions for images ``img_emb`` (I, h) and captions ``cap_emb`` (C, h) whose
    image is row ``cap_image[c]`` of ``img_emb``. Returns ``(recalls, n_queries)`` keyed by direction."""
    ks = tuple(ks)
    ranks = retrieval_ranks(img_emb, cap_emb, np.asarray(cap_image, np.int64))
    recalls = {d: {int(k): float((r <= k).mean()) if len(r) else float("nan") for k in ks}
               for d, (_, r) in ranks.items()}
    return recalls, {d: len(r) for d, (_, r) in ranks.items()}
