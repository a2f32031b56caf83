"""The claims table: does each claim of the three papers hold in this run, and could it have shown?

``python -m groundwords.studies.claims --wield-table2 results/table2.csv [--wield-table1 ...]
[--iesg-table1 ... --iesg-table2 ... --iesg-table3 ...] [--pixie-table2 ... --pixie-table3 ...
--pixie-table6 ...] --out-csv results/claims.csv --out-md results/claims.md``

One row per claim (and per dataset size, γ, λ, benchmark, direction or K it is made for). The
rows are read from the tables' CSVs (their paired-bootstrap columns: ``delta_*_vs_baseline``,
``delta_*_ci95_lo/hi``, ``delta_*_se``); nothing is recomputed. Columns:

``claim_id, study, claim, benchmark, metric``
    what is claimed, on which benchmark / size / direction, and in which unit (ρ; P@k as a
    fraction; R@K in percentage points);
``paper, paper_delta``
    the paper's own figures (e.g. ``PIXIE⊕ 0.39 vs SGNS 0.33``) and their difference, blank
    where the paper has no number for this setting;
``delta, ci95_lo, ci95_hi, n``
    our effect (the claimed model minus its baseline, paired on common pairs/queries), its 95%
    bootstrap CI and the number of pairs or queries (``n_unit``);
``mde``
    the minimum detectable effect at this size, 80% power, two-sided α = 0.05:
    ``(1.96 + 0.84) · SE`` with SE the standard deviation of the paired bootstrap differences
    (:func:`groundwords.evaluation.stats.mde`); undefined (blank) when that SE is 0 — every resample gave
    the same Δ, as when two models hit exactly the same few queries — so such a row is never
    called ``no effect``;
``verdict``
    for a claim that the model is **better** (``kind`` = ``greater``): ``reproduced`` (the CI
    excludes 0 on the claimed side), ``reversed`` (it excludes 0 on the other side), ``no
    effect`` (the CI includes 0 although an effect as large as the paper's would have been
    detected: MDE ≤ |paper Δ|), ``not detectable at this size`` (the CI includes 0 and MDE > the
    paper's effect, or the paper gives none). For a claim of **no difference** (``equivalent``,
    IESG ≈ skip-gram): ``reproduced`` when the CI lies within ±margin (``stats.equivalence_margin``),
    ``differs`` when it lies entirely outside, else ``not detectable at this size``. For a claim
    that something does **not help** (``not_greater``, WIELD's image-as-input): ``reversed`` when
    the CI lies above 0, ``reproduced`` when its upper end is below +margin, else ``not
    detectable at this size``; these two never say ``reproduced`` from a degenerate bootstrap
    (SE 0, MDE undefined: e.g. a handful of pairs ranked identically). ``not estimable``: no CI (too few pairs); ``not run``: the study or
    table is disabled in the config; ``inputs absent``: the run lacks what the claim needs (e.g.
    γ = 250 is not in the grid, no hidden words);
``note``
    what was substituted (e.g. MEN not configured: the first benchmark) and caveats.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

from groundwords.cli import UserError, log, run_cli, setup_logging
from groundwords.evaluation import stats
from groundwords.files import atomic_path, write_csv

COLUMNS = ["claim_id", "study", "claim", "benchmark", "metric", "paper", "paper_delta", "delta", "ci95_lo",
           "ci95_hi", "n", "n_unit", "mde", "verdict", "kind", "note"]
VERDICTS = ("reproduced", "reversed", "no effect", "not detectable at this size", "differs", "not estimable",
            "not run", "inputs absent")
Z = 1.959963984540054

#: Every claim: id -> (study, text, kind). The table has at least one row per id.
CLAIMS = {
    "W1": ("WIELD", "each γ > 0 beats γ = 0 (vanilla CBOW) on MEN, at both dataset sizes", "greater"),
    "W2": ("WIELD", "the best γ is γ = 250 (ρ(250) − the best other γ > 0)", "greater"),
    "W3": ("WIELD", "the averaged image encodings help (Table 2's ⊕ image column − learned)", "greater"),
    "W4": ("WIELD", "the image encoding as an input (Table 1, λ > 0) does not beat λ = 0", "not_greater"),
    "I1": ("IESG", "IESG above the L2 baseline on image → word matching (Table 1)", "greater"),
    "I2": ("IESG", "IESG above the L2 baseline on word → image matching (Table 2)", "greater"),
    "I3": ("IESG", "IESG ≈ skip-gram on WordSim353 similarity / relatedness (Table 3)", "equivalent"),
    "P1": ("PIXIE", "PIXIE⊕ above SGNS on similarity benchmarks (all pairs) and on visual-word pairs (Table 2)",
           "greater"),
    "P2": ("PIXIE", "propagation: PIXIE⊕(∗) above SGNS on the hidden words' pairs (Table 3)", "greater"),
    "P3": ("PIXIE", "PIXIE+ / PIXIE⊕ retrieval ≥ SGNS (Table 6)", "greater"),
}

# --- the papers' own numbers -----------------------------------------------------------------
# WIELD Table 2 (MEN ρ): size -> γ -> (learned, with averaged image encodings)
WIELD_T2 = {
    "82k": {0: (0.4263, 0.4373), 10: (0.4926, 0.5100), 50: (0.5159, 0.5344), 250: (0.5735, 0.6017),
            10000: (0.5800, 0.5982)},
    "8.2k": {0: (0.1948, 0.2174), 10: (0.2774, 0.2961), 50: (0.4012, 0.4178), 250: (0.4081, 0.4342),
             10000: (0.3735, 0.4049)},
}
WIELD_T1 = {0: 0.12, 0.03: 0.10, 0.1: 0.09, 1: 0.11, 2: 0.14}  # MEN ρ, 8.2k captions, λ grid
IESG_T12 = {  # direction -> model -> (P@1, P@5, P@10) in %
    "image_to_word": {"l2": (28.8, 55.4, 69.3), "iesg": (62.9, 80.1, 85.8)},
    "word_to_image": {"l2": (28.3, 46.6, 56.9), "iesg": (31.0, 52.3, 62.5)},
}
IESG_T3 = {"ws353_sim": (0.702, 0.680), "ws353_rel": (0.604, 0.593)}  # (skip-gram, IESG)
PIXIE_NAMES = {"men": "MEN", "simlex999": "SimLex", "ws353": "WORDSIM", "ws353_sim": "SIM", "ws353_rel": "REL",
               "rg65": "EN-RG", "mc30": "EN-MC", "mturk287": "MTurk"}
PIXIE_SIMILARITY = ("simlex999", "ws353_sim", "rg65", "mc30")  # the paper's similarity sets we have
# PIXIE Table 2: column -> setting -> (SGNS, PIXIE⊕)
PIXIE_T2 = {
    "SimLex": {"all": (0.33, 0.39), "visual": (0.35, 0.53)}, "SIM": {"all": (0.66, 0.68), "visual": (0.66, 0.71)},
    "EN-RG": {"all": (0.60, 0.73), "visual": (0.55, 0.73)}, "EN-MC": {"all": (0.60, 0.69), "visual": (0.52, 0.71)},
    "MEN": {"all": (0.65, 0.68), "visual": (0.67, 0.76)}, "REL": {"all": (0.56, 0.52), "visual": (0.51, 0.59)},
    "MTurk": {"all": (0.65, 0.60), "visual": (0.63, 0.59)}, "WORDSIM": {"all": (0.61, 0.58), "visual": (0.60, 0.65)},
}
# PIXIE Table 3 (hidden words' pairs): column -> (SGNS, PIXIE⊕(∗))
PIXIE_T3 = {"SimLex": (0.40, 0.43), "SIM": (0.67, 0.72), "EN-RG": (0.57, 0.65), "EN-MC": (0.52, 0.60),
            "MEN": (0.68, 0.70), "REL": (0.53, 0.56), "MTurk": (0.75, 0.76), "WORDSIM": (0.63, 0.63)}
# PIXIE Table 6: model -> direction -> (R@1, R@5, R@10) in %
PIXIE_T6 = {"SGNS": {"i2s": (23.1, 49.0, 61.6), "s2i": (16.6, 41.0, 53.8)},
            "PIXIE+": {"i2s": (24.2, 52.5, 65.4), "s2i": (17.5, 43.8, 56.2)},
            "PIXIE⊕": {"i2s": (25.7, 55.7, 67.7), "s2i": (18.4, 44.9, 56.9)}}

ADAM_NOTE = ("under Adam each loss term learns at full speed whatever its weight, so γ = 50, 250 and 10000 give "
             "near-identical runs")


# ---------------------------------------------------------------------------------------------
# verdicts


def verdict(kind: str, lo: float, hi: float, mde: float, paper_delta: float = math.nan,
            margin: float = 0.05) -> str:
    """The verdict of one claim from our effect's 95% CI ``[lo, hi]`` (see the module docstring)."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "not estimable"
    if kind in ("equivalent", "not_greater") and not np.isfinite(mde):
        # a degenerate bootstrap (SE 0: e.g. two models ranking a handful of pairs identically)
        # says nothing about how large a difference the data could have shown: no "reproduced"
        return "not detectable at this size"
    if kind == "greater":
        if lo > 0:
            return "reproduced"
        if hi < 0:
            return "reversed"
        if np.isfinite(paper_delta) and np.isfinite(mde) and mde <= abs(paper_delta):
            return "no effect"
        return "not detectable at this size"
    if kind == "equivalent":
        if -margin < lo and hi < margin:
            return "reproduced"
        if lo > margin or hi < -margin:
            return "differs"
        return "not detectable at this size"
    if kind == "not_greater":
        if lo > 0:
            return "reversed"
        if hi < margin:
            return "reproduced"
        return "not detectable at this size"
    raise ValueError(f"unknown claim kind {kind!r}")


