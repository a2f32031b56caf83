"""Interrupted runs resume to the uninterrupted run's outputs, byte for byte (issue #11).

Every training stage that trains through :func:`groundwords.training.fit` keeps
``<out_dir>/checkpoint.pt``; the encoder keeps ``{out}.partial.h5``. Each test runs the real
command line once uninterrupted, once SIGKILLed at a seeded random step (the test hook
``GROUNDWORDS_KILL_AT_STEP`` makes the process kill itself right after that many optimiser
steps / encoded batches, before the next checkpoint could record them), then reruns the same
command and compares the final files with the uninterrupted run's.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from groundwords.checkpoints import CHECKPOINT_NAME, KILL_AT_STEP_ENV, Checkpoint
from groundwords.training import fit


def _run(args, kill_at: int | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != KILL_AT_STEP_ENV}
    if kill_at is not None:
        env[KILL_AT_STEP_ENV] = str(kill_at)
    return subprocess.run([sys.executable, "-m", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300)


def _in_process(args) -> None:
    """The command line ``python -m args[0] args[1:]`` in this process (saves ~5 s of imports a run)."""
    import importlib

    importlib.import_module(args[0]).main([str(a) for a in args[1:]])


def _uninterrupted(args_for, out: Path) -> Path:
    _in_process(args_for(out))
    assert not (out / CHECKPOINT_NAME).exists()  # removed once the outputs are written
    return out


VECTOR_FILES = ("vectors.npy", "vectors.txt", "vocab.txt")


def _kill_and_resume(args_for, full: Path, killed: Path, steps_of, seed: int, caplog, names=VECTOR_FILES) -> None:
    """SIGKILL a run (a real process) into ``killed`` at a random step in [first, total)
    (``steps_of(the uninterrupted run's train.json) -> (first, total)``), check that it died with a
    checkpoint and no train.json, rerun the same command; compare the files ``names`` with ``full``'s."""
    first, total = steps_of(json.loads((full / "train.json").read_text()))
    k = random.Random(seed).randrange(first, total)
    r = _run(args_for(killed), kill_at=k)
    assert r.returncode == -signal.SIGKILL, (k, total, r.stderr[-2000:])
    assert (killed / CHECKPOINT_NAME).is_file() and not (killed / "train.json").exists()
    with caplog.at_level("INFO", logger="groundwords"):
        _in_process(args_for(killed))
    assert "resuming after epoch" in caplog.text  # it did resume (not train from scratch)
    assert not (killed / CHECKPOINT_NAME).exists()
    for name in names:
        assert (full / name).read_bytes() == (killed / name).read_bytes(), name


# ---------------------------------------------------------------------------------------------
# WIELD (groundwords.studies.wield.stage)

WIELD_BATCH, WIELD_EPOCHS = 64, 2


def _wield_args(f, every=0):
    def args(out):
        return ["groundwords.studies.wield.stage", "--captions", f["captions"], "--vocab", f["captions_vocab"],
                "--images", f["encodings_pca"], "--out-dir", out, "--gamma", 10, "--objective", "negative",
                "--dim", 16, "--epochs", WIELD_EPOCHS, "--batch-size", WIELD_BATCH, "--seed", 3,
                "--threads", 1, "--no-progress", "--checkpoint-seconds", every]
    return args


@pytest.fixture(scope="module")
def wield_full(planted_files, tmp_path_factory):
    return _uninterrupted(_wield_args(planted_files), tmp_path_factory.mktemp("wield_full"))


@pytest.mark.parametrize("every", [0, 1e-6], ids=["epoch-ends", "every-step"])
def test_wield_train_resumes_bit_identical(planted_files, wield_full, tmp_path, every, caplog):
    def steps(info):
        per_epoch = math.ceil(info["n_examples"] / WIELD_BATCH)
        # epoch-end checkpoints only: kill once the first one exists (in epoch 2 or later)
        return (2 if every else per_epoch + 1), per_epoch * WIELD_EPOCHS

    _kill_and_resume(_wield_args(planted_files, every), wield_full, tmp_path / "killed", steps,
                     seed=11 + int(every > 0), caplog=caplog)


def test_wield_numba_engine_resumes_bit_identical(planted_files, tmp_path, caplog):
    """The compiled kernel (engine numba, one thread): weights and finished jobs are checkpointed
    between jobs; the kill comes after a job (a step here), before the next save."""
    from groundwords.w2v_fast import JOB_WORDS

    f, epochs = planted_files, 3

    def args(out):
        return ["groundwords.studies.wield.stage", "--captions", f["captions"], "--vocab", f["captions_vocab"],
                "--images", f["encodings_pca"], "--out-dir", out, "--gamma", 10, "--objective", "negative",
                "--optimizer", "sgd", "--engine", "numba", "--lr", 0.5, "--dim", 16, "--epochs", epochs,
                "--batch-size", WIELD_BATCH, "--seed", 3, "--threads", 1, "--no-progress", "--checkpoint-seconds", 1e-6]

    full = _uninterrupted(args, tmp_path / "full")
    jobs = lambda info: math.ceil(info["n_examples"] / JOB_WORDS)  # noqa: E731
    _kill_and_resume(args, full, tmp_path / "killed", lambda info: (2, jobs(info) * epochs), seed=12, caplog=caplog)


_KERNEL_SCRIPT = """
import sys
import numpy as np
from groundwords.checkpoints import Checkpoint
from groundwords import w2v_fast

kernel, ckpt, out = sys.argv[1], sys.argv[2], sys.argv[3]
rng = np.random.default_rng(0)
V, d = 40, 8
counts = np.bincount(rng.zipf(1.5, 3000) % V, minlength=V).astype(np.float64) + 1
syn0 = ((rng.random((V + 1, d)) - 0.5) / d).astype(np.float32)
syn1 = np.zeros((V, d), np.float32)
kw = dict(epochs=3, seed=4, threads=1, job_words=97,
          checkpoint=None if ckpt == "-" else Checkpoint(ckpt, {"kernel": kernel}, seconds=1e-6))
if kernel == "sgns":
    tokens = rng.integers(0, V, 2000)
    offsets = np.arange(0, 2001, 20)
    hist = w2v_fast.train_sgns_arrays(syn0[:V], syn1, tokens, offsets, counts, window=3, negatives=3, **kw)
    arrays = [syn0, syn1]
else:
    n, k = 1500, 6
    context = rng.integers(0, V + 1, (n, 4))
    target = rng.integers(0, V, n)
    image_row = np.where(rng.random(n) < 0.8, rng.integers(0, 50, n), -1)
    y = rng.normal(size=(50, k)).astype(np.float32)
    w, b = np.zeros((k, d), np.float32), np.zeros(k, np.float32)
    hist = w2v_fast.train_cbow_arrays(syn0, syn1, context, target, V, counts, negatives=3, gamma=2.0,
                                      image_row=image_row, image_targets=y, img_w=w, img_b=b, image_block=8, **kw)
    arrays = [syn0, syn1, w, b]
losses = [[h[k] for k in ("ce", "mse", "total") if k in h] for h in hist]
np.savez(out, *arrays, losses=np.array(losses))
"""


@pytest.mark.parametrize("kernel", ["sgns", "cbow"])
def test_numba_kernels_resume_mid_epoch_bit_identical(tmp_path, kernel):
    """:mod:`groundwords.w2v_fast` with a checkpoint, killed between two jobs of an epoch: the rerun
    ends with the uninterrupted run's weights and per-epoch losses, bit for bit."""
    script = tmp_path / "k.py"
    script.write_text(_KERNEL_SCRIPT)

    def run(ckpt, out, kill_at=None):
        env = {k: v for k, v in os.environ.items() if k != KILL_AT_STEP_ENV}
        if kill_at is not None:
            env[KILL_AT_STEP_ENV] = str(kill_at)
        return subprocess.run([sys.executable, script, kernel, ckpt, out], capture_output=True, text=True, env=env,
                              timeout=300)

    ckpt = tmp_path / CHECKPOINT_NAME
    assert run("-", tmp_path / "plain.npz").returncode == 0
    r = run(ckpt, tmp_path / "killed.npz", kill_at=30)  # epoch 2 of 3 (~21 jobs an epoch)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    state = torch.load(ckpt, weights_only=True)
    assert (state["epoch"], state["offset"]) != (0, 0) and state["offset"] > 0  # killed mid-epoch
    r = run(ckpt, tmp_path / "killed.npz")
    assert r.returncode == 0, r.stderr[-2000:]
    plain, resumed = np.load(tmp_path / "plain.npz"), np.load(tmp_path / "killed.npz")
    assert sorted(plain.files) == sorted(resumed.files)
    for name in plain.files:
        assert plain[name].tobytes() == resumed[name].tobytes(), name


# ---------------------------------------------------------------------------------------------
# Skip-gram: PIXIE (fixed pairs, VAE and noise generators) and IESG's SGNS pretraining (pairs
# redrawn every epoch from a numpy generator, reshuffled with a fresh seed every epoch)

SG_BATCH, SG_EPOCHS = 1024, 2


def _pixie_args(f):
    def args(out):
        return ["groundwords.studies.pixie.stage", "train", "--corpus", f["corpus"], "--vocab", f["vocab"],
                "--visual", f["visual_minmax_all"], "--out-dir", out, "--dim", 16, "--window", 2,
                "--epochs", SG_EPOCHS, "--batch-size", SG_BATCH, "--seed", 5, "--hidden", 16,
                "--no-progress", "--checkpoint-seconds", 1e-6]
    return args


def _pretrain_args(f):
    def args(out):
        return ["groundwords.studies.iesg.stage", "pretrain", "--corpus", f["corpus"], "--vocab", f["vocab"],
                "--out-dir", out, "--dim", 16, "--window", 2, "--epochs", SG_EPOCHS, "--batch-size", SG_BATCH,
                "--seed", 5, "--engine", "torch", "--no-progress", "--checkpoint-seconds", 1e-6]
    return args


def test_pixie_train_resumes_bit_identical(planted_files, tmp_path, caplog):
    args = _pixie_args(planted_files)
    full = _uninterrupted(args, tmp_path / "full")
    _kill_and_resume(args, full, tmp_path / "killed",
                     lambda info: (2, math.ceil(info["n_pairs"] / SG_BATCH) * SG_EPOCHS), seed=21, caplog=caplog)
    assert (full / "concat_vectors.txt").read_bytes() == (tmp_path / "killed" / "concat_vectors.txt").read_bytes()


def test_vsgns_resumes_bit_identical(planted_files, tmp_path, caplog):
    """V-SGNS (pixie_baselines): its own contrastive-word generator beside the noise sampler's."""
    f = planted_files

    def args(out):
        return ["groundwords.studies.pixie.baselines", "vsgns", "--corpus", f["corpus"], "--vocab", f["vocab"],
                "--visual", f["visual_none_all"], "--out-dir", out, "--dim", 16, "--window", 2,
                "--epochs", SG_EPOCHS, "--batch-size", SG_BATCH, "--seed", 5, "--visual-negatives", 3,
                "--vsgns-model", "B",
                "--no-progress", "--checkpoint-seconds", 0]

    full = _uninterrupted(args, tmp_path / "full")
    _kill_and_resume(args, full, tmp_path / "killed", lambda info: (
        math.ceil(info["n_pairs"] / SG_BATCH) + 1, math.ceil(info["n_pairs"] / SG_BATCH) * SG_EPOCHS), seed=41,
        caplog=caplog)


def test_iesg_pretrain_resumes_bit_identical(planted_files, tmp_path, caplog):
    args = _pretrain_args(planted_files)
    full = _uninterrupted(args, tmp_path / "full")
    # n_pairs: all epochs' (redrawn) pairs together, about as many each epoch: the kill comes in
    # the last epoch, whose pairs are drawn after the first epoch's (the numpy state must be replayed)
    total = lambda info: info["n_pairs"] // SG_BATCH  # noqa: E731
    _kill_and_resume(args, full, tmp_path / "killed", lambda info: (int(0.6 * total(info)), total(info)), seed=31,
                     caplog=caplog)
    killed = tmp_path / "killed"
    assert np.array_equal(np.load(full / "context_vectors.npy"), np.load(killed / "context_vectors.npy"))


def test_numba_hogwild_threads_checkpoint_between_groups_of_jobs(tmp_path):
    """With Hogwild threads the kernel checkpoints between groups of 32 × threads jobs (a barrier):
    mid-epoch saves happen, the history is whole, and a finished run's checkpoint resumes to the end."""
    from groundwords import w2v_fast

    rng = np.random.default_rng(0)
    V, d = 40, 8
    counts = np.bincount(rng.integers(0, V, 5000), minlength=V).astype(np.float64) + 1
    tokens, offsets = rng.integers(0, V, 20000), np.arange(0, 20001, 20)
    n_jobs = len(w2v_fast._chunks(np.diff(offsets), 50))  # whole sentences of 20 tokens, ~50 a job

    def run(ck):
        syn0 = ((rng.random((V, d)) - 0.5) / d).astype(np.float32)
        syn1 = np.zeros((V, d), np.float32)
        return syn0, w2v_fast.train_sgns_arrays(syn0, syn1, tokens, offsets, counts, epochs=2, threads=2,
                                                job_words=50, checkpoint=ck)

    ck = Checkpoint(tmp_path / CHECKPOINT_NAME, {"run": 1}, seconds=1e-6)
    syn0, history = run(ck)
    assert [h["epoch"] for h in history] == [1, 2] and all(np.isfinite(h["total"]) for h in history)
    assert n_jobs > 64 and ck.n_saved == 2 * -(-n_jobs // 64)  # per epoch: after each group of 64 jobs (the last: the end)
    again, history2 = run(Checkpoint(ck.path, {"run": 1}))  # the finished run's checkpoint: nothing to redo
    assert again.tobytes() == syn0.tobytes() and history2 == history


def test_vae_resumes_bit_identical(planted_files, tmp_path, caplog):
    """PIXIE's VAE alone (pixie_baselines vae): its private sampling generators are checkpointed."""
    f, batch, epochs = planted_files, 16, 3

    def args(out):
        return ["groundwords.studies.pixie.baselines", "vae", "--visual", f["visual_minmax_all"], "--out-dir", out,
                "--dim", 8, "--hidden", 16, "--epochs", epochs, "--batch-size", batch, "--seed", 6,
                "--checkpoint-seconds", 1e-6]

    full = _uninterrupted(args, tmp_path / "full")
    _kill_and_resume(args, full, tmp_path / "killed",
                     lambda info: (2, math.ceil(info["n_words"] / batch) * epochs), seed=61, caplog=caplog)


def test_ivsgns_nonlinear_map_resumes_bit_identical(planted_files, planted_sgns, tmp_path, caplog):
    f, batch, epochs = planted_files, 8, 3

    def args(out):
        return ["groundwords.studies.pixie.baselines", "ivsgns", "--sgns", planted_sgns / "vectors.txt",
                "--visual", f["visual_none_all"], "--out-dir", out, "--mapping", "nonlinear", "--hidden", 16,
                "--epochs", epochs, "--batch-size", batch, "--seed", 7, "--checkpoint-seconds", 1e-6]

    full = _uninterrupted(args, tmp_path / "full")
    _kill_and_resume(args, full, tmp_path / "killed",
                     lambda info: (2, math.ceil(info["n_fit_words"] / batch) * epochs), seed=71, caplog=caplog)


def test_retrieval_resumes_bit_identical_with_its_best_epoch(tmp_path, caplog):
    """The retrieval model (--select best-val): the best epoch's weights so far and the epoch's
    running loss live outside the model; the checkpoint keeps them (fit's ``state``)."""
    from test_pixie_retrieval import synthetic, write_inputs

    man, h5, vec = write_inputs(tmp_path, *synthetic(n_images=60))
    batch, epochs = 8, 4

    def args(out):
        return ["groundwords.studies.pixie.retrieval", "train", "--vectors", vec, "--manifest", man, "--features", h5,
                "--out-dir", out, "--hidden", 16, "--epochs", epochs, "--batch-size", batch, "--lr", 3e-2,
                "--lr-step", 0, "--select", "best-val", "--val-frac", 0.2, "--seed", 8, "--no-progress",
                "--checkpoint-seconds", 1e-6]

    full = _uninterrupted(args, tmp_path / "full")
    info = json.loads((full / "train.json").read_text())
    assert info["selected_epoch"] < epochs  # the test needs an earlier best epoch to be kept across the kill
    per_epoch = math.ceil(info["splits"]["train"]["captions"] / batch)
    _kill_and_resume(args, full, tmp_path / "killed", lambda info: (per_epoch * info["selected_epoch"] + 1,
                                                                     per_epoch * epochs),
                     seed=81, caplog=caplog, names=("retrieval.tsv", "ranks.tsv"))
    resumed = json.loads((tmp_path / "killed" / "train.json").read_text())
    assert resumed["selected_epoch"] == info["selected_epoch"]
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in info["history"]]


# ---------------------------------------------------------------------------------------------
# IESG's alternating loop (fit's step_fn with two optimisers; noise and image-draw generators)

IESG_BATCH, IESG_EPOCHS = 64, 2


def test_iesg_train_resumes_bit_identical(planted_files, tmp_path, caplog):
    from groundwords.studies.iesg import stage as iesg

    f = planted_files
    iesg.pretrain(f["corpus"], tmp_path / "sgns", vocab_tsv=f["vocab"], dim=16, epochs=1, progress=False)

    def args(out):
        return ["groundwords.studies.iesg.stage", "train", "--sgns", tmp_path / "sgns", "--corpus", f["corpus"],
                "--word-images", f["word_images"], "--features", f["encodings"], "--out-dir", out,
                "--epochs", IESG_EPOCHS, "--batch-size", IESG_BATCH, "--max-examples", 3000, "--seed", 2,
                "--no-progress", "--checkpoint-seconds", 1e-6]

    full = _uninterrupted(args, tmp_path / "full")
    _kill_and_resume(args, full, tmp_path / "killed",
                     lambda info: (2, math.ceil(info["n_examples"] / IESG_BATCH) * IESG_EPOCHS), seed=51, caplog=caplog)
    assert (full / "projection_iesg.npy").read_bytes() == (tmp_path / "killed" / "projection_iesg.npy").read_bytes()


# ---------------------------------------------------------------------------------------------
# Encode (groundwords.data.encode): the partial folder of atomic segments. (With the former partial
# HDF5 file, appended in place, this test failed: a file killed between flushes opened fine and
# the rerun crashed with "bad heap index".)


N_ENC_IMAGES, ENC_BATCH = 40, 2


@pytest.fixture(scope="module")
def enc_inputs(tmp_path_factory):
    from PIL import Image
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    d = tmp_path_factory.mktemp("enc")
    torch.manual_seed(0)
    cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=64)
    ViTModel(cfg).save_pretrained(d / "vit")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(d / "vit")
    rng = np.random.default_rng(0)
    rows = ["id\tpath\tstatus"]
    for i in range(N_ENC_IMAGES):
        p = d / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)).save(p)
        rows.append(f"im{i}\t{p}\tok")
    (d / "images.tsv").write_text("\n".join(rows) + "\n")
    return d


