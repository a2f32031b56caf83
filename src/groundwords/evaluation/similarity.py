"""Word-similarity evaluation of learned embeddings (the WIELD paper's Table 2).

Metric
------
For each benchmark pair the model similarity is the cosine of the two word vectors (0 when a
vector is all zeros, as in gensim); the score is Spearman's rho between model similarities and
human scores (:func:`scipy.stats.spearmanr`, with its two-sided p-value, computed bit for bit
by :func:`groundwords.evaluation.stats.spearmanr`).

* **Out-of-vocabulary pairs**: a pair with a word that has no vector is skipped and counted
  (``pairs_used``, ``pairs_total``, ``coverage = pairs_used / pairs_total``), never given a
  dummy similarity.
* **Case**: by default matching is case-insensitive: both the vocabulary and the benchmark
  words are lower-cased (``str.lower``); if several vocabulary words share a lower-cased form
  the first one in the vectors file wins (the most frequent one, for a frequency-sorted
  vocabulary). This is what gensim's ``KeyedVectors.evaluate_word_pairs(pairs,
  case_insensitive=True, dummy4unknown=False)`` does (it upper-cases instead, which differs
  only for the rare characters whose upper- and lower-case mappings are not inverse, e.g. "ß").
  Unlike gensim we never restrict the vocabulary (gensim's ``restrict_vocab=300000``): to
  compare with gensim pass a ``restrict_vocab`` >= the vocabulary size.
* A benchmark with fewer than ``MIN_PAIRS`` (3) usable pairs, or with constant similarities or
  scores, gets rho = p-value = NaN (an empty cell in the TSV) and a logged warning.

Representations
---------------
``learned``
    the embeddings themselves.
``learned+image``
    each word's embedding concatenated with its averaged raw image encoding from
    ``word_images.h5`` (:mod:`groundwords.grounding.word_features`). A word without images has no
    averaged encoding, so **a pair with such a word is out of vocabulary for this
    representation** (its coverage can be lower than ``learned``'s). As in the paper there is
    no rescaling by default; ``image_weight`` (multiplies the image part) and ``normalize``
    (L2-normalise each part before concatenating) are available but off (1.0 / False).

Output: a TSV with columns exactly ``benchmark, representation, rho, pvalue, pairs_used,
pairs_total, coverage``, one row per benchmark x representation, written atomically.

CLI::

    python -m groundwords.evaluation.similarity --vectors P [--word-images H5] \\
        --benchmark NAME=PATH [--benchmark NAME=PATH ...] --out T
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from groundwords.cli import UserError, parse_points, run_cli, setup_logging
from groundwords.evaluation import sets as bm
from groundwords.evaluation.stats import spearmanr
from groundwords.files import read_features, write_tsv
from groundwords.vectors import unit_rows

log = logging.getLogger(__name__)

LEARNED = "learned"
LEARNED_IMAGE = "learned+image"
COLUMNS = ["benchmark", "representation", "rho", "pvalue", "pairs_used", "pairs_total", "coverage"]
MIN_PAIRS = 3


# ---------------------------------------------------------------------------------------------
# Loading vectors


def load_vectors(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Load embeddings as ``(words, float32 matrix)``.

    ``path`` is either
    * a word2vec **text** file (what ``KeyedVectors.load_word2vec_format(binary=False)``
      reads): a header line ``N D`` then lines ``word v1 ... vD`` separated by single spaces
      (a word may contain spaces: the last D fields are the vector). A file without the
      header line (GloVe style) is accepted too; or
    * a directory with ``vectors.npy`` (N x D) and ``vocab.txt`` (one word per line; only the
      first tab-separated field is used, and a ``word<TAB>count`` header line is skipped when
      the file has exactly N + 1 lines), or the ``vectors.npy`` file of such a directory.
    """
    p = Path(path)
    if p.is_dir() or p.suffix == ".npy":
        return _load_npy_dir(p if p.is_dir() else p.parent)
    if not p.is_file():
        raise UserError(f"vectors file {p} does not exist")
    return _load_word2vec_text(p)


