"""Uncertainty for word-similarity scores: bootstrap CIs and paired model comparisons.

None of the reproduced papers reports any: the WIELD paper's Table 2, for instance, compares
Spearman coefficients that differ in the second decimal on the ~3000 MEN pairs without saying
whether the differences are larger than the sampling noise of the benchmark itself. These
functions quantify that noise by resampling benchmark **pairs** (the benchmark is treated as a
sample of word pairs; the trained models are held fixed).

Inputs are per-pair arrays aligned with one benchmark: ``human`` (the human scores) and one or
two arrays of model similarities (cosines). ``NaN`` (any non-finite value) marks a pair a model
does not cover (out of vocabulary); such pairs are excluded, never imputed. A pair whose human
score is non-finite is excluded too.

Functions
---------
:func:`spearman`
    Spearman's rho over the covered pairs (:func:`scipy.stats.spearmanr`).
:func:`bootstrap_ci`
    percentile bootstrap confidence interval of rho.
:func:`paired_bootstrap`
    the difference rho(b) - rho(a) on the pairs both models cover, its percentile bootstrap CI
    and a two-sided bootstrap p-value.
:func:`resample_spearman`
    the vectorised engine: rho on each row of an index matrix of resamples.
:func:`bootstrap_mean` / :func:`paired_bootstrap_mean` (in :mod:`groundwords.evaluation.query_stats`)
    the same for the mean of per-query values
    (0/1 hits of a retrieval or matching query at rank k, so the mean is P@k or R@k): a
    percentile CI, and the paired difference of two models on the queries both answer,
    resampling **queries**.
:func:`mde`
    the minimum detectable effect at a bootstrap standard error (two-sided test, given power).

Implementation
--------------
Each resample is a row of an ``(n_boot, n)`` matrix of pair indices drawn with replacement
(``numpy.random.default_rng(seed)``), processed in chunks of at most ``CHUNK_ELEMENTS``
indices to bound memory. Spearman's rho of a resample is the Pearson correlation of its
**average ranks** (ties share the mean of the ranks they span, exactly as
:func:`scipy.stats.rankdata` and :func:`scipy.stats.spearmanr` do). The ranks are computed
without sorting: every value is first mapped to its position among the distinct values of the
full sample; per resample a ``bincount`` over those positions gives how many copies of each
distinct value were drawn, and the average rank of value ``k`` is then
``(copies of smaller values) + (copies of k + 1) / 2``. Ranks are half-integers, exact in
float64, so each resampled rho equals scipy's on the same resample up to rounding (~1e-15).
3000 pairs x 2000 resamples take a fraction of a second.

Several trained models of one setting (seeds) are handled by passing a 2-D ``(runs, pairs)``
prediction array: the statistic is then the mean rho over runs, recomputed on every resample
of pairs, so the interval of a seed-averaged rho reflects the benchmark's sampling noise. Only
pairs covered by every run are used.

A resample in which the human scores or the similarities are all equal has no defined rho;
it is dropped (the number kept is returned as ``n_boot``). All functions are pure: the same
inputs and ``seed`` give the same result.
"""

from __future__ import annotations

import numpy as np

__all__ = ["spearman", "spearmanr", "bootstrap_ci", "paired_bootstrap", "resample_spearman", "mde", "MIN_PAIRS"]

#: Fewer usable pairs than this gives rho = NaN (as in :mod:`groundwords.evaluation.similarity`).
MIN_PAIRS = 3
#: Upper bound on the number of resampled indices held in memory at once (rows x pairs).
CHUNK_ELEMENTS = 250_000


# ---------------------------------------------------------------------------------------------
# Input handling