def _num(x) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


def row(cid: str, benchmark: str, metric: str, *, paper: str = "", paper_delta: float = math.nan,
        delta=math.nan, lo=math.nan, hi=math.nan, se=math.nan, n=math.nan, n_unit: str = "pairs",
        note: str = "", margin: float = 0.05, status: str | None = None) -> dict:
    """One row of the claims table; ``status`` (not run / inputs absent) overrides the verdict."""
    study, text, kind = CLAIMS[cid]
    delta, lo, hi, se, n = map(_num, (delta, lo, hi, se, n))
    mde = stats.mde(se)
    if se == 0:  # every resample gave the same Δ (e.g. both models hit the same few queries): no power estimate
        mde = math.nan
        note = "; ".join(x for x in (note, "degenerate bootstrap (SE 0): MDE undefined") if x)
    v = status or verdict(kind, lo, hi, mde, paper_delta, margin)
    return dict(claim_id=cid, study=study, claim=text, benchmark=benchmark, metric=metric, paper=paper,
                paper_delta=paper_delta, delta=delta, ci95_lo=lo, ci95_hi=hi,
                n=int(n) if np.isfinite(n) else None, n_unit=n_unit if np.isfinite(n) else "", mde=mde,
                verdict=v, kind=kind, note=note)


def _absent(cid: str, status: str, why: str) -> dict:
    return row(cid, "", "", status=status, note=why)


