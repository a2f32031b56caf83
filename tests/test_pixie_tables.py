"""PIXIE's tables (groundwords.studies.pixie.tables): the pair settings, and Tables 2-6 from known inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from groundwords.cli import run_cli
from groundwords.files import write_features
from groundwords.studies.pixie.retrieval_table import table6, table6_markdown
from groundwords.studies.pixie.tables import main
from groundwords.studies.pixie.wordsim import pairs_within, wordsim
from groundwords.training import write_word2vec_text

WORDS = ["cat", "dog", "car", "bus", "tree", "idea", "truth", "joy"]
VISUAL = ["cat", "dog", "car", "bus", "tree"]  # features for these only
HIDDEN = ["cat", "dog", "car"]


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(len(WORDS), 6)).astype(np.float32)
    write_word2vec_text(tmp_path / "sgns.txt", WORDS, vecs)
    write_word2vec_text(tmp_path / "cnn.txt", VISUAL, rng.normal(size=(len(VISUAL), 4)).astype(np.float32))
    write_features(tmp_path / "visual.h5", VISUAL, rng.random((len(VISUAL), 4)).astype(np.float32))
    (tmp_path / "hidden.txt").write_text("\n".join(HIDDEN) + "\n")
    pairs = [("cat", "dog", 8.0), ("Car", "bus", 7.5), ("cat", "car", 3.0), ("dog", "tree", 2.0),
             ("idea", "truth", 5.0), ("cat", "joy", 1.0), ("car", "dog", 2.5), ("tree", "bus", 1.5),
             ("joy", "truth", 4.0), ("unknownword", "cat", 6.0)]
    (tmp_path / "bench.txt").write_text("".join(f"{a}\t{b}\t{s}\n" for a, b, s in pairs))
    return tmp_path, vecs, pairs


def test_pairs_within_selects_pairs_of_listed_words_case_insensitively():
    df = pd.DataFrame({"word1": ["Cat", "cat", "idea", "dog"], "word2": ["dog", "idea", "truth", "DOG"],
                       "score": [1, 2, 3, 4]})
    assert pairs_within(df, {"cat", "dog"}).tolist() == [True, False, False, True]


def test_wordsim_settings_select_the_right_pairs(files):
    d, vecs, pairs = files
    long = wordsim({"SGNS": d / "sgns.txt", "CNN": d / "cnn.txt"}, {"toy": d / "bench.txt"}, d / "visual.h5",
                   d / "hidden.txt", visual_only={"CNN"})
    got = {(r.representation, r.setting): r for r in long.itertuples()}
    assert set(got) == {("SGNS", "all"), ("SGNS", "visual"), ("SGNS", "hidden"), ("CNN", "visual"), ("CNN", "hidden")}
    # visual pairs: both words among VISUAL (case-insensitive): cat-dog, Car-bus, cat-car, dog-tree, car-dog, tree-bus
    assert got["SGNS", "visual"].pairs_in_setting == 6 and got["SGNS", "visual"].share == pytest.approx(0.6)
    # hidden pairs: both among HIDDEN: cat-dog, cat-car, car-dog
    assert got["SGNS", "hidden"].pairs_in_setting == 3
    # all pairs: the unknown word's pair is skipped and counted
    assert (got["SGNS", "all"].pairs_in_setting, got["SGNS", "all"].pairs_used) == (10, 9)
    # rho equals scipy's on the same cosines
    idx = {w: i for i, w in enumerate(WORDS)}
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    sel = [(a, b, s) for a, b, s in pairs if a.lower() in VISUAL and b.lower() in VISUAL]
    cos = [float(unit[idx[a.lower()]] @ unit[idx[b.lower()]]) for a, b, _ in sel]
    assert got["SGNS", "visual"].rho == pytest.approx(stats.spearmanr([s for *_, s in sel], cos).statistic)


def test_cli_writes_tables_2_to_5(files):
    d, _, _ = files
    (d / "few.txt").write_text("cat\tdog\t3\nidea\ttruth\t2\njoy\ttruth\t1\ntree\tjoy\t4\n")  # 1 hidden pair: rho NaN
    out = d / "long.tsv"
    assert run_cli(main, ["wordsim", "--rep", f"SGNS={d / 'sgns.txt'}", "--rep", f"CNN={d / 'cnn.txt'}",
                          "--rep", f"PIXIE⊕(∗)={d / 'sgns.txt'}", "--visual-only", "CNN",
                          "--benchmark", f"toy={d / 'bench.txt'}", "--benchmark", f"few={d / 'few.txt'}",
                          "--visual-words", str(d / "visual.h5"),
                          "--hidden-words", str(d / "hidden.txt"), "--out", str(out)]) == 0
    (d / "conc.tsv").write_text("Word\tConc.M\ncat\t4.9\njoy\t1.6\n")
    res = d / "results"
    assert run_cli(main, ["tables", "--wordsim", str(out), "--vectors", f"SGNS={d / 'sgns.txt'}",
                          "--visual-words", str(d / "visual.h5"), "--hidden-words", str(d / "hidden.txt"),
                          "--pair", "cat,dog", "--pair", "idea,nope", "--query", "cat", "--query", "joy",
                          "--query", "nope", "--k", "3", "--concreteness", str(d / "conc.tsv"),
                          "--out-dir", str(res)]) == 0
    t2 = pd.read_csv(res / "pixie_table2.csv")
    assert set(t2["setting"]) == {"all", "visual"} and "hidden" not in set(t2["setting"])
    md2 = (res / "pixie_table2.md").read_text()
    # the real coverage: 9 of the 10 pairs have both words (not "100%"), 6 are visual-word pairs
    assert "| pairs used | 9/10 (90%) | 6/10 (60%) |" in md2 and "| CNN | – |" in md2
    assert "| 100%" not in md2
    t3 = pd.read_csv(res / "pixie_table3.csv")
    assert list(t3["representation"].unique()) == ["SGNS", "PIXIE⊕(∗)"]  # CNN cannot propagate: not in Table 3
    assert t3.loc[t3["benchmark"] == "few", "rho"].isna().all()
    assert "| PIXIE⊕(∗) | " in (res / "pixie_table3.md").read_text() and " – |" in (res / "pixie_table3.md").read_text()
    t4 = pd.read_csv(res / "pixie_table4.csv")
    assert list(t4["word1_status"]) == ["hidden", "text"] and np.isnan(t4["SGNS"].iloc[1])
    t5 = pd.read_csv(res / "pixie_table5.csv", keep_default_na=False)
    assert list(t5["concreteness"].astype(str)) == ["4.9", "1.6", ""]
    assert len(t5["SGNS"].iloc[0].split(", ")) == 3 and "cat" not in t5["SGNS"].iloc[0].split(", ")
    assert t5["SGNS"].iloc[2] == ""  # a query without a vector
    # bad input: one line, exit 2
    assert run_cli(main, ["tables", "--wordsim", str(d / "bench.txt"), "--visual-words", str(d / "visual.h5"),
                          "--out-dir", str(res)]) == 2
    assert run_cli(main, ["wordsim", "--rep", "SGNS", "--benchmark", f"toy={d / 'bench.txt'}",
                          "--visual-words", str(d / "visual.h5"), "--out", str(out)]) == 2
    assert run_cli(main, ["tables", "--wordsim", str(out), "--visual-words", str(d / "visual.h5"),
                          "--concreteness", str(d / "bench.txt"), "--out-dir", str(res)]) == 2


def test_table6_reads_recall_in_percent(tmp_path):
    rows = [("i2s", 1, 0.25, 40), ("i2s", 5, 0.5, 40), ("i2s", 10, 0.75, 40),
            ("s2i", 1, 0.1, 50), ("s2i", 5, 0.3, 50), ("s2i", 10, 0.6, 50)]
    pd.DataFrame(rows, columns=["direction", "k", "recall", "n_queries"]).to_csv(
        tmp_path / "r.tsv", sep="\t", index=False)
    t = table6({"SGNS": tmp_path / "r.tsv"})
    assert t.loc[0, "I→S R@1"] == pytest.approx(25.0) and t.loc[0, "S→I R@10"] == pytest.approx(60.0)
    assert t.loc[0, "queries I→S / S→I"] == "40 / 50"
    assert run_cli(main, ["retrieval", "--run", f"SGNS={tmp_path / 'r.tsv'}", "--out-dir", str(tmp_path)]) == 0
    assert "| SGNS | 25.0 | 50.0 | 75.0 | 10.0 | 30.0 | 60.0 |" in (tmp_path / "pixie_table6.md").read_text()
    assert run_cli(main, ["retrieval", "--run", f"SGNS={tmp_path / 'nope.tsv'}", "--out-dir", str(tmp_path)]) == 2


def test_wordsim_gives_cis_and_a_paired_delta_vs_sgns_that_follows_the_data(tmp_path):
    """A planted truth: human scores are cosines of true vectors; 'good' = truth + small noise,
    SGNS = truth + large noise. Δ(good − SGNS) has a CI above 0; the reverse comparison below 0."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(60)]
    truth = rng.normal(size=(60, 8))
    unit = truth / np.linalg.norm(truth, axis=1, keepdims=True)
    pairs = [(a, b) for a in range(60) for b in range(a + 1, 60)][::7]
    (tmp_path / "bench.txt").write_text("".join(f"w{a}\tw{b}\t{unit[a] @ unit[b]:.6f}\n" for a, b in pairs))
    write_word2vec_text(tmp_path / "good.txt", words, (truth + rng.normal(scale=0.3, size=truth.shape)).astype(np.float32))
    write_word2vec_text(tmp_path / "sgns.txt", words, (truth + rng.normal(scale=1.5, size=truth.shape)).astype(np.float32))
    write_features(tmp_path / "visual.h5", words[:30], rng.random((30, 4)).astype(np.float32))
    long = wordsim({"SGNS": tmp_path / "sgns.txt", "PIXIE⊕": tmp_path / "good.txt"}, {"toy": tmp_path / "bench.txt"},
                   tmp_path / "visual.h5", n_boot=300)
    got = {(r.representation, r.setting): r for r in long.itertuples()}
    px, sg = got["PIXIE⊕", "all"], got["SGNS", "all"]
    assert px.rho_ci95_lo < px.rho < px.rho_ci95_hi and sg.rho_ci95_lo < sg.rho < sg.rho_ci95_hi
    assert px.delta_rho_vs_baseline == pytest.approx(px.rho - sg.rho)
    assert px.delta_rho_ci95_lo > 0 and px.p_rho_vs_baseline < 0.01 and px.delta_rho_se > 0
    assert px.pairs_common == len(pairs) and px.baseline == "SGNS"
    assert np.isnan(sg.delta_rho_vs_baseline)  # the baseline is not compared with itself
    assert got["PIXIE⊕", "visual"].pairs_common == got["PIXIE⊕", "visual"].pairs_in_setting
    rev = wordsim({"SGNS": tmp_path / "good.txt", "PIXIE⊕": tmp_path / "sgns.txt"}, {"toy": tmp_path / "bench.txt"},
                  tmp_path / "visual.h5", n_boot=300)
    assert rev.set_index(["representation", "setting"]).loc[("PIXIE⊕", "all"), "delta_rho_ci95_hi"] < 0


