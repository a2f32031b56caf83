"""Tests of groundwords.data.encode: HF ViT poolings, EfficientNet-Lite0, resume, bad images, CLI.

Everything runs offline on the CPU: Hugging Face models are tiny randomly initialised ViTs saved
to a temporary directory; EfficientNet-Lite0 uses the real packaged weights.
"""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from groundwords.cli import UserError, run_cli
from groundwords.data import encode
from groundwords.data.encode import encode_images
from groundwords.data.encoders import load_encoder
from groundwords.files import read_features

N_IMAGES = 12


def _save_tiny_vit(path, pooler=True):
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(0)
    cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                    num_attention_heads=2, intermediate_size=37)
    ViTModel(cfg, add_pooling_layer=pooler).save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    return _save_tiny_vit(tmp_path_factory.mktemp("tiny-vit"))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """N_IMAGES small JPEG/PNG images of various sizes and a fetch-style TSV listing them
    (plus a duplicate row and a row that is not ``ok``)."""
    d = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(N_IMAGES):
        h, w = 24 + 3 * i, 40 - i
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx * 255 / w, yy * 255 / h, np.full((h, w), 20 * i)], -1)
        arr = np.clip(base + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)
        name = f"img{i}.{'png' if i % 3 == 0 else 'jpg'}"
        Image.fromarray(arr).save(d / name)
        rows.append({"id": f"{i:016x}", "path": str(d / name), "status": "ok"})
    rows.insert(3, {**rows[1]})  # duplicate id: encoded once
    rows.append({"id": "dead" * 4, "path": str(d / "missing.jpg"), "status": "http_404"})
    tsv = d / "fetched.tsv"
    pd.DataFrame(rows).to_csv(tsv, sep="\t", index=False)
    return tsv, [f"{i:016x}" for i in range(N_IMAGES)], d


