"""The whole DAG on a tiny config in a temporary directory; lint; a rerun does nothing."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.workflow

TINY = {
    "data": {"source": "openmoji", "openmoji": {"size": 64, "limit": 120},
             "subsets": [{"name": "s60", "rows": 60}, {"name": "all", "rows": 0}]},
    "fetch": {"shards": 2, "workers": 4},
    "encoder": {"model": "efficientnet-lite0", "batch_size": 32, "num_workers": 0, "device": "cpu"},
    "pca": {"dim": 8},
    "vocab": {"min_count": 1},
    "wield": {"gammas": [0, 10], "epochs": 2, "dim": 16,
              "image_input": {"lambdas": [0, 1]}, "window_control": {"window": 4, "gammas": [0, 10]},
              "neighbours": {"queries": ["dog", "face", "zzz"], "k": 3}},
    "stats": {"n_boot": 200},
    "iesg": {"max_bytes": 300000, "min_count": 2, "sgns": {"epochs": 1, "dim": 16},
             "model": {"max_examples": 2000}, "benchmarks": ["ws353"], "freq_bins": [1, 10, 100, 1e9]},
    "pixie": {"max_bytes": 300000, "min_count": 2, "hide": 20, "text": {"epochs": 1, "dim": 16, "window": 3},
              "model": {"hidden": 32}, "vae": {"epochs": 3}, "ivsgns": {"hidden": 16, "epochs": 3},
              "benchmarks": ["ws353", "toy"], "pairs": [["dog", "face"]], "queries": ["dog", "zzz"],
              "retrieval": {"epochs": 2, "hidden": 32, "lr_step": 1}},
    "evaluate": {"benchmarks": ["ws353", "toy"]},
}


def toy_benchmark(path):
    """Pairs of words that occur in the first 60 captions, so every subset covers them."""
    from groundwords.data.datasets import openmoji_items
    from groundwords.text.vocab import tokenize

    caps = [c for _, _, cs in openmoji_items(limit=120) for c in cs][:60]
    words = sorted({w for c in caps for w in tokenize(c)})[:12]
    rng = __import__("random").Random(0)
    lines = [f"{a}\t{b}\t{rng.uniform(0, 10):.2f}" for i, a in enumerate(words) for b in words[i + 1:]]
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


def snakemake(workdir, *args, config=None):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    cmd = [sys.executable, "-m", "snakemake", *args, "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           "--workflow-profile", "none", "--cores", "2", "--resources", "gpu=1"]
    if config:
        cfg = workdir / "tiny.yaml"
        cfg.write_text(yaml.safe_dump(config))
        cmd += ["--configfile", str(cfg)]
    # generous: the tiny DAG takes ~5 min on 2 idle cores, but CI machines are often shared
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)


def test_lint_is_clean(tmp_path):
    r = snakemake(tmp_path, "--lint")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Congratulations" in r.stdout + r.stderr


def test_tiny_dag_end_to_end_and_rerun_does_nothing(tmp_path):
    n_toy = toy_benchmark(tmp_path / "toy.txt")
    TINY["benchmarks"] = {"toy": {"path": str(tmp_path / "toy.txt")}}
    r = snakemake(tmp_path, config=TINY)
    assert r.returncode == 0, r.stderr[-5000:]
    t = pd.read_csv(tmp_path / "results/table2.csv")
    assert len(t) == 2 * 2 * 2  # subsets x gammas x benchmarks
    assert set(t["gamma"]) == {0.0, 10.0} and set(t["benchmark"]) == {"ws353", "toy"}
    assert set(t["subset"]) == {"s60", "all"}
    toy = t[t["benchmark"] == "toy"]
    assert (toy["pairs_total"] == n_toy).all() and (toy["coverage_learned"] == 1).all()
    assert toy["rho_learned"].between(-1, 1).all() and toy["rho_with_image"].between(-1, 1).all()
    assert (t.loc[t["benchmark"] == "ws353", "pairs_total"] == 353).all()
    assert t["dataset_size"].max() > t["dataset_size"].min() > 0
    assert "# Table 2" in (tmp_path / "results/table2.md").read_text()
    assert {"delta_learned_vs_baseline", "p_learned_vs_baseline", "rho_learned_ci95_lo"} <= set(t.columns)
    t1 = pd.read_csv(tmp_path / "results/table1.csv")
    assert set(t1["variant"]) == {"imginput-caption", "imginput-word"} and set(t1["lambda"]) == {0, 1}
    t4 = pd.read_csv(tmp_path / "results/table4.csv")
    assert set(t4["variant"]) == {"wield-window4"}
    ctl = pd.read_csv(tmp_path / "results/controls.csv")
    assert set(ctl["variant"]) == {"wield", "wield-wordtarget", "cbow-caption"}
    t3 = pd.read_csv(tmp_path / "results/table3.csv")
    assert set(t3["query"]) == {"dog", "face", "zzz"} and t3["model"].nunique() == 2
    assert (t3.loc[t3["query"] == "zzz", "neighbours"] == "(not in vocabulary)").all()
    it1 = pd.read_csv(tmp_path / "results/iesg_table1.csv")
    assert list(it1["method"]) == ["L2 baseline", "IESG"] and it1["p_at_10"].between(0, 1).all()
    assert (it1["p_at_1"] <= it1["p_at_5"]).all() and (it1["p_at_5"] <= it1["p_at_10"]).all()
    assert set(pd.read_csv(tmp_path / "results/iesg_table3.csv")["method"]) == {"skip-gram", "IESG"}
    p2 = pd.read_csv(tmp_path / "results/pixie_table2.csv")
    assert set(p2["benchmark"]) == {"ws353", "toy"} and set(p2["setting"]) == {"all", "visual"}
    assert {"CNN", "VAE", "SGNS", "CNN⊕SGNS", "VAE⊕SGNS", "V-SGNS", "IV-SGNS (LINEAR)", "IV-SGNS (NONLINEAR)",
            "PIXIE+", "PIXIE⊕", "V-SGNS(∗)", "IV-SGNS(∗)", "PIXIE⊕(∗)"} == set(p2["representation"])
    assert set(p2.loc[p2["setting"] == "all", "representation"]).isdisjoint({"CNN", "VAE", "CNN⊕SGNS", "VAE⊕SGNS"})
    assert p2["rho"].dropna().between(-1, 1).all()
    assert set(pd.read_csv(tmp_path / "results/pixie_table3.csv")["representation"]) <= {
        "SGNS", "V-SGNS", "IV-SGNS (LINEAR)", "PIXIE⊕", "V-SGNS(∗)", "IV-SGNS(∗)", "PIXIE⊕(∗)"}
    assert len((tmp_path / "results/pixie/visual/minmax-hidden.hidden.txt").read_text().split()) == 20
    assert list(pd.read_csv(tmp_path / "results/pixie_table5.csv")["query"]) == ["dog", "zzz"]
    p6 = pd.read_csv(tmp_path / "results/pixie_table6.csv")
    assert list(p6["model"]) == ["SGNS", "V-SGNS", "IV-SGNS (LINEAR)", "PIXIE+", "PIXIE⊕"]
    assert p6.filter(like="R@").stack().between(0, 100).all()
    assert {"delta_p_at_1_vs_baseline", "p_at_10_ci95_lo"} <= set(it1.columns)
    fb = pd.read_csv(tmp_path / "results/iesg_figure3.csv")  # iesg.freq_bins reaches Figure 3
    assert sorted(set(zip(fb["freq_lo"], fb["freq_hi"]))) == [(1, 10), (10, 100), (100, 1e9)]
    assert fb.groupby(["model", "direction"])["n"].sum().eq(it1["pairs_used"].iloc[0]).all()
    assert {"rho_ci95_lo", "delta_rho_ci95_lo", "delta_rho_se", "pairs_common"} <= set(p2.columns)
    assert {"i2s_r1_ci95_lo", "delta_s2i_r10_vs_baseline"} <= set(p6.columns)
    assert (p6.loc[p6["model"] != "SGNS", "delta_i2s_r1_vs_baseline"].notna()).all()
    # the claims table: every claim of the three papers, one row per claim x size/γ/λ/benchmark/direction/K
    from groundwords.studies.claims_registry import CLAIMS, VERDICTS
    cl = pd.read_csv(tmp_path / "results/claims.csv")
    assert set(cl["claim_id"]) == set(CLAIMS) and cl["verdict"].isin(VERDICTS).all()
    per_claim = cl["claim_id"].value_counts().to_dict()
    assert per_claim == {"W1": 2, "W2": 2, "W3": 2, "W4": 2, "I1": 3, "I2": 3, "I3": 1, "P1": 3, "P2": 2,
                         "P3": 12}, per_claim
    assert (cl.loc[cl["claim_id"] == "W2", "verdict"] == "inputs absent").all()  # no γ = 250 in the tiny grid
    judged = cl[cl["verdict"].isin(["reproduced", "reversed", "no effect", "not detectable at this size"])]
    assert judged[["delta", "ci95_lo", "ci95_hi", "n"]].notna().all().all()
    assert cl.loc[cl["verdict"] == "no effect", "mde"].notna().all()
    assert judged.loc[judged["mde"].isna(), "note"].str.contains("degenerate bootstrap").all()
    assert "# Claims" in (tmp_path / "results/claims.md").read_text()
    for fig in ("figure2_loss.png", "figure3_scatter.png", "iesg_figure3.png"):
        assert (tmp_path / "results" / fig).stat().st_size > 10_000
    fetched = pd.read_csv(tmp_path / "results/data/fetched.tsv", sep="\t")
    assert (fetched["status"] == "ok").all()

    again = snakemake(tmp_path, "-n", config=TINY)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    # wield.train_jobs: grid (the embedded default): changing one gamma retrains the grids that hold
    # it (wield's and wordtarget's gamma > 0 one, per subset), re-evaluates them (one job per grid too),
    # redoes the tables
    changed = dict(TINY, wield=dict(TINY["wield"], gammas=[0, 50]))
    dry = snakemake(tmp_path, "-n", "--quiet", "rules", config=changed)
    assert dry.returncode == 0, dry.stderr[-3000:]
    counts = _job_counts(dry.stdout + dry.stderr)
    assert counts == {"train_wield": 2, "train_wield_wordtarget": 2, "evaluate_wield": 2,
                      "evaluate_wield_wordtarget": 2, "table2": 1, "controls": 1,
                      "table3": 1, "figure2": 1, "figure3": 1, "claims": 1, "all": 1}, counts

    rep = snakemake(tmp_path, "--report", "results/report.html", config=TINY)
    assert rep.returncode == 0, rep.stderr[-3000:]
    html = (tmp_path / "results/report.html").read_text(errors="replace")
    assert "table2.csv" in html and "figure3_scatter.png" in html


@pytest.mark.parametrize("mode", ["point", "grid"])
def test_train_jobs_per_run_or_per_grid(tmp_path, mode):
    """wield.train_jobs: one train job per run (point), or one per grid and seed (grid), for the
    same runs: the grids of wield.variants.grids (a dry run)."""
    from groundwords.studies.wield.variants import grids

    toy_benchmark(tmp_path / "toy.txt")
    cfg = dict(TINY, wield=dict(TINY["wield"], train_jobs=mode), benchmarks={"toy": {"path": str(tmp_path / "toy.txt")}})
    dry = snakemake(tmp_path, "-n", "--quiet", "rules", config=cfg)
    assert dry.returncode == 0, dry.stderr[-3000:]
    counts = {k: v for k, v in _job_counts(dry.stdout + dry.stderr).items() if k.startswith(("train", "evaluate"))}
    from groundwords.config import _deep_update, validate_config

    w = validate_config(_deep_update(yaml.safe_load((ROOT / "config.yaml").read_text()), cfg))["wield"]
    runs = {v: len(values) for v, (_, values) in grids(w).items()}
    assert runs == {"wield": 2, "wield-window4": 2, "wield-wordtarget": 1, "cbow-caption": 1,
                    "imginput-caption": 2, "imginput-word": 2}
    n_subsets = len(TINY["data"]["subsets"])
    if mode == "point":
        assert counts == {"train": n_subsets * sum(runs.values()), "evaluate": n_subsets * sum(runs.values())}, counts
    else:
        assert counts == {f"{stage}_{v.replace('-', '_')}": n_subsets for v in runs for stage in ("train", "evaluate")}, \
            counts


def test_bad_config_names_the_key(tmp_path):
    bad = dict(TINY, wield=dict(TINY["wield"], gammas=[0, "ten"]))
    r = snakemake(tmp_path, "-n", config=bad)
    assert r.returncode != 0
    assert "wield.gammas[1]" in r.stdout + r.stderr


def _job_counts(text):
    counts, on = {}, False
    for line in text.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            on = True
            continue
        if on and len(parts) == 2 and parts[1].isdigit():
            if parts[0] != "total":
                counts[parts[0]] = int(parts[1])
        elif on and parts and not set(parts[0]) <= {"-"}:
            on = False
    return counts


def test_corpus_url_is_downloaded_verified_and_read(tmp_path):
    """iesg.corpus_url: the DAG downloads a text8-style zip from 127.0.0.1, checks its sha1, tokenizes it."""
    import functools
    import hashlib
    import http.server
    import threading
    import zipfile

    served = tmp_path / "srv"
    served.mkdir()
    z = served / "text8.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("text8", " the cat sat on the mat the dog ran after the cat")
    sha1 = hashlib.sha1(z.read_bytes()).hexdigest()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/text8.zip"
    try:
        cfg = {"data": {"source": "openmoji", "subsets": [{"name": "all", "rows": 0}]},
               "iesg": {"corpus": "data/text8.zip", "corpus_url": url, "corpus_checksum": "sha1:" + "0" * 40,
                        "min_count": 1}}
        bad = snakemake(tmp_path, "results/iesg/corpus.txt", config=cfg)
        assert bad.returncode != 0, bad.stderr[-3000:]
        assert not (tmp_path / "data" / "text8.zip").exists()
        assert "expected " + "0" * 40 in (tmp_path / "results/logs/corpus_download_0.log").read_text()
        cfg["iesg"]["corpus_checksum"] = "sha1:" + sha1
        good = snakemake(tmp_path, "results/iesg/corpus.txt", config=cfg)
        assert good.returncode == 0, good.stderr[-3000:]
    finally:
        srv.shutdown()
    assert (tmp_path / "data" / "text8.zip").read_bytes() == z.read_bytes()
    assert (tmp_path / "results/iesg/corpus.txt").read_text().split() == \
        "the cat sat on the mat the dog ran after the cat".split()
