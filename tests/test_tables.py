"""Table 2 assembly: grouping by subset/γ, mean ± sd over seeds, paper ordering."""

import json

import numpy as np
import pandas as pd
import pytest

from groundwords.io import UserError, write_tsv
from groundwords.tables import collect, table2, table2_markdown


def fake_eval(root, subset, gamma, seed, rho_l, rho_i, size):
    d = root / subset / "wield" / f"gamma-{gamma}" / f"seed-{seed}"
    d.mkdir(parents=True)
    write_tsv(pd.DataFrame({
        "benchmark": ["ws353", "ws353"], "representation": ["learned", "learned+image"],
        "rho": [rho_l, rho_i], "pvalue": [0.1, 0.1], "pairs_used": [40, 30],
        "pairs_total": [353, 353], "coverage": [40 / 353, 30 / 353]}), d / "eval.tsv")
    (d / "train.json").write_text(json.dumps({"n_captions": size}))
    return str(d / "eval.tsv")


def test_table2_means_and_order(tmp_path):
    paths = [
        fake_eval(tmp_path, "small", "10", 0, 0.2, 0.3, 80),
        fake_eval(tmp_path, "small", "10", 1, 0.4, 0.5, 80),
        fake_eval(tmp_path, "small", "0", 0, 0.1, 0.2, 80),
        fake_eval(tmp_path, "big", "0", 0, 0.5, 0.6, 800),
    ]
    t = table2(collect(paths))
    assert list(zip(t["subset"], t["gamma"])) == [("big", 0.0), ("small", 0.0), ("small", 10.0)]
    row = t.iloc[2]
    assert row["n_seeds"] == 2 and row["dataset_size"] == 80
    assert row["rho_learned"] == pytest.approx(0.3) and row["rho_with_image"] == pytest.approx(0.4)
    assert row["rho_learned_sd"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert np.isnan(t.iloc[0]["rho_learned_sd"])
    assert row["coverage_learned"] == pytest.approx(40 / 353)
    md = table2_markdown(t)
    assert "| small (80) | 10 | 0.3000 ± 0.1414 | 0.4000 ± 0.1414 | 40/353 | 30/353 | 2 |" in md


def test_bad_path_is_a_user_error(tmp_path):
    with pytest.raises(UserError):
        collect([str(tmp_path / "eval.tsv")])
