"""Turn captions into CBOW training examples (vectorised with numpy).

Contract (shared by every model trained on captions):

* Each caption is tokenised with :func:`groundwords.text.vocab.tokenize`; tokens that are not in
  the vocabulary (OOV) are **dropped before windowing**, exactly like word2vec does, so the
  context of a word is made of its nearest *in-vocabulary* neighbours.
* Each caption is its own sentence: context windows **never cross caption boundaries**.
* For position ``i`` of a caption the context is the up to ``n`` words before and ``n`` words
  after it (``n = window``), laid out as ``[i-n, ..., i-1, i+1, ..., i+n]`` in a row of width
  ``2n``; missing slots (near the caption's ends) hold the padding index ``pad = V``.
  Positions whose context is entirely empty (one-word captions) are skipped.
* **Whole-caption contexts** (the caption co-occurrence baseline of the paper's §6.2): a
  window at least as long as the longest caption (e.g. ``window=1000``) means "all the other
  words of the caption". The row is then compacted to width ``longest - 1`` (the other
  in-vocabulary words of the caption in their order, right-padded with ``pad``) instead of
  ``2 * window``, so the arrays stay small. The set of context words is the same as with the
  ``[i-n, ..., i+n]`` layout; only the slots differ (the context is a bag anyway).
* Each example carries an image target row (an index into the image feature matrix), or
  ``-1`` when there is none (masked out of the image loss):

  - ``image_target="caption"`` (the paper, §3.4): the row of the caption's image; ``-1`` when
    the caption's image is dead (status != "ok") or absent from the image file.
  - ``image_target="word"`` (the word-specific targets proposed in §6.2): the image file is
    keyed by *words*, and the row is the one of the example's **centre (masked) word**, so
    words of the same caption get different targets; ``-1`` if that word has no row.

  By default only captions with a live image are used (as in the paper), in both modes, so
  that runs are trained on the same captions. With word targets the file cannot tell which
  captions are alive, so "live" means status "ok" (with caption targets: status "ok" *and*
  present in the file). ``train_dead_images=True`` keeps the other captions; with caption
  targets their examples get ``image_row = -1``.

Token ids are positions in the vocabulary table (most frequent first, see
:mod:`groundwords.text.vocab`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from groundwords.cli import UserError, log
from groundwords.text.vocab import tokenize


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
    """Tokenise captions with :func:`groundwords.text.vocab.tokenize` and map them to ids."""
    return encode_token_lists((tokenize(c) for c in captions), words)


def cbow_windows(enc: EncodedCaptions, window: int, pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All CBOW (context, target, caption) triples of the encoded captions.

    Vectorised: for each of the 2n relative offsets we compute the neighbour position and
    test that it lies inside the same caption (``start <= j < end``), never crossing captions.
    If ``window`` >= the longest caption, every context is the whole rest of the caption and
    the rows are built compacted (width ``longest - 1``, see the module docstring).
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
    longest = int(lengths.max()) if len(lengths) else 0
    if window >= longest:  # whole caption: column c holds the c-th other word of the caption
        width = max(longest - 1, 0)
        context = np.full((n_tok, width), pad, dtype=np.int64)
        i = pos - start  # position of the centre word inside its caption
        n_other = end - start - 1
        for col in range(width):
            ok = col < n_other
            j = start + col + (col >= i)  # skip the centre word itself
            context[ok, col] = tokens[j[ok]]
    else:
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


def word_rows(words: Sequence[str], image_ids: Sequence[str]) -> np.ndarray:
    """Row of each vocabulary word in a word-keyed feature file (-1: the word has none)."""
    rows = pd.Index([str(i) for i in image_ids], dtype=object).get_indexer(pd.Index(list(words), dtype=object))
    return np.asarray(rows, dtype=np.int64)


def build_examples(
    captions: pd.DataFrame,
    words: Sequence[str],
    image_ids: Sequence[str] | None,
    *,
    window: int = 2,
    train_dead_images: bool = False,
    image_target: str = "caption",
) -> tuple[CBOWExamples, dict]:
    """CBOW examples of a captions table (columns ``id, caption, status``).

    ``image_ids`` are the ids of the image feature file: caption image ids when
    ``image_target="caption"``, words when ``image_target="word"`` (see the module docstring).
    Returns the examples and a dict of corpus statistics (captions used, tokens, OOV, ...).
    Caption indices in the examples refer to rows of ``captions`` (0-based positions).
    """
    for col in ("id", "caption", "status"):
        if col not in captions.columns:
            raise UserError(f"captions table has no '{col}' column (columns: {list(captions.columns)})")
    if image_target not in ("caption", "word"):
        raise UserError(f"image target must be 'caption' or 'word' (got {image_target!r})")
    if image_target == "word":
        live = captions["status"].to_numpy(dtype=object) == "ok"
        rows = np.full(len(captions), -1, dtype=np.int64)
    elif image_ids is None:
        rows = np.full(len(captions), -1, dtype=np.int64)
        live = rows >= 0
    else:
        rows = image_rows(captions["id"].astype(str).tolist(), captions["status"].tolist(), image_ids)
        live = rows >= 0
    use = np.ones(len(captions), bool) if train_dead_images else live
    enc = encode_captions(captions["caption"].astype(str).to_numpy()[use], words)
    pad = len(words)
    ctx, tgt, cap_local = cbow_windows(enc, window, pad)
    used_idx = np.flatnonzero(use)
    cap = used_idx[cap_local]
    if image_target == "word":
        by_word = word_rows(words, image_ids) if image_ids is not None else np.full(pad, -1, np.int64)
        example_rows = by_word[tgt]  # the centre word's own target
    else:
        example_rows = rows[cap]
    ex = CBOWExamples(ctx, tgt, cap, example_rows, pad, window)
    lengths = enc.lengths
    stats = {
        "n_captions_total": int(len(captions)),
        "n_captions_live_image": int(live.sum()),
        "n_captions": int(use.sum()),
        "n_captions_with_examples": int(len(np.unique(cap_local))),
        "n_tokens": enc.n_raw_tokens,
        "n_oov_dropped": enc.n_oov,
        "n_examples": int(len(tgt)),
        "n_examples_with_image": int((ex.image_row >= 0).sum()),
        "context_width": int(ctx.shape[1]),
        "whole_caption_context": bool(len(lengths) and window >= int(lengths.max())),
    }
    if image_target == "word":
        stats["n_vocab_with_image"] = int((by_word >= 0).sum())
    return ex, stats
