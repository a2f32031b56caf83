"""Attach images to words, and split the images into train / validation / test.

Two sources:

``openmoji`` (offline default)
    the OpenMoji images rendered by :mod:`groundwords.data.datasets` (``<images-dir>/<stem>.png``).
    Each image is attached to every **content word** of its emoji's CLDR name: the name is
    tokenized with :func:`groundwords.text.vocab.tokenize` and the words of ``STOP_WORDS``
    (function words and emoji-name boilerplate such as "button") are dropped, so
    "dog face" -> dog, face and "beach with umbrella" -> beach, umbrella. ``aliases=True`` also
    uses the emoji's aliases ("dog"). Emoji whose PNG is missing are skipped (and counted).
``folder``
    an ImageNet-style tree ``<root>/<class>/<images>`` (images found recursively below each
    class folder; extensions in ``IMAGE_EXTENSIONS``). The class name is the folder name, or
    the first comma-separated name given for that folder by a ``--class-names`` file (lines
    ``<folder> <name>[, <synonym>...]``, the format of ImageNet's ``LOC_synset_mapping.txt``).
    It is lower-cased, ``_`` and ``-`` become spaces and it is tokenized; a one-token name is
    the word, a multi-token name gives its **last token** (the head noun of an English noun
    compound: "great white shark" -> shark, "golden retriever" -> retriever).
    With ``wordnet`` (``--wordnet``, needs NLTK and its WordNet data) a folder named like a
    synset id (``n02085620``) is instead resolved through WordNet: its images attach to the
    synset's lemma names (each by the same one-word / head-noun rule: "hot_dog" -> dog) and to
    the lemma names of its hypernyms up to ``wordnet_depth`` (``--wordnet-depth``, default 1)
    levels up, so, as in the paper, images of a hyponym also serve the more general word
    ("images of chihuahua serve dog"). Other folders keep the name rule.

Image ids: the file stem (openmoji) or the image's path relative to the root (folder); with
``manifest_ids`` (``--manifest-ids``) the id the manifest stage gives a local image instead
(:func:`groundwords.data.manifest.image_id` of its path as the source TSV writes it: relative to
the TSV's folder, which for ``openmoji`` is the parent of ``--images-dir`` and for ``folder``
the root), so that an encodings HDF5 made by the main pipeline from the same image files can
be used as it is.

Split: the **images** (not the pairs) are split, so an image attached to several words is in
one split only: the unique image ids are sorted, permuted with ``numpy.random.default_rng(seed)``,
and the first ``round(test_frac·n)`` go to ``test``, the next ``round(val_frac·n)`` to
``validation``, the rest to ``train`` (the paper: 14,000 / 1,000 / 1,000, i.e.
``val_frac = test_frac = 0.0625``, the defaults).

Output: TSV ``word, image_id, path, split`` (one row per attachment, sorted by image id, then
word), written atomically; optionally an images table ``id, path, status`` (one row per image,
status ``ok``) that the encode stage (:mod:`groundwords.data.encode`) reads, giving an HDF5 whose
ids are these image ids.

CLI::

    python -m groundwords.grounding.word_images openmoji --images-dir DIR --out T [--val-frac F]
        [--test-frac F] [--seed S] [--aliases] [--limit N] [--images-out I]
    python -m groundwords.grounding.word_images folder --root DIR --out T [--class-names F]
        [--wordnet [--wordnet-depth D]] [...]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd

from groundwords.cli import UserError, log, run_cli, setup_logging
from groundwords.files import read_tsv, write_tsv
from groundwords.text.vocab import tokenize

COLUMNS = ["word", "image_id", "path", "split"]
SPLITS = ("train", "validation", "test")
STOP_WORDS = frozenset({
    "a", "an", "and", "as", "at", "by", "for", "from", "in", "into", "of", "on", "or", "the",
    "to", "with", "button",
})
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_VAL_FRAC = DEFAULT_TEST_FRAC = 1000 / 16000
DEFAULT_WORDNET_DEPTH = 1
SYNSET_FOLDER = re.compile(r"n(\d{8})")


def content_words(text: str, stop_words=STOP_WORDS) -> list[str]:
    """Distinct tokens of ``text`` that are not stop words, in order of appearance."""
    out: list[str] = []
    for t in tokenize(text):
        if t not in stop_words and t not in out:
            out.append(t)
    return out


def class_word(name: str) -> str | None:
    """The word a class name attaches to: the name if one token, else its last token (head noun)."""
    toks = tokenize(name.lower().replace("_", " ").replace("-", " "))
    return toks[-1] if toks else None


# ---------------------------------------------------------------------------------------------
# Sources


def openmoji_pairs(images_dir, aliases: bool = False, limit: int = 0, stop_words=STOP_WORDS) -> pd.DataFrame:
    """(word, image_id, path) rows of the rendered OpenMoji images (see the module docstring)."""
    from groundwords.data.datasets import _caption, openmoji_items

    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise UserError(f"OpenMoji images folder not found: {images_dir} "
                        "(render it with: python -m groundwords.data.datasets openmoji --out-dir DIR)")
    rows, missing = [], 0
    for _emoji, stem, caps in openmoji_items(aliases=aliases, limit=limit):
        path = images_dir / f"{stem}.png"
        if not path.is_file():
            missing += 1
            continue
        words: list[str] = []
        for cap in caps:
            words += [w for w in content_words(_caption(cap), stop_words) if w not in words]
        rows += [(w, stem, str(path)) for w in words]
    if missing:
        log.warning("openmoji: %d emoji have no image in %s (skipped)", missing, images_dir)
    return pd.DataFrame(rows, columns=COLUMNS[:3])


def read_class_names(path) -> dict[str, str]:
    """``{folder: first name}`` from lines ``<folder> <name>[, <synonym>...]``."""
    names = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise UserError(f"{path}:{lineno}: expected '<folder> <name>[, <synonym>...]'")
        names[parts[0]] = parts[1].split(",")[0].strip()
    return names


def load_wordnet():
    """NLTK's WordNet reader, or a UserError saying how to get it."""
    hint = ("install it with: pip install nltk && python -m nltk.downloader wordnet "
            "(or set NLTK_DATA to a folder that has the wordnet data); without --wordnet, "
            "folders are mapped by their name (see --class-names)")
    try:
        from nltk.corpus import wordnet as wn
    except ImportError:
        raise UserError(f"--wordnet needs the nltk package, which is not installed: {hint}") from None
    try:
        wn.synset_from_pos_and_offset  # the lazy corpus loader reads the data here
    except LookupError:
        raise UserError(f"--wordnet needs NLTK's wordnet data, which was not found: {hint}") from None
    return wn


