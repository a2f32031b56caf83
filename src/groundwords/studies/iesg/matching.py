"""IESG's ``evaluate``: bidirectional image-word matching of the L2 baseline and IESG on one split.

See :mod:`groundwords.studies.iesg.stage` (the ``evaluate`` sub-command) for the outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from groundwords.cli import UserError, log
from groundwords.evaluation import matching as retrieval
from groundwords.files import load_image_features, write_tsv
from groundwords.grounding.word_images import read_word_images
from groundwords.studies.iesg.inputs import load_sgns, normalize_images, resolve_pairs

MODELS = ("l2", "iesg")
DIRECTIONS = ("image_to_word", "word_to_image")
RESULT_COLUMNS = ["model", "direction", "split", "scoring", "pairs_used", "pairs_total", "coverage",
                  "n_candidates", "p_at_1", "p_at_5", "p_at_10"]


def evaluate_matching(table: pd.DataFrame, words: list[str], image_ids: list[str], feats: np.ndarray,
                      models: dict[str, tuple[np.ndarray, np.ndarray]], *, split: str = "test",
                      n_negatives: int = 99, seed: int = 0, scoring: str = "dot", image_pool: str = "split"):
    """Matching results of several models on one split.

    ``models``: ``{name: (word_vectors (V, d), projection (k, d))}``, all over the vocabulary
    ``words``; ``feats`` are the (normalised) image features in the order of ``image_ids``.
    Returns ``(results, ranks)`` DataFrames (Figure 3's P@1 by frequency is computed from the ranks by
    :func:`groundwords.studies.iesg.tables.iesg_by_frequency`).
    """
    pairs = resolve_pairs(table, words, image_ids)
    known = pairs[(pairs["word_id"] >= 0) & (pairs["image_row"] >= 0)]
    ev = known[known["split"] == split]
    total = int((pairs["split"] == split).sum())
    if ev.empty:
        raise UserError(f"no usable (image, word) pairs in split {split!r} ({total} in the table; "
                        "words must be in the vocabulary and images in the feature file)")
    pi, pw = ev["image_row"].to_numpy(np.int64), ev["word_id"].to_numpy(np.int64)
    word_pool = np.unique(known["word_id"].to_numpy(np.int64))
    img_src = known if image_pool == "all" else ev
    img_pool = np.unique(img_src["image_row"].to_numpy(np.int64))
    # the true sets: every attachment in the table (all splits), over known words and images
    wc, ic = retrieval.build_candidates(pi, pw, known["image_row"].to_numpy(np.int64),
                                        known["word_id"].to_numpy(np.int64), word_pool, img_pool,
                                        n_negatives, seed)
    results, rank_cols = [], {"image_id": ev["image_id"].tolist(), "word": ev["word"].tolist()}
    for name, (W, P) in models.items():
        V_img = feats @ P  # projected images, all rows
        for direction, ranks, n_c in (
            ("image_to_word", retrieval.matching_ranks(V_img[pi], W, pw, wc, scoring), (wc >= 0).sum(1)),
            ("word_to_image", retrieval.matching_ranks(W[pw], V_img, pi, ic, scoring), (ic >= 0).sum(1)),
        ):
            p = retrieval.precision_at_k(ranks, (1, 5, 10))
            results.append({"model": name, "direction": direction, "split": split, "scoring": scoring,
                            "pairs_used": len(ev), "pairs_total": total, "coverage": len(ev) / total,
                            "n_candidates": float(np.mean(n_c)) + 1, "p_at_1": p[1], "p_at_5": p[5],
                            "p_at_10": p[10]})
            rank_cols[f"{name}_{direction}"] = ranks
    return pd.DataFrame(results, columns=RESULT_COLUMNS), pd.DataFrame(rank_cols)


def evaluate(model_dir, word_images_tsv, features_h5, out_tsv, *, sgns_dir=None, split: str = "test",
             n_negatives: int = 99, seed: int = 0, scoring: str = "dot", image_pool: str = "split",
             ranks_tsv=None) -> pd.DataFrame:
    d = Path(model_dir)
    if not (d / "train.json").is_file():
        raise UserError(f"{d}: no train.json (not a finished 'iesg train' output directory)")
    info = json.loads((d / "train.json").read_text(encoding="utf-8"))
    words_s, E_s, _, _ = load_sgns(sgns_dir or info["inputs"]["sgns"])
    words = (d / "vocab.txt").read_text(encoding="utf-8").splitlines()
    if words != words_s:
        raise UserError(f"{d}: its vocabulary differs from the SGNS model's ({sgns_dir or info['inputs']['sgns']})")
    E_iesg = np.load(d / "vectors.npy")
    P_l2, P_iesg = np.load(d / "projection_l2.npy"), np.load(d / "projection_iesg.npy")
    table = read_word_images(word_images_tsv)
    image_ids, raw = load_image_features(features_h5)
    if raw.shape[1] != P_l2.shape[0]:
        raise UserError(f"{features_h5}: {raw.shape[1]}-d features, but the model was trained on "
                        f"{P_l2.shape[0]}-d ones")
    mean = np.load(d / "image_mean.npy") if (d / "image_mean.npy").is_file() else None
    feats = normalize_images(raw, info["hyperparameters"]["image_norm"], mean)
    res, ranks = evaluate_matching(table, words, image_ids, feats,
                                   {"l2": (E_s, P_l2), "iesg": (E_iesg, P_iesg)}, split=split,
                                   n_negatives=n_negatives, seed=seed, scoring=scoring, image_pool=image_pool)
    write_tsv(res, out_tsv)
    if ranks_tsv:
        write_tsv(ranks, ranks_tsv)
    for r in res.itertuples():
        log.info("%s %s: P@1 %.3f  P@5 %.3f  P@10 %.3f (%d pairs)", r.model, r.direction, r.p_at_1, r.p_at_5,
                 r.p_at_10, r.pairs_used)
    return res
