"""Tests of the PIXIE stage CLI (groundwords.studies.pixie.stage): per-word features and training. CPU, a few seconds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from gensim.models import KeyedVectors

from groundwords.cli import run_cli
from groundwords.files import read_features, write_features
from groundwords.studies.pixie.stage import main

VISUAL = ["cat", "dog", "car", "tree", "sun"]
TEXT_ONLY = ["the", "a", "runs", "is", "big"]


@pytest.fixture()
def data(tmp_path):
    rng = np.random.default_rng(0)
    # word-image table: every visual word has 2-3 images; "dog"/img1 listed twice, img9 has no encoding
    rows = [("cat", "img0", "train"), ("cat", "img1", "validation"), ("dog", "img1", "validation"),
            ("dog", "img2", "test"), ("dog", "img2", "test"), ("car", "img3", "train"), ("car", "img4", "train"),
            ("tree", "img5", "train"), ("tree", "img6", "test"), ("sun", "img7", "train"), ("sun", "img8", "train"),
            ("sun", "img9", "train")]
    table = pd.DataFrame([(w, i, f"images/{i}.jpg", s) for w, i, s in rows],
                         columns=["word", "image_id", "path", "split"])
    (tmp_path / "wi.tsv").write_text(table.to_csv(sep="\t", index=False, lineterminator="\n"))
    feats = rng.normal(size=(9, 6)).astype(np.float32)
    write_features(tmp_path / "img.h5", [f"img{i}" for i in range(9)], feats)
    # corpus: 200 sentences over visual and text-only words
    vocab = VISUAL + TEXT_ONLY
    sents = [" ".join(rng.choice(vocab, size=rng.integers(4, 9))) for _ in range(200)]
    (tmp_path / "corpus.txt").write_text("\n".join(sents) + "\n")
    counts = pd.Series(" ".join(sents).split()).value_counts()
    pd.DataFrame({"word": counts.index, "count": counts.values}).to_csv(
        tmp_path / "vocab.tsv", sep="\t", index=False, lineterminator="\n")
    return tmp_path, feats


def run(argv):
    return run_cli(main, [str(a) for a in argv])


def test_features_are_scaled_means(data):
    d, feats = data
    assert run(["features", "--word-images", d / "wi.tsv", "--features", d / "img.h5", "--out", d / "w.h5",
                "--scale", "none"]) == 0
    ids, x, _ = read_features(d / "w.h5")
    assert ids == sorted(VISUAL)
    expect = {"cat": feats[[0, 1]].mean(0), "dog": feats[[1, 2]].mean(0), "car": feats[[3, 4]].mean(0),
              "tree": feats[[5, 6]].mean(0), "sun": feats[[7, 8]].mean(0)}  # duplicate pair counted once
    for w, row in zip(ids, x):
        np.testing.assert_allclose(row, expect[w], rtol=1e-6, atol=1e-6)

    assert run(["features", "--word-images", d / "wi.tsv", "--features", d / "img.h5", "--out", d / "s.h5"]) == 0
    ids_s, s, attrs = read_features(d / "s.h5")
    assert ids_s == ids and s.min() >= 0 and s.max() <= 1
    np.testing.assert_allclose(s.min(0), 0, atol=1e-7)
    np.testing.assert_allclose(s.max(0), 1, atol=1e-6)
    lo, hi = np.array(json.loads(attrs["scale_min"])), np.array(json.loads(attrs["scale_max"]))
    assert attrs["scaling"] == "minmax"
    np.testing.assert_allclose(s * (hi - lo) + lo, x, atol=1e-5)
    import h5py
    with h5py.File(d / "s.h5") as f:
        assert f["counts"][()].tolist() == [2, 2, 2, 2, 2]  # car cat dog sun tree


def test_hide_withholds_seeded_words(data):
    d, _ = data
    outs = []
    for name in ("h1", "h2"):
        assert run(["features", "--word-images", d / "wi.tsv", "--features", d / "img.h5", "--out",
                    d / f"{name}.h5", "--hide", 2, "--seed", 3, "--hidden-out", d / f"{name}.txt"]) == 0
        hidden = (d / f"{name}.txt").read_text().splitlines()
        ids, _, attrs = read_features(d / f"{name}.h5")
        assert len(hidden) == 2 and set(hidden) <= set(VISUAL)
        assert sorted(ids + hidden) == sorted(VISUAL) and not set(ids) & set(hidden)
        assert attrs["n_hidden"] == 2
        outs.append(hidden)
    assert outs[0] == outs[1]  # same seed, same words
    # --hide needs --hidden-out and must leave at least one word visible
    assert run(["features", "--word-images", d / "wi.tsv", "--features", d / "img.h5", "--out", d / "x.h5",
                "--hide", 1]) == 2
    assert run(["features", "--word-images", d / "wi.tsv", "--features", d / "img.h5", "--out", d / "x.h5",
                "--hide", 5, "--hidden-out", d / "x.txt"]) == 2


def test_too_large_hide_names_the_config_key(data, capsys):
    d, _ = data
    assert run(["features", "--word-images", d / "wi.tsv", "--features", d / "img.h5", "--out", d / "x.h5",
                "--hide", 5, "--hidden-out", d / "x.txt"]) == 2
    err = capsys.readouterr().err
    assert "pixie.hide" in err and "Traceback" not in err


def test_train_writes_vectors(data):
    d, _ = data
    assert run(["features", "--word-images", d / "wi.tsv", "--features", d / "img.h5", "--out", d / "w.h5",
                "--hide", 1, "--hidden-out", d / "hidden.txt"]) == 0
    hidden = (d / "hidden.txt").read_text().split()
    out = d / "model"
    assert run(["train", "--corpus", d / "corpus.txt", "--vocab", d / "vocab.tsv", "--visual", d / "w.h5",
                "--out-dir", out, "--dim", 8, "--hidden", 16, "--epochs", 2, "--batch-size", 64,
                "--window", 3, "--no-progress"]) == 0
    for name in ("vectors.txt", "concat_vectors.txt", "loss.csv", "train.json", "vectors.npy", "vocab.txt"):
        assert (out / name).is_file(), name
    plus = KeyedVectors.load_word2vec_format(str(out / "vectors.txt"))
    concat = KeyedVectors.load_word2vec_format(str(out / "concat_vectors.txt"))
    vocab = VISUAL + TEXT_ONLY
    assert plus.vector_size == 8 and concat.vector_size == 16 and set(plus.index_to_key) == set(vocab)
    for w in vocab:
        visual_half = concat[w][8:]
        if w in TEXT_ONLY or w in hidden:  # no features: zero visual half, PIXIE+ = e_w
            assert not visual_half.any(), w
        else:
            assert np.abs(visual_half).sum() > 0, w
        np.testing.assert_allclose(plus[w], concat[w][:8] + visual_half, rtol=1e-5, atol=1e-6)
    loss = pd.read_csv(out / "loss.csv")
    assert len(loss) == 2 and np.isfinite(loss["total"]).all()
    info = json.loads((out / "train.json").read_text())
    assert info["model"] == "pixie" and info["n_visual_words"] == 4 and info["hyperparameters"]["lr"] == 1e-3
    assert "kl" in info["history"][0] and "nll_x" in info["history"][0]


def test_bad_inputs_exit_2(data, capsys):
    d, _ = data
    base = ["train", "--corpus", d / "corpus.txt", "--vocab", d / "vocab.tsv", "--out-dir", d / "m",
            "--dim", 4, "--hidden", 8, "--epochs", 1, "--no-progress"]
    assert run(base + ["--visual", d / "missing.h5"]) == 2
    assert "not found" in capsys.readouterr().err
    write_features(d / "other.h5", ["zebra", "moon"], np.full((2, 3), 0.5, np.float32))
    assert run(base + ["--visual", d / "other.h5"]) == 2
    assert "is in the vocabulary" in capsys.readouterr().err
    assert run(["features", "--word-images", d / "nope.tsv", "--features", d / "img.h5", "--out", d / "x.h5"]) == 2
    assert "not found" in capsys.readouterr().err
    write_features(d / "img_other.h5", ["zzz"], np.zeros((1, 6), np.float32))
    assert run(["features", "--word-images", d / "wi.tsv", "--features", d / "img_other.h5",
                "--out", d / "x.h5"]) == 2
    assert "no word" in capsys.readouterr().err
    assert not (d / "m" / "train.json").exists()


def test_features_vocab_restricts_words_before_hiding(data):
    d, _ = data
    pd.DataFrame({"word": ["cat", "dog", "tree", "the"], "count": [5, 4, 3, 9]}).to_csv(
        d / "small_vocab.tsv", sep="\t", index=False, lineterminator="\n")
    assert run(["features", "--word-images", d / "wi.tsv", "--features", d / "img.h5", "--out", d / "v.h5",
                "--vocab", d / "small_vocab.tsv", "--hide", 1, "--hidden-out", d / "v.txt"]) == 0
    ids, _, attrs = read_features(d / "v.h5")
    hidden = (d / "v.txt").read_text().split()
    assert sorted(ids + hidden) == ["cat", "dog", "tree"]  # car and sun are not in the vocabulary
    assert attrs["n_words_with_images"] == 5
    pd.DataFrame({"word": ["the"], "count": [9]}).to_csv(d / "no_visual.tsv", sep="\t", index=False)
    assert run(["features", "--word-images", d / "wi.tsv", "--features", d / "img.h5", "--out", d / "x.h5",
                "--vocab", d / "no_visual.tsv"]) == 2


def test_train_without_visual_is_the_sgns_baseline(data):
    """No --visual: the SGNS model on the same pairs, optimiser and seed; PIXIE's text-only words match it."""
    d, _ = data
    common = ["--corpus", d / "corpus.txt", "--vocab", d / "vocab.tsv", "--dim", 8, "--epochs", 1,
              "--batch-size", 64, "--window", 3, "--negatives", 5, "--no-progress"]
    assert run(["train", *common, "--out-dir", d / "sgns"]) == 0
    assert run(["train", *common, "--out-dir", d / "sgns2"]) == 0
    info = json.loads((d / "sgns" / "train.json").read_text())
    assert info["model"] == "sgns" and not (d / "sgns" / "concat_vectors.txt").exists()
    assert (d / "sgns" / "vectors.txt").read_bytes() == (d / "sgns2" / "vectors.txt").read_bytes()
    import torch

    from groundwords.models.sgns import SGNS
    from groundwords.text.corpora import corpus_ids
    from groundwords.text.skipgram import keep_probabilities, skipgram_pairs
    from groundwords.training import fit, torch_settings
    vocab = pd.read_csv(d / "vocab.tsv", sep="\t")
    words, counts = vocab["word"].tolist(), vocab["count"].to_numpy(float)
    enc = corpus_ids(d / "corpus.txt", words)
    c, x = skipgram_pairs(enc.tokens, enc.offsets, 3, keep_prob=keep_probabilities(counts, 1e-3), rng=0)
    with torch_settings(1):
        torch.manual_seed(0)
        model = SGNS(len(words), 8, counts=counts, negatives=5, seed=0)
        fit(model, {"centre": torch.from_numpy(c), "context": torch.from_numpy(x)}, epochs=1, batch_size=64,
            lr=1e-3, optimizer="adam", seed=0, progress=False, manual_grads=True)  # the stage's gradients
    np.testing.assert_array_equal(np.load(d / "sgns" / "vectors.npy"), model.word_vectors().numpy())


def test_features_exclude_the_retrieval_held_out_images(data):
    d, feats = data
    (d / "split.tsv").write_text("image_id\tsplit\nimg0\ttest\nimg2\tval\nimg1\ttrain\nimg5\ttest\nimg6\ttest\n")
    assert run(["features", "--word-images", d / "wi.tsv", "--features", d / "img.h5", "--out", d / "e.h5",
                "--scale", "none", "--exclude-split", d / "split.tsv"]) == 0
    ids, x, attrs = read_features(d / "e.h5")
    assert ids == ["car", "cat", "dog", "sun"]  # tree's two images are both held out
    np.testing.assert_allclose(x[ids.index("cat")], feats[1], rtol=1e-6)  # img0 (test) left out
    np.testing.assert_allclose(x[ids.index("dog")], feats[1], rtol=1e-6)  # img2 (val) left out
    assert attrs["n_excluded_images"] == 4
    (d / "bad.tsv").write_text("id\tsplit\nimg0\ttest\n")
    assert run(["features", "--word-images", d / "wi.tsv", "--features", d / "img.h5", "--out", d / "x.h5",
                "--exclude-split", d / "bad.tsv"]) == 2
