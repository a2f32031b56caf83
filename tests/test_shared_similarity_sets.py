"""The real benchmark files in ../shared/benchmarks/word-sim (skipped when ../shared is absent).

That folder holds data/word-sim of github.com/mfaruqui/eval-word-vectors at commit 94b3dd9,
the registry's canonical source.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
WORD_SIM = SHARED / "benchmarks" / "word-sim"
if not WORD_SIM.is_dir():
    pytest.skip(f"{WORD_SIM} not present", allow_module_level=True)

from groundwords.evaluation import sets as bm  # noqa: E402

pytestmark = pytest.mark.shared

# pair counts as documented by eval-word-vectors (VERB-143 really has 144 pairs)
EXPECTED_PAIRS = {
    "EN-MC-30.txt": 30, "EN-MEN-TR-3k.txt": 3000, "EN-MTurk-287.txt": 287, "EN-MTurk-771.txt": 771,
    "EN-RG-65.txt": 65, "EN-RW-STANFORD.txt": 2034, "EN-SIMLEX-999.txt": 999,
    "EN-SimVerb-3500.txt": 3500, "EN-VERB-143.txt": 144, "EN-WS-353-ALL.txt": 353,
    "EN-WS-353-REL.txt": 252, "EN-WS-353-SIM.txt": 203, "EN-YP-130.txt": 130,
}


def test_every_shared_file_is_expected():
    assert sorted(p.name for p in WORD_SIM.iterdir() if p.is_file()) == sorted(EXPECTED_PAIRS)


@pytest.mark.parametrize("filename", sorted(EXPECTED_PAIRS))
def test_parses_with_documented_pair_count(filename):
    df = bm.read_pairs(WORD_SIM / filename)
    assert len(df) == EXPECTED_PAIRS[filename]
    assert df["score"].notna().all()
    assert (df["word1"].str.len() > 0).all() and (df["word2"].str.len() > 0).all()


@pytest.mark.parametrize("name", sorted(bm.BENCHMARKS))
def test_registry_sha256_and_count_match_shared_copy(name):
    b = bm.BENCHMARKS[name]
    path = WORD_SIM / b.filename
    assert bm.sha256_file(path) == b.sha256
    assert len(bm.read_pairs(path)) == b.n_pairs == EXPECTED_PAIRS[b.filename]
    assert bm.resolve(name, path=path) == path


@pytest.mark.parametrize("name", ["ws353", "simlex999"])
def test_packaged_copy_has_the_same_pairs(name):
    shared = bm.read_pairs(WORD_SIM / bm.BENCHMARKS[name].filename)
    packaged = bm.read_pairs(bm.BENCHMARKS[name].packaged_path())
    assert shared.values.tolist() == packaged.values.tolist()


def test_cache_accepts_shared_copy(tmp_path):
    """A cache directory filled with the canonical files serves MEN offline."""
    (tmp_path / "EN-MEN-TR-3k.txt").write_bytes((WORD_SIM / "EN-MEN-TR-3k.txt").read_bytes())
    assert bm.resolve("men", cache_dir=tmp_path) == tmp_path / "EN-MEN-TR-3k.txt"


def test_pixie_settings_on_the_papers_benchmarks(tmp_path):
    """PIXIE Table 2's two settings on its eight shared benchmarks (CRLF, no final newline and all):
    the visual setting equals gensim's evaluate_word_pairs on the file restricted to visual pairs."""
    import numpy as np
    from gensim.models import KeyedVectors

    from groundwords.files import write_features
    from groundwords.studies.pixie.wordsim import wordsim
    from groundwords.training import write_word2vec_text

    names = ["simlex999", "ws353_sim", "rg65", "mc30", "men", "ws353_rel", "mturk287", "ws353"]
    files = {n: WORD_SIM / bm.BENCHMARKS[n].filename for n in names}
    words = sorted({w.lower() for f in files.values() for c in ("word1", "word2") for w in bm.read_pairs(f)[c]})
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(len(words), 8)).astype(np.float32)
    write_word2vec_text(tmp_path / "v.txt", words, vecs)
    visual = sorted(rng.choice(words, size=len(words) // 2, replace=False))
    write_features(tmp_path / "vis.h5", visual, np.ones((len(visual), 3), np.float32))
    long = wordsim({"M": tmp_path / "v.txt"}, files, tmp_path / "vis.h5").set_index(["benchmark", "setting"])
    kv = KeyedVectors.load_word2vec_format(str(tmp_path / "v.txt"))
    vis = set(visual)
    for n, f in files.items():
        df = bm.read_pairs(f)
        keep = df[df["word1"].str.lower().isin(vis) & df["word2"].str.lower().isin(vis)]
        assert long.loc[(n, "all"), "pairs_total"] == bm.BENCHMARKS[n].n_pairs
        assert long.loc[(n, "visual"), "pairs_in_setting"] == len(keep)
        (tmp_path / f"{n}.tsv").write_text("".join(f"{a}\t{b}\t{s}\n" for a, b, s in keep.itertuples(index=False)))
        _, spearman, _ = kv.evaluate_word_pairs(str(tmp_path / f"{n}.tsv"), restrict_vocab=len(words),
                                                 case_insensitive=True, dummy4unknown=False)
        assert long.loc[(n, "visual"), "rho"] == pytest.approx(spearman.statistic, abs=1e-9)
