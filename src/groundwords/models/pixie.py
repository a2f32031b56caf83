"""PIXIE (Ailem et al., EMNLP 2018): skip-gram with negative sampling + a VAE over per-word visual features.

Model (the paper's §2.2-2.3)::

    z_w ~ N(0, I),   x_w | z_w ~ N(μ_θ(z_w), diag σ²_θ(z_w))             (decoder, eq. 3)
    y_wc ~ Ber(σ[v_c · (e_w + z_w)])                                     (eqs. 4-5)
    q_φ(z_w | x_w) = N(μ_φ(x_w), diag σ²_φ(x_w))                         (encoder, eq. 8)

and the per-word Monte-Carlo ELBO (eq. 9), with J reparameterised samples
``z_w^(j) = μ_φ(x_w) + σ_φ(x_w) ⊙ ε``::

    L̃_w = 1/J Σ_j log p_θ(x_w|z_w^(j)) − KL(q_φ(z_w|x_w) ‖ N(0, I))
          + 1/J Σ_{c,j} [log σ(v_c·(e_w + z_w^(j))) + Σ_i log σ(−v_{c'_i}·(e_w + z_w^(j)))]

Words without visual features have ``z_w = 0`` and no VAE term (``m_w = 0``); the text term
then is exactly SGNS (:class:`~groundwords.models.sgns.SGNS`).

Networks (the paper's "Hyper-parameter setting"): encoder ``x → tanh(hidden) → (μ, log σ²)``
(linear outputs); decoder ``z → tanh(hidden) → (sigmoid mean, linear log σ²)``: the decoder's
diagonal covariance is an output of the network, as in eq. 3. The sigmoid means assume features
scaled into [0, 1]. Two numerical guards the paper does not mention: the decoder variance has a
smooth floor ``MIN_VAR`` (log σ² = log MIN_VAR + softplus(raw − log MIN_VAR)), without which a
constant feature dimension makes the Gaussian likelihood unbounded and training ends in NaN,
and the encoder's log σ² is clamped to ±10.

Batches are (centre, context) pairs as for SGNS (:func:`~groundwords.text.skipgram.skipgram_pairs`),
not the paper's minibatches of words. Eq. 9 has, per word, **one** VAE term beside the sum over
**all** of that word's (context, negatives) terms; summed over the words that is the objective
``Σ_w (−log p(x_w|z_w) + KL_w) + Σ_pairs text``. A pass over the pairs visits word w in many
batches, so each batch weighs a distinct visual centre word's VAE term by
``occ_b(w) / N(w)`` (its pairs in the batch over its pairs in the epoch, ``pairs_per_word``):
over one epoch the weights of w add up to exactly 1, and the batch loss is an unbiased estimate
of the paper's objective (``vae_weighting="per_word"``, the default). ``"total"`` is, like SGNS,
a mean over the B pairs: ``text + vae_weight · Σ_w occ_b(w)/N(w) · (−log p(x_w|z_w) + KL_w) / B``.

``vae_weighting="per_batch"`` (an ablation, not the paper) gives every distinct visual word of a
batch weight 1: a word with pairs in n batches then has its VAE term counted n times per epoch
(hundreds of times for a frequent word), the 1280-d Gaussian likelihood swamps the text term in
the encoder and the context vectors, and word similarity falls far below SGNS (see
``docs/fidelity.md``). The same samples z_w^(j) are used by the VAE and the text term (the latent
is shared). The J samples of a pair share its N negatives.

Identity with SGNS: :class:`PIXIE` subclasses :class:`SGNS`, so the embeddings are created and
initialised by the very same code from the global torch RNG; the VAE is initialised from its
own ``torch.Generator(seed)`` without touching the global RNG, and the reparameterisation noise
comes from another private generator. A batch without visual centre words is SGNS's loss
verbatim, so with no visual features at all the losses and trained embeddings are bit-identical
to SGNS's for the same seed and data.

Which words the VAE runs on in a batch (``vae_rows``, the same objective either way):
``"batch"`` (the default) runs it on the batch's distinct visual centre words, the fewest rows;
finding them (``nonzero``, ``unique``) makes the host wait for the device once per step.
``"all"`` runs it on every visual word every batch, each weighted by its occurrences in the
batch (0 for the absent ones, which then add nothing to the loss or the gradients): static
shapes and no host sync, for GPUs when the visual vocabulary is small enough to encode each
step; it draws other random samples than ``"batch"`` (one per visual word rather than per
distinct word of the batch), so the numbers differ, the expectation does not.

Inference embeddings: :meth:`PIXIE.word_vectors` is PIXIE+ (eq. 10: ``e_w + m_w μ_φ(x_w)``),
:meth:`PIXIE.concat_vectors` is PIXIE⊕ (eq. 11: ``[e_w, m_w μ_φ(x_w)]``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from groundwords.models.grads import zeroed_grad
from groundwords.models.noise import seeded_generator
from groundwords.models.sgns import SGNS

LOG_2PI = math.log(2 * math.pi)
MIN_VAR = 1e-3  # decoder variance floor (features scaled to [0, 1]: σ >= 0.03)
LOGVAR_BOUND = 10.0  # encoder log σ² kept in [-10, 10] so exp() cannot overflow
VAE_WEIGHTINGS = ("per_word", "per_batch")
VAE_ROWS = ("batch", "all")


class VisualVAE(nn.Module):
    """Gaussian VAE: one tanh hidden layer each way, sigmoid-mean diagonal-Gaussian decoder."""

    def __init__(self, x_dim: int, latent: int = 100, hidden: int = 500, *, seed: int = 0,
                 min_var: float = MIN_VAR):
        super().__init__()
        self.x_dim, self.latent, self.hidden, self.seed = x_dim, latent, hidden, seed
        self.min_logvar = math.log(min_var)
        # build without consuming the global RNG, then initialise from a private generator
        with torch.random.fork_rng(devices=[]):
            self.enc = nn.Linear(x_dim, hidden)
            self.enc_mu = nn.Linear(hidden, latent)
            self.enc_logvar = nn.Linear(hidden, latent)
            self.dec = nn.Linear(latent, hidden)
            self.dec_mu = nn.Linear(hidden, x_dim)
            self.dec_logvar = nn.Linear(hidden, x_dim)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in (self.enc, self.enc_mu, self.enc_logvar, self.dec, self.dec_mu, self.dec_logvar):
                bound = 1.0 / math.sqrt(layer.in_features)  # = torch's default Linear init range
                layer.weight.uniform_(-bound, bound, generator=g)
                layer.bias.uniform_(-bound, bound, generator=g)
        self.generator: torch.Generator | None = None  # reparameterisation noise

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q_φ(z|x): (μ, log σ²), each (N, latent)."""
        h = torch.tanh(self.enc(x))
        return self.enc_mu(h), self.enc_logvar(h).clamp(-LOGVAR_BOUND, LOGVAR_BOUND)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """p_θ(x|z): (sigmoid mean, log σ²), each (..., x_dim)."""
        h = torch.tanh(self.dec(z))
        # a smooth floor on the variance: features that are (nearly) constant over the words would
        # otherwise drive σ² -> 0 and log p(x|z) -> +inf (the likelihood is unbounded)
        logvar = self.min_logvar + F.softplus(self.dec_logvar(h) - self.min_logvar)
        return torch.sigmoid(self.dec_mu(h)), logvar

    def sample(self, mu: torch.Tensor, logvar: torch.Tensor, J: int = 1) -> torch.Tensor:
        """J reparameterised samples μ + σ ⊙ ε: (J, N, latent)."""
        self.generator = seeded_generator(self.generator, self.seed + 1, mu.device)
        eps = torch.randn((J, *mu.shape), generator=self.generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    @staticmethod
    def kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(N(μ, diag e^logvar) ‖ N(0, I)) per row: ½ Σ (σ² + μ² − 1 − log σ²)."""
        return 0.5 * (logvar.exp() + mu.pow(2) - 1.0 - logvar).sum(-1)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p_θ(x|z) for z (J, N, latent), x (N, x_dim): (J, N)."""
        mean, logvar = self.decode(z)
        return -0.5 * (LOG_2PI + logvar + (x - mean).pow(2) * torch.exp(-logvar)).sum(-1)

    def terms(self, x: torch.Tensor, J: int = 1) -> dict[str, torch.Tensor]:
        """``z`` (J, N, latent), ``mu``/``logvar`` (N, latent), ``nll`` and ``kl`` (N,)."""
        mu, logvar = self.encode(x)
        z = self.sample(mu, logvar, J)
        return {"z": z, "mu": mu, "logvar": logvar, "nll": -self.log_likelihood(x, z).mean(0),
                "kl": self.kl(mu, logvar)}

    def elbo(self, x: torch.Tensor, J: int = 1) -> torch.Tensor:
        """Monte-Carlo ELBO per row of x: 1/J Σ_j log p(x|z^(j)) − KL (N,)."""
        t = self.terms(x, J)
        return -t["nll"] - t["kl"]

    def loss(self, batch: dict[str, torch.Tensor], J: int = 1) -> dict[str, torch.Tensor]:
        """:mod:`groundwords.studies.wield.stage` interface for training the VAE alone on ``batch["x"]``."""
        t = self.terms(batch["x"], J)
        nll, kl = t["nll"].mean(), t["kl"].mean()
        return {"total": nll + kl, "nll_x": nll, "kl": kl}

    def sparse_parameters(self) -> list[nn.Parameter]:
        return []


def visual_table(visual_features, has_visual, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (V, k) float32, mask (V,) bool) of a model's per-word visual features, checked;
    ``has_visual`` defaults to the rows that are not all zero."""
    feats = torch.as_tensor(visual_features, dtype=torch.float32)
    if feats.ndim != 2 or feats.shape[0] != vocab_size:
        raise ValueError(f"visual_features has shape {tuple(feats.shape)}, expected ({vocab_size}, k)")
    mask = (feats != 0).any(1) if has_visual is None else torch.as_tensor(has_visual, dtype=torch.bool)
    if mask.shape != (vocab_size,):
        raise ValueError(f"has_visual has shape {tuple(mask.shape)}, expected ({vocab_size},)")
    return feats, mask


class PIXIE(SGNS):
    """SGNS whose visual centre words get ``e_w + z_w``, z_w from a VAE over their features.

    ``visual_features``: (V, x_dim) float tensor (rows of words without features are ignored);
    ``has_visual``: bool (V,) mask, default: the rows that are not all zero. Batches as SGNS:
    ``centre`` and ``context`` (B,) word ids.
    """

    def __init__(self, vocab_size: int, dim: int = 100, *, counts, visual_features: torch.Tensor,
                 has_visual: torch.Tensor | None = None, negatives: int = 5, J: int = 1,
                 hidden: int = 500, vae_weight: float = 1.0, min_var: float = MIN_VAR, noise_power: float = 0.75,
                 pairs_per_word=None, vae_weighting: str = "per_word", vae_rows: str = "batch", sparse: bool = False,
                 seed: int = 0):
        super().__init__(vocab_size, dim, counts=counts, negatives=negatives, noise_power=noise_power,
                         sparse=sparse, seed=seed)
        if J < 1:
            raise ValueError(f"J must be >= 1 (got {J})")
        if vae_weighting not in VAE_WEIGHTINGS:
            raise ValueError(f"vae_weighting must be one of {VAE_WEIGHTINGS} (got {vae_weighting!r})")
        if vae_rows not in VAE_ROWS:
            raise ValueError(f"vae_rows must be one of {VAE_ROWS} (got {vae_rows!r})")
        feats, mask = visual_table(visual_features, has_visual, vocab_size)
        self.J, self.vae_weight, self.vae_weighting, self.vae_rows = J, vae_weight, vae_weighting, vae_rows
        if vae_weighting == "per_word":
            if pairs_per_word is None:
                raise ValueError("vae_weighting='per_word' needs pairs_per_word (each word's pairs per epoch)")
            ppw = torch.as_tensor(np.asarray(pairs_per_word), dtype=torch.float32)
            if ppw.shape != (vocab_size,):
                raise ValueError(f"pairs_per_word has shape {tuple(ppw.shape)}, expected ({vocab_size},)")
            self.register_buffer("pairs_per_word", ppw.clamp(min=1.0))
        self.register_buffer("visual_features", feats.clone())
        self.register_buffer("has_visual", mask.clone())
        self.vae = VisualVAE(feats.shape[1], latent=dim, hidden=hidden, seed=seed, min_var=min_var)
        # vae_rows "all": the visual words (W,), their features (W, k) and each word's row among them
        # (W for the words without features: a zero latent); derived, so not in the state dict
        words = mask.nonzero().squeeze(1)
        slot = torch.full((vocab_size,), len(words), dtype=torch.long)
        slot[words] = torch.arange(len(words))
        self.register_buffer("visual_words", words, persistent=False)
        self.register_buffer("visual_slot", slot, persistent=False)

    def _share(self, occ: torch.Tensor, words: torch.Tensor, dtype) -> torch.Tensor:
        """Each visual word's weight in the batch from its occurrences ``occ``: occ_b(w) / N(w)
        (``per_word``: its VAE term once per epoch) or 1 if present (``per_batch``, the ablation)."""
        if self.vae_weighting == "per_word":
            return occ.to(dtype) / self.pairs_per_word[words]
        return (occ > 0).to(dtype)

    def _vae_term(self, t: dict, share: torch.Tensor, B: int) -> torch.Tensor:
        return self.vae_weight * (share * (t["nll"] + t["kl"])).sum() / B

    @staticmethod
    def _vae_stats(t: dict, present: torch.Tensor) -> dict[str, torch.Tensor]:
        """``nll_x``/``kl``: means over the batch's visual words (weights ``n_*``: their number)."""
        n_vis = present.sum()
        n = n_vis.clamp(min=1.0)
        return {"nll_x": (t["nll"].detach() * present).sum() / n, "kl": (t["kl"].detach() * present).sum() / n,
                "n_nll_x": n_vis, "n_kl": n_vis}

    def _text_ce(self, context: torch.Tensor, noise: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """The negative-sampling term for centre representations ``h`` (J, B, d), by autograd."""
        J, B = h.shape[:2]
        u_pos, u_neg = self.out(context), self.out(noise)  # (B, d), (B, K, d)
        pos = (u_pos[None] * h).sum(-1)  # (J, B)
        neg = (u_neg[None] * h[:, :, None, :]).sum(-1)  # (J, B, K)
        return (F.softplus(-pos).sum() + F.softplus(neg).sum()) / (B * J)

    def _distinct_rows(self, centre: torch.Tensor, vis: torch.Tensor, dtype):
        """``vae_rows="batch"``: the batch's visual pairs ``rows``, their distinct centre words, each
        pair's index among those (``inverse``), the words' VAE terms ``t``, ``share`` and presence."""
        rows = vis.nonzero().squeeze(1)
        words, inverse, occ = torch.unique(centre[rows], return_inverse=True, return_counts=True)
        t = self.vae.terms(self.visual_features[words], self.J)  # one latent per distinct visual word
        return rows, inverse, t, self._share(occ, words, dtype), torch.ones_like(occ, dtype=dtype)

    def _all_rows(self, centre: torch.Tensor, dtype):
        """``vae_rows="all"``: each pair's row among the visual words (``slot``; W: none), every visual
        word's VAE terms ``t``, its ``share`` and presence (0/1) in the batch."""
        W, slot = len(self.visual_words), self.visual_slot[centre]
        occ = torch.zeros(W + 1, dtype=dtype, device=centre.device).index_add_(
            0, slot, torch.ones(len(centre), dtype=dtype, device=centre.device))[:W]
        t = self.vae.terms(self.visual_features[self.visual_words], self.J)
        return slot, t, self._share(occ, self.visual_words, dtype), (occ > 0).to(dtype)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Mean over the batch of −L̃ (eq. 9); ``ce``: the text part, ``nll_x``/``kl``: VAE parts."""
        centre, context = batch["centre"].long(), batch["context"].long()
        vis = self.has_visual[centre]
        if self.vae_rows == "batch" and not bool(vis.any()):
            return super().loss(batch)  # z_w = 0 and no VAE term: exactly SGNS
        B, J = centre.shape[0], self.J
        e = self.emb(centre)  # (B, d)
        noise = self.noise((B, self.negatives), e.device)  # drawn exactly as SGNS does
        if self.vae_rows == "batch":
            rows, inverse, t, share, present = self._distinct_rows(centre, vis, e.dtype)
            z = torch.zeros((J, B, self.dim), dtype=e.dtype, device=e.device).index_copy(1, rows, t["z"][:, inverse])
        else:
            slot, t, share, present = self._all_rows(centre, e.dtype)
            z = torch.cat([t["z"], t["z"].new_zeros(J, 1, self.dim)], 1)[:, slot]  # 0 without features
        ce = self._text_ce(context, noise, e[None] + z)
        return {"total": ce + self._vae_term(t, share, B), "ce": ce, **self._vae_stats(t, present)}

    @torch.no_grad()
    def manual_grads(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """:meth:`loss` with its gradients written into ``.grad`` (``fit(manual_grads=True)``): the text
        term's by hand (:meth:`SGNS.text_grads`), the VAE's by autograd through the VAE alone, with
        ``∂ce/∂z`` fed in as a constant (the chain rule, ``Σ z · ∂ce/∂z`` as a surrogate), so the
        same maths as :meth:`loss` + backward up to float rounding, and the same random draws."""
        centre, context = batch["centre"].long(), batch["context"].long()
        vis = self.has_visual[centre]
        if self.vae_rows == "batch" and not bool(vis.any()):
            return super().manual_grads(batch)  # exactly SGNS (and no gradient for the VAE)
        B, J = centre.shape[0], self.J
        e = F.embedding(centre, self.emb.weight)  # (B, d)
        noise = self.noise((B, self.negatives), e.device)  # drawn exactly as SGNS does
        with torch.enable_grad():
            if self.vae_rows == "batch":
                rows, inverse, t, share, present = self._distinct_rows(centre, vis, e.dtype)
            else:
                slot, t, share, present = self._all_rows(centre, e.dtype)
            vae = self._vae_term(t, share, B)
        zd = t["z"].detach()
        if self.vae_rows == "batch":
            h = e[None].repeat(J, 1, 1).index_add_(1, rows, zd[:, inverse])  # e_w + z_w (J, B, d)
        else:
            h = e[None] + torch.cat([zd, e.new_zeros(J, 1, self.dim)], 1)[:, slot]
        ce, dh = self.text_grads(context, noise, h)
        zeroed_grad(self.emb.weight).index_add_(0, centre, dh.sum(0) if J > 1 else dh[0])
        if self.vae_rows == "batch":  # ∂ce/∂z per latent row
            dz = torch.zeros_like(zd).index_add_(1, inverse, dh[:, rows])
        else:
            dz = e.new_zeros(J, zd.shape[1] + 1, self.dim).index_add_(1, slot, dh)[:, :-1]
        params = list(self.vae.parameters())
        with torch.enable_grad():
            grads = torch.autograd.grad(vae + (t["z"] * dz).sum(), params)
        for p, g in zip(params, grads):
            p.grad = g
        return {"total": ce + vae.detach(), "ce": ce, **self._vae_stats(t, present)}

    @torch.no_grad()
    def visual_means(self, chunk: int = 4096) -> torch.Tensor:
        """m_w μ_φ(x_w) for every word (V, dim); zero rows for words without features."""
        out = torch.zeros_like(self.emb.weight)
        rows = self.has_visual.nonzero().squeeze(1)
        for s in range(0, len(rows), chunk):
            r = rows[s:s + chunk]
            out[r] = self.vae.encode(self.visual_features[r])[0].to(out.dtype)
        return out

    @torch.no_grad()
    def word_vectors(self) -> torch.Tensor:
        """PIXIE+ (eq. 10): e_w + m_w μ_φ(x_w)."""
        return self.emb.weight.detach() + self.visual_means()

    @torch.no_grad()
    def concat_vectors(self) -> torch.Tensor:
        """PIXIE⊕ (eq. 11): [e_w, m_w μ_φ(x_w)] (V, 2·dim)."""
        return torch.cat([self.emb.weight.detach(), self.visual_means()], 1)
