"""PCA stage: reduce the raw image encodings of one subset to ``pca.dim`` dimensions.

WIELD projects the 768-d ViT encodings to 32 dimensions with PCA fitted on the training
subset's images. :func:`fit_pca` fits scikit-learn's ``PCA(n_components=dim,
random_state=seed)`` (no whitening; in float64) on the features whose ids occur in ``--ids``
(e.g. the subset's ``captions.tsv``; rows with a ``status`` other than ``ok`` are ignored when
that column exists), or on every feature when no ids table is given.

Outputs: ``--out-model`` (npz: ``components`` dim x D, ``mean``, ``explained_variance``,
``explained_variance_ratio``, ``singular_values``, ``dim``, ``n_samples``, ``seed``, ``model``,
``pooling``, ``source_attrs`` (JSON of the feature file's attributes)) and ``--out`` (HDF5 feature
file: the projections of the fitted ids, in the order of the features file; attributes of the
source plus ``dim``, ``source_dim``, ``n_samples``, ``seed``, ``explained_variance_ratio_sum``).
"""

from __future__ import annotations

import argparse
import json
import logging

import h5py
import numpy as np
from sklearn.decomposition import PCA

from groundwords.cli import UserError, run_cli, setup_logging
from groundwords.config import add_config_argument, add_section_arguments, stage_settings
from groundwords.files import atomic_path, read_tsv, write_features

log = logging.getLogger("groundwords.data.pca")

BLOCK_ROWS = 65536  # rows read from the features file at a time


def _attr(v):
    if isinstance(v, bytes):
        return v.decode()
    return v.item() if hasattr(v, "item") and np.ndim(v) == 0 else v


def read_selected(features_h5, keep: set[str] | None) -> tuple[list[str], np.ndarray, dict]:
    """``(ids, features as float64, attrs)`` of the rows whose id is in ``keep`` (all if None),
    in file order. Reads block by block, so only the selected rows are held in memory."""
    with h5py.File(features_h5, "r") as f:
        ids = [x.decode() if isinstance(x, bytes) else str(x) for x in f["ids"][()]]
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
        mask = np.ones(len(ids), bool) if keep is None else np.fromiter((i in keep for i in ids), bool, len(ids))
        ds = f["features"]
        rows = [ds[s:s + BLOCK_ROWS][mask[s:s + BLOCK_ROWS]].astype(np.float64)
                for s in range(0, len(ids), BLOCK_ROWS)]
        x = np.concatenate(rows) if rows else np.zeros((0, ds.shape[1]))
    return [i for i, m in zip(ids, mask) if m], x, attrs


def read_ids(ids_tsv) -> set[str]:
    """Ids of a TSV with an ``id`` column (only rows with status ``ok`` if it has ``status``)."""
    df = read_tsv(ids_tsv, dtype={"id": str, "status": str})
    if "id" not in df.columns:
        raise UserError(f"{ids_tsv}: no 'id' column")
    if "status" in df.columns:
        df = df[df["status"] == "ok"]
    return set(df["id"])


def fit_pca(features_h5, out_model_npz, out_h5, *, dim: int, ids_tsv=None, seed: int) -> dict:
    """Fit PCA on (the ``ids_tsv`` subset of) ``features_h5``; save the model and projections.

    Returns a summary: ``n_samples``, ``source_dim``, ``dim``, ``explained_variance_ratio_sum``.
    """
    keep = read_ids(ids_tsv) if ids_tsv is not None else None
    ids, x, attrs = read_selected(features_h5, keep)
    n, d = x.shape
    if keep is not None:
        log.info("%d of the %d ids in %s have features in %s", n, len(keep), ids_tsv, features_h5)
    if n == 0:
        raise UserError(f"no features to fit the PCA on: none of the ids in {ids_tsv} occur in "
                        f"{features_h5}" if keep is not None else f"{features_h5} holds no features")
    if dim < 1 or dim > min(n, d):
        raise UserError(f"pca.dim = {dim} must be between 1 and min(n_samples, n_features) = "
                        f"min({n}, {d}) = {min(n, d)}: lower pca.dim or use more images")

    pca = PCA(n_components=dim, random_state=seed).fit(x)
    projected = pca.transform(x).astype(np.float32)
    ratio_sum = float(pca.explained_variance_ratio_.sum())

    source = {k: attrs.get(k, "") for k in ("model", "pooling")}
    with atomic_path(out_model_npz, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, components=pca.components_, mean=pca.mean_,
                     explained_variance=pca.explained_variance_,
                     explained_variance_ratio=pca.explained_variance_ratio_,
                     singular_values=pca.singular_values_, dim=np.int64(dim),
                     n_samples=np.int64(n), seed=np.int64(seed),
                     model=np.str_(source["model"]), pooling=np.str_(source["pooling"]),
                     source_attrs=np.str_(json.dumps(attrs, sort_keys=True, default=str)))
    out_attrs = {**attrs, "dim": dim, "source_dim": d, "n_samples": n, "seed": seed,
                 "explained_variance_ratio_sum": ratio_sum}
    write_features(out_h5, ids, projected, attrs=out_attrs)

    head = ", ".join(f"{r:.3f}" for r in pca.explained_variance_ratio_[:5])
    log.info("PCA %d -> %d on %d images: explained variance %.1f%% (first components: %s%s)",
             d, dim, n, 100 * ratio_sum, head, ", ..." if dim > 5 else "")
    return {"n_samples": n, "source_dim": d, "dim": dim, "explained_variance_ratio_sum": ratio_sum}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m groundwords.data.pca", description=__doc__.split("\n")[0])
    p.add_argument("--features", required=True, help="HDF5 feature file (the raw encodings)")
    p.add_argument("--ids", default=None, help="TSV with an 'id' column: fit on these images only")
    p.add_argument("--out-model", required=True, help="npz with the fitted PCA")
    p.add_argument("--out", required=True, help="HDF5 feature file of the projections")
    add_config_argument(p, "pca")
    add_section_arguments(p, "pca")  # --dim, --seed: defaults from the schema
    a = p.parse_args(argv)
    setup_logging()
    s = stage_settings(a, "pca")
    fit_pca(a.features, a.out_model, a.out, **s, ids_tsv=a.ids)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
