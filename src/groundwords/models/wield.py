"""WIELD: CBOW word2vec with a second head that predicts the caption's image encoding.

Paper (Covey et al., "Exploring Multimodal Embeddings", section 3.4)::

    h      = sum of the input embeddings of the 2n context words      (nn.EmbeddingBag, sum)
    word   = W_masked h  -> logits over the vocabulary, cross-entropy with the centre word
    image  = W_image  h  -> k-d predicted image encoding (PCA-32), MSE with the real one
    loss   = 1/(1+γ) · CE  +  γ/(1+γ) · MSE

The MSE is the mean over the k dimensions and over the examples of the batch that have a live
image (a masked mean; examples with ``image_row = -1`` do not count).

γ = 0 is vanilla CBOW: the image head is then never evaluated, and it is initialised from its
own seeded generator, so the word part (initialisation, RNG stream, updates) is bit-identical
to a model built without an image head.

The image targets are rows of ``image_targets``; which row an example gets is decided by
:mod:`groundwords.text.captions`: the caption's image (the paper) or, for the §6.2 control, the
centre word's own word-level image encoding (``image_target="word"``).

``objective="negative"`` replaces the full-softmax word head by word2vec negative sampling
(output embeddings ``U``, noise ∝ count^0.75, ``negatives`` noise words per example)::

    CE := −log σ(u_o·h) − Σ_k log σ(−u_k·h)        (mean over the batch)

Speed options (not in the paper): ``sparse=True`` gives the embedding tables sparse gradients
(for SGD / SparseAdam); ``shared_negatives=g`` lets groups of ``g`` consecutive examples of a
(shuffled) batch share their ``negatives`` noise words, so the negative scores become small
matrix products (the BlazingText / Ji et al. 2016 trick). ``g = 1`` (default) draws
independent noise words for every example, as word2vec does.

The word vectors are the rows of the input embedding table (the padding row excluded).

Interface used by :mod:`groundwords.studies.wield.stage` (and by later models):
``loss(batch) -> dict`` with a differentiable ``"total"`` plus per-batch component means
(``"ce"``, ``"mse"``; ``"n_mse"`` = how many examples the MSE averages over),
``word_vectors() -> (V, dim) tensor`` and ``sparse_parameters()``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from groundwords.models.grads import zeroed_grad
from groundwords.models.noise import NoiseSampler

IMAGE_HEAD_SEED_OFFSET = 1_000_003  # the image head's generator seed = seed + this


def _check_init_args(objective: str, gamma: float, image_dim: int, counts) -> None:
    """Refuse :class:`WIELD` arguments that do not go together (before any parameter is made)."""
    if objective not in ("softmax", "negative"):
        raise ValueError(f"objective must be 'softmax' or 'negative', got {objective!r}")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if gamma > 0 and not image_dim:
        raise ValueError("gamma > 0 needs an image head (image_dim > 0)")
    if objective == "negative" and counts is None:
        raise ValueError("objective='negative' needs word counts for the noise distribution")


class WIELD(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        dim: int = 100,
        image_dim: int = 0,
        gamma: float = 0.0,
        *,
        objective: str = "softmax",
        negatives: int = 5,
        counts=None,
        image_targets: torch.Tensor | None = None,
        sparse: bool = False,
        shared_negatives: int = 1,
        seed: int = 0,
    ):
        """
        vocab_size: V (the padding index is V).   dim: embedding size.
        image_dim: k, size of the image targets (0: no image head at all).
        gamma: weight of the image loss (>= 0).
        objective: "softmax" (full softmax cross-entropy, as in the paper) or "negative".
        counts: word counts (V,; array-like), required for "negative" (noise ∝ counts^0.75).
        image_targets: (n_images, k) float tensor; batches refer to rows of it.
        sparse: sparse gradients for the embedding tables (for SGD / SparseAdam).
        shared_negatives: examples per group sharing their noise words (1: none shared).
        seed: seeds the image head's own generator (the word part uses the global RNG,
            which the caller seeds) and the negative sampler's generator.
        """
        super().__init__()
        _check_init_args(objective, gamma, image_dim, counts)
        self.vocab_size, self.dim, self.gamma = vocab_size, dim, float(gamma)
        self.objective, self.negatives, self.shared_negatives = objective, negatives, shared_negatives
        self.pad, self.sparse, self.seed = vocab_size, sparse, seed

        # --- word part (uses the global RNG, in this order) ------------------------------
        self.emb = nn.EmbeddingBag(vocab_size + 1, dim, mode="sum", padding_idx=self.pad, sparse=sparse)
        if objective == "softmax":
            self.word_head = nn.Linear(dim, vocab_size)  # W_masked (PyTorch default init)
        else:
            # word2vec initialisation: small uniform input vectors, zero output vectors.
            with torch.no_grad():
                self.emb.weight.uniform_(-0.5 / dim, 0.5 / dim)
                self.emb.weight[self.pad].zero_()
            self.out = nn.Embedding(vocab_size, dim, sparse=sparse)
            nn.init.zeros_(self.out.weight)
            # noise ∝ counts^0.75, from a generator seeded with ``seed`` (created on first use on the device)
            self.noise = NoiseSampler(np.clip(np.asarray(counts, dtype=np.float64), 0, None) ** 0.75, seed)

        # --- image part (own generator: never touches the global RNG) --------------------
        self.image_head = None
        if image_dim:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + IMAGE_HEAD_SEED_OFFSET)
                self.image_head = nn.Linear(dim, image_dim)  # W_image
        if image_targets is not None:
            self.register_buffer("image_targets", image_targets.float(), persistent=False)
        else:
            self.image_targets = None

    # ----------------------------------------------------------------------------------------
    def forward(self, context: torch.Tensor) -> torch.Tensor:
        """Context vectors h (B, dim): sum of the context words' embeddings (padding ignored)."""
        if not self.sparse:
            return self.emb(context)
        # Same sum, but the padding entries are removed from the input first (1-D input +
        # offsets): the sparse backward of a bag *with* padding_idx masks the whole gradient,
        # which costs more than the rest of the embedding backward.
        keep = context != self.pad
        lengths = keep.sum(1)
        offsets = torch.cumsum(lengths, 0) - lengths
        return F.embedding_bag(context[keep], self.emb.weight, offsets, mode="sum", sparse=True)

    def sample_noise(self, n: int, device) -> torch.Tensor:
        """``n`` word ids drawn from the unigram^0.75 distribution (alias method)."""
        return self.noise((n,), device)

    def word_loss(self, h: torch.Tensor, target: torch.Tensor, out=None) -> torch.Tensor:
        """Cross-entropy (softmax) or negative-sampling loss of the centre words, batch mean.

        ``out``: word ids -> output vectors for negative sampling (default ``self.out``); a
        subclass may pass wider vectors together with a matching wider ``h``.
        """
        if self.objective == "softmax":
            return F.cross_entropy(self.word_head(h), target)
        out = self.out if out is None else out
        B, K, g = target.shape[0], self.negatives, self.shared_negatives
        pos = (out(target) * h).sum(1)  # u_o · h
        if g == 1:  # independent noise words for every example
            noise = self.sample_noise(B * K, h.device).view(B, K)
            neg = (out(noise) * h[:, None, :]).sum(2)  # (B, K): u_k · h
        else:  # groups of g examples share K noise words: (G, g, d) @ (G, d, K)
            G = -(-B // g)
            noise = self.sample_noise(G * K, h.device).view(G, K)
            hg = F.pad(h, (0, 0, 0, G * g - B)).view(G, g, h.shape[1])
            neg = torch.bmm(hg, out(noise).transpose(1, 2)).reshape(G * g, K)[:B]
        # −log σ(s) = softplus(−s);  −log σ(−s) = softplus(s)
        return (F.softplus(-pos).sum() + F.softplus(neg).sum()) / B

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Losses of a batch with keys ``context`` (B, 2n), ``target`` (B,) and
        ``image_row`` (B,; -1 = no image, masked out of the MSE)."""
        h = self(batch["context"])
        ce = self.word_loss(h, batch["target"])
        w_word = 1.0 / (1.0 + self.gamma)
        if self.gamma == 0.0 or self.image_head is None:
            return {"total": w_word * ce, "ce": ce}  # vanilla CBOW: image head never evaluated
        rows = batch["image_row"]
        mask = rows >= 0
        pred = self.image_head(h)
        y = self.image_targets[rows.clamp(min=0)]
        per_example = ((pred - y) ** 2).mean(1)
        n = mask.sum()
        mse = (per_example * mask).sum() / n.clamp(min=1)  # masked mean over live images
        total = w_word * ce + (self.gamma / (1.0 + self.gamma)) * mse
        return {"total": total, "ce": ce, "mse": mse, "n_mse": n}

    @property
    def has_manual_grads(self) -> bool:
        """Whether :meth:`manual_grads` covers this configuration (the paper's: full softmax, dense)."""
        return self.objective == "softmax" and not self.sparse

    def scaled_image_input(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """An image *input* term's ``λ·x`` (B, k), added to the logits as ``W_img (λx)``; WIELD
        has none (:class:`~groundwords.models.imginput.ImageInputCBOW` does)."""
        return None

    @torch.no_grad()
    def manual_grads(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The gradients of ``loss(batch)["total"]`` written by hand into each parameter's ``.grad``
        (full softmax, dense tables): the same losses as :meth:`loss`, ~5x fewer operations than
        autograd at small vocabularies (tests/test_wield_grads.py checks both against each other).

        With ``z = W h + b``, ``p = softmax(z)``, ``t`` the centre word, ``w = 1/(1+γ)``::

            ∂/∂z  = w (p − onehot(t)) / B                       ∂/∂W = (∂/∂z)ᵀ h     ∂/∂h = (∂/∂z) W
            ∂/∂ŷ  = γ/(1+γ) · 2 (ŷ − y) · mask / (k · n_live)   (image head, same pattern)
            ∂/∂E[c] += ∂/∂h  for every context word c (the padding row gets nothing)

        At γ = 0 the image head gets no gradient (it never moves, as with autograd).
        """
        ctx, target = batch["context"], batch["target"]
        B = target.shape[0]
        h = self.emb(ctx)
        w_word = 1.0 / (1.0 + self.gamma)
        z = self.word_head(h)
        x = self.scaled_image_input(batch)
        if x is not None:
            z.addmm_(x, self.image_in.weight.t())
        logp = F.log_softmax(z, dim=1)
        rows = torch.arange(B, device=h.device)
        ce = -logp[rows, target].mean()
        dz = logp.exp_()
        dz[rows, target] -= 1.0
        dz.mul_(w_word / B)
        head = self.word_head
        head.weight.grad = torch.mm(dz.t(), h, out=head.weight.grad)
        head.bias.grad = torch.sum(dz, 0, out=head.bias.grad)
        dh = torch.mm(dz, head.weight)
        if x is not None:
            self.image_in.weight.grad = torch.mm(dz.t(), x, out=self.image_in.weight.grad)
        out = {"ce": ce}
        total = w_word * ce
        if self.gamma != 0.0 and self.image_head is not None:
            img = batch["image_row"]
            mask = (img >= 0).to(h.dtype)
            n = mask.sum()
            pred = self.image_head(h)
            diff = pred - self.image_targets[img.clamp(min=0)]
            mse = ((diff * diff).mean(1) * mask).sum() / n.clamp(min=1)
            w_img = self.gamma / (1.0 + self.gamma)
            dpred = diff.mul_((2.0 * w_img / diff.shape[1]) * (mask / n.clamp(min=1))[:, None])
            ih = self.image_head
            ih.weight.grad = torch.mm(dpred.t(), h, out=ih.weight.grad)
            ih.bias.grad = torch.sum(dpred, 0, out=ih.bias.grad)
            dh.addmm_(dpred, ih.weight)
            total = total + w_img * mse
            out.update(mse=mse, n_mse=n)
        self._embedding_grad(ctx, dh)
        out["total"] = total
        return out

    def _embedding_grad(self, ctx: torch.Tensor, dh: torch.Tensor) -> None:
        """``emb.weight.grad`` = Σ over context positions of ``dh`` (rows not in ``ctx`` stay zero)."""
        g = zeroed_grad(self.emb.weight)
        g.index_add_(0, ctx.reshape(-1), dh.repeat_interleave(ctx.shape[1], dim=0))
        g[self.pad] = 0.0  # the padding row never learns (EmbeddingBag's padding_idx)

    @torch.no_grad()
    def word_vectors(self) -> torch.Tensor:
        """The learned word embeddings (V, dim): the input embedding table without padding."""
        return self.emb.weight[: self.vocab_size].detach().clone()

    def sparse_parameters(self) -> list[nn.Parameter]:
        """Parameters whose gradients are sparse when built with ``sparse=True``."""
        if not self.sparse:
            return []
        ps = [self.emb.weight]
        if self.objective == "negative":
            ps.append(self.out.weight)
        return ps