def _read(path) -> pd.DataFrame | None:
    if path is None:
        return None
    if not Path(path).is_file():
        raise UserError(f"table not found: {path}")
    return pd.read_csv(path)


# ---------------------------------------------------------------------------------------------
# WIELD


def _main_benchmark(t: pd.DataFrame, wanted: str = "men") -> tuple[str, str]:
    """MEN when configured, else the first benchmark (in table order) on which some Δ is defined
    (else simply the first), with a note saying which."""
    benches = list(dict.fromkeys(t["benchmark"]))
    if wanted in benches:
        return wanted, ""
    defined = t.loc[pd.to_numeric(t.get("delta_learned_ci95_lo"), errors="coerce").notna(), "benchmark"] \
        if "delta_learned_ci95_lo" in t.columns else pd.Series(dtype=str)
    if len(defined) and defined.iloc[0] != benches[0]:
        b = defined.iloc[0]
        return b, f"MEN not configured; {benches[0]} has no covered pairs: the first benchmark with a Δ ({b})"
    return benches[0], f"MEN not configured: the first benchmark ({benches[0]})"


def _sizes(t: pd.DataFrame) -> list[tuple[str, str]]:
    """(subset, the paper's size it stands for) from the largest subset down: 82k, 8.2k, none."""
    sub = (t.groupby("subset", sort=False)["dataset_size"].max().sort_values(ascending=False, kind="stable"))
    labels = ["82k", "8.2k"]
    return [(s, labels[i] if i < len(labels) else "") for i, s in enumerate(sub.index)]


