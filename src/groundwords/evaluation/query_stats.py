"""Uncertainty for the mean of per-query values (P@k, R@k of retrieval or matching): bootstrap
over **queries**, the counterpart of :mod:`groundwords.evaluation.stats` (which resamples
benchmark pairs) and sharing its resampling engine and conventions (non-finite values are
excluded, ``seed`` makes every result reproducible).
"""

from __future__ import annotations

import numpy as np

from groundwords.evaluation.stats import (
    _as_1d,
    _check_boot,
    _delta_summary,
    _index_chunks,
    _percentiles,
)

__all__ = ["bootstrap_mean", "paired_bootstrap_mean"]


def _resampled_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement) of the rows of ``values`` (n,) or (n, m).

    Each resample draws one index vector; for 2-D ``values`` every column is averaged over the
    same draw (a paired resample). Returns (n_boot,) or (n_boot, m).
    """
    rng = np.random.default_rng(seed)
    n = values.shape[0]
    out = []
    for idx in _index_chunks(rng, n, int(n_boot)):
        out.append(values[idx].mean(axis=1))
    return np.concatenate(out)


def bootstrap_mean(values, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> dict:
    """Percentile bootstrap CI of the mean of per-query values, resampling queries.

    ``values``: one number per query, typically a 0/1 hit (``rank <= k``), so that the mean is
    P@k / R@k. Non-finite entries (queries the model does not answer) are excluded. The
    ``n`` queries are resampled with replacement ``n_boot`` times (``default_rng(seed)``) and
    the interval is the ``alpha/2`` and ``1 - alpha/2`` percentiles of the resampled means.

    Returns ``dict(mean, lo, hi, se, n, n_boot)`` (``se``: the standard deviation of the
    resampled means). With no query, everything but ``n`` is NaN. A sample of all-equal
    values gives the degenerate interval ``[mean, mean]`` (the percentile bootstrap cannot
    do better: e.g. 0 hits in 20 queries gives [0, 0]).
    """
    _check_boot(n_boot, alpha)
    v = _as_1d(values, "values")
    v = v[np.isfinite(v)]
    n = v.size
    out = dict(mean=float("nan"), lo=float("nan"), hi=float("nan"), se=float("nan"), n=int(n), n_boot=0)
    if n == 0:
        return out
    means = _resampled_means(v, n_boot, seed)
    out.update(mean=float(v.mean()), se=float(np.std(means, ddof=1)) if means.size > 1 else float("nan"),
               n_boot=int(means.size))
    out["lo"], out["hi"] = _percentiles(means, alpha)
    return out


def paired_bootstrap_mean(values_a, values_b, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Paired bootstrap comparison of two models' per-query values (e.g. hits at k).

    ``values_a[i]`` and ``values_b[i]`` belong to the same query ``i``; queries where either is
    non-finite are excluded. The statistic is ``delta = mean(b) - mean(a)`` (positive: ``b``
    is better). The queries are resampled jointly ``n_boot`` times; ``lo``/``hi``, ``se`` and
    ``p_value`` are computed from the bootstrap differences exactly as in
    :func:`paired_bootstrap`.

    Returns ``dict(delta, lo, hi, se, p_value, n, mean_a, mean_b, n_boot)``.
    """
    _check_boot(n_boot, alpha)
    a, b = _as_1d(values_a, "values_a"), _as_1d(values_b, "values_b")
    if a.shape != b.shape:
        raise ValueError(f"values_a has {a.size} queries but values_b has {b.size}")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    n = a.size
    out = dict(delta=float("nan"), lo=float("nan"), hi=float("nan"), se=float("nan"), p_value=float("nan"),
               n=int(n), mean_a=float("nan"), mean_b=float("nan"), n_boot=0)
    if n == 0:
        return out
    d = _resampled_means(b - a, n_boot, seed)  # the mean of differences = the difference of means
    out.update(delta=float(b.mean() - a.mean()), mean_a=float(a.mean()), mean_b=float(b.mean()))
    out.update(_delta_summary(d, alpha))
    return out
