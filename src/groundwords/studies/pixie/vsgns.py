"""V-SGNS (Lazaridou et al. 2015), the ``vsgns`` and ``reduce`` sub-commands of :mod:`groundwords.studies.pixie.baselines`.

SGNS + a max-margin term pulling M e_w towards v_w for the visual words (:mod:`groundwords.models.vsgns`),
trained with Adam on the same skip-gram pairs as ``pixie train``, each pair weighted 1/(pairs of its
corpus occurrence); ``reduce`` gives model A its features, PCA-reduced to the text dimension.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from groundwords.checkpoints import file_identity, stage_checkpoint
from groundwords.cli import UserError, log
from groundwords.files import read_feature_matrix, write_features
from groundwords.models.vsgns import VISUAL_MAPS, VSGNS
from groundwords.studies.pixie.stage import (
    align_visual,
    check_settings,
    stage_device,
    text_inputs,
)
from groundwords.text.skipgram import keep_probabilities, skipgram_pairs, subsample
from groundwords.training import finish_run, fit, torch_settings


def occurrence_pairs(tokens, offsets, window: int, keep_prob=None, seed: int = 0):
    """``skipgram_pairs(tokens, offsets, window, keep_prob=keep_prob, rng=seed)`` (same draws, same
    pairs) plus each pair's weight 1/(number of pairs of its centre occurrence)."""
    rng = np.random.default_rng(seed)
    tokens, offsets = np.asarray(tokens, np.int64), np.asarray(offsets, np.int64)
    if keep_prob is not None:
        tokens, offsets = subsample(tokens, offsets, np.asarray(keep_prob), rng)
    pc, px = skipgram_pairs(np.arange(len(tokens)), offsets, window, rng=rng)  # positions
    weight = 1.0 / np.bincount(pc, minlength=len(tokens))[pc]
    return tokens[pc], tokens[px], weight.astype(np.float32)


def reduce_features(visual_h5, out_h5, dim: int, seed: int = 0) -> dict:
    """Per-word features reduced to ``dim`` dimensions by PCA over the file's words (V-SGNS model A
    compares e_w with v_w directly, so v_w must have e_w's size). With fewer words (or feature
    dimensions) than ``dim`` the PCA keeps what it can and the remaining columns are zero."""
    from sklearn.decomposition import PCA

    check_settings((dim >= 1, "dim must be >= 1"))
    words, feats, attrs = read_feature_matrix(visual_h5, "visual features")
    k = min(dim, feats.shape[0], feats.shape[1])
    out = np.zeros((len(words), dim), np.float32)
    pca = PCA(n_components=k, random_state=seed).fit(feats)
    out[:, :k] = pca.transform(feats)
    ratio = float(pca.explained_variance_ratio_.sum())
    write_features(out_h5, words, out, {**attrs, "reduced_from": int(feats.shape[1]), "pca_components": k,
                                        "explained_variance_ratio_sum": ratio, "seed": seed})
    log.info("V-SGNS model A features: %d words, %d -> %d dims by PCA (%d components, %.1f%% of the variance)",
             len(words), feats.shape[1], dim, k, 100 * ratio)
    return {"words": len(words), "components": k, "explained_variance_ratio_sum": ratio}


def vsgns_inputs(corpus, vocab_tsv, visual_h5, *, dim: int, window: int, sample: float, visual_map: str, seed: int):
    """``(words, counts, enc, feats, mask, vattrs, pairs)`` of V-SGNS, checked; ``pairs``: the
    tensors ``centre``, ``context`` and ``weight`` (:func:`occurrence_pairs`) on the CPU."""
    words, counts, enc = text_inputs(corpus, vocab_tsv)
    feats, mask, vattrs = align_visual(words, visual_h5)
    if mask.sum() < 2:
        raise UserError(f"{visual_h5}: only {int(mask.sum())} vocabulary word has features; the max-margin "
                        "term needs at least 2 (contrastive words)")
    if visual_map == "identity" and feats.shape[1] != dim:
        raise UserError(f"--visual-map identity needs --dim equal to the feature size ({feats.shape[1]})")
    keep = keep_probabilities(counts, sample) if sample > 0 else None
    c, x, w = occurrence_pairs(enc.tokens, enc.offsets, window, keep, seed)
    if len(c) == 0:
        raise UserError(f"{corpus}: no skip-gram pairs (sentences too short?)")
    pairs = {"centre": torch.from_numpy(c), "context": torch.from_numpy(x), "weight": torch.from_numpy(w)}
    return words, counts, enc, feats, mask, vattrs, pairs