def _size_name(t, subset, label) -> str:
    size = t.loc[t["subset"] == subset, "dataset_size"].max()
    txt = f"{subset} ({int(size)} captions)" if pd.notna(size) else subset
    return txt + (f" ~ paper {label}" if label else "")


def wield_claims(t2: pd.DataFrame, t1: pd.DataFrame | None, margin: float, t1_why: str = "") -> list[dict]:
    rows = []
    bench, bnote = _main_benchmark(t2)
    sizes = _sizes(t2)
    for subset, label in sizes:
        g = t2[(t2["subset"] == subset) & (t2["benchmark"] == bench)]
        where = f"{bench}, {_size_name(t2, subset, label)}"
        paper = WIELD_T2.get(label, {})
        # W1: each γ > 0 vs γ = 0
        pos = g[g["gamma"] > 0].sort_values("gamma")
        if pos.empty:
            rows.append(row("W1", where, "ρ learned", status="inputs absent", note="no γ > 0 in wield.gammas"))
        for _, r in pos.iterrows():
            gm = float(r["gamma"])
            pd_ = paper[gm][0] - paper[0][0] if gm in paper else math.nan
            rows.append(row("W1", where, f"ρ learned, γ = {gm:g} − γ = 0",
                            paper=(f"{paper[gm][0]:.4f} vs {paper[0][0]:.4f}" if gm in paper else ""),
                            paper_delta=pd_, delta=r["delta_learned_vs_baseline"],
                            lo=r.get("delta_learned_ci95_lo"), hi=r.get("delta_learned_ci95_hi"),
                            se=r.get("delta_learned_se"), n=r["pairs_used_learned"],
                            note="; ".join(x for x in (bnote, f"{int(r['n_seeds'])} seed(s)") if x)))
        # W2: γ = 250 vs the best other γ > 0 (⊕ image column, as the paper's bold figures)
        at250 = pos[pos["gamma"] == 250]
        rows.append(_w2_row(g, pos, at250, where, paper, bnote))
        # W3: ⊕ image − learned, at γ = 250 (else the largest γ)
        pick = at250 if len(at250) else (pos.tail(1) if len(pos) else g.tail(1))
        if pick.empty or "delta_image_vs_learned" not in g.columns:
            rows.append(row("W3", where, "ρ with image − ρ learned", status="inputs absent",
                            note="no grid point with both representations"))
        else:
            r = pick.iloc[0]
            gm = float(r["gamma"])
            pdl = paper[gm][1] - paper[gm][0] if gm in paper else math.nan
            rows.append(row("W3", where, f"ρ with image − ρ learned, γ = {gm:g}",
                            paper=f"{paper[gm][1]:.4f} vs {paper[gm][0]:.4f}" if gm in paper else "",
                            paper_delta=pdl, delta=r["delta_image_vs_learned"], lo=r.get("delta_image_ci95_lo"),
                            hi=r.get("delta_image_ci95_hi"), se=r.get("delta_image_se"),
                            n=r["pairs_used_with_image"], note=bnote))
    if len(sizes) < 2:
        rows.append(row("W1", bench, "ρ learned", status="inputs absent",
                        note="one dataset size configured (data.subsets); the paper has two"))
    return rows + _w4_rows(t1, margin, t1_why)


