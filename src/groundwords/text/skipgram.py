"""Skip-gram training data and the SGNS training run (IESG's pretraining, PIXIE's text side).

:func:`skipgram_pairs` draws (centre, context) pairs from CSR sentences with word2vec's frequent-word
subsampling (:func:`keep_probabilities`) and reduced windows; :func:`train_sgns` trains
:class:`groundwords.models.sgns.SGNS` on them through :func:`groundwords.training.fit`.
"""

from __future__ import annotations

import numpy as np
import torch

from groundwords.models.noise import keep_probabilities
from groundwords.models.sgns import SGNS
from groundwords.training import fit

ENGINES = ("numba", "torch")  # train_sgns: the compiled word2vec kernel or groundwords.training.fit
DEFAULT_ENGINE = "numba"  # the config schema (iesg.sgns.engine) is the pipeline's default


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
    sparse: bool = True,
    seed: int = 0,
    progress: bool = True,
    engine: str = DEFAULT_ENGINE,
    threads: int = 1,
    checkpoint=None,
    device: str | torch.device = "cpu",
) -> tuple[SGNS, list[dict], dict]:
    """Train :class:`SGNS` on CSR sentences with :func:`groundwords.training.fit` (plain SGD).

    ``alpha`` is word2vec's per-pair learning rate (the SGD rate of the batch-mean loss is
    ``alpha · batch_size``), decayed linearly towards ``alpha · 1e-4`` over the run.
    Fresh pairs (subsampling, reduced windows) are drawn every epoch, like word2vec; the learning
    rate is constant within an epoch, at the linear schedule's value at the epoch's midpoint.
    Seeds the global torch RNG (for the initialisation): call it inside ``torch.random.fork_rng``
    to keep the caller's RNG state.
    ``words_per_s`` in the history counts corpus tokens (before subsampling), like word2vec.

    ``engine="numba"`` (default): the same objective trained by the compiled word2vec kernel of
    :mod:`groundwords.w2v_fast` (one pair at a time at rate ``alpha``, per-sentence linear
    decay, pairs drawn inside the kernel every epoch; ``batch_size`` and ``sparse`` do not
    apply) on ``threads`` Hogwild threads; deterministic only with ``threads=1``.
    ``engine="torch"``: :func:`groundwords.training.fit` as described above (deterministic; torch's
    thread count is the caller's).
    ``device`` (torch engine; numba: cpu only): where the model and each epoch's pairs live.
    ``checkpoint``: a :class:`groundwords.checkpoints.Checkpoint` to resume from and save to (torch
    engine: the per-epoch draws are replayed from the checkpointed numpy generator; numba engine:
    the weights and the epoch's finished jobs, see :mod:`groundwords.w2v_fast`).
    Returns ``(model, history, stats)``; ``stats`` has ``n_pairs``, ``engine``, ``threads`` and
    ``deterministic``.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES} (got {engine!r})")
    if engine == "numba" and torch.device(device).type != "cpu":
        raise ValueError(f"the numba engine runs on the CPU only (device {device}): use engine torch")
    counts = np.asarray(counts, dtype=np.float64)
    rng = np.random.default_rng(seed)
    keep = keep_probabilities(counts, sample) if sample > 0 else None
    torch.manual_seed(seed)
    model = SGNS(len(counts), dim, counts=counts, negatives=negatives, sparse=sparse, seed=seed).to(device)
    if engine == "numba":
        return _train_numba(model, tokens, offsets, counts, window=window, negatives=negatives, sample=sample,
                            epochs=epochs, alpha=alpha, shrink=shrink, seed=seed, threads=threads,
                            checkpoint=checkpoint)
    return _train_torch(model, tokens, offsets, counts, rng, keep, window=window, shrink=shrink, epochs=epochs,
                        batch_size=batch_size, alpha=alpha, seed=seed, progress=progress, checkpoint=checkpoint)


def _train_numba(model: SGNS, tokens, offsets, counts: np.ndarray, *, window: int, negatives: int, sample: float,
                 epochs: int, alpha: float, shrink: bool, seed: int, threads, checkpoint) -> tuple[SGNS, list[dict], dict]:
    """:func:`train_sgns`'s numba engine: the compiled kernel trains copies of ``model``'s weights,
    which are then copied back."""
    from groundwords import w2v_fast  # numba compiles on first use: only when this engine runs

    threads = max(1, int(threads or 1))
    syn0 = model.emb.weight.detach().numpy().copy()
    syn1 = model.out.weight.detach().numpy().copy()
    history = w2v_fast.train_sgns_arrays(syn0, syn1, tokens, offsets, counts, window=window,
                                         negatives=negatives, sample=sample, epochs=epochs, alpha=alpha,
                                         shrink=shrink, seed=seed, threads=threads, checkpoint=checkpoint)
    with torch.no_grad():
        model.emb.weight.copy_(torch.from_numpy(syn0))
        model.out.weight.copy_(torch.from_numpy(syn1))
    return model, history, {"n_pairs": int(sum(r["n_pairs"] for r in history)), "engine": "numba",
                            "threads": threads, "deterministic": threads == 1}


def _train_torch(model: SGNS, tokens, offsets, counts: np.ndarray, rng: np.random.Generator, keep, *, window: int,
                 shrink: bool, epochs: int, batch_size: int, alpha: float, seed: int, progress: bool,
                 checkpoint) -> tuple[SGNS, list[dict], dict]:
    """:func:`train_sgns`'s torch engine: :func:`groundwords.training.fit` with plain SGD on fresh
    pairs drawn from ``rng`` every epoch (``keep``: the subsampling probabilities, or None)."""
    lr = alpha * batch_size

    def draw():
        c, x = skipgram_pairs(tokens, offsets, window, shrink=shrink, keep_prob=keep, rng=rng,
                              dtype=np.int32 if len(counts) < 2**31 else np.int64)
        device = model.emb.weight.device
        return {"centre": torch.from_numpy(c).to(device), "context": torch.from_numpy(x).to(device)}

    # fresh pairs, a fresh shuffle (seed + e) and the epoch's midpoint learning rate every epoch
    history = fit(model, lambda epoch: draw(), epochs=epochs, batch_size=batch_size, lr=lr, optimizer="sgd",
                  lr_schedule="epoch_linear", seed=seed, reseed_each_epoch=True, data_rng=rng,
                  words_per_epoch=len(tokens), progress=progress, checkpoint=checkpoint)
    for rec in history:
        rec["lr"] = lr * max(1e-4, 1.0 - (rec["epoch"] - 1 + 0.5) / epochs) / batch_size
    return model, history, {"n_pairs": int(sum(rec["n_examples"] for rec in history)), "engine": "torch",
                            "threads": torch.get_num_threads(), "deterministic": True}
