"""Planted-signal data: a text corpus plus images with known ground truth (issue 13).

:func:`make` draws, from one seed and with numpy only (a fraction of a second):

* **visual words** ``v{c:02d}w{j}`` (``n_classes`` × ``words_per_class``). Each has a **visual
  class** c and an independently drawn **text topic** t: within a class the words get distinct
  topics (a seeded permutation of the topics; so ``words_per_class <= n_topics``), hence two
  words of one class never share a topic and two words of one topic never share a class.
* **images**: class prototype p_c ~ N(0, I_dim); word mean m_w = p_c + ``word_noise`` ·
  N(0, I); each of the word's ``images_per_word`` images is m_w + ``image_noise`` · N(0, I);
  all times ``feature_scale`` (default 1: unit-variance prototypes; the scale only matters to
  models whose loss sees it, e.g. WIELD's MSE against its cross-entropy). Image ids ``{word}i{k}``; the images are split train / validation / test by image
  (:func:`groundwords.grounding.word_images.split_images`, seeded).
* **sentences** (the corpus): a topic t is drawn uniformly, then a subject visual word of that
  topic; with probability ``p_other_visual`` a second visual word of the topic joins; with
  probability ``text_cue`` the subject's class cue word ``c{c:02d}cue`` joins; the sentence is
  filled to ``sentence_length`` tokens with the topic's filler words ``t{t}f{k:02d}`` and
  shuffled. So with ``text_cue = 0`` the text says *nothing* about visual classes: words are
  similar in text exactly when they share a topic. The fillers and cue words are the
  non-visual words (text only).
* **captions** (WIELD-style captioned images): ``n_captions`` more sentences drawn the same way,
  each paired with one image of its subject word (any split).
* **benchmarks** (``word1, word2, score``; scores are noisy human-like ratings in [0, 10]:
  7.5 or 2.5 plus N(0, ``score_noise``), clipped, two decimals):

  - ``visual``: pairs of visual words with **different topics**: every same-class pair, as many
    random different-class pairs of two hidden words as there are same-class pairs of two hidden
    words, and as many random other different-class pairs as there are same-class pairs; high
    score = same class;
  - ``text``: pairs of visual words with **different classes**: every same-topic pair and as
    many random different-topic pairs; high score = same topic;
  - ``hidden``: the rows of ``visual`` whose two words are both hidden (PIXIE's Table 3 setting).

* **hidden**: ``n_hidden`` visual words withheld from the per-word features for propagation
  tests, spread round-robin over the classes (so every class keeps visible words).

:meth:`Planted.write` writes the files the pipeline's stages read (see its docstring), so
stages run on planted data exactly as they do on real data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

SPLITS = ("train", "validation", "test")


#: the files :meth:`Planted.write` writes (keys of its result -> names in its folder)
_FILES = {
    "corpus": "corpus.txt", "vocab": "vocab.tsv", "word_images": "word_images.tsv",
    "word_images_visible": "word_images_visible.tsv", "encodings": "encodings.h5",
    "visual_minmax_all": "visual/minmax-all.h5", "visual_none_all": "visual/none-all.h5",
    "visual_minmax_hidden": "visual/minmax-hidden.h5", "visual_none_hidden": "visual/none-hidden.h5",
    "hidden": "hidden.txt", "bench_visual": "bench_visual.tsv", "bench_text": "bench_text.tsv",
    "bench_hidden": "bench_hidden.tsv", "captions": "captions.tsv", "captions_vocab": "captions_vocab.tsv",
    "encodings_pca": "encodings_pca.h5", "pca_model": "pca.npz", "word_images_h5": "word_images.h5",
    "word_images_pca": "word_images_pca.h5", "word_images_pca_model": "word_images_pca.npz",
}


@dataclass
class Planted:
    sentences: list[list[str]]
    visual_words: list[str]
    word_class: dict[str, int]
    word_topic: dict[str, int]
    word_features: dict[str, np.ndarray]       # per-word mean of its images' features (all splits)
    images: pd.DataFrame                        # image_id, word, split
    image_features: dict[str, np.ndarray]
    captions: pd.DataFrame                      # image_id, caption
    benchmarks: dict[str, pd.DataFrame]         # visual, text, hidden: word1, word2, score
    hidden: list[str]
    filler_words: list[str] = field(default_factory=list)
    cue_words: list[str] = field(default_factory=list)
    params: dict = field(default_factory=dict)

    # -----------------------------------------------------------------------------------------
    def ceiling(self, name: str) -> float:
        """Spearman ρ of the benchmark's scores with the true similarity (same class for
        ``visual``/``hidden``, same topic for ``text``): what a perfect model reaches."""
        from scipy.stats import spearmanr

        df = self.benchmarks[name]
        key = self.word_topic if name == "text" else self.word_class
        truth = np.array([key[a] == key[b] for a, b in zip(df["word1"], df["word2"])], float)
        return float(spearmanr(truth, df["score"]).statistic)

    def rho(self, vectors, names=("visual", "text", "hidden")) -> dict[str, float]:
        """Spearman ρ of a model's cosines on the benchmarks (:func:`groundwords.evaluation.similarity.similarity_spearman`,
        the evaluation stage's own code). ``vectors``: a path :func:`~groundwords.evaluation.similarity.load_vectors`
        reads, or ``(words, matrix)``. A benchmark the vectors do not cover gives NaN."""
        from groundwords.evaluation.similarity import load_vectors, similarity_spearman

        words, vecs = load_vectors(vectors) if isinstance(vectors, (str, Path)) else vectors
        return {n: similarity_spearman(list(words), vecs, self.benchmarks[n], name=n)["rho"] for n in names}

    def true_vectors(self, kind: str) -> tuple[list[str], np.ndarray]:
        """One-hot class (``kind="class"``) or topic (``"topic"``) vectors of the visual words."""
        key = self.word_class if kind == "class" else self.word_topic
        n = max(key.values()) + 1
        return list(self.visual_words), np.eye(n, dtype=np.float32)[[key[w] for w in self.visual_words]]

    # -----------------------------------------------------------------------------------------
    def write(self, out_dir, *, pca_dim: int = 32) -> dict[str, Path]:
        """Write every input file of the pipeline's stages into ``out_dir``; returns their paths.

        Keys (file names in brackets):

        * ``corpus`` (corpus.txt): one tokenized sentence per line (``text.corpora`` format);
          ``vocab`` (vocab.tsv): ``word, count`` of the corpus, every word (min count 1);
        * ``word_images`` (word_images.tsv): ``word, image_id, path, split`` (``grounding.word_images``);
          ``word_images_visible`` (word_images_visible.tsv): the same without the hidden words;
        * ``encodings`` (encodings.h5): ids = image ids, features (``io.write_features``, as
          ``encode`` writes);
        * ``visual_minmax_all``, ``visual_none_all``, ``visual_minmax_hidden``,
          ``visual_none_hidden`` (visual/{minmax,none}-{all,hidden}.h5): per-word features made
          by ``pixie.make_features`` itself (``-hidden``: without the hidden words);
          ``hidden`` (hidden.txt): the hidden words, one per line;
        * ``bench_visual``, ``bench_text``, ``bench_hidden`` (bench_*.tsv): ``word1<TAB>word2<TAB>score``;
        * WIELD (``groundwords.studies.wield.stage``): ``captions`` (captions.tsv: ``rank, row, id, caption,
          status, path``, status ``ok``; also a valid retrieval manifest), ``captions_vocab``
          (captions_vocab.tsv, min count 1), ``encodings_pca`` (encodings_pca.h5, ``pca.fit_pca``
          to ``pca_dim`` on the captions' images), ``word_images_h5`` (word_images.h5,
          ``grounding.word_features``: mean raw feature of the images whose caption holds the word) and
          ``word_images_pca`` (word_images_pca.h5: its PCA, the §6.2 word targets).
        """
        from collections import Counter

        from groundwords.files import write_features, write_tsv
        from groundwords.grounding.word_images import COLUMNS, write_word_images
        from groundwords.studies.pixie.stage import make_features
        from groundwords.text.corpora import write_corpus
        from groundwords.text.vocab import vocab_from_counts

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        p = {k: out / v for k, v in _FILES.items()}
        counts: Counter = Counter()
        write_corpus(self.sentences, p["corpus"], counts)
        write_tsv(vocab_from_counts(counts, min_count=1), p["vocab"])
        table = self.images.assign(path=[f"planted/{i}.png" for i in self.images["image_id"]])[COLUMNS]
        write_word_images(table, p["word_images"])
        write_tsv(table[~table["word"].isin(self.hidden)], p["word_images_visible"])
        ids = self.images["image_id"].tolist()
        feats = np.stack([self.image_features[i] for i in ids])
        write_features(p["encodings"], ids, feats, attrs={"model": "planted", "pooling": "none",
                                                           "dim": feats.shape[1], "dtype": "float32"})
        for scale in ("minmax", "none"):
            make_features(p["word_images"], p["encodings"], p[f"visual_{scale}_all"], scale=scale)
            make_features(p["word_images_visible"], p["encodings"], p[f"visual_{scale}_hidden"], scale=scale)
        self._write_hidden_and_benchmarks(p)
        self._write_wield_inputs(p, feats, pca_dim)
        return p

    def _write_hidden_and_benchmarks(self, p: dict[str, Path]) -> None:
        """hidden.txt and the benchmarks (``word1<TAB>word2<TAB>score``, scores to 2 decimals)."""
        from groundwords.files import atomic_path

        with atomic_path(p["hidden"]) as tmp:
            tmp.write_text("".join(w + "\n" for w in self.hidden), encoding="utf-8")
        for name in ("visual", "text", "hidden"):
            with atomic_path(p[f"bench_{name}"]) as tmp:
                df = self.benchmarks[name]
                tmp.write_text("".join(f"{a}\t{b}\t{s:.2f}\n" for a, b, s in zip(df["word1"], df["word2"], df["score"])),
                               encoding="utf-8")

    def _write_wield_inputs(self, p: dict[str, Path], feats: np.ndarray, pca_dim: int) -> None:
        """The captions, their vocabulary, the PCA'd encodings and the word targets WIELD reads."""
        from groundwords.data.pca import fit_pca
        from groundwords.files import write_tsv
        from groundwords.grounding.word_features import word_image_features
        from groundwords.text.vocab import build_vocab

        caps = pd.DataFrame({"rank": range(len(self.captions)), "row": range(len(self.captions)),
                             "id": self.captions["image_id"], "caption": self.captions["caption"], "status": "ok",
                             "path": [f"planted/{i}.png" for i in self.captions["image_id"]]})
        write_tsv(caps, p["captions"])
        write_tsv(build_vocab(caps["caption"], min_count=1), p["captions_vocab"])
        k = min(pca_dim, feats.shape[1])
        fit_pca(p["encodings"], p["pca_model"], p["encodings_pca"], dim=k, ids_tsv=p["captions"], seed=0)
        word_image_features(p["captions"], p["encodings"], p["captions_vocab"], p["word_images_h5"])
        fit_pca(p["word_images_h5"], p["word_images_pca_model"], p["word_images_pca"], dim=k, seed=0)