def _as_1d(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (got shape {a.shape})")
    return a


def _as_runs(x, name: str) -> np.ndarray:
    """Predictions as a 2-D ``(runs, pairs)`` array: one row per trained model (e.g. seed)."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        return a[None, :]
    if a.ndim != 2 or a.shape[0] < 1:
        raise ValueError(f"{name} must be one- or two-dimensional (got shape {a.shape})")
    return a


def _covered(human, *preds) -> tuple[np.ndarray, ...]:
    """Return ``(human, *preds)`` restricted to the pairs finite in all of them.

    Each prediction comes back 2-D, ``(runs, covered pairs)``.
    """
    h = _as_1d(human, "human")
    ps = [_as_runs(p, f"pred{'' if len(preds) == 1 else '_' + 'ab'[i]}") for i, p in enumerate(preds)]
    for p in ps:
        if p.shape[1] != h.shape[0]:
            raise ValueError(f"human has {h.size} pairs but a prediction array has {p.shape[1]}")
    mask = np.isfinite(h)
    for p in ps:
        mask &= np.isfinite(p).all(axis=0)
    return (h[mask], *(p[:, mask] for p in ps))


def _mean_rho(h: np.ndarray, runs: np.ndarray) -> float:
    """Mean over runs of Spearman's rho (NaN if any run's rho is undefined)."""
    return float(np.mean([_spearman_clean(h, p) for p in runs]))


def _mean_rho_rows(rank_h, rankers, idx) -> np.ndarray:
    hr, hc = rank_h(idx)
    return np.mean([_rho_rows(hr, hc, *r(idx)) for r in rankers], axis=0)


def _check_boot(n_boot: int, alpha: float) -> None:
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer (got {n_boot!r})")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1) (got {alpha!r})")


def _spearman_clean(h: np.ndarray, p: np.ndarray) -> float:
    """Spearman's rho of two finite arrays; NaN when too short or either is constant."""
    if h.size < MIN_PAIRS or np.ptp(h) == 0 or np.ptp(p) == 0:
        return float("nan")
    return spearmanr(h, p, pvalue=False)[0]


def spearmanr(x, y, pvalue: bool = True) -> tuple[float, float]:
    """Spearman's rho and its two-sided p-value, bit for bit ``scipy.stats.spearmanr(x, y)``.

    For two finite 1-D samples of equal length. It takes scipy's arithmetic step by step
    (the same ``column_stack``, ``apply_along_axis`` and ``corrcoef`` calls, so the same float
    operations in the same order) with the average ranks of :func:`average_ranks`, which are
    exact half-integers like ``scipy.stats.rankdata``'s; only importing ``scipy.stats`` (most of
    a small job's run time) is avoided. Fewer than 2 values or a constant sample gives
    ``(nan, nan)`` (scipy: the same, with a ``ConstantInputWarning``). ``pvalue=False`` skips
    the p-value (NaN) and with it the ``scipy.special`` import.
    """
    a = np.column_stack((np.asarray(x), np.asarray(y)))
    n = a.shape[0]
    if n <= 1 or (a[:, 0][0] == a[:, 0]).all() or (a[:, 1][0] == a[:, 1]).all():
        return float("nan"), float("nan")
    a_ranked = np.apply_along_axis(average_ranks, 0, a)
    rs = np.corrcoef(a_ranked, rowvar=False)
    if not pvalue:
        return float(rs[1, 0]), float("nan")
    from scipy.special import stdtr  # the t distribution's cdf, as scipy.stats uses

    dof = n - 2
    with np.errstate(divide="ignore"):  # rho = +-1
        t = rs * np.sqrt((dof / ((rs + 1.0) * (1.0 - rs))).clip(0))
    prob = 2 * stdtr(dof, -np.abs(t))
    return float(rs[1, 0]), float(prob[1, 0])


def average_ranks(x) -> np.ndarray:
    """1-based ranks of a 1-D sample, ties sharing their mean rank (``scipy.stats.rankdata``)."""
    codes, k = _dense_codes(np.asarray(x))
    return _resample_ranks(codes, k, np.arange(codes.size)[None, :])[0][0]


# ---------------------------------------------------------------------------------------------
# Point estimate


def spearman(human, pred) -> float:
    """Spearman's rho between human scores and model similarities over the covered pairs.

    Pairs where ``pred`` (or ``human``) is not finite are excluded. Returns NaN when fewer
    than ``MIN_PAIRS`` pairs remain or either side is constant. A 2-D ``pred`` (runs x pairs)
    gives the mean rho over runs, on the pairs every run covers.
    """
    h, p = _covered(human, pred)
    return _mean_rho(h, p)


# ---------------------------------------------------------------------------------------------
# Vectorised resampled Spearman


