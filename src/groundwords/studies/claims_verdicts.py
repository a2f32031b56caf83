"""The verdict of one claim from our effect's CI and MDE, and the claims table's row that carries it."""

from __future__ import annotations

import math

import numpy as np

from groundwords.evaluation import stats
from groundwords.studies.claims_registry import CLAIMS

Z = 1.959963984540054


def verdict(kind: str, lo: float, hi: float, mde: float, paper_delta: float = math.nan,
            margin: float = 0.05) -> str:
    """The verdict of one claim from our effect's 95% CI ``[lo, hi]`` (see :mod:`groundwords.studies.claims`)."""
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


def to_float(x) -> float:
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
    delta, lo, hi, se, n = map(to_float, (delta, lo, hi, se, n))
    mde = stats.mde(se)
    if se == 0:  # every resample gave the same Δ (e.g. both models hit the same few queries): no power estimate
        mde = math.nan
        note = "; ".join(x for x in (note, "degenerate bootstrap (SE 0): MDE undefined") if x)
    v = status or verdict(kind, lo, hi, mde, paper_delta, margin)
    return dict(claim_id=cid, study=study, claim=text, benchmark=benchmark, metric=metric, paper=paper,
                paper_delta=paper_delta, delta=delta, ci95_lo=lo, ci95_hi=hi,
                n=int(n) if np.isfinite(n) else None, n_unit=n_unit if np.isfinite(n) else "", mde=mde,
                verdict=v, kind=kind, note=note)


def absent(cid: str, status: str, why: str) -> dict:
    return row(cid, "", "", status=status, note=why)

