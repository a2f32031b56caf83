"""WIELD figures: loss curves (Fig. 2), similarity scatter (Fig. 3), CLI; checked as real PNGs."""

from __future__ import annotations

import os
import runpy
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from groundwords.cli import UserError, run_cli
from groundwords.studies.wield import figures as fg


@pytest.fixture(autouse=True)
def _low_dpi(monkeypatch):
    """Render in-process figures at a lower resolution: same code paths, faster tests."""
    monkeypatch.setattr(fg, "DPI", 72)


def _assert_png(path, min_w=250, min_h=250):
    assert os.path.getsize(path) > 1000
    with Image.open(path) as im:
        assert im.format == "PNG"
        w, h = im.size
        assert w >= min_w and h >= min_h
        lo, hi = im.convert("L").getextrema()
        assert lo < hi, "image is a single colour"
    leftovers = [f for f in os.listdir(os.path.dirname(path)) if f.startswith(".")]
    assert not leftovers, f"temporary files left behind: {leftovers}"


def _loss_csv(path, gamma, epochs=20, mse_missing="zeros"):
    ep = np.arange(1, epochs + 1)
    ce = 3 + 6 * np.exp(-ep / 6)
    mse = 0.2 + 0.4 * np.exp(-ep / 4)
    if gamma == 0:
        mse = np.zeros(epochs) if mse_missing == "zeros" else np.full(epochs, np.nan)
    total = ce / (1 + gamma) + gamma / (1 + gamma) * np.nan_to_num(mse)
    df = pd.DataFrame(dict(epoch=ep, ce=ce, mse=mse, total=total, seconds=1.5, words_per_s=1e4))
    df.to_csv(path, index=False, na_rep="nan")
    return path


def _pairs(n=300, seed=0, nan_frac=0.1):
    rng = np.random.default_rng(seed)
    human = rng.random(n) * 50
    pred = np.tanh(human / 50 + rng.normal(0, 0.3, n))
    pred[rng.random(n) < nan_frac] = np.nan
    words = [f"w{i}" for i in range(n)]
    return pd.DataFrame(dict(word1=words, word2=[f"v{i}" for i in range(n)], human=human, wield=pred))


# ---------------------------------------------------------------------------------------------
# loss_curves


@pytest.mark.parametrize("mse_missing", ["zeros", "nan"])
def test_loss_curves_with_gamma0(tmp_path, mse_missing):
    runs = {f"γ={g}": _loss_csv(tmp_path / f"g{g}.csv", g, mse_missing=mse_missing) for g in (0, 10, 250)}
    out = tmp_path / "fig" / "loss.png"
    assert fg.loss_curves(runs, out, title="test") == out
    _assert_png(out, min_w=800)


def test_loss_curves_only_gamma0_and_forced_scales(tmp_path):
    runs = {"γ=0": _loss_csv(tmp_path / "g0.csv", 0)}
    for log_y in (True, False):  # "auto" is exercised by every other test
        out = tmp_path / f"loss_{log_y}.png"
        fg.loss_curves(runs, out, log_y=log_y)
        _assert_png(out)


def test_loss_curves_single_epoch_and_overwrite(tmp_path):
    runs = {"one": _loss_csv(tmp_path / "one.csv", 10, epochs=1)}
    out = tmp_path / "loss.png"
    out.write_bytes(b"old")
    fg.loss_curves(runs, out)
    _assert_png(out)