def _h5(path) -> dict:
    import h5py

    with h5py.File(path, "r") as f:
        return {"ids": f["ids"][:].tolist(), "features": f["features"][:], "failed": f["failed_ids"][:].tolist(),
                "attrs": {k: str(v) for k, v in f.attrs.items()}, "keys": sorted(f.keys())}


def test_encode_resumes_to_identical_features(enc_inputs, tmp_path, caplog):
    """Uninterrupted and resumed runs in-process (importing transformers costs ~10 s a process);
    the killed run is a real process."""
    from groundwords.data.encode import encode_images

    kw = dict(model=str(enc_inputs / "vit"), batch_size=ENC_BATCH, num_workers=0, device="cpu", progress=False)
    full, killed = tmp_path / "full.h5", tmp_path / "killed.h5"
    encode_images(enc_inputs / "images.tsv", full, **kw)
    k = random.Random(1).randrange(9, N_ENC_IMAGES // ENC_BATCH)  # after the first segment (8 batches)
    r = _run(["groundwords.data.encode", "--images", enc_inputs / "images.tsv", "--out", killed, "--model", kw["model"],
              "--batch-size", ENC_BATCH, "--num-workers", 0, "--device", "cpu", "--no-progress"], kill_at=k)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    partial = Path(f"{killed}.partial")
    assert not killed.exists() and list(partial.glob("seg-*.npz"))
    with caplog.at_level("INFO", logger="groundwords.data.encode"):
        stats = encode_images(enc_inputs / "images.tsv", killed, **kw)
    assert "resuming from" in caplog.text and 0 < stats["n_resumed"] < N_ENC_IMAGES
    assert not partial.exists()
    a, b = _h5(full), _h5(killed)
    assert a["ids"] == b["ids"] and a["failed"] == b["failed"] and a["attrs"] == b["attrs"] and a["keys"] == b["keys"]
    assert a["features"].tobytes() == b["features"].tobytes()


# ---------------------------------------------------------------------------------------------
# fit's checkpoint, in-process


def _sgns_fit(tmp_path, *, checkpoint=None, epochs=3, seed=0):
    from groundwords.models.sgns import SGNS

    rng = np.random.default_rng(0)
    data = {"centre": torch.from_numpy(rng.integers(0, 30, 700)), "context": torch.from_numpy(rng.integers(0, 30, 700))}
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SGNS(30, 8, counts=np.arange(1, 31), negatives=3, seed=seed)
        history = fit(model, data, epochs=epochs, batch_size=64, lr=0.05, optimizer="adam", seed=seed,
                      progress=False, checkpoint=checkpoint)
    return model.word_vectors().numpy(), history


def test_checkpointing_does_not_change_the_result(tmp_path):
    plain, _ = _sgns_fit(tmp_path)
    ck = Checkpoint(tmp_path / "checkpoint.pt", {"run": 1}, seconds=1e-6)
    saved, history = _sgns_fit(tmp_path, checkpoint=ck)
    assert plain.tobytes() == saved.tobytes()
    assert ck.n_saved > 3 * 1  # mid-epoch saves too
    # a checkpoint of the finished run (killed before the outputs were written): nothing to redo
    again, history2 = _sgns_fit(tmp_path, checkpoint=Checkpoint(ck.path, {"run": 1}))
    assert again.tobytes() == plain.tobytes()
    assert [h["epoch"] for h in history2] == [1, 2, 3] and history2[-1]["total"] == history[-1]["total"]


def test_checkpoint_seconds_throttles_epoch_end_saves_but_keeps_the_last(tmp_path):
    """Many short epochs (IV-SGNS's nonlinear map runs 1,000) do not write one checkpoint each: with
    ``seconds`` > 0 an epoch end saves only once that long has passed, and the last epoch always;
    ``seconds`` = 0 saves at every epoch end. Same for the numba engine's loop."""
    from groundwords import w2v_fast

    for seconds, saves in ((3600, 1), (0, 5), (1e-6, None)):
        ck = Checkpoint(tmp_path / f"fit-{seconds}.pt", {"run": 1}, seconds=seconds)
        _sgns_fit(tmp_path, checkpoint=ck, epochs=5)
        assert ck.n_saved == saves if saves is not None else ck.n_saved > 5, (seconds, ck.n_saved)
        restored = torch.load(ck.path, weights_only=True)
        assert restored["epoch"] == 5 and restored["offset"] == 0  # the finished run's state

    rng = np.random.default_rng(0)
    V, d = 30, 8
    counts = np.bincount(rng.integers(0, V, 3000), minlength=V).astype(np.float64) + 1
    tokens, offsets = rng.integers(0, V, 2000), np.arange(0, 2001, 20)
    for seconds, saves in ((3600, 1), (0, 4)):
        ck = Checkpoint(tmp_path / f"numba-{seconds}.pt", {"run": 1}, seconds=seconds)
        syn0, syn1 = ((rng.random((V, d)) - 0.5) / d).astype(np.float32), np.zeros((V, d), np.float32)
        w2v_fast.train_sgns_arrays(syn0, syn1, tokens, offsets, counts, epochs=4, threads=1, job_words=500,
                                   checkpoint=ck)
        assert ck.n_saved == saves, (seconds, ck.n_saved)
        assert torch.load(ck.path, weights_only=True)["epoch"] == 4


def test_checkpoint_of_other_settings_is_ignored(tmp_path, caplog):
    ck = Checkpoint(tmp_path / "checkpoint.pt", {"lr": 1}, seconds=0)
    _sgns_fit(tmp_path, checkpoint=ck, epochs=1)  # leaves the checkpoint of a 1-epoch run
    with caplog.at_level("WARNING", logger="groundwords"):
        other, _ = _sgns_fit(tmp_path, checkpoint=Checkpoint(ck.path, {"lr": 2}))
    assert "other settings (lr)" in caplog.text
    assert other.tobytes() == _sgns_fit(tmp_path)[0].tobytes()  # trained from the start
    caplog.clear()
    with caplog.at_level("WARNING", logger="groundwords"):  # same stage settings, other loop (epochs)
        _sgns_fit(tmp_path, checkpoint=Checkpoint(ck.path, {"lr": 2}), epochs=2)
    assert "other settings (format or training loop)" in caplog.text


def test_checkpoint_seconds_is_checked():
    with pytest.raises(Exception, match="training.checkpoint_seconds"):
        Checkpoint("x.pt", {}, seconds=-1)
