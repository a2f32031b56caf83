"""WIELD's hand-written gradients (the paper's full softmax) equal autograd's, step by step."""

import numpy as np
import pytest
import torch

from groundwords.models import WIELD, ImageInputCBOW
from groundwords.optimizers import Adam
from groundwords.training import fit


def _data(V=30, n=64, C=4, n_images=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    ctx = torch.randint(0, V, (n, C), generator=g)
    ctx[::3, -1] = V  # padding positions
    ctx[5] = V  # an example with no context at all
    image_row = torch.randint(-1, n_images, (n,), generator=g)
    image_row[:8] = -1  # a batch with no live image
    return {"context": ctx, "target": torch.randint(0, V, (n,), generator=g), "image_row": image_row}, \
        torch.randn(n_images, 6, generator=g)


def _pair(gamma, targets, V=30):
    torch.manual_seed(3)
    a = WIELD(V, 12, image_dim=6, gamma=gamma, image_targets=targets, seed=3)
    torch.manual_seed(3)
    b = WIELD(V, 12, image_dim=6, gamma=gamma, image_targets=targets, seed=3)
    assert a.has_manual_grads
    return a, b


def _imginput_pair(lam, image_input, targets, V=30):
    word_rows = torch.arange(V) % 12 - 2  # words 0, 1, 12, 13, ... have no image
    word_rows[word_rows >= len(targets)] = -1
    kw = dict(image_input=image_input, image_features=targets, word_rows=word_rows, seed=3)
    torch.manual_seed(3)
    a = ImageInputCBOW(V, 12, 6, lam, **kw)
    torch.manual_seed(3)
    return a, ImageInputCBOW(V, 12, 6, lam, **kw)


@pytest.mark.parametrize("model", ["wield-0", "wield-0.5", "wield-250", "caption-0", "caption-1.5", "word-1.5"])
def test_gradients_and_adam_steps_equal_autograd(model):
    data, targets = _data()
    kind, weight = model.split("-")
    gamma = float(weight) if kind == "wield" else 0.0
    if kind == "wield":
        manual, auto = _pair(gamma, targets)
    else:
        manual, auto = _imginput_pair(float(weight), kind, targets)
    opt_m, opt_a = Adam(manual.parameters(), lr=0.01), Adam(auto.parameters(), lr=0.01)
    for s, lo in enumerate(range(0, 64, 8)):
        batch = {k: v[lo:lo + 8] for k, v in data.items()}
        out_m = manual.manual_grads(batch)
        out_a = auto.loss(batch)
        opt_a.zero_grad(set_to_none=True)
        out_a["total"].backward()
        for k in out_a:
            assert torch.allclose(out_m[k].float(), out_a[k].float(), rtol=1e-5, atol=1e-7), (s, k)
        for (name, pm), pa in zip(manual.named_parameters(), auto.parameters()):
            if pa.grad is None:  # gamma = 0: no gradient reaches the image head
                assert pm.grad is None, name
                continue
            assert torch.allclose(pm.grad, pa.grad, rtol=1e-5, atol=1e-7), (s, name)
        opt_m.step()
        opt_a.step()
        for pm, pa in zip(manual.parameters(), auto.parameters()):
            assert torch.allclose(pm, pa, rtol=1e-5, atol=1e-6)
    assert manual.emb.weight[manual.pad].abs().max() == 0  # padding row untouched
    if kind == "wield" and gamma == 0:
        fresh = WIELD(30, 12, image_dim=6, gamma=0.0, image_targets=targets, seed=3).image_head.weight
        assert torch.equal(manual.image_head.weight, fresh)


def test_fit_with_manual_grads_matches_autograd_and_learns():
    data, targets = _data(n=200, seed=1)
    runs = []
    for manual_grads in (True, False):
        model, _ = _pair(10.0, targets)
        hist = fit(model, data, epochs=5, batch_size=20, lr=0.01, seed=0, progress=False, manual_grads=manual_grads)
        runs.append((model.word_vectors().numpy(), [h["total"] for h in hist], [h["mse"] for h in hist]))
    (vm, tm, mm), (va, ta, ma) = runs
    np.testing.assert_allclose(vm, va, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(tm, ta, rtol=1e-5)
    np.testing.assert_allclose(mm, ma, rtol=1e-5)
    assert tm[-1] < tm[0] and mm[-1] < mm[0]  # both losses go down


def test_lambda_zero_equals_gamma_zero_bit_for_bit():
    data, targets = _data(n=100, seed=2)
    vecs = []
    for model in (_pair(0.0, targets)[0], _imginput_pair(0.0, "caption", targets)[0]):
        fit(model, data, epochs=2, batch_size=20, lr=0.01, seed=0, progress=False, manual_grads=True)
        vecs.append(model.word_vectors())
    assert torch.equal(*vecs)
