"""Tests of the paper's controls: image as input (§5.1, Table 1), word-specific image targets and
whole-caption windows (§6.2). CPU, small corpora."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from test_wield_stage import FAST, lee_captions, write_inputs

from groundwords.cli import run_cli
from groundwords.files import write_features
from groundwords.models import WIELD, ImageInputCBOW
from groundwords.studies.wield.stage import main, train
from groundwords.text.captions import build_examples, cbow_windows, encode_captions
from groundwords.text.vocab import build_vocab
from groundwords.training import fit


@pytest.fixture
def one_thread():
    """Model-level tests call fit() directly: one torch thread (the cores are shared)."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _examples(caps: list[str], window: int = 2):
    words = build_vocab(caps, min_count=1)
    ids = [str(i) for i in range(len(caps))]
    ex, _ = build_examples(pd.DataFrame({"id": ids, "caption": caps, "status": "ok"}),
                           words["word"].tolist(), ids, window=window)
    data = {"context": torch.from_numpy(ex.context), "target": torch.from_numpy(ex.target),
            "image_row": torch.from_numpy(ex.image_row)}
    return words, data


def _word_file(path, words: list[str], k: int = 4, every: int = 2, seed: int = 0):
    """A word-keyed feature file holding every ``every``-th word (the others have none)."""
    keep = words[::every]
    feats = np.random.default_rng(seed).normal(size=(len(keep), k)).astype(np.float32)
    write_features(path, keep, feats, attrs={"dim": k})
    return path


# ---------------------------------------------------------------------------------------------
# image as input (§5.1)


@pytest.mark.parametrize("objective", ["softmax", "negative"])
def test_lam0_is_bit_identical_to_wield_gamma0(objective, one_thread):
    caps = lee_captions(120)
    words, data = _examples(caps)
    counts = words["count"].to_numpy()
    feats = torch.randn(len(caps), 8, generator=torch.Generator().manual_seed(1))
    vecs, ces = {}, {}
    for name in ("wield", "lam0", "lam1"):
        torch.manual_seed(3)
        common = dict(objective=objective, counts=counts, seed=3)
        if name == "wield":
            m = WIELD(len(words), 16, image_dim=8, gamma=0.0, image_targets=feats, **common)
        else:
            m = ImageInputCBOW(len(words), 16, image_dim=8, lam=0.0 if name == "lam0" else 1.0,
                               image_features=feats, **common)
        hist = fit(m, data, epochs=2, batch_size=32, lr=0.01, seed=3, progress=False)
        vecs[name], ces[name] = m.word_vectors(), [h["ce"] for h in hist]
    assert torch.equal(vecs["lam0"], vecs["wield"])
    assert ces["lam0"] == ces["wield"]
    assert not torch.equal(vecs["lam1"], vecs["wield"])
    assert ces["lam1"][-1] < ces["lam1"][0]


def test_lam_end_to_end(tmp_path):
    """Through train(): λ=0 == WIELD γ=0 exactly; λ>0 differs and its loss decreases."""
    paths = write_inputs(tmp_path, lee_captions(150))
    train(*paths, tmp_path / "wield", gamma=0.0, **FAST)
    train(*paths, tmp_path / "lam0", model="imginput", lam=0.0, **FAST)
    info = train(*paths, tmp_path / "lam2", model="imginput", lam=2.0, **FAST)
    v = {n: np.load(tmp_path / n / "vectors.npy") for n in ("wield", "lam0", "lam2")}
    assert np.array_equal(v["lam0"], v["wield"]) and not np.array_equal(v["lam2"], v["wield"])
    loss = pd.read_csv(tmp_path / "lam2" / "loss.csv")
    assert loss["ce"].iloc[-1] < loss["ce"].iloc[0] and loss["mse"].isna().all()
    hp = info["hyperparameters"]
    assert info["model"] == "imginput" and hp["lam"] == 2.0 and hp["image_input"] == "caption"
    assert hp["gamma"] is None and hp["image_target"] is None


def test_word_image_input_is_mean_of_context_words_encodings():
    # V = 5 (pad = 5); words 1 and 3 have no encoding
    feats = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]])
    word_rows = torch.tensor([0, -1, 1, -1, 2])
    m = ImageInputCBOW(5, 4, image_dim=2, lam=1.0, image_input="word", image_features=feats,
                       word_rows=word_rows)
    ctx = torch.tensor([
        [1, 2, 5, 5],  # word 1 skipped -> encoding of word 2 = row 1
        [0, 2, 4, 5],  # mean of rows 0, 1, 2
        [1, 3, 5, 5],  # nobody has one -> zeros
        [0, 0, 3, 5],  # a repeated context word counts twice; 3 skipped
    ])
    target = torch.tensor([0, 1, 2, 4])  # the centre words' encodings must not matter
    x = m.image_vector({"context": ctx, "target": target})
    assert torch.equal(x, torch.tensor([[3.0, 4.0], [3.0, 5.0], [0.0, 0.0], [1.0, 2.0]]))
    out = m.loss({"context": ctx, "target": target})
    assert torch.isfinite(out["total"])
    with pytest.raises(ValueError, match="word_rows"):
        ImageInputCBOW(5, 4, image_dim=2, image_input="word", image_features=feats)


# ---------------------------------------------------------------------------------------------
# word-specific image targets (§6.2)


