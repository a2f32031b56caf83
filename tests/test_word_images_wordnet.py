"""The optional WordNet mapping of wordimages' folder mode (a fake WordNet; NLTK is optional)."""

import sys

import pytest

from groundwords.cli import run_cli
from groundwords.grounding.word_images import folder_pairs, main, with_split, wordnet_words


class FakeSynset:
    def __init__(self, lemmas, hypernyms=()):
        self._lemmas, self._hypernyms = list(lemmas), list(hypernyms)

    def lemma_names(self):
        return self._lemmas

    def hypernyms(self):
        return self._hypernyms


class FakeWordNet:
    """animal <- canine <- dog <- chihuahua, plus hot_dog (no hypernym)."""

    def __init__(self):
        animal = FakeSynset(["animal", "animate_being"])
        canine = FakeSynset(["canine", "canid"], [animal])
        dog = FakeSynset(["dog", "domestic_dog", "Canis_familiaris"], [canine])
        self.synsets = {2084071: dog, 2085620: FakeSynset(["Chihuahua"], [dog]), 7697537: FakeSynset(["hot_dog"])}

    def synset_from_pos_and_offset(self, pos, offset):
        assert pos == "n"
        return self.synsets[offset]


def make_tree(root):
    for folder, n in (("n02085620", 3), ("n02084071", 2), ("n07697537", 1), ("plain_cats", 1)):
        (root / folder).mkdir(parents=True)
        for i in range(n):
            (root / folder / f"{folder}_{i}.JPEG").write_bytes(b"x")
    return root


def test_wordnet_words_depth():
    wn = FakeWordNet()
    assert wordnet_words(wn, 2085620, depth=0) == ["chihuahua"]
    assert wordnet_words(wn, 2085620, depth=1) == ["chihuahua", "dog", "familiaris"]
    assert "canine" in wordnet_words(wn, 2085620, depth=2)
    assert wordnet_words(wn, 7697537) == ["dog"]  # multi-word lemma: head noun


def test_folder_wordnet_hyponym_images_serve_the_hypernym(tmp_path):
    pairs = folder_pairs(make_tree(tmp_path / "tree"), wordnet=FakeWordNet())
    assert not pairs.duplicated(["word", "image_id"]).any()
    by_word = pairs.groupby("word")["image_id"].apply(set)
    chihuahua = {f"n02085620/n02085620_{i}.JPEG" for i in range(3)}
    assert by_word["chihuahua"] == chihuahua
    assert chihuahua < by_word["dog"]  # depth 1: chihuahua images also serve dog
    dog_own = {f"n02084071/n02084071_{i}.JPEG" for i in range(2)}
    assert by_word["canine"] == by_word["canid"] == dog_own  # chihuahua's depth-2 hypernym: not its images
    assert "animal" not in by_word
    assert by_word["cats"] == {"plain_cats/plain_cats_0.JPEG"}  # non-synset folder: name rule
    assert len(by_word["dog"]) == 3 + 2 + 1  # chihuahua + dog (dog, domestic_dog once) + hot_dog
    table = with_split(pairs, val_frac=0.25, test_frac=0.25, seed=1)
    assert (table.groupby("image_id")["split"].nunique() == 1).all()  # split by image
    assert table["image_id"].nunique() == 7
    assert "canine" in set(folder_pairs(tmp_path / "tree", wordnet=FakeWordNet(), wordnet_depth=2)["word"])


def test_wordnet_without_nltk_is_a_clear_user_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "nltk", None)
    monkeypatch.setitem(sys.modules, "nltk.corpus", None)
    args = ["folder", "--root", str(make_tree(tmp_path / "tree")), "--out", str(tmp_path / "wi.tsv")]
    assert run_cli(main, args + ["--wordnet"]) == 2
    err = capsys.readouterr().err
    assert "nltk" in err and "wordnet" in err and "--class-names" in err
    assert not (tmp_path / "wi.tsv").exists()
    assert run_cli(main, args) == 0  # without --wordnet, folders are mapped by name


@pytest.mark.parametrize("depth", [-1])
def test_negative_depth_rejected(tmp_path, depth):
    args = ["folder", "--root", str(make_tree(tmp_path / "tree")), "--out", str(tmp_path / "wi.tsv")]
    assert run_cli(main, args + ["--wordnet", "--wordnet-depth", str(depth)]) == 2


def test_too_large_pixie_hide_fails_before_encoding(tmp_path, capsys):
    """The word-image table is the first place that knows how many words have images: a
    pixie.hide that cannot leave one visible fails there, naming the config key."""
    root = make_tree(tmp_path / "tree")  # 4 folders -> 4 words
    argv = ["folder", "--root", str(root), "--out", str(tmp_path / "wi.tsv")]
    assert run_cli(main, argv + ["--hide", "4"]) == 2
    err = capsys.readouterr().err
    assert "pixie.hide = 4" in err and "only 4 words" in err and "Traceback" not in err
    assert not (tmp_path / "wi.tsv").exists()
    assert run_cli(main, argv + ["--hide", "3"]) == 0
