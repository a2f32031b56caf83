"""The hand-written gradients of SGNS, PIXIE and V-SGNS (``manual_grads``, what the PIXIE study's
training stages use) against autograd on ``loss``: the same losses, the same random draws, the same
gradients up to float rounding; SGNS identity of PIXIE without visual words kept. CPU, a few s."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from groundwords.models.pixie import PIXIE
from groundwords.models.sgns import SGNS
from groundwords.models.vsgns import VSGNS
from groundwords.text.skipgram import skipgram_pairs
from groundwords.training import fit

V, DIM = 30, 8


def _data():
    tokens = np.random.default_rng(0).integers(0, V, 600)
    offsets = np.arange(0, len(tokens) + 1, 20)
    counts = np.bincount(tokens, minlength=V).astype(float) + 1
    c, x = skipgram_pairs(tokens, offsets, 3, rng=0)
    return counts, {"centre": torch.from_numpy(c), "context": torch.from_numpy(x)}


def _features(x_dim=6):
    f = torch.rand(V, x_dim, generator=torch.Generator().manual_seed(1))
    f[::3] = 0  # a third of the words without visual features
    return f


def _model(kind, counts, data, **kw):
    torch.manual_seed(5)
    if kind == "sgns":
        return SGNS(V, DIM, counts=counts, negatives=4, seed=5)
    if kind == "pixie":
        return PIXIE(V, DIM, counts=counts, visual_features=_features(), negatives=4, hidden=12, seed=5,
                     pairs_per_word=np.bincount(data["centre"].numpy(), minlength=V), **kw)
    return VSGNS(V, DIM, counts=counts, visual_features=_features(DIM if kw.get("visual_map") == "identity" else 6),
                 negatives=4, visual_negatives=3, seed=5, **kw)


CASES = [("sgns", {}), ("pixie", {"J": 1}), ("pixie", {"J": 3}), ("pixie", {"J": 2, "vae_weighting": "per_batch"}),
         ("pixie", {"J": 2, "vae_rows": "all"}), ("pixie", {"vae_rows": "all", "vae_weighting": "per_batch"}),
         ("vsgns", {}), ("vsgns", {"visual_map": "identity"}), ("vsgns", {"weight": True})]


@pytest.mark.parametrize("kind,kw", CASES)
def test_manual_grads_equal_autograd(kind, kw):
    counts, data = _data()
    kw = dict(kw)
    weighted = kw.pop("weight", False)
    if weighted:
        data["weight"] = torch.rand(len(data["centre"]), generator=torch.Generator().manual_seed(2))
    auto = _model(kind, counts, data, **kw)
    manual = copy.deepcopy(auto)
    assert manual.has_manual_grads
    perm = torch.randperm(len(data["centre"]), generator=torch.Generator().manual_seed(0))
    for step in range(4):
        idx = perm[step * 64:(step + 1) * 64]
        if step == 3:  # a batch without visual centre words: SGNS's step, no gradient for the rest
            idx = torch.nonzero(data["centre"] % 3 == 0).squeeze(1)[:64]
        batch = {k: v[idx] for k, v in data.items()}
        out_a = auto.loss(batch)
        for p in auto.parameters():
            p.grad = None
        out_a["total"].backward()
        out_m = manual.manual_grads(batch)
        assert out_a.keys() == out_m.keys()
        for k in out_a:
            torch.testing.assert_close(out_m[k], out_a[k].detach(), rtol=1e-6, atol=1e-7)
        for (name, p), q in zip(auto.named_parameters(), manual.parameters()):
            assert (p.grad is None) == (q.grad is None), name
            if p.grad is not None:
                torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-7, msg=name)
        with torch.no_grad():  # take the same (plain) step on both, so later batches see moved weights
            for p, q in zip(auto.parameters(), manual.parameters()):
                if p.grad is not None:
                    p.sub_(0.5 * p.grad)
                    q.copy_(p)


@pytest.mark.parametrize("kind", ["sgns", "pixie", "vsgns"])
def test_fit_with_manual_grads_matches_autograd(kind):
    counts, data = _data()
    kw = dict(epochs=2, batch_size=64, lr=1e-2, seed=3, progress=False)
    models = []
    for manual in (False, True):
        m = _model(kind, counts, data)
        fit(m, data, manual_grads=manual, **kw)
        models.append(m)
    torch.testing.assert_close(models[1].word_vectors(), models[0].word_vectors(), rtol=1e-4, atol=1e-5)
    a = _model(kind, counts, data)  # same seed, same vectors: the manual path is deterministic
    fit(a, data, manual_grads=True, **kw)
    assert torch.equal(a.word_vectors(), models[1].word_vectors())


def test_pixie_without_visual_words_is_bit_identical_to_sgns_with_manual_grads():
    counts, data = _data()
    kw = dict(epochs=2, batch_size=64, lr=1e-2, seed=3, progress=False, manual_grads=True)
    torch.manual_seed(7)
    sg = SGNS(V, DIM, counts=counts, negatives=3, seed=7)
    h_sg = fit(sg, data, **kw)
    torch.manual_seed(7)
    px = PIXIE(V, DIM, counts=counts, visual_features=torch.zeros(V, 6), negatives=3, J=2, hidden=16, seed=7,
               pairs_per_word=np.bincount(data["centre"].numpy(), minlength=V))
    h_px = fit(px, data, **kw)
    assert torch.equal(px.emb.weight, sg.emb.weight) and torch.equal(px.out.weight, sg.out.weight)
    assert [h["total"] for h in h_px] == [h["total"] for h in h_sg]
    assert all(p.grad is None for p in px.vae.parameters())


def test_sparse_tables_keep_autograd():
    counts, _ = _data()
    assert not SGNS(V, DIM, counts=counts, sparse=True).has_manual_grads


# ---------------------------------------------------------------------------------------------
# PIXIE's vae_rows "all" (static shapes for GPUs): the same objective as "batch", and no host sync


@pytest.mark.parametrize("weighting", ["per_word", "per_batch"])
def test_vae_rows_all_is_the_same_objective_as_batch(monkeypatch, weighting):
    """With the reparameterisation noise switched off (z = μ), the two row sets give the same losses
    and the same gradients: the absent visual words add exactly nothing."""
    from groundwords.models.pixie import VisualVAE

    monkeypatch.setattr(VisualVAE, "sample", lambda self, mu, logvar, J=1: mu.expand(J, *mu.shape))
    counts, data = _data()
    models = {rows: _model("pixie", counts, data, J=2, vae_rows=rows, vae_weighting=weighting)
              for rows in ("batch", "all")}
    perm = torch.randperm(len(data["centre"]), generator=torch.Generator().manual_seed(0))
    batches = [perm[:64], perm[64:96], torch.nonzero(data["centre"] % 3 == 0).squeeze(1)[:64]]  # last: no visual word
    for idx in batches:
        batch = {k: v[idx] for k, v in data.items()}
        for manual in (False, True):
            outs = {}
            for rows, m in models.items():
                for q in m.parameters():
                    q.grad = None
                if manual:
                    outs[rows] = m.manual_grads(batch)
                else:
                    outs[rows] = m.loss(batch)
                    outs[rows]["total"].backward()
            for k in ("total", "ce"):
                torch.testing.assert_close(outs["all"][k].detach(), outs["batch"][k].detach(), rtol=1e-6, atol=1e-7)
            if "nll_x" in outs["batch"]:
                for k in ("nll_x", "kl", "n_nll_x"):
                    torch.testing.assert_close(outs["all"][k].detach(), outs["batch"][k].detach().float(),
                                               rtol=1e-6, atol=1e-6)
            for (name, a), b in zip(models["all"].named_parameters(), models["batch"].parameters()):
                ga = a.grad if a.grad is not None else torch.zeros_like(a)
                gb = b.grad if b.grad is not None else torch.zeros_like(b)
                torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-7, msg=f"{name} ({'manual' if manual else 'auto'})")


class _HostSyncs(torch.overrides.TorchFunctionMode):
    """Records the torch calls of a step whose result needs the tensor data on the host (on a GPU:
    a device -> host copy and a wait): data-dependent shapes and Python values of tensors."""

    SYNCS = {"nonzero", "unique", "_unique2", "unique_consecutive", "item", "tolist", "__bool__", "__int__",
             "__float__", "__index__", "masked_select", "numpy", "cpu", "bincount", "repeat_interleave", "any", "all"}

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        if name in self.SYNCS:
            self.seen.add(name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("manual", [False, True], ids=["autograd", "manual-grads"])
def test_vae_rows_all_steps_without_a_host_sync(manual):
    """The "batch" rows need the host (nonzero, unique: the detector sees them); "all" needs none,
    in the loss and in the hand-written gradients."""
    counts, data = _data()
    batch = {k: v[:64] for k, v in data.items()}
    seen = {}
    for rows in ("batch", "all"):
        m = _model("pixie", counts, data, vae_rows=rows)
        with _HostSyncs() as mode:
            if manual:
                m.manual_grads(batch)
            else:
                m.loss(batch)["total"].backward()
        seen[rows] = mode.seen
    assert {"nonzero", "__bool__"} <= seen["batch"]
    assert seen["all"] == set()
