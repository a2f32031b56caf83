"""Word-embedding models, all trained by :func:`groundwords.training.fit`.

A model is an ``nn.Module`` with

* ``loss(batch: dict[str, Tensor]) -> dict[str, Tensor]``: ``"total"`` (differentiable, what
  is minimised) plus named per-batch component means; an optional ``"n_<name>"`` entry gives
  the number of examples component ``<name>`` averages over (default: the batch size);
* ``word_vectors() -> Tensor`` (V, dim): the embeddings to save;
* ``sparse_parameters() -> list[Parameter]``: parameters with sparse gradients (may be empty).

Models: :class:`WIELD` (image as a prediction *target*, WIELD §3.4),
:class:`ImageInputCBOW` (image as an *input*, WIELD §5.1 / Table 1), :class:`SGNS` (skip-gram
with negative sampling: IESG's pretraining and PIXIE's text part), :class:`IESG` (image-enhanced
skip-gram, paper 001), :class:`PIXIE` (SGNS coupled to a VAE over visual features, paper 002)
and PIXIE's baselines :class:`VSGNS` (Lazaridou et al. 2015's multimodal skip-gram) and
:class:`Imagination` (Collell et al. 2017's text-to-visual map, IV-SGNS).

:class:`VSE` (the GRU sentence / linear image retrieval model of PIXIE's Table 6) has ``loss`` only;
:func:`groundwords.studies.pixie.retrieval.fit_vse` trains it through ``fit`` with its own step (step
learning-rate schedule, gradient clipping), as :mod:`groundwords.studies.iesg.fitting` does for
IESG's alternating updates.
"""

from groundwords.models.iesg import IESG
from groundwords.models.imginput import ImageInputCBOW
from groundwords.models.ivsgns import Imagination
from groundwords.models.pixie import PIXIE
from groundwords.models.sgns import SGNS
from groundwords.models.vse import VSE
from groundwords.models.vsgns import VSGNS
from groundwords.models.wield import WIELD

__all__ = ["WIELD", "ImageInputCBOW", "SGNS", "IESG", "PIXIE", "VSGNS", "Imagination", "VSE"]