def _w2_row(g: pd.DataFrame, pos: pd.DataFrame, at250: pd.DataFrame, where: str, paper: dict, bnote: str) -> dict:
    """W2 at one size: γ = 250 vs the best other γ > 0 (⊕ image column, as the paper's bold figures)."""
    col = "with_image" if g["rho_with_image"].notna().any() else "learned"
    others = pos[pos["gamma"] != 250].dropna(subset=[f"rho_{col}"])
    if at250.empty or others.empty:
        return row("W2", where, f"ρ {col}", status="inputs absent",
                   note="needs γ = 250 and another γ > 0 in wield.gammas")
    a = at250.iloc[0]
    b = others.loc[others[f"rho_{col}"].idxmax()]
    d = _num(a[f"delta_{col}_vs_baseline"]) - _num(b[f"delta_{col}_vs_baseline"])
    se = math.hypot(_num(a.get(f"delta_{col}_se")), _num(b.get(f"delta_{col}_se")))
    i = 0 if col == "learned" else 1
    best_other = max((gm for gm in paper if gm not in (0, 250)), key=lambda gm: paper[gm][i], default=None)
    pdl = paper[250][i] - paper[best_other][i] if paper and best_other is not None else math.nan
    return row("W2", where, f"ρ {col.replace('_', ' ')}, γ = 250 − γ = {float(b['gamma']):g} "
               "(the best other)",
               paper=(f"{paper[250][i]:.4f} vs {paper[best_other][i]:.4f} (γ = {best_other:g})"
                      if paper and best_other is not None else ""),
               paper_delta=pdl, delta=d, lo=d - Z * se, hi=d + Z * se, se=se,
               n=a[f"pairs_used_{col}"],
               note="; ".join(x for x in (bnote, "CI from the two Δs vs γ = 0 as if independent "
                                          "(conservative); " + ADAM_NOTE) if x))


def _w4_rows(t1: pd.DataFrame | None, margin: float, t1_why: str) -> list[dict]:
    """W4: Table 1, image as input, on the smallest subset (the paper: 8.2k captions)."""
    if t1 is None:
        return [_absent("W4", "not run", t1_why or "wield.image_input.enabled is false")]
    rows = []
    b1, n1 = _main_benchmark(t1)
    small = _sizes(t1)[-1][0]
    g = t1[(t1["subset"] == small) & (t1["benchmark"] == b1) & (t1["lambda"] > 0)]
    for _, r in g.sort_values(["variant", "lambda"]).iterrows():
        lam = float(r["lambda"])
        pdl = WIELD_T1[lam] - WIELD_T1[0] if lam in WIELD_T1 else math.nan
        rows.append(row("W4", f"{b1}, {_size_name(t1, small, '8.2k')}",
                        f"ρ learned, {r['variant']} λ = {lam:g} − λ = 0",
                        paper=f"{WIELD_T1[lam]:.2f} vs {WIELD_T1[0]:.2f}" if lam in WIELD_T1 else "",
                        paper_delta=pdl, delta=r["delta_learned_vs_baseline"], lo=r.get("delta_learned_ci95_lo"),
                        hi=r.get("delta_learned_ci95_hi"), se=r.get("delta_learned_se"),
                        n=r["pairs_used_learned"], margin=margin,
                        note="; ".join(x for x in (n1, f"margin ±{margin:g}") if x)))
    if g.empty:
        rows.append(row("W4", b1, "ρ learned", status="inputs absent", note="no λ > 0 in wield.image_input.lambdas"))
    return rows


# ---------------------------------------------------------------------------------------------
# IESG


