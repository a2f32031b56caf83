"""Per-word averaged image encodings (``word_images.h5``).

For every vocabulary word ``w`` the output holds the mean of the RAW encoder features (as in
``encodings.h5``: e.g. 768-d ViT or 1280-d EfficientNet, not the PCA projection) over the set
of images whose caption contains ``w``:

* captions are tokenised with :func:`groundwords.text.vocab.tokenize` (the training tokenizer);
* only captions with ``status == "ok"`` (when the captions file has a ``status`` column) whose
  image ``id`` is in the features file are used;
* an image counts at most once per word: several occurrences of the word in one caption, or
  several ok captions of the same image id mentioning it, still give that image weight 1.

Only words with at least one image are written (in vocabulary order), via
:func:`groundwords.files.write_features` with ``ids`` = words, ``features`` = the means (float32),
the features file's attributes plus ``kind="word_mean_image"``, and an extra dataset
``counts`` (number of distinct images per word).

The computation is vectorised: a sparse binary word x image incidence matrix ``M`` is built
once, its rows divided by their counts, and multiplied with the feature matrix (in blocks of
images, accumulating in float64), so it scales to 100k+ captions.

CLI::

    python -m groundwords.grounding.word_features --captions T --features H5 --vocab V --out H5
"""

from __future__ import annotations

import argparse
import logging
import os

import numpy as np
import pandas as pd

from groundwords.cli import UserError, run_cli, setup_logging
from groundwords.files import read_features, read_tsv, write_features
from groundwords.text.vocab import load_vocab, tokenize

log = logging.getLogger(__name__)

BLOCK_IMAGES = 8192  # images per sparse x dense product (bounds the float64 copy of the features)


def incidence_matrix(captions: list[str], image_index: np.ndarray, vocab: list[str]) -> sp.csr_matrix:
    """Binary ``len(vocab) x n_images`` matrix: 1 where an image's caption contains the word.

    ``image_index[i]`` is the column (image) of caption ``i``; duplicates (same word twice in
    a caption, or two captions of one image) collapse to a single 1.
    """
    import scipy.sparse as sp  # here: ~0.4 s to import, and only these functions use it
    word_id = {w: i for i, w in enumerate(vocab)}
    rows: list[int] = []
    cols: list[int] = []
    for text, col in zip(captions, image_index):
        ids = {word_id[t] for t in tokenize(text) if t in word_id}
        rows.extend(ids)
        cols.extend([int(col)] * len(ids))
    n_images = int(image_index.max()) + 1 if len(image_index) else 0
    m = sp.coo_matrix((np.ones(len(rows), dtype=np.float64), (rows, cols)),
                      shape=(len(vocab), n_images)).tocsr()
    m.sum_duplicates()
    m.data[:] = 1.0  # each image counts once per word
    return m