def wordnet_words(wordnet, offset: int, depth: int = DEFAULT_WORDNET_DEPTH, pos: str = "n") -> list[str]:
    """Words of the synset ``pos``/``offset`` and of its hypernyms up to ``depth`` levels up.

    ``wordnet`` is anything with NLTK's ``synset_from_pos_and_offset``; its synsets need
    ``lemma_names()`` and ``hypernyms()`` (and, if present, ``instance_hypernyms()``).
    """
    level, seen, words = [wordnet.synset_from_pos_and_offset(pos, offset)], set(), []
    for _ in range(depth + 1):
        next_level = []
        for syn in level:
            if syn in seen:
                continue
            seen.add(syn)
            for lemma in syn.lemma_names():
                w = class_word(lemma)
                if w is not None and w not in words:
                    words.append(w)
            next_level += list(syn.hypernyms()) + list(getattr(syn, "instance_hypernyms", list)())
        level = next_level
    return words


def folder_pairs(root, class_names: dict[str, str] | None = None, wordnet=None,
                 wordnet_depth: int = DEFAULT_WORDNET_DEPTH) -> pd.DataFrame:
    """(word, image_id, path) rows of an ImageNet-style ``<root>/<class>/<images>`` tree.

    ``wordnet``: None/False (folders mapped by name), True (NLTK's WordNet, see
    :func:`load_wordnet`) or a WordNet-like object (see :func:`wordnet_words`).
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"image folder not found: {root}")
    if wordnet_depth < 0:
        raise UserError(f"wordnet depth must be >= 0 (got {wordnet_depth})")
    if wordnet is True:
        wordnet = load_wordnet()
    rows, unnamed = [], []
    for cls in sorted(p for p in root.iterdir() if p.is_dir()):
        words = None
        synset = SYNSET_FOLDER.fullmatch(cls.name) if wordnet else None
        if synset:
            try:
                words = wordnet_words(wordnet, int(synset.group(1)), wordnet_depth)
            except Exception as e:  # NLTK's WordNetError: no such synset
                log.warning("%s: not found in WordNet (%s); mapped by name", cls.name, e)
        if words is None:
            word = class_word((class_names or {}).get(cls.name, cls.name).split(",")[0])
            words = [word] if word is not None else []
        if not words:
            unnamed.append(cls.name)
            continue
        for f in sorted(cls.rglob("*")):
            if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
                rows += [(w, f.relative_to(root).as_posix(), str(f)) for w in words]
    if unnamed:
        log.warning("%d class folders have no usable name (skipped): %s", len(unnamed), ", ".join(unnamed[:5]))
    return pd.DataFrame(rows, columns=COLUMNS[:3])


# ---------------------------------------------------------------------------------------------
# Split and output


def split_images(image_ids, val_frac: float = DEFAULT_VAL_FRAC, test_frac: float = DEFAULT_TEST_FRAC,
                 seed: int = 0, *, every_split: bool = False) -> dict[str, str]:
    """``{image_id: split}`` (split names :data:`SPLITS`): a seeded split of the distinct image ids.

    The ids are sorted and permuted with ``numpy.random.default_rng(seed)``; the first
    ``round(test_frac·n)`` go to ``test``, the next ``round(val_frac·n)`` to ``validation``, the
    rest to ``train``. The one split of the project: the word-image table and PIXIE's retrieval
    images. ``every_split=True`` (retrieval): ``test_frac`` must be > 0 and ``test``, ``train``
    (and ``validation`` when ``val_frac > 0``) must each get at least one image.
    """
    for name, f in (("val_frac", val_frac), ("test_frac", test_frac)):
        if not (0 <= f < 1):
            raise UserError(f"{name} must be in [0, 1) (got {f})")
    if val_frac + test_frac >= 1:
        raise UserError(f"val_frac + test_frac must be < 1 (got {val_frac + test_frac})")
    if every_split and test_frac <= 0:
        raise UserError(f"test_frac must be > 0 (got {test_frac})")
    ids = np.array(sorted(set(map(str, image_ids))), dtype=object)
    n = len(ids)
    n_test, n_val = int(round(test_frac * n)), int(round(val_frac * n))
    if every_split and (n_test < 1 or n - n_test - n_val < 1 or (val_frac > 0 and n_val < 1)):
        raise UserError(f"{n} images cannot be split into train / validation / test with fractions "
                        f"{1 - val_frac - test_frac:g} / {val_frac:g} / {test_frac:g} (too few images)")
    perm = np.random.default_rng(seed).permutation(n)
    split = np.full(n, "train", dtype=object)
    split[perm[:n_test]] = "test"
    split[perm[n_test:n_test + n_val]] = "validation"
    return dict(zip(ids.tolist(), split.tolist()))


def with_split(pairs: pd.DataFrame, val_frac: float = DEFAULT_VAL_FRAC, test_frac: float = DEFAULT_TEST_FRAC,
               seed: int = 0) -> pd.DataFrame:
    """The attachment table with a ``split`` column, deduplicated and sorted (image id, word)."""
    pairs = pairs.drop_duplicates(["word", "image_id"]).astype({"word": str, "image_id": str, "path": str})
    if pairs.empty:
        raise UserError("no (word, image) pairs found")
    splits = split_images(pairs["image_id"], val_frac, test_frac, seed)
    out = pairs.assign(split=pairs["image_id"].map(splits))
    return out.sort_values(["image_id", "word"], kind="stable").reset_index(drop=True)[COLUMNS]


def use_manifest_ids(pairs: pd.DataFrame, source_dir) -> pd.DataFrame:
    """Replace the image ids by the manifest stage's ids of the (local) image paths: the hash of
    each path as a ``caption<TAB>path`` source in ``source_dir`` writes it (relative to that
    folder, '/'-separated; :func:`groundwords.data.manifest.image_id`)."""
    from groundwords.data.manifest import image_id

    base = Path(source_dir).resolve()

    def written(p: str) -> str:
        try:
            return Path(p).resolve().relative_to(base).as_posix()
        except ValueError:
            raise UserError(f"{p} is not under the manifest source folder {base}") from None

    ids = {p: image_id(written(p)) for p in pairs["path"].unique()}
    return pairs.assign(image_id=pairs["path"].map(ids))


def read_word_images(path) -> pd.DataFrame:
    """Read a word-image table written by this module (checks the columns and splits)."""
    if not Path(path).is_file():
        raise UserError(f"word-image table not found: {path}")
    df = read_tsv(path, dtype={c: str for c in COLUMNS})
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {missing} (expected {', '.join(COLUMNS)})")
    bad = sorted(set(df["split"]) - set(SPLITS))
    if bad:
        raise UserError(f"{path}: unknown split(s) {bad} (expected {', '.join(SPLITS)})")
    if df.groupby("image_id")["split"].nunique().max() > 1:
        raise UserError(f"{path}: an image id appears in more than one split")
    return df


def write_word_images(table: pd.DataFrame, out, images_out=None) -> dict:
    write_tsv(table, out)
    if images_out:
        imgs = table.drop_duplicates("image_id")[["image_id", "path"]].rename(columns={"image_id": "id"})
        write_tsv(imgs.assign(status="ok"), images_out)
    per_split = table.drop_duplicates("image_id")["split"].value_counts()
    stats = {"pairs": len(table), "words": int(table["word"].nunique()),
             "images": int(table["image_id"].nunique()),
             **{f"images_{s}": int(per_split.get(s, 0)) for s in SPLITS}}
    log.info("word images -> %s: %d pairs, %d words, %d images (train %d / validation %d / test %d)", out,
             stats["pairs"], stats["words"], stats["images"], stats["images_train"],
             stats["images_validation"], stats["images_test"])
    return stats


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m groundwords.grounding.word_images", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("openmoji", help="OpenMoji images -> content words of the emoji names")
    o.add_argument("--images-dir", required=True, help="folder of <stem>.png (python -m groundwords.data.datasets openmoji)")
    o.add_argument("--aliases", action="store_true", help="also attach the words of the emoji aliases")
    o.add_argument("--limit", type=int, default=0, help="first N emoji only (0: all)")
    f = sub.add_parser("folder", help="ImageNet-style <root>/<class>/<images> tree")
    f.add_argument("--root", required=True)
    f.add_argument("--class-names", help="lines '<folder> <name>[, <synonym>...]' (e.g. LOC_synset_mapping.txt)")
    f.add_argument("--wordnet", action="store_true",
                   help="map synset folders (n02085620) through NLTK WordNet: lemma names + hypernyms' lemmas")
    f.add_argument("--wordnet-depth", type=int, default=DEFAULT_WORDNET_DEPTH,
                   help="hypernym levels whose lemma names also get the images (with --wordnet; 0: none)")
    for q in (o, f):
        q.add_argument("--out", required=True, help="TSV word, image_id, path, split")
        q.add_argument("--images-out", help="also write an images table (id, path, status) for the encode stage")
        q.add_argument("--val-frac", type=float, default=DEFAULT_VAL_FRAC)
        q.add_argument("--test-frac", type=float, default=DEFAULT_TEST_FRAC)
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--hide", type=int, default=0,
                       help="pixie.hide: fail now (before encoding) unless the table has more words than this")
        q.add_argument("--manifest-ids", action="store_true",
                       help="image ids = the manifest stage's ids of the image files (reuse its encodings)")
    a = p.parse_args(argv)
    setup_logging()
    if a.cmd == "openmoji":
        pairs = openmoji_pairs(a.images_dir, aliases=a.aliases, limit=a.limit)
    else:
        pairs = folder_pairs(a.root, read_class_names(a.class_names) if a.class_names else None,
                             wordnet=a.wordnet, wordnet_depth=a.wordnet_depth)
    if a.manifest_ids:  # the openmoji source TSV lies beside its images/ folder
        pairs = use_manifest_ids(pairs, Path(a.images_dir).parent if a.cmd == "openmoji" else a.root)
    n_words = pairs["word"].nunique()
    if a.hide and a.hide >= n_words:  # visual words can only be fewer (vocabulary, failed images)
        raise UserError(f"pixie.hide = {a.hide}, but the images give only {n_words} words (and fewer once limited to "
                        f"the vocabulary and the images that encode): set pixie.hide below {n_words}")
    table = with_split(pairs, a.val_frac, a.test_frac, a.seed)
    write_word_images(table, a.out, a.images_out)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
