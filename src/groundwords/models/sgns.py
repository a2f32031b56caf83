"""Skip-gram with negative sampling (SGNS, Mikolov et al. 2013), as a :mod:`groundwords.studies.wield.stage` model.

Model::

    loss(w, c) = −log σ(u_c · e_w) − Σ_{k=1..K} log σ(−u_{n_k} · e_w),   n_k ~ P_noise ∝ count^0.75

``E`` (input embeddings, the word vectors) and ``U`` (output/context embeddings) are
``nn.Embedding`` tables initialised as word2vec does (``E`` uniform in ±0.5/dim, ``U`` zero).
Noise words come from the Walker alias table of :func:`groundwords.models.noise.alias_table`
(exact O(1) sampling) with the model's own seeded ``torch.Generator``. Like word2vec, noise
words are not checked against the positive context word. ``"total"`` is the **mean** over the
batch, so with plain SGD the word2vec per-pair learning rate α corresponds to
``lr = α · batch_size`` (:func:`train_sgns` does that conversion). The updates of a word that
occurs many times in one batch add up, so very large batches over a tiny vocabulary can
diverge where word2vec's one-pair-at-a-time updates would not (batch 1024 is fine for the
Lee corpus' 2.9k words and larger vocabularies).

Examples (:func:`skipgram_pairs`) are built vectorised from token-id sentences, word2vec's way:

* optional frequent-word subsampling with gensim's formula (:func:`keep_probabilities`):
  a word of count ``c`` is kept with probability ``min(1, (sqrt(c/t) + 1) · t/c)``,
  ``t = sample · (total in-vocabulary count)``; dropped words are removed from the sentence
  **before** windowing, so the window reaches further (as in word2vec/gensim);
* for each centre position a window ``b`` drawn uniformly from ``1..window`` when
  ``shrink=True`` (word2vec's "reduced window"; gensim ``shrink_windows=True``), else
  ``b = window``; every word at distance ``1..b`` on either side, inside the same sentence,
  gives one ``(centre, context)`` pair.

The random draws (subsampling, window sizes) are made once per call from a seeded numpy
``Generator``; :func:`groundwords.training.fit` then shuffles the fixed pairs every epoch (word2vec
redraws them every epoch; for the corpus sizes used here the difference is negligible).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from groundwords.models.grads import zeroed_grad
from groundwords.models.noise import NoiseSampler


class SGNS(nn.Module):
    """Skip-gram with negative sampling. Batches: ``centre`` (B,) and ``context`` (B,) word ids."""

    def __init__(self, vocab_size: int, dim: int = 100, *, counts, negatives: int = 5,
                 noise_power: float = 0.75, sparse: bool = False, seed: int = 0):
        super().__init__()
        if negatives < 1:
            raise ValueError(f"negatives must be >= 1 (got {negatives})")
        counts = np.asarray(counts, dtype=np.float64)
        if counts.shape != (vocab_size,):
            raise ValueError(f"counts has shape {counts.shape}, expected ({vocab_size},)")
        self.vocab_size, self.dim, self.negatives, self.sparse = vocab_size, dim, negatives, sparse
        self.emb = nn.Embedding(vocab_size, dim, sparse=sparse)  # E: input vectors
        self.out = nn.Embedding(vocab_size, dim, sparse=sparse)  # U: output (context) vectors
        with torch.no_grad():
            self.emb.weight.uniform_(-0.5 / dim, 0.5 / dim)
            self.out.weight.zero_()
        self.noise = NoiseSampler(np.clip(counts, 0, None) ** noise_power, seed)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Mean negative-sampling loss of the batch (``"ce"``: the same value, for loss.csv)."""
        centre, context = batch["centre"].long(), batch["context"].long()
        B = centre.shape[0]
        e = self.emb(centre)  # (B, d)
        pos = (self.out(context) * e).sum(1)
        noise = self.noise((B, self.negatives), e.device)
        neg = (self.out(noise) * e[:, None, :]).sum(2)  # (B, K): u_k · e_w
        # −log σ(s) = softplus(−s);  −log σ(−s) = softplus(s)
        total = (F.softplus(-pos).sum() + F.softplus(neg).sum()) / B
        return {"total": total, "ce": total}

    @property
    def has_manual_grads(self) -> bool:
        """Whether :meth:`manual_grads` covers this configuration (dense tables; sparse ones: autograd)."""
        return not self.sparse

    @torch.no_grad()
    def manual_grads(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The gradients of ``loss(batch)["total"]`` written by hand into ``.grad`` (for
        :func:`groundwords.training.fit`'s ``manual_grads``): the same losses and the same maths as
        :meth:`loss` + autograd, up to float rounding, ~2x cheaper (tests/test_pixie_grads.py).
        The same noise words are drawn, in the same order."""
        centre, context = batch["centre"].long(), batch["context"].long()
        B = centre.shape[0]
        e = F.embedding(centre, self.emb.weight)  # (B, d)
        noise = self.noise((B, self.negatives), e.device)
        ce, dh = self.text_grads(context, noise, e[None])
        zeroed_grad(self.emb.weight).index_add_(0, centre, dh[0])
        self.clear_other_grads()
        return {"total": ce, "ce": ce}

    def clear_other_grads(self) -> None:
        """No gradient for the parameters besides the two tables (as autograd on SGNS's loss)."""
        for p in self.parameters():
            if p is not self.emb.weight and p is not self.out.weight:
                p.grad = None

    def text_grads(self, context: torch.Tensor, noise: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The negative-sampling term for centre representations ``h`` (J, B, d) (J samples per pair
        sharing the pair's negatives; SGNS: J = 1, h = e): its mean over the B·J (pair, sample)s
        ``ce`` and ``∂ce/∂h`` (J, B, d); ``∂ce/∂U`` is written into ``out.weight.grad``.

        With s⁺ = u_c·h, s⁻_k = u_{n_k}·h and ce = (Σ softplus(−s⁺) + Σ softplus(s⁻)) / (B·J)::

            g⁺ = −σ(−s⁺) / (B·J)     g⁻_k = σ(s⁻_k) / (B·J)
            ∂/∂h = g⁺ u_c + Σ_k g⁻_k u_{n_k}     ∂/∂u_c += Σ_j g⁺ h     ∂/∂u_{n_k} += Σ_j g⁻_k h
        """
        J, B, d = h.shape
        n = B * J
        u_pos = F.embedding(context, self.out.weight)  # (B, d)
        u_neg = F.embedding(noise, self.out.weight)  # (B, K, d)
        pos = (u_pos[None] * h).sum(-1)  # (J, B)
        neg = torch.bmm(u_neg, h.permute(1, 2, 0))  # (B, K, J)
        ce = (F.softplus(-pos).sum() + F.softplus(neg).sum()) / n
        g_pos = torch.sigmoid(-pos).div_(-n)  # (J, B)
        g_neg = torch.sigmoid(neg).div_(n)  # (B, K, J)
        dh = torch.bmm(g_neg.transpose(1, 2), u_neg).transpose(0, 1) + g_pos[..., None] * u_pos[None]  # (J, B, d)
        hb = h.transpose(0, 1)  # (B, J, d)
        d_neg = g_neg * hb if J == 1 else torch.bmm(g_neg, hb)  # (B, K, d)
        d_pos = (g_pos[..., None] * h).sum(0)  # (B, d)
        g = zeroed_grad(self.out.weight)
        g.index_add_(0, context, d_pos)
        g.index_add_(0, noise.reshape(-1), d_neg.reshape(-1, d))
        return ce, dh

    @torch.no_grad()
    def word_vectors(self) -> torch.Tensor:
        return self.emb.weight.detach().clone()

    @torch.no_grad()
    def context_vectors(self) -> torch.Tensor:
        return self.out.weight.detach().clone()

    def sparse_parameters(self) -> list[nn.Parameter]:
        return [self.emb.weight, self.out.weight] if self.sparse else []
