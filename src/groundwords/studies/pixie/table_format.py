"""The cells of PIXIE's Markdown tables: a number or '–', ρ [CI], Δ vs SGNS [CI], the pairs a column used."""

from __future__ import annotations

import math

import pandas as pd


def num_cell(x, digits: int = 2) -> str:
    """A number with ``digits`` decimals, '–' when undefined."""
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def rho_ci(r) -> str:
    """'ρ [lo, hi]' of one long-table row ('–' when undefined)."""
    cell = num_cell(float(r["rho"]))
    lo, hi = r.get("rho_ci95_lo", math.nan), r.get("rho_ci95_hi", math.nan)
    if cell != "–" and pd.notna(lo):
        cell += f" [{lo:.2f}, {hi:.2f}]"
    return cell


def delta_cell(r) -> str:
    """'Δ [lo, hi]' vs the baseline, with a '*' when the CI excludes 0 ('' when not compared)."""
    d = r.get("delta_rho_vs_baseline", math.nan)
    if pd.isna(d):
        return ""
    lo, hi = r.get("delta_rho_ci95_lo", math.nan), r.get("delta_rho_ci95_hi", math.nan)
    star = "*" if pd.notna(lo) and (lo > 0 or hi < 0) else ""
    return f"{d:+.2f}{star}" + (f" [{lo:+.2f}, {hi:+.2f}]" if pd.notna(lo) else "")


def coverage(t: pd.DataFrame, bench: str, setting: str) -> str:
    """'used/total' pairs of a column (a range when the representations cover different pairs)."""
    r = t[(t["benchmark"] == bench) & (t["setting"] == setting)]
    if r.empty:
        return "–"
    used = r["pairs_used"].astype(int)
    total = int(r["pairs_total"].iloc[0])
    share = f" ({100 * used.max() / total:.0f}%)" if total else ""
    span = f"{used.min()}" if used.min() == used.max() else f"{used.min()}–{used.max()}"
    return f"{span}/{total}{share}"


def rho_delta_cell(rows: pd.DataFrame) -> str:
    """ρ [CI] of the first row and, on a second line, its Δ vs SGNS; '–' without a row."""
    if not len(rows):
        return "–"
    d = delta_cell(rows.iloc[0])
    return rho_ci(rows.iloc[0]) + (f"<br>Δ {d}" if d else "")