# ---------------------------------------------------------------------------------------------


def _sentence(rng, t, topic_words, fillers, cue_of_class, word_class, length, p_other, text_cue):
    ws = topic_words[t]
    subject = ws[rng.integers(len(ws))]
    toks = [subject]
    if p_other > 0 and len(ws) > 1 and rng.random() < p_other:
        others = [w for w in ws if w != subject]
        toks.append(others[rng.integers(len(others))])
    if text_cue > 0 and rng.random() < text_cue:
        toks.append(cue_of_class[word_class[subject]])
    n_fill = max(length - len(toks), 1)
    toks += [fillers[t][i] for i in rng.integers(len(fillers[t]), size=n_fill)]
    rng.shuffle(toks)
    return subject, toks


def _scores(rng, same: np.ndarray, noise: float) -> np.ndarray:
    return np.round(np.clip(np.where(same, 7.5, 2.5) + noise * rng.standard_normal(len(same)), 0.0, 10.0), 2)


def make(seed: int = 0, n_classes: int = 8, words_per_class: int = 6, n_topics: int = 8,
         n_sentences: int = 4000, dim: int = 64, images_per_word: int = 6, n_hidden: int = 16,
         text_cue: float = 0.0, *, fillers_per_topic: int = 20, sentence_length: int = 10,
         p_other_visual: float = 0.3, n_captions: int = 1200, word_noise: float = 0.5,
         image_noise: float = 0.3, feature_scale: float = 1.0, score_noise: float = 1.0,
         val_frac: float = 0.15, test_frac: float = 0.15) -> Planted:
    """Draw a :class:`Planted` data set (see the module docstring). Deterministic in ``seed``."""
    from groundwords.grounding.word_images import split_images

    _check_make_args(n_classes, words_per_class, n_topics, n_hidden, text_cue)
    rng = np.random.default_rng(seed)
    # words, classes and topics
    visual, word_class, word_topic = _draw_words(rng, n_classes, words_per_class, n_topics)
    topic_words = [[w for w in visual if word_topic[w] == t] for t in range(n_topics)]
    live_topics = np.array([t for t in range(n_topics) if topic_words[t]])
    fillers = [[f"t{t}f{k:02d}" for k in range(fillers_per_topic)] for t in range(n_topics)]
    cue_of_class = [f"c{c:02d}cue" for c in range(n_classes)]
    # images
    images, image_features = _draw_images(rng, visual, word_class, n_classes, dim, images_per_word,
                                          word_noise, image_noise, feature_scale)
    split = split_images(images["image_id"], val_frac, test_frac, seed)
    images["split"] = images["image_id"].map(split)
    word_features = {w: np.mean([image_features[i] for i in g["image_id"]], 0).astype(np.float32)
                     for w, g in images.groupby("word", sort=False)}

    # text
    def sentence(t):
        return _sentence(rng, t, topic_words, fillers, cue_of_class, word_class, sentence_length,
                         p_other_visual, text_cue)

    sentences, captions = _draw_text(rng, live_topics, sentence, n_sentences, n_captions, images_per_word)
    # hidden words: round-robin over the classes, a random word of each
    order = [[w for w in rng.permutation([w for w in visual if word_class[w] == c])] for c in range(n_classes)]
    hidden = sorted(str(order[i % n_classes][i // n_classes]) for i in range(n_hidden))
    benchmarks = _draw_benchmarks(rng, visual, word_class, word_topic, set(hidden), score_noise)
    params = dict(seed=seed, n_classes=n_classes, words_per_class=words_per_class, n_topics=n_topics,
                  n_sentences=n_sentences, dim=dim, images_per_word=images_per_word, n_hidden=n_hidden,
                  text_cue=text_cue, fillers_per_topic=fillers_per_topic, sentence_length=sentence_length,
                  p_other_visual=p_other_visual, n_captions=n_captions, word_noise=word_noise,
                  image_noise=image_noise, feature_scale=feature_scale, score_noise=score_noise, val_frac=val_frac, test_frac=test_frac)
    return Planted(sentences=sentences, visual_words=visual, word_class=word_class, word_topic=word_topic,
                   word_features=word_features, images=images, image_features=image_features, captions=captions,
                   benchmarks=benchmarks, hidden=hidden, filler_words=[f for fs in fillers for f in fs],
                   cue_words=cue_of_class, params=params)


def _check_make_args(n_classes: int, words_per_class: int, n_topics: int, n_hidden: int, text_cue: float) -> None:
    if words_per_class > n_topics:
        raise ValueError(f"words_per_class ({words_per_class}) must be <= n_topics ({n_topics}): "
                         "the words of one class get distinct topics")
    if not 0 <= n_hidden <= n_classes * (words_per_class - 1):
        raise ValueError(f"n_hidden must be in [0, {n_classes * (words_per_class - 1)}] "
                         "(every class keeps at least one visible word)")
    if not 0.0 <= text_cue <= 1.0:
        raise ValueError(f"text_cue must be in [0, 1] (got {text_cue})")


def _draw_words(rng, n_classes: int, words_per_class: int, n_topics: int) -> tuple[list[str], dict, dict]:
    """The visual words ``v{class}w{j}`` with their class and topic; one class's words get distinct
    random topics."""
    visual, word_class, word_topic = [], {}, {}
    for c in range(n_classes):
        topics = rng.permutation(n_topics)[:words_per_class]
        for j in range(words_per_class):
            w = f"v{c:02d}w{j}"
            visual.append(w)
            word_class[w], word_topic[w] = c, int(topics[j])
    return visual, word_class, word_topic


def _draw_images(rng, visual, word_class, n_classes: int, dim: int, images_per_word: int, word_noise: float,
                 image_noise: float, feature_scale: float) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """``images_per_word`` images per word (``image_id, word``) and their features: the class
    prototype plus word noise plus image noise."""
    protos = rng.standard_normal((n_classes, dim))
    image_rows, image_features = [], {}
    for w in visual:
        mean = protos[word_class[w]] + word_noise * rng.standard_normal(dim)
        for k in range(images_per_word):
            iid = f"{w}i{k}"
            image_features[iid] = (feature_scale * (mean + image_noise * rng.standard_normal(dim))).astype(np.float32)
            image_rows.append((iid, w))
    return pd.DataFrame(image_rows, columns=["image_id", "word"]), image_features


def _draw_text(rng, live_topics: np.ndarray, sentence, n_sentences: int, n_captions: int,
               images_per_word: int) -> tuple[list[list[str]], pd.DataFrame]:
    """The corpus (token lists) and the captions (``image_id, caption``: an image of the caption's
    subject); each sentence is ``sentence(topic)`` of a random live topic."""
    sentences = []
    for _ in range(n_sentences):
        t = int(live_topics[rng.integers(len(live_topics))])
        sentences.append(sentence(t)[1])
    caps = []
    for _ in range(n_captions):
        t = int(live_topics[rng.integers(len(live_topics))])
        subject, toks = sentence(t)
        caps.append((f"{subject}i{rng.integers(images_per_word)}", " ".join(toks)))
    return sentences, pd.DataFrame(caps, columns=["image_id", "caption"])


def _draw_benchmarks(rng, visual, word_class, word_topic, hidden_set: set[str],
                     score_noise: float) -> dict[str, pd.DataFrame]:
    """The ``visual``, ``text`` and ``hidden`` benchmarks (``word1, word2, score``)."""
    pairs = [(a, b) for i, a in enumerate(visual) for b in visual[i + 1:]]
    vis_pos = [(a, b) for a, b in pairs if word_class[a] == word_class[b]]  # topics differ by construction
    hid_pos = [(a, b) for a, b in vis_pos if a in hidden_set and b in hidden_set]
    vis_hid = [(a, b) for a, b in pairs if word_class[a] != word_class[b] and word_topic[a] != word_topic[b]
               and a in hidden_set and b in hidden_set]
    vis_hid = [vis_hid[i] for i in sorted(rng.choice(len(vis_hid), min(len(hid_pos), len(vis_hid)), replace=False))]
    vis_neg = [(a, b) for a, b in pairs if word_class[a] != word_class[b] and word_topic[a] != word_topic[b]
               and not (a in hidden_set and b in hidden_set)]
    vis_neg = [vis_neg[i] for i in sorted(rng.choice(len(vis_neg), min(len(vis_pos), len(vis_neg)), replace=False))]
    txt_pos = [(a, b) for a, b in pairs if word_topic[a] == word_topic[b]]  # classes differ by construction
    txt_neg = [(a, b) for a, b in pairs if word_topic[a] != word_topic[b] and word_class[a] != word_class[b]]
    txt_neg = [txt_neg[i] for i in sorted(rng.choice(len(txt_neg), min(len(txt_pos), len(txt_neg)), replace=False))]
    benchmarks = {}
    for name, rows, key in (("visual", vis_pos + vis_hid + vis_neg, word_class), ("text", txt_pos + txt_neg, word_topic)):
        same = np.array([key[a] == key[b] for a, b in rows])
        benchmarks[name] = pd.DataFrame({"word1": [a for a, _ in rows], "word2": [b for _, b in rows],
                                         "score": _scores(rng, same, score_noise)})
    v = benchmarks["visual"]
    benchmarks["hidden"] = v[v["word1"].isin(hidden_set) & v["word2"].isin(hidden_set)].reset_index(drop=True)
    return benchmarks
