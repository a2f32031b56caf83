"""IESG's training procedures (Luo, §2-3.2): alternating text / image updates, and the L2 baseline's projection fits."""

from __future__ import annotations

import numpy as np
import torch

from groundwords.cli import UserError
from groundwords.models.iesg import IESG
from groundwords.optimizers import SGD
from groundwords.training import fit


def word_image_index(word_ids: np.ndarray, image_rows: np.ndarray, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR map word -> its image rows: images of word ``w`` are ``rows[offsets[w]:offsets[w+1]]``."""
    word_ids = np.asarray(word_ids, dtype=np.int64)
    image_rows = np.asarray(image_rows, dtype=np.int64)
    order = np.lexsort((image_rows, word_ids))
    counts = np.bincount(word_ids, minlength=vocab_size)
    offsets = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, image_rows[order]


def fit_alternating(
    model: IESG,
    data: dict[str, torch.Tensor],
    *,
    epochs: int = 1,
    batch_size: int = 16,
    lr: float = 0.01,
    momentum: float = 0.9,
    seed: int = 0,
    progress: bool = True,
    checkpoint=None,
) -> list[dict]:
    """Alternating Momentum-SGD minimisation of eq. 1 (word embeddings) and eq. 2 (``W_p``).

    Every step takes one shuffled batch of (centre, context) pairs, draws the noise words and
    one random image per centre word, then makes a word step (eq. 1) and an image step (eq. 2)
    on the same words, each with its own Momentum-SGD optimiser (the step of
    :func:`groundwords.training.fit`'s loop). Returns one dict per epoch: mean ``word``,
    ``image`` and ``total`` losses (measured before each update), ``seconds``, ``examples_per_s``.
    ``checkpoint``: a :class:`groundwords.checkpoints.Checkpoint` (both optimisers are saved with it).
    """
    data = {"centre": data["centre"].long(), "context": data["context"].long()}
    n = len(data["centre"])
    if n == 0:
        raise UserError("no IESG training examples (no corpus window is centred on a word with a training image)")
    opt_word = SGD(model.word_parameters(), lr=lr, momentum=momentum)
    image_params = [model.proj] + (model.word_parameters() if model.image_updates_words else [])
    opt_image = SGD(image_params, lr=lr, momentum=momentum)
    sums = [0.0, 0.0]  # this epoch's Σ word and Σ image losses (× batch size), for the total
    step = _alternating_step(model, opt_word, opt_image, sums)

    def epoch_end(rec: dict) -> None:
        rec["total"] = float((sums[0] + sums[1]) / n)  # Σ over the whole epoch (a checkpoint keeps the sums)
        sums[:] = [0.0, 0.0]

    return fit(model, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=progress,
               step_fn=step, on_epoch_end=epoch_end, checkpoint=checkpoint, state={"sums": sums})


def _alternating_step(model: IESG, opt_word: SGD, opt_image: SGD,
                      sums: list[float]):
    """:func:`fit_alternating`'s step on one batch: the noise words and one random image per centre
    word, a word step (eq. 1), then an image step (eq. 2) on the same words; each loss (× batch
    size) is added to ``sums`` (word, image). The step carries both optimisers (``.optimizers``)."""

    def step(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        centre, context = batch["centre"], batch["context"]
        noise = model.sample_noise(len(centre), centre.device)
        rows = model.random_images(centre)

        lw = model.word_loss(centre, context, noise)  # eq. 1 -> word embeddings
        opt_word.zero_grad(set_to_none=True)
        lw.backward()
        opt_word.step()

        li = model.image_loss(rows, context, noise)  # eq. 2 -> W_p
        opt_image.zero_grad(set_to_none=True)
        li.backward()
        opt_image.step()

        # float64 tensors on the model's device: no host sync per step, the same sums as Python floats
        out = {"word": lw.detach().double(), "image": li.detach().double()}
        sums[0] = sums[0] + out["word"] * len(centre)
        sums[1] = sums[1] + out["image"] * len(centre)
        return out

    step.optimizers = [opt_word, opt_image]
    return step


def fit_l2_projection(image_features, targets, ridge: float = 0.0) -> np.ndarray:
    """The L2-distance baseline: ``W_p = argmin ‖X W_p − Y‖² (+ ridge ‖W_p‖²)``, exactly.

    ``X`` (n, k): image features of the training (image, word) pairs (one row per pair);
    ``Y`` (n, d): the fixed SGNS embeddings of the pairs' words. ``ridge = 0``: the minimum-norm
    least-squares solution (``numpy.linalg.lstsq``), also when ``n < k``.
    """
    X = np.asarray(image_features, dtype=np.float64)
    Y = np.asarray(targets, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"shapes {X.shape} and {Y.shape} do not match")
    if X.shape[0] == 0:
        raise UserError("no training (image, word) pairs for the L2 baseline")
    if ridge > 0:
        W = np.linalg.solve(X.T @ X + ridge * np.eye(X.shape[1]), X.T @ Y)
    else:
        W = np.linalg.lstsq(X, Y, rcond=None)[0]
    return W.astype(np.float32)


def fit_l2_sgd(image_features, targets, *, steps: int, batch_size: int = 16, lr: float = 0.01,
               momentum: float = 0.9, seed: int = 0, device: str | torch.device = "cpu") -> tuple[np.ndarray, float]:
    """The L2-distance baseline trained by Momentum SGD from ``W_p = 0``: minimise the batch mean of
    ``‖x W_p − y‖²`` over shuffled (image, word) pairs for ``steps`` steps (reshuffled every pass),
    by :func:`groundwords.training.fit`. Returns ``(W_p (k, d) float32, the last pass's mean loss
    per pair)``. ``device``: where the fit runs."""
    X = torch.as_tensor(np.asarray(image_features, dtype=np.float32)).to(device)
    Y = torch.as_tensor(np.asarray(targets, dtype=np.float32)).to(device)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"shapes {tuple(X.shape)} and {tuple(Y.shape)} do not match")
    if X.shape[0] == 0:
        raise UserError("no training (image, word) pairs for the L2 baseline")
    if steps < 1:
        raise ValueError(f"steps must be >= 1 (got {steps})")
    model = _Projection(X.shape[1], Y.shape[1]).to(device)
    n = X.shape[0]
    history = fit(model, {"x": X, "y": Y}, epochs=-(-steps // -(-n // batch_size)), batch_size=batch_size, lr=lr,
                  optimizer="sgd", momentum=momentum, seed=seed, max_steps=steps, progress=False)
    return model.W.detach().cpu().numpy().astype(np.float32), history[-1]["total"]


class _Projection(torch.nn.Module):
    """``W_p`` (k, d) from zero, with the L2 baseline's loss: the batch mean of ``‖x W_p − y‖²``."""

    def __init__(self, k: int, d: int):
        super().__init__()
        self.W = torch.nn.Parameter(torch.zeros(k, d))

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"total": (batch["x"] @ self.W - batch["y"]).pow(2).sum(1).mean()}
