"""PIXIE's retrieval model trains in :func:`groundwords.training.fit`'s loop and gives, bit for bit,
what its own loop gave (the former loop is copied here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_pixie_retrieval import synthetic

from groundwords.models.vse import VSE
from groundwords.studies.pixie import retrieval as sentret
from groundwords.studies.pixie.retrieval_data import RetrievalData
from groundwords.training import make_optimizer


def _old_fit_vse(model, tr, *, epochs, batch_size, lr, lr_step, grad_clip, seed):
    n = tr.n_captions
    opt = make_optimizer(model, "adam", lr)[0]
    params = [p for p in model.parameters() if p.requires_grad]
    shuffler = torch.Generator().manual_seed(seed)
    image_keys = torch.from_numpy(tr.cap_image).to(tr.tokens.device)
    history = []
    model.train()
    for epoch in range(1, epochs + 1):
        cur_lr = lr * (0.1 ** ((epoch - 1) // lr_step) if lr_step > 0 else 1.0)
        for g in opt.param_groups:
            g["lr"] = cur_lr
        perm = torch.randperm(n, generator=shuffler)
        total = torch.zeros((), dtype=torch.float64)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            lengths = tr.lengths[idx]
            idx_d = idx.to(tr.tokens.device)
            keys = image_keys[idx_d]
            batch = {"tokens": tr.tokens[idx_d, :int(lengths.max())], "lengths": lengths,
                     "images": tr.features[keys], "image_ids": keys}
            loss = model.loss(batch)["total"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            opt.step()
            total += loss.detach().double().cpu()
        history.append({"epoch": epoch, "lr": cur_lr, "loss": float(total) / n})
    model.eval()
    return history


@pytest.mark.parametrize("lr_step,grad_clip,max_violation", [(2, 2.0, False), (0, 0.0, True)])
def test_fit_vse_in_fit_matches_its_former_loop(lr_step, grad_clip, max_violation):
    ids, feats, caps, words, vecs = synthetic(n_images=20)
    data = RetrievalData(ids, feats, np.array(["train"] * 20, dtype=object),
                                 np.array([i for i, _ in caps]), [t.split() for _, t in caps])
    enc = sentret.encode_captions(data, words, vecs)
    runs = []
    for new in (True, False):
        torch.manual_seed(0)
        m = VSE(enc.word_vectors, feats.shape[1], hidden=8, max_violation=max_violation)
        tr = sentret.SplitTensors(data, enc, "train", "cpu")
        kw = dict(epochs=4, batch_size=7, lr=0.01, lr_step=lr_step, grad_clip=grad_clip, seed=3)
        if new:
            hist = [{k: h[k] for k in ("epoch", "lr", "loss")} for h in sentret.fit_vse(m, tr, progress=False, **kw)]
        else:
            hist = _old_fit_vse(m, tr, **kw)
        runs.append((b"".join(p.detach().numpy().tobytes() for p in m.parameters()), hist))
    assert runs[0] == runs[1]
