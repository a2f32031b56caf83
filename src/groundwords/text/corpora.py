"""Text corpora for skip-gram pretraining: read raw text, write a tokenized corpus file.

Sources
-------
* **Plain text**, one sentence or document per line (``.gz``, ``.bz2``, ``.xz`` and a
  single-file ``.zip`` such as text8.zip are decompressed transparently; the format is chosen
  by the file name). A line may be huge
  (text8/enwik-style files are a single 100 MB line): the file is read in blocks, and an
  over-long line is cut at whitespace into pieces of about ``LONG_LINE_BYTES``.
* **A Wikipedia XML dump** (``*.xml*``, e.g. ``enwiki-latest-pages-articles.xml.bz2``), read
  with gensim's :class:`~gensim.corpora.wikicorpus.WikiCorpus` (markup stripped, one line per
  article, gensim's default filters: articles of at least 50 tokens, no redirects or
  meta pages). ``enwiki-sample`` names the small dump shipped in gensim's wheel
  (``gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2``),
  the offline default.

Tokens come from :func:`groundwords.text.vocab.tokenize` for every source (also for Wikipedia,
instead of gensim's tokenizer and its length filters), so the corpus and the evaluation use
the same rules. As in word2vec/gensim, a sentence longer than ``MAX_SENTENCE_TOKENS`` (10,000)
tokens is split into several.

``max_bytes`` reproduces the paper's "first 100,000,000 bytes of text": for plain text it
caps the bytes read from the (decompressed) file; for a Wikipedia dump it caps the bytes of
cleaned text written (articles are kept whole until the cap is reached, then reading stops).

Output: one line per sentence, tokens joined by single spaces, UTF-8, written atomically;
optionally a vocabulary TSV (``word, count``, the format of :mod:`groundwords.text.vocab`).

CLI::

    python -m groundwords.text.corpora --source PATH|enwiki-sample --out F [--max-bytes N]
        [--format auto|text|wiki] [--vocab-out V --min-count 5]
"""

from __future__ import annotations

import argparse
import bz2
import contextlib
import gzip
import importlib.util
import lzma
import multiprocessing
import os
import sys
import zipfile
from collections import Counter
from pathlib import Path
from typing import Iterator

from groundwords.cli import UserError, log, run_cli, setup_logging
from groundwords.files import atomic_path, download_verified, write_tsv
from groundwords.text.captions import encode_token_lists
from groundwords.text.vocab import tokenize, vocab_from_counts

ENWIKI_SAMPLE = "enwiki-sample"
ENWIKI_SAMPLE_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
MAX_SENTENCE_TOKENS = 10_000
LONG_LINE_BYTES = 1 << 20
BLOCK_BYTES = 1 << 20
FORMATS = ("auto", "text", "wiki")


def gensim_test_file(filename: str) -> Path:
    """A file of ``gensim/test/test_data`` located through the installed package (no import)."""
    spec = importlib.util.find_spec("gensim")
    for root in (spec.submodule_search_locations or []) if spec else []:
        p = Path(root) / "test" / "test_data" / filename
        if p.is_file():
            return p
    raise UserError(f"gensim's test data file {filename} was not found (is gensim installed?)")


def resolve_source(source: str | os.PathLike) -> Path:
    if str(source) == ENWIKI_SAMPLE:
        return gensim_test_file(ENWIKI_SAMPLE_FILE)
    p = Path(source)
    if not p.is_file():
        raise UserError(f"corpus source not found: {p}")
    return p


def open_binary(path: str | os.PathLike):
    """Open a file for binary reading, decompressing ``.gz`` / ``.bz2`` / ``.xz`` / ``.zip`` by name.

    A ``.zip`` must hold exactly one file (as text8.zip and enwik9.zip do); that file is read.
    """
    name = str(path).lower()
    if name.endswith(".zip"):
        return _open_zip_member(path)
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".bz2"):
        return bz2.open(path, "rb")
    if name.endswith((".xz", ".lzma")):
        return lzma.open(path, "rb")
    return open(path, "rb")