def _manual_hidden(model_dir, paths):
    """last_hidden_state and pooler_output computed with transformers directly."""
    from transformers import AutoImageProcessor, AutoModel

    proc = AutoImageProcessor.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    pix = proc(images=[Image.open(p).convert("RGB") for p in paths], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = model(pixel_values=pix)
    return out.last_hidden_state.numpy(), out.pooler_output.numpy()


@pytest.mark.parametrize("pooling", ["mean", "cls", "pooler"])
def test_vit_poolings_match_transformers(tiny_vit, images, tmp_path, pooling):
    tsv, ids, d = images
    out = tmp_path / "enc.h5"
    stats = encode_images(tsv, out, model=tiny_vit, pooling=pooling, batch_size=5, num_workers=0,
                          device="cpu", progress=False)
    got_ids, feats, attrs = read_features(out)
    assert got_ids == ids
    assert feats.shape == (N_IMAGES, 32) and feats.dtype == np.float32
    assert attrs == {"model": tiny_vit, "pooling": pooling, "dim": 32, "image_size": 32,
                     "dtype": "float32"}
    with h5py.File(out) as f:
        assert len(f["failed_ids"]) == 0
        assert f["features"].chunks is not None
    assert stats["n"] == stats["n_encoded"] == N_IMAGES and stats["device"] == "cpu"
    assert not (tmp_path / "enc.h5.partial").exists()

    paths = pd.read_csv(tsv, sep="\t").drop_duplicates("id")["path"][:N_IMAGES]
    hidden, pooled = _manual_hidden(tiny_vit, paths)
    expected = {"mean": hidden.mean(axis=1), "cls": hidden[:, 0], "pooler": pooled}[pooling]
    np.testing.assert_allclose(feats, expected, rtol=1e-4, atol=1e-5)


def test_pooler_missing_is_user_error(tmp_path):
    model_dir = _save_tiny_vit(tmp_path / "nopool", pooler=False)
    with pytest.raises(UserError, match="pooler"):
        load_encoder(model_dir, pooling="pooler", device="cpu")
    assert load_encoder(model_dir, pooling="mean", device="cpu").dim == 32


def test_hf_load_failure_is_user_error(tmp_path):
    with pytest.raises(UserError) as e:
        load_encoder(str(tmp_path / "no-such-model"), device="cpu")
    msg = str(e.value)
    assert "could not load" in msg and "local path" in msg and "HF_HUB_OFFLINE" in msg


def test_bad_settings_are_user_errors(tiny_vit):
    with pytest.raises(UserError, match="pooling"):
        load_encoder(tiny_vit, pooling="max")
    with pytest.raises(UserError, match="dtype"):
        load_encoder(tiny_vit, dtype="int8")
    with pytest.raises(UserError, match="mean"):
        load_encoder("efficientnet-lite0", pooling="cls")


def test_half_precision_on_cpu_falls_back(tiny_vit, caplog):
    enc = load_encoder(tiny_vit, dtype="float16", device="cpu")
    assert enc.attrs["dtype"] == "float32"
    assert "float16" in caplog.text


# ---------------------------------------------------------------------------------------------
# EfficientNet-Lite0 with the real packaged weights


@pytest.fixture(scope="module")
def effnet():
    return load_encoder("efficientnet-lite0", device="cpu")


@pytest.fixture(scope="module")
def photos():
    from sklearn.datasets import load_sample_image

    return {name: Image.fromarray(load_sample_image(f"{name}.jpg")) for name in ("china", "flower")}


def test_effnet_features(effnet, photos):
    assert effnet.dim == 1280
    assert effnet.attrs == {"model": "efficientnet-lite0", "pooling": "mean", "dim": 1280,
                            "image_size": 224, "dtype": "float32", "device": "cpu"}
    china, flower = photos["china"], photos["flower"]
    small_china = china.resize((china.width // 2, china.height // 2), Image.BILINEAR)
    x = torch.stack([effnet.preprocess(im) for im in (china, flower, small_china)])
    assert x.shape == (3, 3, 224, 224)
    f = effnet.forward(x).numpy()
    assert f.shape == (3, 1280) and np.isfinite(f).all()
    np.testing.assert_array_equal(f, effnet.forward(x).numpy())  # deterministic
    np.testing.assert_allclose(effnet.forward(x[1:2]).numpy()[0], f[1], atol=1e-4)  # batch-free

    def cos(a, b):
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    assert cos(f[0], f[2]) > 0.9 > cos(f[0], f[1])  # same photo at two sizes vs different photos
    # the preprocessing is the one the weights expect: ImageNet class 985 = daisy
    with torch.no_grad():
        assert int(effnet.model._fc(torch.from_numpy(f[1:2])).argmax()) == 985


def test_effnet_encode_with_workers(images, tmp_path):
    tsv, ids, _ = images
    out = tmp_path / "enc.h5"
    threads = torch.get_num_threads()
    stats = encode_images(tsv, out, model="efficientnet-lite0", batch_size=4, num_workers=2,
                          device="cpu", progress=False)
    assert torch.get_num_threads() == threads  # the CPU thread cap is undone
    got_ids, feats, attrs = read_features(out)
    assert got_ids == ids and feats.shape == (N_IMAGES, 1280) and np.isfinite(feats).all()
    assert attrs["model"] == "efficientnet-lite0" and attrs["dim"] == 1280
    assert stats["images_per_s"] > 0
    assert np.linalg.matrix_rank(feats) == N_IMAGES  # different images, different features


# ---------------------------------------------------------------------------------------------
# resume, failures, CLI


class CountingEncoder:
    """Wraps a real encoder: counts forwarded rows, optionally fails on the n-th batch."""

    def __init__(self, enc, fail_on_batch=None):
        self.enc, self.fail_on_batch, self.batches, self.rows = enc, fail_on_batch, 0, 0

    def __getattr__(self, name):
        return getattr(self.enc, name)

    def forward(self, x):
        self.batches += 1
        if self.batches == self.fail_on_batch:
            raise RuntimeError("injected fault")
        self.rows += len(x)
        return self.enc.forward(x)


_real_load_encoder = encode.load_encoder


def _patch_encoder(monkeypatch, **kw):
    made = []

    def fake(*a, **k):
        made.append(CountingEncoder(_real_load_encoder(*a, **k), **kw))
        return made[-1]

    monkeypatch.setattr(encode, "load_encoder", fake)
    return made


def test_resume_encodes_only_missing(tiny_vit, images, tmp_path, monkeypatch):
    tsv, ids, _ = images
    kw = dict(model=tiny_vit, pooling="mean", batch_size=4, num_workers=0, device="cpu",
              progress=False)
    clean = tmp_path / "clean.h5"
    encode_images(tsv, clean, **kw)

    out = tmp_path / "enc.h5"
    partial = tmp_path / "enc.h5.partial"
    made = _patch_encoder(monkeypatch, fail_on_batch=2)
    with pytest.raises(RuntimeError, match="injected"):
        encode_images(tsv, out, **kw)
    assert not out.exists() and partial.exists()
    assert made[-1].rows == 4
    assert sum(len(np.load(seg)["ids"]) for seg in partial.glob("seg-*.npz")) == 4  # kept on the exception

    made = _patch_encoder(monkeypatch)
    stats = encode_images(tsv, out, **kw)
    assert made[-1].rows == N_IMAGES - 4
    assert stats["n_resumed"] == 4 and stats["n_encoded"] == N_IMAGES - 4
    assert not partial.exists()
    a, b = read_features(clean), read_features(out)
    assert a[0] == b[0] == ids and a[2] == b[2]
    np.testing.assert_allclose(a[1], b[1], atol=1e-6)


def test_resume_with_other_settings_starts_over(tiny_vit, images, tmp_path, monkeypatch, caplog):
    tsv, _, _ = images
    kw = dict(model=tiny_vit, batch_size=4, num_workers=0, device="cpu", progress=False)
    out = tmp_path / "enc.h5"
    _patch_encoder(monkeypatch, fail_on_batch=2)
    with pytest.raises(RuntimeError):
        encode_images(tsv, out, pooling="mean", **kw)
    made = _patch_encoder(monkeypatch)
    encode_images(tsv, out, pooling="cls", **kw)
    assert made[-1].rows == N_IMAGES
    assert "different encoder settings" in caplog.text
    assert read_features(out)[2]["pooling"] == "cls"


def test_resume_from_damaged_partial_starts_over(tiny_vit, images, tmp_path):
    tsv, ids, _ = images
    out = tmp_path / "enc.h5"
    (tmp_path / "enc.h5.partial").mkdir()
    (tmp_path / "enc.h5.partial" / "settings.json").write_text("not json")
    encode_images(tsv, out, model=tiny_vit, num_workers=0, device="cpu", progress=False)
    assert read_features(out)[0] == ids


def test_corrupt_images_are_failed_not_fatal(tiny_vit, images, tmp_path):
    tsv, ids, d = images
    (tmp_path / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    good = (d / "img1.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(good[: len(good) // 2])
    df = pd.read_csv(tsv, sep="\t")
    extra = pd.DataFrame([
        {"id": "garbage", "path": str(tmp_path / "garbage.jpg"), "status": "ok"},
        {"id": "truncated", "path": str(tmp_path / "truncated.jpg"), "status": "ok"},
        {"id": "missing", "path": str(tmp_path / "missing.jpg"), "status": "ok"},
    ])
    bad_tsv = tmp_path / "fetched.tsv"
    pd.concat([df.iloc[:2], extra, df.iloc[2:]]).to_csv(bad_tsv, sep="\t", index=False)
    out = tmp_path / "enc.h5"
    stats = encode_images(bad_tsv, out, model=tiny_vit, batch_size=4, num_workers=2, device="cpu",
                          progress=False)
    got_ids, feats, _ = read_features(out)
    assert got_ids == ids and feats.shape == (N_IMAGES, 32)
    with h5py.File(out) as f:
        failed = sorted(x.decode() for x in f["failed_ids"][()])
    assert failed == ["garbage", "missing", "truncated"]
    assert stats["n_failed"] == 3


def test_relative_paths_resolve_against_tsv_folder(tiny_vit, images, tmp_path, monkeypatch):
    tsv, ids, d = images
    df = pd.read_csv(tsv, sep="\t")
    df["path"] = [p.split("/")[-1] for p in df["path"]]
    rel_tsv = d / "relative.tsv"
    df.to_csv(rel_tsv, sep="\t", index=False)
    monkeypatch.chdir(tmp_path)
    encode_images(rel_tsv, tmp_path / "enc.h5", model=tiny_vit, num_workers=0, device="cpu",
                  progress=False)
    assert read_features(tmp_path / "enc.h5")[0] == ids


def test_cli(tiny_vit, images, tmp_path):
    tsv, ids, _ = images
    out = tmp_path / "enc.h5"
    argv = ["--images", str(tsv), "--out", str(out), "--model", tiny_vit, "--pooling", "cls",
            "--batch-size", "8", "--num-workers", "0", "--device", "cpu", "--dtype", "float32",
            "--no-progress"]
    assert run_cli(encode.main, argv) == 0
    assert read_features(out)[0] == ids
    empty = tmp_path / "empty.tsv"
    empty.write_text("id\tpath\tstatus\nx\t/nowhere.jpg\thttp_404\n")
    assert run_cli(encode.main, ["--images", str(empty), "--out", str(tmp_path / "e.h5"),
                                 "--model", tiny_vit]) == 2


def test_resume_after_table_changed_keeps_table_order(tiny_vit, images, tmp_path, monkeypatch):
    """The partial file holds ids 0-3; the new table drops id 0 and reverses the order: the
    result follows the new table (rows copied into place) and only new ids are encoded."""
    tsv, ids, _ = images
    kw = dict(model=tiny_vit, pooling="mean", batch_size=4, num_workers=0, device="cpu",
              progress=False)
    out = tmp_path / "enc.h5"
    _patch_encoder(monkeypatch, fail_on_batch=2)
    with pytest.raises(RuntimeError):
        encode_images(tsv, out, **kw)

    df = pd.read_csv(tsv, sep="\t").drop_duplicates("id")
    new_tsv = tmp_path / "new.tsv"
    df[df["id"] != ids[0]].iloc[::-1].to_csv(new_tsv, sep="\t", index=False)
    made = _patch_encoder(monkeypatch)
    stats = encode_images(new_tsv, out, **kw)
    assert made[-1].rows == N_IMAGES - 4 and stats["n_resumed"] == 3
    assert not (tmp_path / "enc.h5.partial").exists()

    monkeypatch.undo()
    clean = tmp_path / "clean.h5"
    encode_images(new_tsv, clean, **kw)
    a, b = read_features(clean), read_features(out)
    assert b[0] == a[0] == ids[1:][::-1]
    np.testing.assert_allclose(b[1], a[1], atol=1e-6)


def test_transparent_images_are_composited_onto_white(tmp_path):
    """RGBA, LA, palette and colour-key transparency: transparent pixels become white, not
    the arbitrary colour they hold (red here), opaque ones keep theirs."""
    from PIL import Image

    from groundwords.data.encoders import load_rgb

    rgba = Image.new("RGBA", (20, 10), (255, 0, 0, 0))  # transparent red
    rgba.paste((0, 0, 255, 255), (0, 0, 10, 10))  # opaque blue left half
    rgba.putpixel((15, 5), (0, 0, 0, 128))  # half-transparent black
    files = {"rgba.png": rgba, "la.png": rgba.convert("LA")}
    pal = rgba.convert("RGB").convert("P", palette=Image.ADAPTIVE, colors=4)
    red_index = pal.getpixel((19, 9))
    files["p.gif"], files["p.png"] = pal, pal
    key = rgba.convert("RGB")  # colour-key transparency (PNG tRNS)
    for name, im in files.items():
        kw = {"transparency": red_index} if name.startswith("p.") else {}
        im.save(tmp_path / name, **kw)
    key.save(tmp_path / "key.png", transparency=(255, 0, 0))
    for name in [*files, "key.png"]:
        out = load_rgb(tmp_path / name)
        assert out.mode == "RGB"
        assert out.getpixel((19, 9)) == (255, 255, 255), name
        assert out.getpixel((2, 2)) != (255, 255, 255), name  # opaque pixels stay
    assert load_rgb(tmp_path / "rgba.png").getpixel((15, 5)) == (127, 127, 127)  # blended with white
    assert load_rgb(tmp_path / "rgba.png").getpixel((2, 2)) == (0, 0, 255)


def test_images_in_a_tar_shard_encode_like_files(tiny_vit, images, tmp_path):
    """fetch.store: tar -- paths "{shard}.tar::{member}", relative ones too, DataLoader workers."""
    import tarfile

    tsv, ids, d = images
    df = pd.read_csv(tsv, sep="\t")
    tar = tmp_path / "shard-0-of-1.tar"
    with tarfile.open(tar, "w") as tf:
        for p in df["path"].unique():
            if (d / p.split("/")[-1]).exists():
                tf.add(p, arcname=p.split("/")[-1])
    df["path"] = [f"shard-0-of-1.tar::{p.split('/')[-1]}" for p in df["path"]]
    tar_tsv = tmp_path / "fetched.tsv"
    df.to_csv(tar_tsv, sep="\t", index=False)
    kw = dict(model=tiny_vit, batch_size=4, device="cpu", progress=False)
    encode_images(tsv, tmp_path / "files.h5", num_workers=0, **kw)
    encode_images(tar_tsv, tmp_path / "tar.h5", num_workers=2, **kw)
    a, b = read_features(tmp_path / "files.h5"), read_features(tmp_path / "tar.h5")
    assert a[0] == b[0] == ids
    np.testing.assert_array_equal(a[1], b[1])


def test_download_only_caches_the_model_and_writes_a_stamp(tiny_vit, tmp_path):
    """rule encoder_download (a cluster's login node): load once, so the cache holds it; a stamp."""
    import json

    from groundwords.data.encode import main

    out = tmp_path / "encoder" / "stamp.json"
    main(["--download-only", "--model", tiny_vit, "--out", str(out)])
    stamp = json.loads(out.read_text())
    assert stamp["model"] == tiny_vit and stamp["class"] == "ViTModel"
    with pytest.raises(UserError, match="could not load"):
        main(["--download-only", "--model", str(tmp_path / "no-such-model"), "--out", str(out)])
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "x.h5")])  # encoding needs --images
