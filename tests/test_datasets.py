"""The embedded OpenMoji dataset: real images, emoji-name captions, a valid source file."""

import numpy as np
from PIL import Image

from groundwords.data.datasets import build_openmoji, openmoji_items
from groundwords.data.manifest import parse_source


def test_openmoji_items_have_names_and_aliases():
    items = openmoji_items()
    assert len(items) > 1000
    by_char = {e: caps for e, _, caps in items}
    assert by_char["\U0001F436"] == ["dog face", "dog"]


def test_build_openmoji_renders_real_images(tmp_path):
    tsv = build_openmoji(tmp_path, size=64, limit=30)
    df = parse_source(tsv)
    assert (df["status"] == "ok").all() and len(df) >= 30
    paths = sorted((tmp_path / "images").glob("*.png"))
    assert len(paths) == 30
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in paths[:10]]
    assert all(a.shape == (64, 64, 3) for a in arrays)
    assert all(len(np.unique(a.reshape(-1, 3), axis=0)) > 5 for a in arrays)  # drawn, not blank
    assert len({a.tobytes() for a in arrays}) == 10  # distinct glyphs, no .notdef boxes
