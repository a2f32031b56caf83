"""The one image split (:func:`groundwords.grounding.word_images.split_images`) assigns every image
as the two former copies did (word-image table, PIXIE's retrieval split), for every seed."""

from __future__ import annotations

import numpy as np
import pytest

from groundwords.cli import UserError
from groundwords.grounding.word_images import SPLITS, split_images


def _old_word_images(ids, val_frac, test_frac, seed):  # the word-image table's former copy
    ids = np.array(sorted(set(map(str, ids))), dtype=object)
    n = len(ids)
    perm = np.random.default_rng(seed).permutation(n)
    n_test, n_val = int(round(test_frac * n)), int(round(val_frac * n))
    split = np.full(n, "train", dtype=object)
    split[perm[:n_test]] = "test"
    split[perm[n_test:n_test + n_val]] = "validation"
    return dict(zip(ids.tolist(), split.tolist()))


def _old_retrieval(ids, val_frac, test_frac, seed):  # PIXIE retrieval's former copy ("val")
    ids = np.asarray(list(ids), dtype=object)
    n = len(ids)
    n_test, n_val = int(round(test_frac * n)), int(round(val_frac * n))
    order = np.argsort(ids.astype(str), kind="stable")
    perm = order[np.random.default_rng(seed).permutation(n)]
    split = np.full(n, "train", dtype=object)
    split[perm[:n_test]] = "test"
    split[perm[n_test:n_test + n_val]] = "val"
    return split


@pytest.mark.parametrize("seed", [0, 1, 5, 123])
@pytest.mark.parametrize("fracs", [(0.0625, 0.0625), (0.1, 0.1), (0.2, 0.25), (0.0, 0.3)])
def test_split_matches_both_former_copies(seed, fracs):
    rng = np.random.default_rng(99)
    ids = [f"img{j}" for j in rng.permutation(157)] + ["Zebra", "a/b.png", "ä"]  # unsorted, mixed
    val, test = fracs
    got = split_images(ids, val, test, seed)
    assert got == _old_word_images(ids, val, test, seed)
    old = _old_retrieval(ids, val, test, seed)
    assert [got[i] for i in ids] == ["validation" if s == "val" else s for s in old]
    assert set(got.values()) <= set(SPLITS)


def test_split_pinned():
    got = split_images([f"i{k}" for k in range(10)], 0.2, 0.3, seed=0)
    assert got == {"i0": "train", "i1": "train", "i2": "test", "i3": "validation", "i4": "test",
                   "i5": "train", "i6": "test", "i7": "validation", "i8": "train", "i9": "train"}


def test_every_split_needs_images_in_every_split():
    assert split_images(["a", "b"], 0.0, 0.0) == {"a": "train", "b": "train"}
    with pytest.raises(UserError, match="test_frac must be > 0"):
        split_images(["a", "b"], 0.0, 0.0, every_split=True)
    with pytest.raises(UserError, match="too few images"):
        split_images(["a", "b", "c"], 0.1, 0.4, every_split=True)  # no validation image
    with pytest.raises(UserError, match="< 1"):
        split_images(["a"], 0.5, 0.5)
