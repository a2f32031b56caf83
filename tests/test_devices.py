"""iesg.device and pixie.device (issue #10): one resolver, auto = the CPU on a machine without CUDA
(the same vectors as cpu), cuda without a GPU a UserError naming the key, and every model of the
two studies runs its forward and loss on tensors created on the resolved device."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from groundwords.cli import UserError
from groundwords.config import DEFAULT_CONFIG, section_settings, validate_config
from groundwords.devices import resolve_device

HAS_CUDA = torch.cuda.is_available()
no_cuda = pytest.mark.skipif(HAS_CUDA, reason="needs a machine without CUDA")
TEXT = {"dim": 8, "window": 2, "negatives": 2, "sample": 1e-3, "epochs": 1, "lr": 4e-3, "batch_size": 128,
        "seed": 0, "threads": 1, "progress": False}


def _same_outputs(a, b, names=("vectors.npy",)):
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from groundwords.data import planted

    return planted.make(seed=0, n_sentences=300, n_captions=200, text_cue=0.3).write(tmp_path_factory.mktemp("d"))


# ---------------------------------------------------------------------------------------------
# the resolver and the schema


def test_schema_defaults_are_cpu():
    assert section_settings("iesg")["device"] == "cpu" and section_settings("pixie")["device"] == "cpu"
    with pytest.raises(UserError, match=r"pixie\.device"):
        section_settings("pixie", {"device": "tpu"})


def test_resolve_device_auto_and_cpu():
    assert resolve_device("cpu", "x.device") == torch.device("cpu")
    assert resolve_device("auto", "x.device").type == ("cuda" if HAS_CUDA else "cpu")
    with pytest.raises(UserError, match=r"x\.device = 'nonsense' is not a device"):
        resolve_device("nonsense", "x.device")


@no_cuda
@pytest.mark.parametrize("key", ["iesg.device", "pixie.device", "encoder.device"])
def test_cuda_without_a_gpu_names_the_key(key):
    with pytest.raises(UserError, match=rf"{key} = cuda, but no CUDA GPU is available"):
        resolve_device("cuda", key)


@no_cuda
def test_encoder_uses_the_shared_resolver():
    from groundwords.data.encoders import resolve_device as encoder_device

    with pytest.raises(UserError, match=r"encoder\.device = cuda"):
        encoder_device("cuda")


def test_cuda_with_the_numba_engine_is_a_config_error():
    import copy

    import yaml

    base = yaml.safe_load(DEFAULT_CONFIG.read_text())
    cfg = copy.deepcopy(base)
    cfg.setdefault("iesg", {}).update(device="cuda", sgns={"engine": "numba"})
    with pytest.raises(UserError, match=r"iesg\.device: cuda needs iesg\.sgns\.engine torch"):
        validate_config(cfg)
    for device, engine in (("auto", "numba"), ("cuda", "torch")):  # auto: numba pretrains on the CPU
        cfg = copy.deepcopy(base)
        cfg.setdefault("iesg", {}).update(device=device, sgns={"engine": engine})
        assert validate_config(cfg)["iesg"]["device"] == device


# ---------------------------------------------------------------------------------------------
# IESG


def test_iesg_numba_engine_refuses_cuda_and_keeps_auto_on_the_cpu(data, tmp_path):
    from groundwords.studies.iesg import stage

    with pytest.raises(UserError, match=r"iesg\.device = cuda, but iesg\.sgns\.engine numba runs on the CPU only"):
        stage.pretrain(data["corpus"], tmp_path / "x", vocab_tsv=data["vocab"], engine="numba", device="cuda")
    assert stage.stage_device("auto", "numba") == torch.device("cpu")


@no_cuda
def test_iesg_auto_trains_on_the_cpu_with_the_same_vectors(data, tmp_path):
    from groundwords.studies.iesg import stage

    kw = {"vocab_tsv": data["vocab"], "dim": 8, "epochs": 1, "engine": "torch", "progress": False}
    info = {d: stage.pretrain(data["corpus"], tmp_path / f"sgns-{d}", device=d, **kw) for d in ("cpu", "auto")}
    assert info["cpu"]["device"] == info["auto"]["device"] == "cpu"
    _same_outputs(tmp_path / "sgns-cpu", tmp_path / "sgns-auto", ("vectors.npy", "context_vectors.npy"))
    for d in ("cpu", "auto"):
        stage.train(tmp_path / "sgns-cpu", data["corpus"], data["word_images"], data["encodings"], tmp_path / d,
                    max_examples=500, progress=False, device=d)
    _same_outputs(tmp_path / "cpu", tmp_path / "auto", ("vectors.npy", "projection_l2.npy", "projection_iesg.npy"))
    assert json.loads((tmp_path / "auto" / "train.json").read_text())["device"] == "cpu"
    with pytest.raises(UserError, match=r"iesg\.device = cuda"):
        stage.train(tmp_path / "sgns-cpu", data["corpus"], data["word_images"], data["encodings"], tmp_path / "c",
                    progress=False, device="cuda")
    with pytest.raises(UserError, match=r"iesg\.device = cuda"):
        stage.pretrain(data["corpus"], tmp_path / "c", device="cuda", **kw)


def test_iesg_cli_takes_the_device_from_the_config(monkeypatch):
    from groundwords.studies.iesg import stage

    seen = []
    monkeypatch.setattr(stage, "train", lambda *a, **kw: seen.append(kw["device"]))
    monkeypatch.setattr(stage, "pretrain", lambda *a, **kw: seen.append(kw["device"]))
    stage.main(["train", "--sgns", "s", "--corpus", "c", "--word-images", "w", "--features", "f", "--out-dir", "o",
                "--config", json.dumps({"device": "auto"})])
    stage.main(["pretrain", "--corpus", "c", "--out-dir", "o"])
    stage.main(["pretrain", "--corpus", "c", "--out-dir", "o", "--device", "cuda"])
    assert seen == ["auto", "cpu", "cuda"]


# ---------------------------------------------------------------------------------------------
# PIXIE


@no_cuda
def test_pixie_models_on_auto_train_on_the_cpu_with_the_same_vectors(data, tmp_path):
    from groundwords.studies.pixie import baselines, stage

    runs = {
        "pixie": lambda out, d: stage.train(data["corpus"], data["vocab"], data["visual_minmax_all"], out,
                                            device=d, **TEXT),
        "vsgns": lambda out, d: baselines.train_vsgns(data["corpus"], data["vocab"], data["visual_none_all"], out,
                                                      device=d, **TEXT),
        "vae": lambda out, d: baselines.train_vae(data["visual_minmax_all"], out, dim=4, hidden=8, epochs=2, device=d),
        "ivsgns": lambda out, d: baselines.train_ivsgns(tmp_path / "pixie-cpu" / "vectors.txt", data["visual_none_all"],
                                                        out, mapping="nonlinear", hidden=8, epochs=3, device=d),
    }
    for name, run in runs.items():
        for d in ("cpu", "auto"):
            assert run(tmp_path / f"{name}-{d}", d)["device"] == "cpu"
        _same_outputs(tmp_path / f"{name}-cpu", tmp_path / f"{name}-auto")
        with pytest.raises(UserError, match=r"pixie\.device = cuda, but no CUDA GPU"):
            run(tmp_path / f"{name}-cuda", "cuda")


@no_cuda
def test_retrieval_on_auto_trains_on_the_cpu_with_the_same_results(tmp_path):
    from test_pixie_retrieval import synthetic, write_inputs

    from groundwords.studies.pixie import retrieval

    man, h5, vec = write_inputs(tmp_path, *synthetic(n_images=30))
    fast = {"manifest": man, "features": h5, "hidden": 16, "epochs": 2, "lr": 3e-3, "lr_step": 0, "batch_size": 8,
            "progress": False}
    for d in ("cpu", "auto"):
        assert retrieval.train(vec, tmp_path / d, device=d, **fast)["device"] == "cpu"
    _same_outputs(tmp_path / "cpu", tmp_path / "auto", ("retrieval.tsv", "ranks.tsv"))
    with pytest.raises(UserError, match=r"pixie\.device = cuda"):
        retrieval.train(vec, tmp_path / "cuda", device="cuda", **fast)


def test_pixie_clis_take_the_device_from_the_config(monkeypatch):
    from groundwords.studies.pixie import baselines, retrieval, stage

    seen = []
    for mod, name in ((stage, "train"), (baselines, "train_vsgns"), (baselines, "train_vae"),
                      (baselines, "train_ivsgns"), (retrieval, "train")):
        monkeypatch.setattr(mod, name, lambda *a, **kw: seen.append(kw["device"]))
    cfg = ["--config", json.dumps({"device": "auto"})]
    text = ["--corpus", "c", "--vocab", "v", "--out-dir", "o"]
    stage.main(["train", *text, *cfg])
    baselines.main(["vsgns", *text, "--visual", "f", "--device", "cuda"])
    baselines.main(["vae", "--visual", "f", "--out-dir", "o", *cfg])
    baselines.main(["ivsgns", "--sgns", "s", "--visual", "f", "--out-dir", "o", "--mapping", "linear"])
    retrieval.main(["train", "--vectors", "v", "--out-dir", "o", "--precomp", "p", *cfg])
    assert seen == ["auto", "cuda", "auto", "cpu", "auto"]


# ---------------------------------------------------------------------------------------------
# every model's forward and loss on the resolved device


def test_tiny_models_run_on_the_resolved_device():
    from groundwords.models.iesg import IESG
    from groundwords.models.ivsgns import Imagination
    from groundwords.models.pixie import PIXIE, VisualVAE
    from groundwords.models.sgns import SGNS
    from groundwords.models.vse import VSE
    from groundwords.models.vsgns import VSGNS

    dev = resolve_device("auto", "test.device")
    V, d, k = 12, 4, 6
    g = torch.Generator().manual_seed(0)
    counts = np.arange(1, V + 1, dtype=np.float64)
    feats = torch.rand(V, k, generator=g)
    mask = torch.arange(V) % 2 == 0
    pairs = {"centre": torch.arange(8, device=dev) % V, "context": (torch.arange(8, device=dev) + 1) % V}
    offsets = np.r_[0, np.cumsum(np.ones(V, np.int64))]
    models = {
        "sgns": (SGNS(V, d, counts=counts), pairs),
        "pixie": (PIXIE(V, d, counts=counts, visual_features=feats, has_visual=mask, hidden=5,
                        pairs_per_word=np.ones(V)), pairs),
        "vsgns": (VSGNS(V, d, counts=counts, visual_features=feats, has_visual=mask, visual_negatives=2),
                  {**pairs, "weight": torch.ones(8, device=dev)}),
        "iesg": (IESG(np.ones((V, d), np.float32), feats.numpy(), offsets, np.arange(V), counts=counts), pairs),
        "vae": (VisualVAE(k, latent=d, hidden=5), {"x": torch.rand(8, k, generator=g).to(dev)}),
        "ivsgns": (Imagination(d, k, "nonlinear", 5), {"x": torch.rand(8, d, generator=g).to(dev),
                                                       "y": torch.rand(8, k, generator=g).to(dev)}),
        "vse": (VSE(np.ones((V, d), np.float32), k, hidden=5), {
            "tokens": torch.randint(0, V, (4, 3), generator=g).to(dev), "lengths": torch.tensor([3, 2, 2, 1]),
            "images": torch.rand(4, k, generator=g).to(dev), "image_ids": torch.arange(4, device=dev)}),
    }
    for name, (model, batch) in models.items():
        model = model.to(dev)
        loss = model.loss(batch)["total"]
        loss.backward()
        assert loss.device.type == dev.type and torch.isfinite(loss), name
        assert all(p.device.type == dev.type for p in model.parameters()), name
