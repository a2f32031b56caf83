"""The claims table: verdicts from CIs and MDE, one row per claim, absent studies say so."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from groundwords.cli import run_cli
from groundwords.evaluation import query_stats, stats
from groundwords.studies import claims as cl
from groundwords.studies.claims_registry import CLAIMS, COLUMNS
from groundwords.studies.claims_verdicts import row, verdict

# ---------------------------------------------------------------------------------------------
# verdicts


@pytest.mark.parametrize("lo, hi, mde, paper, expected", [
    (0.02, 0.10, 0.05, 0.06, "reproduced"),
    (-0.10, -0.02, 0.05, 0.06, "reversed"),
    (-0.03, 0.03, 0.04, 0.15, "no effect"),                    # would have seen the paper's 0.15
    (-0.20, 0.20, 0.28, 0.15, "not detectable at this size"),  # too few pairs for 0.15
    (-0.20, 0.20, 0.28, math.nan, "not detectable at this size"),
    (math.nan, math.nan, math.nan, 0.1, "not estimable"),
])
def test_verdict_of_a_greater_claim(lo, hi, mde, paper, expected):
    assert verdict("greater", lo, hi, mde, paper) == expected


def test_verdicts_of_equivalence_and_does_not_help_claims():
    assert verdict("equivalent", -0.03, 0.04, 0.05, margin=0.05) == "reproduced"
    assert verdict("equivalent", -0.20, -0.08, 0.1, margin=0.05) == "differs"
    assert verdict("equivalent", -0.10, 0.02, 0.1, margin=0.05) == "not detectable at this size"
    assert verdict("not_greater", -0.30, 0.01, 0.1, margin=0.05) == "reproduced"
    assert verdict("not_greater", 0.01, 0.09, 0.1, margin=0.05) == "reversed"
    assert verdict("not_greater", -0.05, 0.20, 0.2, margin=0.05) == "not detectable at this size"
    # a degenerate bootstrap (SE 0, MDE undefined: 8 pairs ranked identically) cannot show equivalence
    assert verdict("equivalent", 0.0, 0.0, math.nan, margin=0.05) == "not detectable at this size"
    assert verdict("not_greater", 0.0, 0.0, math.nan, margin=0.05) == "not detectable at this size"


def test_verdict_flips_when_the_data_does():
    """Per-query hits of a baseline and a model: better, equal and worse data give reproduced,
    not detectable / no effect, and reversed, through the real bootstrap."""
    rng = np.random.default_rng(0)
    skill = rng.random(400)
    base = (skill < 0.3).astype(float)
    flips = np.zeros(400, bool)
    flips[rng.choice(400, 20, replace=False)] = True
    same = np.where(flips, 1 - base, base)  # as good as the baseline up to a few disagreements
    got = {}
    for name, model in (("better", skill < 0.45), ("same", same), ("worse", skill < 0.15), ("identical", base)):
        c = query_stats.paired_bootstrap_mean(base, model.astype(float), n_boot=500)
        got[name] = row("I1", "x", "P@1", paper_delta=0.34, delta=c["delta"], lo=c["lo"], hi=c["hi"],
                           se=c["se"], n=c["n"])
    assert got["better"]["verdict"] == "reproduced" and got["worse"]["verdict"] == "reversed"
    # 400 queries would have shown the paper's +0.34: the CI around 0 means no effect
    assert got["same"]["verdict"] == "no effect" and got["same"]["mde"] < 0.34
    # identical hits: every resampled Δ is 0, SE 0 — no power estimate, never "no effect"
    assert got["identical"]["verdict"] == "not detectable at this size" and math.isnan(got["identical"]["mde"])
    assert "degenerate bootstrap" in got["identical"]["note"]


def test_mde_is_the_80_percent_power_effect():
    """Simulated paired hit data with a true gain equal to the MDE: the 95% CI excludes 0 in
    about 80% of the replications (the definition of the MDE)."""
    rng = np.random.default_rng(1)
    n, trials = 300, 120
    se = query_stats.paired_bootstrap_mean((rng.random(n) < 0.3).astype(float), (rng.random(n) < 0.3).astype(float),
                                     n_boot=2000)["se"]
    gain = stats.mde(se)
    hits = 0
    for t in range(trials):
        a = (rng.random(n) < 0.3).astype(float)
        b = (rng.random(n) < 0.3 + gain).astype(float)
        c = query_stats.paired_bootstrap_mean(a, b, n_boot=300, seed=t)
        hits += c["lo"] > 0
    assert 0.65 <= hits / trials <= 0.93


# ---------------------------------------------------------------------------------------------
# the table from the tables' CSVs


def _wield_table2(tmp_path, sign=+1.0, benches=("ws353",), gammas=(0, 10, 250)):
    rows = []
    for subset, size in (("all", 1000), ("small", 100)):
        for b in benches:
            for g in gammas:
                d = sign * 0.1 * (g > 0) + 0.01 * (g == 250)
                rows.append({"subset": subset, "dataset_size": size, "variant": "wield", "gamma": g, "benchmark": b,
                             "n_seeds": 1, "rho_learned": 0.3 + d, "rho_with_image": 0.32 + d,
                             "delta_learned_vs_baseline": d if g else 0.0,
                             "delta_learned_ci95_lo": d - 0.04 if g else np.nan,
                             "delta_learned_ci95_hi": d + 0.04 if g else np.nan,
                             "delta_learned_se": 0.02, "delta_with_image_vs_baseline": d if g else 0.0,
                             "delta_with_image_se": 0.02, "delta_image_vs_learned": 0.02,
                             "delta_image_ci95_lo": 0.005, "delta_image_ci95_hi": 0.035, "delta_image_se": 0.008,
                             "pairs_used_learned": 300, "pairs_used_with_image": 200, "pairs_total": 353})
    pd.DataFrame(rows).to_csv(tmp_path / "table2.csv", index=False)
    return tmp_path / "table2.csv"


def test_wield_claims_follow_table2_and_name_the_substituted_benchmark(tmp_path):
    t = cl.claims(_wield_table2(tmp_path))
    w1 = t[t["claim_id"] == "W1"]
    assert len(w1) == 4 and (w1["verdict"] == "reproduced").all()  # 2 sizes x γ in {10, 250}
    assert w1["note"].str.contains("MEN not configured: the first benchmark \\(ws353\\)").all()
    big = w1[w1["benchmark"].str.contains("paper 82k") & w1["metric"].str.contains("γ = 250")].iloc[0]
    assert big["paper_delta"] == pytest.approx(0.5735 - 0.4263) and big["n"] == 300
    assert big["mde"] == pytest.approx(stats.mde(0.02))
    # γ = 250 vs γ = 10: Δ 0.01 with SE √2·0.02: not detectable (the paper's 82k Δ is 0.0035)
    w2 = t[t["claim_id"] == "W2"]
    assert len(w2) == 2 and (w2["delta"].round(6) == 0.01).all()
    assert (w2["verdict"] == "not detectable at this size").all()
    w3 = t[t["claim_id"] == "W3"]
    assert (w3["verdict"] == "reproduced").all() and (w3["n"] == 200).all()
    # Table 1 disabled: one row that says so; other studies not run: rows that say so
    assert t.loc[t["claim_id"] == "W4", "verdict"].tolist() == ["not run"]
    assert set(t["claim_id"]) == set(CLAIMS)
    assert (t.loc[t["study"] != "WIELD", "verdict"] == "not run").all()
    # the data reversed: every γ > 0 worse than γ = 0
    rev = cl.claims(_wield_table2(tmp_path, sign=-1.0, benches=("ws353", "men")))
    w1 = rev[rev["claim_id"] == "W1"]
    assert (w1["verdict"] == "reversed").all() and w1["benchmark"].str.startswith("men").all()
    assert not w1["note"].str.contains("MEN not configured").any()


def test_missing_gamma_250_and_one_size_are_reported(tmp_path):
    t2 = pd.read_csv(_wield_table2(tmp_path, gammas=(0, 10)))
    t2[t2["subset"] == "all"].to_csv(tmp_path / "one.csv", index=False)
    t = cl.claims(tmp_path / "one.csv")
    assert (t.loc[t["claim_id"] == "W2", "verdict"] == "inputs absent").all()
    w1 = t[t["claim_id"] == "W1"]
    assert "inputs absent" in set(w1["verdict"]) and w1["note"].str.contains("one dataset size").any()


def _iesg(tmp_path, gain):
    for i, direction in ((1, "image_to_word"), (2, "word_to_image")):
        r = {"method": "IESG", "direction": direction, "pairs_used": 150, "n_candidates": 100.0}
        for k in (1, 5, 10):
            r.update({f"delta_p_at_{k}_vs_baseline": gain, f"delta_p_at_{k}_ci95_lo": gain - 0.05,
                      f"delta_p_at_{k}_ci95_hi": gain + 0.05, f"delta_p_at_{k}_se": 0.025})
        pd.DataFrame([{"method": "L2 baseline", "direction": direction}, r]).to_csv(tmp_path / f"it{i}.csv", index=False)
    pd.DataFrame([{"method": "skip-gram", "benchmark": "ws353"},
                  {"method": "IESG", "benchmark": "ws353", "delta_rho_vs_baseline": 0.0, "delta_rho_ci95_lo": -0.02,
                   "delta_rho_ci95_hi": 0.02, "delta_rho_se": 0.01, "pairs_common": 300}]).to_csv(
        tmp_path / "it3.csv", index=False)
    return tuple(tmp_path / f"it{i}.csv" for i in (1, 2, 3))


def test_iesg_claims(tmp_path):
    t = cl.claims(iesg_tables=_iesg(tmp_path, 0.2), margin=0.05)
    i1 = t[t["claim_id"] == "I1"]
    assert len(i1) == 3 and (i1["verdict"] == "reproduced").all() and (i1["n_unit"] == "queries").all()
    assert i1.iloc[0]["paper_delta"] == pytest.approx(0.629 - 0.288)
    i3 = t[t["claim_id"] == "I3"].iloc[0]
    assert i3["verdict"] == "reproduced" and "ws353_sim / ws353_rel not in iesg.benchmarks" in i3["note"]
    t = cl.claims(iesg_tables=_iesg(tmp_path, -0.2))
    assert (t.loc[t["claim_id"].isin(["I1", "I2"]), "verdict"] == "reversed").all()
    # a stricter margin than the CI: cannot establish ≈
    t = cl.claims(iesg_tables=_iesg(tmp_path, 0.2), margin=0.01)
    assert t.loc[t["claim_id"] == "I3", "verdict"].iloc[0] == "not detectable at this size"


def _pixie(tmp_path, delta, hide=True):
    rows = []
    for rep in ("SGNS", "PIXIE⊕"):
        for b in ("ws353", "simlex999"):
            for s in ("all", "visual") + (("hidden",) if hide else ()):
                d = {"representation": rep, "benchmark": b, "setting": s}
                if rep != "SGNS":
                    d.update(delta_rho_vs_baseline=delta, delta_rho_ci95_lo=delta - 0.05,
                             delta_rho_ci95_hi=delta + 0.05, delta_rho_se=0.025, pairs_common=240)
                rows.append(d)
    long = pd.DataFrame(rows)
    long[long["setting"] != "hidden"].to_csv(tmp_path / "p2.csv", index=False)
    t3 = long[long["setting"] == "hidden"].replace({"PIXIE⊕": "PIXIE⊕(∗)"})
    t3.to_csv(tmp_path / "p3.csv", index=False)
    six = {"model": ["SGNS", "PIXIE+", "PIXIE⊕"]}
    for d_ in ("i2s", "s2i"):
        for k in (1, 5, 10):
            six[f"delta_{d_}_r{k}_vs_baseline"] = [np.nan, 100 * delta, 100 * delta]
            six[f"delta_{d_}_r{k}_ci95_lo"] = [np.nan, 100 * delta - 4, 100 * delta - 4]
            six[f"delta_{d_}_r{k}_ci95_hi"] = [np.nan, 100 * delta + 4, 100 * delta + 4]
            six[f"delta_{d_}_r{k}_se"] = [np.nan, 2.0, 2.0]
            six[f"queries_common_{d_}"] = [np.nan, 50, 50]
    pd.DataFrame(six).to_csv(tmp_path / "p6.csv", index=False)
    return tmp_path / "p2.csv", tmp_path / "p3.csv", tmp_path / "p6.csv"


def test_pixie_claims_and_absent_parts(tmp_path):
    t = cl.claims(pixie_tables=_pixie(tmp_path, 0.2))
    p1 = t[t["claim_id"] == "P1"]
    # all pairs: only SimLex is a similarity set; visual pairs: both benchmarks
    assert len(p1) == 3 and (p1["verdict"] == "reproduced").all()
    simlex = p1[p1["benchmark"] == "simlex999 (SimLex), all pairs"].iloc[0]
    assert simlex["paper"] == "0.39 vs 0.33" and simlex["paper_delta"] == pytest.approx(0.06)
    assert len(t[t["claim_id"] == "P2"]) == 2 and len(t[t["claim_id"] == "P3"]) == 12
    assert (t.loc[t["claim_id"] == "P3", "metric"].str.contains("R@")).all()
    t = cl.claims(pixie_tables=_pixie(tmp_path, -0.2, hide=False)[:2] + (None,))
    assert (t.loc[t["claim_id"] == "P1", "verdict"] == "reversed").all()
    assert t.loc[t["claim_id"] == "P2", "verdict"].tolist() == ["inputs absent"]
    assert t.loc[t["claim_id"] == "P3", "verdict"].tolist() == ["not run"]


def test_cli_writes_csv_and_markdown(tmp_path):
    p2, p3, p6 = _pixie(tmp_path, 0.2)
    out = tmp_path / "claims.csv"
    assert run_cli(cl.main, ["--wield-table2", str(_wield_table2(tmp_path)), "--pixie-table2", str(p2),
                             "--pixie-table3", str(p3), "--pixie-table6", str(p6), "--why", "iesg=iesg.enabled is false",
                             "--out-csv", str(out), "--out-md", str(tmp_path / "claims.md")]) == 0
    t = pd.read_csv(out)
    assert list(t.columns) == COLUMNS and set(t["claim_id"]) == set(CLAIMS)
    assert (t.loc[t["study"] == "IESG", "note"] == "iesg.enabled is false").all()
    md = (tmp_path / "claims.md").read_text()
    assert "| P1 |" in md and "**reproduced**" in md and "Verdicts: reproduced" in md
    assert run_cli(cl.main, ["--wield-table2", str(tmp_path / "nope.csv"), "--out-csv", str(out),
                             "--out-md", str(tmp_path / "x.md")]) == 2


def test_a_benchmark_without_covered_pairs_is_passed_over(tmp_path):
    t2 = pd.read_csv(_wield_table2(tmp_path, benches=("ws353", "toy")))
    cols = [c for c in t2.columns if c.startswith("delta_learned")]
    t2.loc[t2["benchmark"] == "ws353", cols] = np.nan
    t2.to_csv(tmp_path / "t2.csv", index=False)
    w1 = cl.claims(tmp_path / "t2.csv").query("claim_id == 'W1'")
    assert w1["benchmark"].str.startswith("toy").all() and (w1["verdict"] == "reproduced").all()
    assert w1["note"].str.contains("ws353 has no covered pairs").all()