def _dense_codes(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Position of each value among the sorted distinct values of ``x``, and their number."""
    uniq, codes = np.unique(x, return_inverse=True)
    return codes.reshape(-1).astype(np.intp), uniq.size


def _resample_ranks(codes: np.ndarray, k: int, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average ranks (1-based, ties averaged) within each row of resamples ``idx``.

    ``codes``/``k`` come from :func:`_dense_codes` of the full sample. Returns ``(ranks,
    constant)`` where ``ranks`` has ``idx``'s shape and ``constant[r]`` is True when every
    value drawn in row ``r`` is the same.
    """
    rows, n = idx.shape
    c = codes[idx]                                                  # (rows, n) value codes
    offsets = (np.arange(rows, dtype=np.intp) * k)[:, None]
    counts = np.bincount((c + offsets).ravel(), minlength=rows * k).reshape(rows, k)
    below = np.cumsum(counts, axis=1) - counts                      # copies of smaller values
    avg = below + (counts + 1) * 0.5                                # average rank per value
    ranks = np.take_along_axis(avg, c, axis=1)
    constant = counts.max(axis=1) == n
    return ranks, constant


def _row_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of corresponding rows of two equally shaped 2-D arrays."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    num = np.einsum("ij,ij->i", xc, yc)
    den = np.sqrt(np.einsum("ij,ij->i", xc, xc) * np.einsum("ij,ij->i", yc, yc))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    return np.clip(r, -1.0, 1.0)


class _Ranker:
    """Precomputed dense codes of one sample, to rank many of its resamples quickly."""

    def __init__(self, x: np.ndarray):
        self.codes, self.k = _dense_codes(x)

    def __call__(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _resample_ranks(self.codes, self.k, idx)


def _rho_rows(h_rank, h_const, p_rank, p_const) -> np.ndarray:
    r = _row_pearson(h_rank, p_rank)
    r[h_const | p_const] = np.nan
    return r


def resample_spearman(human, pred, idx) -> np.ndarray:
    """Spearman's rho of each resample: row ``r`` of ``idx`` lists the pair indices drawn.

    ``human`` and ``pred`` must be finite and of equal length ``n``; ``idx`` is an integer
    array of shape ``(n_resamples, m)`` with entries in ``[0, n)`` (``m`` need not equal
    ``n``). A row whose human scores or predictions are all equal gives NaN. Each value equals
    ``scipy.stats.spearmanr(human[idx[r]], pred[idx[r]])`` (average ranks for ties).
    """
    h = _as_1d(human, "human")
    p = _as_1d(pred, "pred")
    if h.shape != p.shape:
        raise ValueError(f"human has {h.size} pairs but pred has {p.size}")
    if not (np.isfinite(h).all() and np.isfinite(p).all()):
        raise ValueError("resample_spearman needs finite inputs (drop uncovered pairs first)")
    idx = np.asarray(idx)
    if idx.ndim != 2 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError("idx must be a 2-D integer array (resamples x pairs)")
    if idx.size and (idx.min() < 0 or idx.max() >= h.size):
        raise ValueError(f"idx entries must lie in [0, {h.size})")
    if idx.shape[1] < 2:
        return np.full(idx.shape[0], np.nan)
    hr, hc = _Ranker(h)(idx)
    pr, pc = _Ranker(p)(idx)
    return _rho_rows(hr, hc, pr, pc)


def _index_chunks(rng: np.random.Generator, n: int, n_boot: int):
    """Yield ``(rows, n)`` index matrices of resamples, ``n_boot`` rows in all."""
    rows = max(1, CHUNK_ELEMENTS // max(n, 1))
    done = 0
    while done < n_boot:
        m = min(rows, n_boot - done)
        yield rng.integers(0, n, size=(m, n))
        done += m


def _percentiles(x: np.ndarray, alpha: float) -> tuple[float, float]:
    if x.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(x, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


# ---------------------------------------------------------------------------------------------
# Bootstrap confidence interval of rho


def bootstrap_ci(human, pred, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> dict:
    """Percentile bootstrap confidence interval of Spearman's rho.

    The ``n_pairs`` covered pairs (finite ``pred`` and ``human``) are resampled with
    replacement ``n_boot`` times; rho is recomputed on each resample and the interval is the
    ``alpha/2`` and ``1 - alpha/2`` percentiles of those values (numpy's linear
    interpolation). Constant resamples are dropped.

    Returns ``dict(rho, lo, hi, n_pairs, n_boot)``: the point estimate (:func:`spearman`), the
    interval, the number of covered pairs and the number of resamples kept. With fewer than
    ``MIN_PAIRS`` covered pairs or an undefined rho, ``rho``, ``lo`` and ``hi`` are NaN.
    """
    _check_boot(n_boot, alpha)
    h, p = _covered(human, pred)
    n = h.size
    rho = _mean_rho(h, p)
    out = dict(rho=rho, lo=float("nan"), hi=float("nan"), n_pairs=int(n), n_boot=0)
    if not np.isfinite(rho):
        return out
    rng = np.random.default_rng(seed)
    rank_h, rank_p = _Ranker(h), [_Ranker(r) for r in p]
    boots = []
    for idx in _index_chunks(rng, n, int(n_boot)):
        boots.append(_mean_rho_rows(rank_h, rank_p, idx))
    b = np.concatenate(boots)
    b = b[np.isfinite(b)]
    out["lo"], out["hi"] = _percentiles(b, alpha)
    out["n_boot"] = int(b.size)
    return out


# ---------------------------------------------------------------------------------------------
# Paired comparison of two models


def paired_bootstrap(human, pred_a, pred_b, n_boot: int = 2000, seed: int = 0,
                     alpha: float = 0.05) -> dict:
    """Paired bootstrap comparison of two models on the same benchmark pairs.

    Only pairs covered by **both** models (finite ``pred_a``, ``pred_b`` and ``human``) are
    used, so the two coefficients are computed on identical pairs. The statistic is
    ``delta = rho(b) - rho(a)``; positive means model ``b`` agrees better with humans.

    The pairs are resampled jointly (one index matrix for both models), giving ``n_boot``
    bootstrap differences ``delta*``; resamples where either rho is undefined are dropped.

    * ``lo``, ``hi``: the ``alpha/2`` and ``1 - alpha/2`` percentiles of ``delta*``.
    * ``p_value``: two-sided, from the bootstrap distribution's position relative to 0::

          p = min(1, 2 * min((1 + #{delta* <= 0}) / (B + 1), (1 + #{delta* >= 0}) / (B + 1)))

      with ``B`` the number of resamples kept. This is the smallest ``alpha`` for which the
      equal-tailed percentile interval excludes 0 (a percentile-bootstrap test); the ``+1``
      keeps it from being 0 with finitely many resamples (its floor is ``2 / (B + 1)``).
      Ties at 0 count on both sides, so identical models give ``delta = 0`` and ``p = 1``.

    * ``se``: the standard deviation of ``delta*`` (ddof=1), the bootstrap standard error of
      ``delta`` (the input of :func:`mde`).

    Returns ``dict(delta, lo, hi, se, p_value, n_pairs, rho_a, rho_b, n_boot)``. With fewer than
    ``MIN_PAIRS`` common pairs or an undefined rho, the statistics are NaN.
    """
    _check_boot(n_boot, alpha)
    h, a, b = _covered(human, pred_a, pred_b)
    n = h.size
    rho_a, rho_b = _mean_rho(h, a), _mean_rho(h, b)
    delta = rho_b - rho_a
    out = dict(delta=float(delta), lo=float("nan"), hi=float("nan"), se=float("nan"), p_value=float("nan"),
               n_pairs=int(n), rho_a=rho_a, rho_b=rho_b, n_boot=0)
    if not np.isfinite(delta):
        return out
    rng = np.random.default_rng(seed)
    rank_h = _Ranker(h)
    rank_a, rank_b = [_Ranker(r) for r in a], [_Ranker(r) for r in b]
    deltas = []
    for idx in _index_chunks(rng, n, int(n_boot)):
        deltas.append(_mean_rho_rows(rank_h, rank_b, idx) - _mean_rho_rows(rank_h, rank_a, idx))
    d = np.concatenate(deltas)
    out.update(_delta_summary(d[np.isfinite(d)], alpha))
    return out


def _delta_summary(d: np.ndarray, alpha: float) -> dict:
    """Percentile CI, bootstrap SE and two-sided p-value of bootstrap differences ``d``."""
    B = d.size
    lo, hi = _percentiles(d, alpha)
    out = dict(lo=lo, hi=hi, se=float(np.std(d, ddof=1)) if B > 1 else float("nan"), p_value=float("nan"),
               n_boot=int(B))
    if B:
        below = (1 + np.count_nonzero(d <= 0)) / (B + 1)
        above = (1 + np.count_nonzero(d >= 0)) / (B + 1)
        out["p_value"] = float(min(1.0, 2 * min(below, above)))
    return out


def mde(se: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable effect of a two-sided test at level ``alpha`` with ``power``:
    ``(z_{1-alpha/2} + z_{power}) * se`` (≈ 2.80·se for the defaults), NaN for a NaN ``se``."""
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError("alpha and power must lie in (0, 1)")
    if se is None or not np.isfinite(se):
        return float("nan")
    from scipy.special import ndtri  # the normal quantile, as scipy.stats.norm.ppf computes it

    return float((ndtri(1 - alpha / 2) + ndtri(power)) * se)


def fmt_stat(x, digits=4):
    return "" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}f}"
