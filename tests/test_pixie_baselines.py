"""Tests of the PIXIE paper's baselines: V-SGNS, IV-SGNS, VAE, CNN, concatenation (models + stage CLI). CPU, seconds."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from groundwords.cli import run_cli
from groundwords.evaluation.similarity import load_vectors
from groundwords.files import read_features, write_features
from groundwords.models.ivsgns import Imagination
from groundwords.models.sgns import SGNS
from groundwords.models.vsgns import VSGNS
from groundwords.studies.pixie.baselines import main
from groundwords.studies.pixie.vsgns import occurrence_pairs
from groundwords.studies.pixie.imagination import fit_imagination, fit_quality, imagined_vectors
from groundwords.text.skipgram import keep_probabilities, skipgram_pairs
from groundwords.training import fit, torch_settings, write_word2vec_text

V, DIM = 20, 8


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as the stages use: tiny models run many times slower on two busy cores."""
    with torch_settings(1):
        yield


def _pairs(seed=0):
    """Pairs of a tiny corpus where word i's neighbours are i ± 1, ± 2 (mod the sentence)."""
    tokens = np.tile(np.arange(V), 30)
    offsets = np.arange(0, len(tokens) + 1, 10)
    counts = np.bincount(tokens, minlength=V).astype(float)
    c, x, w = occurrence_pairs(tokens, offsets, 2, None, seed)
    return counts, {"centre": torch.from_numpy(c), "context": torch.from_numpy(x), "weight": torch.from_numpy(w)}


