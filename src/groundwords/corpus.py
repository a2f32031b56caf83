"""Turn captions into CBOW training examples (vectorised with numpy).

Contract (shared by every model trained on captions):

* Each caption is tokenised with :func:`groundwords.vocab.tokenize`; tokens that are not in
  the vocabulary (OOV) are **dropped before windowing**, exactly like word2vec does, so the
  context of a word is made of its nearest *in-vocabulary* neighbours.
* Each caption is its own sentence: context windows **never cross caption boundaries**.
* For position ``i`` of a caption the context is the up to ``n`` words before and ``n`` words
  after it (``n = window``), laid out as ``[i-n, ..., i-1, i+1, ..., i+n]`` in a row of width
  ``2n``; missing slots (near the caption's ends) hold the padding index ``pad = V``.
  Positions whose context is entirely empty (one-word captions) are skipped.
* Each example carries its caption's image target row (an index into the image feature
  matrix), or ``-1`` when the caption's image is dead (status != "ok") or absent from the
  image file. By default only captions with a live image are used (as in the paper);
  ``train_dead_images=True`` keeps the others, with ``image_row = -1`` (the image loss is
  masked out for them).

Token ids are positions in the vocabulary table (most frequent first, see
:mod:`groundwords.vocab`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .io import UserError, log
from .vocab import tokenize


@dataclass
class EncodedCaptions:
    """Captions as one flat token-id array, CSR style: caption ``c`` is
    ``tokens[offsets[c]:offsets[c+1]]`` (OOV tokens already removed)."""

    tokens: np.ndarray  # int64 (T,)
    offsets: np.ndarray  # int64 (C+1,)
    n_raw_tokens: int  # tokens before OOV removal
    n_oov: int  # tokens dropped because they are not in the vocabulary

    @property
    def n_captions(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass
class CBOWExamples:
    """One row per training position (all arrays have the same first dimension N)."""

    context: np.ndarray  # int64 (N, 2*window): context ids, padded with `pad`
    target: np.ndarray  # int64 (N,): the centre (masked) word
    caption: np.ndarray  # int64 (N,): index of the source caption (in the input order)
    image_row: np.ndarray  # int64 (N,): image feature row of the caption, -1 if none
    pad: int  # padding index (= vocabulary size)
    window: int

    def __len__(self) -> int:
        return len(self.target)


def encode_token_lists(token_lists: Iterable[Sequence[str]], words: Sequence[str] | pd.Index,
                       chunk: int = 100_000) -> EncodedCaptions:
    """Map lists of tokens to vocabulary ids, dropping OOV tokens.

    The look-up is vectorised (``pd.Index.get_indexer``) and done ``chunk`` captions at a
    time, so memory stays bounded for millions of captions.
    """
    index = words if isinstance(words, pd.Index) else pd.Index(list(words))
    ids_parts, len_parts = [], []
    lengths: list[int] = []
    flat: list[str] = []

    def flush():
        ids = index.get_indexer(pd.Index(flat, dtype=object)) if flat else np.zeros(0, np.int64)
        ids_parts.append(np.asarray(ids, dtype=np.int64))
        len_parts.append(np.asarray(lengths, dtype=np.int64))
        lengths.clear()
        flat.clear()

    for toks in token_lists:
        lengths.append(len(toks))
        flat.extend(toks)
        if len(lengths) >= chunk:
            flush()
    flush()
    ids = np.concatenate(ids_parts)
    raw_offsets = np.zeros(sum(len(p) for p in len_parts) + 1, dtype=np.int64)
    np.cumsum(np.concatenate(len_parts), out=raw_offsets[1:])
    keep = ids >= 0
    # New caption boundaries = number of kept tokens before each raw boundary.
    kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    return EncodedCaptions(ids[keep], kept_before[raw_offsets], int(len(ids)), int((~keep).sum()))


def encode_captions(captions: Iterable[str], words: Sequence[str] | pd.Index) -> EncodedCaptions:
    """Tokenise captions with :func:`groundwords.vocab.tokenize` and map them to ids."""
    return encode_token_lists((tokenize(c) for c in captions), words)


def cbow_windows(enc: EncodedCaptions, window: int, pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All CBOW (context, target, caption) triples of the encoded captions.

    Vectorised: for each of the 2n relative offsets we compute the neighbour position and
    test that it lies inside the same caption (``start <= j < end``), never crossing captions.
    """
    if window < 1:
        raise UserError(f"window must be >= 1 (got {window})")
    tokens, offsets = enc.tokens, enc.offsets
    n_tok = len(tokens)
    lengths = np.diff(offsets)
    caption = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    start = offsets[:-1][caption]
    end = offsets[1:][caption]
    pos = np.arange(n_tok, dtype=np.int64)
    rel = [d for d in range(-window, window + 1) if d != 0]
    context = np.full((n_tok, 2 * window), pad, dtype=np.int64)
    for col, d in enumerate(rel):
        j = pos + d
        ok = (j >= start) & (j < end)
        context[ok, col] = tokens[j[ok]]
    keep = (context != pad).any(axis=1)  # skip positions with an empty context
    return context[keep], tokens[keep], caption[keep]


def image_rows(caption_ids: Sequence[str], status: Sequence[str], image_ids: Sequence[str]) -> np.ndarray:
    """Row of each caption's image in the feature matrix, -1 if dead or not in the file."""
    rows = pd.Index(list(image_ids)).get_indexer(pd.Index([str(i) for i in caption_ids], dtype=object))
    rows = np.asarray(rows, dtype=np.int64)
    alive = np.asarray(status, dtype=object) == "ok"
    missing = int((alive & (rows < 0)).sum())
    if missing:
        log.warning("%d captions have status 'ok' but their image id is not in the image file: "
                    "treated as dead", missing)
    rows[~alive] = -1
    return rows


def build_examples(
    captions: pd.DataFrame,
    words: Sequence[str],
    image_ids: Sequence[str] | None,
    *,
    window: int = 2,
    train_dead_images: bool = False,
) -> tuple[CBOWExamples, dict]:
    """CBOW examples of a captions table (columns ``id, caption, status``).

    Returns the examples and a dict of corpus statistics (captions used, tokens, OOV, ...).
    Caption indices in the examples refer to rows of ``captions`` (0-based positions).
    """
    for col in ("id", "caption", "status"):
        if col not in captions.columns:
            raise UserError(f"captions table has no '{col}' column (columns: {list(captions.columns)})")
    if image_ids is None:
        rows = np.full(len(captions), -1, dtype=np.int64)
    else:
        rows = image_rows(captions["id"].astype(str).tolist(), captions["status"].tolist(), image_ids)
    use = np.ones(len(captions), bool) if train_dead_images else rows >= 0
    enc = encode_captions(captions["caption"].astype(str).to_numpy()[use], words)
    pad = len(words)
    ctx, tgt, cap_local = cbow_windows(enc, window, pad)
    used_idx = np.flatnonzero(use)
    cap = used_idx[cap_local]
    ex = CBOWExamples(ctx, tgt, cap, rows[cap], pad, window)
    stats = {
        "n_captions_total": int(len(captions)),
        "n_captions_live_image": int((rows >= 0).sum()),
        "n_captions": int(use.sum()),
        "n_captions_with_examples": int(len(np.unique(cap_local))),
        "n_tokens": enc.n_raw_tokens,
        "n_oov_dropped": enc.n_oov,
        "n_examples": int(len(tgt)),
        "n_examples_with_image": int((ex.image_row >= 0).sum()),
    }
    return ex, stats
