"""Summary tables: grouping by subset/grid point, mean ± sd over seeds, bootstrap CIs, paired Δ."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sstats

from groundwords.io import UserError, write_tsv
from groundwords.tables import (best_point, collect, nearest_neighbours, summary, summary_markdown, table2,
                                table2_markdown)

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
