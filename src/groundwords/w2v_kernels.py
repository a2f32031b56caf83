"""The numba kernels of :mod:`groundwords.w2v_fast` (its docstring describes the algorithms):
the per-job random streams, the single SGNS / CBOW (+ WIELD image head) updates, the image
head's block step, and the jobs (ranges of sentences or examples, run without the GIL).
The tests call the single updates directly with explicit noise words.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

MIN_ALPHA_FRAC = 1e-4  # word2vec's floor of the linearly decayed rate, as a fraction of alpha

_KW = dict(nogil=True, fastmath=True, cache=True)


# ---------------------------------------------------------------------------------------------
# Random numbers


@nb.njit(**_KW)
def _xorshift(state):
    """Advance the one-element uint64 ``state``; return 64 random bits (xorshift64*)."""
    x = state[0]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    state[0] = x
    return x * np.uint64(2685821657736338717)


@nb.njit(**_KW)
def _uniform(state):
    return (_xorshift(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@nb.njit(**_KW)
def _randint(state, n):
    """Uniform integer in [0, n) (Lemire's multiply-shift on 32 random bits)."""
    return np.int64(((_xorshift(state) >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32))


@nb.njit(**_KW)
def _noise(state, accept, alias):
    """One word from the alias table (same distribution as the torch samplers)."""
    r = _xorshift(state)
    i = np.int64(((r >> np.uint64(32)) * np.uint64(len(accept))) >> np.uint64(32))
    u = (r & np.uint64(0xFFFFFFFF)) * (1.0 / 4294967296.0)
    return i if u < accept[i] else alias[i]


def job_state(seed: int, epoch: int, job: int) -> np.ndarray:
    """The RNG state of one job: splitmix64 of (seed, epoch, job); never 0."""
    mask = (1 << 64) - 1
    z = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + job * 0x94D049BB133111EB + 1) & mask
    for _ in range(2):
        z = (z + 0x9E3779B97F4A7C15) & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        z ^= z >> 31
    return np.array([z or 1], dtype=np.uint64)


# ---------------------------------------------------------------------------------------------
# Single updates (also called by the tests with explicit noise words)


@nb.njit(**_KW)
def _neg_update(syn1, hm, hr, target, noise, alpha, neu1e):
    """Negative-sampling targets of one example whose hidden vector is row ``hr`` of ``hm``:
    update ``syn1`` rows, accumulate ``neu1e`` (the step for ``h``); returns the example's
    loss. ``alpha`` includes the loss weight. Rows are indexed, never sliced (no views in
    the hot loop)."""
    d = hm.shape[1]
    p = 1.0  # Π σ(±f): one log per example instead of one per target
    for k in range(noise.shape[0] + 1):
        if k == 0:
            t = target
        else:
            t = noise[k - 1]
        f = np.float32(0.0)
        for i in range(d):
            f += hm[hr, i] * syn1[t, i]
        ex = math.exp(-abs(f))
        # σ(f) and σ(−f) without overflow; the target is labelled 1, noise 0
        sig = 1.0 / (1.0 + ex) if f >= 0 else ex / (1.0 + ex)
        if k == 0:
            g = np.float32((1.0 - sig) * alpha)
            p *= sig
        else:
            g = np.float32(-sig * alpha)
            p *= 1.0 - sig if f < 0 else ex / (1.0 + ex)
        for i in range(d):
            neu1e[i] += g * syn1[t, i]
            syn1[t, i] += g * hm[hr, i]
    return -math.log(max(p, 1e-300))


@nb.njit(**_KW)
def sgns_pair(syn0, syn1, w, c, noise, alpha, neu1e):
    """One SGD step of rate ``alpha`` on the SGNS loss of pair (w, c) with these noise words."""
    neu1e[:] = 0.0
    loss = _neg_update(syn1, syn0, w, c, noise, alpha, neu1e)
    for i in range(syn0.shape[1]):
        syn0[w, i] += neu1e[i]
    return loss


@nb.njit(**_KW)
def _context_sum(syn0, context, e, pad, h) -> int:
    """``h[0]`` = the sum of example ``e``'s context vectors (padding skipped); returns their count."""
    d = syn0.shape[1]
    h[0, :] = 0.0
    cw = 0
    for j in range(context.shape[1]):
        c = context[e, j]
        if c != pad:
            cw += 1
            for i in range(d):
                h[0, i] += syn0[c, i]
    return cw


@nb.njit(**_KW)
def _add_to_context(syn0, context, e, pad, neu1e) -> None:
    """Add the step ``neu1e`` to every context word of example ``e`` (padding skipped)."""
    d = syn0.shape[1]
    for j in range(context.shape[1]):
        c = context[e, j]
        if c != pad:
            for i in range(d):
                syn0[c, i] += neu1e[i]


@nb.njit(**_KW)
def cbow_example(syn0, syn1, context, e, pad, target, noise, alpha, w_word, w_img, img_w, img_b, img_y, row, h,
                 neu1e):
    """One SGD step on one CBOW (WIELD, negative sampling) example.

    ``context[e]``: its context ids (``pad`` = empty slot); ``img_y[row]``: its image target
    (``row < 0`` or ``w_img == 0``: no image term); ``img_w`` (k, d), ``img_b`` (k,): the
    image head; ``h`` ((1, d)) and ``neu1e`` ((d,)): work buffers.
    Returns (word loss, image MSE or -1)."""
    d = syn0.shape[1]
    cw = _context_sum(syn0, context, e, pad, h)
    if cw == 0:
        return 0.0, -1.0
    neu1e[:] = 0.0
    loss = _neg_update(syn1, h, 0, target, noise, alpha * w_word, neu1e)
    mse = -1.0
    if w_img > 0.0 and row >= 0:
        # per output a: the residual p_a = (W h + b − y)_a, then one fused pass over W's row a
        k = img_w.shape[0]
        scale = np.float32(alpha * w_img * 2.0 / k)
        mse = 0.0
        for a in range(k):
            s = img_b[a] - img_y[row, a]
            for i in range(d):
                s += img_w[a, i] * h[0, i]
            mse += s * s
            ga = scale * s  # alpha · ∂loss/∂pred_a
            img_b[a] -= ga
            for i in range(d):  # neu1e −= g_a W_a (old W), then W_a −= g_a h
                neu1e[i] -= ga * img_w[a, i]
                img_w[a, i] -= ga * h[0, i]
        mse /= k
    _add_to_context(syn0, context, e, pad, neu1e)
    return loss, mse


@nb.njit(**_KW)
def cbow_word_example(syn0, syn1, context, e, pad, target, noise, alpha, h, neu1e, img_part):
    """:func:`cbow_example`'s word step (rate ``alpha``, the word weight included) with the step
    for ``h`` starting from ``-img_part`` (the image head's, from :func:`_image_block`)."""
    d = syn0.shape[1]
    cw = _context_sum(syn0, context, e, pad, h)
    if cw == 0:
        return 0.0
    for i in range(d):
        neu1e[i] = -img_part[i]
    loss = _neg_update(syn1, h, 0, target, noise, alpha, neu1e)
    _add_to_context(syn0, context, e, pad, neu1e)
    return loss


# ---------------------------------------------------------------------------------------------
# Jobs (a range of sentences / examples; release the GIL)


@nb.njit(**_KW)
def _sgns_job(syn0, syn1, tokens, offsets, s_lo, s_hi, keep_prob, window, shrink, negatives,
              accept, alias, alpha0, done0, total, state):
    """Train on sentences [s_lo, s_hi). ``done0``: tokens of the run before this job (lr)."""
    d = syn0.shape[1]
    longest = 0
    for s in range(s_lo, s_hi):
        longest = max(longest, offsets[s + 1] - offsets[s])
    buf = np.empty(longest, np.int64)
    neu1e = np.empty(d, np.float32)
    noise = np.empty(negatives, np.int64)
    done = done0
    loss, pairs = 0.0, 0
    for s in range(s_lo, s_hi):
        alpha = alpha0 * max(MIN_ALPHA_FRAC, 1.0 - done / total)
        n = 0
        for p in range(offsets[s], offsets[s + 1]):
            w = tokens[p]
            if keep_prob[w] < 1.0 and keep_prob[w] < _uniform(state):
                continue
            buf[n] = w
            n += 1
        done += offsets[s + 1] - offsets[s]
        for i in range(n):
            b = 1 + _randint(state, window) if shrink else window
            for j in range(max(0, i - b), min(n, i + b + 1)):
                if j == i:
                    continue
                for k in range(negatives):
                    noise[k] = _noise(state, accept, alias)
                loss += sgns_pair(syn0, syn1, buf[i], buf[j], noise, alpha, neu1e)
                pairs += 1
    return loss, pairs


@nb.njit(**_KW)
def _image_block(syn0, context, lo, hi, pad, image_row, img_w, img_b, img_y, scale, H, P, NE, WG):
    """WIELD's image head on examples [lo, hi) as one mini-batch (``image_block``): the context
    sums ``h`` of the block (from ``syn0`` as it is at the block's start) -> ``P = H Wᵀ + b − y``
    -> ``G = scale·P`` (rows without a live image or without context: 0) -> the image part of
    each example's step for ``h``, ``NE = −G W``, then ``W −= Gᵀ H``, ``b −= Σ G`` (three BLAS
    products instead of 3·k·d scalar multiply-adds per example). Returns (Σ MSE, n examples)."""
    m, d, k = hi - lo, syn0.shape[1], img_w.shape[0]
    Hm, Pm, NEm = H[:m], P[:m], NE[:m]
    live = np.zeros(m, np.bool_)
    for e in range(m):
        Hm[e, :] = 0.0
        if image_row[lo + e] < 0:
            continue
        for j in range(context.shape[1]):
            c = context[lo + e, j]
            if c != pad:
                live[e] = True
                for i in range(d):
                    Hm[e, i] += syn0[c, i]
    np.dot(Hm, img_w.T, Pm)
    mse, n = 0.0, 0
    for e in range(m):
        if not live[e]:
            Pm[e, :] = 0.0
            continue
        row = image_row[lo + e]
        err = 0.0
        for a in range(k):
            r = Pm[e, a] + img_b[a] - img_y[row, a]
            err += r * r
            Pm[e, a] = scale * r
        mse += err / k
        n += 1
    np.dot(Pm, img_w, NEm)
    np.dot(Pm.T, Hm, WG)
    for a in range(k):
        g = np.float32(0.0)
        for e in range(m):
            g += Pm[e, a]
        img_b[a] -= g
        for i in range(d):
            img_w[a, i] -= WG[a, i]
    return mse, n


@nb.njit(**_KW)
def _cbow_job(syn0, syn1, context, target, image_row, lo, hi, pad, negatives, accept, alias,
              alpha0, done0, total, linear, w_word, w_img, img_w, img_b, img_y, block, state):
    """Train on CBOW examples [lo, hi). ``done0``: examples of the run before this job (lr);
    ``linear``: decay the rate linearly (else constant ``alpha0``); ``block`` > 1: the image head
    steps once per ``block`` examples (:func:`_image_block`), else once per example."""
    d = syn0.shape[1]
    h = np.empty((1, d), np.float32)
    neu1e = np.empty(d, np.float32)
    noise = np.empty(negatives, np.int64)
    loss, mse_sum, n_mse = 0.0, 0.0, 0
    blocked = block > 1 and w_img > 0.0
    nb_ = max(block, 1) if blocked else 1
    k = img_w.shape[0]
    H, P = np.empty((nb_, d), np.float32), np.empty((nb_, max(k, 1)), np.float32)
    NE, WG = np.empty((nb_, d), np.float32), np.empty((max(k, 1), d), np.float32)
    for b0 in range(lo, hi, nb_):
        b1 = min(b0 + nb_, hi)
        if blocked:
            alpha = alpha0 * max(MIN_ALPHA_FRAC, 1.0 - (done0 + b0 - lo) / total) if linear else alpha0
            m, n = _image_block(syn0, context, b0, b1, pad, image_row, img_w, img_b, img_y,
                                np.float32(alpha * w_img * 2.0 / k), H, P, NE, WG)
            mse_sum += m
            n_mse += n
        for e in range(b0, b1):
            alpha = alpha0 * max(MIN_ALPHA_FRAC, 1.0 - (done0 + e - lo) / total) if linear else alpha0
            for q in range(negatives):
                noise[q] = _noise(state, accept, alias)
            if blocked:  # the word step, with the block's image part of the step for h
                l = cbow_word_example(syn0, syn1, context, e, pad, target[e], noise, alpha * w_word, h, neu1e,
                                      NE[e - b0])
                loss += l
                continue
            l, m1 = cbow_example(syn0, syn1, context, e, pad, target[e], noise, alpha, w_word, w_img,
                                 img_w, img_b, img_y, image_row[e], h, neu1e)
            loss += l
            if m1 >= 0.0:
                mse_sum += m1
                n_mse += 1
    return loss, mse_sum, n_mse
