"""Result tables in the papers' shapes, as CSV (for machines) and Markdown (for people).

Every trained model lives at ``<subset>/<variant>/<param>-<value>/seed-<s>/`` with its
``eval.tsv`` (ρ per benchmark and representation), ``pairs.tsv`` (every pair's cosine) and
``train.json``. A *summary table* groups those runs by subset, variant and grid point and
gives, per benchmark and representation (``learned``; ``with_image`` = learned ⊕ the word's
averaged image encoding):

- ``rho_<rep>``: Spearman ρ, the mean over seeds (``rho_<rep>_sd``: their standard deviation,
  ddof=1, empty for one seed);
- ``rho_<rep>_ci95_lo/hi``: 95% percentile-bootstrap interval of that (seed-mean) ρ, resampling
  benchmark pairs (:func:`groundwords.evaluation.stats.bootstrap_ci`);
- ``delta_<rep>_vs_baseline`` and ``p_<rep>_vs_baseline``: ρ(run) − ρ(baseline) on the pairs
  both cover, with a paired-bootstrap two-sided p-value (:func:`groundwords.evaluation.stats.paired_bootstrap`);
  the baseline is a grid point of the same subset (for Table 2: γ = 0, vanilla CBOW);
  ``delta_<rep>_ci95_lo/hi`` its 95% percentile interval, ``delta_<rep>_se`` the standard
  deviation of the bootstrap differences (the minimum detectable effect is ≈ 2.8 × se);
- ``delta_image_vs_learned`` (``p_image_vs_learned``, ``delta_image_ci95_lo/hi``,
  ``delta_image_se``): ρ(with_image) − ρ(learned) of the same runs on the pairs both cover
  (does the averaged image encoding help?);
- ``pairs_used_<rep>``, ``pairs_total``, ``coverage_<rep>`` (= used / total).

``python -m groundwords.studies.wield.tables summary`` writes such a table (Tables 1, 2, 4 and the §6.2
control of the WIELD paper); ``... neighbours`` writes Table 3 (nearest neighbours).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from groundwords.cli import UserError, log, run_cli, setup_logging
from groundwords.evaluation import stats
from groundwords.evaluation.neighbours import nearest_neighbours
from groundwords.evaluation.stats import fmt_stat
from groundwords.files import read_tsv, write_csv, write_markdown

RUN_RE = re.compile(r"(?P<subset>[^/]+)/(?P<variant>[^/]+)/(?P<param>[a-z]+)-(?P<value>[^/]+)/seed-(?P<seed>\d+)/eval\.tsv$")
REPRS = {"learned": "learned", "learned+image": "with_image"}


def parse_run(path) -> dict:
    m = RUN_RE.search(Path(path).as_posix())
    if not m:
        raise UserError(f"{path}: not an evaluation path of the form "
                        "<subset>/<variant>/<param>-<value>/seed-<s>/eval.tsv")
    return {"subset": m["subset"], "variant": m["variant"], "param": m["param"],
            "value": float(m["value"]), "seed": int(m["seed"]), "point": f"{m['variant']}/{m['param']}-{m['value']}"}


def collect(eval_paths: list[str]) -> pd.DataFrame:
    """Long table of every eval.tsv, tagged with its run (from the path) and dataset size."""
    frames = []
    for p in eval_paths:
        run = parse_run(p)
        df = read_tsv(p, dtype={"benchmark": str, "representation": str})
        info_path = Path(p).with_name("train.json")
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        for k, v in run.items():
            df[k] = v
        df["dataset_size"] = info.get("n_captions", np.nan)
        df["path"] = str(p)
        frames.append(df)
    if not frames:
        raise UserError("no evaluation files given")
    out = pd.concat(frames, ignore_index=True)
    for c in ("rho", "pvalue", "coverage"):
        out[c] = pd.to_numeric(out[c], errors="coerce")
    return out


def _pair_sims(paths: list[str], benchmark: str, rep: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Human scores and a (seeds x pairs) cosine matrix from the runs' pairs.tsv files."""
    human, runs = None, []
    for p in paths:
        f = Path(p).with_name("pairs.tsv")
        if not f.exists():
            return None, None
        df = read_tsv(f, dtype={"benchmark": str, "word1": str, "word2": str})
        df = df[df["benchmark"] == benchmark]
        if rep not in df.columns:
            return None, None
        human = df["human"].to_numpy(float)
        runs.append(pd.to_numeric(df[rep], errors="coerce").to_numpy(float))
    return human, (np.stack(runs) if runs else None)