@contextlib.contextmanager
def _open_zip_member(path):
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise UserError(f"{path}: not a readable zip file ({e})") from None
    with zf:
        members = [i for i in zf.infolist() if not i.is_dir()]
        if len(members) != 1:
            names = ", ".join(i.filename for i in members[:5]) or "none"
            raise UserError(f"{path}: a corpus zip must hold exactly one file (found {len(members)}: {names})")
        with zf.open(members[0]) as f:
            yield f


def iter_lines(path, max_bytes: int | None = None, long_line: int = LONG_LINE_BYTES,
               block: int = BLOCK_BYTES) -> Iterator[str]:
    """Decoded lines of a (compressed) text file, the first ``max_bytes`` bytes only.

    Lines longer than ``long_line`` bytes are yielded in pieces cut at ASCII whitespace.
    Invalid UTF-8 (e.g. a character cut by ``max_bytes``) is replaced.
    """
    remaining = max_bytes if max_bytes and max_bytes > 0 else None
    buf = b""
    with open_binary(path) as f:
        while remaining is None or remaining > 0:
            chunk = f.read(block if remaining is None else min(block, remaining))
            if not chunk:
                break
            if remaining is not None:
                remaining -= len(chunk)
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                yield line.decode("utf-8", errors="replace")
            while len(buf) > long_line:
                cut = max(buf.rfind(b" ", 0, long_line), buf.rfind(b"\t", 0, long_line))
                if cut <= 0:
                    cut = long_line  # no whitespace at all: cut anyway
                yield buf[:cut].decode("utf-8", errors="replace")
                buf = buf[cut + 1:] if buf[cut:cut + 1].isspace() else buf[cut:]
    if buf:
        yield buf.decode("utf-8", errors="replace")


def split_long(tokens: list[str], max_tokens: int = MAX_SENTENCE_TOKENS) -> Iterator[list[str]]:
    for i in range(0, len(tokens), max_tokens):
        yield tokens[i:i + max_tokens]


def _wiki_tokenizer(text, token_min_len, token_max_len, lower):  # gensim's tokenizer_func signature
    return tokenize(text)


def iter_wiki_articles(path) -> Iterator[list[str]]:
    """Token lists of the articles of a Wikipedia XML dump (gensim WikiCorpus, one process)."""
    from gensim.corpora.wikicorpus import WikiCorpus

    wiki = WikiCorpus(str(path), dictionary={}, tokenizer_func=_wiki_tokenizer, processes=1)
    wiki.metadata = False
    before = set(multiprocessing.active_children())
    try:
        yield from wiki.get_texts()
    finally:
        # gensim prefetches articles in a forked process (utils.chunkize); a reader that stops
        # early (max_bytes) leaves it blocked on a full pipe, and the interpreter would wait for it
        # at exit: end it here
        for proc in set(multiprocessing.active_children()) - before:
            proc.kill()
            proc.join(timeout=5)


def detect_format(path: Path, fmt: str = "auto") -> str:
    if fmt not in FORMATS:
        raise UserError(f"unknown corpus format {fmt!r} (choose from {', '.join(FORMATS)})")
    if fmt != "auto":
        return fmt
    return "wiki" if ".xml" in path.name.lower() else "text"


def iter_sentences(source, max_bytes: int | None = None, fmt: str = "auto") -> Iterator[list[str]]:
    """Token lists (sentences) of a corpus source; see the module docstring."""
    path = resolve_source(source)
    if detect_format(path, fmt) == "wiki":
        written = 0
        for toks in iter_wiki_articles(path):
            if max_bytes and written >= max_bytes:
                break
            if toks:
                written += len(" ".join(toks).encode("utf-8")) + 1
                yield from split_long(toks)
        return
    for line in iter_lines(path, max_bytes):
        toks = tokenize(line)
        if toks:
            yield from split_long(toks)


def read_corpus(path) -> list[list[str]]:
    """Read a tokenized corpus file written by :func:`write_corpus` (whitespace-separated tokens)."""
    return list(iter_corpus(path))


