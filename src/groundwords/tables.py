"""Result tables in the papers' shapes, as CSV (for machines) and Markdown (for people).

``table2``: WIELD's Table 2 — for each dataset size and γ, the Spearman ρ of the learned
embeddings and of the embeddings concatenated with the words' averaged image encodings, on each
benchmark, with coverage (pairs used / pairs in the benchmark). With several seeds per grid point
the table gives the mean and the standard deviation (ddof=1; empty for one seed).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .io import UserError, atomic_path, write_csv, log, read_tsv, run_cli, setup_logging

EVAL_RE = re.compile(r"(?P<subset>[^/]+)/(?P<model>[^/]+)/gamma-(?P<gamma>[^/]+)/seed-(?P<seed>\d+)/eval\.tsv$")
REPRS = {"learned": "learned", "learned+image": "with_image"}


def collect(eval_paths: list[str]) -> pd.DataFrame:
    """Long table of every eval.tsv, tagged with subset / γ / seed (from its path) and dataset size."""
    frames = []
    for p in eval_paths:
        m = EVAL_RE.search(Path(p).as_posix())
        if not m:
            raise UserError(f"{p}: not an evaluation path of the form <subset>/<model>/gamma-<g>/seed-<s>/eval.tsv")
        df = read_tsv(p)
        info_path = Path(p).with_name("train.json")
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        df["subset"], df["model"] = m["subset"], m["model"]
        df["gamma"], df["seed"] = float(m["gamma"]), int(m["seed"])
        df["dataset_size"] = info.get("n_captions", np.nan)
        frames.append(df)
    if not frames:
        raise UserError("no evaluation files given")
    return pd.concat(frames, ignore_index=True)


def table2(long: pd.DataFrame) -> pd.DataFrame:
    long = long.copy()
    long["rho"] = pd.to_numeric(long["rho"], errors="coerce")
    keys = ["subset", "gamma", "benchmark"]
    bench_order = {b: i for i, b in enumerate(dict.fromkeys(long["benchmark"]))}
    rows = []
    for (subset, gamma, bench), g in long.groupby(keys, sort=False):
        row = {"subset": subset, "dataset_size": int(g["dataset_size"].max()) if g["dataset_size"].notna().any() else None,
               "gamma": gamma, "benchmark": bench, "n_seeds": int(g["seed"].nunique())}
        for rep, col in REPRS.items():
            r = g[g["representation"] == rep]
            rhos = r["rho"].to_numpy(dtype=float)
            row[f"rho_{col}"] = float(np.nanmean(rhos)) if np.isfinite(rhos).any() else np.nan
            row[f"rho_{col}_sd"] = float(np.nanstd(rhos, ddof=1)) if np.isfinite(rhos).sum() > 1 else np.nan
            row[f"coverage_{col}"] = float(r["coverage"].mean()) if len(r) else np.nan
            row[f"pairs_used_{col}"] = int(r["pairs_used"].max()) if len(r) else 0
        row["pairs_total"] = int(g["pairs_total"].max())
        rows.append(row)
    out = pd.DataFrame(rows)
    out["_b"] = out["benchmark"].map(bench_order)
    out["_size"] = out["dataset_size"].fillna(0)
    out = out.sort_values(["_size", "subset", "_b", "gamma"], ascending=[False, True, True, True])
    return out.drop(columns=["_b", "_size"]).reset_index(drop=True)


def _fmt(x, digits=4):
    return "" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}f}"


def table2_markdown(t: pd.DataFrame) -> str:
    lines = [
        "# Table 2 — Spearman ρ of WIELD embeddings (γ = 0 is vanilla CBOW)",
        "",
        "ρ between cosine similarities and human scores; *learned*: the embeddings alone; "
        "*with image*: concatenated with the word's averaged raw image encoding. Coverage: pairs "
        "with both words in the vocabulary (and, for *with image*, with images) / all pairs. "
        "± is the standard deviation over seeds.",
        "",
    ]
    for bench, tb in t.groupby("benchmark", sort=False):
        lines += [f"## {bench}", "",
                  "| dataset size | γ | ρ learned | ρ with image | coverage learned | coverage with image | seeds |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for _, r in tb.iterrows():
            cells = []
            for col in ("learned", "with_image"):
                v, sd = r[f"rho_{col}"], r[f"rho_{col}_sd"]
                cells.append(_fmt(v) + (f" ± {_fmt(sd)}" if isinstance(sd, float) and np.isfinite(sd) else ""))
            size = f"{r['subset']} ({int(r['dataset_size'])})" if pd.notna(r["dataset_size"]) else r["subset"]
            lines.append(
                f"| {size} | {r['gamma']:g} | {cells[0]} | {cells[1]} | "
                f"{r['pairs_used_learned']}/{r['pairs_total']} | {r['pairs_used_with_image']}/{r['pairs_total']} | {r['n_seeds']} |"
            )
        lines.append("")
    return "\n".join(lines)


def nearest_neighbours(words: list[str], vectors: np.ndarray, queries: list[str], k: int = 5) -> dict[str, list]:
    """Top-``k`` cosine neighbours (word, cosine) of each query word; [] for a word not in the vocabulary."""
    index = {w.lower(): i for i, w in reversed(list(enumerate(words)))}
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    out = {}
    for q in queries:
        i = index.get(q.lower())
        if i is None:
            out[q] = []
            continue
        sims = unit @ unit[i]
        sims[i] = -np.inf
        top = np.argsort(-sims, kind="stable")[:k]
        out[q] = [(words[j], float(sims[j])) for j in top if np.isfinite(sims[j])]
    return out


def best_gamma(t2: pd.DataFrame, subset: str, benchmark: str | None = None) -> float:
    """The γ > 0 with the highest mean ρ (learned) on ``benchmark`` (default: the first one)."""
    t = t2[(t2["subset"] == subset) & (t2["gamma"] > 0)]
    if benchmark is None:
        benchmark = t2["benchmark"].iloc[0]
    t = t[t["benchmark"] == benchmark].dropna(subset=["rho_learned"])
    if t.empty:
        raise UserError(f"no γ > 0 with a defined ρ on {benchmark} for subset {subset}")
    return float(t.loc[t["rho_learned"].idxmax(), "gamma"])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m groundwords.tables", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t2 = sub.add_parser("table2", help="WIELD Table 2 from eval.tsv files")
    t2.add_argument("evals", nargs="+", help=".../<subset>/wield/gamma-<g>/seed-<s>/eval.tsv files")
    t2.add_argument("--root", default="results", help="(informational) results root")
    t2.add_argument("--out-csv", required=True)
    t2.add_argument("--out-md", required=True)
    a = p.parse_args(argv)
    setup_logging()
    t = table2(collect(a.evals))
    write_csv(t, a.out_csv)
    with atomic_path(a.out_md) as tmp:
        tmp.write_text(table2_markdown(t))
    log.info("table 2: %d rows -> %s, %s", len(t), a.out_csv, a.out_md)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
