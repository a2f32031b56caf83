"""The shared tail of the training stages: a diverged run writes nothing; a finished one writes train.json last."""

from __future__ import annotations

import json

import numpy as np
import pytest

from groundwords.cli import UserError
from groundwords.training import check_finite, finish_run


def test_check_finite_names_the_model_and_the_flag():
    check_finite("X", np.ones(3), np.zeros((2, 2)))
    with pytest.raises(UserError, match=r"SGNS diverged: .* \(lower --alpha\)"):
        check_finite("SGNS", np.ones(3), np.array([1.0, np.inf]), lower="--alpha")


def test_finish_run_writes_nothing_when_diverged(tmp_path):
    with pytest.raises(UserError, match="VAE diverged"):
        finish_run(tmp_path / "out", ["a"], np.array([[np.nan]], np.float32), [], {}, model="VAE")
    assert not (tmp_path / "out").exists()
    info = finish_run(tmp_path / "ok", ["a", "b"], np.eye(2, dtype=np.float32), [{"epoch": 1, "total": 0.5}],
                      {"model": "m"}, model="M")
    assert info == {"model": "m"} and json.loads((tmp_path / "ok" / "train.json").read_text()) == info
    assert (tmp_path / "ok" / "vectors.txt").read_text().splitlines()[0] == "2 2"


def test_vectors_npy_reads_as_the_text(tmp_path):
    """The tables read a stage's vectors.npy (+ vocab.txt) instead of its text: the same words and
    float32 values, bit for bit (odd words and tiny/huge magnitudes included)."""
    from groundwords.evaluation.similarity import load_vectors

    rng = np.random.default_rng(0)
    vectors = (rng.standard_normal((50, 7)) * 10.0 ** rng.integers(-30, 30, (50, 7))).astype(np.float32)
    words = [f"w{i}" for i in range(48)] + ["naïve", "x-ray"]
    finish_run(tmp_path, words, vectors, [{"epoch": 1, "total": 0.5}], {"model": "m"}, model="M")
    w_txt, v_txt = load_vectors(tmp_path / "vectors.txt")
    w_npy, v_npy = load_vectors(tmp_path / "vectors.npy")
    assert w_txt == w_npy == words
    assert v_txt.dtype == v_npy.dtype == np.float32 and v_txt.tobytes() == v_npy.tobytes()
