"""Skip-gram throughput and quality: our SGNS (IESG's pretraining) vs gensim's Word2Vec(sg=1).

    python benchmarks/sgns_throughput.py [--epochs 3] [--threads 1]

Corpus: gensim's bundled Wikipedia excerpt through ``groundwords.text.corpora`` (the pipeline's
own reader and tokenizer); both models get the same sentences and min_count, dim 100, window
5, 5 negatives, sample 1e-3, word2vec's reduced windows and linear learning-rate decay from
alpha 0.025. Throughput = raw corpus words per second of training (gensim: ``train()``'s raw word count /
its wall time; ours: all tokens, out-of-vocabulary ones included, x epochs / ``train_seconds``, excluding
reading). Ours runs ``iesg.pretrain``'s default engine (numba); ``benchmarks/w2v_vs_gensim.py`` is the
fuller comparison (interleaved repeats, medians, time to ρ).
Quality = Spearman ρ of ``KeyedVectors.evaluate_word_pairs`` on WordSim353 and SimLex-999
(gensim's copies) for both models' vectors. Printed as a table and a words/s ratio.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from gensim.models import KeyedVectors, Word2Vec
from gensim.test.utils import datapath

from groundwords.studies.iesg import stage as iesg
from groundwords.text import corpora as textcorpus


def quality(kv: KeyedVectors) -> dict:
    out = {}
    for name, f in (("ws353", "wordsim353.tsv"), ("simlex999", "simlex999.txt")):
        pearson, spearman, oov = kv.evaluate_word_pairs(datapath(f), case_insensitive=True)
        out[name] = round(float(spearman.statistic), 4)
        out[f"{name}_oov%"] = round(float(oov), 1)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--min-count", type=int, default=5)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus.txt"
        textcorpus.build_text_corpus("enwiki-sample", corpus)
        sentences = textcorpus.read_corpus(corpus)
        n_tokens = sum(map(len, sentences))

        w2v = Word2Vec(vector_size=100, window=5, min_count=a.min_count, sg=1, negative=5, sample=1e-3,
                       workers=a.threads, seed=0)
        w2v.build_vocab(sentences)
        t0 = time.perf_counter()
        _, raw = w2v.train(sentences, total_examples=len(sentences), epochs=a.epochs)
        g_sec = time.perf_counter() - t0
        gensim_row = {"model": "gensim Word2Vec(sg=1)", "words_per_s": round(raw / g_sec),
                      "train_s": round(g_sec, 2), **quality(w2v.wv)}

        info = iesg.pretrain(corpus, tmp / "ours", min_count=a.min_count, epochs=a.epochs, threads=a.threads,
                             progress=False)
        ours_kv = KeyedVectors.load_word2vec_format(str(tmp / "ours" / "vectors.txt"))
        # raw corpus words (tokens incl. out-of-vocabulary ones x epochs), as gensim's raw_word_count
        raw_ours = (info["n_tokens"] + info["n_oov_dropped"]) * a.epochs
        ours_row = {"model": "groundwords SGNS", "words_per_s": round(raw_ours / info["train_seconds"]),
                    "train_s": round(info["train_seconds"], 2), **quality(ours_kv)}
    print(f"corpus: {len(sentences)} sentences, {n_tokens} tokens; epochs {a.epochs}, threads {a.threads}")
    for r in (gensim_row, ours_row):
        print(json.dumps(r))
    print(f"ratio ours/gensim words/s: {ours_row['words_per_s'] / gensim_row['words_per_s']:.3f}")


if __name__ == "__main__":
    main()
