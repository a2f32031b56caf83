"""PIXIE's word similarity in the paper's pair settings: the long ρ table of ``tables wordsim``.

The settings (``all``, ``visual``, ``hidden``) and the columns: :mod:`groundwords.studies.pixie.tables`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from groundwords.cli import UserError, log
from groundwords.evaluation import sets as bm
from groundwords.evaluation import stats
from groundwords.evaluation.similarity import load_vectors, similarity_spearman
from groundwords.files import read_feature_matrix
from groundwords.studies.pixie.names import BASELINE

SETTINGS = ("all", "visual", "hidden")
LONG_COLUMNS = ["representation", "benchmark", "setting", "rho", "pvalue", "pairs_used", "pairs_in_setting",
                "pairs_total", "share", "rho_ci95_lo", "rho_ci95_hi", "delta_rho_vs_baseline", "delta_rho_ci95_lo",
                "delta_rho_ci95_hi", "delta_rho_se", "p_rho_vs_baseline", "pairs_common", "baseline"]


def read_word_list(path) -> set[str]:
    if not Path(path).is_file():
        raise UserError(f"word list not found: {path}")
    return {w.strip().lower() for w in Path(path).read_text(encoding="utf-8").splitlines() if w.strip()}


def visual_words(path) -> set[str]:
    ids, _, _ = read_feature_matrix(path, "visual features")
    return {w.lower() for w in ids}


def pairs_within(pairs: pd.DataFrame, words: set[str]) -> np.ndarray:
    """Boolean mask of the pairs whose two words (lower-cased) are both in ``words``."""
    w1 = pairs["word1"].astype(str).str.lower().isin(words).to_numpy()
    w2 = pairs["word2"].astype(str).str.lower().isin(words).to_numpy()
    return w1 & w2


def wordsim(reps: dict[str, str], benchmarks: dict[str, str], visual_h5, hidden_txt=None,
            visual_only: set[str] = frozenset(), n_boot: int = 2000, seed: int = 0,
            baseline: str = BASELINE) -> pd.DataFrame:
    """The long table of ρ per representation x benchmark x setting (see the module docstring),
    with ρ's 95% bootstrap CI over the setting's pairs and the paired difference from
    ``baseline`` (SGNS) on the pairs both cover (:func:`groundwords.evaluation.stats.paired_bootstrap`)."""
    unknown = set(visual_only) - set(reps)
    if unknown:
        raise UserError(f"--visual-only names no --rep: {', '.join(sorted(unknown))}")
    subsets = {"visual": visual_words(visual_h5)}
    if hidden_txt:
        subsets["hidden"] = read_word_list(hidden_txt)
    pairs = {name: bm.read_pairs(path) for name, path in benchmarks.items()}
    rows, sims = [], {}
    for rep, path in reps.items():
        words, vectors = load_vectors(path)
        for bname, df in pairs.items():
            masks = {"all": np.ones(len(df), bool)} if rep not in visual_only else {}
            masks.update({s: pairs_within(df, ws) for s, ws in subsets.items()})
            for setting, mask in masks.items():
                sub = df[mask].reset_index(drop=True)
                r = similarity_spearman(words, vectors, sub, name=f"{rep}/{bname}/{setting}") if len(sub) else \
                    dict(rho=math.nan, pvalue=math.nan, pairs_used=0, sims=np.zeros(0))
                sims[rep, bname, setting] = r["sims"]
                rows.append(dict(representation=rep, benchmark=bname, setting=setting, rho=r["rho"],
                                 pvalue=r["pvalue"], pairs_used=r["pairs_used"], pairs_in_setting=int(mask.sum()),
                                 pairs_total=len(df), share=float(mask.mean()) if len(df) else math.nan))
            log.info("%-18s %-10s %s", rep, bname, "  ".join(
                f"{r['setting']}={r['rho']:.3f} ({r['pairs_used']}/{r['pairs_in_setting']})"
                for r in rows if r["representation"] == rep and r["benchmark"] == bname))
    # confidence: each ρ over its setting's pairs; each representation vs the baseline on common pairs
    for row in rows:
        key = (row["representation"], row["benchmark"], row["setting"])
        bname, setting = key[1], key[2]
        df = pairs[bname]
        mask = np.ones(len(df), bool) if setting == "all" else pairs_within(df, subsets[setting])
        human = df["score"].to_numpy(np.float64)[mask]
        ci = stats.bootstrap_ci(human, sims[key], n_boot=n_boot, seed=seed) if len(human) else {}
        row["rho_ci95_lo"], row["rho_ci95_hi"] = ci.get("lo", math.nan), ci.get("hi", math.nan)
        base = sims.get((baseline, bname, setting))
        cmp = None
        if base is not None and len(human) and key[0] != baseline:
            cmp = stats.paired_bootstrap(human, base, sims[key], n_boot=n_boot, seed=seed)
        row.update(delta_rho_vs_baseline=cmp["delta"] if cmp else math.nan,
                   delta_rho_ci95_lo=cmp["lo"] if cmp else math.nan,
                   delta_rho_ci95_hi=cmp["hi"] if cmp else math.nan,
                   delta_rho_se=cmp["se"] if cmp else math.nan,
                   p_rho_vs_baseline=cmp["p_value"] if cmp else math.nan,
                   pairs_common=cmp["n_pairs"] if cmp else math.nan,
                   baseline=baseline if base is not None else "")
    return pd.DataFrame(rows, columns=LONG_COLUMNS)
