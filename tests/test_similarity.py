"""Word-similarity evaluation: vector loading, Spearman (vs scipy and gensim), representations."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from groundwords.cli import UserError, run_cli
from groundwords.evaluation import similarity as ev
from groundwords.files import read_tsv, write_features


def _cos(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _save_w2v(path, words, vectors):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=vectors.shape[1])
    kv.add_vectors(words, vectors)
    kv.save_word2vec_format(str(path), binary=False)
    return kv


# ---------------------------------------------------------------------------------------------
# load_vectors


def test_load_word2vec_text_matches_gensim(tmp_path):
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(0)
    words = ["the", "Cat", "x-ray", "don't", "über"]
    vecs = rng.normal(size=(5, 7)).astype(np.float32)
    _save_w2v(tmp_path / "v.txt", words, vecs)
    w, m = ev.load_vectors(tmp_path / "v.txt")
    kv = KeyedVectors.load_word2vec_format(str(tmp_path / "v.txt"), binary=False)
    assert w == kv.index_to_key == words
    assert m.dtype == np.float32
    np.testing.assert_array_equal(m, kv.vectors)


def test_load_headerless_and_npy_dir(tmp_path):
    (tmp_path / "glove.txt").write_text("a 1 2\nb 3 4\n")
    w, m = ev.load_vectors(tmp_path / "glove.txt")
    assert w == ["a", "b"] and m.tolist() == [[1, 2], [3, 4]]

    d = tmp_path / "run"
    d.mkdir()
    np.save(d / "vectors.npy", np.arange(6, dtype=np.float64).reshape(3, 2))
    (d / "vocab.txt").write_text("sun\nmoon\nstar\n")
    w, m = ev.load_vectors(d)
    assert w == ["sun", "moon", "star"] and m.dtype == np.float32 and m[2].tolist() == [4, 5]
    assert ev.load_vectors(d / "vectors.npy")[0] == w
    (d / "vocab.txt").write_text("word\tcount\nsun\t3\nmoon\t2\nstar\t1\n")  # header tolerated
    assert ev.load_vectors(d)[0] == w


def test_load_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        ev.load_vectors(tmp_path / "nope.txt")
    (tmp_path / "bad.txt").write_text("2 3\na 1 2 3\nb 1 2\n")
    with pytest.raises(UserError, match=r"bad\.txt:3: expected a word and 3 numbers"):
        ev.load_vectors(tmp_path / "bad.txt")
    (tmp_path / "bad2.txt").write_text("2 2\na 1 2\nb 1 x\n")
    with pytest.raises(UserError, match=r"bad2\.txt:3: not a vector"):
        ev.load_vectors(tmp_path / "bad2.txt")
    (tmp_path / "short.txt").write_text("3 2\na 1 2\nb 1 2\n")
    with pytest.raises(UserError, match="header says 3"):
        ev.load_vectors(tmp_path / "short.txt")
    d = tmp_path / "d"
    d.mkdir()
    np.save(d / "vectors.npy", np.zeros((2, 2)))
    (d / "vocab.txt").write_text("a\n")
    with pytest.raises(UserError, match="1 words but vectors.npy has 2 rows"):
        ev.load_vectors(d)


# ---------------------------------------------------------------------------------------------
# similarity_spearman


def test_spearman_equals_scipy_on_hand_cosines():
    words = ["a", "b", "c", "d"]
    vecs = np.array([[1, 0], [1, 1], [0, 1], [-1, 0.5]], dtype=np.float32)
    pairs = pd.DataFrame({"word1": ["a", "a", "b", "c", "A", "a"],
                          "word2": ["b", "c", "c", "d", "d", "zzz"],
                          "score": [8.0, 1.0, 7.0, 5.0, 0.5, 3.0]})
    cos = [_cos([1, 0], [1, 1]), _cos([1, 0], [0, 1]), _cos([1, 1], [0, 1]),
           _cos([0, 1], [-1, 0.5]), _cos([1, 0], [-1, 0.5])]
    expected = stats.spearmanr([8.0, 1.0, 7.0, 5.0, 0.5], cos)
    r = ev.similarity_spearman(words, vecs, pairs)
    assert r["rho"] == pytest.approx(expected.statistic, abs=1e-12)
    assert r["pvalue"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert (r["pairs_used"], r["pairs_total"], r["oov_pairs"]) == (5, 6, 1)
    assert r["coverage"] == pytest.approx(5 / 6)

    # case-sensitive: "A" is now out of vocabulary
    r = ev.similarity_spearman(words, vecs, pairs, case_insensitive=False)
    assert r["pairs_used"] == 4


def test_spearman_equals_gensim_evaluate_word_pairs(tmp_path):
    rng = np.random.default_rng(42)
    base = ["tiger", "cat", "dog", "money", "cash", "bank", "sun", "moon", "star", "car",
            "train", "water", "river", "king", "queen", "apple", "fruit", "bird", "tree", "house"]
    # case variants: "Paris" comes first, so it must win over "paris" (as in gensim)
    words = base[:10] + ["Paris", "paris", "France"] + base[10:]
    vecs = rng.normal(size=(len(words), 16)).astype(np.float32)
    kv = _save_w2v(tmp_path / "vectors.txt", words, vecs)

    pr = np.random.default_rng(1)
    vocab_pool = base + ["Paris", "PARIS", "france", "TIGER", "Cat"]
    oov_pool = ["unicorn", "Zebra", "xylophone"]
    lines = ["# Word 1\tWord 2\tHuman (mean)", "Word 1\tWord 2\tHuman (mean)"]
    for _ in range(60):
        pool = vocab_pool + (oov_pool if pr.random() < 0.2 else [])
        a, b = pr.choice(pool, 2, replace=False)
        lines.append(f"{a}\t{b}\t{pr.integers(0, 100) / 10:.2f}")
    lines += ["paris\tfrance\t9.5", "unicorn\tTiger\t2.0", "cat\tZebra\t6.5", "xylophone\tzebra\t1"]
    pairs_path = tmp_path / "pairs.tsv"
    pairs_path.write_text("\n".join(lines) + "\n")

    w, m = ev.load_vectors(tmp_path / "vectors.txt")
    ours = ev.similarity_spearman(w, m, pairs_path, case_insensitive=True)
    _, (g_rho, g_p), g_oov = kv.evaluate_word_pairs(
        str(pairs_path), restrict_vocab=len(words), case_insensitive=True, dummy4unknown=False)
    assert ours["pairs_total"] == 64
    assert 3 <= ours["oov_pairs"] < 20
    assert ours["rho"] == pytest.approx(g_rho, abs=1e-9)
    assert ours["pvalue"] == pytest.approx(g_p, rel=1e-6)
    assert ours["coverage"] == pytest.approx(1 - g_oov / 100, abs=1e-12)


def test_spearman_too_few_pairs_is_nan_with_warning(caplog):
    words, vecs = ["a", "b", "c"], np.eye(3, dtype=np.float32)
    pairs = pd.DataFrame({"word1": ["a", "b", "x"], "word2": ["b", "c", "a"], "score": [1.0, 2.0, 3.0]})
    with caplog.at_level(logging.WARNING):
        r = ev.similarity_spearman(words, vecs, pairs, name="tiny")
    assert math.isnan(r["rho"]) and math.isnan(r["pvalue"])
    assert r["pairs_used"] == 2 and r["pairs_total"] == 3
    assert "tiny" in caplog.text and "NaN" in caplog.text

    # constant similarities (orthogonal one-hot vectors): NaN, no crash
    pairs = pd.DataFrame({"word1": ["a", "a", "b"], "word2": ["b", "c", "c"], "score": [1.0, 2.0, 3.0]})
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert math.isnan(ev.similarity_spearman(words, vecs, pairs)["rho"])
    assert "constant" in caplog.text


def test_zero_vector_has_zero_similarity():
    assert ev.cosine_rows(np.array([[0.0, 0.0], [1, 0]]), np.array([[1.0, 0], [2, 0]])).tolist() == [0.0, 1.0]


# ---------------------------------------------------------------------------------------------
# learned+image


def test_concat_image_equals_manual_concatenation():
    words = ["sun", "Moon", "star", "sky"]
    vecs = np.arange(8, dtype=np.float32).reshape(4, 2)
    img_words = ["moon", "sun", "cloud"]
    img = np.array([[10, 11, 12], [20, 21, 22], [30, 31, 32]], dtype=np.float32)
    cw, cv = ev.concat_image(words, vecs, img_words, img)
    assert cw == ["sun", "Moon"]  # star/sky have no images; cloud has no embedding
    np.testing.assert_array_equal(cv, np.array([[0, 1, 20, 21, 22], [2, 3, 10, 11, 12]], dtype=np.float32))

    cw, cv = ev.concat_image(words, vecs, img_words, img, image_weight=0.5, normalize=True)
    e = vecs[0] / np.linalg.norm(vecs[0])  # "sun"
    i = img[1] / np.linalg.norm(img[1])
    np.testing.assert_allclose(cv[0], np.concatenate([e, 0.5 * i]), rtol=1e-6)

    cw, _ = ev.concat_image(words, vecs, img_words, img, only={"moon"})
    assert cw == ["Moon"]


def _toy_run(tmp_path):
    rng = np.random.default_rng(3)
    words = ["sun", "moon", "star", "sky", "sea", "car", "road", "tree"]
    vecs = rng.normal(size=(len(words), 5)).astype(np.float32)
    _save_w2v(tmp_path / "vectors.txt", words, vecs)
    img_words = ["sun", "moon", "star", "sea", "car", "road"]  # "sky" and "tree" have no image
    img = rng.normal(size=(len(img_words), 3)).astype(np.float32)
    write_features(tmp_path / "word_images.h5", img_words, img, attrs={"kind": "word_mean_image"},
                   extra={"counts": np.ones(len(img_words), dtype=np.int64)})
    pairs = [("sun", "moon", 8.0), ("Star", "sky", 6.0), ("sea", "car", 1.0), ("car", "road", 7.5),
             ("tree", "sky", 5.0), ("sun", "star", 7.0), ("moon", "road", 2.0), ("sea", "unicorn", 3.0)]
    (tmp_path / "bench.txt").write_text("".join(f"{a}\t{b}\t{s}\n" for a, b, s in pairs))
    (tmp_path / "tiny.txt").write_text("sky\ttree\t3\nsun\tsky\t2\nsea\tsun\t4\nsun\tsea\t1\n")
    return words, vecs, img_words, img, pairs


def test_evaluate_writes_table(tmp_path, caplog):
    words, vecs, img_words, img, pairs = _toy_run(tmp_path)
    out = tmp_path / "out" / "eval.tsv"
    with caplog.at_level(logging.WARNING):
        table = ev.evaluate(tmp_path / "vectors.txt", {"bench": tmp_path / "bench.txt", "tiny": tmp_path / "tiny.txt"},
                            out, word_images_h5=tmp_path / "word_images.h5")
    header = out.read_text().splitlines()[0].split("\t")
    assert header == ["benchmark", "representation", "rho", "pvalue", "pairs_used", "pairs_total", "coverage"]
    back = read_tsv(out)
    assert back[["benchmark", "representation"]].values.tolist() == [
        ["bench", "learned"], ["bench", "learned+image"], ["tiny", "learned"], ["tiny", "learned+image"]]
    assert list(table.columns) == header

    # learned: every pair but the unicorn one
    learned = table.iloc[0]
    assert (learned.pairs_used, learned.pairs_total) == (7, 8)
    # learned+image: pairs with sky/tree (no images) are OOV too, and rho equals the manual concatenation
    li = table.iloc[1]
    assert (li.pairs_used, li.pairs_total) == (5, 8) and li.coverage == pytest.approx(5 / 8)
    row = {w: i for i, w in enumerate(words)}
    irow = {w: i for i, w in enumerate(img_words)}
    cat = lambda w: np.concatenate([vecs[row[w.lower()]], img[irow[w.lower()]]])  # noqa: E731
    used = [(a, b, s) for a, b, s in pairs if a.lower() in irow and b.lower() in irow and a.lower() in row and b.lower() in row]
    assert len(used) == 5
    expected = stats.spearmanr([s for *_, s in used], [_cos(cat(a), cat(b)) for a, b, _ in used])
    assert li.rho == pytest.approx(expected.statistic, abs=1e-9)

    # tiny/learned+image has 2 usable pairs: NaN, written as an empty cell, plus a warning
    assert table.iloc[3].pairs_used == 2 and math.isnan(table.iloc[3].rho)
    assert out.read_text().splitlines()[4].split("\t")[2:4] == ["", ""]
    assert "tiny/learned+image" in caplog.text
    assert not list(out.parent.glob(".*"))  # written atomically, no temporary left


def test_evaluate_cli(tmp_path, capsys):
    _toy_run(tmp_path)
    out = tmp_path / "eval.tsv"
    rc = run_cli(ev.main, ["--vectors", str(tmp_path / "vectors.txt"), "--word-images", str(tmp_path / "word_images.h5"),
                           "--benchmark", f"bench={tmp_path / 'bench.txt'}", "--benchmark", "ws353", "--out", str(out)])
    assert rc == 0
    t = read_tsv(out)
    assert t["benchmark"].tolist() == ["bench", "bench", "ws353", "ws353"]
    assert t.loc[2, "pairs_total"] == 353

    rc = run_cli(ev.main, ["--vectors", str(tmp_path / "vectors.txt"), "--benchmark", f"men={tmp_path / 'no.txt'}",
                           "--out", str(tmp_path / "x.tsv")])
    assert rc == 2 and "benchmarks.men.path" in capsys.readouterr().err
    rc = run_cli(ev.main, ["--vectors", str(tmp_path / "vectors.txt"), "--benchmark", "bench=",
                           "--out", str(tmp_path / "x.tsv")])
    assert rc == 2
    assert not (tmp_path / "x.tsv").exists()


def test_evaluate_cli_points_equal_one_process_each(tmp_path):
    """--point (wield.train_jobs: grid's one job per grid): several vector files evaluated in one
    process write the same bytes as one process per file; a bad point stops before any is written."""
    from groundwords.training import write_word2vec_text

    _toy_run(tmp_path)
    words, vecs = ev.load_vectors(tmp_path / "vectors.txt")
    write_word2vec_text(tmp_path / "other.txt", words, np.random.default_rng(0).normal(size=vecs.shape).astype(np.float32))
    common = ["--word-images", str(tmp_path / "word_images.h5"), "--benchmark", f"bench={tmp_path / 'bench.txt'}"]
    points = []
    for name in ("vectors", "other"):
        one = ["--vectors", str(tmp_path / f"{name}.txt"), "--out", str(tmp_path / f"{name}.one.tsv"),
               "--pairs-out", str(tmp_path / f"{name}.one.pairs.tsv")]
        assert run_cli(ev.main, common + one) == 0
        points += ["--point", f"--vectors {tmp_path / f'{name}.txt'} --out {tmp_path / f'{name}.grid.tsv'} "
                              f"--pairs-out {tmp_path / f'{name}.grid.pairs.tsv'}"]
    assert run_cli(ev.main, common + points) == 0
    for name in ("vectors", "other"):
        for kind in ("tsv", "pairs.tsv"):
            assert (tmp_path / f"{name}.grid.{kind}").read_bytes() == (tmp_path / f"{name}.one.{kind}").read_bytes()
    assert (tmp_path / "vectors.grid.tsv").read_bytes() != (tmp_path / "other.grid.tsv").read_bytes()
    with pytest.raises(SystemExit):  # a point without its --out: refused before anything is evaluated
        ev.main(common + ["--point", f"--vectors {tmp_path / 'vectors.txt'} --out {tmp_path / 'x.tsv'}",
                          "--point", f"--vectors {tmp_path / 'other.txt'}"])
    assert not (tmp_path / "x.tsv").exists()


def test_pairs_out_holds_each_pairs_cosine(tmp_path):
    words, vecs, img_words, img, pairs = _toy_run(tmp_path)
    table = ev.evaluate(tmp_path / "vectors.txt", {"bench": tmp_path / "bench.txt"}, tmp_path / "e.tsv",
                        word_images_h5=tmp_path / "word_images.h5", pairs_out=tmp_path / "pairs.tsv")
    pp = read_tsv(tmp_path / "pairs.tsv", dtype={"word1": str, "word2": str})
    assert list(pp.columns) == ["benchmark", "word1", "word2", "human", "learned", "learned+image"]
    assert len(pp) == len(pairs)
    for rep, row in zip(("learned", "learned+image"), table.itertuples()):
        sims = pd.to_numeric(pp[rep], errors="coerce").to_numpy()
        ok = np.isfinite(sims)
        assert ok.sum() == row.pairs_used
        assert stats.spearmanr(pp["human"][ok], sims[ok]).statistic == pytest.approx(row.rho, abs=1e-12)
    row = {w: i for i, w in enumerate(words)}
    a, b, _ = pairs[0]
    assert float(pp.loc[0, "learned"]) == pytest.approx(_cos(vecs[row[a.lower()]], vecs[row[b.lower()]]), abs=1e-6)
