"""Tests of the IESG reproduction: text corpus, word-image tables, SGNS, IESG, matching metrics.

CPU only, about 30 s. The slow ones: SGNS vs gensim on the Lee corpus (~10 s), IESG on a
synthetic case (~5 s), the stage CLI end to end (~5 s).
"""

from __future__ import annotations

import bz2
import gzip
import json
from pathlib import Path

import gensim
import numpy as np
import pandas as pd
import pytest
import torch

from groundwords.cli import run_cli
from groundwords.evaluation import matching as retrieval
from groundwords.files import write_features
from groundwords.models.iesg import IESG
from groundwords.models.sgns import SGNS
from groundwords.studies.iesg.fitting import fit_alternating, fit_l2_projection, fit_l2_sgd, word_image_index
from groundwords.text.captions import encode_token_lists
from groundwords.text.skipgram import keep_probabilities, skipgram_pairs, train_sgns
from groundwords.text.vocab import build_vocab, tokenize
from groundwords.training import fit

GENSIM_DATA = Path(gensim.__file__).parent / "test" / "test_data"
LEE = GENSIM_DATA / "lee_background.cor"
WS353 = GENSIM_DATA / "wordsim353.tsv"


# ---------------------------------------------------------------------------------------------
# retrieval metrics


def test_precision_at_k_toy():
    p = retrieval.precision_at_k([1, 2, 5, 11, 1], (1, 5, 10))
    assert p == {1: pytest.approx(0.4), 5: pytest.approx(0.8), 10: pytest.approx(0.8)}
    assert np.isnan(retrieval.precision_at_k([], (1,))[1])


def test_ranks_from_scores_known_ranks_and_pessimistic_ties():
    scores = np.array([
        [5.0, 1.0, 2.0, 3.0],  # best -> 1
        [2.0, 3.0, 1.0, 4.0],  # two better -> 3
        [1.0, 1.0, 0.0, 0.0],  # a tie counts against the true item -> 2
        [0.0, 0.0, 0.0, 0.0],  # degenerate model -> last
    ])
    assert retrieval.ranks_from_scores(scores).tolist() == [1, 3, 2, 4]
    valid = np.array([[True] * 3, [True, True, False], [False, True, True], [True] * 3])
    assert retrieval.ranks_from_scores(scores, valid).tolist() == [1, 2, 1, 4]


def test_matching_ranks_hand_made():
    # words on the axes; an image projected onto (1, 0.5) ranks word 0 first, word 1 second
    words = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    query = np.array([[1.0, 0.5], [1.0, 0.5]])
    cands = np.array([[1, 2, 3], [0, 2, -1]])
    ranks = retrieval.matching_ranks(query, words, np.array([0, 1]), cands)
    assert ranks.tolist() == [1, 2]
    assert retrieval.precision_at_k(ranks, (1, 5)) == {1: 0.5, 5: 1.0}


def test_candidates_never_contain_a_true_item_and_are_seeded():
    rng = np.random.default_rng(0)
    n_img, n_words = 60, 40
    img = rng.integers(0, n_img, 300)  # random attachments, several words per image
    wrd = rng.integers(0, n_words, 300)
    q = np.arange(0, 300, 3)
    wc, ic = retrieval.build_candidates(img[q], wrd[q], img, wrd, np.arange(n_words), np.arange(n_img),
                                        n_negatives=30, seed=1)
    words_of = retrieval.attached_sets(img, wrd)
    images_of = retrieval.attached_sets(wrd, img)
    for j, qi in enumerate(q):
        got_w = wc[j][wc[j] >= 0]
        got_i = ic[j][ic[j] >= 0]
        assert not set(got_w) & set(words_of[img[qi]])
        assert not set(got_i) & set(images_of[wrd[qi]])
        assert len(set(got_w)) == len(got_w) and len(set(got_i)) == len(got_i)
        # the pool minus the true set has >= 30 items here except for very connected words
        assert len(got_w) == min(30, n_words - len(words_of[img[qi]]))
    wc2, ic2 = retrieval.build_candidates(img[q], wrd[q], img, wrd, np.arange(n_words), np.arange(n_img),
                                          n_negatives=30, seed=1)
    assert (wc == wc2).all() and (ic == ic2).all()
    wc3, _ = retrieval.build_candidates(img[q], wrd[q], img, wrd, np.arange(n_words), np.arange(n_img),
                                        n_negatives=30, seed=2)
    assert (wc != wc3).any()