def train_vsgns(corpus, vocab_tsv, visual_h5, out_dir, *, dim: int, window: int, negatives: int,
                sample: float, epochs: int, batch_size: int, lr: float,
                margin: float = 0.5, visual_negatives: int = 20, visual_weight: float = 1.0,
                visual_map: str = "linear", seed: int = 0, threads: int | None = 1, progress: bool = True,
                checkpoint_seconds: float | None = None, device: str = "cpu") -> dict:
    """Train V-SGNS and write its outputs to ``out_dir``. ``checkpoint_seconds``: None, no checkpoint;
    else resume from / save ``out_dir/checkpoint.pt`` (see :func:`groundwords.studies.wield.stage.train`).
    ``device`` (``pixie.device``): auto, cpu or cuda."""
    check_settings((dim >= 1, "dim must be >= 1"), (window >= 1, "window must be >= 1"),
                   (negatives >= 1, "negatives must be >= 1"), (epochs >= 1, "epochs must be >= 1"),
                   (batch_size >= 1, "batch size must be >= 1"), (lr > 0, "lr must be > 0"),
                   (sample >= 0, "sample must be >= 0"), (math.isfinite(margin), "margin must be finite"),
                   (visual_negatives >= 1, "visual negatives must be >= 1"),
                   (visual_weight >= 0, "visual weight must be >= 0"),
                   (visual_map in VISUAL_MAPS, f"visual map must be one of {', '.join(VISUAL_MAPS)} (got {visual_map!r})"))
    dev = stage_device(device)
    words, counts, enc, feats, mask, vattrs, data = vsgns_inputs(corpus, vocab_tsv, visual_h5, dim=dim, window=window,
                                                                 sample=sample, visual_map=visual_map, seed=seed)
    n_pairs, n_vis_pairs = len(data["centre"]), int(mask[data["centre"].numpy()].sum())
    log.info("vsgns: %d tokens, vocabulary %d (%d with visual features), %d pairs (%d with a visual centre), on %s",
             len(enc.tokens), len(words), int(mask.sum()), n_pairs, n_vis_pairs, dev)
    hyper = {"dim": dim, "window": window, "negatives": negatives, "sample": sample,
             "epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": "adam",
             "margin": margin, "visual_negatives": visual_negatives, "visual_weight": visual_weight,
             "visual_map": visual_map, "visual_term": "per occurrence", "seed": seed}
    with torch_settings(threads, dev):
        torch.manual_seed(seed)  # SGNS's embedding initialisation uses the global RNG
        model = VSGNS(len(words), dim, counts=counts, visual_features=torch.from_numpy(feats),
                      has_visual=torch.from_numpy(mask), negatives=negatives, margin=margin,
                      visual_negatives=visual_negatives, visual_weight=visual_weight, visual_map=visual_map,
                      seed=seed).to(dev)
        before = model.alignment()
        ckpt = stage_checkpoint(out_dir, {"stage": "vsgns", **hyper, "inputs": [
            file_identity(p) for p in (corpus, vocab_tsv, visual_h5)]}, checkpoint_seconds, dev)
        t0 = time.perf_counter()
        history = fit(model, {k: v.to(dev) for k, v in data.items()}, epochs=epochs, batch_size=batch_size, lr=lr,
                      optimizer="adam", seed=seed, words_per_epoch=len(enc.tokens), progress=progress, checkpoint=ckpt,
                      manual_grads=model.has_manual_grads)
        seconds = time.perf_counter() - t0
        after = model.alignment()
        used_threads = torch.get_num_threads()
        vectors = model.word_vectors().cpu().numpy()
    info = {
        "model": "vsgns",
        "hyperparameters": hyper,
        "inputs": {"corpus": str(corpus), "vocab": str(vocab_tsv), "visual": str(visual_h5)},
        "visual_scaling": vattrs.get("scaling"), "vocab_size": len(words), "visual_dim": int(feats.shape[1]),
        "n_visual_words": int(mask.sum()), "n_tokens": len(enc.tokens), "n_oov_dropped": enc.n_oov,
        "n_pairs": n_pairs, "n_visual_pairs": n_vis_pairs, "alignment_before": before,
        "alignment_after": after, "train_seconds": seconds, "history": history,
        "final_loss": history[-1].get("total"), "torch_version": torch.__version__, "threads": used_threads,
        "device": str(dev), "outputs": {"vectors.txt": "e_w (every word)"},
    }
    finish_run(out_dir, words, vectors, history, info, model="V-SGNS")
    log.info("wrote %s: %d x %d V-SGNS vectors; cos(M e_w, v_w) %.3f -> %.3f (mismatched %.3f)", out_dir,
             *vectors.shape, before["cos_match"], after["cos_match"], after["cos_mismatch"])
    return info
