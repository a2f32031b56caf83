"""PIXIE's result tables (Ailem et al., EMNLP 2018, Tables 2-6) from trained word vectors.

Three sub-commands::

    python -m groundwords.studies.pixie.tables wordsim --rep NAME=VECTORS [--visual-only NAME ...]
        --benchmark NAME=PAIRS ... --visual-words H5 [--hidden-words TXT] --out LONG.tsv
    python -m groundwords.studies.pixie.tables tables --wordsim LONG.tsv --vectors NAME=VECTORS ...
        --visual-words H5 [--hidden-words TXT] [--pair A,B ...] [--query W ...] [--k 10]
        [--concreteness FILE] --out-dir results
    python -m groundwords.studies.pixie.tables retrieval --run NAME=retrieval.tsv ... --out-dir results

``wordsim``: Spearman ρ of cosine similarities (:func:`groundwords.evaluation.similarity.similarity_spearman`,
the project's one implementation) of every representation on every benchmark, in up to three
**settings** — the pair sets of the paper:

* ``all``: every pair of the benchmark (the paper's "100%" columns); a pair with a word the
  representation has no vector for is skipped and counted (``pairs_used``). Representations
  named with ``--visual-only`` (CNN, VAE and their concatenations, which exist for visual words
  only) get no ``all`` row: the paper prints "–" there;
* ``visual``: the pairs whose two words are both *visual words* (the ids of ``--visual-words``,
  the per-word features of every vocabulary word with images); ``pairs_in_setting /
  pairs_total`` is the percentage row of the paper's Table 2;
* ``hidden``: the pairs whose two words are both in ``--hidden-words`` (the words whose
  features the (∗) runs never saw, Table 3).

Words are matched case-insensitively, as in :mod:`groundwords.evaluation.similarity`. Long TSV columns:
``representation, benchmark, setting, rho, pvalue, pairs_used, pairs_in_setting, pairs_total,
share`` (``share = pairs_in_setting / pairs_total``).

``tables`` writes ``pixie_table2..5.{csv,md}``:

* Table 2: every representation of the ``all`` and ``visual`` settings (CSV long, Markdown wide
  with a share row, as the paper prints it);
* Table 3: the ``hidden`` setting for the representations that can propagate visual
  information (SGNS, V-SGNS, IV-SGNS, PIXIE⊕ and their (∗) runs);
* Table 4: the cosine of each configured word pair in each ``--vectors`` representation, with
  whether each word is visual and whether it was hidden;
* Table 5: the ``--k`` nearest neighbours of each query word in each ``--vectors``
  representation, with the query's concreteness from ``--concreteness`` (Brysbaert et al.
  2014's norms: a table with a word column — ``Word`` — and a rating column — ``Conc.M``;
  tab- or comma-separated) and whether the query is a visual word.

``retrieval`` writes ``pixie_table6.{csv,md}``: R@1/5/10 in % for image→sentence and
sentence→image retrieval (:mod:`groundwords.studies.pixie.retrieval`'s ``retrieval.tsv`` of each model).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

from groundwords.cli import UserError, log, run_cli, setup_logging
from groundwords.evaluation import sets as bm
from groundwords.evaluation import query_stats, stats
from groundwords.evaluation.neighbours import nearest_neighbours
from groundwords.evaluation.similarity import load_vectors, pair_similarities, similarity_spearman
from groundwords.files import read_feature_matrix, read_tsv, write_csv, write_markdown, write_tsv
from groundwords.studies.pixie.names import BASELINE, TABLE3_ORDER

SETTINGS = ("all", "visual", "hidden")
LONG_COLUMNS = ["representation", "benchmark", "setting", "rho", "pvalue", "pairs_used", "pairs_in_setting",
                "pairs_total", "share", "rho_ci95_lo", "rho_ci95_hi", "delta_rho_vs_baseline", "delta_rho_ci95_lo",
                "delta_rho_ci95_hi", "delta_rho_se", "p_rho_vs_baseline", "pairs_common", "baseline"]
# the display names, shared with the rules: groundwords.studies.pixie.names


# ---------------------------------------------------------------------------------------------
# word similarity in the three settings


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


# ---------------------------------------------------------------------------------------------
# Tables 2-5


def _cell(x, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def table2(long: pd.DataFrame) -> pd.DataFrame:
    return long[long["setting"].isin(["all", "visual"])].reset_index(drop=True)


def _rho_ci(r) -> str:
    """'ρ [lo, hi]' of one long-table row ('–' when undefined)."""
    cell = _cell(float(r["rho"]))
    lo, hi = r.get("rho_ci95_lo", math.nan), r.get("rho_ci95_hi", math.nan)
    if cell != "–" and pd.notna(lo):
        cell += f" [{lo:.2f}, {hi:.2f}]"
    return cell


def _delta(r) -> str:
    """'Δ [lo, hi]' vs the baseline, with a '*' when the CI excludes 0 ('' when not compared)."""
    d = r.get("delta_rho_vs_baseline", math.nan)
    if pd.isna(d):
        return ""
    lo, hi = r.get("delta_rho_ci95_lo", math.nan), r.get("delta_rho_ci95_hi", math.nan)
    star = "*" if pd.notna(lo) and (lo > 0 or hi < 0) else ""
    return f"{d:+.2f}{star}" + (f" [{lo:+.2f}, {hi:+.2f}]" if pd.notna(lo) else "")


def _coverage(t: pd.DataFrame, bench: str, setting: str) -> str:
    """'used/total' pairs of a column (a range when the representations cover different pairs)."""
    r = t[(t["benchmark"] == bench) & (t["setting"] == setting)]
    if r.empty:
        return "–"
    used = r["pairs_used"].astype(int)
    total = int(r["pairs_total"].iloc[0])
    share = f" ({100 * used.max() / total:.0f}%)" if total else ""
    span = f"{used.min()}" if used.min() == used.max() else f"{used.min()}–{used.max()}"
    return f"{span}/{total}{share}"


def table2_markdown(t: pd.DataFrame) -> str:
    reps = list(dict.fromkeys(t["representation"]))
    benches = list(dict.fromkeys(t["benchmark"]))
    head = ["model"] + [f"{b} {s}" for b in benches for s in ("all pairs", "visual")]
    lines = ["# PIXIE Table 2 — word similarity (Spearman ρ)", "",
             "Two settings per benchmark: all pairs (the paper's '100%'; pairs with a word without a vector "
             "are skipped) and the pairs whose two words both have visual features. Each cell: ρ [95% "
             "bootstrap CI over pairs]; second line Δ = ρ − ρ(SGNS) on the pairs both cover [95% CI], "
             "'*' where the CI excludes 0. The 'pairs used' row gives the pairs actually evaluated / the "
             "benchmark's pairs (the real coverage; a range when the models cover different pairs). "
             "'–': not applicable (the representation exists for visual words only) or fewer than 3 "
             "usable pairs.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head),
             "| pairs used | " + " | ".join(_coverage(t, b, s) for b in benches for s in ("all", "visual")) + " |"]
    for rep in reps:
        cells = [_rho_delta_cell(t[(t["representation"] == rep) & (t["benchmark"] == b) & (t["setting"] == s)])
                 for b in benches for s in ("all", "visual")]
        lines.append(f"| {rep} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _rho_delta_cell(rows: pd.DataFrame) -> str:
    """ρ [CI] of the first row and, on a second line, its Δ vs SGNS; '–' without a row."""
    if not len(rows):
        return "–"
    d = _delta(rows.iloc[0])
    return _rho_ci(rows.iloc[0]) + (f"<br>Δ {d}" if d else "")


def table3(long: pd.DataFrame) -> pd.DataFrame:
    t = long[(long["setting"] == "hidden") & long["representation"].isin(TABLE3_ORDER)]
    order = {r: i for i, r in enumerate(TABLE3_ORDER)}
    return t.sort_values("representation", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def table3_markdown(t: pd.DataFrame, n_hidden: int) -> str:
    benches = list(dict.fromkeys(t["benchmark"]))
    lines = ["# PIXIE Table 3 — visual propagation (Spearman ρ on pairs of hidden words)", "",
             f"Pairs whose two words are both among the {n_hidden} visual words whose features the (∗) runs "
             "never saw. ρ [95% bootstrap CI over pairs]; Δ = ρ − ρ(SGNS) on common pairs [95% CI], '*' where "
             "the CI excludes 0. '–': fewer than 3 such pairs.", "",
             "| model | " + " | ".join(benches) + " |", "|" + "---|" * (len(benches) + 1),
             "| pairs used | " + " | ".join(_coverage(t, b, "hidden") for b in benches) + " |"]
    for rep in dict.fromkeys(t["representation"]):
        cells = [_rho_delta_cell(t[(t["representation"] == rep) & (t["benchmark"] == b)]) for b in benches]
        lines.append(f"| {rep} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table4(vectors: dict[str, tuple[list[str], np.ndarray]], pairs: list[tuple[str, str]], visual: set[str],
           hidden: set[str]) -> pd.DataFrame:
    df = pd.DataFrame(pairs, columns=["word1", "word2"])
    out = df.copy()
    for w in ("word1", "word2"):
        out[f"{w}_status"] = [("hidden" if x.lower() in hidden else "visual" if x.lower() in visual else "text")
                              for x in df[w]]
    for name, (words, vecs) in vectors.items():
        out[name] = pair_similarities(words, vecs, df)
    return out


def table4_markdown(t: pd.DataFrame, names: list[str]) -> str:
    lines = ["# PIXIE Table 4 — cosine similarity of word pairs", "",
             "Status: 'hidden' = visual features withheld from the (∗) runs, 'visual' = has features, "
             "'text' = none. '–': a word has no vector.", "",
             "| word pair | status | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 2)]
    for _, r in t.iterrows():
        lines.append(f"| ({r['word1']}, {r['word2']}) | {r['word1_status']}, {r['word2_status']} | "
                     + " | ".join(_cell(float(r[n])) for n in names) + " |")
    return "\n".join(lines) + "\n"


def read_concreteness(path) -> dict[str, float]:
    """word (lower-case) -> rating from a norms table with a ``Word`` and a ``Conc.M`` column."""
    if not Path(path).is_file():
        raise UserError(f"concreteness file not found: {path}")
    df = pd.read_csv(path, sep=None, engine="python")
    cols = {c.lower(): c for c in df.columns}
    word = cols.get("word")
    rating = cols.get("conc.m") or cols.get("concreteness") or cols.get("rating")
    if word is None or rating is None:
        raise UserError(f"{path}: expected a 'Word' and a 'Conc.M' column (Brysbaert et al. 2014); "
                        f"found {', '.join(df.columns)}")
    vals = pd.to_numeric(df[rating], errors="coerce")
    return {str(w).lower(): float(v) for w, v in zip(df[word], vals) if pd.notna(v)}


def table5(vectors: dict[str, tuple[list[str], np.ndarray]], queries: list[str], k: int, visual: set[str],
           concreteness: dict[str, float] | None) -> pd.DataFrame:
    rows = []
    for q in queries:
        row = {"query": q, "visual": q.lower() in visual,
               "concreteness": (concreteness or {}).get(q.lower(), math.nan)}
        for name, (words, vecs) in vectors.items():
            nn = nearest_neighbours(words, vecs, [q], k)[q]
            row[name] = ", ".join(w for w, _ in nn) if nn else ""
        rows.append(row)
    return pd.DataFrame(rows)


def table5_markdown(t: pd.DataFrame, names: list[str], k: int) -> str:
    lines = [f"# PIXIE Table 5 — {k} nearest neighbours", "",
             "Concreteness (1-5, Brysbaert et al. 2014) when a norms file is configured. "
             "An empty cell: the query has no vector.", "",
             "| query | visual | concreteness | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 3)]
    for _, r in t.iterrows():
        lines.append(f"| {r['query']} | {'yes' if r['visual'] else 'no'} | {_cell(r['concreteness'])} | "
                     + " | ".join(r[n] for n in names) + " |")
    return "\n".join(lines) + "\n"


def write_tables(wordsim_tsv, vectors: dict[str, str], visual_h5, out_dir, *, hidden_txt=None,
                 pairs: list[tuple[str, str]] = (), queries: list[str] = (), k: int = 10,
                 concreteness=None) -> None:
    out_dir = Path(out_dir)
    long = read_tsv(wordsim_tsv, dtype={"representation": str, "benchmark": str, "setting": str})
    missing = set(LONG_COLUMNS) - set(long.columns)
    if missing:
        raise UserError(f"{wordsim_tsv}: not a 'pixie_tables wordsim' table (missing {', '.join(sorted(missing))})")
    for col in LONG_COLUMNS[3:-1]:  # an empty cell is a NaN (e.g. rho over fewer than 3 pairs)
        long[col] = pd.to_numeric(long[col], errors="coerce")
    visual = visual_words(visual_h5)
    hidden = read_word_list(hidden_txt) if hidden_txt else set()
    t2 = table2(long)
    write_csv(t2, out_dir / "pixie_table2.csv")
    write_markdown(table2_markdown(t2), out_dir / "pixie_table2.md")
    t3 = table3(long)
    write_csv(t3, out_dir / "pixie_table3.csv")
    write_markdown(table3_markdown(t3, len(hidden)), out_dir / "pixie_table3.md")
    loaded = {name: load_vectors(p) for name, p in vectors.items()}
    t4 = table4(loaded, list(pairs), visual, hidden)
    write_csv(t4, out_dir / "pixie_table4.csv")
    write_markdown(table4_markdown(t4, list(loaded)), out_dir / "pixie_table4.md")
    conc = read_concreteness(concreteness) if concreteness else None
    t5 = table5(loaded, list(queries), k, visual, conc)
    write_csv(t5, out_dir / "pixie_table5.csv")
    write_markdown(table5_markdown(t5, list(loaded), k), out_dir / "pixie_table5.md")
    log.info("wrote PIXIE Tables 2-5 to %s", out_dir)


# ---------------------------------------------------------------------------------------------
# Table 6


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
            cell = _cell(r[col], 1)
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


# ---------------------------------------------------------------------------------------------
# CLI



def _named(specs: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for spec in specs or []:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise UserError(f"{flag} {spec!r}: expected NAME=PATH")
        if name in out:
            raise UserError(f"{flag} {name} given twice")
        out[name] = path
    return out


def _pair(spec: str) -> tuple[str, str]:
    a, sep, b = spec.partition(",")
    if not sep or not a.strip() or not b.strip():
        raise UserError(f"--pair {spec!r}: expected WORD1,WORD2")
    return a.strip(), b.strip()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m groundwords.studies.pixie.tables", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wordsim", help="ρ per representation x benchmark x setting (long TSV)")
    w.add_argument("--rep", action="append", required=True, metavar="NAME=VECTORS")
    w.add_argument("--visual-only", action="append", default=[], metavar="NAME",
                   help="a representation with vectors for visual words only: no 'all' setting")
    w.add_argument("--benchmark", action="append", required=True, metavar="NAME=PAIRS")
    w.add_argument("--visual-words", required=True, help="per-word visual features HDF5 (ids = visual words)")
    w.add_argument("--hidden-words", help="words withheld from the (∗) runs, one per line")
    w.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (CIs, paired Δ vs SGNS)")
    w.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    w.add_argument("--out", required=True)
    t = sub.add_parser("tables", help="Tables 2-5")
    t.add_argument("--wordsim", required=True, help="the long TSV of 'wordsim'")
    t.add_argument("--vectors", action="append", default=[], metavar="NAME=VECTORS", help="Tables 4-5 columns")
    t.add_argument("--visual-words", required=True)
    t.add_argument("--hidden-words")
    t.add_argument("--pair", action="append", default=[], metavar="WORD1,WORD2")
    t.add_argument("--query", action="append", default=[])
    t.add_argument("--k", type=int, default=10)
    t.add_argument("--concreteness")
    t.add_argument("--out-dir", required=True)
    r = sub.add_parser("retrieval", help="Table 6")
    r.add_argument("--run", action="append", required=True, metavar="NAME=RETRIEVAL_TSV",
                   help="a model's retrieval.tsv (its ranks.tsv next to it gives the CIs and paired Δ)")
    r.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples of the test queries")
    r.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    r.add_argument("--out-dir", required=True)
    a = p.parse_args(argv)
    setup_logging()
    if a.cmd == "wordsim":
        benches = {n: bm.resolve(n, path=path) for n, path in _named(a.benchmark, "--benchmark").items()}
        long = wordsim(_named(a.rep, "--rep"), benches, a.visual_words, a.hidden_words, set(a.visual_only),
                       n_boot=a.n_boot, seed=a.seed)
        write_tsv(long, a.out)
    elif a.cmd == "tables":
        if a.k < 1:
            raise UserError("--k must be >= 1")
        write_tables(a.wordsim, _named(a.vectors, "--vectors"), a.visual_words, a.out_dir,
                     hidden_txt=a.hidden_words, pairs=[_pair(s) for s in a.pair], queries=a.query, k=a.k,
                     concreteness=a.concreteness)
    else:
        t6 = table6(_named(a.run, "--run"), n_boot=a.n_boot, seed=a.seed)
        write_csv(t6, Path(a.out_dir) / "pixie_table6.csv")
        write_markdown(table6_markdown(t6), Path(a.out_dir) / "pixie_table6.md")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
