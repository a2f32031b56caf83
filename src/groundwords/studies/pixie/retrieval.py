"""Image <-> sentence retrieval with frozen word embeddings (PIXIE's §4.3 and Table 6).

One sub-command::

    python -m groundwords.studies.pixie.retrieval train --vectors V --out-dir D \
        (--manifest M --features H5 [--val-frac 0.1 --test-frac 0.1 --split-seed 0] | --precomp DIR) \
        [--hidden 1024 --epochs 30 --lr 2e-4 --lr-step 15 --margin 0.2 --batch-size 128 \
         --max-violation --grad-clip 2 --select final --seed 0 --threads 1 --device cpu --no-progress]

It trains the retrieval model :class:`~groundwords.models.vse.VSE` (a GRU over the *frozen*
word vectors ``V`` -> sentence embedding; a linear map of the image features; hinge ranking
loss of Kiros et al. 2014) and reports R@K on the test split. Comparing word vectors = running
this once per vector file on the same data: only ``V`` changes.

**Data** (both sources give the same :class:`RetrievalData`: images with features and a split,
captions as token lists pointing at their image):

* ``--manifest M --features H5`` (default setting): the manifest rows (:mod:`groundwords.data.manifest`,
  several rows may share an image ``id``, e.g. an OpenMoji's name and its aliases) with status
  ``ok`` whose image has an encoding in ``H5`` (:mod:`groundwords.data.encode`). The *images* are split
  into train / validation / test (:func:`groundwords.grounding.word_images.split_images`): sorted ids permuted by ``numpy.random.default_rng(--split-seed)``,
  the first ``round(test_frac·N)`` are test, the next ``round(val_frac·N)`` validation, the rest train.
  The split depends on the manifest, the encodings and the seed only, never on the word vectors,
  so every vector file is evaluated on the same images.
* ``--precomp DIR``: VSE++'s precomputed features (Faghri et al. 2017, e.g. ``f30k_precomp``, the
  paper's setting: Flickr30K, VGG-19 FC7, Karpathy split): ``{train,dev,test}_ims.npy`` (N, 4096)
  and ``{train,dev,test}_caps.txt``, one caption per line, 5 consecutive captions per image
  (caption j belongs to image j // 5). ``dev`` is the validation split (optional).

Captions are tokenized with :func:`groundwords.text.vocab.tokenize` (the project's one tokenizer) and
looked up in ``V`` (case-insensitively, as :func:`groundwords.evaluation.similarity.word_index` does);
out-of-vocabulary tokens are dropped, and a caption left with no token is dropped and counted.
Every input row is accounted for in ``train.json["rows"]``: ``used + empty_after_oov +
no_encoding + not_ok = total`` (manifest rows; with ``--precomp``: caption lines).

**Training** (paper §4.3, which are VSE++'s defaults): Adam, lr 2e-4 divided by 10 every
``--lr-step`` 15 epochs, 30 epochs, batch 128 captions (each with its image), margin 0.2, sum of
the violations over the batch (``--max-violation``: VSE++'s hardest negative instead), hidden
size 1024; word vectors and image features are not fine-tuned. Not in the paper, from VSE++'s
defaults: gradients clipped to norm ``--grad-clip`` 2 (0: off). Batches are drawn from a
``torch.Generator`` seeded with ``--seed`` (which also seeds the initialisation); runs are
deterministic on the CPU for a given seed and thread count. After every epoch the validation
R-sum (R@1+R@5+R@10 of both directions, in %, max 600, as in VSE++) is logged.
``--select final`` (default) reports the model after the last epoch; ``--select best-val``
reports the epoch with the best validation R-sum (what VSE++'s ``model_best`` does; the paper
does not say which it used).

**Evaluation** (:func:`recall_at_k`): on the test split, all test captions against all test
images. ``i2s``: each test image with at least one caption queries the test captions and counts
as a hit at K when *any* of its captions is in the top K (Karpathy & Fei-Fei / VSE++). ``s2i``:
each test caption queries the test images (all of them, also those whose captions were all
dropped as out of vocabulary, so the gallery does not depend on the vectors); hit when its image
is in the top K. Ties count against the model: an item scoring exactly as high as the best true
item ranks before it.

Outputs (atomic): ``D/retrieval.tsv`` with columns ``direction, k, recall, n_queries``
(direction ``i2s`` / ``s2i``, recall a fraction in [0, 1]), ``D/ranks.tsv`` with every test
query's rank (``direction, query, rank``; the query is the image id for ``i2s`` and
``caption-<index among the source captions>`` for ``s2i``, ids that do not depend on the word
vectors, so that two models' queries can be paired), then ``D/train.json`` (last: it marks
a finished run) with the hyper-parameters, inputs, row accounting, per-split counts, per-epoch
loss / learning rate / validation R@K and R-sum, timings, word-vector dimension, torch version.
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from groundwords.checkpoints import file_identity, stage_checkpoint
from groundwords.cli import UserError, log, run_cli, setup_logging
from groundwords.config import add_config_argument, add_section_arguments, stage_settings
from groundwords.devices import resolve_device
from groundwords.evaluation.similarity import load_vectors
from groundwords.files import write_json, write_tsv
from groundwords.grounding.word_images import SPLITS
from groundwords.models.vse import VSE
from groundwords.studies.pixie.retrieval_data import (
    encode_captions,
    from_manifest,
    from_precomp,
)
from groundwords.studies.pixie.retrieval_fit import SplitTensors, fit_vse
from groundwords.studies.pixie.retrieval_metrics import (
    DIRECTIONS,
    KS,
    rsum,
)
from groundwords.training import torch_settings, training_settings

SELECT = ("final", "best-val")
RESULT_COLUMNS = ["direction", "k", "recall", "n_queries"]


# ---------------------------------------------------------------------------------------------
# Training and evaluation (the data: retrieval_data; the loop: retrieval_fit; the metrics: retrieval_metrics)


def _check_args(hidden, epochs, lr, lr_step, margin, batch_size, grad_clip, select):
    checks = [
        (hidden >= 1, f"hidden size must be >= 1 (got {hidden})"),
        (epochs >= 1, f"epochs must be >= 1 (got {epochs})"),
        (lr > 0 and math.isfinite(lr), f"learning rate must be > 0 (got {lr})"),
        (lr_step >= 0, f"lr step must be >= 0 epochs (0: no decay; got {lr_step})"),
        (margin >= 0 and math.isfinite(margin), f"margin must be a finite number >= 0 (got {margin})"),
        (batch_size >= 2, f"batch size must be >= 2 (got {batch_size}): the negatives come from the batch"),
        (grad_clip >= 0, f"gradient clip must be >= 0 (0: off; got {grad_clip})"),
        (select in SELECT, f"select must be one of {', '.join(SELECT)} (got {select!r})"),
    ]
    for ok, msg in checks:
        if not ok:
            raise UserError(msg)


def _prepare(vectors, manifest, features, precomp, val_frac: float, test_frac: float, split_seed: int,
             select: str, dev: torch.device):
    """``(words, vecs, data, enc, rows, sets, counts)`` of :func:`train`: the word vectors, the
    captions looked up in them, the row accounting and the per-split tensors (UserError where a
    split the run needs has no caption)."""
    words, vecs = load_vectors(vectors)
    if vecs.ndim != 2 or len(words) == 0 or not np.isfinite(vecs).all():
        raise UserError(f"{vectors}: the word vectors must be a non-empty finite matrix")
    if precomp is not None:
        data = from_precomp(precomp)
    else:
        data = from_manifest(manifest, features, val_frac=val_frac, test_frac=test_frac, split_seed=split_seed)
    enc = encode_captions(data, words, vecs)
    n_used = int(enc.kept.sum())
    rows = {"total": data.rows["total"], "used": n_used, "empty_after_oov": data.rows["captions"] - n_used,
            "no_encoding": data.rows["no_encoding"], "not_ok": data.rows["not_ok"]}
    assert rows["used"] + rows["empty_after_oov"] + rows["no_encoding"] + rows["not_ok"] == rows["total"]
    if n_used == 0:
        raise UserError(f"no caption has a word of {vectors} ({data.rows['captions']} captions, "
                        f"{enc.n_tokens} tokens, all out of vocabulary): do the vectors match the captions' language?")
    sets = {s: SplitTensors(data, enc, s, dev) for s in SPLITS}
    counts = {s: {"images": t.n_images, "images_with_caption": t.n_images_with_caption, "captions": t.n_captions}
              for s, t in sets.items()}
    for s in ("train", "test"):
        if sets[s].n_captions == 0:
            raise UserError(f"the {s} split has no caption with an in-vocabulary word ({counts[s]['images']} images)")
    if select == "best-val" and sets["validation"].n_captions == 0:
        raise UserError("--select best-val needs a validation split with captions")
    log.info("data (%s): %d/%d rows used (%d empty after OOV, %d without encoding, %d not ok); %s; "
             "%d/%d tokens out of vocabulary", data.source, rows["used"], rows["total"], rows["empty_after_oov"],
             rows["no_encoding"], rows["not_ok"],
             ", ".join(f"{s} {c['images']} images / {c['captions']} captions" for s, c in counts.items()),
             enc.n_oov_tokens, enc.n_tokens)
    return words, vecs, data, enc, rows, sets, counts


def fit_and_select(model: VSE, sets: dict, *, select: str, epochs: int, seed: int, checkpoint=None,
                   **fit_kw) -> tuple[list, int]:
    """Train ``model`` on ``sets["train"]`` (:func:`fit_vse`), logging the validation R@K after every
    epoch; with ``select`` best-val, load the epoch with the best validation R-sum at the end
    (``checkpoint`` keeps it too). Returns ``(history, the selected epoch)``."""
    best = {"best_rsum": -math.inf, "best_epoch": None, "best_state": None}

    def on_epoch_end(rec):
        rec["val_rsum"], rec["val"] = None, None
        if sets["validation"].n_captions:
            r, _ = sets["validation"].recalls(model)
            rec["val"] = r
            rec["val_rsum"] = rsum(r)
            if select == "best-val" and rec["val_rsum"] > best["best_rsum"]:
                best.update(best_rsum=rec["val_rsum"], best_epoch=rec["epoch"],
                            best_state=copy.deepcopy(model.state_dict()))

    history = fit_vse(model, sets["train"], epochs=epochs, seed=seed, on_epoch_end=on_epoch_end,
                      checkpoint=checkpoint, state=best, **fit_kw)
    if select != "best-val":
        return history, epochs
    model.load_state_dict(best["best_state"])
    return history, best["best_epoch"]


def score_test_split(test: SplitTensors, model: VSE) -> tuple[pd.DataFrame, dict, dict]:
    """``(ranks, recalls {direction: {k: R@k}}, n_queries {direction: n})`` on the test split."""
    ranks = test.ranks(model)
    recalls = {d: {k: float((ranks.loc[ranks["direction"] == d, "rank"] <= k).mean()) for k in KS}
               for d in DIRECTIONS}
    return ranks, recalls, {d: int((ranks["direction"] == d).sum()) for d in DIRECTIONS}


def write_results(out_dir: Path, ranks: pd.DataFrame, recalls: dict, n_queries: dict) -> None:
    """``retrieval.tsv`` (direction, k, recall, n_queries) and ``ranks.tsv``."""
    table = pd.DataFrame([{"direction": d, "k": k, "recall": recalls[d][k], "n_queries": n_queries[d]}
                          for d in DIRECTIONS for k in KS], columns=RESULT_COLUMNS)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_tsv(table, out_dir / "retrieval.tsv")
    write_tsv(ranks, out_dir / "ranks.tsv")


def _check_sources(manifest, features, precomp) -> None:
    if (precomp is None) == (manifest is None and features is None):
        raise UserError("give either --manifest and --features, or --precomp")
    if precomp is None and (manifest is None or features is None):
        raise UserError("--manifest and --features go together")


def train(vectors, out_dir, *, manifest=None, features=None, precomp=None, val_frac: float = 0.1,
          test_frac: float = 0.1, split_seed: int = 0, hidden: int = 1024, epochs: int = 30, lr: float = 2e-4,
          lr_step: int = 15, margin: float = 0.2, batch_size: int = 128, max_violation: bool = False,
          grad_clip: float = 2.0, select: str = "final", seed: int = 0, threads: int | None = 1,
          device: str = "cpu", progress: bool = True, checkpoint_seconds: float | None = None) -> dict:
    """Train the retrieval model on the train split and write ``retrieval.tsv`` + ``train.json``.

    Data from ``manifest`` + ``features`` or from ``precomp`` (exactly one). ``device``
    (``pixie.device``): auto, cpu or cuda. ``checkpoint_seconds``: None, no checkpoint; else resume
    from / save ``out_dir/checkpoint.pt`` (with the best epoch so far), removed at the end. Returns train.json.
    """
    t_start = time.perf_counter()
    _check_args(hidden, epochs, lr, lr_step, margin, batch_size, grad_clip, select)
    _check_sources(manifest, features, precomp)
    dev = resolve_device(device, "pixie.device")
    words, vecs, data, enc, rows, sets, counts = _prepare(vectors, manifest, features, precomp, val_frac, test_frac,
                                                          split_seed, select, dev)
    hyper = {"hidden": hidden, "epochs": epochs, "lr": lr, "lr_step": lr_step, "margin": margin,
             "batch_size": batch_size, "max_violation": max_violation, "grad_clip": grad_clip,
             "select": select, "seed": seed, "optimizer": "adam", "loss": "sum"}
    ckpt = stage_checkpoint(out_dir, {"stage": "retrieval", **hyper, "val_frac": val_frac, "test_frac": test_frac,
                                      "split_seed": split_seed, "inputs": [
                                          file_identity(p) for p in (vectors, manifest, features, precomp)]},
                            checkpoint_seconds, dev)
    with torch_settings(threads, dev):
        torch.manual_seed(seed)
        model = VSE(enc.word_vectors, data.features.shape[1], hidden=hidden, margin=margin,
                    max_violation=max_violation).to(dev)
        t0 = time.perf_counter()
        history, selected = fit_and_select(model, sets, select=select, epochs=epochs, seed=seed, batch_size=batch_size,
                                           lr=lr, lr_step=lr_step, grad_clip=grad_clip, progress=progress,
                                           checkpoint=ckpt)
        train_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        ranks, recalls, n_queries = score_test_split(sets["test"], model)
        eval_seconds = time.perf_counter() - t0
        used_threads = torch.get_num_threads()
    out_dir = Path(out_dir)
    write_results(out_dir, ranks, recalls, n_queries)
    info = {
        "task": "image-sentence retrieval (PIXIE section 4.3, Table 6)",
        "hyperparameters": hyper,
        "inputs": {"vectors": str(vectors), "source": data.source,
                   **({"precomp": str(precomp)} if precomp is not None else
                      {"manifest": str(manifest), "features": str(features), "val_frac": val_frac,
                       "test_frac": test_frac, "split_seed": split_seed})},
        "word_dim": int(vecs.shape[1]), "vectors_vocab_size": len(words), "words_used": len(enc.words),
        "image_dim": int(data.features.shape[1]), "rows": rows,
        "tokens": {"total": enc.n_tokens, "out_of_vocabulary": enc.n_oov_tokens}, "splits": counts,
        "history": history, "selected_epoch": selected,
        "test": {d: {"recall": {str(k): v for k, v in recalls[d].items()}, "n_queries": n_queries[d]}
                 for d in DIRECTIONS},
        "test_rsum": rsum(recalls), "train_seconds": train_seconds, "eval_seconds": eval_seconds,
        "seconds": time.perf_counter() - t_start, "torch_version": torch.__version__, "device": str(dev),
        "threads": used_threads,
    }
    write_json(info, out_dir / "train.json")  # last: its presence marks a finished run
    if ckpt is not None:
        ckpt.remove()
    log.info("test R@1/5/10: i2s %s, s2i %s (R-sum %.1f); wrote %s",
             "/".join(f"{100 * recalls['i2s'][k]:.1f}" for k in KS),
             "/".join(f"{100 * recalls['s2i'][k]:.1f}" for k in KS), info["test_rsum"], out_dir)
    return info


def write_split(manifest, features_h5, out_tsv, *, val_frac: float = 0.1, test_frac: float = 0.1,
                split_seed: int = 0) -> pd.DataFrame:
    """The image split ``train`` uses (``image_id, split``), for stages that must keep the retrieval
    test images out of what they learn from (PIXIE's per-word visual features)."""
    data = from_manifest(manifest, features_h5, val_frac=val_frac, test_frac=test_frac, split_seed=split_seed)
    df = pd.DataFrame({"image_id": data.image_ids, "split": data.image_split})
    write_tsv(df, out_tsv)
    log.info("retrieval split -> %s: %s", out_tsv, df["split"].value_counts().to_dict())
    return df


#: the pixie.retrieval keys of the retrieval model's training
TRAIN_KEYS = ("hidden", "epochs", "lr", "lr_step", "margin", "batch_size")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m groundwords.studies.pixie.retrieval", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("split", help="write the manifest images' train/val/test split (image_id, split)")
    sp.add_argument("--manifest", required=True)
    sp.add_argument("--features", required=True)
    sp.add_argument("--val-frac", type=float, default=0.1)
    sp.add_argument("--test-frac", type=float, default=0.1)
    sp.add_argument("--split-seed", type=int, default=0)
    sp.add_argument("--out", required=True)
    t = sub.add_parser("train", help="train the retrieval model on frozen word vectors; report test R@K")
    t.add_argument("--vectors", required=True, help="word vectors (word2vec text, or a vectors.npy + vocab.txt dir)")
    t.add_argument("--out-dir", required=True)
    t.add_argument("--manifest", help="manifest TSV (id, caption, status); with --features")
    t.add_argument("--features", help="image encodings HDF5 (ids = image ids); with --manifest")
    t.add_argument("--precomp", help="VSE++ precomputed features directory ({train,dev,test}_ims.npy / _caps.txt)")
    t.add_argument("--val-frac", type=float, default=None, help="manifest: fraction of images for validation (0.1)")
    t.add_argument("--test-frac", type=float, default=None, help="manifest: fraction of images for test (0.1)")
    t.add_argument("--split-seed", type=int, default=None, help="manifest: seed of the image split (0)")
    add_config_argument(t, "pixie")  # {"retrieval": {...}, "seed": ..}; defaults: the schema's
    add_section_arguments(t, "pixie.retrieval", only=TRAIN_KEYS)
    t.add_argument("--max-violation", action="store_true", help="hardest negative only (VSE++ MH loss)")
    t.add_argument("--grad-clip", type=float, default=2.0, help="clip the gradient norm (VSE++ default; 0: off)")
    t.add_argument("--select", choices=SELECT, default="final",
                   help="report the last epoch (default) or the epoch with the best validation R-sum")
    add_section_arguments(t, "pixie", only=("seed", "threads", "device"))
    add_section_arguments(t, "training")  # --checkpoint-seconds
    t.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    a = p.parse_args(argv)
    if a.cmd == "split":
        setup_logging()
        write_split(a.manifest, a.features, a.out, val_frac=a.val_frac, test_frac=a.test_frac,
                    split_seed=a.split_seed)
        return
    if a.precomp is not None and any(v is not None for v in (a.manifest, a.features, a.val_frac, a.test_frac,
                                                               a.split_seed)):
        p.error("--precomp has its own splits: it excludes --manifest, --features, --val-frac, --test-frac, "
                "--split-seed")
    if a.precomp is None and (a.manifest is None or a.features is None):
        p.error("give --manifest and --features, or --precomp")
    setup_logging()
    s = stage_settings(a, "pixie", only=("retrieval", "seed", "threads", "device"))
    r = {k: s["retrieval"][k] for k in TRAIN_KEYS}
    train(a.vectors, a.out_dir, manifest=a.manifest, features=a.features, precomp=a.precomp,
          val_frac=0.1 if a.val_frac is None else a.val_frac, test_frac=0.1 if a.test_frac is None else a.test_frac,
          split_seed=0 if a.split_seed is None else a.split_seed, **r, max_violation=a.max_violation,
          grad_clip=a.grad_clip, select=a.select, seed=s["seed"], threads=s["threads"], device=s["device"],
          progress=not a.no_progress, checkpoint_seconds=training_settings(a)["checkpoint_seconds"])


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