def mean_features(incidence: sp.spmatrix, feats: np.ndarray, *,
                  sum_first: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, means, counts)``: row-normalised ``incidence @ feats`` for the rows with >= 1 image.

    ``rows`` are the indices of those rows (rows without an image are dropped); ``means[i]`` and
    ``counts[i]`` belong to row ``rows[i]``. ``incidence`` is binary (word x image column).

    Two roundings (both in float64, then float32), kept apart because the outputs depend on them:
    ``sum_first=False`` (WIELD's ``word_images.h5``): ``Σ feats / count`` accumulated over blocks of
    images, so only one block of the features is ever converted to float64;
    ``sum_first=True`` (PIXIE's features): ``(Σ feats) / count``, summed in column order.
    """
    import scipy.sparse as sp  # here: ~0.4 s to import, and only these functions use it
    counts_all = np.asarray(incidence.sum(axis=1)).ravel().astype(np.int64)
    keep = np.flatnonzero(counts_all)
    if sum_first:
        entries = incidence[keep].tocsc().tocoo()  # by column: each row's sum in column order
        sums = np.zeros((len(keep), feats.shape[1]), np.float64)
        np.add.at(sums, entries.row, np.asarray(feats, dtype=np.float64)[entries.col])
        return keep, (sums / counts_all[keep][:, None]).astype(np.float32), counts_all[keep]
    # weights[w, i] = 1 / count(w) if image i shows word w; column slices are cheap in CSC
    weights = (sp.diags(1.0 / counts_all[keep]) @ incidence[keep]).tocsc().astype(np.float64)
    acc = np.zeros((len(keep), feats.shape[1]), dtype=np.float64)
    for start in range(0, feats.shape[0], BLOCK_IMAGES):
        stop = start + BLOCK_IMAGES
        acc += weights[:, start:stop] @ np.asarray(feats[start:stop], dtype=np.float64)
    return keep, acc.astype(np.float32), counts_all[keep]


def pair_means(table: pd.DataFrame, image_ids: list[str], feats: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(sorted words, mean features (W, k), image counts (W,)) of a word-image table's distinct
    (word, image) pairs whose image has a row in ``feats`` (``image_ids``): :func:`mean_features`
    with ``sum_first`` over one column per pair, in table order."""
    import scipy.sparse as sp  # here: ~0.4 s to import, and only these functions use it
    pairs = table[["word", "image_id"]].astype(str).drop_duplicates()
    rows = pd.Index(image_ids).get_indexer(pairs["image_id"])
    pairs = pairs[rows >= 0].assign(row=rows[rows >= 0])
    if pairs.empty:
        return [], np.zeros((0, feats.shape[1]), np.float32), np.zeros(0, np.int64)
    codes, words = pd.factorize(pairs["word"], sort=True)
    n = len(codes)
    incidence = sp.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(len(words), n))
    _, means, counts = mean_features(incidence, feats[pairs["row"].to_numpy()], sum_first=True)
    return list(words), means, counts


def word_image_features(captions_tsv: str | os.PathLike, features_h5: str | os.PathLike,
                        vocab_tsv: str | os.PathLike, out_h5: str | os.PathLike) -> dict:
    """Write ``out_h5`` with the mean raw image feature of each vocabulary word (see module doc).

    Returns a small summary dict (words written, images and captions used).
    """
    for what, path in (("captions", captions_tsv), ("features", features_h5), ("vocabulary", vocab_tsv)):
        if not os.path.isfile(path):
            raise UserError(f"{what} file {path} does not exist")
    caps = read_tsv(captions_tsv, dtype=str)
    for col in ("id", "caption"):
        if col not in caps.columns:
            raise UserError(f"{captions_tsv}: no {col!r} column (expected the subset's captions.tsv)")
    n_rows = len(caps)
    if "status" in caps.columns:
        caps = caps[caps["status"] == "ok"]
    else:
        log.warning("%s: no 'status' column; using every caption", captions_tsv)

    img_ids, feats, attrs = read_features(features_h5)
    if feats.ndim != 2 or feats.shape[0] != len(img_ids):
        raise UserError(f"{features_h5}: 'features' shape {feats.shape} does not match {len(img_ids)} ids")
    row_of: dict[str, int] = {}
    for i, k in enumerate(img_ids):
        row_of.setdefault(k, i)  # a duplicated id keeps its first row
    if len(row_of) != len(img_ids):
        log.warning("%s: %d duplicated image ids; using the first row of each",
                    features_h5, len(img_ids) - len(row_of))

    caps = caps[caps["id"].isin(row_of)]
    if caps.empty:
        raise UserError(f"no ok caption of {captions_tsv} has an image in {features_h5} "
                        f"({n_rows} captions, {len(img_ids)} encoded images): wrong files?")

    # columns: only the images that are used, in a compact index
    used_rows, image_index = np.unique(caps["id"].map(row_of).to_numpy(np.int64), return_inverse=True)
    vocab = load_vocab(vocab_tsv)["word"].astype(str).tolist()
    m = incidence_matrix(caps["caption"].tolist(), image_index, vocab)
    # used_rows is sorted and unique: if every image is used it is 0..N-1 and no copy is needed
    used_feats = feats if len(used_rows) == len(feats) else feats[used_rows]
    keep, means, counts = mean_features(m, used_feats)
    words = [vocab[i] for i in keep]
    if not words:
        raise UserError(f"no word of {vocab_tsv} occurs in an ok caption with an encoded image")

    out_attrs = {k: v for k, v in attrs.items()}
    out_attrs.update(kind="word_mean_image", dim=int(feats.shape[1]),
                     n_images=int(len(used_rows)), n_captions=int(len(caps)))
    write_features(out_h5, words, means, attrs=out_attrs, extra={"counts": counts})
    summary = dict(words=len(words), vocab=len(vocab), images=int(len(used_rows)),
                   captions=int(len(caps)), dim=int(feats.shape[1]))
    log.info("word image features: %d of %d vocabulary words have images (%d images, %d captions, dim %d)",
             summary["words"], summary["vocab"], summary["images"], summary["captions"], summary["dim"])
    return summary


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m groundwords.grounding.word_features",
                                description=__doc__.split("\n")[0])
    p.add_argument("--captions", required=True, help="captions TSV with columns id, caption, status")
    p.add_argument("--features", required=True, help="HDF5 raw encoder features (encodings.h5)")
    p.add_argument("--vocab", required=True, help="vocabulary TSV (word, count)")
    p.add_argument("--out", required=True, help="HDF5 to write (word_images.h5)")
    a = p.parse_args(argv)
    setup_logging()
    word_image_features(a.captions, a.features, a.vocab, a.out)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