def _load_npy_dir(d: Path) -> tuple[list[str], np.ndarray]:
    vec_path, vocab_path = d / "vectors.npy", d / "vocab.txt"
    for f in (vec_path, vocab_path):
        if not f.is_file():
            raise UserError(f"{d}: no {f.name} (expected vectors.npy + vocab.txt)")
    vectors = np.load(vec_path, allow_pickle=False)
    if vectors.ndim != 2:
        raise UserError(f"{vec_path}: expected a 2-d array, got shape {vectors.shape}")
    lines = vocab_path.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    words = [ln.split("\t")[0] for ln in lines]
    if len(words) == len(vectors) + 1 and words[0] == "word":
        words = words[1:]  # header line
    if len(words) != len(vectors):
        raise UserError(f"{d}: vocab.txt has {len(words)} words but vectors.npy has {len(vectors)} rows")
    return words, vectors.astype(np.float32, copy=False)


def _load_word2vec_text(p: Path) -> tuple[list[str], np.ndarray]:
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{p}: not UTF-8 text (binary word2vec files are not supported; "
                        "use the word2vec text format)") from None
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise UserError(f"{p}: empty vectors file")
    first = lines[0].split()
    start, n_expected = 0, None
    if len(first) == 2 and all(x.isdigit() for x in first):
        n_expected, dim = int(first[0]), int(first[1])
        start = 1
    else:  # no header: the dimension is that of the first line
        dim = len(first) - 1
    if dim < 1:
        raise UserError(f"{p}:1: cannot determine the vector dimension")
    words: list[str] = []
    rows = np.empty((len(lines) - start, dim), dtype=np.float32)
    for i, line in enumerate(lines[start:]):
        parts = line.rstrip().split(" ")
        if len(parts) < dim + 1:
            raise UserError(f"{p}:{start + i + 1}: expected a word and {dim} numbers, got {len(parts)} fields")
        try:
            rows[i] = np.asarray(parts[-dim:], dtype=np.float32)
        except ValueError:
            raise UserError(f"{p}:{start + i + 1}: not a vector of {dim} numbers") from None
        words.append(" ".join(parts[:-dim]))
    if n_expected is not None and n_expected != len(words):
        raise UserError(f"{p}: header says {n_expected} vectors, file has {len(words)}")
    return words, rows


# ---------------------------------------------------------------------------------------------
# Similarity and Spearman


def _key(case_insensitive: bool):
    return str.lower if case_insensitive else (lambda w: w)


def word_index(words: list[str], case_insensitive: bool = True) -> dict[str, int]:
    """Look-up key -> row; with case-insensitive keys the first word of a case group wins."""
    key = _key(case_insensitive)
    index: dict[str, int] = {}
    for i, w in enumerate(words):
        index.setdefault(key(w), i)
    return index


def pair_similarities(words: list[str], vectors: np.ndarray, pairs: pd.DataFrame,
                      case_insensitive: bool = True) -> np.ndarray:
    """Cosine similarity of every benchmark pair; NaN where a word is out of vocabulary."""
    index = word_index(words, case_insensitive)
    key = _key(case_insensitive)
    i1 = np.array([index.get(key(w), -1) for w in pairs["word1"]], dtype=np.int64)
    i2 = np.array([index.get(key(w), -1) for w in pairs["word2"]], dtype=np.int64)
    ok = (i1 >= 0) & (i2 >= 0)
    sims = np.full(len(pairs), np.nan)
    if ok.any():
        sims[ok] = cosine_rows(vectors[i1[ok]], vectors[i2[ok]])
    return sims


