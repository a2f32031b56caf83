"""Word-similarity benchmarks: a robust pair-file parser and a registry of known benchmarks.

File format (``read_pairs``)
----------------------------
One pair per line: ``word1 word2 score``. Real benchmark files differ in details, so the parser
accepts all of the following:

* fields separated by tabs, or (when a line has no tab) by runs of spaces;
  with tabs a word may contain spaces, and the fields are stripped;
* ``\\n`` or ``\\r\\n`` line ends, a missing final newline, a UTF-8 byte-order mark;
* blank lines and ``#`` comment lines (skipped);
* header lines (``Word 1<TAB>Word 2<TAB>Human (mean)``): a line whose score is not a number,
  before the first pair, is skipped and counted (``df.attrs["header_lines"]``).

A line with other than 3 fields, a non-numeric score after the first pair, or a non-finite
score is a :class:`~groundwords.cli.UserError` naming the file and the 1-based line number.
Words are returned exactly as written (case is handled by the evaluation, see
:mod:`groundwords.evaluation.similarity`).

Registry (``BENCHMARKS``, ``resolve``)
--------------------------------------
Every registered benchmark has a canonical URL (the files of
https://github.com/mfaruqui/eval-word-vectors, ``data/word-sim``) and the sha256 of that file
as of commit 94b3dd9. ``ws353`` and ``simlex999`` also have a packaged offline copy: the test
data shipped in gensim's wheel. MEN is *not* packaged: offline users point at a local file
(config key ``benchmarks.men.path``). :func:`resolve` picks, in order: an explicit local path,
the packaged copy, a verified copy in the cache directory, a verified download (only when
allowed).

CLI::

    python -m groundwords.evaluation.sets list [--cache-dir D]
    python -m groundwords.evaluation.sets fetch NAME [NAME ...] --cache-dir D
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from groundwords.cli import UserError, run_cli, setup_logging

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Parsing


def read_pairs(path: str | os.PathLike) -> pd.DataFrame:
    """Parse a word-pair similarity file into a DataFrame ``(word1, word2, score)``.

    See the module docstring for the accepted format. ``df.attrs`` holds ``path``,
    ``header_lines`` (skipped non-numeric header lines) and ``comment_lines`` (``#`` lines).
    """
    path = Path(path)
    raw = _read_benchmark_bytes(path)
    word1: list[str] = []
    word2: list[str] = []
    scores: list[float] = []
    headers = comments = 0
    # split on b"\n" ourselves (not str.splitlines) so that line numbers match what editors show
    for lineno, bline in enumerate(raw.split(b"\n"), start=1):
        try:
            line = bline.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UserError(f"{path}:{lineno}: not valid UTF-8 ({e.reason})") from None
        if lineno == 1:
            line = line.removeprefix("\ufeff")
        line = line.strip()  # also removes the "\r" of CRLF files
        if not line:
            continue
        if line.startswith("#"):
            comments += 1
            continue
        fields = _pair_fields(path, lineno, line)
        try:
            score = float(fields[2])
        except ValueError:
            if not scores:  # a header line before the data
                headers += 1
                continue
            raise UserError(f"{path}:{lineno}: score {fields[2]!r} is not a number") from None
        if not math.isfinite(score):
            raise UserError(f"{path}:{lineno}: score {fields[2]!r} is not a finite number")
        word1.append(fields[0])
        word2.append(fields[1])
        scores.append(score)

    if not scores:
        raise UserError(f"{path}: no word pairs found (expected lines 'word1<TAB>word2<TAB>score')")
    import pandas as pd  # here: the workflow imports this registry while planning, without pandas

    df = pd.DataFrame({"word1": word1, "word2": word2, "score": scores})
    df.attrs.update(path=str(path), header_lines=headers, comment_lines=comments)
    if headers:
        log.debug("%s: skipped %d header line(s)", path, headers)
    return df


def _read_benchmark_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"benchmark file {path} does not exist") from None
    except OSError as e:
        raise UserError(f"cannot read benchmark file {path}: {e}") from None


def _pair_fields(path: Path, lineno: int, line: str) -> list[str]:
    """The 3 fields of a (stripped, non-empty) data line: tab-separated, else whitespace-separated."""
    if "\t" in line:
        fields = [f.strip() for f in line.split("\t")]
    else:
        fields = line.split()
    if len(fields) != 3 or not fields[0] or not fields[1]:
        raise UserError(
            f"{path}:{lineno}: expected 3 fields 'word1 word2 score' separated by a tab or "
            f"spaces, got {len(fields)}: {line[:80]!r}"
        )
    return fields


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class Benchmark:
    """One registered benchmark.

    ``url``/``sha256``/``filename``: the canonical download and its pinned checksum (the file of
    mfaruqui/eval-word-vectors at commit 94b3dd9); ``n_pairs``: number of pairs in that file;
    ``packaged``: ``None`` or a callable returning the path of an offline copy shipped with an
    installed package (or ``None`` if that package is missing).
    """

    name: str
    description: str
    url: str
    sha256: str
    filename: str
    n_pairs: int
    notes: str = ""
    packaged: Callable[[], Path | None] | None = None
    packaged_sha256: str | None = None

    def packaged_path(self) -> Path | None:
        if self.packaged is None:
            return None
        p = self.packaged()
        if p is None or not Path(p).is_file():
            return None
        p = Path(p)
        if self.packaged_sha256 and sha256_file(p) != self.packaged_sha256:
            # still the same benchmark, but tell the user their numbers may not be comparable
            log.warning("packaged copy of %s (%s) differs from the pinned sha256 %s",
                        self.name, p, self.packaged_sha256)
        return p


def _gensim_test_data(filename: str) -> Callable[[], Path | None]:
    """A ``packaged`` callable for a file of gensim's ``gensim/test/test_data``.

    The file is located through the installed package's location rather than by importing
    ``gensim.test.utils`` (slow, and it logs while building a toy corpus at import time).
    """

    def find() -> Path | None:
        spec = importlib.util.find_spec("gensim")
        if spec is None or not spec.submodule_search_locations:  # gensim not installed
            return None
        for root in spec.submodule_search_locations:
            p = Path(root) / "test" / "test_data" / filename
            if p.is_file():
                return p
        return None

    find.__doc__ = f"gensim/test/test_data/{filename} from the installed gensim wheel"
    find.source = f"gensim:test/test_data/{filename}"  # type: ignore[attr-defined]
    return find


_BASE = "https://raw.githubusercontent.com/mfaruqui/eval-word-vectors/master/data/word-sim/"
_TAB3 = "tab-separated 'word1 word2 score', no header"


def _b(name, filename, n_pairs, sha256, description, notes=_TAB3, **kw) -> Benchmark:
    return Benchmark(name=name, description=description, url=_BASE + filename, sha256=sha256,
                     filename=filename, n_pairs=n_pairs, notes=notes, **kw)


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in [
    _b("men", "EN-MEN-TR-3k.txt", 3000,
       "888b13580faa362c7b11da0a670258cf1b1eb4bf0ecbcd418918729a3bd3f43a",
       "MEN-TR-3k relatedness (Bruni et al., 2014); scores 0-50",
       _TAB3 + "; lower-case lemmas without POS tags (not packaged offline: give a local path)"),
    _b("simlex999", "EN-SIMLEX-999.txt", 999,
       "405394ffb7d25f6d0e3c041f87c9f27d29dc6b047506769953e85c4523b11685",
       "SimLex-999 similarity (Hill et al., 2015); scores 0-10",
       _TAB3 + "; packaged copy (gensim) has 2 '#' header lines, same 999 pairs",
       packaged=_gensim_test_data("simlex999.txt"),
       packaged_sha256="d5e0501971478a511430ee880bd0121e94ac701ba86d90544d83e6d2ba3db05d"),
    _b("ws353", "EN-WS-353-ALL.txt", 353,
       "ce12919b240af45bdf46d243601eaca2b6212b159b5e7e9b435ee7ee40c5619c",
       "WordSim-353, all pairs (Finkelstein et al., 2002); scores 0-10",
       _TAB3 + ", CRLF line ends, some capitalised words; packaged copy (gensim) has 2 '#' "
       "header lines and LF line ends, same 353 pairs",
       packaged=_gensim_test_data("wordsim353.tsv"),
       packaged_sha256="f92a022fc2537793a15bc3a8c162ebcd74990e033a228bb6388cb71e4c0b1e1d"),
    _b("ws353_sim", "EN-WS-353-SIM.txt", 203,
       "f1da938998863c94e53f72f984a5c6e215f0b46c323aae8f0f4930703a339107",
       "WordSim-353 similarity subset (Agirre et al., 2009); scores 0-10"),
    _b("ws353_rel", "EN-WS-353-REL.txt", 252,
       "66a7c88100624d0a391605ff61ce84e11d11ee620d51ec0298da49592838f8fa",
       "WordSim-353 relatedness subset (Agirre et al., 2009); scores 0-10"),
    _b("rg65", "EN-RG-65.txt", 65,
       "c243f3a91c3f5d8cf67f21a67f6fb80bde8b6bb060851a6a48e6f2d68ec98c9f",
       "RG-65 (Rubenstein & Goodenough, 1965); scores 0-4"),
    _b("mc30", "EN-MC-30.txt", 30,
       "33ee05911496ff83d95cac351d0746c6f63b9181b605cb7d307f4daa8864511b",
       "MC-30 (Miller & Charles, 1991); scores 0-4"),
    _b("mturk287", "EN-MTurk-287.txt", 287,
       "a9ae3a9decb75a9700fe0cf18b048c1344774d9f40e0196baf8e34d4cd9d1ce5",
       "MTurk-287 relatedness (Radinsky et al., 2011); scores 1-5",
       _TAB3 + ", no final newline"),
    _b("mturk771", "EN-MTurk-771.txt", 771,
       "04dc297c9e86b6fa7cf8ef0e4ba2e2c8d3399ec68d92fb7a53c0b4aae27198b5",
       "MTurk-771 relatedness (Halawi et al., 2012); scores 1-5",
       _TAB3 + ", CRLF line ends"),
    _b("rw", "EN-RW-STANFORD.txt", 2034,
       "5108d54dfc746f44f9c3d7e31d2857c37cf71430bc1594175a61a3b89bb0ae1f",
       "Stanford Rare Words (Luong et al., 2013); scores 0-10"),
    _b("simverb3500", "EN-SimVerb-3500.txt", 3500,
       "9d84274e7ad029fd3cf69dd0516e9ade624bbef9bd4e2050f6cc1fa01471e0f5",
       "SimVerb-3500 verb similarity (Gerz et al., 2016); scores 0-10",
       _TAB3 + ", CRLF line ends, no final newline"),
    _b("yp130", "EN-YP-130.txt", 130,
       "7643fdbc6158c3424061e2cba450c71285767266ff9f3db947bfc1f1f5ce67ab",
       "YP-130 verb similarity (Yang & Powers, 2006); scores 0-4"),
    _b("verb143", "EN-VERB-143.txt", 144,
       "7259e19961c81912aa4c72de0102e480b2ad2bb9f4ce97d036fbde8e1a403001",
       "VERB-143 verb similarity (Baker et al., 2014); scores 0-1",
       _TAB3 + ", CRLF line ends; despite the name the file has 144 pairs"),
]}


def get(name: str) -> Benchmark:
    """The registered benchmark ``name`` (UserError listing the known names otherwise)."""
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise UserError(
            f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)} "
            f"(or give a local file with config key benchmarks.{name}.path)"
        ) from None


DOWNLOAD_TIMEOUT = (10, 60)  # (connect, read) seconds
MAX_DOWNLOAD_BYTES = 50 << 20  # benchmark files are < 100 kB; refuse anything absurd


def resolve(name: str, path: str | os.PathLike | None = None,
            cache_dir: str | os.PathLike | None = None, download: bool = False) -> Path:
    """Return a local file for benchmark ``name``.

    Order: (1) an explicit ``path`` (UserError if it does not exist; it may be any benchmark,
    registered or not, and is not checksummed); (2) the packaged offline copy, if the benchmark
    has one; (3) ``cache_dir/<filename>`` if its sha256 matches the registry; (4) if
    ``download`` is true, a download of the canonical URL into ``cache_dir``, verified by
    sha256 (a mismatching download is not kept). Otherwise a UserError explains how to give a
    local path or allow downloading.
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise UserError(f"benchmark {name!r}: local file {p} does not exist "
                            f"(check config key benchmarks.{name}.path)")
        b = BENCHMARKS.get(name)
        if b is not None and log.isEnabledFor(logging.DEBUG) and sha256_file(p) != b.sha256:
            log.debug("benchmark %s: %s is not byte-identical to the registry's copy", name, p)
        return p

    b = get(name)
    packaged = b.packaged_path()
    if packaged is not None:
        return packaged

    cached = Path(cache_dir).expanduser() / b.filename if cache_dir is not None else None
    if cached is not None and cached.is_file():
        digest = sha256_file(cached)
        if digest == b.sha256:
            return cached
        if not download:
            raise UserError(f"benchmark {name!r}: cached file {cached} has sha256 {digest}, "
                            f"expected {b.sha256}; delete it or allow downloading to fetch it again")
        log.warning("cached %s has the wrong sha256; downloading it again", cached)

    if download:
        if cached is None:
            raise UserError(f"benchmark {name!r}: downloading needs a cache directory (--cache-dir)")
        return _download(b, cached)

    raise UserError(
        f"benchmark {name!r} is not available offline: set config key benchmarks.{name}.path "
        f"to a local copy of {b.filename} (from {b.url}), or allow downloading "
        f"(python -m groundwords.evaluation.sets fetch {name} --cache-dir DIR)"
    )


def _download(b: Benchmark, dest: Path) -> Path:
    """Download ``b.url`` to ``dest`` atomically, verifying its sha256."""
    from groundwords.files import download_verified  # here: planning needs no h5py/pandas

    return download_verified(b.url, b.sha256, dest, what=f"benchmark {b.name!r}",
                             max_bytes=MAX_DOWNLOAD_BYTES, timeout=DOWNLOAD_TIMEOUT)


def fetch(name: str, cache_dir: str | os.PathLike) -> Path:
    """Make sure ``cache_dir`` holds a verified copy of ``name`` (downloading it if needed).

    Unlike :func:`resolve` this ignores packaged copies: it always fills the cache.
    """
    b = get(name)
    dest = Path(cache_dir).expanduser() / b.filename
    if dest.is_file() and sha256_file(dest) == b.sha256:
        log.info("%s: already cached at %s", name, dest)
        return dest
    return _download(b, dest)


def source_summary(b: Benchmark, cache_dir: str | os.PathLike | None = None) -> tuple[str, str]:
    """``(offline availability, source)`` strings for ``list``."""
    if b.packaged_path() is not None:
        return "yes (packaged)", getattr(b.packaged, "source", "packaged")
    if cache_dir is not None:
        cached = Path(cache_dir) / b.filename
        if cached.is_file() and sha256_file(cached) == b.sha256:
            return "yes (cached)", str(cached)
    return "no (local path or download)", b.url


# ---------------------------------------------------------------------------------------------
# CLI


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m groundwords.evaluation.sets",
                                description="Word-similarity benchmark registry.")
    sub = p.add_subparsers(dest="cmd", required=True)
    pl = sub.add_parser("list", help="list registered benchmarks and whether they are available offline")
    pl.add_argument("--cache-dir", help="also report copies cached here")
    pf = sub.add_parser("fetch", help="download benchmarks into a cache directory (sha256-verified)")
    pf.add_argument("names", nargs="+", metavar="NAME", help=f"one of: {', '.join(BENCHMARKS)}, or 'all'")
    pf.add_argument("--cache-dir", required=True)
    a = p.parse_args(argv)
    setup_logging()

    if a.cmd == "list":
        rows = []
        for b in BENCHMARKS.values():
            offline, source = source_summary(b, a.cache_dir)
            rows.append((b.name, str(b.n_pairs), offline, source))
        header = ("name", "pairs", "offline", "source")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
        for r in [header, *rows]:
            print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3])
        return

    names = list(BENCHMARKS) if a.names == ["all"] else a.names
    for name in names:
        get(name)  # fail early on a typo, before downloading anything
    for name in names:
        print(f"{name}\t{fetch(name, a.cache_dir)}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
