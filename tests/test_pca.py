"""Tests of groundwords.data.pca: projections equal scikit-learn's, model file, subset, errors, CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA

from groundwords.cli import UserError, run_cli
from groundwords.data import pca as pca_stage
from groundwords.files import read_features, write_features


@pytest.fixture
def features(tmp_path):
    """60 x 24 features with a few strong directions, as the encode stage would write them."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 6)) @ rng.normal(size=(6, 24)) * 3 + rng.normal(size=(60, 24)) * 0.1
    ids = [f"{i:016x}" for i in range(60)]
    path = tmp_path / "encodings.h5"
    write_features(path, ids, x.astype(np.float32),
                   attrs={"model": "efficientnet-lite0", "pooling": "mean", "dim": 24, "image_size": 224})
    return path, ids, x.astype(np.float32)


def test_projection_equals_sklearn(features, tmp_path):
    path, ids, x = features
    # subset table: every other id, one not-ok row, one id without features, one duplicate
    rows = [{"id": i, "status": "ok"} for i in ids[::2]]
    rows += [{"id": ids[1], "status": "http_404"}, {"id": "ffffffffffffffff", "status": "ok"},
             {"id": ids[0], "status": "ok"}]
    tsv = tmp_path / "captions.tsv"
    pd.DataFrame(rows).to_csv(tsv, sep="\t", index=False)

    out_npz, out_h5 = tmp_path / "pca.npz", tmp_path / "encodings_pca.h5"
    summary = pca_stage.fit_pca(path, out_npz, out_h5, dim=5, ids_tsv=tsv, seed=3)

    sub = x[::2].astype(np.float64)
    ref = PCA(n_components=5, random_state=3).fit(sub)
    got_ids, proj, attrs = read_features(out_h5)
    assert got_ids == ids[::2]
    assert proj.shape == (30, 5) and proj.dtype == np.float32
    np.testing.assert_allclose(proj, ref.transform(sub), rtol=1e-5, atol=1e-5)

    m = np.load(out_npz)
    np.testing.assert_allclose(m["components"], ref.components_, atol=1e-10)
    np.testing.assert_allclose(m["mean"], ref.mean_)
    np.testing.assert_allclose(m["explained_variance"], ref.explained_variance_)
    np.testing.assert_allclose(m["explained_variance_ratio"], ref.explained_variance_ratio_)
    assert int(m["dim"]) == 5 and int(m["n_samples"]) == 30
    assert str(m["model"]) == "efficientnet-lite0" and str(m["pooling"]) == "mean"
    # the saved model reproduces the projection
    np.testing.assert_allclose((sub - m["mean"]) @ m["components"].T, proj, atol=1e-4)

    ratio = float(ref.explained_variance_ratio_.sum())
    assert attrs["explained_variance_ratio_sum"] == pytest.approx(ratio)
    assert summary["explained_variance_ratio_sum"] == pytest.approx(ratio) and ratio > 0.8
    assert attrs["model"] == "efficientnet-lite0" and attrs["pooling"] == "mean"
    assert attrs["dim"] == 5 and attrs["source_dim"] == 24 and attrs["n_samples"] == 30


def test_all_ids_when_no_table(features, tmp_path):
    path, ids, x = features
    pca_stage.fit_pca(path, tmp_path / "p.npz", tmp_path / "p.h5", dim=24, seed=0)
    got_ids, proj, _ = read_features(tmp_path / "p.h5")
    assert got_ids == ids
    ref = PCA(n_components=24, random_state=0).fit_transform(x.astype(np.float64))
    np.testing.assert_allclose(proj, ref, rtol=1e-4, atol=1e-4)


def test_dim_too_large(features, tmp_path):
    path, ids, _ = features
    with pytest.raises(UserError, match=r"pca\.dim = 25.*min\(60, 24\)"):
        pca_stage.fit_pca(path, tmp_path / "p.npz", tmp_path / "p.h5", dim=25, seed=0)
    tsv = tmp_path / "ids.tsv"
    pd.DataFrame({"id": ids[:4]}).to_csv(tsv, sep="\t", index=False)
    with pytest.raises(UserError, match=r"pca\.dim = 5.*min\(4, 24\)"):
        pca_stage.fit_pca(path, tmp_path / "p.npz", tmp_path / "p.h5", dim=5, ids_tsv=tsv, seed=0)
    assert not (tmp_path / "p.npz").exists() and not (tmp_path / "p.h5").exists()


def test_no_matching_ids(features, tmp_path):
    path, _, _ = features
    tsv = tmp_path / "ids.tsv"
    tsv.write_text("id\nnothere\n")
    with pytest.raises(UserError, match="none of the ids"):
        pca_stage.fit_pca(path, tmp_path / "p.npz", tmp_path / "p.h5", dim=2, ids_tsv=tsv, seed=0)


def test_cli(features, tmp_path):
    path, ids, _ = features
    tsv = tmp_path / "ids.tsv"
    pd.DataFrame({"id": ids[:20], "status": "ok"}).to_csv(tsv, sep="\t", index=False)
    args = ["--features", str(path), "--ids", str(tsv), "--dim", "3",
            "--out-model", str(tmp_path / "p.npz"), "--out", str(tmp_path / "p.h5"), "--seed", "0"]
    assert run_cli(pca_stage.main, args) == 0
    assert read_features(tmp_path / "p.h5")[1].shape == (20, 3)
    assert run_cli(pca_stage.main, args[:5] + ["99"] + args[6:]) == 2
