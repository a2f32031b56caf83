"""PIXIE's Tables 2-5 from the long ρ table and the word vectors: each table and its Markdown."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from groundwords.cli import UserError
from groundwords.evaluation.neighbours import nearest_neighbours
from groundwords.evaluation.similarity import pair_similarities
from groundwords.studies.pixie.names import TABLE3_ORDER
from groundwords.studies.pixie.table_format import coverage, num_cell, rho_delta_cell


def table2(long: pd.DataFrame) -> pd.DataFrame:
    return long[long["setting"].isin(["all", "visual"])].reset_index(drop=True)


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
             "| pairs used | " + " | ".join(coverage(t, b, s) for b in benches for s in ("all", "visual")) + " |"]
    for rep in reps:
        cells = [rho_delta_cell(t[(t["representation"] == rep) & (t["benchmark"] == b) & (t["setting"] == s)])
                 for b in benches for s in ("all", "visual")]
        lines.append(f"| {rep} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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
             "| pairs used | " + " | ".join(coverage(t, b, "hidden") for b in benches) + " |"]
    for rep in dict.fromkeys(t["representation"]):
        cells = [rho_delta_cell(t[(t["representation"] == rep) & (t["benchmark"] == b)]) for b in benches]
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
                     + " | ".join(num_cell(float(r[n])) for n in names) + " |")
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
        lines.append(f"| {r['query']} | {'yes' if r['visual'] else 'no'} | {num_cell(r['concreteness'])} | "
                     + " | ".join(r[n] for n in names) + " |")
    return "\n".join(lines) + "\n"

