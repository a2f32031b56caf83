"""Image as *input*: CBOW whose word prediction also sees an image encoding.

The paper's first, negative attempt (Covey et al., section 5.1, Table 1): the image encoding
is concatenated with the context vector and fed as the *input* of word2vec, λ weighting the
image part::

    h      = sum of the input embeddings of the 2n context words      (nn.EmbeddingBag, sum)
    x      = k-d image encoding (PCA)
    logits = W_text h + λ · (W_img x) + b   -> full-softmax cross-entropy with the centre word

Two choices of ``x`` (``image_input``):

* ``"caption"``: the encoding of the caption's image (batch key ``image_row``, a row of
  ``image_features``; ``-1`` gives ``x = 0``). This is the paper's Table 1 model.
* ``"word"``: the mean of the *context words'* word-level averaged image encodings (the
  paper's follow-up in section 5.1: each word's average over the images whose caption contains
  it). ``image_features`` is then keyed by word (``word_rows[w]`` = the row of word ``w``, -1 if
  none); context words without one are skipped in the mean, and if none has one ``x = 0``.
  The centre word's own encoding is never used: it would leak the answer.

The word part (``emb``, ``word_head``, its initialisation and RNG stream, the negative sampler)
is inherited from :class:`~groundwords.models.wield.WIELD` unchanged, and ``W_img`` is
initialised from its own seeded generator. With λ = 0 the image term is never evaluated, so
the embeddings are bit-identical to WIELD with γ = 0 (same seed, same data).

``objective="negative"``: the scores become ``u_o·h + λ v_o·x = [u_o, v_o]·[h, λx]``, i.e.
word2vec negative sampling with each word's output vector extended by its image weights
``v_o`` (rows of ``W_img``, zero-initialised like the ``u_o``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from groundwords.models.wield import WIELD

IMAGE_INPUT_SEED_OFFSET = 2_000_003  # W_img's generator seed = seed + this
IMAGE_INPUTS = ("caption", "word")


class ImageInputCBOW(WIELD):
    def __init__(
        self,
        vocab_size: int,
        dim: int = 100,
        image_dim: int = 32,
        lam: float = 0.0,
        *,
        image_input: str = "caption",
        image_features: torch.Tensor | None = None,
        word_rows: torch.Tensor | None = None,
        objective: str = "softmax",
        negatives: int = 5,
        counts=None,
        sparse: bool = False,
        shared_negatives: int = 1,
        seed: int = 0,
    ):
        """
        vocab_size, dim, objective, negatives, counts, sparse, shared_negatives, seed: as WIELD.
        image_dim: k, size of the image input.   lam: λ, weight of the image term (>= 0).
        image_input: "caption" or "word" (see the module docstring).
        image_features: (n, k) float tensor: rows by caption image ("caption") or by word ("word").
        word_rows: (V,) long tensor, row of each word in ``image_features`` or -1 ("word" only).
        """
        super().__init__(vocab_size, dim, image_dim=0, gamma=0.0, objective=objective, negatives=negatives,
                         counts=counts, sparse=sparse, shared_negatives=shared_negatives, seed=seed)
        if image_input not in IMAGE_INPUTS:
            raise ValueError(f"image_input must be one of {IMAGE_INPUTS}, got {image_input!r}")
        if not lam >= 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        if image_dim < 1:
            raise ValueError(f"image_dim must be >= 1, got {image_dim}")
        self.lam, self.image_input, self.image_dim = float(lam), image_input, image_dim

        # W_img (V, k): own generator, never touches the global RNG
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + IMAGE_INPUT_SEED_OFFSET)
            if objective == "softmax":
                self.image_in = nn.Linear(image_dim, vocab_size, bias=False)  # nn.Linear default init
            else:
                self.image_in = nn.Embedding(vocab_size, image_dim, sparse=sparse)
                nn.init.zeros_(self.image_in.weight)

        if image_features is None:
            image_features = torch.zeros(0, image_dim)
        if image_features.ndim != 2 or image_features.shape[1] != image_dim:
            raise ValueError(f"image_features must be (n, {image_dim}), got {tuple(image_features.shape)}")
        feats = image_features.float()
        if image_input == "caption":
            self.register_buffer("image_features", feats, persistent=False)
        else:
            if word_rows is None or word_rows.shape != (vocab_size,):
                raise ValueError("image_input='word' needs word_rows, a (V,) tensor of feature rows")
            # per-word table with a zero row for the padding index: x = table[ctx].sum / has[ctx].sum
            has = torch.cat([word_rows >= 0, torch.zeros(1, dtype=torch.bool)])
            table = torch.zeros(vocab_size + 1, image_dim)
            table[has] = feats[word_rows[word_rows >= 0]]
            self.register_buffer("word_table", table, persistent=False)
            self.register_buffer("word_has", has.float(), persistent=False)

    # ----------------------------------------------------------------------------------------
    def image_vector(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The image input x (B, k) of each example (zeros where there is none)."""
        if self.image_input == "caption":
            rows = batch["image_row"]
            x = self.image_features[rows.clamp(min=0)]
            return x * (rows >= 0).unsqueeze(1).to(x.dtype)
        ctx = batch["context"]  # the context words only: the centre word is not in the batch input
        total = self.word_table[ctx].sum(1)
        n = self.word_has[ctx].sum(1, keepdim=True)
        return total / n.clamp(min=1)

    def scaled_image_input(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """``λ·x`` for :meth:`WIELD.manual_grads` (None at λ = 0: the image term is never evaluated)."""
        return None if self.lam == 0.0 else self.lam * self.image_vector(batch)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Cross-entropy of the centre words given context + image. Batch keys ``context``,
        ``target`` and, for ``image_input="caption"``, ``image_row``."""
        h = self(batch["context"])
        if self.lam == 0.0:  # no image term: exactly the WIELD γ = 0 computation
            ce = self.word_loss(h, batch["target"])
            return {"total": ce, "ce": ce}
        x = self.image_vector(batch)
        if self.objective == "softmax":
            ce = F.cross_entropy(self.word_head(h) + self.lam * self.image_in(x), batch["target"])
        else:
            wide = lambda ids: torch.cat([self.out(ids), self.image_in(ids)], -1)  # [u, v]
            ce = self.word_loss(torch.cat([h, self.lam * x], 1), batch["target"], out=wide)
        return {"total": ce, "ce": ce}

    def sparse_parameters(self) -> list[nn.Parameter]:
        ps = super().sparse_parameters()
        if self.sparse and self.objective == "negative":
            ps.append(self.image_in.weight)
        return ps