def iesg_claims(t1: pd.DataFrame | None, t2: pd.DataFrame | None, t3: pd.DataFrame | None, margin: float,
                why: str = "") -> list[dict]:
    if t1 is None or t2 is None or t3 is None:
        return [_absent(c, "not run", why or "iesg.enabled is false") for c in ("I1", "I2", "I3")]
    rows = []
    for cid, t, direction, arrow in (("I1", t1, "image_to_word", "image → word"),
                                     ("I2", t2, "word_to_image", "word → image")):
        ie = t[t["method"] == "IESG"]
        if ie.empty:
            rows.append(_absent(cid, "inputs absent", "no IESG row in the table"))
            continue
        r = ie.iloc[0]
        for i, k in enumerate((1, 5, 10)):
            p_ie, p_l2 = IESG_T12[direction]["iesg"][i], IESG_T12[direction]["l2"][i]
            rows.append(row(cid, f"{arrow}, test split", f"P@{k} (fraction), IESG − L2",
                            paper=f"{p_ie / 100:.3f} vs {p_l2 / 100:.3f}", paper_delta=(p_ie - p_l2) / 100,
                            delta=r[f"delta_p_at_{k}_vs_baseline"], lo=r.get(f"delta_p_at_{k}_ci95_lo"),
                            hi=r.get(f"delta_p_at_{k}_ci95_hi"), se=r.get(f"delta_p_at_{k}_se"), n=r["pairs_used"],
                            n_unit="queries", note=f"{r['n_candidates']:g} candidates per query"))
    ie = t3[t3["method"] == "IESG"]
    benches = list(dict.fromkeys(ie["benchmark"]))
    wanted = [b for b in ("ws353_sim", "ws353_rel") if b in benches]
    note = ""
    if not wanted:
        sub = "ws353" if "ws353" in benches else (benches[0] if benches else None)
        if sub is None:
            return rows + [_absent("I3", "inputs absent", "no benchmark in iesg.benchmarks")]
        wanted = [sub]
        note = f"ws353_sim / ws353_rel not in iesg.benchmarks: {sub} instead"
    for b in wanted:
        r = ie[ie["benchmark"] == b].iloc[0]
        pp = IESG_T3.get(b)
        paper = (f"{pp[1]:.3f} vs {pp[0]:.3f}" if pp else
                 "sim 0.680 vs 0.702, rel 0.593 vs 0.604")
        rows.append(row("I3", b, "ρ, IESG − skip-gram", paper=paper,
                        paper_delta=pp[1] - pp[0] if pp else math.nan, delta=r["delta_rho_vs_baseline"],
                        lo=r.get("delta_rho_ci95_lo"), hi=r.get("delta_rho_ci95_hi"), se=r.get("delta_rho_se"),
                        n=r.get("pairs_common"), margin=margin,
                        note="; ".join(x for x in (note, f"margin ±{margin:g}") if x)))
    return rows


# ---------------------------------------------------------------------------------------------
# PIXIE


def _pixie_row(cid, r, bench, setting, metric, paper_pair, extra_note=""):
    col = PIXIE_NAMES.get(bench)
    label = f"{bench} ({col})" if col else bench
    paper = f"{paper_pair[1]:.2f} vs {paper_pair[0]:.2f}" if paper_pair else ""
    pdl = paper_pair[1] - paper_pair[0] if paper_pair else math.nan
    note = extra_note
    if paper_pair and pdl <= 0:
        note = "; ".join(x for x in (note, "the paper's own Δ is not positive here") if x)
    return row(cid, f"{label}, {setting} pairs", metric, paper=paper, paper_delta=pdl,
               delta=r["delta_rho_vs_baseline"], lo=r.get("delta_rho_ci95_lo"), hi=r.get("delta_rho_ci95_hi"),
               se=r.get("delta_rho_se"), n=r.get("pairs_common"), note=note)


