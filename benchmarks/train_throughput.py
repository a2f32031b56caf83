"""Training throughput and quality: our CBOW (WIELD with γ = 0) vs gensim's Word2Vec CBOW.

    python benchmarks/train_throughput.py [--epochs 5] [--window 5] [--threads 2] ...

Corpus: gensim's bundled Wikipedia excerpt
(``gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2``,
106 articles, ~453k tokens) read with ``gensim.corpora.WikiCorpus``. Every article is cut into
chunks of at most 10,000 tokens (gensim's maximum sentence length) and **each chunk is one
"caption"**: windows never cross chunks, for either model. The chunks are joined with spaces,
written as a captions TSV and re-tokenised with ``groundwords.text.vocab.tokenize``; gensim is fed
exactly those token lists, so both models see the same sentences and the same vocabulary
(count >= min_count). The token lists are cached under ``--cache-dir``.

Settings shared by both: dim, window, epochs, min_count, threads, negative = 5 noise words.
To make the work per word identical, gensim runs with ``sample=0`` (no down-sampling of
frequent words: ours has none) and ``shrink_windows=False`` (ours always uses the full window).
gensim keeps its defaults otherwise (SGD, alpha 0.025 -> 0.0001, cbow_mean=1).

Throughput = trained corpus positions per second of the training loop only (gensim: the
"effective words" returned by ``train()`` over its wall time; ours: ``train.json``'s
``words_per_s``, which excludes reading and tokenising). Quality = Spearman ρ of
``KeyedVectors.evaluate_word_pairs`` on WordSim353 and SimLex-999 (gensim's copies), for
both models' vectors (ours loaded from ``vectors.txt``).

Our runs go through the real stage, ``groundwords.studies.wield.stage.train`` (γ = 0; a dummy 1-d image
target per caption, never evaluated at γ = 0).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

import gensim
import numpy as np
import pandas as pd
from gensim.models import KeyedVectors, Word2Vec
from gensim.test.utils import datapath

from groundwords.files import write_features, write_tsv
from groundwords.studies.wield.stage import train
from groundwords.text.vocab import build_vocab, tokenize

WIKI = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
CHUNK = 10_000  # gensim's MAX_WORDS_IN_BATCH: longer sentences would be truncated by gensim


def load_captions(cache_dir: Path) -> list[str]:
    """Wikipedia chunks as caption strings (cached: WikiCorpus parsing takes a few seconds)."""
    cache = cache_dir / "enwiki_chunks.pkl"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    from gensim.corpora import WikiCorpus

    texts = WikiCorpus(datapath(WIKI), dictionary={}, processes=1).get_texts()
    caps = [" ".join(t[i:i + CHUNK]) for t in texts for i in range(0, len(t), CHUNK)]
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(caps))
    return caps


def evaluate(kv: KeyedVectors) -> dict:
    out = {}
    for name, f in (("ws353", "wordsim353.tsv"), ("simlex", "simlex999.txt")):
        (_, _), (rho, _), oov = kv.evaluate_word_pairs(datapath(f))
        out[name] = float(rho)
        out[f"{name}_oov_pct"] = float(oov)
    return out


def run_gensim(sentences, a, workers: int) -> dict:
    m = Word2Vec(vector_size=a.dim, window=a.window, min_count=a.min_count, sg=0, hs=0, negative=5,
                 workers=workers, epochs=a.epochs, sample=0, shrink_windows=False, seed=a.seed)
    m.build_vocab(sentences)
    t0 = time.perf_counter()
    effective, raw = m.train(sentences, total_examples=m.corpus_count, epochs=a.epochs)
    sec = time.perf_counter() - t0
    return {"name": f"gensim Word2Vec CBOW negative=5, workers={workers}", "epochs": a.epochs, "threads": workers,
            "seconds": sec, "words": effective, "words_per_s": effective / sec, **evaluate(m.wv)}


def run_ours(paths, out_dir: Path, name: str, a, **kw) -> dict:
    kw = {"dim": a.dim, "window": a.window, "epochs": a.epochs, "seed": a.seed, "threads": a.threads,
          "progress": False, **kw}
    info = train(*paths, out_dir, gamma=0.0, **kw)
    kv = KeyedVectors.load_word2vec_format(out_dir / "vectors.txt", binary=False)
    return {"name": name, "epochs": kw["epochs"], "threads": kw["threads"], "seconds": info["train_seconds"],
            "words": info["n_words"],
            "words_per_s": info["words_per_s"], **evaluate(kv)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    # our negative-sampling run (tuned for throughput at good quality, see the report)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--optimizer", default="adam", choices=("adam", "sgd", "sparse_adam"))
    p.add_argument("--lr-schedule", default="linear", choices=("constant", "linear"))
    p.add_argument("--shared-negatives", type=int, default=1)
    p.add_argument("--quick-epochs", type=int, default=2,
                   help="also run ours (negative) for this many epochs (with --also-threads threads if "
                        "set), for time-to-quality (0: skip)")
    p.add_argument("--also-threads", type=int, default=1,
                   help="also run gensim and ours (negative) with this many threads (0: skip)")
    p.add_argument("--softmax-epochs", type=int, default=1, help="epochs of the full-softmax run (0: skip)")
    p.add_argument("--softmax-batch-size", type=int, default=1024)
    p.add_argument("--cache-dir", default=str(Path(__file__).parent / "out"))
    a = p.parse_args(argv)

    cache_dir = Path(a.cache_dir)
    load0 = os.getloadavg()
    captions = load_captions(cache_dir)
    sentences = [tokenize(c) for c in captions]
    print(f"corpus: {len(captions)} chunks ('captions') of <= {CHUNK} tokens, "
          f"{sum(map(len, sentences))} tokens; dim={a.dim} window={a.window} epochs={a.epochs} "
          f"min_count={a.min_count} threads={a.threads}; {os.cpu_count()} CPUs, load avg {load0[0]:.2f}",
          flush=True)

    results = []
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        tmp = Path(tmp)
        n = len(captions)
        ids = [f"{i:016x}" for i in range(n)]
        write_tsv(pd.DataFrame({"rank": range(n), "row": range(n), "id": ids, "caption": captions,
                                "status": "ok", "path": ""}), tmp / "captions.tsv")
        write_tsv(build_vocab(captions, min_count=a.min_count), tmp / "vocab.tsv")
        write_features(tmp / "images.h5", ids, np.zeros((n, 1), np.float32))
        paths = (tmp / "captions.tsv", tmp / "vocab.tsv", tmp / "images.h5")

        neg = dict(objective="negative", negatives=5, batch_size=a.batch_size, lr=a.lr,
                   optimizer=a.optimizer, lr_schedule=a.lr_schedule, shared_negatives=a.shared_negatives)
        tag = (f"B={a.batch_size} {a.optimizer} lr={a.lr} {a.lr_schedule}"
               + (f" shared_neg={a.shared_negatives}" if a.shared_negatives > 1 else ""))
        T, T1 = a.threads, a.also_threads if a.also_threads != a.threads else 0
        runs = [(f"gensim-{T}", T)] + ([(f"gensim-{T1}", T1)] if T1 else [])
        runs.append((f"ours negative, {tag}", {**neg, "threads": T}))
        if T1:
            runs.append((f"ours negative, {tag}", {**neg, "threads": T1}))
        if a.quick_epochs and a.quick_epochs != a.epochs:  # on the faster of the two thread counts
            quick_threads = T1 or T
            runs.append((f"ours negative, {tag}", {**neg, "threads": quick_threads, "epochs": a.quick_epochs}))
        if a.softmax_epochs:
            runs.append((f"ours full softmax, B={a.softmax_batch_size} adam lr=0.01 linear",
                         dict(objective="softmax", batch_size=a.softmax_batch_size, lr=0.01, optimizer="adam",
                              lr_schedule="linear", epochs=a.softmax_epochs, threads=T)))
        for i, (name, kw) in enumerate(runs):
            if isinstance(kw, int):
                r = run_gensim(sentences, a, kw)
            else:
                r = run_ours(paths, tmp / f"run{i}", name, a, **kw)
            results.append(r)
            print(f"  done: {r['name']} threads={r['threads']} ({r['seconds']:.1f}s)", file=sys.stderr, flush=True)

    gensim_by_threads = {r["threads"]: r for r in results if r["name"].startswith("gensim")}
    g = results[0]
    print(f"\n{'run':58s} {'thr':>3s} {'ep':>3s} {'sec':>7s} {'words/s':>9s} {'ratio':>6s} {'ws353':>6s} {'simlex':>6s}")
    for r in results:
        ref = gensim_by_threads.get(r["threads"], g)  # ratio vs gensim with the same thread count
        r["ratio_vs_gensim"] = r["words_per_s"] / ref["words_per_s"]
        print(f"{r['name']:58s} {r['threads']:3d} {r['epochs']:3d} {r['seconds']:7.1f} {r['words_per_s']:9.0f} "
              f"{r['ratio_vs_gensim']:6.2f} {r['ws353']:6.3f} {r['simlex']:6.3f}")
    print(f"(ratio = words/s relative to gensim with the same number of threads; OOV pairs: ws353 "
          f"{g['ws353_oov_pct']:.0f}%, simlex {g['simlex_oov_pct']:.0f}%; load avg {load0[0]:.2f} -> "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs: other processes distort multi-thread timings)")
    # time to gensim's quality: the fastest of our runs whose WS353 and SimLex both reach gensim's
    ours_ok = [r for r in results if r["name"].startswith("ours") and r["ws353"] >= g["ws353"]
               and r["simlex"] >= g["simlex"]]
    if ours_ok:
        best = min(ours_ok, key=lambda r: r["seconds"])
        print(f"time to gensim's quality ({g['epochs']} epochs, {g['threads']} threads: {g['seconds']:.1f}s): ours "
              f"{best['seconds']:.1f}s ({best['epochs']} epochs, {best['threads']} threads) -> "
              f"{g['seconds'] / best['seconds']:.2f}x")
    out = cache_dir / "train_throughput.json"
    out.write_text(json.dumps({"args": vars(a), "results": results, "gensim": gensim.__version__,
                               "loadavg": [load0, os.getloadavg()]}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
