"""VSE: a visual-semantic embedding for image <-> sentence retrieval over *frozen* word vectors.

The retrieval model of PIXIE's §4.3 / Table 6 (Ailem et al. 2018), which follows VSE++
(Faghri et al. 2017) and Kiros et al. (2014)::

    sentence  c = (w_1..w_T):  h_t = GRU(e_{w_t}, h_{t-1}),   s(c) = h_T / ‖h_T‖
    image     x (k features):  v(x) = (W x + b) / ‖W x + b‖
    score     S(x, c) = v(x) · s(c)                         (inner product of unit vectors)

``e`` is an ``nn.Embedding`` built from the given word-vector matrix and **frozen**
(``requires_grad=False``, like the image features: "we do not fine-tune either the original
visual feature or the word embeddings"); an extra all-zero row at index ``V`` (``pad_id``)
pads the token matrix. Only the GRU (one layer, hidden 1024 in the paper) and the linear image
map are trained. The sentence embedding is the GRU state after the caption's *last real token*
(padded sequences are packed, so padding never enters the recurrence).

Loss (Kiros et al. 2014; VSE++'s ``ContrastiveLoss``), for a batch of B (image, caption) pairs
with score matrix ``S[i, j] = S(x_i, c_j)``::

    L = Σ_i Σ_{k ∉ P(i)} max(0, m − S[i, i] + S[i, k])       (image i vs. wrong captions)
      + Σ_j Σ_{k ∉ P(j)} max(0, m − S[j, j] + S[k, j])       (caption j vs. wrong images)

summed over the batch, margin ``m`` = 0.2 (VSE++'s default). ``P(i)`` is every batch item
whose *image id* equals item i's (itself included): two captions of the same image in one
batch are never each other's negatives, and the duplicated image is never a negative of its
own captions. ``max_violation=True`` keeps only the hardest negative of each row / column
(VSE++'s MH loss) instead of the sum; off by default (VSE++'s default, and the sum is what
Kiros et al. and the paper describe).

Initialisation follows VSE++: the image map is Xavier-uniform with zero bias; the GRU keeps
PyTorch's default. Everything here is deterministic on the CPU for a given torch seed.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence


def contrastive_loss(scores: torch.Tensor, image_ids: torch.Tensor, margin: float = 0.2,
                     max_violation: bool = False) -> torch.Tensor:
    """The bidirectional hinge ranking loss (summed) of a (B, B) score matrix.

    ``scores[i, j]`` = score of image i with caption j; pair ``(i, i)`` is positive.
    ``image_ids`` (B,): items with the same id are positives of each other, not negatives.
    """
    diag = scores.diagonal().unsqueeze(1)                      # (B, 1): S[i, i]
    positive = image_ids.unsqueeze(0) == image_ids.unsqueeze(1)  # (B, B), symmetric, diagonal True
    cost_c = (margin + scores - diag).clamp(min=0).masked_fill(positive, 0.0)       # row i: captions k
    cost_im = (margin + scores - diag.t()).clamp(min=0).masked_fill(positive, 0.0)  # column j: images k
    if max_violation:
        return cost_c.max(dim=1).values.sum() + cost_im.max(dim=0).values.sum()
    return cost_c.sum() + cost_im.sum()


class VSE(nn.Module):
    """Batches: ``tokens`` (B, T) ids padded with ``pad_id``, ``lengths`` (B,) >= 1,
    ``images`` (B, k) features, ``image_ids`` (B,) integer image keys (for the positive mask)."""

    def __init__(self, word_vectors, image_dim: int, hidden: int = 1024, margin: float = 0.2,
                 max_violation: bool = False):
        super().__init__()
        wv = torch.as_tensor(np.asarray(word_vectors, dtype=np.float32))
        if wv.ndim != 2 or wv.shape[0] < 1 or wv.shape[1] < 1:
            raise ValueError(f"word vectors must be a (V, d) matrix, got shape {tuple(wv.shape)}")
        self.vocab_size, self.word_dim = wv.shape
        self.pad_id = self.vocab_size
        table = torch.cat([wv, wv.new_zeros(1, self.word_dim)])
        self.embed = nn.Embedding.from_pretrained(table, freeze=True, padding_idx=self.pad_id)
        self.gru = nn.GRU(self.word_dim, hidden, num_layers=1, batch_first=True)
        self.img_fc = nn.Linear(image_dim, hidden)
        r = np.sqrt(6.0) / np.sqrt(image_dim + hidden)  # VSE++ EncoderImagePrecomp.init_weights
        nn.init.uniform_(self.img_fc.weight, -r, r)
        nn.init.zeros_(self.img_fc.bias)
        self.hidden, self.margin, self.max_violation = hidden, margin, max_violation

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.img_fc(images), dim=1)

    def encode_captions(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)          # h: (1, B, hidden), the state after each last real token
        return F.normalize(h[-1], dim=1)  # enforce_sorted=False restores the batch order

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        v = self.encode_images(batch["images"])
        s = self.encode_captions(batch["tokens"], batch["lengths"])
        total = contrastive_loss(v @ s.t(), batch["image_ids"], self.margin, self.max_violation)
        return {"total": total}
