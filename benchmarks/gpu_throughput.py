"""Training throughput of the torch engine on one device (a GPU when there is one).

    python benchmarks/gpu_throughput.py --device cuda [--json out.json]

Measures, with the pipeline's own models and its one training loop (:func:`groundwords.training.fit`),
after one warm-up epoch, the median of ``--repeats`` timed epochs:

* ``sgns``: skip-gram with negative sampling (:class:`groundwords.models.sgns.SGNS`, plain SGD) on the
  pairs of gensim's Wikipedia excerpt (the pipeline's reader and tokenizer, min count 5, window 5),
  in batches of ``--sgns-batch``; words/s = corpus tokens per epoch / epoch seconds (as word2vec).
* ``pixie``: PIXIE (:class:`groundwords.models.pixie.PIXIE`, Adam, hand-written text gradients) on
  ``--pixie-pairs`` of those pairs in batches of ``--pixie-batch``, with 1280-d visual features for
  the ``--pixie-visual`` most frequent words, for each ``vae_rows`` (``batch``: the batch's
  distinct visual words, a host sync per step; ``all``: every visual word, static shapes);
  words/s = the pairs' share of the corpus tokens per second.
* ``wield-softmax``: the WIELD paper's model (full softmax over V words, image head γ = 10 on 32-d
  targets, Adam, the stage's hand-written gradients) at the excerpt's vocabulary size, batch 20 (the
  paper's) and ``--wield-batch``;
  words/s = examples (one target word each) per second.

and estimates from the measured rate the wall time of the paper's full γ sweep (82k captions of
~10 words, 20 epochs, 5 γ values, 3 seeds) at each batch size. The figures are for the README's
performance section; ``benchmarks/gpu_check.sh`` runs this on a GPU machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from groundwords.models.pixie import PIXIE
from groundwords.models.sgns import SGNS
from groundwords.models.wield import WIELD
from groundwords.text import corpora
from groundwords.text.captions import encode_token_lists
from groundwords.text.skipgram import skipgram_pairs
from groundwords.training import fit

PAPER_SWEEP_EXAMPLES = 82_000 * 10 * 20 * 5 * 3  # captions x words x epochs x gammas x seeds


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_epochs(model, data, device, repeats: int, **kw) -> float:
    """Median seconds of one epoch of ``fit`` (after a warm-up epoch)."""
    fit(model, data, epochs=1, progress=False, **kw)
    times = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        fit(model, data, epochs=1, progress=False, **kw)
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def excerpt():
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "corpus.txt"
        corpora.build_text_corpus("enwiki-sample", out)
        sentences = corpora.read_corpus(out)
    counts: dict[str, int] = {}
    for s in sentences:
        for w in s:
            counts[w] = counts.get(w, 0) + 1
    words = sorted((w for w, c in counts.items() if c >= 5), key=lambda w: -counts[w])
    enc = encode_token_lists(sentences, words)
    return enc, np.array([counts[w] for w in words], dtype=np.float64), sum(counts.values())


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sgns-batch", type=int, default=65536)
    p.add_argument("--wield-batch", type=int, default=4096)
    p.add_argument("--pixie-pairs", type=int, default=400_000)
    p.add_argument("--pixie-batch", type=int, default=4096)
    p.add_argument("--pixie-visual", type=int, default=600, help="words with visual features (1280-d)")
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args(argv)
    device = torch.device(a.device)
    torch.manual_seed(0)
    enc, counts, raw_tokens = excerpt()
    V = len(counts)
    res = {"device": str(device), "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "vocab": V, "raw_tokens": raw_tokens, "torch_threads": torch.get_num_threads()}

    c, x = skipgram_pairs(enc.tokens, enc.offsets, 5, shrink=True, rng=np.random.default_rng(0))
    data = {"centre": torch.from_numpy(c).to(device), "context": torch.from_numpy(x).to(device)}
    sgns = SGNS(V, 100, counts=counts, negatives=5, sparse=True).to(device)
    # throughput only: the rate of train_sgns's batches of 1024 (word2vec's 0.025 per pair at that size)
    sec = timed_epochs(sgns, data, device, a.repeats, batch_size=a.sgns_batch, lr=0.025 * 1024, optimizer="sgd")
    res["sgns"] = {"batch": a.sgns_batch, "pairs": len(c), "words_per_s": raw_tokens / sec}

    m = min(a.pixie_pairs, len(c))
    sub = {k: v[:m] for k, v in data.items()}
    feats = torch.zeros(V, 1280)
    feats[:a.pixie_visual] = torch.rand(a.pixie_visual, 1280, generator=torch.Generator().manual_seed(0))
    res["pixie"] = {"batch": a.pixie_batch, "pairs": m, "visual_words": a.pixie_visual}
    for rows in ("batch", "all"):
        torch.manual_seed(0)
        net = PIXIE(V, 100, counts=counts, visual_features=feats, negatives=5,
                    pairs_per_word=np.bincount(c, minlength=V), vae_rows=rows).to(device)
        sec = timed_epochs(net, sub, device, a.repeats, batch_size=a.pixie_batch, lr=1e-3, optimizer="adam",
                           manual_grads=True)
        res["pixie"][rows] = {"words_per_s": raw_tokens * m / len(c) / sec}

    n = 200_000  # CBOW examples: window 2 each side
    ctx = torch.randint(0, V, (n, 4), device=device)
    data = {"context": ctx, "target": torch.randint(0, V, (n,), device=device),
            "image_row": torch.randint(0, 8192, (n,), device=device)}
    targets = torch.randn(8192, 32, device=device)
    res["wield_softmax"] = {}
    for batch in (20, a.wield_batch):
        m = n if batch > 20 or device.type == "cuda" else 20_000  # batch 20 on a CPU: a smaller sample
        sub = {k: v[:m] for k, v in data.items()}
        net = WIELD(V, 100, 32, 10.0, image_targets=targets).to(device)
        sec = timed_epochs(net, sub, device, a.repeats, batch_size=batch, lr=1e-3, optimizer="adam",
                           manual_grads=net.has_manual_grads)  # as the WIELD stage trains it
        rate = m / sec
        res["wield_softmax"][str(batch)] = {"words_per_s": rate,
                                            "paper_sweep_hours": PAPER_SWEEP_EXAMPLES / rate / 3600}
    print(f"{res['name']} ({device}), V = {V}, {raw_tokens} corpus tokens")
    print(f"  SGNS (torch engine, batch {a.sgns_batch}): {res['sgns']['words_per_s']:,.0f} words/s")
    print(f"  PIXIE ({a.pixie_visual} visual words, batch {a.pixie_batch}): "
          + ", ".join(f"vae_rows {r}: {res['pixie'][r]['words_per_s']:,.0f} words/s" for r in ("batch", "all")))
    for b, r in res["wield_softmax"].items():
        print(f"  WIELD full softmax, γ = 10, batch {b}: {r['words_per_s']:,.0f} words/s; "
              f"the paper's sweep (82k captions x 20 epochs x 5 γ x 3 seeds): {r['paper_sweep_hours']:.1f} h")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    main()
