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
from pathlib import Path

import pandas as pd

from groundwords.cli import UserError, log, run_cli, setup_logging
from groundwords.evaluation import sets as bm
from groundwords.evaluation.similarity import load_vectors
from groundwords.files import read_tsv, write_csv, write_markdown, write_tsv
from groundwords.studies.pixie.retrieval_table import table6, table6_markdown
from groundwords.studies.pixie.similarity_tables import (
    read_concreteness,
    table2,
    table2_markdown,
    table3,
    table3_markdown,
    table4,
    table4_markdown,
    table5,
    table5_markdown,
)
from groundwords.studies.pixie.wordsim import (
    LONG_COLUMNS,
    read_word_list,
    visual_words,
    wordsim,
)


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