def test_small_pool_is_padded():
    c = retrieval.sample_candidates([[0, 1]], np.arange(5), 10, rng=0)
    assert sorted(c[0][c[0] >= 0]) == [2, 3, 4] and (c[0][3:] == -1).all()


def test_p1_by_frequency():
    fb = retrieval.p1_by_frequency([1, 2, 1, 1, 3], [3, 5, 40, 200, 250])
    assert fb["freq_lo"].tolist() == [1, 10, 100]
    assert fb["n"].tolist() == [2, 1, 2]
    assert fb["p_at_1"].tolist() == [0.5, 1.0, 0.5]


# ---------------------------------------------------------------------------------------------
# SGNS


def test_skipgram_pairs_exact_and_within_sentences():
    tokens = np.array([0, 1, 2, 3, 4, 5])
    offsets = np.array([0, 4, 6])  # sentences [0 1 2 3] [4 5]
    c, x = skipgram_pairs(tokens, offsets, 2, shrink=False)
    got = sorted(zip(c.tolist(), x.tolist()))
    want = sorted([(0, 1), (0, 2), (1, 0), (1, 2), (1, 3), (2, 0), (2, 1), (2, 3), (3, 1), (3, 2), (4, 5), (5, 4)])
    assert got == want
    c, x = skipgram_pairs(tokens, offsets, 2, shrink=False, centres=np.array([0, 0, 1, 0, 0, 1], bool))
    assert sorted(zip(c.tolist(), x.tolist())) == [(2, 0), (2, 1), (2, 3), (5, 4)]
    # reduced windows only ever drop pairs
    c, x = skipgram_pairs(tokens, offsets, 2, shrink=True, rng=0)
    assert set(zip(c.tolist(), x.tolist())) <= set(want)


def test_keep_probabilities_match_gensim():
    from gensim.models import Word2Vec

    sent = [["a"] * 50 + ["b"] * 5 + ["c"] * 2 + ["d"] * 300]
    m = Word2Vec(sent, min_count=1, sample=1e-2, vector_size=4, epochs=1, workers=1)
    words = list(m.wv.index_to_key)
    counts = np.array([m.wv.get_vecattr(w, "count") for w in words])
    theirs = np.array([m.wv.get_vecattr(w, "sample_int") / 2**32 for w in words])
    np.testing.assert_allclose(keep_probabilities(counts, 1e-2), theirs, atol=1e-6)


def test_sgns_loss_decreases():
    tokens = np.tile(np.arange(20), 50)
    offsets = np.arange(0, len(tokens) + 1, 10)
    counts = np.bincount(tokens).astype(float)
    c, x = skipgram_pairs(tokens, offsets, 2, rng=0)
    torch.manual_seed(0)
    m = SGNS(20, 8, counts=counts, negatives=3, sparse=True)
    hist = fit(m, {"centre": torch.from_numpy(c), "context": torch.from_numpy(x)}, epochs=5,
               batch_size=64, lr=0.025 * 64, optimizer="sgd", progress=False)
    assert hist[-1]["total"] < 0.7 * hist[0]["total"]


