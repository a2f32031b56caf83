"""Planted-signal tests (issue 13): does each model do what its paper says, on data with known truth?

The data (:mod:`groundwords.data.planted`, fixtures in ``conftest.py``): visual words whose images
cluster by a visual *class* and whose sentences are drawn from an independent text *topic*.
Benchmark ``visual`` scores pairs of different topics by class (only images can tell), ``text``
scores pairs of different classes by topic (only text can tell), ``hidden`` is the part of
``visual`` made of two words withheld from the per-word features. Every model is trained by the
stage's own function (the code the DAG runs) and evaluated with ``evaluate.similarity_spearman``.
Settings are small (seconds per run) and seeded, so every number below is deterministic on a
given platform; margins are set well inside what was measured (numbers in each docstring and in
``docs/planted.md``).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from groundwords.data import planted as planted_mod
from groundwords.files import read_features, write_features
from groundwords.grounding.word_images import read_word_images
from groundwords.studies.pixie import baselines as pb
from groundwords.studies.pixie import retrieval as sentret
from groundwords.studies.pixie import stage as pixie
from groundwords.studies.wield.stage import train as train_wield
from groundwords.text.captions import build_examples
from groundwords.text.corpora import read_corpus
from groundwords.text.vocab import load_vocab

MEASURED: dict[str, dict] = {}  # name -> numbers; GROUNDWORDS_PLANTED_REPORT=F.json writes them (docs/planted.md)


def _rho(p, vectors, record: str | None = None):
    r = {k: round(v, 3) for k, v in p.rho(vectors).items()}
    if record:
        MEASURED[record] = r
    return r


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    path = os.environ.get("GROUNDWORDS_PLANTED_REPORT")
    if path:
        with open(path, "w") as fh:
            json.dump(MEASURED, fh, indent=1, sort_keys=True)


# ---------------------------------------------------------------------------------------------
# the generator


def test_make_is_seeded_and_plants_what_it_says():
    a, b, c = planted_mod.make(seed=3), planted_mod.make(seed=3), planted_mod.make(seed=4)
    assert a.sentences == b.sentences and a.hidden == b.hidden
    assert a.benchmarks["visual"].equals(b.benchmarks["visual"])
    assert a.sentences != c.sentences
    wc, wt = a.word_class, a.word_topic
    # a class's words have distinct topics, so same class never means same topic (and vice versa)
    for cl in set(wc.values()):
        topics = [wt[w] for w in a.visual_words if wc[w] == cl]
        assert len(set(topics)) == len(topics)
    v, t = a.benchmarks["visual"], a.benchmarks["text"]
    assert all(wt[x] != wt[y] for x, y in zip(v["word1"], v["word2"]))
    assert all(wc[x] != wc[y] for x, y in zip(t["word1"], t["word2"]))
    # hidden words: spread over the classes, every class keeps visible words
    per_class = pd.Series([wc[w] for w in a.hidden]).value_counts()
    assert per_class.max() - per_class.min() <= 1
    assert all(sum(wc[w] == cl and w not in a.hidden for w in a.visual_words) >= 1 for cl in set(wc.values()))
    # text_cue = 0: no cue word at all; text_cue = 1: one in every sentence
    assert not any(tok.endswith("cue") for s in a.sentences for tok in s)
    cue = planted_mod.make(seed=3, text_cue=1.0)
    assert all(sum(tok.endswith("cue") for tok in s) == 1 for s in cue.sentences)
    # image features: word mean = mean of its images, images of a class cluster
    w = a.visual_words[0]
    ids = a.images.loc[a.images["word"] == w, "image_id"]
    np.testing.assert_allclose(a.word_features[w], np.mean([a.image_features[i] for i in ids], 0), rtol=1e-5)
    assert set(a.images["split"]) == {"train", "validation", "test"}


def test_benchmark_ceilings_are_high(planted):
    """ρ of the true indicator (same class / same topic) with the noisy scores: 0.87 for all three
    (balanced binary truth: at most √3/2 ≈ 0.87 even without noise)."""
    MEASURED["ceiling"] = {name: round(planted.ceiling(name), 3) for name in ("visual", "text", "hidden")}
    for name in ("visual", "text", "hidden"):
        assert planted.ceiling(name) > 0.75, name


def test_write_gives_the_pipelines_formats(planted, planted_files):
    f = planted_files
    assert read_corpus(f["corpus"]) == planted.sentences
    vocab = load_vocab(f["vocab"])
    assert set(planted.visual_words) <= set(vocab["word"])
    wi = read_word_images(f["word_images"])
    assert len(wi) == len(planted.images)
    ids, feats, _ = read_features(f["encodings"])
    assert feats.shape == (len(planted.images), planted.params["dim"])
    words, x, attrs = read_features(f["visual_none_all"])
    assert attrs["scaling"] == "none" and words == sorted(planted.visual_words)
    np.testing.assert_allclose(x, np.stack([planted.word_features[w] for w in words]), rtol=1e-5, atol=1e-5)
    words_h, x_h, _ = read_features(f["visual_minmax_hidden"])
    assert not set(words_h) & set(planted.hidden) and 0 <= x_h.min() and x_h.max() <= 1
    assert f["hidden"].read_text().split() == planted.hidden
    caps = pd.read_csv(f["captions"], sep="\t", dtype=str)
    assert list(caps.columns) == ["rank", "row", "id", "caption", "status", "path"]
    assert read_features(f["encodings_pca"])[1].shape[1] == 32
    assert set(read_features(f["word_images_pca"])[0]) >= set(planted.visual_words)


def test_stage_clis_run_on_the_written_files(planted, planted_files, tmp_path):
    """The files are what the stages' command lines read: ``pixie features`` (with its own
    --hide draw), ``pixie_baselines cnn`` and ``evaluate`` (the benchmark files, and
    ``learned+image`` with WIELD's word_images.h5)."""
    from groundwords.cli import run_cli
    from groundwords.evaluation import similarity as evaluate
    from groundwords.studies.pixie import baselines as pixie_baselines

    f = planted_files
    assert run_cli(pixie.main, ["features", "--word-images", str(f["word_images"]), "--features", str(f["encodings"]),
                                "--out", str(tmp_path / "v.h5"), "--vocab", str(f["vocab"]), "--hide", "5",
                                "--hidden-out", str(tmp_path / "h.txt")]) == 0
    assert len(read_features(tmp_path / "v.h5")[0]) == len(planted.visual_words) - 5
    assert run_cli(pixie_baselines.main, ["cnn", "--visual", str(f["visual_none_all"]),
                                          "--out", str(tmp_path / "cnn.txt")]) == 0
    argv = ["--vectors", str(tmp_path / "cnn.txt"), "--word-images", str(f["word_images_h5"]), "--out",
            str(tmp_path / "eval.tsv")]
    for name in ("visual", "text", "hidden"):
        argv += ["--benchmark", f"planted_{name}={f['bench_' + name]}"]
    assert run_cli(evaluate.main, argv) == 0
    ev = pd.read_csv(tmp_path / "eval.tsv", sep="\t").set_index(["benchmark", "representation"])
    assert ev.loc[("planted_visual", "learned"), "coverage"] == 1.0
    assert ev.loc[("planted_visual", "learned"), "rho"] == pytest.approx(planted.rho(tmp_path / "cnn.txt")["visual"])


# ---------------------------------------------------------------------------------------------
# the two modalities on their own


def test_sgns_learns_text_pairs_not_visual_pairs(planted, planted_sgns):
    """SGNS (``pixie train`` without --visual), text_cue = 0. Measured (planted seeds 0/1/2):
    visual 0.01 / 0.03 / −0.05, text 0.73 / 0.74 / 0.76."""
    r = _rho(planted, planted_sgns, "sgns")
    assert r["text"] > 0.6, r
    assert abs(r["visual"]) < 0.2, r


def test_cnn_learns_visual_pairs_not_text_pairs(planted, planted_files, tmp_path):
    """The raw per-word features (``pixie_baselines cnn``). Measured (seeds 0/1/2): visual
    0.75 / 0.78 / 0.72, text −0.07 / −0.01 / −0.00."""
    pb.write_cnn(planted_files["visual_none_all"], tmp_path / "cnn.txt")
    r = _rho(planted, tmp_path / "cnn.txt", "cnn")
    assert r["visual"] > 0.6, r
    assert abs(r["text"]) < 0.2, r


# ---------------------------------------------------------------------------------------------
# WIELD (paper 000)

WIELD_KW = dict(dim=32, epochs=10, batch_size=64, lr=1e-2, threads=1, progress=False)
# WIELD's §6.1: the cross-entropy is "relatively larger" than the MSE and γ = 50 "would roughly
# balance these magnitudes". Unit-variance planted features give an MSE of ~2.2 against a CE of
# ~4.3 (ratio 2); scaled by 0.2 the MSE starts at ~0.13 (ratio ~32, ~45 at the end), the paper's
# regime. Same seed, so same text, captions and benchmarks: only the image scale differs.
WIELD_FEATURE_SCALE = 0.2


@pytest.fixture(scope="module")
def wield_runs(planted, planted_files, tmp_path_factory):
    """ρ of the WIELD runs the tests compare (one training each); ``paper_*`` on the images scaled
    to the paper's loss balance, ``unit_*`` on the unit-variance images of ``planted_files``."""
    from conftest import PLANTED_SEED

    d = tmp_path_factory.mktemp("wield")
    paper = planted_mod.make(seed=PLANTED_SEED, feature_scale=WIELD_FEATURE_SCALE)
    assert paper.captions.equals(planted.captions) and paper.sentences == planted.sentences
    fp = paper.write(d / "data")
    runs = {  # name: (files, train kwargs)
        "g0": (fp, dict(gamma=0.0)),  # γ = 0 never sees the images (asserted below)
        "paper_g10": (fp, dict(gamma=10.0)),
        "paper_g50": (fp, dict(gamma=50.0)),
        "paper_g250": (fp, dict(gamma=250.0)),
        "unit_g10": (planted_files, dict(gamma=10.0)),
        "caption_window_g0": (fp, dict(gamma=0.0, window=100_000)),  # §6.2: the whole caption as context
        "paper_wordtarget_g50": (fp, dict(gamma=50.0, image_target="word")),  # §6.2: word-specific targets
    }
    out = {}
    for name, (f, kw) in runs.items():
        images = f["word_images_pca"] if kw.get("image_target") == "word" else f["encodings_pca"]
        train_wield(f["captions"], f["captions_vocab"], images, d / name, **{**WIELD_KW, **kw})
        out[name] = _rho(planted, d / name, f"wield_{name}")
        if kw["gamma"] > 0:
            loss = pd.read_csv(d / name / "loss.csv")
            MEASURED[f"wield_{name}"]["ce_over_mse"] = [round(float(loss["ce"].iloc[i] / loss["mse"].iloc[i]), 1)
                                                        for i in (0, -1)]
    return out


@pytest.mark.parametrize("gamma", [10, 50, 250])
def test_wield_gamma_recovers_visual_pairs(wield_runs, gamma):
    """WIELD γ > 0 vs γ = 0 (vanilla CBOW) on the captions, the paper's softmax objective, in the
    paper's loss balance. Measured (seeds 0/1/2): visual 0.73 / 0.76 / 0.72 at γ = 10, 0.74 /
    0.75 / 0.73 at γ = 50, 0.73 / 0.75 / 0.73 at γ = 250, vs −0.03 / 0.10 / −0.04 at γ = 0."""
    r = wield_runs
    assert r[f"paper_g{gamma}"]["visual"] > r["g0"]["visual"] + 0.4, r
    assert r[f"paper_g{gamma}"]["visual"] > 0.5, r


def test_wield_text_cost_grows_with_gamma(wield_runs):
    """A finding, not a wish: WIELD's image loss overwrites what CBOW learned from the text, the
    more so the larger γ is relative to the losses' magnitudes.

    Paper's balance (CE / MSE 32-36 in the first epoch, 45-50 in the last; seeds 0/1/2): text
    ρ 0.70 / 0.64 / 0.62 at γ = 0, 0.63 / 0.59 / 0.56 at γ = 10 (visual already 0.73 / 0.76 /
    0.72), 0.19 / 0.22 / 0.20 at γ = 50 (the paper's balance point) and −0.07 / −0.04 / −0.05 at
    γ = 250 (the paper's best γ). Unit-variance images (CE / MSE ≈ 2): −0.15 / −0.13 / −0.14 at
    γ = 10. Each context embedding regresses the caption's image target; once the MSE
    term dominates the gradient, the vectors' topic structure is overwritten, not just outweighed
    (unit scale, γ = 10: the visual words' vectors double in norm, 8.6 vs 4.2, and removing the
    top 4 / 8 / 12 principal components leaves text ρ −0.03 / 0.05 / 0.02). Asserted: the cost at
    γ = 10 in the paper's regime is under 0.15, at γ = 50 over 0.3, at γ = 250 text is gone
    (< 0.15), and at unit scale γ = 10 already costs over 0.4. If WIELD changes, update these
    documented bounds.
    """
    r = wield_runs
    g0 = r["g0"]["text"]
    assert g0 > 0.55, r
    assert r["paper_g10"]["text"] > g0 - 0.15, r
    assert r["paper_g50"]["text"] < g0 - 0.3, r
    assert r["paper_g250"]["text"] < 0.15, r
    assert r["unit_g10"]["text"] < g0 - 0.4, r
    assert r["unit_g10"]["visual"] > r["g0"]["visual"] + 0.4, r


def test_wield_gamma0_ignores_images_exactly(planted_files, tmp_path):
    """γ = 0 must not depend on the image targets at all: permuted targets, same vectors."""
    f = planted_files
    ids, feats, attrs = read_features(f["encodings_pca"])
    perm = tmp_path / "perm.h5"
    write_features(perm, ids, np.random.default_rng(0).permutation(feats) * 3.0 + 1.0, attrs)
    kw = {**WIELD_KW, "epochs": 1}
    train_wield(f["captions"], f["captions_vocab"], f["encodings_pca"], tmp_path / "a", gamma=0.0, **kw)
    train_wield(f["captions"], f["captions_vocab"], perm, tmp_path / "b", gamma=0.0, **kw)
    a, b = np.load(tmp_path / "a" / "vectors.npy"), np.load(tmp_path / "b" / "vectors.npy")
    assert np.array_equal(a, b)
    # ... and γ > 0 does depend on them
    train_wield(f["captions"], f["captions_vocab"], perm, tmp_path / "c", gamma=10.0, **kw)
    assert not np.array_equal(a, np.load(tmp_path / "c" / "vectors.npy"))


def test_wield_caption_window_control_is_not_visual(wield_runs):
    """§6.2: CBOW whose context is the whole caption (γ = 0). The paper's worry is that WIELD's
    gain is only caption co-occurrence; here captions share words by topic, never by class, so
    the control must stay blind to the visual pairs while γ > 0 sees them.
    Measured (seeds 0/1/2): visual −0.06 / 0.01 / 0.01, text 0.74 / 0.73 / 0.74 (γ = 10 with
    caption targets: visual 0.73 / 0.76 / 0.72)."""
    r = wield_runs
    assert abs(r["caption_window_g0"]["visual"]) < 0.2, r
    assert r["caption_window_g0"]["text"] > 0.4, r
    assert r["paper_g10"]["visual"] > r["caption_window_g0"]["visual"] + 0.4, r


def test_wield_word_target_control_targets_and_effect(planted_files, wield_runs):
    """§6.2: each example's target is the *centre word's* own averaged image (words of one
    caption get different targets). The target is predicted from the context words, so it is
    the *neighbours* of a visual word that learn its image, not the word itself; its own vector
    learns the averaged images of its neighbours, which here are topic filler words whose
    word-level images mix every class of the topic. So on planted data the control carries no
    class signal to the visual words. Measured (seeds 0/1/2, paper's loss balance): γ = 50 word
    targets visual −0.04 / 0.11 / −0.06 (γ = 0: −0.03 / 0.10 / −0.04; caption targets 0.74 /
    0.75 / 0.73), text 0.60 / 0.54 / 0.53. Asserted as documented: visual stays < 0.25 and far
    below the caption-target run."""
    f = planted_files
    caps = pd.read_csv(f["captions"], sep="\t", dtype=str, keep_default_na=False)
    words = load_vocab(f["captions_vocab"])["word"].tolist()
    wids = read_features(f["word_images_pca"])[0]
    ex, _ = build_examples(caps, words, wids, window=2, image_target="word")
    rows = pd.Index(wids).get_indexer(pd.Index(words))
    np.testing.assert_array_equal(ex.image_row, rows[ex.target])  # the centre word's own row
    per_caption = pd.DataFrame({"c": ex.caption, "r": ex.image_row}).groupby("c")["r"].nunique()
    assert (per_caption > 1).mean() > 0.9  # words of one caption: different targets
    r = wield_runs
    assert r["paper_wordtarget_g50"]["visual"] < 0.25, r
    assert r["paper_g50"]["visual"] > r["paper_wordtarget_g50"]["visual"] + 0.4, r


# ---------------------------------------------------------------------------------------------
# PIXIE's baselines (paper 002, §4.2): V-SGNS, IV-SGNS, CNN⊕SGNS, VAE⊕SGNS


def test_cnn_sgns_and_vae_sgns_add_vision_and_keep_text(planted, planted_files, planted_sgns, tmp_path):
    """Kiela & Bottou's concatenation, and the VAE's means concatenated the same way (each half
    L2-normalised). Measured (seed 0; seeds 1, 2 alike): CNN⊕SGNS visual 0.76 / text 0.72,
    VAE⊕SGNS 0.75 / 0.72, SGNS 0.01 / 0.73, VAE alone 0.75 / −0.05."""
    f = planted_files
    sg = _rho(planted, planted_sgns)
    pb.write_cnn(f["visual_none_all"], tmp_path / "cnn.txt")
    pb.concat_vectors(planted_sgns, tmp_path / "cnn.txt", tmp_path / "cnn_sgns.txt")
    pb.train_vae(f["visual_minmax_all"], tmp_path / "vae", dim=32, epochs=100, threads=1)
    pb.concat_vectors(planted_sgns, tmp_path / "vae", tmp_path / "vae_sgns.txt")
    for name in ("cnn_sgns.txt", "vae_sgns.txt"):
        r = _rho(planted, tmp_path / name, name.split(".")[0])
        assert r["visual"] > sg["visual"] + 0.5, (name, r, sg)
        assert r["text"] > sg["text"] - 0.1, (name, r, sg)
    vae = _rho(planted, tmp_path / "vae", "vae")
    assert vae["visual"] > 0.55 and abs(vae["text"]) < 0.25, vae


def test_vsgns_model_a_grounds_the_word_vectors(planted, planted_files, planted_sgns, planted_text_kw, tmp_path):
    """V-SGNS as the PIXIE paper implemented it: Lazaridou et al.'s model A (``visual_map=
    "identity"``: the max-margin term compares e_w with v_w directly, so dim = feature size, 64).
    Measured (seeds 0/1/2): visual 0.68 / 0.68 / 0.70, text 0.77 / 0.75 / 0.75 (SGNS dim 32:
    visual 0.01 / 0.03 / −0.05, text 0.73 / 0.74 / 0.76; SGNS dim 64: visual 0.09 / 0.01 / −0.08,
    text 0.74 / 0.77 / 0.77)."""
    sg = _rho(planted, planted_sgns)
    kw = {**planted_text_kw, "dim": planted.params["dim"]}
    pixie.train(planted_files["corpus"], planted_files["vocab"], None, tmp_path / "sgns64", **kw)
    _rho(planted, tmp_path / "sgns64", "sgns_dim64")
    pb.train_vsgns(planted_files["corpus"], planted_files["vocab"], planted_files["visual_none_all"],
                   tmp_path / "a", visual_map="identity", **kw)
    r = _rho(planted, tmp_path / "a", "vsgns_model_a_dim64")
    assert r["visual"] > sg["visual"] + 0.5, (r, sg)
    assert r["text"] > sg["text"] - 0.1, (r, sg)


def test_vsgns_model_b_grounds_the_map_not_the_vectors(planted, planted_files, planted_sgns, planted_text_kw, tmp_path):
    """A finding: the stage's default V-SGNS (``visual_map="linear"``, Lazaridou et al.'s model
    B, with a learned map M) barely changes the word vectors. The max-margin term is satisfied
    by M e_w (cos(M e_w, v_w) 0.62-0.64 vs −0.02-−0.01 for other words after training), but M
    can amplify a few class directions of e_w while the text's topic directions keep dominating
    the cosine of e_w itself. Measured (seeds 0/1/2): visual 0.07 / 0.19 / 0.02, text 0.71 /
    0.72 / 0.77 (SGNS 0.01 / 0.03 / −0.05 and 0.73 / 0.74 / 0.76; on an earlier draw 10 epochs
    gave 0.09, visual weight 5 gave 0.17 / text 0.70); model A (previous test) 0.68-0.70. The PIXIE paper says it
    implemented model A; the DAG's V-SGNS is now model A on PCA-reduced features
    (``pixie.vsgns.model: A``, ``test_planted_pixie_iesg.py``); model B stays an option.
    Asserted as documented: the map is aligned, the vectors gain less than 0.35 on visual pairs."""
    sg = _rho(planted, planted_sgns)
    info = pb.train_vsgns(planted_files["corpus"], planted_files["vocab"], planted_files["visual_none_all"],
                          tmp_path / "b", **planted_text_kw)
    r = _rho(planted, tmp_path / "b", "vsgns_model_b_linear")
    MEASURED["vsgns_model_b_alignment"] = info["alignment_after"]
    assert info["alignment_after"]["cos_match"] > info["alignment_after"]["cos_mismatch"] + 0.4, info["alignment_after"]
    assert r["visual"] < sg["visual"] + 0.35, (r, sg)
    assert r["text"] > sg["text"] - 0.1, (r, sg)


# IV-SGNS trained to convergence: the linear map is solved exactly (its epochs and lr are unused);
# the nonlinear one needs ~1,000 epochs on a 40-word fitting set (1 batch per epoch; see the last test).
IV_CONVERGED = {"linear": dict(), "nonlinear": dict(epochs=1000, lr=1e-3)}


@pytest.mark.parametrize("mapping", ["linear", "nonlinear"])
def test_ivsgns_adds_vision_when_text_predicts_it(mapping, planted_cue, planted_cue_files, planted_cue_sgns, tmp_path):
    """IV-SGNS (Collell et al.): f maps SGNS vectors to visual features; every word gets
    [e_w, f(e_w)], the words with images too. f can only help where text predicts vision, so
    this runs on the ``text_cue = 1`` data (a class cue word in every sentence; with text_cue = 0
    a text→vision map has nothing to generalise from and only memorises its training words).
    Measured (all features, converged; seeds 0/1/2): linear visual 0.73 / 0.67 / 0.72, text
    0.74 / 0.71 / 0.72; nonlinear 0.76 / 0.74 / 0.76, 0.73 / 0.74 / 0.72; SGNS visual 0.09 /
    −0.03 / 0.05, text 0.73 / 0.74 / 0.74."""
    p, f = planted_cue, planted_cue_files
    sg = _rho(p, planted_cue_sgns, "cue_sgns")
    pb.train_ivsgns(planted_cue_sgns, f["visual_none_all"], tmp_path / "iv", mapping=mapping,
                    threads=1, **IV_CONVERGED[mapping])
    r = _rho(p, tmp_path / "iv", f"cue_ivsgns_{mapping}")
    assert r["visual"] > sg["visual"] + 0.35, (r, sg)
    assert r["text"] > sg["text"] - 0.1, (r, sg)


@pytest.mark.parametrize("mapping", ["linear", "nonlinear"])
def test_ivsgns_star_propagates_to_hidden_words(mapping, planted_cue, planted_cue_files, planted_cue_sgns, tmp_path):
    """IV-SGNS(∗) (PIXIE's Table 3): f fitted without the 24 hidden words' features; their
    imagined features must carry their class. Propagation from text to vision needs text that
    carries visual information, hence ``text_cue = 1``. Measured on the ``hidden`` pairs (48
    pairs, ceiling 0.87), seeds 0/1/2: SGNS 0.08 / 0.01 / −0.05, linear (∗) 0.34 / 0.45 / 0.42
    (R² 0.51-0.54), nonlinear (∗) 0.71 / 0.56 / 0.53 (R² 0.91-0.93)."""
    p, f = planted_cue, planted_cue_files
    sg = _rho(p, planted_cue_sgns)
    info = pb.train_ivsgns(planted_cue_sgns, f["visual_none_hidden"], tmp_path / "iv", mapping=mapping,
                           threads=1, **IV_CONVERGED[mapping])
    assert info["n_fit_words"] == len(p.visual_words) - len(p.hidden)
    r = _rho(p, tmp_path / "iv", f"cue_ivsgns_{mapping}_star")
    MEASURED[f"cue_ivsgns_{mapping}_star"]["fit_r2"] = round(info["fit_r2_end"], 3)
    assert r["hidden"] > sg["hidden"] + 0.2, (r, sg)


def test_ivsgns_stage_defaults_fit_small_fitting_sets(planted_cue, planted_cue_files, planted_cue_sgns, tmp_path):
    """A finding, fixed: with the stage's former defaults (Adam lr 1e-3, 200 epochs, batch 64) a map
    fitted on 40 words got 200 updates and explained ~10% of the features' variance (R² 0.10 linear,
    0.26 nonlinear here; the issue saw 0.12-0.27 on the embedded default), and IV-SGNS(∗) barely
    propagated (hidden ρ 0.10 / 0.21 / 0.04 vs SGNS 0.08 / 0.01 / −0.05, seeds 0/1/2). Now the linear
    map is solved exactly (least squares) and the nonlinear one runs 1,000 epochs by default:
    measured R² 0.53 linear and 0.90 nonlinear (hidden ρ 0.71), seed 0."""
    lin = pb.train_ivsgns(planted_cue_sgns, planted_cue_files["visual_none_hidden"], tmp_path / "lin",
                          mapping="linear", threads=1)
    old = pb.train_ivsgns(planted_cue_sgns, planted_cue_files["visual_none_hidden"], tmp_path / "old",
                          mapping="nonlinear", epochs=200, threads=1)
    new = pb.train_ivsgns(planted_cue_sgns, planted_cue_files["visual_none_hidden"], tmp_path / "new",
                          mapping="nonlinear", threads=1)
    MEASURED["cue_ivsgns_star_defaults_r2"] = {"linear": round(lin["fit_r2_end"], 3),
                                               "nonlinear_200": round(old["fit_r2_end"], 3),
                                               "nonlinear_default": round(new["fit_r2_end"], 3)}
    assert old["fit_r2_end"] < 0.4, old["fit_r2_end"]
    assert lin["fit_r2_end"] > 0.45 and new["fit_r2_end"] > 0.8, (lin["fit_r2_end"], new["fit_r2_end"])
    assert _rho(planted_cue, tmp_path / "new")["hidden"] > _rho(planted_cue, planted_cue_sgns)["hidden"] + 0.3


# ---------------------------------------------------------------------------------------------
# retrieval (PIXIE §4.3, Table 6): frozen word vectors under a GRU sentence encoder


def test_retrieval_with_grounded_vectors_beats_sgns(planted, planted_files, planted_text_kw, tmp_path):
    """Image↔caption retrieval (``sentret.train``) on the planted captions and images: a caption
    names its image's word among topic fillers, so a sentence encoder must read the visual word's
    class from its (frozen) vector. V-SGNS (model A) vectors carry the class, SGNS vectors only
    the topic. The retrieval val/test images are kept out of V-SGNS's per-word features
    (``pixie features --exclude-split``, as the DAG does). Measured (seeds 0/1/2): mean R@1 over
    both directions V-SGNS 0.75 / 0.75 / 0.71 vs SGNS 0.24 / 0.28 / 0.30 (R@5 i2s 0.93 / 1.00 /
    0.93 vs 0.64 / 0.79 / 0.57; dim 64, GRU hidden 64, 10 epochs; 28 test images, 132 captions)."""
    f = planted_files
    kw = {**planted_text_kw, "dim": planted.params["dim"]}
    split = tmp_path / "split.tsv"
    sentret.write_split(f["captions"], f["encodings"], split)
    feats = tmp_path / "visual.h5"
    pixie.make_features(f["word_images"], f["encodings"], feats, scale="none", exclude_split=split)
    pixie.train(f["corpus"], f["vocab"], None, tmp_path / "sgns", **kw)
    pb.train_vsgns(f["corpus"], f["vocab"], feats, tmp_path / "vsgns", visual_map="identity", **kw)
    r1 = {}
    for name in ("sgns", "vsgns"):
        info = sentret.train(tmp_path / name, tmp_path / f"ret-{name}", manifest=f["captions"], features=f["encodings"],
                             hidden=64, epochs=10, lr=2e-3, lr_step=10, batch_size=64, threads=1, progress=False)
        r1[name] = np.mean([info["test"][d]["recall"]["1"] for d in ("i2s", "s2i")])
        MEASURED[f"retrieval_{name}"] = {d: info["test"][d]["recall"] for d in ("i2s", "s2i")}
        assert json.loads((tmp_path / f"ret-{name}" / "train.json").read_text())["splits"]["test"]["captions"] > 50
    MEASURED["retrieval_mean_r1"] = {k: round(float(v), 3) for k, v in r1.items()}
    assert r1["vsgns"] > r1["sgns"] + 0.25, r1
