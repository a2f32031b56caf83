"""Tests of the image <-> sentence retrieval stage (PIXIE §4.3, Table 6): metrics, data, model, CLI.

CPU only, tiny synthetic data, a few seconds in all. The learnable case: every image shows two
"concept" words, its features are a noisy sum of per-concept random vectors, its captions name
the two concepts (any order) plus a filler word; frozen random word vectors.
"""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
import torch

from groundwords.cli import run_cli
from groundwords.files import write_features
from groundwords.models.vse import VSE, contrastive_loss
from groundwords.studies.pixie import retrieval as sentret
from groundwords.studies.pixie import retrieval_metrics as metrics
from groundwords.studies.pixie.retrieval_data import RetrievalData
from groundwords.training import write_word2vec_text

N_CONCEPTS = 12
FILLERS = ["a", "the", "of"]
FAST = dict(hidden=32, epochs=20, lr=3e-3, lr_step=0, batch_size=16, progress=False)


def synthetic(n_images=50, caps_per_image=2, dim=12, k=20, noise=0.1, seed=0):
    """(image ids, features, captions (image index, text), words, word vectors)."""
    rng = np.random.default_rng(seed)
    pairs = list(combinations(range(N_CONCEPTS), 2))
    chosen = [pairs[i] for i in rng.permutation(len(pairs))[:n_images]]
    proto = rng.normal(size=(N_CONCEPTS, k))
    feats = np.stack([proto[a] + proto[b] for a, b in chosen]) + noise * rng.normal(size=(n_images, k))
    caps = []
    for i, (a, b) in enumerate(chosen):
        for _ in range(caps_per_image):
            toks = [f"w{a}", f"w{b}"][:: rng.choice([1, -1])]
            toks.insert(int(rng.integers(0, 3)), FILLERS[int(rng.integers(0, len(FILLERS)))])
            caps.append((i, " ".join(toks)))
    words = [f"w{i}" for i in range(N_CONCEPTS)] + FILLERS
    vecs = rng.normal(size=(len(words), dim)).astype(np.float32)
    return [f"img{i:03d}" for i in range(n_images)], feats.astype(np.float32), caps, words, vecs


def write_inputs(tmp_path, ids, feats, caps, words, vecs, extra_rows=(), encode_ids=None):
    """manifest.tsv, encodings.h5, vectors.txt in tmp_path; ``extra_rows``: (id, caption, status)."""
    rows = [(ids[i], text, "ok") for i, text in caps] + list(extra_rows)
    df = pd.DataFrame(rows, columns=["id", "caption", "status"])
    df.insert(0, "row", range(len(df)))
    df.insert(0, "rank", range(len(df)))
    df.insert(4, "url", ["file:///x/" + i + ".png" for i in df["id"]])
    df.to_csv(tmp_path / "manifest.tsv", sep="\t", index=False)
    keep = [i for i, x in enumerate(ids) if encode_ids is None or x in encode_ids]
    write_features(tmp_path / "enc.h5", [ids[i] for i in keep], feats[keep])
    write_word2vec_text(tmp_path / "vectors.txt", words, vecs)
    return tmp_path / "manifest.tsv", tmp_path / "enc.h5", tmp_path / "vectors.txt"


# ---------------------------------------------------------------------------------------------
# metrics


def test_recall_at_k_hand_made_multi_caption_and_ties():
    # 3 images x 6 captions; image 0 has captions {0, 1}, image 1 {2, 3}, image 2 {4, 5}
    s = np.array([
        [0.9, 0.1, 0.5, 0.2, 0.3, 0.4],  # best true caption first -> rank 1
        [0.8, 0.7, 0.1, 0.6, 0.5, 0.0],  # its best caption (3, 0.6) beaten by 2 wrong ones -> rank 3
        [0.5, 0.5, 0.5, 0.5, 0.5, 0.5],  # constant scorer: the 4 wrong captions tie -> rank 5
    ])
    truth = [[0, 1], [2, 3], [4, 5]]
    assert metrics.best_true_ranks(s, truth).tolist() == [1, 3, 5]
    r = metrics.recall_at_k(s, truth, (1, 3, 4, 5))
    assert r == {1: pytest.approx(1 / 3), 3: pytest.approx(2 / 3), 4: pytest.approx(2 / 3), 5: 1.0}
    mask = np.repeat(np.eye(3, dtype=bool), 2, axis=1)
    assert metrics.best_true_ranks(s, mask).tolist() == [1, 3, 5]
    # sentence -> image: one true item per query (an int array); ties count against
    s2i = np.array([[0.1, 0.9, 0.3], [0.4, 0.4, 0.0], [0.2, 0.3, 0.1]])
    assert metrics.best_true_ranks(s2i, np.array([1, 0, 2])).tolist() == [1, 2, 3]
    assert metrics.recall_at_k(s2i, np.array([1, 0, 2]), (1, 2)) == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3)}
    assert np.isnan(metrics.recall_at_k(np.zeros((0, 3)), np.zeros(0, np.int64), (1,))[1])
    with pytest.raises(ValueError):
        metrics.best_true_ranks(s, [[0], [], [4]])  # a query without a true item
    with pytest.raises(ValueError):
        metrics.best_true_ranks(np.full((1, 2), np.nan), [[0]])