def similarity_spearman(words: list[str], vectors: np.ndarray, pairs: pd.DataFrame | str | os.PathLike,
                        case_insensitive: bool = True, name: str = "") -> dict:
    """Spearman rho between cosine similarities and human scores (see the module docstring).

    ``pairs`` is a DataFrame ``(word1, word2, score)`` or a benchmark file path.
    Returns ``dict(rho, pvalue, pairs_used, pairs_total, coverage, oov_pairs, sims)`` where
    ``sims`` holds each pair's cosine (NaN when out of vocabulary).
    """
    if not isinstance(pairs, pd.DataFrame):
        name = name or str(pairs)
        pairs = bm.read_pairs(pairs)
    all_sims = pair_similarities(words, vectors, pairs, case_insensitive)
    ok = np.isfinite(all_sims)
    total, used = len(pairs), int(ok.sum())
    result = dict(rho=math.nan, pvalue=math.nan, pairs_used=used, pairs_total=total,
                  coverage=used / total if total else math.nan, oov_pairs=total - used, sims=all_sims)
    label = name or "benchmark"
    if used < MIN_PAIRS:
        log.warning("%s: only %d of %d pairs in vocabulary (< %d): rho is NaN", label, used, total, MIN_PAIRS)
        return result
    sims = all_sims[ok]
    gold = pairs["score"].to_numpy(np.float64)[ok]
    rho, pvalue = spearmanr(gold, sims)  # = scipy.stats.spearmanr's, without importing scipy.stats
    if math.isnan(rho):
        log.warning("%s: constant similarities or scores over %d pairs: rho is NaN", label, used)
    result.update(rho=rho, pvalue=pvalue)
    return result


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity in float64; 0 where either row is all zeros."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    den = na * nb
    dots = np.einsum("ij,ij->i", a, b)
    return np.divide(dots, den, out=np.zeros_like(dots), where=den > 0)


# ---------------------------------------------------------------------------------------------
# Representations


def concat_image(words: list[str], vectors: np.ndarray, img_words: list[str], img_feats: np.ndarray,
                 image_weight: float = 1.0, normalize: bool = False, case_insensitive: bool = True,
                 only: set[str] | None = None) -> tuple[list[str], np.ndarray]:
    """The ``learned+image`` representation: ``[embedding ; image_weight * image_mean]``.

    Only words that have both an embedding and an averaged image encoding are returned (the
    others are out of vocabulary for this representation). Words are matched with the same
    key as :func:`similarity_spearman` (lower-cased when ``case_insensitive``; first
    occurrence wins). ``normalize`` L2-normalises both parts before concatenating (off by
    default, as in the paper). ``only``: restrict to these look-up keys (for speed).
    """
    emb_index = word_index(words, case_insensitive)
    img_index = word_index(img_words, case_insensitive)
    out_words, e_rows, i_rows = [], [], []
    for k, i in emb_index.items():  # dicts keep insertion order: vocabulary order
        j = img_index.get(k)
        if j is None or (only is not None and k not in only):
            continue
        out_words.append(words[i])
        e_rows.append(i)
        i_rows.append(j)
    e = np.asarray(vectors, dtype=np.float32)[e_rows]
    im = np.asarray(img_feats, dtype=np.float32)[i_rows]
    if normalize:
        e = unit_rows(e, axis=1)
        im = unit_rows(im, axis=1)
    return out_words, np.concatenate([e, np.float32(image_weight) * im], axis=1)


# ---------------------------------------------------------------------------------------------
# Stage


