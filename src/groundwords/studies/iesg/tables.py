"""IESG's result tables (Tables 1-3: image->word and word->image P@1/5/10, WordSim353) and
Figure 3 (P@1 by word frequency).

``python -m groundwords.studies.iesg.tables --matching ... --ranks ... --out-dir ...``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from groundwords.cli import UserError, run_cli, setup_logging
from groundwords.evaluation import query_stats, stats
from groundwords.evaluation.matching import p1_by_frequency
from groundwords.evaluation.stats import fmt_stat
from groundwords.files import atomic_path, read_tsv, write_csv, write_markdown

IESG_MODELS = {"l2": "L2 baseline", "iesg": "IESG"}


IESG_BASELINE = "l2"


KS = (1, 5, 10)


def _cmp_columns(prefix: str, cmp: dict | None) -> dict:
    """The paired-comparison columns of one metric: Δ, its CI, bootstrap SE and p-value."""
    cmp = cmp or {}
    return {f"delta_{prefix}_vs_baseline": cmp.get("delta", np.nan),
            f"delta_{prefix}_ci95_lo": cmp.get("lo", np.nan), f"delta_{prefix}_ci95_hi": cmp.get("hi", np.nan),
            f"delta_{prefix}_se": cmp.get("se", np.nan), f"p_{prefix}_vs_baseline": cmp.get("p_value", np.nan)}


def iesg_matching_table(matching: pd.DataFrame, direction: str, ranks: pd.DataFrame | None = None,
                        n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """IESG Table 1 or 2: P@1/5/10 per model, with 95% bootstrap CIs over the test pairs
    (queries) and IESG's paired difference from the L2 baseline on the same queries.

    ``ranks``: ``iesg evaluate --ranks-tsv`` (one row per test pair, a ``<model>_<direction>``
    rank column per model); without it only the point estimates are given.
    """
    t = matching[matching["direction"] == direction].reset_index(drop=True)
    rows = []
    for _, r in t.iterrows():
        model = str(r["model"])
        row = {"method": IESG_MODELS.get(model, model), "direction": direction, "split": r["split"]}
        col = f"{model}_{direction}"
        base_col = f"{IESG_BASELINE}_{direction}"
        have = ranks is not None and col in ranks.columns
        for k in KS:
            m = f"p_at_{k}"
            row[m] = float(r[m])
            ci = cmp = None
            if have:
                hits = (pd.to_numeric(ranks[col], errors="coerce") <= k).astype(float).to_numpy()
                ci = query_stats.bootstrap_mean(hits, n_boot=n_boot, seed=seed)
                if model != IESG_BASELINE and base_col in ranks.columns:
                    base = (pd.to_numeric(ranks[base_col], errors="coerce") <= k).astype(float).to_numpy()
                    cmp = query_stats.paired_bootstrap_mean(base, hits, n_boot=n_boot, seed=seed)
            row[f"{m}_ci95_lo"] = ci["lo"] if ci else np.nan
            row[f"{m}_ci95_hi"] = ci["hi"] if ci else np.nan
            row.update(_cmp_columns(m, cmp))
        row.update(pairs_used=int(r["pairs_used"]), pairs_total=int(r["pairs_total"]),
                   n_candidates=float(r["n_candidates"]), scoring=r["scoring"],
                   baseline=IESG_MODELS[IESG_BASELINE])
        rows.append(row)
    return pd.DataFrame(rows)


def _read_pairs_file(path) -> pd.DataFrame | None:
    if path is None or not Path(path).is_file():
        return None
    return read_tsv(path, dtype={"benchmark": str, "word1": str, "word2": str})


def iesg_wordsim_table(sgns_eval, iesg_eval, sgns_pairs=None, iesg_pairs=None, n_boot: int = 2000,
                       seed: int = 0) -> pd.DataFrame:
    """IESG Table 3: Spearman ρ of skip-gram and IESG per benchmark, with 95% bootstrap CIs
    over pairs and IESG's paired difference from skip-gram on the pairs both cover
    (``pairs.tsv`` of ``groundwords.evaluation.similarity --pairs-out``; without them only ρ is given)."""
    rows = []
    pairs = {"skip-gram": _read_pairs_file(sgns_pairs), "IESG": _read_pairs_file(iesg_pairs)}
    for method, path in (("skip-gram", sgns_eval), ("IESG", iesg_eval)):
        e = read_tsv(path, dtype={"benchmark": str, "representation": str})
        for _, r in e[e["representation"] == "learned"].iterrows():
            bench = r["benchmark"]
            row = {"method": method, "benchmark": bench, "rho": pd.to_numeric(r["rho"], errors="coerce")}
            ci = cmp = None
            p, base = pairs[method], pairs["skip-gram"]
            if p is not None:
                pb = p[p["benchmark"] == bench]
                human = pb["human"].to_numpy(float)
                sims = pd.to_numeric(pb["learned"], errors="coerce").to_numpy(float)
                ci = stats.bootstrap_ci(human, sims, n_boot=n_boot, seed=seed)
                if method != "skip-gram" and base is not None:
                    bb = base[base["benchmark"] == bench]
                    if list(zip(bb["word1"], bb["word2"])) != list(zip(pb["word1"], pb["word2"])):
                        raise UserError(f"{sgns_pairs} and {iesg_pairs}: different pairs for {bench}")
                    cmp = stats.paired_bootstrap(human, pd.to_numeric(bb["learned"], errors="coerce").to_numpy(float),
                                                 sims, n_boot=n_boot, seed=seed)
            row["rho_ci95_lo"] = ci["lo"] if ci else np.nan
            row["rho_ci95_hi"] = ci["hi"] if ci else np.nan
            row.update(_cmp_columns("rho", cmp))
            row["pairs_common"] = cmp["n_pairs"] if cmp else np.nan
            row.update(pairs_used=r["pairs_used"], pairs_total=r["pairs_total"], baseline="skip-gram")
            rows.append(row)
    return pd.DataFrame(rows)


def _simple_markdown(t: pd.DataFrame, title: str, note: str = "") -> str:
    cols = list(t.columns)
    lines = [f"# {title}", ""] + ([note, ""] if note else [])
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in t.iterrows():
        lines.append("| " + " | ".join(fmt_stat(v) if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(lines) + "\n"


def _ci_cell(r, m, digits=3) -> str:
    v = r.get(m)
    if not (isinstance(v, (float, int)) and np.isfinite(v)):
        return "–"
    cell = f"{v:.{digits}f}"
    lo, hi = r.get(f"{m}_ci95_lo"), r.get(f"{m}_ci95_hi")
    if isinstance(lo, float) and np.isfinite(lo):
        cell += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return cell


def _cmp_cell(r, m, digits=3) -> str:
    d = r.get(f"delta_{m}_vs_baseline")
    if not (isinstance(d, float) and np.isfinite(d)):
        return ""
    lo, hi, p = r.get(f"delta_{m}_ci95_lo"), r.get(f"delta_{m}_ci95_hi"), r.get(f"p_{m}_vs_baseline")
    cell = f"{d:+.{digits}f}"
    if isinstance(lo, float) and np.isfinite(lo):
        cell += f" [{lo:+.{digits}f}, {hi:+.{digits}f}]"
    return cell + (f" (p={p:.3f})" if isinstance(p, float) and np.isfinite(p) else "")


def iesg_matching_markdown(t: pd.DataFrame, title: str) -> str:
    lines = [f"# {title}", "",
             "Each true (image, word) pair of the test split ranked against random candidates that share "
             "nothing with it; P@k = share of true items ranked in the top k [95% bootstrap CI over the "
             "test pairs]. Δ: P@k − P@k(L2 baseline) on the same pairs [95% CI] (paired bootstrap p).", "",
             "| method | " + " | ".join(f"P@{k}" for k in KS) + " | " + " | ".join(f"Δ P@{k} vs L2" for k in KS)
             + " | pairs used / total | candidates |", "|" + "---|" * (2 + 2 * len(KS) + 1)]
    for _, r in t.iterrows():
        lines.append(f"| {r['method']} | " + " | ".join(_ci_cell(r, f"p_at_{k}") for k in KS) + " | "
                     + " | ".join(_cmp_cell(r, f"p_at_{k}") for k in KS)
                     + f" | {int(r['pairs_used'])}/{int(r['pairs_total'])} | {r['n_candidates']:g} |")
    return "\n".join(lines) + "\n"


def iesg_wordsim_markdown(t: pd.DataFrame) -> str:
    lines = ["# IESG Table 3 — word similarity (Spearman ρ), skip-gram vs IESG", "",
             "ρ [95% bootstrap CI over pairs]; Δ: ρ(IESG) − ρ(skip-gram) on the pairs both cover [95% CI] "
             "(paired bootstrap p). Pairs with an out-of-vocabulary word are skipped and counted.", "",
             "| benchmark | method | ρ | Δ vs skip-gram | pairs used / total |", "|---|---|---|---|---|"]
    for _, r in t.iterrows():
        lines.append(f"| {r['benchmark']} | {r['method']} | {_ci_cell(r, 'rho')} | {_cmp_cell(r, 'rho')} | "
                     f"{int(r['pairs_used'])}/{int(r['pairs_total'])} |")
    return "\n".join(lines) + "\n"


def iesg_by_frequency(ranks: pd.DataFrame, vocab: pd.DataFrame, edges=None) -> pd.DataFrame:
    """Figure 3's table: P@1 per term-frequency bin of the test pairs' words, per model and
    direction (:func:`groundwords.evaluation.matching.p1_by_frequency`; ``edges`` empty/None: powers of
    ten spanning the counts). A bin without a test word has ``n = 0`` and an empty P@1."""
    counts = dict(zip(vocab["word"].astype(str), pd.to_numeric(vocab["count"], errors="coerce")))
    freqs = ranks["word"].astype(str).map(counts).to_numpy(float)
    if np.isnan(freqs).any():
        raise UserError(f"{int(np.isnan(freqs).sum())} test words are not in the skip-gram vocabulary")
    edges = list(edges) if edges is not None and len(edges) else None
    if edges is not None and (len(edges) < 2 or np.any(np.diff(edges) <= 0)):
        raise UserError(f"frequency bin edges must be at least two increasing numbers (got {edges})")
    frames = []
    for col in ranks.columns:
        for d in ("image_to_word", "word_to_image"):
            if col.endswith("_" + d):
                fb = p1_by_frequency(pd.to_numeric(ranks[col]).to_numpy(), freqs, edges)
                frames.append(fb.assign(model=col[: -len(d) - 1], direction=d))
    return pd.concat(frames, ignore_index=True)[["model", "direction", "freq_lo", "freq_hi", "n", "p_at_1"]]


def iesg_tables(matching_tsv, ranks_tsv, vocab_tsv, sgns_eval, iesg_eval, out_dir, *, sgns_pairs=None,
                iesg_pairs=None, freq_edges=None, n_boot: int = 2000, seed: int = 0) -> None:
    out_dir = Path(out_dir)
    matching = read_tsv(matching_tsv, dtype={"model": str, "direction": str})
    ranks = read_tsv(ranks_tsv, dtype={"image_id": str, "word": str})
    for i, (direction, title) in enumerate((("image_to_word", "IESG Table 1 — image → word matching"),
                                            ("word_to_image", "IESG Table 2 — word → image matching")), 1):
        t = iesg_matching_table(matching, direction, ranks, n_boot=n_boot, seed=seed)
        write_csv(t, out_dir / f"iesg_table{i}.csv")
        write_markdown(iesg_matching_markdown(t, title), out_dir / f"iesg_table{i}.md")
    t3 = iesg_wordsim_table(sgns_eval, iesg_eval, sgns_pairs, iesg_pairs, n_boot=n_boot, seed=seed)
    write_csv(t3, out_dir / "iesg_table3.csv")
    write_markdown(iesg_wordsim_markdown(t3), out_dir / "iesg_table3.md")
    fb = iesg_by_frequency(ranks, read_tsv(vocab_tsv, dtype={"word": str}), freq_edges)
    fb["model"] = fb["model"].map(IESG_MODELS).fillna(fb["model"])
    write_csv(fb, out_dir / "iesg_figure3.csv")
    p1_by_frequency_plot(fb, out_dir / "iesg_figure3.png")


def p1_by_frequency_plot(df: pd.DataFrame, out_png, title: str = "IESG Figure 3 — P@1 by word frequency"):
    """IESG Figure 3: P@1 per term-frequency bin, one panel per direction, one line per model.

    ``df`` has columns ``model, direction, freq_lo, freq_hi, n, p_at_1`` (numbers or their text,
    as read from a TSV). A bin without a test word (``n`` 0, ``p_at_1`` empty) is not drawn: the
    line joins the bins that have words, and a panel with none says so.
    """
    df = df.copy()
    for c in ("freq_lo", "freq_hi", "n", "p_at_1"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    directions = list(dict.fromkeys(df["direction"])) or ["image_to_word"]
    fig = Figure(figsize=(5 * len(directions), 4), dpi=150)
    FigureCanvasAgg(fig)
    for i, d in enumerate(directions, 1):
        ax = fig.add_subplot(1, len(directions), i)
        drawn = 0
        for model, g in df[df["direction"] == d].groupby("model", sort=False):
            g = g[(g["n"] > 0) & g["p_at_1"].notna()]
            if g.empty:
                continue
            lo, hi = g["freq_lo"].to_numpy(float), g["freq_hi"].to_numpy(float)
            x = np.where(lo > 0, np.sqrt(np.maximum(lo, 1e-12) * hi), hi / 2)  # a bin from 0: its midpoint
            ax.plot(x, g["p_at_1"].to_numpy(float), marker="o", label=str(model))
            drawn += 1
        if drawn:
            ax.set_xscale("log")
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no test word in any bin", transform=ax.transAxes, ha="center", va="center")
        ax.set_xlabel("word frequency in the corpus (bin centre)")
        ax.set_ylabel("P@1")
        ax.set_title(d.replace("_", " "))
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return Path(out_png)


# ---------------------------------------------------------------------------------------------
# CLI


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m groundwords.studies.iesg.tables",
                                description="IESG Tables 1-3 and Figure 3")
    p.add_argument("--matching", required=True, help="iesg evaluate's results TSV")
    p.add_argument("--ranks", required=True, help="iesg evaluate --ranks-tsv: every test pair's rank")
    p.add_argument("--vocab", required=True, help="the skip-gram vocab.tsv (word, count): Figure 3's frequencies")
    p.add_argument("--sgns-eval", required=True)
    p.add_argument("--iesg-eval", required=True)
    p.add_argument("--sgns-pairs", help="pairs.tsv of the skip-gram evaluation (CIs, paired Δ)")
    p.add_argument("--iesg-pairs", help="pairs.tsv of the IESG evaluation")
    p.add_argument("--freq-edges", type=float, nargs="*", default=None,
                    help="Figure 3's term-frequency bin edges (none: powers of ten)")
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--out-dir", required=True)
    a = p.parse_args(argv)
    setup_logging()
    iesg_tables(a.matching, a.ranks, a.vocab, a.sgns_eval, a.iesg_eval, a.out_dir, sgns_pairs=a.sgns_pairs,
                iesg_pairs=a.iesg_pairs, freq_edges=a.freq_edges, n_boot=a.n_boot, seed=a.seed)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