@pytest.mark.parametrize("engine", ["numba", "torch"])
def test_sgns_wordsim_close_to_gensim_on_lee(engine):
    """Same corpus, vocabulary and hyper-parameters as gensim's Word2Vec(sg=1).

    The Lee corpus is tiny (60k tokens, 102 of the 353 WordSim pairs covered), so ρ is noisy:
    over seeds 0-3 gensim gave 0.19-0.29 and ours 0.20-0.29 in this setting (8 epochs,
    α = 0.08 decayed linearly, dim 32, window 5, 5 negatives, sample 1e-3; seed 0: ours 0.235,
    gensim 0.262). We require ours >= gensim - 0.10 and > 0.10.
    """
    from gensim.models import Word2Vec

    from groundwords.evaluation.similarity import similarity_spearman

    lines = LEE.read_text(encoding="utf-8").splitlines()
    sents = [tokenize(line) for line in lines]
    hp = dict(dim=32, window=5, negatives=5, sample=1e-3, epochs=8, alpha=0.08)
    g = Word2Vec(sents, sg=1, vector_size=hp["dim"], window=hp["window"], negative=hp["negatives"],
                 sample=hp["sample"], epochs=hp["epochs"], alpha=hp["alpha"], min_count=3, seed=0, workers=1)
    rho_gensim = similarity_spearman(list(g.wv.index_to_key), g.wv.vectors, WS353)["rho"]

    vocab = build_vocab(lines, min_count=3)
    words = vocab["word"].tolist()
    assert set(words) == set(g.wv.index_to_key)
    enc = encode_token_lists(sents, words)
    with torch.random.fork_rng(devices=[]):
        prev = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            model, hist, _ = train_sgns(enc.tokens, enc.offsets, vocab["count"].to_numpy(), batch_size=1024,
                                        seed=0, progress=False, engine=engine, **hp)
        finally:
            torch.set_num_threads(prev)
    res = similarity_spearman(words, model.word_vectors().numpy(), WS353)
    assert hist[-1]["total"] < hist[0]["total"]
    assert res["pairs_used"] == 102
    assert res["rho"] > 0.10
    assert res["rho"] >= rho_gensim - 0.10, (res["rho"], rho_gensim)


# ---------------------------------------------------------------------------------------------
# IESG


def synthetic(seed=0, n_w=30, n_ctx=3, n_fill=30, d=16, k=24, c=5.0, sigma=0.5, n_img=6, n_sent=20, scale=0.25):
    """A learnable toy world for IESG.

    Word ``w < n_w`` is an "image word" with ``n_ctx`` private context words (close to it in a
    latent space ``S``); each corpus sentence is an image word, its context words and two
    fillers. Its images are ``A s_w + noise``. The "pretrained" embeddings are
    ``E = (S + c r_w μ) · scale``: besides the latent part they share a direction μ with a
    word-specific weight r_w that images cannot predict (like the common, frequency-related
    direction of real SGNS vectors). Least squares (the L2 baseline) then regresses every image
    onto the mean of that component, and dot-product ranking favours words with large r_w,
    while IESG's contrastive terms (λ positive vs K = λ noise energies) ignore a shared direction
    and use the corpus contexts.
    """
    rng = np.random.default_rng(seed)
    V = n_w + n_w * n_ctx + n_fill
    ctx = n_w + np.arange(n_w * n_ctx).reshape(n_w, n_ctx)
    S = rng.normal(size=(V, d))
    S[ctx] = S[:n_w, None, :] + 0.5 * rng.normal(size=(n_w, n_ctx, d))
    mu = rng.normal(size=d)
    mu /= np.linalg.norm(mu)
    E = ((S + c * rng.uniform(0, 3, size=V)[:, None] * mu) * scale).astype(np.float32)
    sents = []
    for w in range(n_w):
        for _ in range(n_sent):
            s = [w, *ctx[w], *(n_w + n_w * n_ctx + rng.choice(n_fill, 2))]
            rng.shuffle(s)
            sents.append(s)
    A = rng.normal(size=(d, k)) / np.sqrt(d)
    img_word = np.repeat(np.arange(n_w), n_img)
    X = (S[img_word] @ A + sigma * rng.normal(size=(len(img_word), k))).astype(np.float32)
    test = np.zeros(len(img_word), bool)
    test[rng.permutation(len(img_word))[: len(img_word) // 3]] = True
    return dict(E=E, sents=sents, V=V, X=X, img_word=img_word, test=test, n_w=n_w)


def test_iesg_loss_decreases_and_beats_l2_baseline():
    D = synthetic(seed=0)
    tokens = np.concatenate(D["sents"])
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in D["sents"]])])
    counts = np.bincount(tokens, minlength=D["V"]).astype(float)
    train_rows = np.flatnonzero(~D["test"])
    train_words = D["img_word"][train_rows]

    W_l2 = fit_l2_projection(D["X"][train_rows], D["E"][train_words])
    offs, rows = word_image_index(train_words, train_rows, D["V"])
    c, x = skipgram_pairs(tokens, offsets, 5, shrink=False, centres=np.diff(offs) > 0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = IESG(D["E"], D["X"], offs, rows, counts=counts, negatives=5, seed=0)
        hist = fit_alternating(model, {"centre": torch.from_numpy(c), "context": torch.from_numpy(x)},
                               epochs=10, batch_size=16, lr=0.01, momentum=0.9, seed=0, progress=False)
    assert hist[-1]["word"] < 0.5 * hist[0]["word"]
    assert hist[-1]["image"] < 0.75 * hist[0]["image"]
    # the pretrained embeddings are the IESG initialisation, not modified in place
    assert not np.allclose(model.word_vectors().numpy(), D["E"])

    qi = np.flatnonzero(D["test"])
    qw = D["img_word"][qi]
    wc, ic = retrieval.build_candidates(qi, qw, np.arange(len(D["img_word"])), D["img_word"],
                                        np.arange(D["n_w"]), qi, n_negatives=20, seed=0)
    p1 = {}
    for name, (E, P) in {"l2": (D["E"], W_l2), "iesg": (model.word_vectors().numpy(),
                                                       model.projection().numpy())}.items():
        ranks = retrieval.matching_ranks(D["X"][qi] @ P, E, qw, wc)
        p1[name] = retrieval.precision_at_k(ranks, (1,))[1]
    # image -> word P@1 among 21 words, seeds 0-3 of synthetic(): IESG 0.75 / 0.50 / 0.53 / 0.77,
    # L2 0.35 / 0.37 / 0.37 / 0.35 (word -> image: IESG 0.23-0.50, L2 0.05-0.17)
    assert p1["iesg"] > p1["l2"] + 0.1, p1
    assert p1["iesg"] > 3 / 21  # far above chance (1/21)


def test_l2_projection_is_exact_least_squares():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 6))
    W = rng.normal(size=(6, 4))
    np.testing.assert_allclose(fit_l2_projection(X, X @ W), W, atol=1e-5)
    Y = rng.normal(size=(50, 4))
    np.testing.assert_allclose(fit_l2_projection(X, Y), np.linalg.lstsq(X, Y, rcond=None)[0], atol=1e-5)
    # ridge shrinks
    assert np.linalg.norm(fit_l2_projection(X, Y, ridge=100.0)) < np.linalg.norm(fit_l2_projection(X, Y))


