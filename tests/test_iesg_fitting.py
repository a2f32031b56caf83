"""IESG's two fits run in :func:`groundwords.training.fit`'s loop and give, bit for bit, what their
own loops gave (the former loops are copied here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from groundwords.models.iesg import IESG
from groundwords.studies.iesg.fitting import (
    fit_alternating,
    fit_l2_sgd,
    word_image_index,
)


def _old_l2_sgd(X, Y, steps, batch_size, lr, momentum, seed):
    X, Y = torch.as_tensor(X), torch.as_tensor(Y)
    W = torch.zeros(X.shape[1], Y.shape[1], requires_grad=True)
    opt = torch.optim.SGD([W], lr=lr, momentum=momentum)
    g = torch.Generator().manual_seed(seed)
    n, step = X.shape[0], 0
    while step < steps:
        perm = torch.randperm(n, generator=g)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            loss = (X[idx] @ W - Y[idx]).pow(2).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step >= steps:
                break
    return W.detach().numpy().astype(np.float32)


@pytest.mark.parametrize("steps,batch_size", [(1, 16), (37, 16), (300, 7)])
def test_l2_sgd_in_fit_matches_its_former_loop(steps, batch_size):
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(67, 6)).astype(np.float32), rng.normal(size=(67, 4)).astype(np.float32)
    W, loss = fit_l2_sgd(X, Y, steps=steps, batch_size=batch_size, lr=0.01, momentum=0.9, seed=3)
    assert W.tobytes() == _old_l2_sgd(X, Y, steps, batch_size, 0.01, 0.9, 3).tobytes()
    assert np.isfinite(loss)


def _old_alternating(model, c, x, epochs, batch_size, lr, momentum, seed):
    opt_word = torch.optim.SGD(model.word_parameters(), lr=lr, momentum=momentum)
    image_params = [model.proj] + (model.word_parameters() if model.image_updates_words else [])
    opt_image = torch.optim.SGD(image_params, lr=lr, momentum=momentum)
    shuffler = torch.Generator().manual_seed(seed)
    n, history = len(c), []
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(n, generator=shuffler)
        sum_w = sum_i = 0.0
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            centre, context = c[idx], x[idx]
            noise = model.sample_noise(len(idx), centre.device)
            rows = model.random_images(centre)
            lw = model.word_loss(centre, context, noise)
            opt_word.zero_grad(set_to_none=True)
            lw.backward()
            opt_word.step()
            li = model.image_loss(rows, context, noise)
            opt_image.zero_grad(set_to_none=True)
            li.backward()
            opt_image.step()
            sum_w += lw.item() * len(idx)
            sum_i += li.item() * len(idx)
        history.append({"epoch": epoch, "word": sum_w / n, "image": sum_i / n, "total": (sum_w + sum_i) / n})
    return history


@pytest.mark.parametrize("image_updates_words", [False, True])
def test_alternating_in_fit_matches_its_former_loop(image_updates_words):
    rng = np.random.default_rng(0)
    V, d, k = 30, 8, 5
    E, feats = rng.normal(size=(V, d)).astype(np.float32), rng.normal(size=(20, k)).astype(np.float32)
    offsets, rows = word_image_index(rng.integers(0, V, 40), rng.integers(0, 20, 40), V)
    c = torch.from_numpy(rng.choice(np.flatnonzero(np.diff(offsets) > 0), 203))
    x = torch.from_numpy(rng.integers(0, V, 203))
    runs = []
    for new in (True, False):
        torch.manual_seed(0)
        m = IESG(E, feats, offsets, rows, counts=np.ones(V), negatives=3, seed=1,
                 image_updates_words=image_updates_words)
        if new:
            h = fit_alternating(m, {"centre": c, "context": x}, epochs=3, batch_size=16, seed=2, progress=False)
        else:
            h = _old_alternating(m, c, x, 3, 16, 0.01, 0.9, 2)
        runs.append((m.word_vectors().numpy().tobytes() + m.projection().numpy().tobytes(),
                     [{k: r[k] for k in ("epoch", "word", "image", "total")} for r in h]))
    assert runs[0] == runs[1]
