"""Shared fixtures: planted-signal data (:mod:`groundwords.data.planted`) and an SGNS trained on it.

Session-scoped, so every test module reuses one draw and one SGNS run:

* ``planted``, ``planted_files``, ``planted_sgns``: the default data set (``planted.make(seed=0)``;
  ``GROUNDWORDS_PLANTED_SEED=s`` draws another one, to check that the tests' margins hold),
  ``text_cue = 0``: the text says nothing about the visual classes), the files of
  ``Planted.write`` (a tmp dir), and the directory of an SGNS trained on its corpus by the
  PIXIE stage itself (``groundwords.studies.pixie.stage.train`` without visual features, ``PLANTED_TEXT``).
* ``planted_cue``, ``planted_cue_files``, ``planted_cue_sgns``: the propagation data set
  (``PLANTED_CUE``: 8 words per class, 24 hidden words, ``text_cue = 1``: every sentence also
  holds its subject's class cue word, so the text does carry the visual classes and a map
  from text to vision can generalise to the hidden words).
* ``planted_text_kw``: the skip-gram settings of both SGNS runs (``PLANTED_TEXT``), for models
  that must be trained the same way (PIXIE, V-SGNS).
"""

from __future__ import annotations

import os

import pytest

from groundwords.data import planted as planted_mod

# small and fast: ~1-2 s of SGNS on 2 cores; SGNS text rho ~0.75 on the default data
PLANTED_TEXT = dict(dim=32, window=5, negatives=5, sample=1e-3, epochs=5, lr=4e-3, batch_size=1024, seed=0,
                    threads=1, progress=False)
PLANTED_SEED = int(os.environ.get("GROUNDWORDS_PLANTED_SEED", "0"))  # another draw: check the margins' robustness
PLANTED_CUE = dict(seed=PLANTED_SEED, words_per_class=8, n_hidden=24, text_cue=1.0)


def _sgns(files, out_dir):
    from groundwords.studies.pixie.stage import train

    train(files["corpus"], files["vocab"], None, out_dir, **PLANTED_TEXT)
    return out_dir


@pytest.fixture(scope="session")
def planted_text_kw():
    return dict(PLANTED_TEXT)


@pytest.fixture(scope="session")
def planted():
    return planted_mod.make(seed=PLANTED_SEED)


@pytest.fixture(scope="session")
def planted_files(planted, tmp_path_factory):
    return planted.write(tmp_path_factory.mktemp("planted"))


@pytest.fixture(scope="session")
def planted_sgns(planted_files, tmp_path_factory):
    return _sgns(planted_files, tmp_path_factory.mktemp("planted_sgns"))


@pytest.fixture(scope="session")
def planted_cue():
    return planted_mod.make(**PLANTED_CUE)


@pytest.fixture(scope="session")
def planted_cue_files(planted_cue, tmp_path_factory):
    return planted_cue.write(tmp_path_factory.mktemp("planted_cue"))


@pytest.fixture(scope="session")
def planted_cue_sgns(planted_cue_files, tmp_path_factory):
    return _sgns(planted_cue_files, tmp_path_factory.mktemp("planted_cue_sgns"))
