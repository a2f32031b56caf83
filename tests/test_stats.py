"""Bootstrap statistics for Spearman's rho: agreement with scipy, CIs, paired comparisons."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy import stats

from groundwords.evaluation import query_stats as qs
from groundwords.evaluation import stats as st


def _correlated(n, noise=1.0, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    human = rng.random(n) * 50
    pred = human / 50 + rng.normal(0, noise * 0.3, n)
    if ties:  # MEN-like integer scores and coarse similarities: many ties on both sides
        human, pred = np.round(human), np.round(pred, 1)
    return human, pred


def _scipy_rho(h, p):
    return float(stats.spearmanr(h, p).statistic)


# ---------------------------------------------------------------------------------------------
# spearman


def test_spearman_equals_scipy():
    h, p = _correlated(200, ties=True)
    assert st.spearman(h, p) == pytest.approx(_scipy_rho(h, p), abs=1e-12)


def test_spearman_excludes_nan_pairs():
    h, p = _correlated(100)
    p_nan = p.copy()
    p_nan[::7] = np.nan
    keep = np.isfinite(p_nan)
    assert st.spearman(h, p_nan) == pytest.approx(_scipy_rho(h[keep], p[keep]), abs=1e-12)
    p_nan[3] = np.inf  # any non-finite value is "not covered"
    keep = np.isfinite(p_nan)
    assert st.spearman(h, p_nan) == pytest.approx(_scipy_rho(h[keep], p[keep]), abs=1e-12)


def test_spearman_degenerate_is_nan():
    assert math.isnan(st.spearman([1, 2], [1, 2]))
    assert math.isnan(st.spearman([1, 2, 3, 4], [np.nan] * 4))
    assert math.isnan(st.spearman([1, 2, 3, 4], [5, 5, 5, 5]))
    with pytest.raises(ValueError):
        st.spearman([1, 2, 3], [1, 2])


@pytest.mark.parametrize("ties", [False, True])
def test_spearmanr_is_scipys_bit_for_bit(ties):
    rng = np.random.default_rng(1)
    for n in (3, 4, 7, 50, 353, 999):
        h, p = _correlated(n, noise=float(rng.uniform(0.1, 3)), seed=n, ties=ties)
        ref = stats.spearmanr(h, p)
        assert st.spearmanr(h, p) == (float(ref.statistic), float(ref.pvalue))  # exact, not approx
        assert (st.average_ranks(p) == stats.rankdata(p)).all()
    x = np.arange(10.0)
    for y in (x, -x, x ** 3):  # rho = +-1: p-value 0, as scipy
        ref = stats.spearmanr(x, y)
        assert st.spearmanr(x, y) == (float(ref.statistic), float(ref.pvalue))
    assert all(math.isnan(v) for v in st.spearmanr(x, np.ones(10)))
    assert math.isnan(st.spearmanr(h, p, pvalue=False)[1])


def test_mde_uses_the_normal_quantile_exactly():
    for se in (0.01, 0.2):
        for alpha, power in ((0.05, 0.8), (0.01, 0.9)):
            expected = float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * se)
            assert st.mde(se, alpha, power) == expected


def test_small_jobs_do_not_import_scipy_stats():
    """Importing scipy.stats costs most of a small job's CPU time; the stages below never need it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    mods = ["groundwords.evaluation.similarity", "groundwords.studies.wield.tables",
            "groundwords.studies.wield.figures", "groundwords.studies.claims",
            "groundwords.studies.pixie.tables", "groundwords.studies.iesg.tables"]
    code = "import sys\n" + "".join(f"import {m}\n" for m in mods) + \
        "print(sorted(m for m in sys.modules if m.startswith('scipy.stats')))"
    src = str(Path(st.__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": src})
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# resampled rho: the vectorised engine against scipy


@pytest.mark.parametrize("ties", [False, True])
def test_resampled_rho_equals_scipy_on_explicit_resamples(ties):
    h, p = _correlated(60, ties=ties, seed=1)
    rng = np.random.default_rng(5)
    idx = rng.integers(0, h.size, size=(25, h.size))
    got = st.resample_spearman(h, p, idx)
    want = [_scipy_rho(h[i], p[i]) for i in idx]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_resampled_rho_handwritten_ties_and_constant_rows():
    h = np.array([1.0, 2.0, 2.0, 3.0, 5.0])
    p = np.array([0.1, 0.4, 0.3, 0.3, 0.9])
    idx = np.array([
        [0, 1, 2, 3, 4],      # the sample itself
        [1, 1, 2, 3, 3],      # repeated pairs, ties on both sides
        [4, 0, 4, 0, 2],
        [1, 2, 1, 2, 1],      # human constant (all 2.0) -> undefined
        [2, 3, 2, 3, 3],      # pred constant (all 0.3) -> undefined
    ])
    got = st.resample_spearman(h, p, idx)
    for r in range(3):
        assert got[r] == pytest.approx(_scipy_rho(h[idx[r]], p[idx[r]]), abs=1e-12)
    assert np.isnan(got[3:]).all()


def test_bootstrap_ci_is_percentiles_of_scipy_resamples():
    """Rebuild the bootstrap by hand (same rng stream) with scipy and compare the interval."""
    h, p = _correlated(40, ties=True, seed=2)
    n_boot, seed = 300, 11
    res = st.bootstrap_ci(h, p, n_boot=n_boot, seed=seed)
    idx = np.random.default_rng(seed).integers(0, h.size, size=(n_boot, h.size))
    boot = np.array([_scipy_rho(h[i], p[i]) for i in idx])
    boot = boot[np.isfinite(boot)]
    lo, hi = np.percentile(boot, [2.5, 97.5])
    assert res["lo"] == pytest.approx(lo, abs=1e-12)
    assert res["hi"] == pytest.approx(hi, abs=1e-12)
    assert res["n_boot"] == boot.size


# ---------------------------------------------------------------------------------------------
# bootstrap_ci


def test_bootstrap_ci_contains_point_estimate_and_matches_scipy():
    h, p = _correlated(300)
    res = st.bootstrap_ci(h, p)
    assert set(res) >= {"rho", "lo", "hi", "n_pairs"}
    assert res["rho"] == pytest.approx(_scipy_rho(h, p), abs=1e-12)
    assert res["lo"] < res["rho"] < res["hi"]
    assert res["n_pairs"] == 300
    assert res["n_boot"] == 2000


def test_bootstrap_ci_width_shrinks_with_more_pairs():
    small = st.bootstrap_ci(*_correlated(50, seed=3))
    large = st.bootstrap_ci(*_correlated(2000, seed=3))
    w_small, w_large = small["hi"] - small["lo"], large["hi"] - large["lo"]
    assert w_large < w_small / 3  # width ~ 1/sqrt(n): ratio ~ sqrt(40) ~ 6


def test_bootstrap_ci_excludes_nan_pairs():
    h, p = _correlated(200, seed=4)
    p_nan = p.copy()
    p_nan[:30] = np.nan
    res = st.bootstrap_ci(h, p_nan, n_boot=500)
    ref = st.bootstrap_ci(h[30:], p[30:], n_boot=500)
    assert res == ref
    assert res["n_pairs"] == 170


def test_bootstrap_ci_deterministic_for_a_seed():
    h, p = _correlated(150, seed=6)
    assert st.bootstrap_ci(h, p, seed=7) == st.bootstrap_ci(h, p, seed=7)
    assert st.bootstrap_ci(h, p, seed=7)["lo"] != st.bootstrap_ci(h, p, seed=8)["lo"]


def test_bootstrap_ci_independent_of_chunking(monkeypatch):
    h, p = _correlated(301, seed=9, ties=True)
    whole = st.bootstrap_ci(h, p, n_boot=700)
    monkeypatch.setattr(st, "CHUNK_ELEMENTS", 7 * 301 + 13)  # many odd-sized chunks
    assert st.bootstrap_ci(h, p, n_boot=700) == whole


def test_bootstrap_ci_alpha():
    h, p = _correlated(200, seed=10)
    r95 = st.bootstrap_ci(h, p, alpha=0.05)
    r50 = st.bootstrap_ci(h, p, alpha=0.5)
    assert r95["lo"] < r50["lo"] < r50["hi"] < r95["hi"]
    with pytest.raises(ValueError):
        st.bootstrap_ci(h, p, alpha=1.5)
    with pytest.raises(ValueError):
        st.bootstrap_ci(h, p, n_boot=0)


def test_bootstrap_ci_degenerate_inputs():
    res = st.bootstrap_ci([1, 2], [3, 4])
    assert res["n_pairs"] == 2 and all(math.isnan(res[k]) for k in ("rho", "lo", "hi"))
    # 3 pairs with ties: many resamples are constant and get dropped, the rest are kept
    res = st.bootstrap_ci([1, 2, 3], [1, 3, 2], n_boot=500)
    assert 0 < res["n_boot"] < 500
    assert -1 <= res["lo"] <= res["hi"] <= 1


def test_bootstrap_is_fast_enough():
    h, p = _correlated(3000, seed=12, ties=True)
    t = time.perf_counter()
    st.bootstrap_ci(h, p, n_boot=2000)
    st.paired_bootstrap(h, p, np.round(p + 0.05 * np.random.default_rng(0).normal(size=p.size), 2))
    assert time.perf_counter() - t < 8.0  # ~0.5 s each on an idle laptop; generous for CI


# ---------------------------------------------------------------------------------------------
# paired_bootstrap


def test_paired_identical_models():
    h, p = _correlated(300, seed=13)
    res = st.paired_bootstrap(h, p, p.copy())
    assert res["delta"] == 0.0
    assert res["lo"] == 0.0 and res["hi"] == 0.0
    assert res["p_value"] >= 0.9
    assert res["n_pairs"] == 300


def test_paired_clearly_better_model():
    rng = np.random.default_rng(14)
    human = rng.random(500)
    pred_a = rng.normal(size=500)                       # pure noise
    pred_b = human + rng.normal(0, 0.05, size=500)      # human + small noise
    res = st.paired_bootstrap(human, pred_a, pred_b)
    assert res["delta"] > 0
    assert res["lo"] > 0  # CI excludes 0
    assert res["p_value"] < 0.01
    assert res["p_value"] == pytest.approx(2 / (res["n_boot"] + 1))  # the floor: all delta* > 0
    assert res["delta"] == pytest.approx(_scipy_rho(human, pred_b) - _scipy_rho(human, pred_a), abs=1e-12)


def test_paired_uses_only_pairs_finite_in_both():
    h, p = _correlated(200, seed=15)
    rng = np.random.default_rng(16)
    a = p + rng.normal(0, 0.3, 200)
    b = p.copy()
    a[:20] = np.nan
    b[10:40] = np.nan
    keep = np.isfinite(a) & np.isfinite(b)
    res = st.paired_bootstrap(h, a, b, n_boot=500)
    assert res["n_pairs"] == keep.sum() == 160
    assert res["rho_a"] == pytest.approx(_scipy_rho(h[keep], a[keep]), abs=1e-12)
    assert res["rho_b"] == pytest.approx(_scipy_rho(h[keep], b[keep]), abs=1e-12)
    assert res == st.paired_bootstrap(h[keep], a[keep], b[keep], n_boot=500)


def test_paired_is_antisymmetric_and_seeded():
    h, p = _correlated(250, seed=17)
    rng = np.random.default_rng(18)
    a, b = p + rng.normal(0, 0.4, 250), p + rng.normal(0, 0.5, 250)
    ab = st.paired_bootstrap(h, a, b, seed=3)
    ba = st.paired_bootstrap(h, b, a, seed=3)
    assert ab["delta"] == pytest.approx(-ba["delta"], abs=1e-12)
    assert ab["lo"] == pytest.approx(-ba["hi"], abs=1e-12)
    assert ab["p_value"] == pytest.approx(ba["p_value"])
    assert 0 < ab["p_value"] <= 1
    assert ab == st.paired_bootstrap(h, a, b, seed=3)


def test_paired_p_value_agrees_with_interval():
    """p < alpha exactly when the equal-tailed interval excludes 0 (up to resampling grain)."""
    h, p = _correlated(400, seed=19)
    rng = np.random.default_rng(20)
    for scale in (0.0, 0.05, 0.2, 0.6):
        b = p + rng.normal(0, 0.3, 400)
        a = b + rng.normal(0, scale + 1e-3, 400)
        res = st.paired_bootstrap(h, a, b, n_boot=1000)
        excludes = res["lo"] > 0 or res["hi"] < 0
        if res["p_value"] < 0.04:
            assert excludes
        if res["p_value"] > 0.06:
            assert not excludes


def test_several_runs_use_the_mean_rho_over_runs():
    from groundwords.evaluation.stats import bootstrap_ci, paired_bootstrap

    rng = np.random.default_rng(7)
    human = rng.normal(size=300)
    runs = np.stack([human + rng.normal(scale=s, size=300) for s in (0.5, 1.0, 2.0)])
    runs[1, 5] = np.nan  # a pair one run does not cover is dropped for all
    ok = np.isfinite(runs).all(axis=0)
    expected = np.mean([stats.spearmanr(human[ok], r[ok]).statistic for r in runs])
    ci = bootstrap_ci(human, runs, n_boot=500)
    assert ci["rho"] == pytest.approx(expected) and ci["n_pairs"] == ok.sum()
    assert ci["lo"] < ci["rho"] < ci["hi"]
    # one run given as 1-D or as a 1-row 2-D array: identical results
    assert bootstrap_ci(human, runs[0], n_boot=300) == bootstrap_ci(human, runs[:1], n_boot=300)
    same = paired_bootstrap(human, runs, runs.copy(), n_boot=300)
    assert same["delta"] == 0 and same["p_value"] == 1.0
    worse = np.stack([rng.normal(size=300) for _ in range(3)])
    cmp = paired_bootstrap(human, worse, runs, n_boot=500)
    assert cmp["delta"] > 0 and cmp["lo"] > 0 and cmp["p_value"] < 0.01


# ---------------------------------------------------------------------------------------------
# means of per-query hits (P@k, R@k): bootstrap over queries


def test_bootstrap_mean_covers_the_true_rate_at_about_the_nominal_rate():
    """Many synthetic evaluations of a model whose true hit rate is 0.3: the 95% interval
    of P@k covers 0.3 in about 95% of them (percentile bootstrap, n = 150 queries)."""
    rng = np.random.default_rng(1)
    covered = 0
    trials = 300
    for t in range(trials):
        hits = (rng.random(150) < 0.3).astype(float)
        r = qs.bootstrap_mean(hits, n_boot=400, seed=t)
        assert r["lo"] <= r["mean"] <= r["hi"] and r["n"] == 150
        covered += r["lo"] <= 0.3 <= r["hi"]
    assert 0.90 <= covered / trials <= 0.985
    # its SE is the binomial one, sqrt(p(1-p)/n)
    r = qs.bootstrap_mean((rng.random(400) < 0.3).astype(float), n_boot=3000)
    assert r["se"] == pytest.approx(math.sqrt(0.3 * 0.7 / 400), rel=0.15)


def test_bootstrap_mean_is_seeded_and_skips_unanswered_queries():
    hits = np.array([1, 0, 1, 1, np.nan, 0, 1, 0, 1, 1], float)
    a, b = qs.bootstrap_mean(hits, n_boot=300, seed=5), qs.bootstrap_mean(hits, n_boot=300, seed=5)
    assert a == b and a["n"] == 9 and a["mean"] == pytest.approx(6 / 9)
    assert qs.bootstrap_mean(hits, n_boot=300, seed=6)["lo"] != a["lo"] or \
        qs.bootstrap_mean(hits, n_boot=300, seed=6)["hi"] != a["hi"]
    empty = qs.bootstrap_mean([np.nan, np.nan])
    assert empty["n"] == 0 and math.isnan(empty["mean"]) and math.isnan(empty["lo"])


def test_paired_bootstrap_mean_detects_a_real_gain_and_its_sign_flips():
    rng = np.random.default_rng(2)
    n = 300
    skill = rng.random(n)                               # query difficulty, shared by both models
    a = (skill < 0.30).astype(float)                    # baseline: 30% hits
    b = (skill < 0.45).astype(float)                    # better model: 45%, a superset of a's hits
    r = qs.paired_bootstrap_mean(a, b, n_boot=1000)
    assert r["delta"] == pytest.approx(b.mean() - a.mean()) and r["n"] == n
    assert 0 < r["lo"] < r["delta"] < r["hi"] and r["p_value"] < 0.01
    flipped = qs.paired_bootstrap_mean(b, a, n_boot=1000)
    assert flipped["delta"] == pytest.approx(-r["delta"]) and flipped["hi"] < 0
    # pairing matters: the paired SE is much smaller than the unpaired sqrt(se_a² + se_b²)
    unpaired = math.hypot(qs.bootstrap_mean(a)["se"], qs.bootstrap_mean(b)["se"])
    assert r["se"] < 0.75 * unpaired
    same = qs.paired_bootstrap_mean(a, a, n_boot=200)
    assert same["delta"] == 0 and same["p_value"] == 1.0


def test_paired_bootstrap_mean_null_gives_uniformish_p_and_nominal_coverage():
    """Two equally good but independent models: the 95% CI of Δ covers 0 about 95% of the time."""
    rng = np.random.default_rng(3)
    trials, covered = 200, 0
    for t in range(trials):
        a = (rng.random(120) < 0.4).astype(float)
        b = (rng.random(120) < 0.4).astype(float)
        r = qs.paired_bootstrap_mean(a, b, n_boot=300, seed=t)
        covered += r["lo"] <= 0 <= r["hi"]
    assert 0.89 <= covered / trials <= 0.99


def test_paired_bootstrap_mean_uses_common_queries_only():
    a = np.array([1, 0, np.nan, 1, 0, 1], float)
    b = np.array([1, 1, 1, np.nan, 0, 1], float)
    r = qs.paired_bootstrap_mean(a, b, n_boot=100)
    assert r["n"] == 4 and r["mean_a"] == pytest.approx(0.5) and r["mean_b"] == pytest.approx(0.75)
    with pytest.raises(ValueError):
        qs.paired_bootstrap_mean([1, 0], [1, 0, 1])


def test_paired_bootstrap_reports_its_se_and_mde_is_2_8_se():
    h, p = _correlated(300, seed=4)
    _, q = _correlated(300, noise=1.5, seed=5)
    r = st.paired_bootstrap(h, q, p, n_boot=500)
    assert r["se"] > 0 and r["lo"] < r["delta"] < r["hi"]
    # the percentile interval is about ±1.96 SE wide
    assert (r["hi"] - r["lo"]) / (2 * 1.96 * r["se"]) == pytest.approx(1.0, abs=0.2)
    assert st.mde(r["se"]) == pytest.approx((1.959964 + 0.841621) * r["se"], rel=1e-5)
    assert math.isnan(st.mde(float("nan")))
