"""L2 normalisation of vectors, the one copy (NumPy; the models use ``torch.nn.functional.normalize``)."""

from __future__ import annotations

import numpy as np


def unit_rows(x: np.ndarray, axis: int = -1, eps: float | None = None) -> np.ndarray:
    """``x`` divided by its L2 norm along ``axis``, in ``x``'s dtype.

    ``eps=None``: a vector of norm 0 is left as it is (divided by 1), a NaN stays NaN.
    ``eps``: every vector is divided by ``max(‖x‖, eps)`` (a zero vector stays zero).
    """
    n = np.linalg.norm(x, axis=axis, keepdims=True)
    if eps is None:
        return x / np.where(n > 0, n, 1.0)
    return x / np.maximum(n, eps)