def pixie_claims(t2: pd.DataFrame | None, t3: pd.DataFrame | None, t6: pd.DataFrame | None,
                 why: str = "", why6: str = "") -> list[dict]:
    if t2 is None:
        return [_absent(c, "not run", why or "pixie.enabled is false") for c in ("P1", "P2", "P3")]
    rows = []
    px = t2[t2["representation"] == "PIXIE⊕"]
    benches = list(dict.fromkeys(t2["benchmark"]))
    sims = [b for b in benches if b in PIXIE_SIMILARITY]
    if not sims:
        rows.append(_absent("P1", "inputs absent", "no similarity benchmark (" + ", ".join(PIXIE_SIMILARITY)
                            + ") in pixie.benchmarks: the all-pairs part of the claim is not tested"))
    for b in sims:
        r = px[(px["benchmark"] == b) & (px["setting"] == "all")]
        if len(r):
            rows.append(_pixie_row("P1", r.iloc[0], b, "all", "ρ, PIXIE⊕ − SGNS",
                                   PIXIE_T2.get(PIXIE_NAMES.get(b, ""), {}).get("all")))
    for b in benches:
        r = px[(px["benchmark"] == b) & (px["setting"] == "visual")]
        if len(r):
            rows.append(_pixie_row("P1", r.iloc[0], b, "visual-word", "ρ, PIXIE⊕ − SGNS",
                                   PIXIE_T2.get(PIXIE_NAMES.get(b, ""), {}).get("visual")))
    hid = t3[t3["representation"] == "PIXIE⊕(∗)"] if t3 is not None and len(t3) else pd.DataFrame()
    if hid.empty:
        rows.append(_absent("P2", "inputs absent", "no hidden words (pixie.hide is 0)"))
    for _, r in hid.iterrows():
        rows.append(_pixie_row("P2", r, r["benchmark"], "hidden-word", "ρ, PIXIE⊕(∗) − SGNS",
                               PIXIE_T3.get(PIXIE_NAMES.get(r["benchmark"], ""))))
    if t6 is None:
        rows.append(_absent("P3", "not run", why6 or "pixie.retrieval.enabled is false"))
    else:
        for model in ("PIXIE+", "PIXIE⊕"):
            m = t6[t6["model"] == model]
            if m.empty:
                rows.append(_absent("P3", "inputs absent", f"no {model} row in Table 6"))
                continue
            r = m.iloc[0]
            for d, arrow in (("i2s", "image → sentence"), ("s2i", "sentence → image")):
                for i, k in enumerate((1, 5, 10)):
                    s = f"{d}_r{k}"
                    p_m, p_s = PIXIE_T6[model][d][i], PIXIE_T6["SGNS"][d][i]
                    rows.append(row("P3", f"{arrow}, test split", f"R@{k} (%), {model} − SGNS",
                                    paper=f"{p_m:.1f} vs {p_s:.1f}", paper_delta=p_m - p_s,
                                    delta=r.get(f"delta_{s}_vs_baseline"), lo=r.get(f"delta_{s}_ci95_lo"),
                                    hi=r.get(f"delta_{s}_ci95_hi"), se=r.get(f"delta_{s}_se"),
                                    n=r.get(f"queries_common_{d}"), n_unit="queries"))
    return rows


# ---------------------------------------------------------------------------------------------
# the table


