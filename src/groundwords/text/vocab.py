"""Tokenizer and vocabulary.

Tokenization (documented contract, used for training *and* for evaluation look-ups):
lower-case the text (Unicode-aware), then take maximal runs of letters and digits, allowing
inner apostrophes and hyphens between them ("don't", "x-ray"); everything else separates
tokens. Conceptual Captions is already lower-cased and space-tokenised, so this mostly
removes punctuation tokens such as "." and "--".

The vocabulary keeps words with count >= min_count, sorted by descending count, then
alphabetically (so ids are stable across runs). File format: TSV with header ``word\tcount``.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from typing import Iterable

import pandas as pd

from groundwords.cli import UserError, log, run_cli, setup_logging
from groundwords.config import add_config_argument, add_section_arguments, stage_settings
from groundwords.files import read_tsv, write_tsv

TOKEN_RE = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens of ``text`` (see the module docstring for the rules)."""
    return TOKEN_RE.findall(text.lower())


def count_tokens(texts: Iterable[str]) -> Counter:
    counts: Counter = Counter()
    for t in texts:
        counts.update(tokenize(t))
    return counts


def vocab_from_counts(counts: Counter, min_count: int = 5, max_size: int | None = None) -> pd.DataFrame:
    """Vocabulary DataFrame (word, count) of token counts: count >= min_count, most frequent first
    (ties by word), at most ``max_size`` words (None / 0: no limit)."""
    items = sorted(((w, c) for w, c in counts.items() if c >= min_count), key=lambda x: (-x[1], x[0]))
    return pd.DataFrame(items[:max_size] if max_size else items, columns=["word", "count"])


def build_vocab(texts: Iterable[str], min_count: int = 5, max_size: int | None = None) -> pd.DataFrame:
    """Vocabulary DataFrame (word, count) of raw texts (tokenized): see :func:`vocab_from_counts`."""
    return vocab_from_counts(count_tokens(texts), min_count, max_size)


def load_vocab(path) -> pd.DataFrame:
    df = read_tsv(path, dtype={"word": str, "count": int})
    if list(df.columns[:2]) != ["word", "count"]:
        raise UserError(f"{path}: not a vocabulary file (expected header 'word<TAB>count')")
    return df


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m groundwords.text.vocab", description=__doc__.split("\n")[0])
    p.add_argument("--captions", required=True, help="TSV with a 'caption' column (the training captions)")
    p.add_argument("--out", required=True, help="vocabulary TSV to write")
    add_config_argument(p, "vocab")
    add_section_arguments(p, "vocab")  # --min-count, --max-size: defaults from the schema
    p.add_argument("--include-dead", action="store_true",
                   help="count captions whose image is dead too (default: only status 'ok' captions)")
    a = p.parse_args(argv)
    setup_logging()
    s = stage_settings(a, "vocab")
    caps = read_tsv(a.captions, dtype={"caption": str})
    if "caption" not in caps.columns:
        raise UserError(f"{a.captions}: no 'caption' column")
    if "status" in caps.columns and not a.include_dead:
        caps = caps[caps["status"] == "ok"]
    vocab = build_vocab(caps["caption"], s["min_count"], s["max_size"] or None)
    if vocab.empty:
        raise UserError(
            f"vocabulary is empty: no word occurs >= {s['min_count']} times in {len(caps)} captions "
            "(lower vocab.min_count or use more data)"
        )
    write_tsv(vocab, a.out)
    log.info("vocabulary: %d words (min_count=%d) from %d captions, %d tokens",
             len(vocab), s["min_count"], len(caps), int(vocab["count"].sum()))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
