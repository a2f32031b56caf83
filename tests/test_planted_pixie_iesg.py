"""Planted-signal tests of PIXIE and IESG (issue 13): do they do what their papers say?

Data and fixtures: :mod:`groundwords.data.planted` and ``conftest.py`` (see ``tests/test_planted.py``
for the other models). Benchmark ``visual`` can only be learned from the images, ``text`` only
from the text, ``hidden`` is ``visual`` restricted to words withheld from the features. Every
model is trained by its stage's own function. Numbers in the docstrings were measured on the
default draw (seed 0) on 2 CPU cores; the margins sit well inside them.
"""

from __future__ import annotations

import pytest

from groundwords.data import planted as planted_mod
from groundwords.studies.iesg import stage as iesg
from groundwords.studies.pixie import stage as pixie


def _rho(p, path):
    return {k: round(v, 3) for k, v in p.rho(path).items()}


@pytest.fixture(scope="module")
def pixie_runs(planted, planted_files, planted_text_kw, tmp_path_factory):
    """PIXIE trained on all features, with the paper's weighting (per_word) and the old one, and with
    the VAE on every visual word each batch (vae_rows all, the static-shape GPU path)."""
    out = tmp_path_factory.mktemp("pixie")
    for name, kw in (("per_word", {}), ("per_batch", {"vae_weighting": "per_batch"}), ("all_rows", {"vae_rows": "all"})):
        pixie.train(planted_files["corpus"], planted_files["vocab"], planted_files["visual_minmax_all"], out / name,
                    **kw, **planted_text_kw)
    return out


@pytest.mark.parametrize("run", ["per_word", "all_rows"])
def test_pixie_grounds_visual_pairs_and_keeps_the_text(planted, planted_sgns, pixie_runs, run):
    """The paper's Table 2 pattern: PIXIE+ and PIXIE⊕ above SGNS on pairs only the images can tell,
    and no real loss on pairs only the text can tell. Measured (seed 0): SGNS visual 0.01 / text 0.73;
    PIXIE+ 0.70 / 0.76; PIXIE⊕ 0.73 / 0.75."""
    sg = _rho(planted, planted_sgns / "vectors.txt")
    for name in ("vectors.txt", "concat_vectors.txt"):
        r = _rho(planted, pixie_runs / run / name)
        assert r["visual"] > sg["visual"] + 0.45, (name, r, sg)
        assert r["text"] > sg["text"] - 0.08, (name, r, sg)


def test_pixie_per_batch_weighting_costs_the_text_signal(planted, planted_sgns, pixie_runs):
    """The pre-fix weighting (each word's VAE term once per batch instead of once per epoch, against
    eq. 9) lets the VAE swamp the text term: PIXIE⊕'s text ρ falls to 0.58 (per_word: 0.75)."""
    good = _rho(planted, pixie_runs / "per_word" / "concat_vectors.txt")
    old = _rho(planted, pixie_runs / "per_batch" / "concat_vectors.txt")
    assert good["text"] > old["text"] + 0.08, (good, old)


def test_pixie_star_does_not_propagate_on_planted_data(planted_cue, planted_cue_files, planted_cue_sgns,
                                                       planted_text_kw, tmp_path):
    """Table 3's mechanism (features of some words reaching words without features through shared
    contexts) is *weak* here, and we record it rather than hide it: with every sentence holding its
    subject's class cue word (``text_cue = 1``), PIXIE(∗) trained without the 24 hidden words'
    features gives ρ 0.13 on pairs of hidden words against SGNS's 0.08, while IV-SGNS(∗)'s explicit
    text→vision map reaches ~0.5 (``test_planted.py``). PIXIE's visible words are grounded as in the
    test above (visual 0.30 with a quarter of them hidden). We assert that PIXIE(∗) does not harm the
    hidden pairs and grounds the visible words; the propagation claim stays open (docs/fidelity.md)."""
    p, f = planted_cue, planted_cue_files
    sg = _rho(p, planted_cue_sgns / "vectors.txt")
    pixie.train(f["corpus"], f["vocab"], f["visual_minmax_hidden"], tmp_path / "star", **planted_text_kw)
    r = _rho(p, tmp_path / "star" / "vectors.txt")
    assert r["hidden"] > sg["hidden"] - 0.1, (r, sg)
    assert r["visual"] > sg["visual"] + 0.1, (r, sg)
    assert r["text"] > sg["text"] - 0.08, (r, sg)


