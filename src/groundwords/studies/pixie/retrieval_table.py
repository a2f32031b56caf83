"""PIXIE's Table 6: image ↔ sentence retrieval R@K per model, with CIs and the paired Δ vs SGNS."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from groundwords.cli import UserError
from groundwords.evaluation import query_stats
from groundwords.files import read_tsv
from groundwords.studies.pixie.names import BASELINE
from groundwords.studies.pixie.table_format import num_cell

TABLE6_DIRECTIONS = (("i2s", "I→S"), ("s2i", "S→I"))


def _read_ranks(path) -> pd.DataFrame | None:
    """``ranks.tsv`` next to a run's ``retrieval.tsv`` (sentret's per-query ranks), or None."""
    f = Path(path).with_name("ranks.tsv")
    if not f.is_file():
        return None
    r = read_tsv(f, dtype={"direction": str, "query": str})
    if not {"direction", "query", "rank"} <= set(r.columns):
        raise UserError(f"{f}: expected columns direction, query, rank (from groundwords.studies.pixie.retrieval)")
    r["rank"] = pd.to_numeric(r["rank"], errors="coerce")
    return r


def _hits(ranks: pd.DataFrame, direction: str, k: int) -> pd.Series:
    r = ranks[ranks["direction"] == direction]
    return pd.Series((r["rank"] <= k).astype(float).to_numpy(), index=r["query"].to_numpy())


def table6(runs: dict[str, str], n_boot: int = 2000, seed: int = 0, baseline: str = BASELINE) -> pd.DataFrame:
    """R@1/5/10 (%) per model and direction; with each run's ``ranks.tsv`` also the 95%
    bootstrap CI over the test queries (``<d>_r<k>_ci95_lo/hi``) and the paired difference from
    ``baseline`` on the queries both answer (``delta_<d>_r<k>_vs_baseline``, ``..._ci95_lo/hi``,
    ``..._se``, ``p_<d>_r<k>_vs_baseline``; percentage points)."""
    ranks = {}
    rows = []
    for name, path in runs.items():
        if not Path(path).is_file():
            raise UserError(f"retrieval results not found: {path}")
        r = read_tsv(path, dtype={"direction": str})
        if not {"direction", "k", "recall"} <= set(r.columns):
            raise UserError(f"{path}: expected columns direction, k, recall (from groundwords.studies.pixie.retrieval)")
        ranks[name] = _read_ranks(path)
        row = {"model": name}
        for direction, label in TABLE6_DIRECTIONS:
            for k in (1, 5, 10):
                v = r[(r["direction"] == direction) & (r["k"] == k)]["recall"]
                row[f"{label} R@{k}"] = 100 * float(v.iloc[0]) if len(v) else math.nan
        n = r.groupby("direction")["n_queries"].max() if "n_queries" in r else {}
        row["queries I→S / S→I"] = f"{int(n.get('i2s', 0))} / {int(n.get('s2i', 0))}" if len(n) else ""
        rows.append(row)
    base = ranks.get(baseline)
    for row in rows:
        rk = ranks[row["model"]]
        for direction, _ in TABLE6_DIRECTIONS:
            for k in (1, 5, 10):
                m = f"{direction}_r{k}"
                ci = cmp = None
                if rk is not None:
                    hits = _hits(rk, direction, k)
                    ci = query_stats.bootstrap_mean(hits.to_numpy(), n_boot=n_boot, seed=seed)
                    if base is not None and row["model"] != baseline:
                        b = _hits(base, direction, k)
                        common = b.index.intersection(hits.index)
                        cmp = query_stats.paired_bootstrap_mean(b.loc[common].to_numpy(), hits.loc[common].to_numpy(),
                                                          n_boot=n_boot, seed=seed)
                row[f"{m}_ci95_lo"] = 100 * ci["lo"] if ci else math.nan
                row[f"{m}_ci95_hi"] = 100 * ci["hi"] if ci else math.nan
                for key, col in (("delta", f"delta_{m}_vs_baseline"), ("lo", f"delta_{m}_ci95_lo"),
                                 ("hi", f"delta_{m}_ci95_hi"), ("se", f"delta_{m}_se")):
                    row[col] = 100 * cmp[key] if cmp else math.nan
                row[f"p_{m}_vs_baseline"] = cmp["p_value"] if cmp else math.nan
                row[f"queries_common_{direction}"] = cmp["n"] if cmp else math.nan
        row["baseline"] = baseline if base is not None else ""
    return pd.DataFrame(rows)


def table6_markdown(t: pd.DataFrame) -> str:
    recall_cols = [f"{label} R@{k}" for _, label in TABLE6_DIRECTIONS for k in (1, 5, 10)]
    slugs = [f"{d}_r{k}" for d, _ in TABLE6_DIRECTIONS for k in (1, 5, 10)]
    lines = ["# PIXIE Table 6 — image (I) ↔ sentence (S) retrieval, R@K (%)", "",
             "Frozen word vectors → one-layer GRU sentence encoder; image features linearly mapped to the "
             "same space; triplet loss. Test split, each model on the same data. Each cell: R@K [95% bootstrap "
             "CI over the test queries]; second line Δ = R@K − R@K(SGNS) on the queries both answer [95% CI], "
             "'*' where the CI excludes 0.", "",
             "| model | " + " | ".join(recall_cols) + " | queries I→S / S→I |", "|" + "---|" * (len(recall_cols) + 2)]
    for _, r in t.iterrows():
        cells = []
        for col, m in zip(recall_cols, slugs):
            cell = num_cell(r[col], 1)
            lo, hi = r.get(f"{m}_ci95_lo", math.nan), r.get(f"{m}_ci95_hi", math.nan)
            if cell != "–" and pd.notna(lo):
                cell += f" [{lo:.1f}, {hi:.1f}]"
            d = r.get(f"delta_{m}_vs_baseline", math.nan)
            if pd.notna(d):
                dlo, dhi = r[f"delta_{m}_ci95_lo"], r[f"delta_{m}_ci95_hi"]
                star = "*" if pd.notna(dlo) and (dlo > 0 or dhi < 0) else ""
                cell += f"<br>Δ {d:+.1f}{star} [{dlo:+.1f}, {dhi:+.1f}]"
            cells.append(cell)
        lines.append(f"| {r['model']} | " + " | ".join(cells) + f" | {r['queries I→S / S→I']} |")
    return "\n".join(lines) + "\n"