def test_loss_curves_bad_inputs(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("epoch,ce\n1,2.0\n")
    with pytest.raises(UserError, match="missing column"):
        fg.loss_curves({"x": bad}, tmp_path / "x.png")
    with pytest.raises(UserError, match="not found"):
        fg.loss_curves({"x": tmp_path / "nope.csv"}, tmp_path / "x.png")
    with pytest.raises(UserError):
        fg.loss_curves({}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------------------------------------
# similarity_scatter


def test_similarity_scatter_with_labels_and_nan(tmp_path):
    df = _pairs()
    labels = [f"{a}–{b}" for a, b in zip(df.word1, df.word2)]
    out = tmp_path / "scatter.png"
    assert fg.similarity_scatter(df.human, df.wield, out, title="t", labels=labels, n_labels=10) == out
    _assert_png(out)


def test_similarity_scatter_edge_cases(tmp_path):
    fg.similarity_scatter([1.0, 2.0], [np.nan, np.nan], tmp_path / "none.png")
    _assert_png(tmp_path / "none.png")
    fg.similarity_scatter([1.0, 2.0, 3.0], [0.1, 0.5, 0.2], tmp_path / "few.png",
                          labels=["a-b", "c-d", "e-f"], n_labels=50)
    _assert_png(tmp_path / "few.png")
    with pytest.raises(ValueError):
        fg.similarity_scatter([1.0, 2.0], [0.1], tmp_path / "bad.png")
    with pytest.raises(ValueError):
        fg.similarity_scatter([1.0, 2.0], [0.1, 0.2], tmp_path / "bad.png", labels=["x"])


def test_label_positions_spread():
    pos = fg._label_positions(100, 5)
    assert list(pos) == [0, 25, 50, 74, 99]
    assert list(fg._label_positions(3, 10)) == [0, 1, 2]
    assert fg._label_positions(0, 5).size == 0


# ---------------------------------------------------------------------------------------------
# pairs TSV and CLI


def test_read_pairs_tsv_missing_cells(tmp_path):
    p = tmp_path / "pairs.tsv"
    p.write_text("word1\tword2\thuman\tm\nnan\tnull\t1.5\t0.3\nsun\tmoon\t2\t\ncat\tdog\t3\tNaN\n")
    df = fg.read_pairs_tsv(p, "m")
    assert list(df.word1) == ["nan", "sun", "cat"]  # words are never read as missing values
    assert list(df.word2) == ["null", "moon", "dog"]
    assert df.human.tolist() == [1.5, 2.0, 3.0]
    assert df.m.iloc[0] == 0.3 and df.m.iloc[1:].isna().all()
    p.write_text("word1\tword2\thuman\tm\na\tb\t1\tzero\n")
    with pytest.raises(UserError, match=r":2: column 'm'"):
        fg.read_pairs_tsv(p, "m")
    with pytest.raises(UserError, match="missing column"):
        fg.read_pairs_tsv(p, "other")


def test_split_spec(tmp_path):
    csv = tmp_path / "a=b" / "loss.csv"
    csv.parent.mkdir()
    csv.write_text("x")
    assert fg._split_spec(f"γ=10={csv}") == ("γ=10", str(csv))
    assert fg._split_spec("g10=missing.csv") == ("g10", "missing.csv")
    with pytest.raises(UserError):
        fg._split_spec("nolabel")


def test_cli_loss_and_scatter_in_process(tmp_path):
    g0 = _loss_csv(tmp_path / "g0.csv", 0)
    g50 = _loss_csv(tmp_path / "g50.csv", 50)
    out = tmp_path / "loss.png"
    assert run_cli(fg.main, ["loss", "--out", str(out), f"γ=0={g0}", f"γ=50={g50}"]) == 0
    _assert_png(out, min_w=800)

    pairs = tmp_path / "pairs.tsv"
    _pairs().to_csv(pairs, sep="\t", index=False, na_rep="")
    out = tmp_path / "scatter.png"
    assert run_cli(fg.main, ["scatter", "--pairs", str(pairs), "--column", "wield",
                             "--out", str(out), "--n-labels", "5"]) == 0
    _assert_png(out)
    assert run_cli(fg.main, ["scatter", "--pairs", str(pairs), "--column", "nope",
                             "--out", str(tmp_path / "x.png")]) == 2
    assert run_cli(fg.main, ["loss", "--out", str(tmp_path / "x.png"), "a=" + str(g0), "a=" + str(g50)]) == 2
    assert not (tmp_path / "x.png").exists()


def test_cli_module_entry_point(tmp_path, monkeypatch):
    """``python -m groundwords.studies.wield.figures`` (run in-process with runpy: no slow re-imports)."""
    pairs = tmp_path / "pairs.tsv"
    _pairs(n=50).to_csv(pairs, sep="\t", index=False, na_rep="nan")
    out = tmp_path / "s.png"
    monkeypatch.setattr(sys, "argv", ["groundwords.studies.wield.figures", "scatter", "--pairs", str(pairs),
                                      "--column", "wield", "--out", str(out)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: module already in sys.modules
        with pytest.raises(SystemExit) as exc:
            runpy.run_module("groundwords.studies.wield.figures", run_name="__main__")
    assert exc.value.code == 0
    _assert_png(out)


def test_p1_by_frequency_plot_skips_empty_bins_as_read_from_a_tsv(tmp_path):
    """A bin without a test word has an empty P@1 cell: it is not drawn (it used to crash)."""
    from groundwords.files import read_tsv, write_tsv
    from groundwords.studies.iesg.tables import p1_by_frequency_plot

    df = pd.DataFrame({"model": ["l2"] * 3 + ["iesg"] * 3, "direction": "image_to_word",
                       "freq_lo": [1, 10, 100] * 2, "freq_hi": [10, 100, 1000] * 2, "n": [0, 5, 0] * 2,
                       "p_at_1": [np.nan, 0.4, np.nan, np.nan, 0.6, np.nan]})
    write_tsv(df, tmp_path / "fb.tsv")
    back = read_tsv(tmp_path / "fb.tsv", dtype={"model": str, "direction": str})
    assert (back["p_at_1"] == "").any()  # as Figure 3's input is read: empty strings
    out = p1_by_frequency_plot(back, tmp_path / "fig.png")
    assert out.stat().st_size > 5000
    empty = df.assign(n=0, p_at_1=np.nan)
    assert p1_by_frequency_plot(empty, tmp_path / "empty.png").stat().st_size > 5000