def claims(wield_table2=None, wield_table1=None, iesg_tables=(None, None, None), pixie_tables=(None, None, None),
           margin: float = 0.05, why: dict | None = None) -> pd.DataFrame:
    """The claims table from the tables' CSV paths (None: the table is not part of this run)."""
    why = why or {}
    rows: list[dict] = []
    t2 = _read(wield_table2)
    if t2 is None:
        rows += [_absent(c, "not run", why.get("wield", "no WIELD Table 2")) for c in ("W1", "W2", "W3", "W4")]
    else:
        rows += wield_claims(t2, _read(wield_table1), margin, why.get("wield_table1", ""))
    rows += iesg_claims(*map(_read, iesg_tables), margin=margin, why=why.get("iesg", ""))
    rows += pixie_claims(*map(_read, pixie_tables), why=why.get("pixie", ""), why6=why.get("pixie_table6", ""))
    out = pd.DataFrame(rows, columns=COLUMNS)
    order = {c: i for i, c in enumerate(CLAIMS)}
    out = out.sort_values("claim_id", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    missing = set(CLAIMS) - set(out["claim_id"])
    assert not missing, missing
    return out


def _f(x, digits=3, sign=False) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return ""
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def claims_markdown(t: pd.DataFrame, margin: float = 0.05) -> str:
    lines = ["# Claims of the three papers: reproduced here?", "",
             "Δ: the claimed model minus its baseline on the pairs/queries both cover [95% paired-bootstrap CI]; "
             "n: pairs or queries; MDE: the minimum detectable |Δ| at this n (80% power, two-sided α = 0.05, "
             "≈ 2.8 × the bootstrap SE). Verdicts: *reproduced* (the CI excludes 0 on the claimed side; for ≈ / "
             f"'does not help' claims: the CI lies within ±{margin:g} / below +{margin:g}), *reversed* (the CI "
             "excludes 0 on the other side), *no effect* (the CI includes 0 though the paper's effect would have "
             "been detected), *not detectable at this size* (the CI includes 0 and MDE > the paper's effect), "
             "*differs* (≈ claim, the CI lies outside the margin), *not estimable*, *not run*, *inputs absent*. "
             "Units: ρ; P@k as a fraction; R@K in percentage points.", "",
             "| id | claim | benchmark | metric | paper | paper Δ | our Δ [95% CI] | n | MDE | verdict | note |",
             "|---|---|---|---|---|---:|---|---:|---:|---|---|"]
    for _, r in t.iterrows():
        ours = _f(r["delta"], sign=True)
        if ours and np.isfinite(r["ci95_lo"]):
            ours += f" [{_f(r['ci95_lo'], sign=True)}, {_f(r['ci95_hi'], sign=True)}]"
        n = f"{int(r['n'])} {r['n_unit']}" if pd.notna(r["n"]) else ""
        lines.append(f"| {r['claim_id']} | {r['claim']} | {r['benchmark']} | {r['metric']} | {r['paper']} | "
                     f"{_f(r['paper_delta'], sign=True)} | {ours} | {n} | {_f(r['mde'])} | **{r['verdict']}** | "
                     f"{r['note']} |")
    counts = t["verdict"].value_counts()
    lines += ["", "Verdicts: " + ", ".join(f"{v} {int(counts[v])}" for v in VERDICTS if v in counts) + "."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m groundwords.studies.claims", description=__doc__.split("\n")[0])
    p.add_argument("--wield-table2", help="results/table2.csv")
    p.add_argument("--wield-table1", help="results/table1.csv (image as input)")
    for i in (1, 2, 3):
        p.add_argument(f"--iesg-table{i}", help=f"results/iesg_table{i}.csv")
    for i in (2, 3, 6):
        p.add_argument(f"--pixie-table{i}", help=f"results/pixie_table{i}.csv")
    p.add_argument("--margin", type=float, default=0.05,
                   help="the largest |Δ| that counts as 'no difference' (≈ and 'does not help' claims)")
    p.add_argument("--why", action="append", default=[], metavar="PART=REASON",
                   help="why a part is not run (wield, wield_table1, iesg, pixie, pixie_table6)")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    a = p.parse_args(argv)
    setup_logging()
    if a.margin <= 0:
        raise UserError("--margin must be > 0")
    why = {}
    for spec in a.why:
        k, sep, v = spec.partition("=")
        if not sep:
            raise UserError(f"--why {spec!r}: expected PART=REASON")
        why[k] = v
    t = claims(a.wield_table2, a.wield_table1, (a.iesg_table1, a.iesg_table2, a.iesg_table3),
               (a.pixie_table2, a.pixie_table3, a.pixie_table6), margin=a.margin, why=why)
    write_csv(t, a.out_csv)
    with atomic_path(a.out_md) as tmp:
        tmp.write_text(claims_markdown(t, a.margin), encoding="utf-8")
    log.info("claims: %d rows (%s) -> %s", len(t), ", ".join(f"{v} {n}" for v, n in t["verdict"].value_counts().items()),
             a.out_csv)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
