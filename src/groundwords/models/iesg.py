"""IESG: the Image-Enhanced Skip-Gram model (Luo, "Exploration on Grounded Word Embedding").

Paper, section 2 (``w_i`` centre word with image ``f_i``, ``w_c`` a context word of its window,
``w'_c`` a negatively sampled word)::

    L(w_i, w_c, w'_c) = max(0, m − λ E(w_i, w_c) + E(w_i, w'_c))      (1)  word term
    L(f_i, w_c, w'_c) = max(0, m − λ E(f_i, w_c) + E(f_i, w'_c))      (2)  image term
    v_i = v'_i W_p,   v'_i = ResNet(f_i) (frozen)                     (3, 4)
    E(w_i, w_c) = e_i · e_c,   E(f_i, w_c) = v_i · e_c                (5, 6)

trained by *alternating* minimisation of (1) and (2) with Momentum SGD (lr 0.01, momentum
0.9), batch 16, window 5, λ = 5, word embeddings initialised from skip-gram and trainable, and
"one of the images of a word" drawn at random at every step.

Choices the paper leaves open (documented, configurable):

* **One embedding table.** Eq. 5 uses the same ``e`` for centre and context words, so there is
  one trainable table ``E`` initialised from the SGNS input vectors (``context_vectors=None``).
  Passing ``context_vectors`` (e.g. SGNS's output vectors) gives the context words a separate
  trainable table instead; retrieval always uses ``E``.
* **Which parameters each term updates.** Eq. 1 updates the word embeddings (centre, context
  and negative rows); eq. 2 updates ``W_p`` only (the paper: "we iteratively train the word
  embedding of w_i and the vector of the image f_i with equation 1 and equation 2
  respectively"). ``image_updates_words=True`` lets eq. 2 move the context embeddings too.
* **Negatives and λ.** The paper says λ "tunes the ratio between positive samples and negative
  samples". We read eq. 1-2 with ``K = negatives`` noise words inside one hinge::

      max(0, m − λ E(w_i, w_c) + Σ_{k=1..K} E(w_i, w'_k))

  ``K = 1`` is the equations literally; the default ``K = λ = 5`` balances the positive and
  negative energies: adding a vector ``u`` to every word vector changes the hinge argument by
  ``(K − λ) q·u``, zero when ``K = λ``. With ``K = 1`` and λ = 5 the loss can be driven to ~0 by
  growing every image vector along the mean word direction; we observed exactly that on the
  offline OpenMoji + enwiki-sample data (both losses ~1e-4 after one epoch, chance-level
  matching even on the training images), so we consider the literal reading degenerate. Noise words are drawn from the unigram^0.75
  distribution like word2vec, not checked against the window. Both terms of a step use the
  same context and noise words; the losses are averaged over the batch.
* **Margin** ``m`` is not given in the paper (default 1).
* ``W_p`` (k × d, no bias) starts at zero; the image features are given to the model already
  normalised (the stage L2-normalises them by default, see :mod:`groundwords.studies.iesg.stage`).

The **L2-distance baseline** (paper §3.2: "we directly minimize the L2-loss … to train the image
projection") fits ``W_p`` to minimise ``Σ ‖v'W_p − e_w‖²`` over the training (image, word) pairs
with the SGNS embeddings fixed. :func:`fit_l2_sgd` (the default) trains it as the paper trains
its models: Momentum SGD from ``W_p = 0`` with IESG's learning rate, momentum and batch size, for
as many steps as IESG's image term makes, so both projections get the same optimiser and budget.
:func:`fit_l2_projection` solves the problem exactly instead (``iesg.l2_fit: lstsq``, an option):
with high-dimensional features and a few hundred pairs that is the minimum-norm *interpolating*
solution (training MSE ~1e-16 on real photos), which generalises differently from either model
trained by SGD; see ``docs/fidelity.md``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from groundwords.models.noise import NoiseSampler

IMAGE_DRAW_SEED_OFFSET = 7_919  # the image-draw generator's seed = seed + this


class IESG(nn.Module):
    """Batches: ``centre`` (B,) and ``context`` (B,) word ids; the centre words must have images."""

    def __init__(
        self,
        word_vectors,
        image_features,
        word_image_offsets,
        word_image_rows,
        *,
        counts,
        margin: float = 1.0,
        lam: float = 5.0,
        negatives: int = 5,
        context_vectors=None,
        image_updates_words: bool = False,
        noise_power: float = 0.75,
        seed: int = 0,
    ):
        """
        word_vectors: (V, d) initial word embeddings (SGNS input vectors).
        image_features: (N, k) frozen image encodings v' (already normalised as wanted).
        word_image_offsets, word_image_rows: CSR word -> training image rows
            (:func:`word_image_index`); images are drawn from these.
        counts: (V,) word counts for the noise distribution (∝ counts^noise_power).
        margin, lam: m and λ of eq. 1-2.   negatives: K, noise words per pair (inside the hinge).
        context_vectors: None (one shared table, eq. 5) or (V, d) initial context table.
        image_updates_words: let eq. 2 update the (context) word embeddings too.
        seed: seeds the noise sampler and the image draws (own generators).
        """
        super().__init__()
        E = torch.as_tensor(np.asarray(word_vectors, dtype=np.float32))
        feats = torch.as_tensor(np.asarray(image_features, dtype=np.float32))
        V, d = E.shape
        if negatives < 1:
            raise ValueError(f"negatives must be >= 1 (got {negatives})")
        if len(word_image_offsets) != V + 1:
            raise ValueError(f"word_image_offsets must have V+1 = {V + 1} entries")
        self.vocab_size, self.dim, self.image_dim = V, d, feats.shape[1]
        self.margin, self.lam, self.negatives = float(margin), float(lam), int(negatives)
        self.image_updates_words, self.seed = image_updates_words, seed
        self.emb = nn.Embedding.from_pretrained(E.clone(), freeze=False)
        self.ctx = None
        if context_vectors is not None:
            self.ctx = nn.Embedding.from_pretrained(
                torch.as_tensor(np.asarray(context_vectors, dtype=np.float32)).clone(), freeze=False)
        self.proj = nn.Parameter(torch.zeros(self.image_dim, d))  # W_p
        self.register_buffer("image_features", feats, persistent=False)
        self.register_buffer("wi_offsets", torch.as_tensor(np.asarray(word_image_offsets, np.int64)), persistent=False)
        self.register_buffer("wi_rows", torch.as_tensor(np.asarray(word_image_rows, np.int64)), persistent=False)
        self.noise = NoiseSampler(np.clip(np.asarray(counts, np.float64), 0, None) ** noise_power, seed)
        self.image_gen: torch.Generator | None = None

    # ------------------------------------------------------------------------------------
    def context_table(self) -> nn.Embedding:
        return self.emb if self.ctx is None else self.ctx

    def word_parameters(self) -> list[nn.Parameter]:
        return [self.emb.weight] + ([self.ctx.weight] if self.ctx is not None else [])

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """v = v' W_p."""
        return features @ self.proj

    def sample_noise(self, batch_size: int, device) -> torch.Tensor:
        return self.noise((batch_size, self.negatives), device)

    def random_images(self, centre: torch.Tensor) -> torch.Tensor:
        """One training image row per centre word, uniformly among that word's images."""
        if self.image_gen is None or self.image_gen.device != centre.device:
            self.image_gen = torch.Generator(device=centre.device).manual_seed(self.seed + IMAGE_DRAW_SEED_OFFSET)
        start, end = self.wi_offsets[centre], self.wi_offsets[centre + 1]
        n = end - start
        # checked on the CPU only: elsewhere it would sync with the host at every step (the stage
        # draws its centre words among the words with a training image)
        if centre.device.type == "cpu" and bool((n == 0).any()):
            raise ValueError("a centre word of the batch has no training image")
        u = torch.rand(centre.shape, generator=self.image_gen, device=centre.device)
        pick = start + torch.minimum((u * n).long(), n - 1)
        return self.wi_rows[pick]

    def _hinge(self, query: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """mean_b max(0, m − λ q·pos + Σ_k q·neg_k);  query, pos (B, d), neg (B, K, d)."""
        s_pos = (query * pos).sum(1)
        s_neg = (neg * query[:, None, :]).sum((1, 2))
        return F.relu(self.margin - self.lam * s_pos + s_neg).mean()

    def word_loss(self, centre, context, noise) -> torch.Tensor:
        """Eq. 1 (gradients reach the word embeddings only)."""
        ctx = self.context_table()
        return self._hinge(self.emb(centre), ctx(context), ctx(noise))

    def image_loss(self, image_rows, context, noise) -> torch.Tensor:
        """Eq. 2 (gradients reach W_p; the context embeddings too if ``image_updates_words``)."""
        w = self.context_table().weight
        if not self.image_updates_words:
            w = w.detach()
        v = self.project(self.image_features[image_rows])
        return self._hinge(v, F.embedding(context, w), F.embedding(noise, w))

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Both terms on one batch (for monitoring; training alternates, see :func:`fit_alternating`)."""
        centre, context = batch["centre"].long(), batch["context"].long()
        noise = batch.get("noise")
        noise = self.sample_noise(len(centre), centre.device) if noise is None else noise
        rows = batch.get("image")
        rows = self.random_images(centre) if rows is None else rows
        lw = self.word_loss(centre, context, noise)
        li = self.image_loss(rows, context, noise)
        return {"total": lw + li, "word": lw, "image": li}

    @torch.no_grad()
    def word_vectors(self) -> torch.Tensor:
        return self.emb.weight.detach().clone()

    @torch.no_grad()
    def projection(self) -> torch.Tensor:
        return self.proj.detach().clone()

    def sparse_parameters(self) -> list[nn.Parameter]:
        return []
