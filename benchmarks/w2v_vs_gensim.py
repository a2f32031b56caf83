"""Our compiled word2vec engine (groundwords.w2v_fast) vs gensim, SGNS and CBOW-NS, same corpus, same cores.

    python benchmarks/w2v_vs_gensim.py [--epochs 10] [--repeats 3] [--threads 1 2]

Corpus: gensim's bundled Wikipedia excerpt through ``groundwords.text.corpora`` (the pipeline's
reader and tokenizer; cached under ``--cache-dir``); vocabulary min_count 5 on both sides
(the same words). Both sides get the same sentences.

* **SGNS** (IESG / PIXIE's skip-gram): dim 100, window 5 with reduced windows, 5 negatives,
  sample 1e-3, α 0.025 decayed linearly. Ours: :func:`groundwords.w2v_fast.train_sgns_arrays`
  (the ``engine: numba`` path of ``train_sgns``); gensim: ``Word2Vec(sg=1)``.
* **CBOW-NS** (WIELD with γ = 0 and ``objective: negative``, ``optimizer: sgd``): the examples
  of :func:`groundwords.text.captions.cbow_windows` (full window, no subsampling, the WIELD stage's
  examples), ``h`` = the sum of the context vectors (WIELD's objective); gensim:
  ``Word2Vec(sg=0, sample=0, shrink_windows=False)`` (its default ``cbow_mean=1``). Our time
  includes building the examples.
* **WIELD γ > 0**: ours only, the same CBOW run plus the image head (a 32-d target per
  sentence, as a caption's PCA-32 image), to compare with its own γ = 0 speed.

Words/s = the corpus's raw token count (out-of-vocabulary tokens included, as gensim counts
them) × epochs / training seconds, **the same word count for both sides**. Training seconds
are the sum of the epochs' times (ours: the kernel's; gensim: from its epoch callbacks), so
the per-epoch evaluation is not counted. Runs are interleaved (rep 1: every configuration,
then rep 2, ...; ours and gensim alternate first) and the table shows medians over repeats.
Quality: Spearman ρ of ``KeyedVectors.evaluate_word_pairs`` on gensim's WordSim353 and
SimLex-999 copies after the last epoch; "time to ρ" = training seconds until the median WS353
(evaluated after every epoch) first reaches the lower of the two sides' final median ρ.
``--render out/w2v_vs_gensim.json`` prints the table of a finished run again.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors, Word2Vec
from gensim.models.callbacks import CallbackAny2Vec
from gensim.test.utils import datapath

from groundwords import w2v_fast
from groundwords.config import section_settings
from groundwords.text import corpora as textcorpus
from groundwords.text.captions import EncodedCaptions, cbow_windows, encode_token_lists

DIM, NEG = 100, 5


def rho(kv: KeyedVectors) -> tuple[float, float]:
    out = []
    for f in ("wordsim353.tsv", "simlex999.txt"):
        out.append(float(kv.evaluate_word_pairs(datapath(f))[1][0]))
    return out[0], out[1]


def keyed(words, vectors) -> KeyedVectors:
    kv = KeyedVectors(vectors.shape[1])
    kv.add_vectors(words, np.ascontiguousarray(vectors[: len(words)]))
    return kv


class EpochLog(CallbackAny2Vec):
    """gensim: per-epoch training time (evaluation excluded) and ρ."""

    def __init__(self):
        self.seconds, self.curve, self.t0 = 0.0, [], 0.0

    def on_epoch_begin(self, model):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, model):
        self.seconds += time.perf_counter() - self.t0
        self.curve.append((self.seconds, *rho(model.wv)))


def run_gensim(kind, sentences, a, threads, seed) -> dict:
    kw = dict(sg=1, window=a.window, sample=1e-3) if kind == "sgns" else \
        dict(sg=0, window=a.cbow_window, sample=0, shrink_windows=False)
    m = Word2Vec(vector_size=DIM, min_count=a.min_count, negative=NEG, hs=0, workers=threads, seed=seed,
                 alpha=0.025, **kw)
    m.build_vocab(sentences)
    cb = EpochLog()
    m.train(sentences, total_examples=m.corpus_count, epochs=a.epochs, callbacks=[cb])
    return {"seconds": cb.seconds, "curve": cb.curve}


def run_ours(kind, enc: EncodedCaptions, words, counts, a, threads, seed, gamma=0.0) -> dict:
    rng = np.random.default_rng(seed)
    V = len(words)
    curve, acc = [], [0.0]
    syn0 = ((rng.random((V + 1, DIM)) - 0.5) / DIM).astype(np.float32)
    syn0[V] = 0
    syn1 = np.zeros((V, DIM), np.float32)

    def on_epoch(rec):
        acc[0] += rec["seconds"]
        curve.append((acc[0], *rho(keyed(words, syn0))))

    if kind == "sgns":
        w2v_fast.train_sgns_arrays(syn0, syn1, enc.tokens, enc.offsets, counts, window=a.window, negatives=NEG,
                                   sample=1e-3, epochs=a.epochs, alpha=0.025, seed=seed, threads=threads,
                                   on_epoch_end=on_epoch)
    else:
        t0 = time.perf_counter()
        ctx, tgt, cap = cbow_windows(enc, a.cbow_window, V)
        acc[0] += time.perf_counter() - t0  # building the examples counts
        img = {}
        if gamma > 0:
            k = 32
            img = dict(gamma=gamma, image_row=cap, image_targets=rng.normal(size=(enc.n_captions, k)).astype(np.float32),
                       img_w=(rng.normal(size=(k, DIM)) * 0.1).astype(np.float32), img_b=np.zeros(k, np.float32),
                       image_block=a.image_block)
        w2v_fast.train_cbow_arrays(syn0, syn1, ctx, tgt, V, counts, negatives=NEG, epochs=a.epochs,
                                   alpha=a.cbow_alpha, seed=seed, threads=threads, on_epoch_end=on_epoch, **img)
    return {"seconds": acc[0], "curve": curve}


def time_to(runs, target) -> float:
    """Training seconds until the runs' median WS353 curve first reaches ``target`` (the median
    over runs of ρ and of the cumulative seconds, epoch by epoch; nan if it never does)."""
    for e in range(min(len(r["curve"]) for r in runs)):
        if statistics.median(r["curve"][e][1] for r in runs) >= target - 1e-12:
            return statistics.median(r["curve"][e][0] for r in runs)
    return float("nan")


def report(a, runs, load0, load1, cache: Path, save: bool = True) -> None:
    """Medians per configuration, the table, and (``save``) the JSON with every run."""
    configs = [(kind, T) for kind in a.models for T in a.threads]
    med = statistics.median
    rows = []
    for kind, T in configs:
        o, g = runs[(kind, T, "ours")], runs[(kind, T, "gensim")]
        ows, gws = med(r["curve"][-1][1] for r in o), med(r["curve"][-1][1] for r in g)
        target = min(ows, gws)
        row = {"model": kind, "threads": T,
               "ours_wps": med(r["words_per_s"] for r in o), "gensim_wps": med(r["words_per_s"] for r in g),
               "ours_ws353": ows, "gensim_ws353": gws,
               "ours_simlex": med(r["curve"][-1][2] for r in o), "gensim_simlex": med(r["curve"][-1][2] for r in g),
               "target": target, "ours_t": time_to(o, target), "gensim_t": time_to(g, target)}
        row["ratio"] = row["ours_wps"] / row["gensim_wps"]
        if (kind, T, "ours_img") in runs:
            row["img_wps"] = med(r["words_per_s"] for r in runs[(kind, T, "ours_img")])
        rows.append(row)

    print(f"\n| model | threads | ours words/s | gensim words/s | ratio | WS353 ours / gensim | SimLex ours / gensim "
          f"| time to WS353 ≥ target: ours / gensim (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        name = "SGNS" if r["model"] == "sgns" else "CBOW-NS (WIELD γ=0)"
        print(f"| {name} | {r['threads']} | {r['ours_wps']:,.0f} | {r['gensim_wps']:,.0f} | **{r['ratio']:.2f}×** | "
              f"{r['ours_ws353']:.3f} / {r['gensim_ws353']:.3f} | {r['ours_simlex']:.3f} / {r['gensim_simlex']:.3f} | "
              f"{r['ours_t']:.1f} / {r['gensim_t']:.1f} (target {r['target']:.3f}) |")
    for r in rows:
        if "img_wps" in r:
            print(f"WIELD γ={a.gamma:g} (image head, k=32, image_block {a.image_block}), {r['threads']} thread(s): "
                  f"{r['img_wps']:,.0f} words/s = "
                  f"{r['ours_wps'] / r['img_wps']:.2f}× slower than its γ=0 ({r['ours_wps']:,.0f})")
    print(f"(medians of {a.repeats} interleaved runs; words = raw corpus tokens incl. OOV, the same count for both; "
          f"load avg {load0[0]:.2f} -> {load1[0]:.2f} on {os.cpu_count()} CPUs)")
    if save:
        out = cache / "w2v_vs_gensim.json"
        out.write_text(json.dumps({"args": vars(a), "rows": rows, "loadavg": [load0, load1],
                                   "runs": {"|".join(map(str, k)): v for k, v in runs.items()}}, indent=1) + "\n")
        print(f"wrote {out}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--models", nargs="+", default=["sgns", "cbow"], choices=["sgns", "cbow"])
    p.add_argument("--window", type=int, default=5, help="SGNS window")
    p.add_argument("--cbow-window", type=int, default=2, help="CBOW window (WIELD's default 2)")
    p.add_argument("--cbow-alpha", type=float, default=0.025, help="our CBOW per-example rate")
    p.add_argument("--gamma", type=float, default=1.0, help="WIELD image-head run (0: skip)")
    p.add_argument("--image-block", type=int, default=section_settings("wield", {})["image_block"],
                   help="the image head's block (wield.image_block; 1: a step per example)")
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--cache-dir", default=str(Path(__file__).parent / "out"))
    p.add_argument("--render", help="print the table of a saved w2v_vs_gensim.json instead of running")
    a = p.parse_args(argv)
    if a.render:
        saved = json.loads(Path(a.render).read_text())
        runs = {tuple(int(x) if x.isdigit() else x for x in k.split("|")): v for k, v in saved["runs"].items()}
        a = argparse.Namespace(**{**saved["args"], "render": a.render})
        report(a, runs, saved["loadavg"][0], saved["loadavg"][1], Path(a.cache_dir), save=False)
        return

    cache = Path(a.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    corpus = cache / "enwiki_sample_corpus.txt"
    if not corpus.exists():
        textcorpus.build_text_corpus("enwiki-sample", corpus)
    sentences = textcorpus.read_corpus(corpus)
    vocab = textcorpus.vocab_from_counts(Counter(t for s in sentences for t in s), a.min_count)
    words = vocab["word"].astype(str).tolist()
    counts = vocab["count"].to_numpy(np.float64)
    enc = encode_token_lists(sentences, words)
    n_raw = enc.n_raw_tokens
    load0 = os.getloadavg()
    print(f"corpus: {len(sentences)} sentences, {n_raw} tokens ({enc.n_oov} OOV), vocabulary {len(words)}; "
          f"epochs {a.epochs}, repeats {a.repeats}; {os.cpu_count()} CPUs, load avg {load0[0]:.2f}", flush=True)

    # warm up the numba kernels (compilation is cached on disk; not part of any timing)
    tiny = encode_token_lists(sentences[:1], words)
    for kind in a.models:
        run_ours(kind, tiny, words, counts, argparse.Namespace(**{**vars(a), "epochs": 1}), 1, 0,
                 gamma=a.gamma if kind == "cbow" else 0.0)

    configs = [(kind, T) for kind in a.models for T in a.threads]
    runs: dict[tuple, list[dict]] = {}
    for rep in range(a.repeats):
        for i, (kind, T) in enumerate(configs):
            sides = ["ours", "gensim"] if (rep + i) % 2 == 0 else ["gensim", "ours"]
            if kind == "cbow" and a.gamma > 0:
                sides.append("ours_img")
            for side in sides:
                if side == "gensim":
                    r = run_gensim(kind, sentences, a, T, rep)
                else:
                    r = run_ours(kind, enc, words, counts, a, T, rep, gamma=a.gamma if side == "ours_img" else 0.0)
                r["words_per_s"] = n_raw * a.epochs / r["seconds"]
                runs.setdefault((kind, T, side), []).append(r)
                print(f"  rep {rep} {kind} threads={T} {side}: {r['seconds']:.1f}s "
                      f"{r['words_per_s']:.0f} words/s, ws353 {r['curve'][-1][1]:.3f}", file=sys.stderr, flush=True)

    report(a, runs, load0, os.getloadavg(), cache)


if __name__ == "__main__":
    main()
