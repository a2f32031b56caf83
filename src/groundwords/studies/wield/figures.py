"""Figures of the WIELD paper: training-loss curves (Figure 2) and a similarity scatter (Figure 3).

Both are drawn with matplotlib's object-oriented API on an Agg canvas (no pyplot, no global
state, no display needed) and written as PNG atomically: rendered into a temporary file next
to the target, then renamed onto it (:func:`groundwords.files.atomic_path`).

:func:`loss_curves` (Figure 2)
    One line per run (a label such as ``γ=10``) in three panels side by side: the word
    cross-entropy ``ce``, the image MSE ``mse`` and the weighted ``total`` loss per epoch, read
    from the ``loss.csv`` files written by :mod:`groundwords.studies.wield.stage` (columns ``epoch, ce, mse,
    total, seconds, words_per_s``). Non-finite values and, on a log axis, non-positive values
    are not drawn; a run without any image loss (γ = 0: ``mse`` all 0 or NaN) is left out of the
    MSE panel and named there instead. With ``log_y="auto"`` a panel gets a log y-axis when all
    its values are positive and span at least a factor of ``LOG_SPAN`` (losses of runs with
    very different γ differ by orders of magnitude); otherwise it is linear.

:func:`similarity_scatter` (Figure 3)
    Model cosine similarity (y) against human score (x) for the pairs the model covers, with
    Spearman's rho and the number of covered pairs in the title, and ``n_labels`` pairs
    (``word1–word2``) annotated, evenly spread over the human-score order.

CLI::

    python -m groundwords.studies.wield.figures loss --out P [--title T] LABEL=CSV [LABEL=CSV ...]
    python -m groundwords.studies.wield.figures scatter --pairs PAIRS_TSV --column C --out P \\
        [--title T] [--n-labels K]

``LABEL=CSV``: the label may itself contain ``=`` (``γ=10=runs/g10/loss.csv``): the spec is split
at the first ``=`` whose right-hand side is an existing file (at the first ``=`` if none is).
``PAIRS_TSV`` is a tab-separated file with a header and at least the columns ``word1, word2,
human`` and ``C`` (the model's similarities; an empty cell or ``nan`` marks an uncovered pair).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from groundwords.cli import UserError, run_cli, setup_logging
from groundwords.evaluation.stats import spearman
from groundwords.files import atomic_path

log = logging.getLogger(__name__)

LOSS_COLUMNS = ["epoch", "ce", "mse", "total"]
PANELS = [("ce", "cross-entropy (word)"), ("mse", "MSE (image encoding)"), ("total", "total (weighted)")]
#: "auto" log scale: all values positive and max / min at least this.
LOG_SPAN = 10.0
DPI = 150
#: Cells of a pairs TSV read as "not covered".
_MISSING = {"", "nan", "na", "n/a", "none", "null"}


def _save(fig: Figure, out_png: str | os.PathLike) -> Path:
    """Render ``fig`` with Agg into a temporary PNG beside ``out_png`` and rename it into place."""
    out_png = Path(out_png)
    FigureCanvasAgg(fig)
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    log.info("wrote %s", out_png)
    return out_png


# ---------------------------------------------------------------------------------------------
# Figure 2: loss curves


def read_loss_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``loss.csv`` (``epoch, ce, mse, total, ...``) with numeric columns (NaN allowed)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: loss file not found")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a readable CSV ({e})") from None
    missing = [c for c in LOSS_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)} (expected {', '.join(LOSS_COLUMNS)})")
    out = df[LOSS_COLUMNS].apply(pd.to_numeric, errors="coerce")
    bad = out["epoch"].isna() & df["epoch"].notna()
    if bad.any():
        raise UserError(f"{path}: non-numeric epoch {df['epoch'][bad].iloc[0]!r}")
    return out


def _use_log(values: list[np.ndarray], log_y) -> bool:
    if log_y != "auto":
        return bool(log_y)
    v = np.concatenate(values) if values else np.empty(0)
    v = v[np.isfinite(v)]
    return bool(v.size) and bool((v > 0).all()) and v.max() / v.min() >= LOG_SPAN


def loss_curves(loss_csvs: Mapping[str, str | os.PathLike], out_png: str | os.PathLike,
                title: str = "WIELD training loss", log_y: bool | str = "auto") -> Path:
    """Plot per-epoch CE, MSE and total loss of several runs (WIELD Figure 2) to ``out_png``.

    ``loss_csvs`` maps a legend label (e.g. ``"γ=10"``) to a ``loss.csv``; runs keep their
    colour across the three panels. ``log_y`` is ``"auto"`` (see the module doc), True or False.
    Returns the written path.
    """
    if not loss_csvs:
        raise UserError("loss_curves: no loss files given")
    runs = {label: read_loss_csv(path) for label, path in loss_csvs.items()}

    fig = Figure(figsize=(4.6 * len(PANELS), 4.4), layout="constrained")
    axes = fig.subplots(1, len(PANELS))
    colors = [f"C{i % 10}" for i in range(len(runs))]
    handles: dict[str, object] = {}
    for ax, (col, name) in zip(axes, PANELS):
        series, skipped = [], []
        for (label, df), color in zip(runs.items(), colors):
            y = df[col].to_numpy(dtype=float)
            if not (np.isfinite(y) & (y != 0)).any():   # e.g. mse of a γ=0 run
                skipped.append(label)
                continue
            series.append((label, df["epoch"].to_numpy(dtype=float), y, color))
        use_log = _use_log([s[2] for s in series], log_y)
        for label, x, y, color in series:
            keep = np.isfinite(x) & np.isfinite(y) & ((y > 0) if use_log else True)
            (line,) = ax.plot(x[keep], y[keep], marker="o", markersize=3, linewidth=1.5,
                              color=color, label=label)
            handles.setdefault(label, line)
        if use_log:
            ax.set_yscale("log")
        if skipped:
            ax.text(0.98, 0.98, "not plotted (no values): " + ", ".join(skipped), transform=ax.transAxes,
                    ha="right", va="top", fontsize=8, color="0.35", wrap=True)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{col} loss" + (" (log scale)" if use_log else ""))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, which="major", alpha=0.3)
    ordered = [handles[label] for label in runs if label in handles]
    if ordered:
        fig.legend(ordered, [h.get_label() for h in ordered], loc="outside right center",
                   title="run", fontsize=9)
    fig.suptitle(title)
    return _save(fig, out_png)


# ---------------------------------------------------------------------------------------------
# Figure 3: similarity scatter


def _label_positions(order_len: int, k: int) -> np.ndarray:
    """``k`` positions spread evenly over ``range(order_len)`` (all of them if fewer)."""
    if k <= 0 or order_len == 0:
        return np.empty(0, dtype=int)
    return np.unique(np.linspace(0, order_len - 1, min(k, order_len)).round().astype(int))


def similarity_scatter(human, pred, out_png: str | os.PathLike,
                       title: str = "Cosine similarity vs human score",
                       labels: Sequence[str] | None = None, n_labels: int = 15) -> Path:
    """Scatter model cosine similarity against human score (WIELD Figure 3) to ``out_png``.

    ``human`` and ``pred`` are per-pair arrays; pairs where either is non-finite (uncovered)
    are not drawn. The title adds Spearman's rho (:func:`groundwords.evaluation.stats.spearman`) and the
    number of covered pairs. ``labels`` (one string per pair, e.g. ``"beach–sand"``) are
    shown for ``n_labels`` covered pairs spread evenly over the human-score order.
    Returns the written path.
    """
    h = np.asarray(human, dtype=float).ravel()
    p = np.asarray(pred, dtype=float).ravel()
    if h.shape != p.shape:
        raise ValueError(f"human has {h.size} pairs but pred has {p.size}")
    if labels is not None and len(labels) != h.size:
        raise ValueError(f"{len(labels)} labels for {h.size} pairs")
    covered = np.flatnonzero(np.isfinite(h) & np.isfinite(p))
    n = covered.size
    rho = spearman(h[covered], p[covered]) if n else float("nan")

    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.subplots()
    alpha = 0.8 if n <= 200 else 0.45
    ax.scatter(h[covered], p[covered], s=14 if n <= 500 else 8, alpha=alpha,
               color="C0", edgecolors="none")
    if labels is not None and n:
        order = covered[np.argsort(h[covered], kind="stable")]
        for j, pos in enumerate(_label_positions(n, n_labels)):
            i = order[pos]
            ax.annotate(str(labels[i]), (h[i], p[i]), xytext=(4, 6 if j % 2 == 0 else -10),
                        textcoords="offset points", fontsize=7, color="0.15",
                        arrowprops=dict(arrowstyle="-", color="0.6", linewidth=0.5))
            ax.plot(h[i], p[i], "o", markersize=4, color="C3")
    if n == 0:
        ax.text(0.5, 0.5, "no covered pairs", transform=ax.transAxes, ha="center", va="center")
    rho_txt = "n/a" if not math.isfinite(rho) else f"{rho:.3f}"
    ax.set_title(f"{title}\nSpearman ρ = {rho_txt}   (n = {n} of {h.size} pairs covered)")
    ax.set_xlabel("human similarity score")
    ax.set_ylabel("cosine similarity")
    ax.grid(True, alpha=0.3)
    return _save(fig, out_png)


def read_pairs_tsv(path: str | os.PathLike, column: str, benchmark: str | None = None) -> pd.DataFrame:
    """Read a pairs TSV (``word1, word2, human, <column>``); numbers parsed, missing -> NaN.

    ``benchmark`` keeps only the rows of that benchmark (files written by
    ``groundwords.evaluation.similarity --pairs-out`` hold several).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: pairs file not found")
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=[])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a readable TSV ({e})") from None
    if benchmark is not None:
        if "benchmark" not in df.columns:
            raise UserError(f"{path}: no 'benchmark' column to select {benchmark!r} from")
        df = df[df["benchmark"] == benchmark].reset_index(drop=True)
    need = ["word1", "word2", "human", column]
    missing = [c for c in dict.fromkeys(need) if c not in df.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}; has {', '.join(map(str, df.columns))}")
    out = df[["word1", "word2"]].copy()
    for col in dict.fromkeys(["human", column]):
        vals = []
        for lineno, cell in enumerate(df[col], start=2):
            s = cell.strip()
            if s.lower() in _MISSING:
                vals.append(float("nan"))
                continue
            try:
                vals.append(float(s))
            except ValueError:
                raise UserError(f"{path}:{lineno}: column {col!r}: not a number: {cell!r}") from None
        out[col] = np.array(vals, dtype=float)
    return out


