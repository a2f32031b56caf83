"""groundwords.optimizers makes torch.optim's updates bit for bit, without importing torch._dynamo."""

import subprocess
import sys

import pytest
import torch

from groundwords.optimizers import SGD, Adam, SparseAdam


def _model(sparse: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.ModuleDict({"emb": torch.nn.Embedding(50, 8, sparse=sparse), "head": torch.nn.Linear(8, 50),
                                "unused": torch.nn.Linear(3, 3)})


def _run(model, opt, steps: int = 7, switch_lr: bool = True) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    for s in range(steps):
        ids = torch.randint(0, 50, (12,), generator=g)
        target = torch.randint(0, 50, (12,), generator=g)
        loss = torch.nn.functional.cross_entropy(model["head"](model["emb"](ids)), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if switch_lr and s == 3:
            opt.param_groups[0]["lr"] *= 0.5
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("kind", ["adam", "sgd", "sgd_momentum", "sparse_adam"])
def test_same_updates_as_torch_optim(kind):
    sparse = kind == "sparse_adam"
    ours_model, ref_model = _model(sparse), _model(sparse)
    if kind == "adam":
        ours, ref = Adam(ours_model.parameters(), lr=0.01), torch.optim.Adam(ref_model.parameters(), lr=0.01, fused=True)
    elif kind == "sgd":
        ours, ref = SGD(ours_model.parameters(), lr=0.1), torch.optim.SGD(ref_model.parameters(), lr=0.1)
    elif kind == "sgd_momentum":
        ours = SGD(ours_model.parameters(), lr=0.1, momentum=0.9)
        ref = torch.optim.SGD(ref_model.parameters(), lr=0.1, momentum=0.9)
    else:
        ours = SparseAdam(list(ours_model["emb"].parameters()), lr=0.01)
        ref = torch.optim.SparseAdam(list(ref_model["emb"].parameters()), lr=0.01)
    before = [p.detach().clone() for p in ours_model.parameters()]
    got, want = _run(ours_model, ours), _run(ref_model, ref)
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(got[0], before[0])  # the embedding moved
    assert torch.equal(got[-1], before[-1])  # a parameter without gradient never moves


def test_state_dict_round_trip_continues_identically():
    m1, m2 = _model(False), _model(False)
    o1 = Adam(m1.parameters(), lr=0.01)
    _run(m1, o1, steps=3, switch_lr=False)
    o2 = Adam(m2.parameters(), lr=0.01)
    m2.load_state_dict(m1.state_dict())
    o2.load_state_dict(o1.state_dict())
    assert torch.equal(o2.state[0]["exp_avg"], o1.state[0]["exp_avg"])
    a, b = _run(m1, o1, steps=4, switch_lr=False), _run(m2, o2, steps=4, switch_lr=False)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="cannot be loaded"):
        SGD(m2.parameters(), lr=0.1).load_state_dict(o1.state_dict())


def test_wrong_gradient_kind_is_refused():
    m = _model(True)
    with pytest.raises(RuntimeError, match="sparse_adam"):
        _run(m, Adam(m.parameters(), lr=0.01), steps=1)
    m = _model(False)
    with pytest.raises(RuntimeError, match="sparse gradients"):
        _run(m, SparseAdam(m.parameters(), lr=0.01), steps=1)
    with pytest.raises(ValueError, match="momentum"):
        SGD(m.parameters(), lr=0.1, momentum=1.5)


def test_training_never_imports_the_compiler_stack():
    """torch.optim imports torch._dynamo (~1.5 s of CPU) on first use; the training loop must not."""
    code = (
        "import sys, torch\n"
        "from groundwords.training import fit\n"
        "m = torch.nn.Linear(3, 1)\n"
        "m.loss = lambda b: {'total': ((m(b['x']) - b['y']) ** 2).mean()}\n"
        "for opt in ('adam', 'sgd'):\n"
        "    fit(m, {'x': torch.randn(40, 3), 'y': torch.randn(40, 1)}, epochs=2, batch_size=8, lr=0.01,\n"
        "        optimizer=opt, progress=False)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
