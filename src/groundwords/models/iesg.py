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
  normalised (the stage L2-normalises them by default, see :mod:`groundwords.iesg`).

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

import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..io import UserError, log
from .sgns import NoiseSampler

IMAGE_DRAW_SEED_OFFSET = 7_919  # the image-draw generator's seed = seed + this


def word_image_index(word_ids: np.ndarray, image_rows: np.ndarray, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR map word -> its image rows: images of word ``w`` are ``rows[offsets[w]:offsets[w+1]]``."""
    word_ids = np.asarray(word_ids, dtype=np.int64)
    image_rows = np.asarray(image_rows, dtype=np.int64)
    order = np.lexsort((image_rows, word_ids))
    counts = np.bincount(word_ids, minlength=vocab_size)
    offsets = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, image_rows[order]


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
        if bool((n == 0).any()):
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


def fit_alternating(
    model: IESG,
    data: dict[str, torch.Tensor],
    *,
    epochs: int = 1,
    batch_size: int = 16,
    lr: float = 0.01,
    momentum: float = 0.9,
    seed: int = 0,
    progress: bool = True,
    checkpoint=None,
) -> list[dict]:
    """Alternating Momentum-SGD minimisation of eq. 1 (word embeddings) and eq. 2 (``W_p``).

    Every step takes one shuffled batch of (centre, context) pairs, draws the noise words and
    one random image per centre word, then makes a word step (eq. 1) and an image step (eq. 2)
    on the same words, each with its own Momentum-SGD optimiser. Returns one dict per epoch:
    mean ``word``, ``image`` and ``total`` losses (measured before each update), ``seconds``,
    ``examples_per_s``. ``checkpoint``: a :class:`groundwords.train.Checkpoint` to resume from and
    save to (every epoch end and every ``checkpoint.seconds``), as :func:`groundwords.train.fit` does.
    """
    from ..train import kill_hook_step, kill_if, restore_training_state, training_state

    centre_all, context_all = data["centre"].long(), data["context"].long()
    n = len(centre_all)
    if n == 0:
        raise UserError("no IESG training examples (no corpus window is centred on a word with a training image)")
    opt_word = torch.optim.SGD(model.word_parameters(), lr=lr, momentum=momentum)
    image_params = [model.proj] + (model.word_parameters() if model.image_updates_words else [])
    opt_image = torch.optim.SGD(image_params, lr=lr, momentum=momentum)
    shuffler = torch.Generator().manual_seed(seed)
    opts = [opt_word, opt_image]
    loop = {"loop": "alternating", "epochs": epochs, "batch_size": batch_size, "lr": lr, "momentum": momentum,
            "seed": seed, "n_examples": n}
    history: list[dict] = []
    done = offset = step = 0
    prior, sum_w, sum_i = 0.0, 0.0, 0.0
    state = checkpoint.load(loop) if checkpoint is not None else None
    if state is not None:
        restore_training_state(state, model, opts)
        done, offset, step, prior = state["epoch"], state["offset"], state["step"], state["epoch_seconds"]
        history, (sum_w, sum_i) = state["history"], state["sums"]
        shuffler.set_state(state["shuffler"])
    kill_at, last_save = kill_hook_step(), time.monotonic()

    def save(epoch_done: int, at: int, shuffler_state, seconds: float) -> None:
        nonlocal last_save
        checkpoint.save({"fit": loop, "epoch": epoch_done, "offset": at, "step": step, "epoch_seconds": seconds,
                         "history": history, "sums": [sum_w, sum_i], "shuffler": shuffler_state,
                         **training_state(model, opts)})
        last_save = time.monotonic()

    model.train()
    for epoch in range(done + 1, epochs + 1):
        t0 = time.perf_counter() - prior
        shuffler_start = shuffler.get_state()
        perm = torch.randperm(n, generator=shuffler)
        if offset == 0:
            sum_w = sum_i = 0.0
        for start in tqdm(range(offset, n, batch_size), desc=f"iesg epoch {epoch}/{epochs}", unit="batch",
                          disable=not progress, leave=False, mininterval=1.0):
            idx = perm[start:start + batch_size]
            centre, context = centre_all[idx], context_all[idx]
            noise = model.sample_noise(len(idx), centre.device)
            rows = model.random_images(centre)

            lw = model.word_loss(centre, context, noise)  # eq. 1 -> word embeddings
            opt_word.zero_grad(set_to_none=True)
            lw.backward()
            opt_word.step()

            li = model.image_loss(rows, context, noise)  # eq. 2 -> W_p
            opt_image.zero_grad(set_to_none=True)
            li.backward()
            opt_image.step()

            sum_w += lw.item() * len(idx)
            sum_i += li.item() * len(idx)
            step += 1
            kill_if(step, kill_at)
            if (checkpoint is not None and checkpoint.seconds and start + len(idx) < n
                    and time.monotonic() - last_save >= checkpoint.seconds):
                save(epoch - 1, start + len(idx), shuffler_start, time.perf_counter() - t0)
        offset, prior = 0, 0.0
        seconds = time.perf_counter() - t0
        rec = {"epoch": epoch, "word": sum_w / n, "image": sum_i / n, "total": (sum_w + sum_i) / n,
               "seconds": seconds, "examples_per_s": n / seconds}
        for k in ("word", "image"):
            if not math.isfinite(rec[k]):
                log.warning("epoch %d: IESG %s loss is %s", epoch, k, rec[k])
        history.append(rec)
        log.info("iesg epoch %d/%d: word=%.4f image=%.4f (%.1fs, %.0f ex/s)",
                 epoch, epochs, rec["word"], rec["image"], seconds, rec["examples_per_s"])
        if checkpoint is not None:
            save(epoch, 0, shuffler.get_state(), 0.0)
    model.eval()
    return history


def fit_l2_projection(image_features, targets, ridge: float = 0.0) -> np.ndarray:
    """The L2-distance baseline: ``W_p = argmin ‖X W_p − Y‖² (+ ridge ‖W_p‖²)``, exactly.

    ``X`` (n, k): image features of the training (image, word) pairs (one row per pair);
    ``Y`` (n, d): the fixed SGNS embeddings of the pairs' words. ``ridge = 0``: the minimum-norm
    least-squares solution (``numpy.linalg.lstsq``), also when ``n < k``.
    """
    X = np.asarray(image_features, dtype=np.float64)
    Y = np.asarray(targets, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"shapes {X.shape} and {Y.shape} do not match")
    if X.shape[0] == 0:
        raise UserError("no training (image, word) pairs for the L2 baseline")
    if ridge > 0:
        W = np.linalg.solve(X.T @ X + ridge * np.eye(X.shape[1]), X.T @ Y)
    else:
        W = np.linalg.lstsq(X, Y, rcond=None)[0]
    return W.astype(np.float32)


def fit_l2_sgd(image_features, targets, *, steps: int, batch_size: int = 16, lr: float = 0.01,
               momentum: float = 0.9, seed: int = 0) -> tuple[np.ndarray, float]:
    """The L2-distance baseline trained by Momentum SGD from ``W_p = 0``: minimise the batch mean of
    ``‖x W_p − y‖²`` over shuffled (image, word) pairs for ``steps`` steps (reshuffled every pass).
    Returns ``(W_p (k, d) float32, the last pass's mean loss)``."""
    X = torch.as_tensor(np.asarray(image_features, dtype=np.float32))
    Y = torch.as_tensor(np.asarray(targets, dtype=np.float32))
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"shapes {tuple(X.shape)} and {tuple(Y.shape)} do not match")
    if X.shape[0] == 0:
        raise UserError("no training (image, word) pairs for the L2 baseline")
    if steps < 1:
        raise ValueError(f"steps must be >= 1 (got {steps})")
    W = torch.zeros(X.shape[1], Y.shape[1], requires_grad=True)
    opt = torch.optim.SGD([W], lr=lr, momentum=momentum)
    g = torch.Generator().manual_seed(seed)
    n, step, last = X.shape[0], 0, []
    while step < steps:
        perm = torch.randperm(n, generator=g)
        last = []
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            loss = (X[idx] @ W - Y[idx]).pow(2).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            last.append(loss.item())
            step += 1
            if step >= steps:
                break
    return W.detach().numpy().astype(np.float32), float(np.mean(last))