# ---------------------------------------------------------------------------------------------
# CLI


def _split_spec(spec: str) -> tuple[str, str]:
    """Split ``LABEL=CSV`` at the first ``=`` whose right side exists (else the first ``=``)."""
    cuts = [i for i, ch in enumerate(spec) if ch == "="]
    if not cuts:
        raise UserError(f"{spec!r}: expected LABEL=CSV")
    for i in cuts:
        if Path(spec[i + 1:]).is_file():
            return spec[:i], spec[i + 1:]
    label, path = spec[:cuts[0]], spec[cuts[0] + 1:]
    if not label or not path:
        raise UserError(f"{spec!r}: expected LABEL=CSV")
    return label, path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m groundwords.studies.wield.figures",
                                description="WIELD figures: loss curves (Fig. 2) and similarity scatter (Fig. 3).")
    sub = p.add_subparsers(dest="cmd", required=True)
    pl = sub.add_parser("loss", help="per-epoch CE / MSE / total loss of several runs")
    pl.add_argument("--out", required=True, help="PNG to write")
    pl.add_argument("--title", default="WIELD training loss")
    pl.add_argument("--log-y", choices=["auto", "yes", "no"], default="auto", help="log y-axes (default auto)")
    pl.add_argument("runs", nargs="+", metavar="LABEL=CSV", help="a run's legend label and its loss.csv")
    ps = sub.add_parser("scatter", help="cosine similarity vs human score for one model")
    ps.add_argument("--pairs", required=True, help="TSV with columns word1, word2, human, <column>")
    ps.add_argument("--column", required=True, help="the column with the model's similarities")
    ps.add_argument("--out", required=True, help="PNG to write")
    ps.add_argument("--title", help="plot title (default: derived from --column)")
    ps.add_argument("--n-labels", type=int, default=15, help="pairs to annotate (default 15)")
    ps.add_argument("--benchmark", help="only this benchmark's pairs")
    pb = sub.add_parser("best-scatter", help="Figure 3 for the best WIELD model of Table 2")
    pb.add_argument("--table2", required=True, help="results/table2.csv")
    pb.add_argument("--root", default="results")
    pb.add_argument("--seed", type=int, default=0)
    pb.add_argument("--out", required=True)
    a = p.parse_args(argv)
    setup_logging()
    if a.cmd == "loss":
        runs: dict[str, str] = {}
        for spec in a.runs:
            label, path = _split_spec(spec)
            if label in runs:
                raise UserError(f"label {label!r} given twice")
            runs[label] = path
        log_y = {"auto": "auto", "yes": True, "no": False}[a.log_y]
        loss_curves(runs, a.out, title=a.title, log_y=log_y)
    elif a.cmd == "scatter":
        df = read_pairs_tsv(a.pairs, a.column, a.benchmark)
        title = a.title or f"Cosine similarity vs human score: {a.column}"
        _scatter(df, a.column, a.out, title, a.n_labels)
    else:
        best_scatter(a.table2, a.root, a.out, seed=a.seed)