def test_retrieval_recalls_both_directions():
    # 2 images on the axes; captions 0, 1 of image 0, caption 2 of image 1 (pointing at image 0)
    img = np.array([[1.0, 0.0], [0.0, 1.0]])
    cap = np.array([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6]])
    rec, nq = metrics.retrieval_recalls(img, cap, np.array([0, 0, 1]), ks=(1, 2))
    assert nq == {"i2s": 2, "s2i": 3}
    assert rec["i2s"] == {1: 0.5, 2: 1.0}     # image 1's only caption ranks 2nd (behind caption 1)
    assert rec["s2i"] == {1: pytest.approx(1 / 3), 2: 1.0}  # captions 1 and 2 pick the wrong image


# ---------------------------------------------------------------------------------------------
# model


def test_loss_hand_made_and_same_image_captions_are_not_negatives():
    # items 0 and 1 are two captions of the same image (hence identical image rows)
    s = torch.tensor([[0.5, 0.45, 0.4], [0.5, 0.45, 0.4], [0.3, 0.1, 0.35]])
    same = torch.tensor([0, 0, 1])
    assert float(contrastive_loss(s, same, 0.2)) == pytest.approx(0.9)  # worked out by hand
    assert float(contrastive_loss(s, torch.tensor([0, 1, 2]), 0.2)) == pytest.approx(1.7)  # +0.8 from the pair
    assert float(contrastive_loss(s, same, 0.2, max_violation=True)) == pytest.approx(0.65)
    # a batch of one image's captions has no negative at all
    torch.manual_seed(0)
    m = VSE(np.random.default_rng(0).normal(size=(5, 4)), image_dim=3, hidden=8)
    x = torch.randn(1, 3).expand(3, 3)
    batch = {"tokens": torch.tensor([[0, 1], [2, 5], [3, 4]]), "lengths": torch.tensor([2, 1, 2]),
             "images": x, "image_ids": torch.tensor([7, 7, 7])}
    assert float(m.loss(batch)["total"].detach()) == 0.0
    assert float(m.loss({**batch, "image_ids": torch.tensor([1, 2, 3])})["total"].detach()) > 0


def test_model_frozen_embeddings_and_padding_does_not_change_sentence():
    wv = np.random.default_rng(1).normal(size=(6, 5)).astype(np.float32)
    torch.manual_seed(0)
    m = VSE(wv, image_dim=4, hidden=8)
    assert not m.embed.weight.requires_grad and m.pad_id == 6
    assert torch.equal(m.embed.weight[:6], torch.from_numpy(wv)) and not m.embed.weight[6].any()
    short = m.encode_captions(torch.tensor([[1, 2]]), torch.tensor([2]))
    padded = m.encode_captions(torch.tensor([[1, 2, 6, 6], [3, 6, 6, 6]]), torch.tensor([2, 1]))
    assert torch.allclose(short[0], padded[0], atol=1e-6)
    assert torch.allclose(padded.norm(dim=1), torch.ones(2))
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("gru.", "img_fc.")) for n in trainable)


# ---------------------------------------------------------------------------------------------
# data


