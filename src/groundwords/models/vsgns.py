"""V-SGNS: skip-gram with a max-margin visual term (Lazaridou, Pham & Baroni, NAACL 2015).

The multimodal skip-gram ("MMSKIP-GRAM") of Lazaridou et al. adds, for every corpus occurrence
of a word w that has a visual vector v_w, a max-margin term to the SGNS loss::

    L_vis(w) = Σ_{j=1..k} max(0, γ − cos(M e_w, v_w) + cos(M e_w, v_{w'_j})),
    w'_j ~ Uniform(visual words other than w)

e_w is the word vector (SGNS's input embedding), v_w the word's visual feature vector (fixed,
never trained) and M a learned linear map (dim → visual dim, no bias). Model A of the paper
(MMSKIP-GRAM-A, the one the PIXIE paper re-implements) compares e_w with v_w directly, which
needs the word and visual spaces to have the same dimensionality; model B adds the map M. The
PIXIE setting (100-d words, 1,024-d features) needs the map, so ``visual_map="linear"`` is the
default; ``visual_map="identity"`` is the literal model A when the dimensions agree.
The authors' values: margin γ = 0.5 and k = 20 contrastive words (from our reading of the
paper; their text side: 300-d, window 5, 5 noise words, sample 1e-3, SGD α = 0.025).

Batches are SGNS's (centre, context) pairs (:func:`~groundwords.text.skipgram.skipgram_pairs`)
with an optional per-pair weight a_i (``batch["weight"]``, default 1). Each *distinct* visual
centre word w of the batch gets one L_vis(w) (one draw of k contrastive words), weighted by
a_w = Σ_{pairs i with centre w} a_i, and like SGNS the total is a mean over the B pairs::

    total = (Σ_i text_i + visual_weight · Σ_w a_w L_vis(w)) / B

With a_i = 1/(number of pairs of the corpus occurrence that pair i comes from) (what the
stage, :mod:`groundwords.studies.pixie.baselines`, passes), Σ_w a_w counts the visual-word
*occurrences* of the batch, so over an epoch this is the paper's objective
Σ_t [L_ling(w_t) + L_vis(w_t)], L_ling(w_t) summing over w_t's contexts. With a_i = 1 the
visual term is counted once per pair (≈ window + 1 times per occurrence with reduced windows).

Identity with SGNS: :class:`VSGNS` subclasses :class:`~groundwords.models.sgns.SGNS` (same
embedding initialisation from the global torch RNG, same noise draws); M is initialised from
a private ``torch.Generator(seed)`` and the contrastive words come from another, so with
``visual_weight=0`` or no visual words the embeddings train bit-identically to SGNS.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from groundwords.models.grads import zeroed_grad
from groundwords.models.noise import seeded_generator
from groundwords.models.pixie import visual_table
from groundwords.models.sgns import SGNS

VISUAL_MAPS = ("linear", "identity")


class VSGNS(SGNS):
    """SGNS + Lazaridou et al.'s max-margin term for the centre words with visual features.

    ``visual_features``: (V, k) float tensor; ``has_visual``: bool (V,), default: the rows that
    are not all zero. Batches: ``centre``, ``context`` (B,) word ids, optional ``weight`` (B,).
    """

    def __init__(self, vocab_size: int, dim: int = 100, *, counts, visual_features: torch.Tensor,
                 has_visual: torch.Tensor | None = None, negatives: int = 5, margin: float = 0.5,
                 visual_negatives: int = 20, visual_weight: float = 1.0, visual_map: str = "linear",
                 noise_power: float = 0.75, sparse: bool = False, seed: int = 0):
        super().__init__(vocab_size, dim, counts=counts, negatives=negatives, noise_power=noise_power,
                         sparse=sparse, seed=seed)
        feats, mask = visual_table(visual_features, has_visual, vocab_size)
        if int(mask.sum()) == 1:
            raise ValueError("one visual word: the max-margin term needs at least 2 (contrastive words)")
        if visual_negatives < 1:
            raise ValueError(f"visual_negatives must be >= 1 (got {visual_negatives})")
        if visual_map not in VISUAL_MAPS:
            raise ValueError(f"visual_map must be one of {VISUAL_MAPS} (got {visual_map!r})")
        if visual_map == "identity" and feats.shape[1] != dim:
            raise ValueError(f"visual_map 'identity' needs {dim}-d features (got {feats.shape[1]}-d)")
        self.margin, self.visual_negatives, self.visual_weight = margin, visual_negatives, visual_weight
        self.seed = seed
        words = mask.nonzero().squeeze(1)
        rank = torch.full((vocab_size,), -1, dtype=torch.long)
        rank[words] = torch.arange(len(words))
        self.register_buffer("visual_rank", rank)  # word id -> row of visual_unit, -1: no features
        self.register_buffer("visual_unit", F.normalize(feats[words], dim=1, eps=1e-8))  # v_w / ‖v_w‖
        if visual_map == "identity":
            self.map = nn.Identity()
        else:
            with torch.random.fork_rng(devices=[]):  # leave the global RNG to SGNS's embeddings
                self.map = nn.Linear(dim, feats.shape[1], bias=False)
            with torch.no_grad():
                bound = 1.0 / math.sqrt(dim)  # torch's default Linear range, from a private generator
                self.map.weight.uniform_(-bound, bound, generator=torch.Generator().manual_seed(seed))
        self.generator: torch.Generator | None = None  # contrastive words

    def contrastive(self, rank: torch.Tensor) -> torch.Tensor:
        """k visual rows per row of ``rank`` (n,), uniform over the other visual words: (n, k)."""
        self.generator = seeded_generator(self.generator, self.seed + 1, rank.device)
        j = torch.randint(0, self.visual_unit.shape[0] - 1, (len(rank), self.visual_negatives),
                          generator=self.generator, device=rank.device)
        return j + (j >= rank[:, None]).long()  # skip the word's own row

    def margins(self, words: torch.Tensor, e: torch.Tensor | None = None) -> torch.Tensor:
        """L_vis(w) for visual word ids ``words`` (n,), one draw of contrastive words each: (n,);
        ``e``: their word vectors (default: looked up in the embedding table)."""
        r = self.visual_rank[words]
        h = F.normalize(self.map(self.emb(words) if e is None else e), dim=1, eps=1e-8)  # M e_w / ‖M e_w‖
        pos = (h * self.visual_unit[r]).sum(1)  # cos(M e_w, v_w)
        neg = (self.visual_unit[self.contrastive(r)] @ h[:, :, None]).squeeze(2)  # (n, k) cos(M e_w, v_w')
        return F.relu(self.margin - pos[:, None] + neg).sum(1)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """SGNS's mean loss + visual_weight · Σ_w a_w L_vis(w) / B; ``margin``: Σ a_w L_vis / Σ a_w."""
        centre, context = batch["centre"].long(), batch["context"].long()
        vis = self.visual_rank[centre] >= 0
        if not bool(vis.any()):
            out = super().loss(batch)
            zero = out["total"].new_zeros(())
            return {**out, "margin": zero, "n_margin": zero}
        B = centre.shape[0]
        e = self.emb(centre)  # (B, d)
        pos = (self.out(context) * e).sum(1)
        noise = self.noise((B, self.negatives), e.device)  # drawn exactly as SGNS does
        neg = (self.out(noise) * e[:, None, :]).sum(2)
        ce = (F.softplus(-pos).sum() + F.softplus(neg).sum()) / B  # = SGNS.loss, op for op
        rows = vis.nonzero().squeeze(1)
        words, inverse = torch.unique(centre[rows], return_inverse=True)
        a = batch["weight"][rows].to(e.dtype) if "weight" in batch else e.new_ones(len(rows))
        a_w = e.new_zeros(len(words)).index_add_(0, inverse, a)
        vis_sum = (a_w * self.margins(words)).sum()
        total = ce + self.visual_weight * vis_sum / B
        n = a_w.sum().detach()
        return {"total": total, "ce": ce, "margin": vis_sum / n, "n_margin": n}

    @torch.no_grad()
    def manual_grads(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """:meth:`loss` with its gradients written into ``.grad`` (``fit(manual_grads=True)``): the text
        term's by hand (:meth:`SGNS.text_grads`), the max-margin term's by autograd over the visual
        words' vectors and M alone; the same maths as :meth:`loss` + backward up to float rounding,
        and the same random draws in the same order."""
        centre, context = batch["centre"].long(), batch["context"].long()
        vis = self.visual_rank[centre] >= 0
        if not bool(vis.any()):
            out = super().manual_grads(batch)  # clears M's gradient: SGNS's step
            zero = out["total"].new_zeros(())
            return {**out, "margin": zero, "n_margin": zero}
        B = centre.shape[0]
        e = F.embedding(centre, self.emb.weight)  # (B, d)
        noise = self.noise((B, self.negatives), e.device)  # drawn exactly as SGNS does
        ce, dh = self.text_grads(context, noise, e[None])
        g_emb = zeroed_grad(self.emb.weight)
        g_emb.index_add_(0, centre, dh[0])
        rows = vis.nonzero().squeeze(1)
        words, inverse = torch.unique(centre[rows], return_inverse=True)
        a = batch["weight"][rows].to(e.dtype) if "weight" in batch else e.new_ones(len(rows))
        a_w = e.new_zeros(len(words)).index_add_(0, inverse, a)
        e_w = F.embedding(words, self.emb.weight).requires_grad_()
        params = list(self.map.parameters())
        with torch.enable_grad():
            vis_sum = (a_w * self.margins(words, e_w)).sum()
            grads = torch.autograd.grad(self.visual_weight * vis_sum / B, [e_w, *params])
        g_emb.index_add_(0, words, grads[0])
        for p, g in zip(params, grads[1:]):
            p.grad = g
        vis_sum = vis_sum.detach()
        n = a_w.sum()
        return {"total": ce + self.visual_weight * vis_sum / B, "ce": ce, "margin": vis_sum / n, "n_margin": n}

    @torch.no_grad()
    def alignment(self) -> dict[str, float]:
        """Mean cos(M e_w, v_w) over visual words (``cos_match``) and over pairs w ≠ w' (``cos_mismatch``)."""
        W = self.visual_unit.shape[0]
        if W < 2:
            return {"cos_match": math.nan, "cos_mismatch": math.nan}
        words = (self.visual_rank >= 0).nonzero().squeeze(1)  # in rank order
        h = F.normalize(self.map(self.emb.weight[words]), dim=1, eps=1e-8)
        v = self.visual_unit
        match = (h * v).sum(1).sum()
        every = h.sum(0) @ v.sum(0)  # Σ_{w, w'} cos(M e_w, v_w')
        return {"cos_match": float(match / W), "cos_mismatch": float((every - match) / (W * (W - 1)))}