def test_word_targets_are_the_centre_words_rows():
    caps = pd.DataFrame({"id": ["i0", "i1", "i2"], "caption": ["a b c", "c d a", "b a"],
                         "status": ["ok", "ok", "http_404"]})
    words = ["a", "b", "c", "d", "e"]
    word_ids = ["c", "a", "zz"]  # rows: a -> 1, c -> 0; b, d have no target
    ex, st = build_examples(caps, words, word_ids, window=2, image_target="word")
    assert ex.target.tolist() == [0, 1, 2, 2, 3, 0]
    assert ex.image_row.tolist() == [1, -1, 0, 0, -1, 1]  # same caption, different targets
    assert ex.caption.tolist() == [0, 0, 0, 1, 1, 1]  # the dead caption is not used by default
    assert st["n_examples_with_image"] == 4 and st["n_vocab_with_image"] == 2
    ex, st = build_examples(caps, words, word_ids, window=2, image_target="word", train_dead_images=True)
    assert ex.image_row.tolist() == [1, -1, 0, 0, -1, 1, -1, 1]  # word targets ignore image status


# ---------------------------------------------------------------------------------------------
# whole-caption windows (§6.2 co-occurrence baseline)


def test_huge_window_is_the_whole_caption():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    caps = [" ".join(rng.choice(words + ["oov"], size=int(rng.integers(0, 12)))) for _ in range(300)]
    enc = encode_captions(caps, words)
    longest = int(enc.lengths.max())
    for window in (longest, 1000, 10**6):
        ctx, tgt, cap = cbow_windows(enc, window, pad=30)
        assert ctx.shape[1] == longest - 1
        got = [(sorted(r for r in row if r != 30), t, c)
               for row, t, c in zip(ctx.tolist(), tgt.tolist(), cap.tolist())]
        ref = []
        for c, text in enumerate(caps):
            ids = [words.index(t) for t in text.split() if t != "oov"]
            for i, w in enumerate(ids):
                if len(ids) > 1:
                    ref.append((sorted(ids[:i] + ids[i + 1:]), w, c))
        assert got == ref
    # the ordinary layout with window = longest - 1 sees the same bags
    ctx2, _, _ = cbow_windows(enc, longest - 1, pad=30)
    assert ctx2.shape[1] == 2 * (longest - 1)
    assert [sorted(r for r in row if r != 30) for row in ctx2.tolist()] == [g[0] for g in got]
    _, st = build_examples(pd.DataFrame({"id": ["x"] * len(caps), "caption": caps, "status": "ok"}),
                           words, None, window=1000, train_dead_images=True)
    assert st["whole_caption_context"] and st["context_width"] == longest - 1


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_controls(tmp_path, capsys):
    caps_tsv, vocab_tsv, images = write_inputs(tmp_path, lee_captions(120))
    words = pd.read_csv(vocab_tsv, sep="\t", keep_default_na=False)["word"].tolist()
    word_h5 = _word_file(tmp_path / "words.h5", words)

    def cli(out, *args):
        code = run_cli(main, [str(a) for a in ("--captions", caps_tsv, "--vocab", vocab_tsv, "--out-dir",
                                                tmp_path / out, "--dim", 8, "--epochs", 3, "--batch-size", 64,
                                                "--lr", 0.01, "--threads", 1, "--no-progress", *args)])
        return code, capsys.readouterr().err

    def meta(out):
        d = tmp_path / out
        assert all((d / f).exists() for f in ("vectors.txt", "vectors.npy", "loss.csv"))
        return json.loads((d / "train.json").read_text()), pd.read_csv(d / "loss.csv")

    code, err = cli("imginput", "--images", images, "--model", "imginput", "--lam", 1, "--image-input", "caption")
    assert code == 0, err
    info, loss = meta("imginput")
    assert info["model"] == "imginput" and info["images_keyed_by"] == "caption"
    assert info["hyperparameters"]["lam"] == 1.0 and info["hyperparameters"]["image_input"] == "caption"
    assert loss["ce"].iloc[-1] < loss["ce"].iloc[0]

    code, err = cli("wordtarget", "--images", word_h5, "--gamma", 10, "--image-target", "word")
    assert code == 0, err
    info, loss = meta("wordtarget")
    assert info["model"] == "wield" and info["hyperparameters"]["image_target"] == "word"
    assert info["hyperparameters"]["lam"] is None and info["images_keyed_by"] == "word"
    assert 0 < info["n_examples_with_image"] < info["n_examples"]
    assert loss["mse"].iloc[-1] < loss["mse"].iloc[0]

    code, err = cli("wordinput", "--images", word_h5, "--model", "imginput", "--lam", 1, "--image-input", "word")
    assert code == 0, err
    assert meta("wordinput")[0]["hyperparameters"]["image_input"] == "word"

    # a word-keyed file used as caption images: no id matches -> exit 2 with a hint
    code, err = cli("bad", "--images", word_h5, "--gamma", 10, "--image-target", "caption")
    assert code == 2 and "no training examples" in err and "look like words" in err
    assert "Traceback" not in err
    # and the reverse: caption-keyed file used as word targets
    code, err = cli("bad", "--images", images, "--gamma", 10, "--image-target", "word")
    assert code == 2 and "is a vocabulary word" in err
    # options of the other model are refused
    code, err = cli("bad", "--images", images, "--gamma", 10, "--lam", 1)
    assert code == 2 and "--lam applies to --model imginput" in err
    code, err = cli("bad", "--images", images, "--model", "imginput", "--gamma", 1)
    assert code == 2 and "--gamma applies to --model wield" in err
    code, err = cli("bad", "--images", images, "--model", "imginput", "--image-target", "word")
    assert code == 2 and "--image-target applies" in err
    with pytest.raises(SystemExit):
        cli("bad", "--images", images)  # wield without --gamma
    assert "--gamma is required" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