def test_split_is_by_image_seeded_and_independent_of_vectors(tmp_path):
    ids, feats, caps, words, vecs = synthetic(n_images=40, caps_per_image=3)
    man, h5, _ = write_inputs(tmp_path, ids, feats, caps, words, vecs)
    d = sentret.from_manifest(man, h5, val_frac=0.2, test_frac=0.25, split_seed=3)
    assert len(d.image_ids) == 40 and len(d.captions) == 120
    assert (d.image_split == "test").sum() == 10 and (d.image_split == "validation").sum() == 8
    cap_split = pd.Series(d.image_split[d.caption_image])
    per_image = cap_split.groupby(np.asarray(d.image_ids)[d.caption_image]).nunique()
    assert (per_image == 1).all()  # all captions of an image in one split
    again = sentret.from_manifest(man, h5, val_frac=0.2, test_frac=0.25, split_seed=3)
    assert (again.image_split == d.image_split).all()
    other = sentret.from_manifest(man, h5, val_frac=0.2, test_frac=0.25, split_seed=4)
    assert (other.image_split != d.image_split).any()
    # the split follows the image ids, not the manifest's row order
    shuffled = pd.read_csv(man, sep="\t", dtype=str, keep_default_na=False).sample(frac=1, random_state=0)
    shuffled.to_csv(tmp_path / "shuffled.tsv", sep="\t", index=False)
    d2 = sentret.from_manifest(tmp_path / "shuffled.tsv", h5, val_frac=0.2, test_frac=0.25, split_seed=3)
    assert dict(zip(d2.image_ids, d2.image_split)) == dict(zip(d.image_ids, d.image_split))

    # two vector files, one missing half of the concept words: same images in every split
    write_word2vec_text(tmp_path / "half.txt", words[6:N_CONCEPTS], vecs[6:N_CONCEPTS])  # no fillers
    infos = [sentret.train(v, tmp_path / f"out{j}", manifest=man, features=h5, **{**FAST, "epochs": 1})
             for j, v in enumerate((tmp_path / "vectors.txt", tmp_path / "half.txt"))]
    assert infos[0]["splits"] != infos[1]["splits"]  # fewer captions survive with the smaller vocabulary
    for s in sentret.SPLITS:
        assert infos[0]["splits"][s]["images"] == infos[1]["splits"][s]["images"]
    tsv = pd.read_csv(tmp_path / "out1" / "retrieval.tsv", sep="\t")
    assert infos[1]["rows"]["empty_after_oov"] > 0
    assert (tsv.loc[tsv["direction"] == "s2i", "n_queries"] == infos[1]["splits"]["test"]["captions"]).all()
    # ranks.tsv: the query ids do not depend on the vectors, so the two runs' queries can be paired
    r0, r1 = (pd.read_csv(tmp_path / f"out{j}" / "ranks.tsv", sep="\t", dtype={"query": str}) for j in (0, 1))
    for d in ("i2s", "s2i"):
        q0, q1 = set(r0.loc[r0["direction"] == d, "query"]), set(r1.loc[r1["direction"] == d, "query"])
        assert q1 <= q0 and len(q1) == int(tsv.loc[tsv["direction"] == d, "n_queries"].iloc[0])
        assert len(q0) == (r0["direction"] == d).sum()  # one rank per query
    assert len(set(r1.loc[r1["direction"] == "s2i", "query"])) < len(set(r0.loc[r0["direction"] == "s2i", "query"]))


def test_every_manifest_row_accounted_for(tmp_path):
    ids, feats, caps, words, vecs = synthetic(n_images=30)
    extra = [("img000", "zzz qqq", "ok"),                # OOV only -> empty_after_oov
             ("img001", "!!! ...", "ok"),                # no token at all -> empty_after_oov
             ("img002", "", "ok"),                       # empty caption -> empty_after_oov
             ("img003", "w1 w2", "bad_url"),             # not ok
             ("img004", "w1 w3", "malformed_columns"),   # not ok
             ("noimage", "w4 w5", "ok"),                 # no encoding
             ("img005", "w1 zzz w2", "ok")]              # used (OOV token dropped)
    man, h5, vec = write_inputs(tmp_path, ids, feats, caps, words, vecs, extra_rows=extra)
    info = sentret.train(vec, tmp_path / "out", manifest=man, features=h5, **{**FAST, "epochs": 1})
    assert info["rows"] == {"total": len(caps) + 7, "used": len(caps) + 1, "empty_after_oov": 3,
                            "no_encoding": 1, "not_ok": 2}
    assert sum(s["captions"] for s in info["splits"].values()) == info["rows"]["used"]
    assert sum(s["images"] for s in info["splits"].values()) == 30
    assert info["tokens"]["out_of_vocabulary"] == 3 and info["word_dim"] == 12


# ---------------------------------------------------------------------------------------------
# training