def _retrieval_run(d, ranks_i2s, ranks_s2i, drop_captions=0):
    d.mkdir(parents=True)
    qi = [f"img{i}" for i in range(len(ranks_i2s))]
    qc = [f"caption-{i}" for i in range(len(ranks_s2i))][drop_captions:]
    rs = list(ranks_s2i)[drop_captions:]
    pd.DataFrame({"direction": ["i2s"] * len(qi) + ["s2i"] * len(qc), "query": qi + qc,
                  "rank": list(ranks_i2s) + rs}).to_csv(d / "ranks.tsv", sep="\t", index=False)
    rows = [(dr, k, float((np.asarray(r) <= k).mean()), len(r)) for dr, r in (("i2s", ranks_i2s), ("s2i", rs))
            for k in (1, 5, 10)]
    pd.DataFrame(rows, columns=["direction", "k", "recall", "n_queries"]).to_csv(d / "retrieval.tsv", sep="\t",
                                                                                 index=False)
    return d / "retrieval.tsv"


def test_table6_cis_and_paired_delta_vs_sgns_over_common_queries(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    weak = rng.integers(1, 60, n)                       # R@10 ≈ 15%
    strong = np.where(rng.random(n) < 0.5, 1, weak)     # the same queries, half of them now at rank 1
    runs = {"SGNS": _retrieval_run(tmp_path / "sgns", weak, weak),
            "PIXIE⊕": _retrieval_run(tmp_path / "px", strong, strong, drop_captions=20)}
    t = table6(runs, n_boot=400).set_index("model")
    sg, px = t.loc["SGNS"], t.loc["PIXIE⊕"]
    assert sg["i2s_r1_ci95_lo"] <= sg["I→S R@1"] <= sg["i2s_r1_ci95_hi"]
    assert np.isnan(sg["delta_i2s_r1_vs_baseline"]) and px["baseline"] == "SGNS"
    assert px["delta_i2s_r1_vs_baseline"] == pytest.approx(px["I→S R@1"] - sg["I→S R@1"])
    assert px["delta_i2s_r1_ci95_lo"] > 0 and px["delta_s2i_r10_ci95_lo"] > 0 and px["p_i2s_r5_vs_baseline"] < 0.01
    # S→I: PIXIE⊕ answered 20 fewer captions; the paired test uses the 280 both answered
    assert px["queries_common_s2i"] == n - 20 and px["queries_common_i2s"] == n
    # the sign follows the data
    rev = table6({"SGNS": runs["PIXIE⊕"], "PIXIE⊕": runs["SGNS"]}, n_boot=400).set_index("model")
    assert rev.loc["PIXIE⊕", "delta_i2s_r1_ci95_hi"] < 0
    md = table6_markdown(table6(runs, n_boot=200))
    assert "<br>Δ +" in md and "*" in md