def iter_corpus(path) -> Iterator[list[str]]:
    """Sentences of a tokenized corpus file (compressed files allowed; empty lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"tokenized corpus not found: {path}")
    for line in iter_lines(path):
        toks = line.split()
        if toks:
            yield toks


def write_corpus(sentences, out, counts: Counter | None = None) -> dict:
    """Write sentences (token lists) one per line, atomically; count tokens into ``counts``."""
    n_sent = n_tok = 0
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for toks in sentences:
            f.write(" ".join(toks) + "\n")
            n_sent += 1
            n_tok += len(toks)
            if counts is not None:
                counts.update(toks)
    return {"sentences": n_sent, "tokens": n_tok}


def build_text_corpus(source, out, *, max_bytes: int | None = None, fmt: str = "auto",
                      vocab_out=None, min_count: int = 5, max_vocab: int | None = None) -> dict:
    """Tokenize ``source`` into ``out`` (and optionally a vocabulary TSV). Returns statistics."""
    counts: Counter | None = Counter() if vocab_out else None
    stats = write_corpus(iter_sentences(source, max_bytes, fmt), out, counts)
    if stats["tokens"] == 0:
        raise UserError(f"{source}: no tokens found (wrong --format, or an empty file?)")
    if vocab_out:
        vocab = vocab_from_counts(counts, min_count, max_vocab)
        if vocab.empty:
            raise UserError(f"vocabulary is empty: no word occurs >= {min_count} times")
        write_tsv(vocab, vocab_out)
        stats["vocab_size"] = len(vocab)
    log.info("corpus %s -> %s: %d sentences, %d tokens", source, out, stats["sentences"], stats["tokens"])
    return stats


def main(argv=None) -> None:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["download"]:
        d = argparse.ArgumentParser(prog="python -m groundwords.text.corpora download",
                                    description="download a corpus file, verified by its checksum")
        d.add_argument("--url", required=True)
        g = d.add_mutually_exclusive_group(required=True)
        g.add_argument("--checksum", help="sha256:<hex>, sha1:<hex> or md5:<hex> (a bare hex digest is a sha256)")
        g.add_argument("--sha256", help="the file's sha256 (same as --checksum sha256:<hex>)")
        d.add_argument("--out", required=True)
        d.add_argument("--max-bytes", type=int, default=64 << 30, help="refuse larger downloads")
        a = d.parse_args(argv[1:])
        setup_logging()
        download_verified(a.url, a.checksum or a.sha256, a.out, what="corpus", max_bytes=a.max_bytes, timeout=(10, 300))
        return
    p = argparse.ArgumentParser(prog="python -m groundwords.text.corpora", description=__doc__.split("\n")[0],
                                epilog="python -m groundwords.text.corpora download --url U --checksum ALGO:HEX --out F: "
                                       "fetch a corpus file, verified by its checksum")
    p.add_argument("--source", required=True,
                   help=f"text file (.gz/.bz2/.xz/.zip ok), Wikipedia XML dump, or '{ENWIKI_SAMPLE}' (offline sample)")
    p.add_argument("--out", required=True, help="tokenized corpus to write (one sentence per line)")
    p.add_argument("--max-bytes", type=int, default=0, help="read only this many bytes of text (0: all)")
    p.add_argument("--format", choices=FORMATS, default="auto", help="auto: 'wiki' if the name contains .xml")
    p.add_argument("--vocab-out", help="also write a vocabulary TSV (word, count)")
    p.add_argument("--min-count", type=int, default=5, help="vocabulary: minimum count")
    p.add_argument("--max-vocab", type=int, default=0, help="vocabulary: keep at most this many words (0: all)")
    a = p.parse_args(argv)
    setup_logging()
    build_text_corpus(a.source, a.out, max_bytes=a.max_bytes or None, fmt=a.format, vocab_out=a.vocab_out,
                      min_count=a.min_count, max_vocab=a.max_vocab or None)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))


def corpus_ids(corpus, words: list[str]):
    return encode_token_lists(iter_corpus(corpus), words)