@pytest.fixture(scope="module")
def iesg_cue(tmp_path_factory):
    """A draw where the text carries some class information (30 % of sentences hold the class cue):
    IESG's image term learns to predict an image's *contexts*, which only helps matching when the
    contexts say something about what the image shows (the paper's ImageNet words in Wikipedia)."""
    p = planted_mod.make(seed=0, text_cue=0.3)
    out = tmp_path_factory.mktemp("iesg_cue")
    f = p.write(out / "data")
    iesg.pretrain(f["corpus"], out / "sgns", vocab_tsv=f["vocab"], dim=32, epochs=5, progress=False)
    return p, f, out


def test_iesg_beats_the_l2_baseline_on_unseen_test_images(iesg_cue):
    """The paper's Tables 1-2 pattern on test images never seen in training (split by image), each
    true pair against 99 random candidates: IESG above the L2 baseline (trained the paper's way, by
    Momentum SGD with IESG's budget). Measured (seed 0, 43 test pairs): image→word P@1 IESG 0.60 vs
    L2 0.49; word→image P@1 0.26 vs 0.09, P@5 0.60 vs 0.40 (chance: 0.01 / 0.05)."""
    p, f, out = iesg_cue
    iesg.train(out / "sgns", f["corpus"], f["word_images"], f["encodings"], out / "model", progress=False)
    res = iesg.evaluate(out / "model", f["word_images"], f["encodings"], out / "m.tsv", image_pool="all")
    r = res.set_index(["model", "direction"])
    assert (r["pairs_used"] >= 40).all()
    i2w, w2i = r.xs("image_to_word", level=1), r.xs("word_to_image", level=1)
    assert i2w.loc["iesg", "p_at_1"] > 0.4 and w2i.loc["iesg", "p_at_5"] > 0.4  # far above chance
    assert w2i.loc["iesg", "p_at_5"] > w2i.loc["l2", "p_at_5"] + 0.1, r
    assert w2i.loc["iesg", "p_at_1"] > w2i.loc["l2", "p_at_1"] + 0.08, r
    assert i2w.loc["iesg", "p_at_1"] >= i2w.loc["l2", "p_at_1"], r


def test_vsgns_model_a_on_reduced_features_grounds_the_words(planted, planted_files, planted_sgns,
                                                             planted_text_kw, tmp_path):
    """The DAG's V-SGNS (``pixie.vsgns.model: A``, as the PIXIE paper ran it): the per-word features
    reduced by PCA to the text dimension (64 → 32 here), then e_w compared with v_w directly."""
    from groundwords.studies.pixie import baselines as pb

    pb.reduce_features(planted_files["visual_none_all"], tmp_path / "reduced.h5", planted_text_kw["dim"])
    pb.train_vsgns(planted_files["corpus"], planted_files["vocab"], tmp_path / "reduced.h5", tmp_path / "a",
                   visual_map="identity", **planted_text_kw)
    sg = _rho(planted, planted_sgns / "vectors.txt")
    r = _rho(planted, tmp_path / "a" / "vectors.txt")
    assert r["visual"] > sg["visual"] + 0.4, (r, sg)
    assert r["text"] > sg["text"] - 0.1, (r, sg)


def test_reduce_features_pads_when_words_are_fewer_than_dim(tmp_path):
    import numpy as np

    from groundwords.files import read_features, write_features
    from groundwords.studies.pixie import baselines as pb

    rng = np.random.default_rng(0)
    write_features(tmp_path / "f.h5", ["a", "b", "c", "d"], rng.normal(size=(4, 10)).astype(np.float32), {})
    info = pb.reduce_features(tmp_path / "f.h5", tmp_path / "r.h5", 6)
    ids, x, attrs = read_features(tmp_path / "r.h5")
    assert ids == ["a", "b", "c", "d"] and x.shape == (4, 6) and info["components"] == 4
    assert np.all(x[:, 4:] == 0) and np.all(np.abs(x[:, :3]).sum(0) > 0)
