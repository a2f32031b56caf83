"""Skip-gram with negative sampling (SGNS, Mikolov et al. 2013), as a :mod:`groundwords.train` model.

Model::

    loss(w, c) = −log σ(u_c · e_w) − Σ_{k=1..K} log σ(−u_{n_k} · e_w),   n_k ~ P_noise ∝ count^0.75

``E`` (input embeddings, the word vectors) and ``U`` (output/context embeddings) are
``nn.Embedding`` tables initialised as word2vec does (``E`` uniform in ±0.5/dim, ``U`` zero).
Noise words come from the Walker alias table of :func:`groundwords.models.wield.alias_table`
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
``Generator``; :func:`groundwords.train.fit` then shuffles the fixed pairs every epoch (word2vec
redraws them every epoch; for the corpus sizes used here the difference is negligible).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .wield import alias_table


def keep_probabilities(counts, sample: float) -> np.ndarray:
    """Per-word probability of keeping an occurrence (gensim's ``sample`` formula; 1 if sample <= 0)."""
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones(len(counts))
    t = sample * counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        p = (np.sqrt(counts / t) + 1.0) * t / counts
    return np.where(counts > 0, np.minimum(p, 1.0), 1.0)


def subsample(tokens: np.ndarray, offsets: np.ndarray, keep_prob: np.ndarray,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Drop each occurrence of word ``w`` with probability ``1 - keep_prob[w]``; CSR in, CSR out."""
    keep = rng.random(len(tokens)) < keep_prob[tokens]
    kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    return tokens[keep], kept_before[offsets]


def skipgram_pairs(
    tokens: np.ndarray,
    offsets: np.ndarray,
    window: int,
    *,
    shrink: bool = True,
    keep_prob: np.ndarray | None = None,
    centres: np.ndarray | None = None,
    rng: np.random.Generator | int | None = 0,
    dtype=np.int64,
) -> tuple[np.ndarray, np.ndarray]:
    """All ``(centre, context)`` skip-gram pairs of CSR sentences (``tokens[offsets[s]:offsets[s+1]]``).

    Windows never cross sentence boundaries. See the module docstring for ``shrink`` and
    ``keep_prob`` (subsampling). ``centres`` (bool per word id) keeps only the pairs whose
    centre word is marked (IESG: words with images), without materialising the others.
    Returns two arrays of equal length, ordered by distance.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1 (got {window})")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    tokens = np.asarray(tokens, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    if keep_prob is not None:
        tokens, offsets = subsample(tokens, offsets, np.asarray(keep_prob), rng)
    n = len(tokens)
    lengths = np.diff(offsets)
    sent = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    start, end = offsets[:-1][sent], offsets[1:][sent]
    pos = np.arange(n, dtype=np.int64)
    reach = rng.integers(1, window + 1, size=n) if shrink else np.full(n, window)
    if centres is not None:
        reach = np.where(np.asarray(centres, bool)[tokens], reach, 0)
    centres, contexts = [], []
    for d in range(1, window + 1):
        for j in (pos + d, pos - d):
            ok = (reach >= d) & (j >= start) & (j < end)
            centres.append(tokens[ok].astype(dtype))
            contexts.append(tokens[j[ok]].astype(dtype))
    if not centres:
        return np.zeros(0, dtype), np.zeros(0, dtype)
    return np.concatenate(centres), np.concatenate(contexts)


class NoiseSampler:
    """Draw word ids ∝ ``weights`` with the alias method and a private seeded generator."""

    def __init__(self, weights, seed: int = 0):
        accept, alias = alias_table(np.clip(np.asarray(weights, dtype=np.float64), 0, None))
        self.accept = torch.from_numpy(accept).float()
        self.alias = torch.from_numpy(alias).long()
        self.n, self.seed = len(accept), seed
        self.generator: torch.Generator | None = None

    def __call__(self, shape, device="cpu") -> torch.Tensor:
        device = torch.device(device)
        if self.generator is None or self.generator.device != device:
            self.generator = torch.Generator(device=device).manual_seed(self.seed)
            self.accept, self.alias = self.accept.to(device), self.alias.to(device)
        i = torch.randint(0, self.n, shape, generator=self.generator, device=device)
        u = torch.rand(shape, generator=self.generator, device=device)
        return torch.where(u < self.accept[i], i, self.alias[i])


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

    @torch.no_grad()
    def word_vectors(self) -> torch.Tensor:
        return self.emb.weight.detach().clone()

    @torch.no_grad()
    def context_vectors(self) -> torch.Tensor:
        return self.out.weight.detach().clone()

    def sparse_parameters(self) -> list[nn.Parameter]:
        return [self.emb.weight, self.out.weight] if self.sparse else []


def train_sgns(
    tokens: np.ndarray,
    offsets: np.ndarray,
    counts,
    *,
    dim: int = 100,
    window: int = 5,
    negatives: int = 5,
    sample: float = 1e-3,
    epochs: int = 5,
    batch_size: int = 1024,
    alpha: float = 0.025,
    shrink: bool = True,
    redraw: str = "epoch",
    sparse: bool = True,
    seed: int = 0,
    progress: bool = True,
    checkpoint=None,
) -> tuple[SGNS, list[dict], dict]:
    """Train :class:`SGNS` on CSR sentences with :func:`groundwords.train.fit` (plain SGD).

    ``alpha`` is word2vec's per-pair learning rate (the SGD rate of the batch-mean loss is
    ``alpha · batch_size``), decayed linearly towards ``alpha · 1e-4`` over the run.
    ``redraw="epoch"`` (default) draws fresh pairs (subsampling, reduced windows) every epoch,
    like word2vec; the learning rate is then constant within an epoch, at the linear schedule's
    value at the epoch's midpoint. ``redraw="once"``: one draw, trained for ``epochs`` epochs
    with a per-step linear decay. Seeds the global torch RNG (for the initialisation): call it
    inside ``torch.random.fork_rng`` to keep the caller's RNG state.
    ``words_per_s`` in the history counts corpus tokens (before subsampling), like word2vec.
    ``checkpoint``: a :class:`groundwords.train.Checkpoint` to resume from and save to (the
    per-epoch draws are replayed from the checkpointed numpy generator).
    Returns ``(model, history, stats)``.
    """
    from ..train import fit  # here, not at import time: groundwords.train imports the models package

    if redraw not in ("epoch", "once"):
        raise ValueError(f"redraw must be 'epoch' or 'once' (got {redraw!r})")
    counts = np.asarray(counts, dtype=np.float64)
    rng = np.random.default_rng(seed)
    keep = keep_probabilities(counts, sample) if sample > 0 else None
    torch.manual_seed(seed)
    model = SGNS(len(counts), dim, counts=counts, negatives=negatives, sparse=sparse, seed=seed)
    lr = alpha * batch_size

    def draw():
        c, x = skipgram_pairs(tokens, offsets, window, shrink=shrink, keep_prob=keep, rng=rng,
                              dtype=np.int32 if len(counts) < 2**31 else np.int64)
        return {"centre": torch.from_numpy(c), "context": torch.from_numpy(x)}

    if redraw == "once":
        data = draw()
        history = fit(model, data, epochs=epochs, batch_size=batch_size, lr=lr, optimizer="sgd",
                      lr_schedule="linear", seed=seed, words_per_epoch=len(tokens), progress=progress,
                      checkpoint=checkpoint)
    else:  # fresh pairs, a fresh shuffle (seed + e) and the epoch's midpoint learning rate every epoch
        history = fit(model, lambda epoch: draw(), epochs=epochs, batch_size=batch_size, lr=lr, optimizer="sgd",
                      lr_schedule="epoch_linear", seed=seed, reseed_each_epoch=True, data_rng=rng,
                      words_per_epoch=len(tokens), progress=progress, checkpoint=checkpoint)
        for rec in history:
            rec["lr"] = lr * max(1e-4, 1.0 - (rec["epoch"] - 1 + 0.5) / epochs) / batch_size
    return model, history, {"n_pairs": int(sum(rec["n_examples"] for rec in history))}
