"""Bidirectional image-word matching (the IESG paper's Tables 1-2 and Figure 3).

Protocol (paper §3.1): for every true (image, word) pair of the evaluated split,

* **image → word**: the true word plus ``n_negatives`` (99) words drawn at random from the
  candidate word pool **minus every word attached to that image** (in any split);
* **word → image**: the true image plus 99 images drawn from the candidate image pool **minus
  every image attached to that word** (in any split),

so a candidate set never contains another correct answer. The model ranks the 100 items by
the energy ``E(f, w) = v · e_w`` (inner product of the projected image ``v = v' W_p`` and the
word embedding; ``scoring="cosine"`` / ``"neg_l2"`` are available for diagnostics). The rank of
the true item is ``1 + #(negatives scoring >= it)``: ties count **against** the model, so a
degenerate model (all scores equal) gets rank 100, not 1. ``P@k`` = fraction of pairs with
rank <= k.

Candidates depend only on the word-image table, the pools and the seed (one
``numpy.random.default_rng(seed)`` consumed pair by pair in table order), never on a model, so
every model evaluated with the same inputs sees the same candidate sets. When a pool holds
fewer than ``n_negatives`` allowed items, all of them are used (the padded slots of the
candidate matrix hold -1 and never outrank the true item); ``n_candidates`` reports it.

Everything here is a pure function of arrays.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from groundwords.vectors import unit_rows

SCORINGS = ("dot", "cosine", "neg_l2")


def precision_at_k(ranks, ks: Iterable[int] = (1, 5, 10)) -> dict[int, float]:
    """``{k: fraction of ranks <= k}`` (NaN for an empty ``ranks``)."""
    ranks = np.asarray(ranks)
    return {int(k): float((ranks <= k).mean()) if len(ranks) else float("nan") for k in ks}


def ranks_from_scores(scores: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Rank of column 0 (the true item) in each row of ``scores`` (Q, 1 + n), 1 = best.

    Ties count against the true item. ``valid`` (Q, n) masks the negatives (False: padding).
    """
    scores = np.asarray(scores, dtype=np.float64)
    beats = scores[:, 1:] >= scores[:, :1]
    if valid is not None:
        beats &= np.asarray(valid, bool)
    return 1 + beats.sum(1)


def sample_candidates(exclude: Sequence[Iterable[int]], pool: np.ndarray, n: int,
                      rng: np.random.Generator | int = 0) -> np.ndarray:
    """For each query, ``n`` distinct items of ``pool`` not in that query's ``exclude`` set.

    Returns a (Q, n) int64 array, -1-padded where fewer than ``n`` items are allowed.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    pool = np.unique(np.asarray(pool, dtype=np.int64))
    out = np.full((len(exclude), n), -1, dtype=np.int64)
    for q, ex in enumerate(exclude):
        ex = np.fromiter(ex, dtype=np.int64) if not isinstance(ex, np.ndarray) else ex
        allowed = pool[~np.isin(pool, ex)] if len(ex) else pool
        m = min(n, len(allowed))
        if m:
            out[q, :m] = rng.choice(allowed, size=m, replace=False)
    return out


def score(queries: np.ndarray, items: np.ndarray, scoring: str = "dot") -> np.ndarray:
    """Row-wise scores of ``queries`` (Q, d) against ``items`` (Q, C, d) -> (Q, C)."""
    if scoring == "dot":
        return np.einsum("qd,qcd->qc", queries, items)
    if scoring == "cosine":
        qn = unit_rows(queries, axis=1, eps=1e-12)
        itn = unit_rows(items, axis=2, eps=1e-12)
        return np.einsum("qd,qcd->qc", qn, itn)
    if scoring == "neg_l2":
        return -np.linalg.norm(items - queries[:, None, :], axis=2)
    raise ValueError(f"unknown scoring {scoring!r} (choose from {', '.join(SCORINGS)})")


def matching_ranks(query_vecs: np.ndarray, item_vecs: np.ndarray, true_items: np.ndarray,
                   candidates: np.ndarray, scoring: str = "dot") -> np.ndarray:
    """Rank of ``true_items[q]`` among itself + ``candidates[q]`` for query vector ``query_vecs[q]``.

    ``item_vecs`` (n_items, d) is indexed by the item ids in ``true_items`` / ``candidates``.
    """
    query_vecs = np.asarray(query_vecs, dtype=np.float64)
    item_vecs = np.asarray(item_vecs, dtype=np.float64)
    ids = np.concatenate([np.asarray(true_items, np.int64)[:, None], candidates], axis=1)
    valid = candidates >= 0
    s = score(query_vecs, item_vecs[np.where(ids >= 0, ids, 0)], scoring)
    return ranks_from_scores(s, valid)


def attached_sets(keys: np.ndarray, values: np.ndarray) -> dict[int, np.ndarray]:
    """``{key: sorted unique values}`` for the pairs ``(keys[i], values[i])``."""
    df = pd.DataFrame({"k": np.asarray(keys, np.int64), "v": np.asarray(values, np.int64)})
    return {int(k): np.unique(g.to_numpy()) for k, g in df.groupby("k")["v"]}


def build_candidates(pair_images: np.ndarray, pair_words: np.ndarray, all_images: np.ndarray,
                     all_words: np.ndarray, word_pool: np.ndarray, image_pool: np.ndarray,
                     n_negatives: int = 99, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Candidate sets of the evaluated pairs ``(pair_images[q], pair_words[q])``.

    ``all_images`` / ``all_words``: every (image, word) attachment of the table (all splits),
    defining the true sets to exclude. Returns ``(word_candidates, image_candidates)``, each
    (Q, n_negatives) -1-padded; the image → word sets are drawn first, then word → image.
    """
    rng = np.random.default_rng(seed)
    words_of = attached_sets(all_images, all_words)
    images_of = attached_sets(all_words, all_images)
    empty = np.zeros(0, np.int64)
    wc = sample_candidates([words_of.get(int(i), empty) for i in pair_images], word_pool, n_negatives, rng)
    ic = sample_candidates([images_of.get(int(w), empty) for w in pair_words], image_pool, n_negatives, rng)
    return wc, ic


def p1_by_frequency(ranks, freqs, edges: Sequence[float] | None = None) -> pd.DataFrame:
    """P@1 per term-frequency bin ``[freq_lo, freq_hi)`` (default: powers of ten), for Figure 3."""
    ranks = np.asarray(ranks)
    freqs = np.asarray(freqs, dtype=np.float64)
    if edges is None:
        top = max(1.0, float(freqs.max())) if len(freqs) else 1.0
        edges = 10.0 ** np.arange(0, int(np.floor(np.log10(top))) + 2)
    edges = np.asarray(edges, dtype=np.float64)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (freqs >= lo) & (freqs < hi)
        n = int(sel.sum())
        rows.append({"freq_lo": lo, "freq_hi": hi, "n": n,
                     "p_at_1": float((ranks[sel] <= 1).mean()) if n else float("nan")})
    return pd.DataFrame(rows, columns=["freq_lo", "freq_hi", "n", "p_at_1"])