def test_l2_baseline_by_sgd_reaches_least_squares_and_is_deterministic():
    """The paper's L2 baseline is trained (Momentum SGD); with enough steps on a well-posed problem it
    reaches the exact least-squares solution, and a short budget stays closer to zero (implicit ridge)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 6)).astype(np.float32) / np.sqrt(6)
    W = rng.normal(size=(6, 4)).astype(np.float32)
    Y = X @ W + 0.01 * rng.normal(size=(64, 4)).astype(np.float32)
    exact = fit_l2_projection(X, Y)
    W_sgd, loss = fit_l2_sgd(X, Y, steps=3000, batch_size=16, lr=0.01, momentum=0.9, seed=0)
    np.testing.assert_allclose(W_sgd, exact, atol=2e-2)
    assert loss < 0.01
    W_short, _ = fit_l2_sgd(X, Y, steps=5, batch_size=16, lr=0.01, momentum=0.9, seed=0)
    assert np.linalg.norm(W_short) < 0.5 * np.linalg.norm(exact)
    again, _ = fit_l2_sgd(X, Y, steps=3000, batch_size=16, lr=0.01, momentum=0.9, seed=0)
    assert np.array_equal(W_sgd, again)


def test_center_l2_uses_the_given_mean():
    from groundwords.studies.iesg.inputs import normalize_images
    x = np.array([[3.0, 1.0], [1.0, 1.0]], np.float32)
    out = normalize_images(x, "center_l2", mean=np.array([1.0, 1.0]))
    np.testing.assert_allclose(out, [[1.0, 0.0], [0.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(normalize_images(x, "l2"), axis=1), 1.0, rtol=1e-6)


def test_iesg_random_images_belong_to_the_word():
    offs, rows = word_image_index(np.array([2, 2, 0, 2]), np.array([7, 8, 9, 5]), 4)
    assert offs.tolist() == [0, 1, 1, 4, 4]
    m = IESG(np.zeros((4, 3)), np.zeros((10, 2)), offs, rows, counts=np.ones(4))
    drawn = m.random_images(torch.tensor([2] * 200 + [0] * 10)).numpy()
    assert set(drawn[:200]) == {5, 7, 8} and set(drawn[200:]) == {9}
    with pytest.raises(ValueError):
        m.random_images(torch.tensor([1]))


# ---------------------------------------------------------------------------------------------
# word-image tables


def test_image_split_is_by_image_and_seeded():
    from groundwords.grounding.word_images import with_split

    rng = np.random.default_rng(0)
    pairs = pd.DataFrame({"word": [f"w{i}" for i in rng.integers(0, 30, 500)],
                          "image_id": [f"img{i:03d}" for i in rng.integers(0, 160, 500)]})
    pairs["path"] = pairs["image_id"] + ".png"
    t1 = with_split(pairs, 0.0625, 0.125, seed=3)
    assert (t1.groupby("image_id")["split"].nunique() == 1).all()
    per_split = t1.drop_duplicates("image_id")["split"].value_counts()
    n = t1["image_id"].nunique()
    assert per_split["test"] == round(0.125 * n) and per_split["validation"] == round(0.0625 * n)
    t2 = with_split(pairs.sample(frac=1, random_state=1), 0.0625, 0.125, seed=3)  # order does not matter
    pd.testing.assert_frame_equal(t1, t2)
    t3 = with_split(pairs, 0.0625, 0.125, seed=4)
    assert not t1["split"].equals(t3["split"])


def test_folder_and_openmoji_word_attachment(tmp_path):
    from groundwords.grounding.word_images import class_word, content_words, folder_pairs, openmoji_pairs

    assert class_word("Great_White-Shark") == "shark" and class_word("dog") == "dog"
    assert content_words("beach with umbrella") == ["beach", "umbrella"]
    assert content_words("a button (blood type)") == ["blood", "type"]
    for cls, files in {"n01": ["a.JPEG", "b.png", "notes.txt"], "golden_retriever": ["x.jpg"]}.items():
        (tmp_path / "tree" / cls).mkdir(parents=True)
        for f in files:
            (tmp_path / "tree" / cls / f).write_bytes(b"")
    df = folder_pairs(tmp_path / "tree", {"n01": "tench, Tinca tinca"})
    assert sorted(zip(df["word"], df["image_id"])) == [("retriever", "golden_retriever/x.jpg"),
                                                        ("tench", "n01/a.JPEG"), ("tench", "n01/b.png")]
    (tmp_path / "om").mkdir()
    (tmp_path / "om" / "1F436.png").write_bytes(b"")  # dog face
    (tmp_path / "om" / "1F3D6.png").write_bytes(b"")  # beach with umbrella
    om = openmoji_pairs(tmp_path / "om")
    assert sorted(zip(om["image_id"], om["word"])) == [("1F3D6", "beach"), ("1F3D6", "umbrella"),
                                                       ("1F436", "dog"), ("1F436", "face")]


def test_wordimages_cli(tmp_path):
    from groundwords.grounding.word_images import main, read_word_images

    for cls in ("cat", "red_fox"):
        (tmp_path / "tree" / cls).mkdir(parents=True)
        for i in range(8):
            (tmp_path / "tree" / cls / f"{i}.jpg").write_bytes(b"")
    out = tmp_path / "wi.tsv"
    assert run_cli(main, ["folder", "--root", str(tmp_path / "tree"), "--out", str(out), "--images-out",
                          str(tmp_path / "images.tsv"), "--test-frac", "0.25", "--val-frac", "0.125"]) == 0
    df = read_word_images(out)
    assert list(df.columns) == ["word", "image_id", "path", "split"] and set(df["word"]) == {"cat", "fox"}
    assert (df["split"] == "test").sum() == 4
    imgs = pd.read_csv(tmp_path / "images.tsv", sep="\t")
    assert list(imgs.columns) == ["id", "path", "status"] and len(imgs) == 16
    assert run_cli(main, ["folder", "--root", str(tmp_path / "nope"), "--out", str(out)]) == 2


# ---------------------------------------------------------------------------------------------
# text corpus


def test_textcorpus_reads_plain_gz_bz2_identically(tmp_path):
    from groundwords.text.corpora import build_text_corpus, read_corpus

    text = "Hello, World! It's an x-ray.\n\nsecond  line\tthere\r\nünïcode wörds\n" * 3
    raw = text.encode("utf-8")
    (tmp_path / "c.txt").write_bytes(raw)
    (tmp_path / "c.txt.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "c.txt.bz2").write_bytes(bz2.compress(raw))
    outs = []
    for name in ("c.txt", "c.txt.gz", "c.txt.bz2"):
        out = tmp_path / f"{name}.tok"
        build_text_corpus(tmp_path / name, out, vocab_out=tmp_path / f"{name}.vocab", min_count=1)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] == outs[2]
    sents = read_corpus(tmp_path / "c.txt.tok")
    assert sents[0] == ["hello", "world", "it's", "an", "x-ray"] and len(sents) == 9
    assert (tmp_path / "c.txt.vocab").read_text().splitlines()[0] == "word\tcount"


def test_textcorpus_long_lines_and_max_bytes(tmp_path):
    from groundwords.text.corpora import iter_lines, iter_sentences

    words = [f"w{i}" for i in range(3000)]
    (tmp_path / "one.txt").write_text(" ".join(words), encoding="utf-8")  # a text8-like single line
    pieces = list(iter_lines(tmp_path / "one.txt", long_line=1000, block=256))
    assert all(len(p.encode()) <= 1000 for p in pieces) and len(pieces) > 10
    assert " ".join(pieces).split() == words  # cut at whitespace only
    capped = [t for s in iter_sentences(tmp_path / "one.txt", max_bytes=100) for t in s]
    assert capped == " ".join(words)[:100].split()  # exactly the first 100 bytes (last word may be cut)


def test_textcorpus_enwiki_sample(tmp_path):
    from groundwords.text.corpora import main

    out = tmp_path / "wiki.txt"
    assert run_cli(main, ["--source", "enwiki-sample", "--out", str(out), "--max-bytes", "20000"]) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines and lines[0].startswith("anarchism")
    assert all(t == t.lower() for t in lines[0].split()[:50])


# ---------------------------------------------------------------------------------------------
# the stage, end to end


def test_iesg_stage_cli_end_to_end(tmp_path):
    from groundwords.studies.iesg.matching import RESULT_COLUMNS
    from groundwords.studies.iesg.stage import main

    D = synthetic(seed=1, n_w=12, n_sent=15)
    name = [f"word{i}" for i in range(D["V"])]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(" ".join(name[t] for t in s) + "\n" for s in D["sents"]), encoding="utf-8")
    ids = [f"img{i:03d}" for i in range(len(D["img_word"]))]
    write_features(tmp_path / "feats.h5", ids, D["X"])
    split = np.where(D["test"], "test", "train")
    pd.DataFrame({"word": [name[w] for w in D["img_word"]], "image_id": ids, "path": [i + ".png" for i in ids],
                  "split": split}).to_csv(tmp_path / "wi.tsv", sep="\t", index=False)

    assert run_cli(main, ["pretrain", "--corpus", str(corpus), "--min-count", "1", "--out-dir", str(tmp_path / "sgns"),
                          "--dim", "8", "--epochs", "2", "--batch-size", "256", "--no-progress"]) == 0
    for f in ("vectors.npy", "vocab.txt", "vectors.txt", "loss.csv", "train.json", "context_vectors.npy", "vocab.tsv"):
        assert (tmp_path / "sgns" / f).is_file(), f
    args = ["--word-images", str(tmp_path / "wi.tsv"), "--features", str(tmp_path / "feats.h5")]
    assert run_cli(main, ["train", "--sgns", str(tmp_path / "sgns"), "--corpus", str(corpus), *args,
                          "--out-dir", str(tmp_path / "iesg"), "--epochs", "2", "--no-progress"]) == 0
    info = json.loads((tmp_path / "iesg" / "train.json").read_text())
    assert info["train_pairs_used"] == int((~D["test"]).sum()) and info["n_examples"] > 0
    assert np.load(tmp_path / "iesg" / "projection_iesg.npy").shape == (D["X"].shape[1], 8)
    loss = pd.read_csv(tmp_path / "iesg" / "loss.csv")
    assert list(loss.columns) == ["epoch", "word", "image", "total", "seconds", "examples_per_s"]

    out = tmp_path / "res.tsv"
    assert run_cli(main, ["evaluate", "--model-dir", str(tmp_path / "iesg"), *args, "--out-tsv", str(out),
                          "--ranks-tsv", str(tmp_path / "ranks.tsv")]) == 0
    res = pd.read_csv(out, sep="\t")
    assert list(res.columns) == RESULT_COLUMNS and len(res) == 4
    assert set(zip(res["model"], res["direction"])) == {(m, d) for m in ("l2", "iesg")
                                                         for d in ("image_to_word", "word_to_image")}
    assert ((res["p_at_1"] <= res["p_at_5"]) & (res["p_at_5"] <= res["p_at_10"])).all()
    assert (res["pairs_used"] == int(D["test"].sum())).all()
    # 12 image words: image -> word has at most 11 negatives; word -> image the other test images
    assert (res.loc[res["direction"] == "image_to_word", "n_candidates"] == 12).all()
    ranks = pd.read_csv(tmp_path / "ranks.tsv", sep="\t")
    assert len(ranks) == int(D["test"].sum()) and "iesg_image_to_word" in ranks.columns
    # errors are one clear line, exit code 2
    assert run_cli(main, ["evaluate", "--model-dir", str(tmp_path / "nope"), *args, "--out-tsv", str(out)]) == 2


def test_corpus_download_is_verified_by_sha256(tmp_path):
    """`textcorpus download` keeps a file only when its sha256 matches (served from 127.0.0.1)."""
    import bz2
    import functools
    import hashlib
    import http.server
    import threading

    from groundwords.cli import run_cli
    from groundwords.text import corpora as textcorpus

    served = tmp_path / "srv"
    served.mkdir()
    payload = bz2.compress(b"the cat sat on the mat\nthe dog ran\n")
    (served / "corpus.txt.bz2").write_bytes(payload)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/corpus.txt.bz2"
        good = hashlib.sha256(payload).hexdigest()
        out = tmp_path / "data" / "corpus.txt.bz2"
        assert run_cli(textcorpus.main, ["download", "--url", url, "--sha256", "0" * 64, "--out", str(out)]) == 2
        assert not out.exists()
        sha1 = hashlib.sha1(payload).hexdigest()
        assert run_cli(textcorpus.main, ["download", "--url", url, "--checksum", "sha1:" + "0" * 40,
                                         "--out", str(out)]) == 2
        assert not out.exists()
        assert run_cli(textcorpus.main, ["download", "--url", url, "--checksum", "md5:nothex",
                                         "--out", str(out)]) == 2
        assert run_cli(textcorpus.main, ["download", "--url", url, "--checksum", "sha1:" + sha1,
                                         "--out", str(out)]) == 0
        out.unlink()
        assert run_cli(textcorpus.main, ["download", "--url", url, "--sha256", good, "--out", str(out)]) == 0
        assert out.read_bytes() == payload
        textcorpus.build_text_corpus(out, tmp_path / "c.txt")
        assert textcorpus.read_corpus(tmp_path / "c.txt") == [["the", "cat", "sat", "on", "the", "mat"],
                                                             ["the", "dog", "ran"]]
    finally:
        srv.shutdown()


def test_text8_style_zip_corpus(tmp_path):
    """A single-file .zip holding one huge line (text8's shape) is read, cut into sentences of <= 10k tokens."""
    import zipfile

    from groundwords.cli import run_cli
    from groundwords.text import corpora as textcorpus

    words = [f"w{i % 97}" for i in range(25_000)]
    z = tmp_path / "text8.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("text8", " " + " ".join(words))  # text8 starts with a space and has no newline
    textcorpus.build_text_corpus(z, tmp_path / "c.txt")
    sents = textcorpus.read_corpus(tmp_path / "c.txt")
    assert [t for s in sents for t in s] == words
    assert max(map(len, sents)) <= textcorpus.MAX_SENTENCE_TOKENS
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as zf:
        zf.writestr("a", "x")
        zf.writestr("b", "y")
    assert run_cli(textcorpus.main, ["--source", str(two), "--out", str(tmp_path / "o.txt")]) == 2
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    assert run_cli(textcorpus.main, ["--source", str(tmp_path / "bad.zip"), "--out", str(tmp_path / "o.txt")]) == 2
