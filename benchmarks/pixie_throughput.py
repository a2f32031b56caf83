"""PIXIE's training cost and quality beside its text-only peers, in one run on the same corpus.

    python benchmarks/pixie_throughput.py --visual results/pixie/visual/minmax-all.h5 \
        [--corpus results/pixie/corpus.txt --vocab results/pixie/vocab.tsv] [--epochs 2] [--threads 1]

Three models on the same tokenized corpus and vocabulary (the pipeline's ``results/pixie``
files; build them with ``snakemake results/pixie/visual/minmax-all.h5``), dim 100, window 5,
5 negatives, sample 1e-3:

* gensim ``Word2Vec(sg=1)`` (the field's reference skip-gram: SGD, linear decay, C threads);
* our SGNS with Adam (PIXIE's baseline: :mod:`groundwords.studies.pixie.stage` ``train`` without visual
  features; same pairs, optimiser and seed as PIXIE);
* PIXIE (SGNS + the VAE over the per-word features of ``--visual``).

Throughput = in-vocabulary corpus tokens x epochs / training seconds (reading excluded). Quality =
Spearman ρ (``KeyedVectors.evaluate_word_pairs``) on WordSim353 and SimLex-999 (gensim's copies);
PIXIE's row is PIXIE+ (its ``vectors.txt``). Printed as a table with words/s ratios to gensim
and to our SGNS.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from gensim.models import KeyedVectors, Word2Vec
from gensim.test.utils import datapath

from groundwords.studies.pixie import stage as pixie
from groundwords.text import corpora as textcorpus
from groundwords.text.vocab import load_vocab


def quality(kv: KeyedVectors) -> dict:
    out = {}
    for name, f in (("ws353", "wordsim353.tsv"), ("simlex999", "simlex999.txt")):
        _, spearman, _ = kv.evaluate_word_pairs(datapath(f), case_insensitive=True, restrict_vocab=len(kv))
        out[name] = round(float(spearman.statistic), 4)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", default="results/pixie/corpus.txt")
    p.add_argument("--vocab", default="results/pixie/vocab.tsv")
    p.add_argument("--visual", default="results/pixie/visual/minmax-all.h5")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--lr", type=float, default=0.004)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    for f in (a.corpus, a.vocab, a.visual):
        if not Path(f).is_file():
            raise SystemExit(f"{f} not found: run `snakemake --cores 2 {a.visual}` first")
    sentences = textcorpus.read_corpus(a.corpus)
    rows = []
    vocab = set(load_vocab(a.vocab)["word"].astype(str))
    w2v = Word2Vec(vector_size=100, window=5, min_count=1, sg=1, negative=5, sample=1e-3, workers=a.threads,
                   seed=0)
    kept = [[t for t in s if t in vocab] for s in sentences]
    w2v.build_vocab(kept)
    t0 = time.perf_counter()
    w2v.train(kept, total_examples=len(kept), epochs=a.epochs)
    g_sec = time.perf_counter() - t0
    n_tok = sum(map(len, kept))
    rows.append({"model": "gensim Word2Vec(sg=1), SGD", "words_per_s": round(n_tok * a.epochs / g_sec),
                 **quality(w2v.wv)})
    common = dict(dim=100, window=5, negatives=5, sample=1e-3, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                  threads=a.threads, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        for name, visual in (("ours SGNS, Adam", None), ("ours PIXIE (PIXIE+), Adam", a.visual)):
            out = Path(tmp) / name.split()[1]
            info = pixie.train(a.corpus, a.vocab, visual, out, **common)
            rows.append({"model": name, "words_per_s": round(info["n_tokens"] * a.epochs / info["train_seconds"]),
                         **quality(KeyedVectors.load_word2vec_format(str(out / "vectors.txt")))})
    g, s = rows[0]["words_per_s"], rows[1]["words_per_s"]
    for r in rows:
        r["ratio_to_gensim"] = round(r["words_per_s"] / g, 3)
        r["ratio_to_our_sgns"] = round(r["words_per_s"] / s, 3)
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    print(json.dumps({"epochs": a.epochs, "threads": a.threads, "tokens": n_tok, "batch_size": a.batch_size,
                      "lr": a.lr}))


if __name__ == "__main__":
    main()
