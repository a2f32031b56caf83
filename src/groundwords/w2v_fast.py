"""Compiled (numba) word2vec kernels: SGNS and CBOW with negative sampling (+ WIELD's image head).

The same objectives as the PyTorch reference models, trained with word2vec's algorithm
(one example at a time, plain SGD, linear learning-rate decay), several times faster:

* **SGNS** (:class:`groundwords.models.sgns.SGNS`): for a pair (centre ``w``, context ``c``)
  with noise words ``n_1..n_K`` (unigram^0.75, Walker alias table as the torch model)::

      loss = −log σ(u_c·e_w) − Σ_k log σ(−u_{n_k}·e_w)

  one SGD step of rate α on it: ``u_t += α g_t e_w`` for every target ``t`` and
  ``e_w += α Σ_t g_t u_t`` (``g = label − σ(u_t·e_w)``, computed from the values before the
  step, so a step equals the torch step of the same pair and noise words; tested).
  Examples are made inside the kernel from CSR sentences, with the semantics of
  :func:`~groundwords.text.skipgram.skipgram_pairs`: frequent-word subsampling
  (:func:`~groundwords.text.skipgram.keep_probabilities`) *before* windowing, reduced windows
  ``b ~ U{1..window}`` per centre word (``shrink``), windows inside the sentence only.
* **CBOW** (:class:`groundwords.models.wield.WIELD`, ``objective="negative"``): examples are
  the rows of :func:`groundwords.text.captions.build_examples` (the same examples the torch stage
  uses); ``h`` = the **sum** of the context words' input vectors (WIELD's ``EmbeddingBag`` sum;
  padding ignored), word loss as above with ``h`` for ``e_w`` weighted ``1/(1+γ)``, and the
  gradient of ``h`` added to every context word. With an image head (γ > 0): ``pred = W h + b``
  and the loss adds ``γ/(1+γ) · mean_k (pred − y)²`` for examples with a live image
  (``image_row >= 0``), whose gradient moves ``W``, ``b`` and the context words.

Relation to the torch step with batch ``B`` and SGD rate ``lr`` (a batch *mean*): the
per-example rate is ``α = lr / B`` (for the image term the torch mean is over the batch's live
images, so it matches when every example has one, as in the default "live captions only").

Learning rate: ``α = α0 · max(1e-4, 1 − done/total)`` with ``done`` the examples (CBOW) or
in-vocabulary tokens (SGNS) of the whole run before the current sentence / example, as word2vec.

Randomness: one xorshift64* stream per job (a job = ~``job_words`` tokens or examples of one
epoch) seeded from ``(seed, epoch, job)``, so the result does not depend on how jobs are
spread over threads. ``threads=1`` is deterministic (same seed → bit-identical vectors);
``threads > 1`` runs the jobs in Hogwild threads (the kernels release the GIL): updates race,
the result is not deterministic, as in word2vec/gensim.

Checkpoints (``checkpoint``: a :class:`groundwords.checkpoints.Checkpoint`): the weights, the
epoch's finished jobs and their loss sums are saved once ``checkpoint.seconds`` have passed, between
jobs (with ``threads > 1``, between groups of ``32 × threads`` jobs) or at an epoch end, and after
the last epoch (:meth:`~groundwords.checkpoints.Checkpoint.due`). A job's stream and learning rate depend only on its index, so a resumed
``threads=1`` run ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from groundwords.checkpoints import kill_hook_step, kill_if
from groundwords.models.noise import alias_table, keep_probabilities
from groundwords.w2v_kernels import MIN_ALPHA_FRAC, _cbow_job, _sgns_job, job_state

JOB_WORDS = 10_000  # tokens (SGNS) / examples (CBOW) per job, as gensim's MAX_WORDS_IN_BATCH


# ---------------------------------------------------------------------------------------------
# Drivers


def _chunks(sizes: np.ndarray, per_job: int) -> list[tuple[int, int]]:
    """Split consecutive items of these sizes into [lo, hi) ranges of about ``per_job``."""
    ends = np.cumsum(sizes)
    bounds = [0]
    target = per_job
    while bounds[-1] < len(sizes):
        hi = int(np.searchsorted(ends, target, side="left")) + 1
        hi = max(bounds[-1] + 1, min(hi, len(sizes)))
        bounds.append(hi)
        target = ends[hi - 1] + per_job
    return list(zip(bounds[:-1], bounds[1:]))


def _run(jobs, fn, threads: int) -> list:
    """Run ``fn(i, job)`` for all jobs; Hogwild threads when ``threads > 1`` (results in job order)."""
    if threads <= 1:
        return [fn(i, j) for i, j in enumerate(jobs)]
    out = [None] * len(jobs)
    lock, it = threading.Lock(), iter(enumerate(jobs))

    def worker():
        while True:
            with lock:
                nxt = next(it, None)
            if nxt is None:
                return
            out[nxt[0]] = fn(*nxt)

    with ThreadPoolExecutor(threads) as ex:
        for f in [ex.submit(worker) for _ in range(threads)]:
            f.result()
    return out


def _train_epochs(arrays: dict[str, np.ndarray], n_jobs: int, job, summarize, *, epochs: int, threads: int,
                  settings: dict, checkpoint=None, on_epoch_end=None) -> list[dict]:
    """The epoch loop both kernels share: ``job(epoch, i)`` trains job ``i`` of ``epoch`` (0-based)
    in place on ``arrays`` and returns its loss sums; ``summarize(epoch, sums, seconds)`` makes
    the epoch's record from the element-wise sums of its jobs'. With a ``checkpoint`` (module
    docstring), resume from it if it holds a run of the same ``settings`` and save to it."""
    history, done, offset, sums, prior = [], 0, 0, None, 0.0
    fit_settings = {**settings, "n_jobs": n_jobs, "epochs": epochs}
    state = checkpoint.load(fit_settings) if checkpoint is not None else None
    if state is not None:
        for name, a in arrays.items():
            a[...] = state["arrays"][name].numpy()
        history, done, offset, sums, prior = (state["history"], state["epoch"], state["offset"], state["sums"],
                                              state["epoch_seconds"])
    within = checkpoint is not None and bool(checkpoint.seconds)
    group = (1 if threads <= 1 else 32 * threads) if within else n_jobs  # Hogwild: a barrier per group
    kill_at = kill_hook_step() if checkpoint is not None else 0  # tests: interrupt a checkpointed run
    last_save = time.monotonic()

    def save(epoch_done: int, at: int, seconds: float) -> None:
        checkpoint.save({"fit": fit_settings, "epoch": epoch_done, "offset": at,
                         "step": epoch_done * n_jobs + at, "epoch_seconds": seconds, "history": history,
                         "sums": sums, "arrays": {k: torch.from_numpy(a.copy()) for k, a in arrays.items()}})

    for ep in range(done, epochs):
        t0 = time.perf_counter() - prior
        if offset == 0:
            sums = None
        for lo in range(offset, n_jobs, group):
            hi = min(lo + group, n_jobs)
            for r in _run(range(lo, hi), lambda _, i, ep=ep: job(ep, i), threads):
                r = [float(x) for x in r]
                sums = r if sums is None else [a + b for a, b in zip(sums, r)]
            kill_if(ep * n_jobs + hi, kill_at)
            if within and hi < n_jobs and checkpoint.due(time.monotonic() - last_save):
                save(ep, hi, time.perf_counter() - t0)
                last_save = time.monotonic()
        offset, prior = 0, 0.0
        rec = summarize(ep, sums, time.perf_counter() - t0)
        history.append(rec)
        if checkpoint is not None and checkpoint.due(time.monotonic() - last_save, epoch_end=True,
                                                     last=ep + 1 == epochs):
            save(ep + 1, 0, 0.0)
            last_save = time.monotonic()
        if on_epoch_end is not None:
            on_epoch_end(rec)
    return history


def noise_table(counts, power: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    accept, alias = alias_table(np.clip(np.asarray(counts, dtype=np.float64), 0, None) ** power)
    return accept.astype(np.float64), alias.astype(np.int64)


def train_sgns_arrays(syn0: np.ndarray, syn1: np.ndarray, tokens, offsets, counts, *, window: int = 5,
                      negatives: int = 5, sample: float = 1e-3, epochs: int = 5, alpha: float = 0.025,
                      shrink: bool = True, seed: int = 0, threads: int = 1, job_words: int = JOB_WORDS,
                      on_epoch_end=None, checkpoint=None) -> list[dict]:
    """Train SGNS in place on ``syn0`` (input vectors) / ``syn1`` (output vectors), float32 C arrays.

    ``on_epoch_end(record)`` is called after every epoch (its time is not counted); ``checkpoint``:
    resume from / save to it (module docstring).
    Returns one record per epoch (``total``/``ce`` = mean pair loss, ``seconds``, ``words_per_s``
    = in-vocabulary tokens per second, ``n_pairs``, ``lr`` at the epoch's end).
    """
    tokens = np.ascontiguousarray(tokens, dtype=np.int64)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    keep = np.ascontiguousarray(keep_probabilities(counts, sample), dtype=np.float64)
    accept, alias = noise_table(counts)
    jobs = _chunks(np.diff(offsets), job_words)
    job_start = [int(offsets[lo] - offsets[0]) for lo, _ in jobs]
    n_tok = int(offsets[-1] - offsets[0])
    total = float(max(n_tok * epochs, 1))

    def job(ep, i):
        return _sgns_job(syn0, syn1, tokens, offsets, jobs[i][0], jobs[i][1], keep, window, shrink, negatives,
                         accept, alias, alpha, float(ep * n_tok + job_start[i]), total, job_state(seed, ep, i))

    def summarize(ep, sums, sec):
        loss, pairs = sums
        return {"epoch": ep + 1, "total": loss / max(pairs, 1), "ce": loss / max(pairs, 1), "seconds": sec,
                "words_per_s": n_tok / sec if sec > 0 else float("inf"), "n_pairs": int(pairs),
                "lr": alpha * max(MIN_ALPHA_FRAC, 1.0 - (ep + 1) / epochs)}

    settings = {"kernel": "sgns", "window": window, "negatives": negatives, "sample": sample, "alpha": alpha,
                "shrink": shrink, "seed": seed, "n_tokens": n_tok}
    return _train_epochs({"syn0": syn0, "syn1": syn1}, len(jobs), job, summarize, epochs=epochs, threads=threads,
                         settings=settings, checkpoint=checkpoint, on_epoch_end=on_epoch_end)


def train_cbow_arrays(syn0: np.ndarray, syn1: np.ndarray, context, target, pad: int, counts, *,
                      negatives: int = 5, epochs: int = 5, alpha: float = 0.025, linear: bool = True,
                      seed: int = 0, threads: int = 1, gamma: float = 0.0, image_row=None, image_targets=None,
                      img_w: np.ndarray | None = None, img_b: np.ndarray | None = None, image_block: int = 1,
                      job_words: int = JOB_WORDS, on_epoch_end=None, checkpoint=None) -> list[dict]:
    """Train CBOW-NS (WIELD's objective) in place on ``syn0`` ((V+1, d), row ``pad`` = padding),
    ``syn1`` ((V, d)) and, with ``gamma > 0``, the image head ``img_w`` ((k, d)), ``img_b`` ((k,)).

    ``context`` (N, width) / ``target`` (N,) / ``image_row`` (N,; -1: no image) are the rows of
    :func:`groundwords.text.captions.build_examples`; examples are visited in order. ``linear``:
    word2vec's linear decay of ``alpha`` over the run (else constant). ``image_block`` > 1: the
    image head takes one step per block of that many consecutive examples (the sum of their
    gradients, from the block's start; three BLAS products) instead of one per example (1, exact
    per-example SGD). Returns one
    record per epoch (``ce``: mean word loss; ``mse``: mean image MSE; ``total`` = weighted sum).
    """
    context = np.ascontiguousarray(context, dtype=np.int64)
    target = np.ascontiguousarray(target, dtype=np.int64)
    n = len(target)
    w_word, w_img = 1.0 / (1.0 + gamma), gamma / (1.0 + gamma)
    if gamma > 0:
        if image_targets is None or img_w is None or img_b is None or image_row is None:
            raise ValueError("gamma > 0 needs image_row, image_targets, img_w and img_b")
        img_y = np.ascontiguousarray(image_targets, dtype=np.float32)
        rows = np.ascontiguousarray(image_row, dtype=np.int64)
    else:
        img_y = np.zeros((1, 1), np.float32)
        rows = np.full(n, -1, np.int64)
        img_w, img_b = np.zeros((0, syn0.shape[1]), np.float32), np.zeros(0, np.float32)
    accept, alias = noise_table(counts)
    jobs = [(lo, min(lo + job_words, n)) for lo in range(0, n, job_words)]
    total = float(max(n * epochs, 1))

    def job(ep, i):
        return _cbow_job(syn0, syn1, context, target, rows, jobs[i][0], jobs[i][1], pad, negatives, accept, alias,
                         alpha, float(ep * n + jobs[i][0]), total, linear, w_word, w_img, img_w, img_b, img_y,
                         int(image_block), job_state(seed, ep, i))

    def summarize(ep, sums, sec):
        ce_sum, mse_sum, n_mse = sums
        ce = ce_sum / max(n, 1)
        mse = mse_sum / n_mse if n_mse else float("nan")
        rec = {"epoch": ep + 1, "ce": ce, "total": w_word * ce + (w_img * mse if n_mse else 0.0),
               "seconds": sec, "words_per_s": n / sec if sec > 0 else float("inf"),
               "lr": alpha * max(MIN_ALPHA_FRAC, 1.0 - (ep + 1) / epochs) if linear else alpha}
        if n_mse:
            rec["mse"] = mse
        return rec

    settings = {"kernel": "cbow", "negatives": negatives, "alpha": alpha, "linear": linear, "seed": seed,
                "gamma": gamma, "image_block": int(image_block), "n_examples": n}
    arrays = {"syn0": syn0, "syn1": syn1, **({"img_w": img_w, "img_b": img_b} if gamma > 0 else {})}
    with threadpool_limits(1, user_api="blas"):  # image blocks: one BLAS thread per Hogwild thread
        return _train_epochs(arrays, len(jobs), job, summarize, epochs=epochs, threads=threads, settings=settings,
                             checkpoint=checkpoint, on_epoch_end=on_epoch_end)
