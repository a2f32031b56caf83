"""Tests of PIXIE (models/pixie.py): SGNS identity without visual features, VAE, KL, embeddings. CPU, a few s."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from groundwords.models.pixie import PIXIE, VisualVAE
from groundwords.models.sgns import SGNS
from groundwords.text.skipgram import skipgram_pairs
from groundwords.training import fit

V, DIM = 20, 8


def _pairs():
    tokens = np.tile(np.arange(V), 30)
    offsets = np.arange(0, len(tokens) + 1, 10)
    counts = np.bincount(tokens, minlength=V).astype(float)
    c, x = skipgram_pairs(tokens, offsets, 2, rng=0)
    return counts, {"centre": torch.from_numpy(c), "context": torch.from_numpy(x)}


def _pairs_per_word(data):
    return np.bincount(data["centre"].numpy(), minlength=V)


def _features(x_dim=6, seed=1):
    return torch.rand(V, x_dim, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("absent", ["zero_rows", "mask_false"])
@pytest.mark.parametrize("optimizer,sparse", [("sgd", True), ("adam", False)])
def test_no_visual_features_is_bit_identical_to_sgns(absent, optimizer, sparse):
    counts, data = _pairs()
    if absent == "zero_rows":
        feats, mask = torch.zeros(V, 6), None
    else:
        feats, mask = _features(), torch.zeros(V, dtype=torch.bool)
    kw = dict(epochs=3, batch_size=64, lr=0.5 if optimizer == "sgd" else 1e-2, optimizer=optimizer,
              seed=3, progress=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        sg = SGNS(V, DIM, counts=counts, negatives=3, sparse=sparse, seed=7)
        h_sg = fit(sg, data, **kw)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        px = PIXIE(V, DIM, counts=counts, visual_features=feats, has_visual=mask, negatives=3, J=2,
                   hidden=16, sparse=sparse, seed=7, pairs_per_word=_pairs_per_word(data))
        h_px = fit(px, data, **kw)
    assert not px.has_visual.any()
    assert torch.equal(px.emb.weight, sg.emb.weight)
    assert torch.equal(px.out.weight, sg.out.weight)
    assert torch.equal(px.word_vectors(), sg.word_vectors())
    assert [h["total"] for h in h_px] == [h["total"] for h in h_sg]
    assert torch.equal(px.concat_vectors()[:, DIM:], torch.zeros(V, DIM))


def test_vae_elbo_improves_when_trained_alone():
    g = torch.Generator().manual_seed(0)
    # synthetic features in [0, 1] on a 2-d manifold
    t = torch.rand(512, 2, generator=g)
    x = torch.sigmoid(4 * (t @ torch.randn(2, 12, generator=g)) + 0.05 * torch.randn(512, 12, generator=g))
    torch.manual_seed(0)
    vae = VisualVAE(12, latent=4, hidden=32, seed=0)
    with torch.no_grad():
        before = vae.elbo(x, J=8).mean().item()
    hist = fit(vae, {"x": x}, epochs=30, batch_size=64, lr=1e-2, optimizer="adam", progress=False)
    with torch.no_grad():
        after = vae.elbo(x, J=8).mean().item()
    assert math.isfinite(after) and after > before + 10
    assert hist[-1]["total"] < hist[0]["total"]


def test_kl_closed_form_by_hand():
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)]])
    # ½[(1 + 1 − 1 − 0) + (4 + 0 − 1 − log 4)] = 2 − log 2
    assert VisualVAE.kl(mu, logvar).item() == pytest.approx(2 - math.log(2), rel=1e-6)
    # and agrees with torch.distributions
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
    assert VisualVAE.kl(mu, logvar).item() == pytest.approx(torch.distributions.kl_divergence(q, p).sum().item())


def test_log_likelihood_is_diagonal_gaussian():
    vae = VisualVAE(5, latent=3, hidden=7, seed=0)
    x, z = torch.rand(4, 5), torch.randn(2, 4, 3)
    mean, logvar = vae.decode(z)
    assert ((mean > 0) & (mean < 1)).all()
    ref = torch.distributions.Normal(mean, (0.5 * logvar).exp()).log_prob(x).sum(-1)
    torch.testing.assert_close(vae.log_likelihood(x, z), ref)
    assert vae.sample(torch.zeros(4, 3), torch.zeros(4, 3), J=5).shape == (5, 4, 3)


def test_vae_init_does_not_touch_global_rng():
    torch.manual_seed(0)
    a = torch.rand(3)
    torch.manual_seed(0)
    v1 = VisualVAE(5, latent=3, hidden=7, seed=4)
    b = torch.rand(3)
    v2 = VisualVAE(5, latent=3, hidden=7, seed=4)
    assert torch.equal(a, b)
    assert all(torch.equal(p, q) for p, q in zip(v1.parameters(), v2.parameters()))


def test_pixie_embeddings_shapes_and_training():
    counts, data = _pairs()
    feats = _features()
    mask = torch.arange(V) % 2 == 0
    feats[~mask] = 0.0  # words without features
    torch.manual_seed(0)
    px = PIXIE(V, DIM, counts=counts, visual_features=feats, negatives=3, J=2, hidden=16, seed=0,
               pairs_per_word=_pairs_per_word(data))
    assert torch.equal(px.has_visual, mask)
    e0 = px.emb.weight.detach().clone()
    enc0 = px.vae.enc.weight.detach().clone()
    hist = fit(px, data, epochs=4, batch_size=64, lr=1e-2, optimizer="adam", progress=False)
    assert all(math.isfinite(h[k]) for h in hist for k in ("total", "ce", "nll_x", "kl"))
    assert hist[-1]["total"] < hist[0]["total"]
    assert not torch.equal(px.vae.enc.weight, enc0)  # the VAE is trained jointly
    assert not torch.equal(px.emb.weight, e0)

    plus, cat = px.word_vectors(), px.concat_vectors()
    assert plus.shape == (V, DIM) and cat.shape == (V, 2 * DIM)
    e = px.emb.weight.detach()
    assert torch.equal(cat[:, :DIM], e)
    assert torch.equal(cat[~mask, DIM:], torch.zeros(int((~mask).sum()), DIM))
    assert (cat[mask, DIM:].abs().sum(1) > 0).all()
    assert torch.equal(plus[~mask], e[~mask])
    with torch.no_grad():
        mu = px.vae.encode(feats[mask])[0]
    torch.testing.assert_close(plus[mask], e[mask] + mu)


def test_decoder_variance_floor_bounds_the_likelihood():
    """log σ² never goes below log(min_var): a constant feature cannot make log p(x|z) unbounded."""
    vae = VisualVAE(4, latent=2, hidden=8, seed=0, min_var=0.01)
    with torch.no_grad():
        vae.dec_logvar.bias.fill_(-50.0)  # the network asks for a vanishing variance
    _, logvar = vae.decode(torch.zeros(3, 2))
    assert torch.all(logvar >= math.log(0.01) - 1e-6)
    assert torch.allclose(logvar, torch.full_like(logvar, math.log(0.01)), atol=1e-4)
    x = torch.full((3, 4), 0.5)
    bound = -0.5 * 4 * (math.log(2 * math.pi) + math.log(0.01))  # the likelihood's maximum at the floor
    assert torch.all(vae.log_likelihood(x, torch.zeros(1, 3, 2)) <= bound + 1e-4)


def _fixed_vae_terms(px):
    """Replace the VAE's stochastic terms by fixed per-word values: nll_w = 1 + word id, kl_w = 0.5, z = 0."""
    ids = {tuple(row.tolist()): w for w, row in enumerate(px.visual_features)}

    def terms(x, J=1):
        w = torch.tensor([ids[tuple(r.tolist())] for r in x], dtype=torch.float32)
        return {"z": torch.zeros(J, len(x), px.dim), "mu": torch.zeros(len(x), px.dim),
                "logvar": torch.zeros(len(x), px.dim), "nll": 1.0 + w, "kl": torch.full_like(w, 0.5)}
    px.vae.terms = terms