def evaluate(vectors_path: str | os.PathLike, benchmarks: dict[str, str | os.PathLike],
             out_tsv: str | os.PathLike, word_images_h5: str | os.PathLike | None = None,
             *, pairs_out: str | os.PathLike | None = None, image_weight: float = 1.0, normalize: bool = False,
             case_insensitive: bool = True) -> pd.DataFrame:
    """Evaluate ``vectors_path`` on each benchmark file; write and return the results table.

    ``benchmarks`` maps a benchmark name to its pair file (see
    :func:`groundwords.evaluation.sets.resolve`). With ``word_images_h5`` the ``learned+image``
    representation is evaluated as well. ``pairs_out`` also writes every pair's cosine per
    representation (``benchmark, word1, word2, human, <representation>...``; empty = not
    covered), the input of the bootstrap statistics and the similarity scatter figure.
    """
    if not benchmarks:
        raise UserError("no benchmarks to evaluate on")
    words, vectors = load_vectors(vectors_path)
    log.info("loaded %d vectors of dimension %d from %s", len(words), vectors.shape[1], vectors_path)
    pairs = {name: bm.read_pairs(path) for name, path in benchmarks.items()}

    reps: list[tuple[str, list[str], np.ndarray]] = [(LEARNED, words, vectors)]
    if word_images_h5 is not None:
        if not Path(word_images_h5).is_file():
            raise UserError(f"word image features {word_images_h5} do not exist")
        img_words, img_feats, _ = read_features(word_images_h5)
        key = _key(case_insensitive)
        needed = {key(w) for df in pairs.values() for col in ("word1", "word2") for w in df[col]}
        cw, cv = concat_image(words, vectors, img_words, img_feats, image_weight=image_weight,
                              normalize=normalize, case_insensitive=case_insensitive, only=needed)
        log.info("learned+image: %d benchmark words have an embedding and images "
                 "(image dim %d, image_weight %g, normalize %s)",
                 len(cw), img_feats.shape[1], image_weight, normalize)
        reps.append((LEARNED_IMAGE, cw, cv))

    rows, per_pair = [], []
    for name, df in pairs.items():
        pp = pd.DataFrame({"benchmark": name, "word1": df["word1"], "word2": df["word2"], "human": df["score"]})
        for rep, w, v in reps:
            r = similarity_spearman(w, v, df, case_insensitive=case_insensitive, name=f"{name}/{rep}")
            rows.append(dict(benchmark=name, representation=rep, **{c: r[c] for c in COLUMNS[2:]}))
            pp[rep] = r["sims"]
            log.info("%-12s %-14s rho=%.4f pairs=%d/%d", name, rep, r["rho"], r["pairs_used"], r["pairs_total"])
        per_pair.append(pp)
    table = pd.DataFrame(rows, columns=COLUMNS)
    write_tsv(table, out_tsv)  # NaN is written as an empty cell
    if pairs_out is not None:
        write_tsv(pd.concat(per_pair, ignore_index=True), pairs_out)
    return table


def _parse_benchmark_arg(spec: str) -> tuple[str, str | None]:
    name, sep, path = spec.partition("=")
    name = name.strip()
    if not name or (sep and not path):
        raise UserError(f"--benchmark {spec!r}: expected NAME=PATH (or a registered NAME)")
    return name, (path if sep else None)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m groundwords.evaluation.similarity",
                                description="Word-similarity evaluation (Spearman rho of cosine similarities).")
    p.add_argument("--vectors", required=True,
                   help="word2vec text file, or a directory with vectors.npy + vocab.txt")
    p.add_argument("--word-images", help="word_images.h5: also evaluate the learned+image representation")
    p.add_argument("--benchmark", action="append", required=True, metavar="NAME=PATH",
                   help="a benchmark pair file (repeatable); a bare registered NAME is resolved "
                        "offline (packaged copy or --cache-dir)")
    p.add_argument("--cache-dir", help="benchmark cache for bare NAMEs (see groundwords.evaluation.sets fetch)")
    p.add_argument("--out", required=True, help="TSV to write")
    p.add_argument("--pairs-out", help="also write every pair's cosine similarity per representation here")
    p.add_argument("--point", action="append", metavar="OPTIONS",
                   help="evaluate several vector files in this process (wield.train_jobs: grid): each --point's "
                        "OPTIONS (one quoted string, e.g. '--vectors V --out T --pairs-out P') are added to the "
                        "other options for one evaluation; the same files as one process per evaluation")
    p.add_argument("--image-weight", type=float, default=1.0,
                   help="multiply the image part of learned+image by this (default 1: no rescaling)")
    p.add_argument("--normalize", action="store_true",
                   help="L2-normalise embedding and image parts before concatenating (default off)")
    p.add_argument("--case-sensitive", action="store_true", help="match words exactly (default: lower-case both)")
    return p


def main(argv=None) -> None:
    runs, _ = parse_points(_parser(), argv)  # all checked first
    setup_logging()
    for a in runs:
        benches: dict[str, Path] = {}
        for spec in a.benchmark:
            name, path = _parse_benchmark_arg(spec)
            if name in benches:
                raise UserError(f"--benchmark {name} given twice")
            benches[name] = bm.resolve(name, path=path, cache_dir=a.cache_dir)
        evaluate(a.vectors, benches, a.out, a.word_images, pairs_out=a.pairs_out, image_weight=a.image_weight,
                 normalize=a.normalize, case_insensitive=not a.case_sensitive)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