def _scatter(df: pd.DataFrame, column: str, out, title: str, n_labels: int = 15):
    labels = [f"{w1}–{w2}" for w1, w2 in zip(df["word1"], df["word2"])]
    return similarity_scatter(df["human"].to_numpy(), df[column].to_numpy(), out,
                              title=title, labels=labels, n_labels=n_labels)


def best_scatter(table2_csv, root, out, seed: int = 0, variant: str = "wield"):
    """Figure 3: the scatter for the best γ (learned ρ on the first benchmark) of the largest subset."""
    from groundwords.config import gamma_label
    from groundwords.studies.wield.tables import best_point

    t2 = pd.read_csv(table2_csv)
    subset = t2.sort_values("dataset_size", ascending=False)["subset"].iloc[0]
    g = best_point(t2, subset)
    if not np.isfinite(g):
        g = float(t2.loc[t2["subset"] == subset, "gamma"].max())
    defined = t2[(t2["subset"] == subset) & (t2["gamma"] == g)].dropna(subset=["rho_learned"])
    bench = defined["benchmark"].iloc[0] if len(defined) else t2["benchmark"].iloc[0]
    pairs = Path(root) / subset / variant / f"gamma-{gamma_label(g)}" / f"seed-{seed}" / "pairs.tsv"
    df = read_pairs_tsv(pairs, "learned", bench)
    return _scatter(df, "learned", out, f"WIELD γ={g:g} ({subset}), {bench}: cosine vs human score")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
