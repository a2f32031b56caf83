"""The PIXIE paper's competing models (Ailem et al., EMNLP 2018, §4.2), one sub-command each.

::

    python -m groundwords.studies.pixie.baselines vsgns --corpus C --vocab V --visual H5 --out-dir D ...
    python -m groundwords.studies.pixie.baselines ivsgns --sgns VECTORS --visual H5 --out-dir D --mapping linear|nonlinear ...
    python -m groundwords.studies.pixie.baselines vae --visual H5 --out-dir D ...
    python -m groundwords.studies.pixie.baselines cnn --visual H5 --out OUT_TXT
    python -m groundwords.studies.pixie.baselines concat --a A_VECTORS --b B_VECTORS --out OUT_TXT [--no-normalize]

``--visual`` is a per-word features HDF5 (``python -m groundwords.studies.pixie.stage features``: ids = words).
Every command writes word2vec text vectors; the trained ones write them as ``D/vectors.txt``
with :func:`groundwords.training.write_outputs` (also ``vectors.npy``, ``vocab.txt``,
``loss.csv`` and, last, ``train.json`` with the hyper-parameters and per-epoch history).

``vsgns``
    V-SGNS (Lazaridou et al. 2015, :mod:`groundwords.models.vsgns`): SGNS + a max-margin term
    pulling M e_w towards v_w for the visual words, Adam (lr 1e-3, as PIXIE) on the same
    skip-gram pairs as ``pixie train`` (reduced windows, subsampling, one draw). Each pair is
    weighted 1/(pairs of its corpus occurrence), so the visual term counts once per occurrence
    of a visual word, as in the paper. Defaults: dim 100, window 10, 5 noise words (PIXIE
    stage), margin 0.5 and 20 contrastive words (Lazaridou et al.). vectors.txt: e_w, every word.
``ivsgns``
    IV-SGNS (Collell et al. 2017, :mod:`groundwords.models.ivsgns`): f fitted from SGNS vectors
    to visual features on the words having both; vectors.txt: [e_w/‖e_w‖, f(e_w)/‖f(e_w)‖]
    for *every* word of the SGNS file (imagined features for the words without images).
``vae``
    the visual part of PIXIE alone (:class:`~groundwords.models.pixie.VisualVAE`, latent = dim,
    hidden 500 tanh): maximises the ELBO of the visual features with Adam; vectors.txt:
    μ_φ(x_w) for the visual words only. Features should lie in [0, 1] (sigmoid decoder means).
``cnn``
    the visual features themselves (visual words only).
``concat``
    [a_w/‖a_w‖, b_w/‖b_w‖] for the words of both files, in file a's order: CNN⊕SGNS (Kiela &
    Bottou 2014) and VAE⊕SGNS. Each part is L2-normalised unless ``--no-normalize``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from groundwords.checkpoints import file_identity, stage_checkpoint
from groundwords.cli import UserError, log, run_cli, setup_logging
from groundwords.config import add_config_argument, add_section_arguments
from groundwords.evaluation.similarity import load_vectors
from groundwords.files import read_feature_matrix
from groundwords.models.ivsgns import MAPPINGS, Imagination
from groundwords.models.pixie import VisualVAE
from groundwords.studies.pixie.imagination import fit_imagination, fit_quality, imagined_vectors
from groundwords.studies.pixie.stage import (
    add_skipgram_args,
    align_visual,
    check_settings,
    pixie_settings,
    stage_device,
)
from groundwords.studies.pixie.vsgns import reduce_features, train_vsgns
from groundwords.training import finish_run, fit, torch_settings, training_settings, write_word2vec_text
from groundwords.vectors import unit_rows


def read_visual(path) -> tuple[list[str], np.ndarray, dict]:
    """(words, features (W, k) float32, attrs) of a per-word features HDF5, validated."""
    return read_feature_matrix(path, "visual features")


# ---------------------------------------------------------------------------------------------
# IV-SGNS (V-SGNS: groundwords.studies.pixie.vsgns)


def train_ivsgns(sgns_vectors, visual_h5, out_dir, *, mapping: str = "linear", hidden: int = 300,
                 epochs: int = 1000, lr: float = 1e-3, batch_size: int = 64, normalize: bool = True,
                 seed: int = 0, threads: int | None = 1, progress: bool = False, device: str = "cpu",
                 checkpoint_seconds: float | None = None) -> dict:
    """Fit IV-SGNS's map and write its outputs. ``device`` (``pixie.device``): where the nonlinear map
    trains (the linear one is an exact least-squares solve on the CPU). ``checkpoint_seconds``
    (nonlinear map): None, no checkpoint; else resume from / save ``out_dir/checkpoint.pt``."""
    check_settings((mapping in MAPPINGS, f"mapping must be one of {', '.join(MAPPINGS)} (got {mapping!r})"),
           (hidden >= 1, "hidden must be >= 1"), (epochs >= 1, "epochs must be >= 1"),
           (lr > 0, "lr must be > 0"), (batch_size >= 1, "batch size must be >= 1"))
    if not Path(sgns_vectors).exists():
        raise UserError(f"SGNS vectors not found: {sgns_vectors}")
    words, text = load_vectors(sgns_vectors)
    if not np.isfinite(text).all():
        raise UserError(f"{sgns_vectors}: the vectors contain NaN/inf")
    feats, mask, vattrs = align_visual(words, visual_h5)
    x, y = text[mask], feats[mask]
    dev = stage_device(device) if mapping == "nonlinear" else torch.device("cpu")
    log.info("ivsgns: %d SGNS words, %d with visual features (%d-d -> %d-d, %s map), on %s",
             len(words), len(x), text.shape[1], y.shape[1], mapping, dev)
    hyper = {"mapping": mapping, "hidden": hidden, "epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed}
    ckpt = stage_checkpoint(out_dir, {"stage": "ivsgns", **hyper, "inputs": [
        file_identity(p) for p in (sgns_vectors, visual_h5)]}, checkpoint_seconds if mapping == "nonlinear" else None, dev)
    with torch_settings(threads, dev):
        start = fit_quality(Imagination(x.shape[1], y.shape[1], mapping, hidden, seed=seed), x, y)  # = f's init
        t0 = time.perf_counter()
        f, history = fit_imagination(x, y, mapping=mapping, hidden=hidden, epochs=epochs, batch_size=batch_size,
                                     lr=lr, seed=seed, progress=progress, device=dev, checkpoint=ckpt)
        seconds = time.perf_counter() - t0
        end = fit_quality(f, x, y)
        vectors = imagined_vectors(f, text, normalize=normalize)
    info = {
        "model": "ivsgns",
        "hyperparameters": {"mapping": mapping, "hidden": hidden if mapping == "nonlinear" else None,
                            "activation": "tanh" if mapping == "nonlinear" else None, "epochs": epochs,
                            "lr": lr, "batch_size": batch_size, "normalize": normalize,
                            "optimizer": "adam" if mapping == "nonlinear" else "lstsq (exact; epochs, lr, batch unused)",
                            "seed": seed},
        "inputs": {"sgns": str(sgns_vectors), "visual": str(visual_h5)},
        "visual_scaling": vattrs.get("scaling"), "n_words": len(words), "n_fit_words": int(len(x)),
        "text_dim": int(text.shape[1]), "visual_dim": int(y.shape[1]),
        "fit_mse_start": start["mse"], "fit_mse_end": end["mse"], "fit_r2_end": end["r2"],
        "train_seconds": seconds, "history": history, "torch_version": torch.__version__, "device": str(dev),
        "outputs": {"vectors.txt": "[e_w, f(e_w)]" + (" each L2-normalised" if normalize else "") + ", every word"},
    }
    finish_run(out_dir, words, vectors, history, info, model="IV-SGNS")
    log.info("wrote %s: %d x %d IV-SGNS vectors; fit MSE %.4g -> %.4g (R² %.3f)", out_dir, *vectors.shape,
             start["mse"], end["mse"], end["r2"])
    return info


# ---------------------------------------------------------------------------------------------
# VAE, CNN, concatenation


class _VAEWithJ(nn.Module):
    """:class:`VisualVAE` with J samples, for :func:`groundwords.training.fit` (which calls ``loss(batch)``)."""

    def __init__(self, vae: VisualVAE, J: int):
        super().__init__()
        self.vae, self.J = vae, J

    def loss(self, batch):
        return self.vae.loss(batch, self.J)

    def sparse_parameters(self):
        return []


def train_vae(visual_h5, out_dir, *, dim: int = 100, hidden: int = 500, J: int = 1, epochs: int = 200,
              batch_size: int = 64, lr: float = 1e-3, seed: int = 0, threads: int | None = 1,
              progress: bool = False, device: str = "cpu", checkpoint_seconds: float | None = None) -> dict:
    """Train the VAE alone and write μ_φ(x_w). ``device`` (``pixie.device``): auto, cpu or cuda.
    ``checkpoint_seconds``: None, no checkpoint; else resume from / save ``out_dir/checkpoint.pt``."""
    check_settings((dim >= 1, "dim must be >= 1"), (hidden >= 1, "hidden must be >= 1"), (J >= 1, "J must be >= 1"),
           (epochs >= 1, "epochs must be >= 1"), (batch_size >= 1, "batch size must be >= 1"),
           (lr > 0, "lr must be > 0"))
    words, feats, vattrs = read_visual(visual_h5)
    if feats.min() < 0 or feats.max() > 1:
        log.warning("%s: features outside [0, 1]; the VAE's sigmoid decoder means cannot fit them "
                    "(make them with 'pixie features --scale minmax')", visual_h5)
    dev = stage_device(device)
    x = torch.from_numpy(feats).to(dev)
    with torch_settings(threads, dev):  # VisualVAE draws from private generators only
        vae = VisualVAE(x.shape[1], latent=dim, hidden=hidden, seed=seed).to(dev)
        with torch.no_grad():
            elbo_start = vae.elbo(x, J).mean().item()
        ckpt = stage_checkpoint(out_dir, {"stage": "vae", "dim": dim, "hidden": hidden, "J": J, "epochs": epochs,
                                          "batch_size": batch_size, "lr": lr, "seed": seed,
                                          "inputs": [file_identity(visual_h5)]}, checkpoint_seconds, dev)
        t0 = time.perf_counter()
        history = fit(_VAEWithJ(vae, J), {"x": x}, epochs=epochs, batch_size=batch_size, lr=lr, optimizer="adam",
                      seed=seed, progress=progress, checkpoint=ckpt)
        seconds = time.perf_counter() - t0
        with torch.no_grad():
            elbo_end = vae.elbo(x, J).mean().item()
            vectors = vae.encode(x)[0].cpu().numpy()
    for rec in history:
        rec["elbo"] = -rec["total"]
    info = {
        "model": "vae",
        "hyperparameters": {"dim": dim, "hidden": hidden, "J": J, "epochs": epochs, "batch_size": batch_size,
                            "lr": lr, "optimizer": "adam", "seed": seed},
        "inputs": {"visual": str(visual_h5)}, "visual_scaling": vattrs.get("scaling"),
        "n_words": len(words), "visual_dim": int(feats.shape[1]),
        "elbo_start": elbo_start, "elbo_end": elbo_end, "train_seconds": seconds, "history": history,
        "torch_version": torch.__version__, "device": str(dev),
        "outputs": {"vectors.txt": "μ_φ(x_w), visual words only"},
    }
    finish_run(out_dir, words, vectors, history, info, model="VAE")
    log.info("wrote %s: %d x %d VAE vectors; mean ELBO %.4g -> %.4g", out_dir, *vectors.shape, elbo_start, elbo_end)
    return info


def write_cnn(visual_h5, out_txt) -> dict:
    words, feats, _ = read_visual(visual_h5)
    write_word2vec_text(out_txt, words, feats)
    log.info("wrote %s: %d x %d CNN vectors", out_txt, *feats.shape)
    return {"words": len(words), "dim": int(feats.shape[1])}


def concat_vectors(a_path, b_path, out_txt, *, normalize: bool = True) -> dict:
    for name, p in (("--a", a_path), ("--b", b_path)):
        if not Path(p).exists():
            raise UserError(f"{name} vectors not found: {p}")
    wa, va = load_vectors(a_path)
    wb, vb = load_vectors(b_path)
    first_b = {}
    for i, w in enumerate(wb):
        first_b.setdefault(w, i)
    seen: set[str] = set()
    ia, ib = [], []
    for i, w in enumerate(wa):
        if w in first_b and w not in seen:
            seen.add(w)
            ia.append(i)
            ib.append(first_b[w])
    if not ia:
        raise UserError(f"{a_path} ({len(wa)} words) and {b_path} ({len(wb)} words) share no word")
    a, b = va[ia], vb[ib]
    if normalize:
        a, b = unit_rows(a, axis=1).astype(np.float32), unit_rows(b, axis=1).astype(np.float32)
    out = np.concatenate([a, b], 1)
    write_word2vec_text(out_txt, [wa[i] for i in ia], out)
    log.info("wrote %s: %d shared words x (%d + %d) dims%s", out_txt, len(ia), a.shape[1], b.shape[1],
             " (each part L2-normalised)" if normalize else "")
    return {"words": len(ia), "dim": int(out.shape[1])}


# ---------------------------------------------------------------------------------------------
# CLI

#: pixie.vsgns keys whose options would clash with pixie.text's (or read ambiguously) -> their flags
VSGNS_FLAGS = {"model": "vsgns-model", "negatives": "visual-negatives", "weight": "visual-weight"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m groundwords.studies.pixie.baselines", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    v = sub.add_parser("vsgns", help="V-SGNS (Lazaridou et al. 2015): SGNS + max-margin visual term")
    add_skipgram_args(v)
    v.add_argument("--visual", required=True, help="per-word features HDF5 ('pixie features')")
    add_section_arguments(v, "pixie.vsgns", rename=VSGNS_FLAGS)
    v.add_argument("--visual-map", help="linear (M) or identity (e_w vs v_w, dim = k); default: by "
                                        "pixie.vsgns.model, identity for A, linear for B")
    add_section_arguments(v, "training")  # --checkpoint-seconds

    r = sub.add_parser("reduce", help="per-word features reduced by PCA to the text dimension (V-SGNS model A)")
    r.add_argument("--visual", required=True, help="per-word features HDF5 ('pixie features')")
    r.add_argument("--out", required=True, help="reduced features HDF5 to write")
    add_config_argument(r, "pixie")
    add_section_arguments(r, "pixie.text", only=("dim",))
    add_section_arguments(r, "pixie", only=("seed",))

    i = sub.add_parser("ivsgns", help="IV-SGNS (Collell et al. 2017): SGNS + imagined visual features")
    i.add_argument("--sgns", required=True, help="SGNS vectors (word2vec text, or a dir with vectors.npy)")
    i.add_argument("--visual", required=True, help="per-word features HDF5 ('pixie features')")
    i.add_argument("--out-dir", required=True)
    i.add_argument("--mapping", required=True, help="linear or nonlinear (one tanh hidden layer)")
    i.add_argument("--no-normalize", action="store_true", help="do not L2-normalise the two halves")
    add_config_argument(i, "pixie")
    add_section_arguments(i, "pixie.ivsgns")
    add_section_arguments(i, "pixie", only=("seed", "threads", "device"))
    add_section_arguments(i, "training")  # --checkpoint-seconds

    a = sub.add_parser("vae", help="the VAE of PIXIE alone, on the visual features")
    a.add_argument("--visual", required=True, help="per-word features HDF5 in [0, 1] ('pixie features')")
    a.add_argument("--out-dir", required=True)
    add_config_argument(a, "pixie")
    add_section_arguments(a, "pixie.text", only=("dim", "lr"))  # the latent size and Adam's rate: PIXIE's
    add_section_arguments(a, "pixie.model", only=("hidden", "J"))
    add_section_arguments(a, "pixie.vae")
    add_section_arguments(a, "pixie", only=("seed", "threads", "device"))
    add_section_arguments(a, "training")  # --checkpoint-seconds

    c = sub.add_parser("cnn", help="the visual features as word vectors")
    c.add_argument("--visual", required=True, help="per-word features HDF5")
    c.add_argument("--out", required=True, help="word2vec text file to write")

    k = sub.add_parser("concat", help="[a/|a|, b/|b|] for the words of both files (CNN+SGNS, VAE+SGNS)")
    k.add_argument("--a", required=True, help="vectors (word2vec text or a dir); its word order is kept")
    k.add_argument("--b", required=True, help="vectors (word2vec text or a dir)")
    k.add_argument("--out", required=True, help="word2vec text file to write")
    k.add_argument("--no-normalize", action="store_true", help="do not L2-normalise the two parts")
    return p


def main(argv=None) -> None:
    o = build_parser().parse_args(argv)
    setup_logging()
    if o.cmd == "vsgns":
        s = pixie_settings(o, "text", "vsgns", rename={f"vsgns.{k}": f for k, f in VSGNS_FLAGS.items()})
        vs = s["vsgns"]
        visual_map = o.visual_map or ("identity" if vs["model"] == "A" else "linear")
        train_vsgns(o.corpus, o.vocab, o.visual, o.out_dir, **s["text"], margin=vs["margin"],
                    visual_negatives=vs["negatives"], visual_weight=vs["weight"], visual_map=visual_map,
                    seed=s["seed"], threads=s["threads"], progress=not o.no_progress,
                    checkpoint_seconds=training_settings(o)["checkpoint_seconds"], device=s["device"])
    elif o.cmd == "reduce":
        s = pixie_settings(o, "text")
        reduce_features(o.visual, o.out, s["text"]["dim"], seed=s["seed"])
    elif o.cmd == "ivsgns":
        s = pixie_settings(o, "ivsgns")
        train_ivsgns(o.sgns, o.visual, o.out_dir, mapping=o.mapping, **s["ivsgns"], normalize=not o.no_normalize,
                     seed=s["seed"], threads=s["threads"], device=s["device"],
                     checkpoint_seconds=training_settings(o)["checkpoint_seconds"])
    elif o.cmd == "vae":
        s = pixie_settings(o, "text", "model", "vae")
        train_vae(o.visual, o.out_dir, dim=s["text"]["dim"], hidden=s["model"]["hidden"], J=s["model"]["J"],
                  **s["vae"], lr=s["text"]["lr"], seed=s["seed"], threads=s["threads"], device=s["device"],
                  checkpoint_seconds=training_settings(o)["checkpoint_seconds"])
    elif o.cmd == "cnn":
        write_cnn(o.visual, o.out)
    else:
        concat_vectors(o.a, o.b, o.out, normalize=not o.no_normalize)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