def test_learns_synthetic_retrieval_and_is_deterministic(tmp_path):
    ids, feats, caps, words, vecs = synthetic(n_images=50, caps_per_image=2)
    man, h5, vec = write_inputs(tmp_path, ids, feats, caps, words, vecs)
    info = sentret.train(vec, tmp_path / "a", manifest=man, features=h5, val_frac=0.1, test_frac=0.2, **FAST)
    loss = [h["loss"] for h in info["history"]]
    assert loss[-1] < 0.5 * loss[0]
    assert info["history"][-1]["val_rsum"] > info["history"][0]["val_rsum"]
    tsv = pd.read_csv(tmp_path / "a" / "retrieval.tsv", sep="\t")
    assert list(tsv.columns) == ["direction", "k", "recall", "n_queries"]
    assert tsv[["direction", "k"]].values.tolist() == [[d, k] for d in ("i2s", "s2i") for k in (1, 5, 10)]
    assert tsv["recall"].between(0, 1).all()
    r = {(d, k): v for d, k, v in tsv[["direction", "k", "recall"]].itertuples(index=False)}
    n_test = info["splits"]["test"]["images"]
    assert n_test == 10 and info["splits"]["test"]["captions"] == 20
    assert r["s2i", 1] >= 0.5 > 3 / n_test  # chance: 1 / 10
    assert r["i2s", 1] >= 0.5 > 3 * 2 / 20   # chance: ~2 / 20
    assert (tsv.groupby("direction")["recall"].apply(lambda x: x.is_monotonic_increasing)).all()
    # the per-query ranks give exactly the recalls
    ranks = pd.read_csv(tmp_path / "a" / "ranks.tsv", sep="\t")
    assert list(ranks.columns) == ["direction", "query", "rank"] and (ranks["rank"] >= 1).all()
    for (d, k), v in r.items():
        assert (ranks.loc[ranks["direction"] == d, "rank"] <= k).mean() == pytest.approx(v)
    assert (ranks["direction"] == "i2s").sum() == 10 and (ranks["direction"] == "s2i").sum() == 20
    # same seed -> byte-identical results; --select best-val reports the best validation epoch
    sentret.train(vec, tmp_path / "b", manifest=man, features=h5, val_frac=0.1, test_frac=0.2, **FAST)
    assert (tmp_path / "a" / "retrieval.tsv").read_bytes() == (tmp_path / "b" / "retrieval.tsv").read_bytes()
    best = sentret.train(vec, tmp_path / "c", manifest=man, features=h5, val_frac=0.1, test_frac=0.2,
                         select="best-val", max_violation=True, **{**FAST, "epochs": 4})
    rs = [h["val_rsum"] for h in best["history"]]
    assert best["selected_epoch"] == 1 + int(np.argmax(rs))


def test_lr_is_divided_by_ten_every_step():
    ids, feats, caps, words, vecs = synthetic(n_images=20)
    data = RetrievalData(ids, feats, np.array(["train"] * 20, dtype=object),
                                 np.array([i for i, _ in caps]), [t.split() for _, t in caps])
    enc = sentret.encode_captions(data, words, vecs)
    torch.manual_seed(0)
    m = VSE(enc.word_vectors, feats.shape[1], hidden=8)
    hist = sentret.fit_vse(m, sentret.SplitTensors(data, enc, "train", "cpu"), epochs=5, batch_size=8, lr=1.0,
                           lr_step=2, grad_clip=2.0, seed=0, progress=False)
    assert [h["lr"] for h in hist] == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01])


# ---------------------------------------------------------------------------------------------
# VSE++ precomputed features


def write_precomp(d, splits=(("train", 24), ("dev", 4), ("test", 8)), k=20, seed=0, drop_line=None):
    d.mkdir(parents=True, exist_ok=True)
    ids, feats, caps, words, vecs = synthetic(n_images=sum(n for _, n in splits), caps_per_image=5, k=k, seed=seed)
    start = 0
    for name, n in splits:
        np.save(d / f"{name}_ims.npy", feats[start:start + n])
        lines = [t for i, t in caps if start <= i < start + n]
        if name == drop_line:
            lines = lines[:-1]
        (d / f"{name}_caps.txt").write_text("".join(t.capitalize() + " .\n" for t in lines), encoding="utf-8")
        start += n
    return words, vecs


