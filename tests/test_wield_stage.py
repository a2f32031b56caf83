"""Tests of the CBOW corpus builder, the WIELD model and the training stage (CPU, < 90 s)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gensim
import numpy as np
import pandas as pd
import pytest
import torch

from groundwords.cli import run_cli
from groundwords.files import write_features, write_tsv
from groundwords.models import WIELD
from groundwords.studies.wield.stage import main, train
from groundwords.text.captions import build_examples, cbow_windows, encode_captions
from groundwords.text.vocab import build_vocab
from groundwords.training import fit

LEE = Path(gensim.__file__).parent / "test" / "test_data" / "lee_background.cor"
REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# helpers


def write_inputs(tmp: Path, captions: list[str], status=None, feats=None, min_count: int = 1):
    """Write captions.tsv / vocab.tsv / images.h5 for a list of captions (one image each;
    the HDF5 holds only the images of captions with status "ok")."""
    n = len(captions)
    ids = [f"{i:016x}" for i in range(n)]
    status = status or ["ok"] * n
    caps = pd.DataFrame({"rank": range(n), "row": range(n), "id": ids, "caption": captions,
                         "status": status, "path": [""] * n})
    write_tsv(caps, tmp / "captions.tsv")
    write_tsv(build_vocab(captions, min_count=min_count), tmp / "vocab.tsv")
    if feats is None:
        feats = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    alive = [s == "ok" for s in status]
    image_ids = [i for i, ok in zip(ids, alive) if ok]
    feats = feats[alive]
    write_features(tmp / "images.h5", image_ids, feats, attrs={"dim": feats.shape[1]})
    return tmp / "captions.tsv", tmp / "vocab.tsv", tmp / "images.h5"


def lee_captions(n: int = 400, length: int = 12) -> list[str]:
    """Chunks of the Lee background corpus, used as pseudo-captions."""
    toks = LEE.read_text(encoding="utf-8").split()
    return [" ".join(toks[i:i + length]) for i in range(0, min(len(toks), n * length), length)]


FAST = dict(dim=16, epochs=3, batch_size=64, lr=0.01, progress=False, threads=1)


# ---------------------------------------------------------------------------------------------
# corpus


def test_windows_never_cross_captions_and_oov_dropped():
    words = ["a", "b", "c", "d", "e"]  # pad = 5; "zz" is OOV and dropped before windowing
    enc = encode_captions(["a b zz c", "d e"], words)
    assert enc.tokens.tolist() == [0, 1, 2, 3, 4] and enc.offsets.tolist() == [0, 3, 5]
    assert enc.n_oov == 1 and enc.n_raw_tokens == 6
    ctx, tgt, cap = cbow_windows(enc, window=2, pad=5)
    expected_ctx = [
        [5, 5, 1, 2],  # a: (nothing before) | b c
        [5, 0, 2, 5],  # b: a | c        (the OOV "zz" is gone, so c is adjacent)
        [0, 1, 5, 5],  # c: a b |        (does NOT see "d" of the next caption)
        [5, 5, 4, 5],  # d: | e
        [5, 3, 5, 5],  # e: d |
    ]
    assert ctx.tolist() == expected_ctx
    assert tgt.tolist() == [0, 1, 2, 3, 4] and cap.tolist() == [0, 0, 0, 1, 1]
    # window 1, and a one-word caption (empty context) is skipped
    enc = encode_captions(["a b c", "d", "zz e zz"], words)
    ctx, tgt, cap = cbow_windows(enc, window=1, pad=5)
    assert ctx.tolist() == [[5, 1], [0, 2], [1, 5]] and tgt.tolist() == [0, 1, 2]


def test_windows_match_a_naive_loop():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    caps = [" ".join(rng.choice(words + ["oov"], size=int(rng.integers(0, 9)))) for _ in range(200)]
    for window in (1, 2, 3):
        enc = encode_captions(caps, words)
        ctx, tgt, cap = cbow_windows(enc, window, pad=30)
        ref = []
        for c, text in enumerate(caps):
            ids = [words.index(t) for t in text.split() if t != "oov"]
            for i, w in enumerate(ids):
                left = ids[max(0, i - window):i]
                right = ids[i + 1:i + 1 + window]
                if left or right:
                    row = [30] * (window - len(left)) + left + right + [30] * (window - len(right))
                    ref.append((row, w, c))
        assert [(list(r), t, c) for r, t, c in zip(ctx.tolist(), tgt.tolist(), cap.tolist())] == ref


def test_dead_images_excluded_by_default_and_masked_with_option():
    caps = pd.DataFrame({"id": ["i0", "i1", "i2", "i3"], "caption": ["a b", "b c", "c a", "a c"],
                         "status": ["ok", "http_404", "ok", "ok"]})
    words = ["a", "b", "c"]
    image_ids = ["i2", "i0", "i1"]  # i1 is listed but its status is dead; i3 is missing
    ex, st = build_examples(caps, words, image_ids, window=2)
    assert set(ex.caption.tolist()) == {0, 2}
    assert ex.image_row.tolist() == [1, 1, 0, 0]
    assert st["n_captions"] == 2 and st["n_examples_with_image"] == 4
    ex, st = build_examples(caps, words, image_ids, window=2, train_dead_images=True)
    assert ex.caption.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert ex.image_row.tolist() == [1, 1, -1, -1, 0, 0, -1, -1]
    # the MSE is the mean over the examples with an image only
    torch.manual_seed(0)
    targets = torch.randn(3, 4)
    m = WIELD(3, 8, image_dim=4, gamma=1.0, image_targets=targets)
    batch = {"context": torch.from_numpy(ex.context), "target": torch.from_numpy(ex.target),
             "image_row": torch.from_numpy(ex.image_row)}
    out = m.loss(batch)
    live = batch["image_row"] >= 0
    pred = m.image_head(m(batch["context"][live]))
    ref = ((pred - targets[batch["image_row"][live]]) ** 2).mean()
    assert int(out["n_mse"]) == 4
    torch.testing.assert_close(out["mse"], ref)
    torch.testing.assert_close(out["total"], 0.5 * out["ce"] + 0.5 * out["mse"])


# ---------------------------------------------------------------------------------------------
# model


def test_sparse_context_sum_equals_padded_embedding_bag():
    """The sparse path drops padding before the bag; it must give the same sums and grads."""
    torch.manual_seed(0)
    dense = WIELD(20, 8, objective="negative", counts=np.ones(20))
    torch.manual_seed(0)
    sparse = WIELD(20, 8, objective="negative", counts=np.ones(20), sparse=True)
    ctx = torch.tensor([[20, 20, 3, 4], [1, 2, 3, 20], [5, 20, 20, 20], [7, 7, 7, 7]])
    hd, hs = dense(ctx), sparse(ctx)
    torch.testing.assert_close(hd, hs, rtol=0, atol=0)
    hd.pow(2).sum().backward()
    hs.pow(2).sum().backward()
    torch.testing.assert_close(dense.emb.weight.grad, sparse.emb.weight.grad.to_dense())
    assert not sparse.emb.weight.grad.to_dense()[20].any()  # the padding row never learns


def test_noise_sampler_follows_unigram_075():
    counts = np.array([1000, 100, 10, 1, 0], dtype=float)
    m = WIELD(5, 4, objective="negative", counts=counts, seed=1)
    draws = m.sample_noise(400_000, "cpu").numpy()
    freq = np.bincount(draws, minlength=5) / len(draws)
    expected = counts ** 0.75 / (counts ** 0.75).sum()
    np.testing.assert_allclose(freq, expected, atol=3e-3)
    assert freq[4] == 0


# ---------------------------------------------------------------------------------------------
# training


@pytest.mark.parametrize("objective,optimizer,lr,shared", [
    ("softmax", "adam", 0.01, 1), ("negative", "adam", 0.01, 1), ("negative", "sgd", 0.5, 1),
    ("negative", "sparse_adam", 0.01, 8)])
def test_loss_decreases(tmp_path, objective, optimizer, lr, shared):
    paths = write_inputs(tmp_path, lee_captions(300), min_count=2)
    info = train(*paths, tmp_path / "out", gamma=10.0, objective=objective, optimizer=optimizer,
                 shared_negatives=shared, **{**FAST, "lr": lr, "epochs": 4})
    loss = pd.read_csv(tmp_path / "out" / "loss.csv")
    assert list(loss.columns) == ["epoch", "ce", "mse", "total", "seconds", "words_per_s"]
    assert loss["total"].iloc[-1] < loss["total"].iloc[0]
    assert loss["ce"].iloc[-1] < loss["ce"].iloc[0]
    assert loss["mse"].iloc[-1] < loss["mse"].iloc[0]
    assert info["n_examples"] > 0 and info["words_per_s"] > 0


@pytest.mark.parametrize("objective", ["softmax", "negative"])
def test_gamma0_image_head_has_no_effect(objective):
    """gamma=0: the word part is bit-identical with and without an image head."""
    caps = lee_captions(150)
    words = build_vocab(caps, min_count=1)
    ex, _ = build_examples(pd.DataFrame({"id": [str(i) for i in range(len(caps))], "caption": caps,
                                         "status": "ok"}), words["word"].tolist(),
                           [str(i) for i in range(len(caps))], window=2)
    data = {"context": torch.from_numpy(ex.context), "target": torch.from_numpy(ex.target),
            "image_row": torch.from_numpy(ex.image_row)}
    counts = torch.tensor(words["count"].to_numpy())
    vecs = []
    for image_dim in (8, 0):
        targets = torch.randn(len(caps), 8, generator=torch.Generator().manual_seed(1)) if image_dim else None
        torch.manual_seed(3)
        m = WIELD(len(words), 16, image_dim=image_dim, gamma=0.0, objective=objective, counts=counts,
                  image_targets=targets, seed=3)
        fit(m, data, epochs=2, batch_size=32, lr=0.01, seed=3, progress=False)
        vecs.append(m.word_vectors())
    assert torch.equal(vecs[0], vecs[1])


def test_gamma0_ignores_image_values_end_to_end(tmp_path):
    caps = lee_captions(150)
    rng = np.random.default_rng(1)
    out = []
    for i in range(2):
        d = tmp_path / f"run{i}"
        d.mkdir()
        paths = write_inputs(d, caps, feats=rng.normal(size=(len(caps), 4)).astype(np.float32))
        train(*paths, d / "out", gamma=0.0, **FAST)
        out.append(np.load(d / "out" / "vectors.npy"))
        assert pd.read_csv(d / "out" / "loss.csv")["mse"].isna().all()  # never computed
    assert np.array_equal(out[0], out[1])


def test_seed_determinism(tmp_path):
    paths = write_inputs(tmp_path, lee_captions(150))
    vec = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        train(*paths, tmp_path / name, gamma=10.0, seed=seed, objective="negative", **FAST)
        vec[name] = np.load(tmp_path / name / "vectors.npy")
    assert np.array_equal(vec["a"], vec["b"])
    assert not np.array_equal(vec["a"], vec["c"])


def test_train_dead_images_end_to_end(tmp_path):
    caps = lee_captions(120)
    status = ["ok" if i % 3 else "http_404" for i in range(len(caps))]
    paths = write_inputs(tmp_path, caps, status=status)
    live = train(*paths, tmp_path / "live", gamma=10.0, **{**FAST, "epochs": 1})
    both = train(*paths, tmp_path / "both", gamma=10.0, train_dead_images=True, **{**FAST, "epochs": 1})
    assert live["n_captions"] == sum(s == "ok" for s in status) and both["n_captions"] == len(caps)
    assert live["n_examples"] == live["n_examples_with_image"] < both["n_examples"]
    assert both["n_examples_with_image"] == live["n_examples"]
    assert np.isfinite(both["final_loss"]["mse"]) and both["hyperparameters"]["train_dead_images"]


def _cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_gamma_pulls_words_sharing_images_together(tmp_path):
    """cat/kitten share images (cluster A) but never share text context; car/truck likewise
    (cluster B). Textually cat~car and kitten~truck (same filler words). The image loss must
    pull the words that share images together relative to gamma=0."""
    rng = np.random.default_rng(0)
    fill1, fill2 = [f"p{i}" for i in range(6)], [f"q{i}" for i in range(6)]
    pairs = [("cat", fill1, 0), ("kitten", fill2, 0), ("car", fill1, 1), ("truck", fill2, 1)]
    centres = rng.normal(size=(2, 8)) * 2
    captions, feats = [], []
    for _ in range(150):
        for word, fill, cluster in pairs:
            f = list(rng.choice(fill, size=4))
            f.insert(int(rng.integers(0, 5)), word)
            captions.append(" ".join(f))
            feats.append(centres[cluster] + 0.1 * rng.normal(size=8))
    paths = write_inputs(tmp_path, captions, feats=np.array(feats, dtype=np.float32))
    res = {}
    for g in (0.0, 50.0):
        out = tmp_path / f"g{g}"
        train(*paths, out, gamma=g, seed=0, **{**FAST, "epochs": 8})
        words = (out / "vocab.txt").read_text().split("\n")
        v = dict(zip(words, np.load(out / "vectors.npy")))
        same_image = (_cos(v["cat"], v["kitten"]) + _cos(v["car"], v["truck"])) / 2
        same_text = (_cos(v["cat"], v["car"]) + _cos(v["kitten"], v["truck"])) / 2
        res[g] = same_image - same_text
        if g:
            mse = pd.read_csv(out / "loss.csv")["mse"]
            assert mse.iloc[-1] < 0.5 * mse.iloc[0]
    assert res[50.0] > res[0.0] + 0.3, res


def test_outputs_and_gensim_roundtrip(tmp_path):
    from gensim.models import KeyedVectors

    paths = write_inputs(tmp_path, lee_captions(100))
    info = train(*paths, tmp_path / "out", gamma=1.0, **{**FAST, "epochs": 1})
    out = tmp_path / "out"
    kv = KeyedVectors.load_word2vec_format(out / "vectors.txt", binary=False)
    vec = np.load(out / "vectors.npy")
    words = (out / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vec.dtype == np.float32 and vec.shape == (len(words), 16)
    assert kv.index_to_key == words
    assert np.array_equal(kv.vectors, vec)
    meta = json.loads((out / "train.json").read_text())
    for key in ("hyperparameters", "n_captions", "n_examples", "n_words", "words_per_s", "examples_per_s",
                "final_loss", "torch_version", "device"):
        assert key in meta
    assert meta["hyperparameters"]["gamma"] == 1.0 and meta["n_words"] == info["n_examples"]
    assert not list(out.glob(".*"))  # no temporary files left behind


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-m", "groundwords.studies.wield.stage", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=60)


def test_cli_ok_and_bad_inputs(tmp_path, capsys):
    caps, vocab, images = write_inputs(tmp_path, ["a b c", "b c a", "c a b"])
    # a real subprocess: exit code 2 and one clear line, no traceback
    write_features(tmp_path / "other.h5", ["ffff"], np.zeros((1, 4), np.float32))
    r = _cli("--captions", caps, "--vocab", vocab, "--images", tmp_path / "other.h5",
             "--out-dir", tmp_path / "bad", "--gamma", 10)
    assert r.returncode == 2 and "no training examples" in r.stderr and "Traceback" not in r.stderr

    def cli(*args):  # the same entry point, in-process (faster)
        code = run_cli(main, [str(a) for a in args])
        return code, capsys.readouterr().err

    code, _ = cli("--captions", caps, "--vocab", vocab, "--images", images, "--out-dir", tmp_path / "ok",
                  "--gamma", 10, "--dim", 4, "--epochs", 1, "--no-progress")
    assert code == 0 and (tmp_path / "ok" / "train.json").exists()
    common = ["--vocab", vocab, "--out-dir", tmp_path / "bad", "--gamma", 10]
    code, err = cli("--captions", caps, "--images", images, "--image-dim", 32, *common)
    assert code == 2 and "32-d" in err  # image dimension mismatch
    code, err = cli("--captions", tmp_path / "nope.tsv", "--images", images, *common)
    assert code == 2 and "not found" in err
    (tmp_path / "junk.h5").write_text("not hdf5")
    code, err = cli("--captions", caps, "--images", tmp_path / "junk.h5", *common)
    assert code == 2 and "HDF5" in err
    code, err = cli("--captions", caps, "--images", images, "--lr", -1, *common)
    assert code == 2 and "wield.lr" in err  # the schema's check, naming the config key
    assert not (tmp_path / "bad").exists()


def test_grid_points_in_one_process_equal_their_own_runs(tmp_path):
    """wield.train_jobs: grid: several --point runs in one process write what each writes alone,
    byte for byte, whatever ran before it (here a WIELD run after an image-input one)."""
    paths = write_inputs(tmp_path, lee_captions(120))
    common = ["--captions", paths[0], "--vocab", paths[1], "--images", paths[2], "--dim", 8, "--epochs", 2,
              "--seed", 3, "--no-progress"]
    runs = {"img": ["--model", "imginput", "--lam", 1, "--window", 3], "wield": ["--gamma", 10]}
    points = [f"--out-dir {tmp_path / 'grid' / n} " + " ".join(map(str, a)) for n, a in runs.items()]
    r = _cli(*common, *[x for pt in points for x in ("--point", pt)])
    assert r.returncode == 0, r.stderr[-2000:]
    assert "run 2 of 2" in r.stderr
    for name in reversed(list(runs)):  # alone, in the other order, in this (another) process
        assert run_cli(main, [str(x) for x in [*common, "--out-dir", tmp_path / name, *runs[name]]]) == 0
    for name in runs:
        for f in ("vectors.txt", "vectors.npy", "loss.csv"):
            alone, grid = (tmp_path / name / f).read_bytes(), (tmp_path / "grid" / name / f).read_bytes()
            if f == "loss.csv":  # its seconds and words/s columns measure time
                alone, grid = (b"\n".join(b",".join(ln.split(b",")[:4]) for ln in x.splitlines()) for x in (alone, grid))
            assert alone == grid, (name, f)
    info = json.loads((tmp_path / "grid" / "img" / "train.json").read_text())
    assert info["model"] == "imginput" and info["hyperparameters"]["window"] == 3
    bad = _cli(*common, "--point", f"--out-dir {tmp_path / 'g2' / 'a'} --gamma 1",
               "--point", f"--out-dir {tmp_path / 'g2' / 'b'}")  # checked before any run starts
    assert bad.returncode == 2 and "--gamma is required" in bad.stderr and not (tmp_path / "g2").exists()