def _features(k=6, seed=1):
    return torch.randn(V, k, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------
# V-SGNS model


@pytest.mark.parametrize("absent", ["weight_zero", "no_visual_words"])
@pytest.mark.parametrize("optimizer,sparse", [("sgd", True), ("adam", False)])
def test_vsgns_without_visual_term_is_bit_identical_to_sgns(absent, optimizer, sparse):
    counts, data = _pairs()
    feats, mask, weight = _features(), torch.arange(V) % 2 == 0, 0.0
    if absent == "no_visual_words":
        mask, weight = torch.zeros(V, dtype=torch.bool), 1.0
    kw = dict(epochs=3, batch_size=64, lr=0.5 if optimizer == "sgd" else 1e-2, optimizer=optimizer,
              seed=3, progress=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        sg = SGNS(V, DIM, counts=counts, negatives=3, sparse=sparse, seed=7)
        h_sg = fit(sg, data, **kw)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        vs = VSGNS(V, DIM, counts=counts, visual_features=feats, has_visual=mask, negatives=3,
                   visual_negatives=4, visual_weight=weight, sparse=sparse, seed=7)
        m0 = vs.map.weight.detach().clone()
        h_vs = fit(vs, data, **kw)
    assert torch.equal(vs.emb.weight, sg.emb.weight)
    assert torch.equal(vs.out.weight, sg.out.weight)
    assert torch.equal(vs.word_vectors(), sg.word_vectors())
    assert [h["total"] for h in h_vs] == [h["total"] for h in h_sg] == [h["ce"] for h in h_vs]
    if absent == "weight_zero":  # the margin term was computed (and is positive), just weighted 0
        assert all(h["margin"] > 0 for h in h_vs)
        assert torch.equal(vs.map.weight, m0)


def test_vsgns_learns_to_align_mapped_words_with_their_features():
    counts, data = _pairs()
    feats, mask = _features(), torch.arange(V) % 2 == 0
    torch.manual_seed(0)
    vs = VSGNS(V, DIM, counts=counts, visual_features=feats, has_visual=mask, negatives=3, margin=0.5,
               visual_negatives=5, seed=0)
    before = vs.alignment()
    assert abs(before["cos_match"] - before["cos_mismatch"]) < 0.3  # random M: no alignment yet
    hist = fit(vs, data, epochs=15, batch_size=64, lr=1e-2, optimizer="adam", progress=False)
    after = vs.alignment()
    assert all(math.isfinite(h[k]) for h in hist for k in ("total", "ce", "margin"))
    assert hist[-1]["total"] < hist[0]["total"] and hist[-1]["margin"] < 0.5 * hist[0]["margin"]
    assert hist[-1]["ce"] < hist[0]["ce"]  # the text part still trains
    assert after["cos_match"] > before["cos_match"] + 0.3
    assert after["cos_match"] > after["cos_mismatch"] + 0.5  # the margin γ is met on average
    with torch.no_grad():  # and per word: cos(M e_w, v_w) beats every mismatched cos(M e_w, v_w')
        words = mask.nonzero().squeeze(1)
        h = torch.nn.functional.normalize(vs.map(vs.emb.weight[words]), dim=1)
        cos = h @ torch.nn.functional.normalize(feats[words], dim=1).T
    assert (cos.argmax(1) == torch.arange(len(words))).all()


def test_vsgns_contrastive_words_are_the_other_visual_words():
    counts, _ = _pairs()
    vs = VSGNS(V, DIM, counts=counts, visual_features=_features(), has_visual=torch.arange(V) < 4,
               visual_negatives=200, seed=0)
    rank = torch.tensor([0, 1, 2, 3])
    neg = vs.contrastive(rank)
    assert neg.shape == (4, 200) and not (neg == rank[:, None]).any()
    assert all(set(neg[i].tolist()) == set(range(4)) - {i} for i in range(4))
    with pytest.raises(ValueError, match="at least 2"):
        VSGNS(V, DIM, counts=counts, visual_features=_features(), has_visual=torch.arange(V) == 0)
    with pytest.raises(ValueError, match="identity"):
        VSGNS(V, DIM, counts=counts, visual_features=_features(k=6), visual_map="identity")
    ident = VSGNS(V, DIM, counts=counts, visual_features=_features(k=DIM), visual_map="identity")
    assert not list(ident.map.parameters())  # model A: e_w itself against v_w


def test_occurrence_pairs_are_skipgram_pairs_with_one_unit_per_occurrence():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 12, 500)
    offsets = np.array([0, 1, 40, 41, 200, 500])  # two 1-token sentences: no pairs
    keep = keep_probabilities(np.bincount(tokens, minlength=12), 0.05)
    c, x, w = occurrence_pairs(tokens, offsets, 4, keep, seed=5)
    c2, x2 = skipgram_pairs(tokens, offsets, 4, keep_prob=keep, rng=5)
    assert np.array_equal(c, c2) and np.array_equal(x, x2)
    c, x, w = occurrence_pairs(tokens, offsets, 4, None, seed=5)
    assert w.sum() == pytest.approx(500 - 2, rel=1e-5)  # every token of a sentence of >= 2 tokens
    assert ((w > 0) & (w <= 1)).all() and w.min() == pytest.approx(1 / 8)


# ---------------------------------------------------------------------------------------------
# IV-SGNS model


def _regression(target, n=200, d=8, k=5, seed=0):
    """(x, y) with y = g(x A): g linear (+ bias) or even in x (no linear map explains any of it)."""
    a = torch.randn(d, k, generator=torch.Generator().manual_seed(99)) / math.sqrt(d)
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    y = x @ a + torch.linspace(-1, 1, k) if target == "linear" else (x @ a).pow(2) - 1
    return x, y


FIT = dict(epochs=60, lr=3e-2, batch_size=50, seed=0)


def test_ivsgns_linear_map_recovers_a_linear_target():
    x, y = _regression("linear")
    f, hist = fit_imagination(x, y, mapping="linear", **FIT)
    # solved exactly: the least-squares optimum, one record
    assert fit_quality(f, x, y)["r2"] > 0.99 and len(hist) == 1 and hist[0]["solver"] == "lstsq"
    X = np.hstack([x, np.ones((len(x), 1))])
    ref = np.linalg.lstsq(X, y, rcond=None)[0]
    np.testing.assert_allclose(f.net.weight.detach().numpy(), ref[:-1].T, atol=1e-4)
    assert fit_quality(f, *_regression("linear", seed=1))["r2"] > 0.99  # held-out words
    assert isinstance(f.net, torch.nn.Linear) and f.net.bias is not None


def test_ivsgns_nonlinear_map_beats_linear_on_a_nonlinear_target():
    x, y = _regression("quadratic", n=400)
    held_out = _regression("quadratic", n=500, seed=1)
    lin, _ = fit_imagination(x, y, mapping="linear", **FIT)
    mlp, _ = fit_imagination(x, y, mapping="nonlinear", hidden=64, **FIT)
    r_lin, r_mlp = fit_quality(lin, *held_out)["r2"], fit_quality(mlp, *held_out)["r2"]
    assert r_lin < 0.2 and r_mlp > 0.85, (r_lin, r_mlp)


def test_ivsgns_seeded_init_and_concatenation():
    a, b = Imagination(4, 3, "nonlinear", 7, seed=2), Imagination(4, 3, "nonlinear", 7, seed=2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(ValueError):
        Imagination(4, 3, "cubic")
    text = torch.randn(6, 4) * 5
    out = imagined_vectors(a, text)
    assert out.shape == (6, 7)
    np.testing.assert_allclose(np.linalg.norm(out[:, :4], axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out[:, 4:], axis=1), 1, rtol=1e-5)
    raw = imagined_vectors(a, text, normalize=False)
    np.testing.assert_allclose(raw[:, :4], text.numpy())
    np.testing.assert_allclose(raw[:, 4:], a(text).detach().numpy(), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Stage CLI

VISUAL = ["cat", "dog", "car", "tree", "sun"]
TEXT_ONLY = ["the", "a", "runs", "is", "big"]


@pytest.fixture()
def data(tmp_path):
    rng = np.random.default_rng(0)
    vocab = VISUAL + TEXT_ONLY
    sents = [" ".join(rng.choice(vocab, size=rng.integers(4, 9))) for _ in range(150)]
    (tmp_path / "corpus.txt").write_text("\n".join(sents) + "\n")
    counts = pd.Series(" ".join(sents).split()).value_counts()
    pd.DataFrame({"word": counts.index, "count": counts.values}).to_csv(
        tmp_path / "vocab.tsv", sep="\t", index=False, lineterminator="\n")
    # per-word features in [0, 1] for the visual words + one word outside the vocabulary
    write_features(tmp_path / "w.h5", VISUAL + ["zebra"], rng.random((6, 12)).astype(np.float32),
                   {"scaling": "minmax"}, extra={"counts": np.full(6, 2)})
    return tmp_path


def run(argv):
    return run_cli(main, [str(a) for a in argv])


def _vsgns(d, out, seed=0):
    return run(["vsgns", "--corpus", d / "corpus.txt", "--vocab", d / "vocab.tsv", "--visual", d / "w.h5",
                "--out-dir", out, "--dim", 8, "--window", 3, "--sample", 0, "--epochs", 2, "--batch-size", 128,
                "--visual-negatives", 3, "--vsgns-model", "B", "--seed", seed, "--no-progress"])


def test_vsgns_cli_writes_vectors_and_is_seeded(data):
    d = data
    assert _vsgns(d, d / "v1") == 0 and _vsgns(d, d / "v2") == 0 and _vsgns(d, d / "v3", seed=1) == 0
    for name in ("vectors.txt", "vectors.npy", "vocab.txt", "loss.csv", "train.json"):
        assert (d / "v1" / name).is_file(), name
    words, vecs = load_vectors(d / "v1" / "vectors.txt")
    assert sorted(words) == sorted(VISUAL + TEXT_ONLY) and vecs.shape == (10, 8)
    assert (d / "v1" / "vectors.txt").read_bytes() == (d / "v2" / "vectors.txt").read_bytes()
    assert (d / "v1" / "vectors.txt").read_bytes() != (d / "v3" / "vectors.txt").read_bytes()
    info = json.loads((d / "v1" / "train.json").read_text())
    assert info["model"] == "vsgns" and info["n_visual_words"] == 5 and info["visual_dim"] == 12
    assert info["hyperparameters"]["margin"] == 0.5 and info["hyperparameters"]["visual_negatives"] == 3
    assert all(math.isfinite(h["margin"]) and math.isfinite(h["ce"]) for h in info["history"])
    assert set(info["alignment_after"]) == {"cos_match", "cos_mismatch"}


def test_ivsgns_cli_imagines_every_word(data):
    d = data
    rng = np.random.default_rng(1)
    words = VISUAL + TEXT_ONLY + ["zz" + str(i) for i in range(10)]
    write_word2vec_text(d / "sgns.txt", words, rng.normal(size=(len(words), 6)))
    outs = []
    for name, mapping in (("l1", "linear"), ("l2", "linear"), ("n", "nonlinear")):
        assert run(["ivsgns", "--sgns", d / "sgns.txt", "--visual", d / "w.h5", "--out-dir", d / name,
                    "--mapping", mapping, "--hidden", 16, "--epochs", 20, "--lr", 1e-2]) == 0
        outs.append((d / name / "vectors.txt").read_bytes())
    assert outs[0] == outs[1] and outs[0] != outs[2]
    got, vecs = load_vectors(d / "l1" / "vectors.txt")
    assert got == words and vecs.shape == (len(words), 6 + 12)  # words without features included
    np.testing.assert_allclose(np.linalg.norm(vecs[:, :6], axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vecs[:, 6:], axis=1), 1, rtol=1e-5)
    info = json.loads((d / "n" / "train.json").read_text())
    assert info["n_fit_words"] == 5 and info["n_words"] == len(words)
    assert info["fit_mse_end"] < info["fit_mse_start"]
    assert info["hyperparameters"]["mapping"] == "nonlinear" and info["hyperparameters"]["hidden"] == 16


def test_vae_cli_improves_elbo_and_embeds_visual_words_only(data):
    d = data
    for name in ("a", "b"):
        assert run(["vae", "--visual", d / "w.h5", "--out-dir", d / name, "--dim", 4, "--hidden", 16,
                    "--epochs", 40, "--batch-size", 4, "--lr", 1e-2, "--J", 2]) == 0
    assert (d / "a" / "vectors.txt").read_bytes() == (d / "b" / "vectors.txt").read_bytes()
    words, vecs = load_vectors(d / "a" / "vectors.txt")
    assert words == VISUAL + ["zebra"] and vecs.shape == (6, 4)  # the file's words, nothing else
    info = json.loads((d / "a" / "train.json").read_text())
    assert info["elbo_end"] > info["elbo_start"] + 5
    assert info["history"][-1]["elbo"] > info["history"][0]["elbo"]
    assert {"nll_x", "kl"} <= set(info["history"][0])


def test_cnn_and_concat_cli(data):
    d = data
    assert run(["cnn", "--visual", d / "w.h5", "--out", d / "cnn.txt"]) == 0
    ids, feats, _ = read_features(d / "w.h5")
    words, vecs = load_vectors(d / "cnn.txt")
    assert words == ids and np.array_equal(vecs, feats)  # exact round trip

    write_word2vec_text(d / "b.txt", ["big", "sun", "cat", "moon"], 3 * np.arange(12.0).reshape(4, 3) + 1)
    assert run(["concat", "--a", d / "cnn.txt", "--b", d / "b.txt", "--out", d / "cat.txt"]) == 0
    words, vecs = load_vectors(d / "cat.txt")
    assert words == ["cat", "sun"] and vecs.shape == (2, 12 + 3)  # shared words, in file a's order
    np.testing.assert_allclose(np.linalg.norm(vecs[:, :12], axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vecs[:, 12:], axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(vecs[0, :12] * np.linalg.norm(feats[0]), feats[0], rtol=1e-5)
    assert run(["concat", "--a", d / "cnn.txt", "--b", d / "b.txt", "--out", d / "raw.txt", "--no-normalize"]) == 0
    _, raw = load_vectors(d / "raw.txt")
    np.testing.assert_array_equal(raw[:, :12], feats[[0, 4]])
    np.testing.assert_array_equal(raw[:, 12:], [[19, 22, 25], [10, 13, 16]])  # b rows of cat, sun


def test_bad_inputs_exit_2_with_one_line(data, capsys):
    d = data
    write_features(d / "other.h5", ["zebra", "moon"], np.full((2, 3), 0.5, np.float32))
    write_features(d / "one.h5", ["cat", "moon"], np.full((2, 3), 0.5, np.float32))
    write_word2vec_text(d / "sgns.txt", VISUAL, np.ones((5, 4)))
    write_word2vec_text(d / "x.txt", ["moon"], np.ones((1, 4)))
    vs = ["vsgns", "--corpus", d / "corpus.txt", "--vocab", d / "vocab.tsv", "--out-dir", d / "m", "--dim", 4,
          "--epochs", 1, "--no-progress"]
    iv = ["ivsgns", "--sgns", d / "sgns.txt", "--out-dir", d / "m", "--epochs", 1]
    cases = [
        (vs + ["--visual", d / "missing.h5"], "not found"),
        (vs + ["--visual", d / "other.h5"], "is in the vocabulary"),
        (vs + ["--visual", d / "one.h5"], "at least 2"),
        (vs + ["--visual", d / "w.h5", "--visual-map", "quadratic"], "visual map"),
        (vs + ["--visual", d / "w.h5", "--visual-map", "identity"], "identity"),
        (iv + ["--visual", d / "w.h5", "--mapping", "cubic"], "mapping must be one of"),
        (iv + ["--visual", d / "other.h5", "--mapping", "linear"], "is in the vocabulary"),
        (["ivsgns", "--sgns", d / "nope.txt", "--visual", d / "w.h5", "--out-dir", d / "m", "--mapping", "linear"],
         "not found"),
        (["vae", "--visual", d / "missing.h5", "--out-dir", d / "m"], "not found"),
        (["vae", "--visual", d / "sgns.txt", "--out-dir", d / "m"], "not an HDF5"),
        (["cnn", "--visual", d / "missing.h5", "--out", d / "m" / "c.txt"], "not found"),
        (["concat", "--a", d / "nope.txt", "--b", d / "sgns.txt", "--out", d / "m" / "c.txt"], "not found"),
        (["concat", "--a", d / "x.txt", "--b", d / "sgns.txt", "--out", d / "m" / "c.txt"], "share no word"),
    ]
    for argv, msg in cases:
        assert run(argv) == 2, argv
        err = capsys.readouterr().err
        errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and msg in errors[0], (argv, err)
        assert "Traceback" not in err
    assert not (d / "m").exists()
