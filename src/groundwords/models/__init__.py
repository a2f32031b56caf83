"""Word-embedding models trained by :mod:`groundwords.train`.

A model is an ``nn.Module`` with

* ``loss(batch: dict[str, Tensor]) -> dict[str, Tensor]``: ``"total"`` (differentiable, what
  is minimised) plus named per-batch component means; an optional ``"n_<name>"`` entry gives
  the number of examples component ``<name>`` averages over (default: the batch size);
* ``word_vectors() -> Tensor`` (V, dim): the embeddings to save;
* ``sparse_parameters() -> list[Parameter]``: parameters with sparse gradients (may be empty).

Models: :class:`WIELD` (image as a prediction *target*, the paper's §3.4) and
:class:`ImageInputCBOW` (image as an *input*, the paper's §5.1 / Table 1).
"""

from .imginput import ImageInputCBOW
from .wield import WIELD

__all__ = ["WIELD", "ImageInputCBOW"]
