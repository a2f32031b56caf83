"""The one L2 normalisation (:func:`groundwords.vectors.unit_rows`) gives, bit for bit, what the
copies it replaced gave (neighbours, matching, IESG's image norm, PIXIE's concatenations)."""

from __future__ import annotations

import numpy as np
import pytest

from groundwords.vectors import unit_rows


@pytest.fixture
def x():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 5)).astype(np.float32)
    x[2] = 0.0
    x[4] *= 1e-20  # a tiny row: eps matters
    return x


def test_eps_matches_the_former_copies(x):
    old = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    got = unit_rows(x, axis=1, eps=1e-12)
    assert got.dtype == x.dtype and got.tobytes() == old.tobytes()
    items = np.stack([x, x[::-1]], 0)
    old3 = items / np.maximum(np.linalg.norm(items, axis=2, keepdims=True), 1e-12)
    assert unit_rows(items, axis=2, eps=1e-12).tobytes() == old3.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_rows_match_the_former_copy(x, dtype):
    v = x.astype(dtype)
    n = np.linalg.norm(v, axis=1, keepdims=True)
    old = (v / np.where(n > 0, n, 1.0)).astype(np.float32)
    assert unit_rows(v, axis=1).astype(np.float32).tobytes() == old.tobytes()
    got = unit_rows(v, axis=1)
    assert (got[2] == 0).all()
    np.testing.assert_allclose(np.linalg.norm(np.delete(got, 2, 0), axis=1), 1.0, rtol=1e-5)
