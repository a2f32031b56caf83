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
from pathlib import Path

import numpy as np
import pandas as pd

from groundwords.cli import UserError, log, run_cli, setup_logging
from groundwords.files import atomic_path, write_csv
from groundwords.studies.claims_effects import iesg_claims, pixie_claims, wield_claims
from groundwords.studies.claims_registry import CLAIMS, COLUMNS, VERDICTS
from groundwords.studies.claims_verdicts import absent


def _read(path) -> pd.DataFrame | None:
    if path is None:
        return None
    if not Path(path).is_file():
        raise UserError(f"table not found: {path}")
    return pd.read_csv(path)


def claims(wield_table2=None, wield_table1=None, iesg_tables=(None, None, None), pixie_tables=(None, None, None),
           margin: float = 0.05, why: dict | None = None) -> pd.DataFrame:
    """The claims table from the tables' CSV paths (None: the table is not part of this run)."""
    why = why or {}
    rows: list[dict] = []
    t2 = _read(wield_table2)
    if t2 is None:
        rows += [absent(c, "not run", why.get("wield", "no WIELD Table 2")) for c in ("W1", "W2", "W3", "W4")]
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
