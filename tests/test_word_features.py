"""Per-word averaged image encodings on hand-checked toy data."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from groundwords.cli import UserError, run_cli
from groundwords.files import read_features, write_features, write_tsv
from groundwords.grounding.word_features import incidence_matrix, main, mean_features, word_image_features


def _toy(tmp_path):
    # images:         i1=(1,0)  i2=(0,2)  i3=(4,4)  i4=(9,9) (no ok caption)   i5 not encoded
    write_features(tmp_path / "enc.h5", ["i1", "i2", "i3", "i4"],
                   np.array([[1, 0], [0, 2], [4, 4], [9, 9]], dtype=np.float32),
                   attrs={"model": "toy-vit", "pooling": "cls", "dim": 2})
    caps = pd.DataFrame({
        "rank": range(6), "row": range(6),
        "id": ["i1", "i2", "i3", "i1", "i4", "i5"],
        "caption": ["A dog, a dog and a cat.",   # i1: dog (twice in one caption), cat
                    "the cat sleeps",             # i2: cat
                    "Dog on grass",               # i3: dog
                    "dog running",                # i1 again: dog must still count once for i1
                    "dog bird",                   # i4: status not ok -> ignored
                    "bird dog"],                  # i5: no encoding -> ignored
        "status": ["ok", "ok", "ok", "ok", "empty_caption", "ok"],
        "path": [""] * 6,
    })
    write_tsv(caps, tmp_path / "captions.tsv")
    write_tsv(pd.DataFrame({"word": ["dog", "cat", "bird", "a"], "count": [5, 2, 2, 3]}), tmp_path / "vocab.tsv")


def test_hand_checked_means(tmp_path):
    _toy(tmp_path)
    summary = word_image_features(tmp_path / "captions.tsv", tmp_path / "enc.h5", tmp_path / "vocab.tsv",
                                  tmp_path / "word_images.h5")
    words, feats, attrs = read_features(tmp_path / "word_images.h5")
    # bird: only in the ignored captions -> not written; vocabulary order kept
    assert words == ["dog", "cat", "a"]
    # dog: images i1, i3 -> ((1,0)+(4,4))/2 ; cat: i1, i2 -> ((1,0)+(0,2))/2 ; a: i1
    np.testing.assert_allclose(feats, [[2.5, 2.0], [0.5, 1.0], [1.0, 0.0]])
    assert feats.dtype == np.float32
    with h5py.File(tmp_path / "word_images.h5") as f:
        assert f["counts"][()].tolist() == [2, 2, 1]
    assert attrs["kind"] == "word_mean_image"
    assert attrs["model"] == "toy-vit" and attrs["pooling"] == "cls" and attrs["dim"] == 2
    assert summary["words"] == 3 and summary["images"] == 3 and summary["captions"] == 4


def test_incidence_and_means_vectorised():
    m = incidence_matrix(["x y x", "y", "z x"], np.array([0, 1, 0]), ["x", "y", "w"])
    assert m.toarray().tolist() == [[1, 0], [1, 1], [0, 0]]
    rows, means, counts = mean_features(m, np.array([[2.0, 4.0], [0.0, 0.0]]))
    assert rows.tolist() == [0, 1] and counts.tolist() == [1, 2]
    np.testing.assert_allclose(means, [[2, 4], [1, 2]])


def test_matches_a_loop_on_random_data(tmp_path):
    rng = np.random.default_rng(0)
    n_img, lex = 40, [f"w{i}" for i in range(12)]
    ids = [f"{i:04x}" for i in range(n_img)]
    feats = rng.normal(size=(n_img, 5)).astype(np.float32)
    write_features(tmp_path / "enc.h5", ids, feats)
    cap_ids = rng.choice(ids, 120).tolist()
    caps = [" ".join(rng.choice(lex, rng.integers(1, 6))) for _ in cap_ids]
    write_tsv(pd.DataFrame({"id": cap_ids, "caption": caps, "status": "ok"}), tmp_path / "c.tsv")
    write_tsv(pd.DataFrame({"word": lex, "count": 1}), tmp_path / "v.tsv")
    assert run_cli(main, ["--captions", str(tmp_path / "c.tsv"), "--features", str(tmp_path / "enc.h5"),
                          "--vocab", str(tmp_path / "v.tsv"), "--out", str(tmp_path / "o.h5")]) == 0
    words, got, _ = read_features(tmp_path / "o.h5")
    for w, g in zip(words, got):
        imgs = sorted({i for i, c in zip(cap_ids, caps) if w in c.split()})
        np.testing.assert_allclose(g, feats[[ids.index(i) for i in imgs]].mean(0), rtol=1e-5, atol=1e-6)


def test_errors(tmp_path):
    _toy(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        word_image_features(tmp_path / "nope.tsv", tmp_path / "enc.h5", tmp_path / "vocab.tsv", tmp_path / "o.h5")
    write_features(tmp_path / "other.h5", ["zz"], np.zeros((1, 2)))
    with pytest.raises(UserError, match="no ok caption"):
        word_image_features(tmp_path / "captions.tsv", tmp_path / "other.h5", tmp_path / "vocab.tsv", tmp_path / "o.h5")
    assert not (tmp_path / "o.h5").exists()


def _old_word_means(table, image_ids, feats):  # PIXIE's former copy, for the pin below
    pairs = table[["word", "image_id"]].astype(str).drop_duplicates()
    rows = pd.Index(image_ids).get_indexer(pairs["image_id"])
    pairs = pairs[rows >= 0].assign(row=rows[rows >= 0])
    codes, words = pd.factorize(pairs["word"], sort=True)
    sums = np.zeros((len(words), feats.shape[1]), np.float64)
    np.add.at(sums, codes, feats[pairs["row"].to_numpy()].astype(np.float64))
    counts = np.bincount(codes, minlength=len(words))
    return list(words), (sums / counts[:, None]).astype(np.float32), counts.astype(np.int64)


def test_pair_means_match_pixies_former_copy_bit_for_bit():
    from groundwords.grounding.word_features import pair_means

    rng = np.random.default_rng(0)
    image_ids = [f"im{i}" for i in rng.permutation(300)]
    feats = (rng.normal(size=(300, 7)) * 10 ** rng.uniform(-3, 3, size=(300, 1))).astype(np.float32)
    table = pd.DataFrame({"word": rng.choice([f"w{j}" for j in range(40)], 2000),
                          "image_id": rng.choice(image_ids + ["nofeat1", "nofeat2"], 2000)})
    got = pair_means(table, image_ids, feats)
    old = _old_word_means(table, image_ids, feats)
    assert got[0] == old[0] and got[1].tobytes() == old[1].tobytes() and got[2].tobytes() == old[2].tobytes()
    assert got[2].min() > 3  # sums of many terms, images unsorted within a word
    empty = pair_means(table.iloc[:0], image_ids, feats)
    assert empty[0] == [] and empty[1].shape == (0, 7) and empty[2].dtype == np.int64