def summary(long: pd.DataFrame, baseline: str | None = None, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per subset × grid point × benchmark (see the module docstring for the columns)."""
    bench_order = {b: i for i, b in enumerate(dict.fromkeys(long["benchmark"]))}
    point_order = {p: i for i, p in enumerate(dict.fromkeys(long["variant"]))}
    rows = []
    for (subset, point, bench), g in long.groupby(["subset", "point", "benchmark"], sort=False):
        first = g.iloc[0]
        row = {"subset": subset, "dataset_size": int(g["dataset_size"].max()) if g["dataset_size"].notna().any() else None,
               "variant": first["variant"], first["param"]: first["value"], "benchmark": bench,
               "n_seeds": int(g["seed"].nunique())}
        base = None
        if baseline:
            base = long[(long["subset"] == subset) & (long["point"] == baseline) & (long["benchmark"] == bench)]
        own = {}
        for rep, col in REPRS.items():
            r = g[g["representation"] == rep].sort_values("seed")
            rhos = r["rho"].to_numpy(float)
            row[f"rho_{col}"] = float(np.nanmean(rhos)) if np.isfinite(rhos).any() else np.nan
            row[f"rho_{col}_sd"] = float(np.nanstd(rhos, ddof=1)) if np.isfinite(rhos).sum() > 1 else np.nan
            human, sims = _pair_sims(list(dict.fromkeys(r["path"])), bench, rep)
            own[col] = (human, sims)
            lo = hi = np.nan
            cmp = dict.fromkeys(("delta", "lo", "hi", "se", "p_value"), np.nan)
            if sims is not None:
                ci = stats.bootstrap_ci(human, sims, n_boot=n_boot, seed=seed)
                lo, hi = ci["lo"], ci["hi"]
                if base is not None and len(base):
                    b = base[base["representation"] == rep].sort_values("seed")
                    bh, bsims = _pair_sims(list(dict.fromkeys(b["path"])), bench, rep)
                    if bsims is not None:
                        cmp = stats.paired_bootstrap(bh, bsims, sims, n_boot=n_boot, seed=seed)
            row[f"rho_{col}_ci95_lo"], row[f"rho_{col}_ci95_hi"] = lo, hi
            if baseline:
                row[f"delta_{col}_vs_baseline"], row[f"p_{col}_vs_baseline"] = cmp["delta"], cmp["p_value"]
                row[f"delta_{col}_ci95_lo"], row[f"delta_{col}_ci95_hi"] = cmp["lo"], cmp["hi"]
                row[f"delta_{col}_se"] = cmp["se"]
            row[f"pairs_used_{col}"] = int(r["pairs_used"].max()) if len(r) else 0
            row[f"coverage_{col}"] = float(r["coverage"].mean()) if len(r) else np.nan
        # does the averaged image encoding help? with_image − learned of the same runs, common pairs
        (h, learned), (_, with_image) = own["learned"], own["with_image"]
        cmp = dict.fromkeys(("delta", "lo", "hi", "se", "p_value"), np.nan)
        if learned is not None and with_image is not None:
            cmp = stats.paired_bootstrap(h, learned, with_image, n_boot=n_boot, seed=seed)
        row["delta_image_vs_learned"], row["p_image_vs_learned"] = cmp["delta"], cmp["p_value"]
        row["delta_image_ci95_lo"], row["delta_image_ci95_hi"] = cmp["lo"], cmp["hi"]
        row["delta_image_se"] = cmp["se"]
        row["pairs_total"] = int(g["pairs_total"].max())
        rows.append(row)
    out = pd.DataFrame(rows)
    params = [c for c in ("gamma", "lambda") if c in out.columns]
    out["_b"] = out["benchmark"].map(bench_order)
    out["_v"] = out["variant"].map(point_order)
    out["_size"] = out["dataset_size"].fillna(0)
    out = out.sort_values(["_size", "subset", "_b", "_v", *params], ascending=[False, True, True, True] + [True] * len(params))
    return out.drop(columns=["_b", "_v", "_size"]).reset_index(drop=True)


def table2(long: pd.DataFrame, n_boot: int = 2000) -> pd.DataFrame:
    """WIELD Table 2: γ grid per dataset size; baseline γ = 0 (vanilla CBOW)."""
    variant = long["variant"].iloc[0]
    return summary(long, baseline=f"{variant}/gamma-0", n_boot=n_boot)


# ---------------------------------------------------------------------------------------------
# Markdown


def _rho_cell(r, col):
    cell = fmt_stat(r[f"rho_{col}"])
    sd = r.get(f"rho_{col}_sd")
    if isinstance(sd, float) and np.isfinite(sd):
        cell += f" ± {fmt_stat(sd)}"
    lo, hi = r.get(f"rho_{col}_ci95_lo"), r.get(f"rho_{col}_ci95_hi")
    if isinstance(lo, float) and np.isfinite(lo):
        cell += f" [{fmt_stat(lo, 3)}, {fmt_stat(hi, 3)}]"
    return cell


def _delta_cell(r, col):
    d, p = r.get(f"delta_{col}_vs_baseline"), r.get(f"p_{col}_vs_baseline")
    if not (isinstance(d, float) and np.isfinite(d)):
        return ""
    cell = f"{d:+.4f}"
    lo, hi = r.get(f"delta_{col}_ci95_lo"), r.get(f"delta_{col}_ci95_hi")
    if isinstance(lo, float) and np.isfinite(lo):
        cell += f" [{lo:+.3f}, {hi:+.3f}]"
    return cell + (f" (p={p:.3f})" if np.isfinite(p) else "")


def summary_markdown(t: pd.DataFrame, title: str, note: str = "", baseline: str | None = None) -> str:
    param = next((c for c in ("gamma", "lambda") if c in t.columns), None)
    sym = {"gamma": "γ", "lambda": "λ"}.get(param, "")
    lines = [f"# {title}", ""]
    if note:
        lines += [note, ""]
    lines += [
        "ρ: Spearman correlation of cosine similarities with human scores (mean over seeds "
        "± sd) [95% bootstrap CI over benchmark pairs]. *learned*: the embeddings; *with image*: "
        "⊕ the word's averaged raw image encoding. Coverage: pairs used / pairs in the benchmark."
        + (f" Δ: ρ − ρ({baseline}) on common pairs [95% CI], paired bootstrap p." if baseline else ""),
        "",
    ]
    multi_variant = t["variant"].nunique() > 1
    for bench, tb in t.groupby("benchmark", sort=False):
        head = ["dataset size"] + (["model"] if multi_variant else []) + ([sym] if param else []) + [
            "ρ learned", "ρ with image"] + (["Δ learned", "Δ with image"] if baseline else []) + [
            "coverage learned", "coverage with image", "seeds"]
        lines += [f"## {bench}", "", "| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
        for _, r in tb.iterrows():
            size = f"{r['subset']} ({int(r['dataset_size'])})" if pd.notna(r["dataset_size"]) else r["subset"]
            cells = [size] + ([r["variant"]] if multi_variant else [])
            if param:
                cells.append(f"{r[param]:g}" if pd.notna(r[param]) else "")
            cells += [_rho_cell(r, "learned"), _rho_cell(r, "with_image")]
            if baseline:
                cells += [_delta_cell(r, "learned"), _delta_cell(r, "with_image")]
            cells += [f"{r['pairs_used_learned']}/{r['pairs_total']}", f"{r['pairs_used_with_image']}/{r['pairs_total']}",
                      str(r["n_seeds"])]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def table2_markdown(t: pd.DataFrame) -> str:
    return summary_markdown(t, "Table 2 — Spearman ρ of WIELD embeddings (γ = 0 is vanilla CBOW)",
                            baseline=f"{t['variant'].iloc[0]} γ=0")


# ---------------------------------------------------------------------------------------------
# Table 3: nearest neighbours


def best_point(t: pd.DataFrame, subset: str, param: str = "gamma", benchmark: str | None = None) -> float:
    """The grid value > 0 with the highest mean ρ (learned) on ``benchmark``.

    By default the benchmark is the first one (in table order) on which some value > 0 has a
    defined ρ; if none has (no benchmark pair is covered), the largest value is taken, with a
    warning.
    """
    grid = t[(t["subset"] == subset) & (t[param] > 0)]
    t = grid.dropna(subset=["rho_learned"])
    benches = [benchmark] if benchmark else list(dict.fromkeys(t["benchmark"]))
    for b in benches:
        tb = t[t["benchmark"] == b]
        if len(tb):
            return float(tb.loc[tb["rho_learned"].idxmax(), param])
    if benchmark:
        raise UserError(f"no {param} > 0 with a defined ρ on {benchmark} for subset {subset}")
    log.warning("no benchmark gives a defined ρ for subset %s: taking the largest %s", subset, param)
    return float(grid[param].max()) if len(grid) else float("nan")


def neighbours_table(table2_csv, root, queries: list[str], k: int = 5, variant: str = "wield",
                     seed: int = 0) -> tuple[pd.DataFrame, float]:
    """Table 3: neighbours of each query for WIELD at the best γ and for vanilla CBOW (γ = 0),
    on the largest subset (the best γ is chosen on the first benchmark of Table 2)."""
    from groundwords.config import gamma_label
    from groundwords.evaluation.similarity import load_vectors

    t2 = pd.read_csv(table2_csv)
    subset = t2.sort_values("dataset_size", ascending=False)["subset"].iloc[0]
    best = best_point(t2, subset)
    if not np.isfinite(best):
        best = float(t2.loc[t2["subset"] == subset, "gamma"].max())
    rows = []
    for label, g in ((f"WIELD (γ={best:g})", best), ("Word2Vec (γ=0)", 0.0)):
        d = Path(root) / subset / variant / f"gamma-{gamma_label(g)}" / f"seed-{seed}"
        words, vecs = load_vectors(d / "vectors.txt")
        for q, nn in nearest_neighbours(words, vecs, queries, k).items():
            rows.append({"subset": subset, "model": label, "gamma": g, "query": q,
                         "neighbours": ", ".join(w for w, _ in nn) if nn else "(not in vocabulary)",
                         "cosines": ", ".join(f"{s:.3f}" for _, s in nn)})
    return pd.DataFrame(rows), best


def neighbours_markdown(t: pd.DataFrame) -> str:
    models = list(dict.fromkeys(t["model"]))
    lines = ["# Table 3 — nearest neighbours (cosine) of query words",
             "", f"Subset {t['subset'].iloc[0]}; WIELD at the γ with the best ρ (learned) on the first benchmark.", "",
             "| word | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for q, g in t.groupby("query", sort=False):
        cells = [g[g["model"] == m]["neighbours"].iloc[0] for m in models]
        lines.append(f"| {q} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# IESG (paper 001) Tables 1-3


# ---------------------------------------------------------------------------------------------
# CLI


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m groundwords.studies.wield.tables", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("summary", help="ρ table over grid points from eval.tsv files")
    s.add_argument("evals", nargs="+", help=".../<subset>/<variant>/<param>-<value>/seed-<s>/eval.tsv files")
    s.add_argument("--baseline", help="grid point the Δ columns compare with, e.g. wield/gamma-0")
    s.add_argument("--title", default="Summary")
    s.add_argument("--note", default="")
    s.add_argument("--n-boot", type=int, default=2000)
    s.add_argument("--out-csv", required=True)
    s.add_argument("--out-md", required=True)
    n = sub.add_parser("neighbours", help="Table 3: nearest neighbours at the best γ and at γ=0")
    n.add_argument("--table2", required=True)
    n.add_argument("--root", default="results")
    n.add_argument("--queries", nargs="+", required=True)
    n.add_argument("--k", type=int, default=5)
    n.add_argument("--seed", type=int, default=0)
    n.add_argument("--out-csv", required=True)
    n.add_argument("--out-md", required=True)
    a = p.parse_args(argv)
    setup_logging()
    if a.cmd == "summary":
        t = summary(collect(a.evals), baseline=a.baseline, n_boot=a.n_boot)
        write_csv(t, a.out_csv)
        write_markdown(summary_markdown(t, a.title, a.note, baseline=a.baseline), a.out_md)
        log.info("%s: %d rows -> %s, %s", a.title, len(t), a.out_csv, a.out_md)
    else:
        t, best = neighbours_table(a.table2, a.root, a.queries, a.k, seed=a.seed)
        write_csv(t, a.out_csv)
        write_markdown(neighbours_markdown(t), a.out_md)
        log.info("table 3: best γ = %g; %d rows -> %s", best, len(t), a.out_csv)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