def test_precomp_directory(tmp_path):
    words, vecs = write_precomp(tmp_path / "f30k_precomp")
    write_word2vec_text(tmp_path / "v.txt", words, np.concatenate([vecs, vecs], axis=1))  # 24-d "concatenation"
    assert run_cli(sentret.main, ["train", "--vectors", str(tmp_path / "v.txt"), "--precomp",
                                  str(tmp_path / "f30k_precomp"), "--out-dir", str(tmp_path / "out"), "--hidden",
                                  "16", "--epochs", "2", "--batch-size", "32", "--no-progress"]) == 0
    info = json.loads((tmp_path / "out" / "train.json").read_text())
    assert info["splits"] == {"train": {"images": 24, "images_with_caption": 24, "captions": 120},
                              "validation": {"images": 4, "images_with_caption": 4, "captions": 20},
                              "test": {"images": 8, "images_with_caption": 8, "captions": 40}}
    assert info["rows"] == {"total": 180, "used": 180, "empty_after_oov": 0, "no_encoding": 0, "not_ok": 0}
    assert info["word_dim"] == 24 and info["image_dim"] == 20 and len(info["history"]) == 2
    tsv = pd.read_csv(tmp_path / "out" / "retrieval.tsv", sep="\t")
    assert tsv["n_queries"].tolist() == [8] * 3 + [40] * 3
    d = sentret.from_precomp(tmp_path / "f30k_precomp")
    assert d.caption_image[:12].tolist() == [0] * 5 + [1] * 5 + [2] * 2  # caption j -> image j // 5


def test_precomp_length_mismatch_is_a_clear_error(tmp_path, capsys):
    words, vecs = write_precomp(tmp_path / "p", drop_line="test")
    write_word2vec_text(tmp_path / "v.txt", words, vecs)
    assert run_cli(sentret.main, ["train", "--vectors", str(tmp_path / "v.txt"), "--precomp", str(tmp_path / "p"),
                                  "--out-dir", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "test_caps.txt has 39 captions but test_ims.npy has 8 images" in err[0]
    assert not (tmp_path / "out" / "train.json").exists()


# ---------------------------------------------------------------------------------------------
# CLI errors


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    ids, feats, caps, words, vecs = synthetic(n_images=20)
    man, h5, vec = write_inputs(tmp_path, ids, feats, caps, words, vecs)
    base = ["train", "--manifest", str(man), "--features", str(h5), "--out-dir", str(tmp_path / "o"), "--no-progress"]

    assert run_cli(sentret.main, [*base, "--vectors", str(tmp_path / "missing.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.txt" in err[0]

    write_word2vec_text(tmp_path / "foreign.txt", ["zzz", "qqq"], np.ones((2, 3), np.float32))
    assert run_cli(sentret.main, [*base, "--vectors", str(tmp_path / "foreign.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no caption has a word" in err[0]

    assert run_cli(sentret.main, [*base, "--vectors", str(vec), "--features", str(tmp_path / "nope.h5")]) == 2
    assert "nope.h5" in capsys.readouterr().err
    assert run_cli(sentret.main, [*base, "--vectors", str(vec), "--test-frac", "0.95"]) == 2
    assert run_cli(sentret.main, [*base, "--vectors", str(vec), "--batch-size", "1"]) == 2
    with pytest.raises(SystemExit) as e:  # argparse: the two data sources exclude each other
        sentret.main(["train", "--vectors", str(vec), "--precomp", str(tmp_path), "--manifest", str(man),
                      "--out-dir", str(tmp_path / "o")])
    assert e.value.code == 2
    assert not (tmp_path / "o" / "train.json").exists()


def test_split_command_writes_the_split_train_uses(tmp_path):
    ids, feats, caps, words, vecs = synthetic(n_images=30, caps_per_image=2)
    man, h5, _ = write_inputs(tmp_path, ids, feats, caps, words, vecs)
    out = tmp_path / "split.tsv"
    assert run_cli(sentret.main, ["split", "--manifest", str(man), "--features", str(h5), "--val-frac", "0.2",
                                  "--test-frac", "0.2", "--split-seed", "5", "--out", str(out)]) == 0
    got = pd.read_csv(out, sep="\t")
    d = sentret.from_manifest(man, h5, val_frac=0.2, test_frac=0.2, split_seed=5)
    assert dict(zip(got["image_id"], got["split"])) == dict(zip(d.image_ids, d.image_split))
    assert sorted(got["split"].value_counts().to_dict().items()) == [("test", 6), ("train", 18), ("validation", 6)]
    assert run_cli(sentret.main, ["split", "--manifest", str(tmp_path / "nope.tsv"), "--features", str(h5),
                                  "--out", str(out)]) == 2