@pytest.mark.parametrize("batch_size", [7, 64, 10_000])
def test_each_words_vae_term_counts_once_per_epoch(batch_size):
    """Eq. 9: one VAE term per word beside all its pairs. Over any split of the epoch's pairs into
    batches, B_b · (total_b − text_b) adds up to Σ_w (nll_w + KL_w) over the visual words: exactly once each."""
    counts, data = _pairs()
    feats = _features()
    mask = torch.arange(V) % 3 != 0
    feats[~mask] = 0.0
    px = PIXIE(V, DIM, counts=counts, visual_features=feats, negatives=3, hidden=16, seed=0,
               pairs_per_word=_pairs_per_word(data))
    _fixed_vae_terms(px)
    perm = torch.randperm(len(data["centre"]), generator=torch.Generator().manual_seed(1))
    vae_sum = 0.0
    with torch.no_grad():
        for s in range(0, len(perm), batch_size):
            idx = perm[s:s + batch_size]
            out = px.loss({k: v[idx] for k, v in data.items()})
            vae_sum += (out["total"] - out["ce"]).item() * len(idx)
    expected = sum(1.0 + w + 0.5 for w in range(V) if mask[w])
    assert vae_sum == pytest.approx(expected, rel=1e-4)


def test_per_batch_weighting_counts_a_word_in_every_batch():
    """The ablation ``vae_weighting='per_batch'`` (the pre-fix behaviour) counts a word's VAE term once
    per batch it appears in: with small batches, many times per epoch."""
    counts, data = _pairs()
    feats = _features()
    px = PIXIE(V, DIM, counts=counts, visual_features=feats, negatives=3, hidden=16, seed=0,
               vae_weighting="per_batch")
    _fixed_vae_terms(px)
    n_batches_with = torch.zeros(V)
    vae_sum = 0.0
    with torch.no_grad():
        for s in range(0, len(data["centre"]), 16):
            batch = {k: v[s:s + 16] for k, v in data.items()}
            out = px.loss(batch)
            vae_sum += (out["total"] - out["ce"]).item() * len(batch["centre"])
            n_batches_with[batch["centre"].unique()] += 1
    expected = float(sum((1.0 + w + 0.5) * n_batches_with[w] for w in range(V)))
    assert vae_sum == pytest.approx(expected, rel=1e-4)
    assert n_batches_with.min() > 5  # many times the paper's once per epoch


def test_per_word_weighting_needs_the_pair_counts():
    counts, _ = _pairs()
    with pytest.raises(ValueError, match="pairs_per_word"):
        PIXIE(V, DIM, counts=counts, visual_features=_features(), hidden=16)
    with pytest.raises(ValueError, match="vae_weighting"):
        PIXIE(V, DIM, counts=counts, visual_features=_features(), hidden=16, vae_weighting="sometimes")
