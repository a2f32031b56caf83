"""Summary tables: grouping by subset/grid point, mean ± sd over seeds, bootstrap CIs, paired Δ."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sstats

from groundwords.cli import UserError
from groundwords.evaluation.neighbours import nearest_neighbours
from groundwords.files import write_tsv
from groundwords.studies.wield.tables import (
    best_point,
    collect,
    summary,
    summary_markdown,
    table2,
    table2_markdown,
)

RNG = np.random.default_rng(0)
HUMAN = RNG.uniform(0, 10, 200)


def fake_run(root, subset, gamma, seed, noise, size, variant="wield"):
    """A run whose cosines are human + noise (less noise = better ρ), with pairs.tsv and eval.tsv."""
    d = root / subset / variant / f"gamma-{gamma}" / f"seed-{seed}"
    d.mkdir(parents=True)
    rng = np.random.default_rng(hash((subset, gamma, seed)) % 2**32)
    learned = HUMAN + rng.normal(scale=noise, size=HUMAN.size)
    with_image = learned.copy()
    with_image[:50] = np.nan  # words without images
    write_tsv(pd.DataFrame({"benchmark": "ws353", "word1": [f"a{i}" for i in range(200)],
                            "word2": [f"b{i}" for i in range(200)], "human": HUMAN,
                            "learned": learned, "learned+image": with_image}), d / "pairs.tsv")
    rows = []
    for rep, sims in (("learned", learned), ("learned+image", with_image)):
        ok = np.isfinite(sims)
        rows.append({"benchmark": "ws353", "representation": rep,
                     "rho": sstats.spearmanr(HUMAN[ok], sims[ok]).statistic, "pvalue": 0.0,
                     "pairs_used": int(ok.sum()), "pairs_total": 200, "coverage": ok.mean()})
    write_tsv(pd.DataFrame(rows), d / "eval.tsv")
    (d / "train.json").write_text(json.dumps({"n_captions": size}))
    return str(d / "eval.tsv")


def test_table2_means_cis_and_paired_deltas(tmp_path):
    paths = [
        fake_run(tmp_path, "small", "10", 0, 2.0, 80),
        fake_run(tmp_path, "small", "10", 1, 2.5, 80),
        fake_run(tmp_path, "small", "0", 0, 8.0, 80),
        fake_run(tmp_path, "small", "0", 1, 9.0, 80),
        fake_run(tmp_path, "big", "0", 0, 5.0, 800),
    ]
    long = collect(paths)
    t = table2(long, n_boot=500)
    assert list(zip(t["subset"], t["gamma"])) == [("big", 0.0), ("small", 0.0), ("small", 10.0)]
    row = t.iloc[2]
    rhos = long[(long["subset"] == "small") & (long["value"] == 10) & (long["representation"] == "learned")]["rho"]
    assert row["n_seeds"] == 2 and row["dataset_size"] == 80
    assert row["rho_learned"] == pytest.approx(rhos.mean())
    assert row["rho_learned_sd"] == pytest.approx(np.std(rhos, ddof=1))
    assert row["rho_learned_ci95_lo"] < row["rho_learned"] < row["rho_learned_ci95_hi"]
    assert row["pairs_used_with_image"] == 150 and row["coverage_with_image"] == pytest.approx(0.75)
    # γ=10 (less noise) beats γ=0 of the same subset clearly; the baseline against itself: Δ=0, p=1
    assert row["delta_learned_vs_baseline"] > 0.1 and row["p_learned_vs_baseline"] < 0.01
    # the Δ's interval excludes 0 and is about ±1.96 SE wide
    assert 0 < row["delta_learned_ci95_lo"] < row["delta_learned_vs_baseline"] < row["delta_learned_ci95_hi"]
    assert row["delta_learned_se"] == pytest.approx(
        (row["delta_learned_ci95_hi"] - row["delta_learned_ci95_lo"]) / (2 * 1.96), rel=0.25)
    # with_image repeats learned where the word has an image: Δ(image vs learned) is exactly 0
    assert row["delta_image_vs_learned"] == 0 and row["p_image_vs_learned"] == 1
    base = t.iloc[1]
    assert base["delta_learned_vs_baseline"] == 0 and base["p_learned_vs_baseline"] == 1
    assert np.isnan(t.iloc[0]["rho_learned_sd"])
    md = table2_markdown(t)
    assert "| small (80) | 10 |" in md and "(p=" in md and "150/200" in md


def test_summary_without_pairs_files_still_reports_rho(tmp_path):
    path = fake_run(tmp_path, "s", "0", 0, 1.0, 10)
    (tmp_path / "s/wield/gamma-0/seed-0/pairs.tsv").unlink()
    t = summary(collect([path]))
    assert np.isfinite(t.loc[0, "rho_learned"]) and np.isnan(t.loc[0, "rho_learned_ci95_lo"])
    assert "# T" in summary_markdown(t, "T")


def test_bad_path_is_a_user_error(tmp_path):
    with pytest.raises(UserError):
        collect([str(tmp_path / "eval.tsv")])


def test_nearest_neighbours_and_best_point():
    words = ["dog", "puppy", "cat", "car", "Bus"]
    vecs = np.array([[1, 0.1], [1, 0.2], [0.8, 0.5], [0, 1], [0.1, 1]], float)
    nn = nearest_neighbours(words, vecs, ["dog", "bus", "pizza"], k=2)
    assert [w for w, _ in nn["dog"]] == ["puppy", "cat"]
    assert [w for w, _ in nn["bus"]] == ["car", "cat"]
    assert nn["pizza"] == []
    t = pd.DataFrame({"subset": "a", "gamma": [0, 10, 50], "benchmark": "men", "rho_learned": [0.9, 0.2, 0.3]})
    assert best_point(t, "a") == 50  # γ = 0 is the baseline, never "best"
    # the first benchmark with a defined ρ decides; none defined: the largest γ
    t2 = pd.concat([t.assign(benchmark="ws353", rho_learned=np.nan), t.assign(rho_learned=[0.1, 0.5, 0.2])])
    assert best_point(t2, "a") == 10
    assert best_point(t.assign(rho_learned=np.nan), "a") == 50


# ---------------------------------------------------------------------------------------------
# IESG Tables 1-3 and Figure 3


def _iesg_inputs(tmp_path, n=200, gain=True, seed=0):
    """matching.tsv, ranks.tsv, vocab.tsv and both models' eval.tsv/pairs.tsv of a fake IESG run:
    the L2 baseline ranks the true item uniformly (P@10 ≈ 0.1), IESG much better (or worse)."""
    from groundwords.evaluation.matching import precision_at_k

    rng = np.random.default_rng(seed)
    good = np.where(rng.random(n) < 0.5, 1, rng.integers(2, 101, n))
    bad = rng.integers(1, 101, n)
    l2, ie = (bad, good) if gain else (good, bad)
    words = [f"w{i % 40}" for i in range(n)]
    ranks = pd.DataFrame({"image_id": [f"im{i}" for i in range(n)], "word": words,
                          "l2_image_to_word": l2, "l2_word_to_image": l2,
                          "iesg_image_to_word": ie, "iesg_word_to_image": ie})
    write_tsv(ranks, tmp_path / "ranks.tsv")
    rows = []
    for model, r in (("l2", l2), ("iesg", ie)):
        for d in ("image_to_word", "word_to_image"):
            p = precision_at_k(r)
            rows.append({"model": model, "direction": d, "split": "test", "scoring": "dot", "pairs_used": n,
                         "pairs_total": n + 5, "coverage": n / (n + 5), "n_candidates": 100.0,
                         "p_at_1": p[1], "p_at_5": p[5], "p_at_10": p[10]})
    write_tsv(pd.DataFrame(rows), tmp_path / "matching.tsv")
    # every test word has count 50: Figure 3's other bins are empty
    write_tsv(pd.DataFrame({"word": [f"w{i}" for i in range(40)], "count": 50}), tmp_path / "vocab.tsv")
    human = rng.uniform(0, 10, 300)
    for name, noise in (("sgns", 2.0), ("iesg", 2.0 if gain else 8.0)):
        sims = human + rng.normal(scale=noise, size=300)
        sims[:30] = np.nan
        write_tsv(pd.DataFrame({"benchmark": "ws353", "word1": [f"a{i}" for i in range(300)],
                                "word2": [f"b{i}" for i in range(300)], "human": human, "learned": sims}),
                  tmp_path / f"{name}_pairs.tsv")
        ok = np.isfinite(sims)
        write_tsv(pd.DataFrame([{"benchmark": "ws353", "representation": "learned",
                                 "rho": sstats.spearmanr(human[ok], sims[ok]).statistic, "pvalue": 0.0,
                                 "pairs_used": int(ok.sum()), "pairs_total": 300, "coverage": ok.mean()}]),
                  tmp_path / f"{name}_eval.tsv")


def _run_iesg_tables(tmp_path, edges=(1, 10, 100, 1000)):
    from groundwords.studies.iesg.tables import iesg_tables

    out = tmp_path / "out"
    iesg_tables(tmp_path / "matching.tsv", tmp_path / "ranks.tsv", tmp_path / "vocab.tsv",
                tmp_path / "sgns_eval.tsv", tmp_path / "iesg_eval.tsv", out, sgns_pairs=tmp_path / "sgns_pairs.tsv",
                iesg_pairs=tmp_path / "iesg_pairs.tsv", freq_edges=list(edges), n_boot=400)
    return out


def test_iesg_tables_give_cis_and_paired_deltas_vs_the_baselines(tmp_path):
    _iesg_inputs(tmp_path, gain=True)
    out = _run_iesg_tables(tmp_path)
    t1 = pd.read_csv(out / "iesg_table1.csv")
    assert list(t1["method"]) == ["L2 baseline", "IESG"]
    l2, ie = t1.iloc[0], t1.iloc[1]
    for k in (1, 5, 10):
        for r in (l2, ie):
            assert r[f"p_at_{k}_ci95_lo"] <= r[f"p_at_{k}"] <= r[f"p_at_{k}_ci95_hi"]
        assert np.isnan(l2[f"delta_p_at_{k}_vs_baseline"])
        assert ie[f"delta_p_at_{k}_vs_baseline"] == pytest.approx(ie[f"p_at_{k}"] - l2[f"p_at_{k}"])
        assert ie[f"delta_p_at_{k}_ci95_lo"] > 0 and ie[f"p_p_at_{k}_vs_baseline"] < 0.01
        assert ie[f"delta_p_at_{k}_se"] > 0
    assert "Δ P@1 vs L2" in (out / "iesg_table1.md").read_text()
    t3 = pd.read_csv(out / "iesg_table3.csv")
    sg, it = t3.iloc[0], t3.iloc[1]
    assert sg["rho_ci95_lo"] < sg["rho"] < sg["rho_ci95_hi"] and it["pairs_common"] == 270
    # same noise level: the CI of Δρ covers 0
    assert it["delta_rho_ci95_lo"] < 0 < it["delta_rho_ci95_hi"]
    assert "Δ vs skip-gram" in (out / "iesg_table3.md").read_text()


def test_iesg_deltas_flip_sign_when_the_data_does(tmp_path):
    _iesg_inputs(tmp_path, gain=False)
    out = _run_iesg_tables(tmp_path)
    ie = pd.read_csv(out / "iesg_table2.csv").iloc[1]
    assert ie["delta_p_at_1_ci95_hi"] < 0
    it = pd.read_csv(out / "iesg_table3.csv").iloc[1]
    assert it["delta_rho_ci95_hi"] < 0


def test_iesg_figure3_with_empty_frequency_bins_does_not_crash(tmp_path):
    """All test words have the same count (50): bins [1,10) and [100,1000) have no word."""
    _iesg_inputs(tmp_path)
    out = _run_iesg_tables(tmp_path)
    fb = pd.read_csv(out / "iesg_figure3.csv")
    assert list(fb["freq_lo"].unique()) == [1, 10, 100]
    assert (fb.loc[fb["freq_lo"] == 10, "n"] == 200).all()
    assert (fb.loc[fb["freq_lo"] != 10, "n"] == 0).all() and fb.loc[fb["freq_lo"] != 10, "p_at_1"].isna().all()
    assert (out / "iesg_figure3.png").stat().st_size > 5000
    # the default bins (powers of ten) and bad edges
    out = _run_iesg_tables(tmp_path, edges=())
    assert pd.read_csv(out / "iesg_figure3.csv")["n"].max() == 200
    with pytest.raises(UserError, match="increasing"):
        _run_iesg_tables(tmp_path, edges=(10, 5))
