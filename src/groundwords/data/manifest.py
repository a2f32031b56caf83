"""Manifest stage: read a Conceptual-Captions-style source and account for every row.

Source format (as Google distributes Conceptual Captions): one row per line, ``caption<TAB>url``,
no header, UTF-8. The "url" may also be a local path (absolute, or relative to the TSV's folder)
or a ``file://`` URL, which is how local image datasets are described.

Every source row gets a stable image key ``id`` = first 16 hex digits of sha1(url as written
in the source, before a relative path is resolved): rows that share a URL share an image, and a
local dataset's ids do not depend on where it lies. Rows are selected as the config asks (the first N, or a
seeded random sample of N) and each selected row gets a ``rank`` (its place in the selection),
so smaller subsets are prefixes of larger ones (``rank < n``).

Nothing is dropped silently: malformed rows keep their place with a status instead of ``ok``:
``malformed_columns`` (not exactly two tab-separated fields), ``empty_caption``, ``bad_url``
(what :func:`groundwords.data.urls.classify_url` — the fetcher's classifier too — rejects: no
http/https/file scheme and not a path, no host name, a port outside 0-65535, a ``file://`` URL
naming another host or no path, or a control character inside), ``bad_encoding`` (not UTF-8).

Rows end at ``\n`` (a trailing ``\r`` is dropped). Any other control character inside a caption
(``\r``, ``\x0b``, ``\x0c``, ``\x1c``-``\x1e``, ``\x85``, U+2028, U+2029, ...) stays in the caption
and round-trips through every TSV of the pipeline; the summary counts such captions
(``captions_with_control_chars``).

``python -m groundwords.data.manifest build`` writes the manifest; ``... subset`` cuts a subset's
captions table out of the fetched manifest (see docs/formats.md).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from groundwords.cli import UserError, log, run_cli, setup_logging
from groundwords.config import (
    LAYOUT_KEYS,
    add_config_argument,
    add_section_arguments,
    layout_settings,
    stage_settings,
)
from groundwords.data.urls import CONTROL, source_url
from groundwords.files import read_tsv, write_json, write_tsv

MALFORMED = ("malformed_columns", "empty_caption", "bad_url", "bad_encoding")
COLUMNS = ["rank", "row", "id", "caption", "url", "status"]


def image_id(url: str) -> str:
    """Stable image key of a URL or path: the first 16 hex digits of its sha1."""
    return hashlib.sha1(url.encode("utf-8")).hexdigest()[:16]


_SURROGATE = re.compile("[\udc80-\udcff]")


def _records(path: Path, fmt: str, header: bool):
    """``(header names or None, iterator of (row, fields or None when not UTF-8))``."""
    if fmt == "parquet":
        return _parquet_records(path)
    raw = path.read_bytes()
    recs = _csv_rows(raw) if fmt == "csv" else _tsv_rows(raw)
    names = None
    if header:
        first = next(recs, None)
        if first is None or first[1] is None:
            raise UserError(f"data.header: {path} has no UTF-8 header line")
        names = [n.strip() for n in first[1]]
    return names, recs


def _parquet_records(path: Path):
    """``(column names, iterator of (row, fields or None when not UTF-8))`` of a Parquet file."""
    try:
        df = pd.read_parquet(path)
    except ImportError as e:
        raise UserError(f"data.format: parquet needs pyarrow or fastparquet installed ({e})") from None
    except Exception as e:  # noqa: BLE001 - any reader error is a bad input file
        raise UserError(f"data.source: {path} is not a readable Parquet file ({e})") from None
    names = [str(c) for c in df.columns]

    def field(v):  # a null is empty; bytes (a binary column) must be UTF-8
        if v is None or (isinstance(v, float) and v != v):
            return ""
        return v.decode("utf-8") if isinstance(v, bytes) else str(v)

    def rows():
        for i, r in enumerate(df.itertuples(index=False, name=None)):
            try:
                yield i, [field(v) for v in r]
            except UnicodeDecodeError:
                yield i, None
    return names, rows()


def _csv_rows(raw: bytes):
    """``(row, fields or None when not UTF-8)`` of CSV bytes; a row the csv module rejects is one
    malformed field."""
    import csv
    import io

    text = raw.decode("utf-8", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))

    def rows():
        for i in itertools.count():
            try:
                r = next(reader)
            except StopIteration:
                return
            except csv.Error as e:  # e.g. a field over csv.field_size_limit(): malformed
                yield i, [f"<{e}>"]
                continue
            yield i, None if any(_SURROGATE.search(f) for f in r) else r
    return rows()


def _tsv_rows(raw: bytes):
    """``(row, fields or None when not UTF-8)`` of TSV bytes (tab-separated, no quoting)."""
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # final newline

    def tsv():
        for i, line in enumerate(lines):
            try:
                yield i, line.rstrip(b"\r").decode("utf-8").split("\t")
            except UnicodeDecodeError:
                yield i, None
    return tsv()


def parse_source(path: str | Path, layout: dict | None = None) -> pd.DataFrame:
    """Parse the source into rows with a status each (never raises on bad rows).

    ``layout`` (config keys ``data.format``, ``data.header``, ``data.caption_col``,
    ``data.url_col``; default: Conceptual Captions' headerless ``caption<TAB>url``): ``tsv``,
    ``csv`` (RFC 4180 quoting) or ``parquet``, with or without a header line, the caption and
    URL columns by number (0-based) or by header name.  A TSV/CSV row must have as many fields
    as the header (headerless: up to the last column used) or it is ``malformed_columns``.
    ``row`` is the 0-based line (TSV) or record (CSV, Parquet) of the file, header included.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data source not found: {path} (config key data.source)")
    lay = layout_settings(layout)
    base = path.resolve().parent
    names, records = _records(path, lay["format"], lay["header"])
    cols = []
    for key in ("caption_col", "url_col"):
        c = lay[key]
        if isinstance(c, str):
            if c not in names:
                raise UserError(f"data.{key}: no column {c!r} in {path} (columns: {', '.join(names)})")
            c = names.index(c)
        elif names is not None and c >= len(names):
            raise UserError(f"data.{key}: column {c} but {path} has {len(names)} columns")
        cols.append(c)
    ci, ui = cols
    width = len(names) if names is not None else max(ci, ui) + 1
    recs, written = [], []  # written: each row's url as it stands in the source
    for i, fields in records:
        if fields is None:
            recs.append((i, "", "", "bad_encoding"))
            written.append("")
            continue
        if len(fields) != width and lay["format"] != "parquet":
            recs.append((i, (fields[ci] if ci < len(fields) else fields[0] if fields else "")[:500], "",
                         "malformed_columns"))
            written.append("")
            continue
        caption, url = fields[ci].strip(), fields[ui].strip()
        if not caption:
            recs.append((i, "", url, "empty_caption"))
            written.append(url)
            continue
        status, norm = source_url(url, base)
        recs.append((i, caption, norm if status == "ok" else url, status))
        written.append(url)
    df = pd.DataFrame(recs, columns=["row", "caption", "url", "status"])
    # the id hashes the url as written, not its resolved form: a local dataset keeps its ids (and
    # every seeded split keyed by them) wherever the checkout lies
    df.insert(1, "id", [image_id(u) if u else "" for u in written])
    return df


def select_rows(df: pd.DataFrame, limit: int = 0, how: str = "first", seed: int = 0) -> pd.DataFrame:
    """Select ``limit`` rows (0: all) — the first ones, or a seeded sample — and rank them."""
    if how not in ("first", "sample"):
        raise UserError(f"data.select must be 'first' or 'sample', not {how!r}")
    order = np.arange(len(df))
    if how == "sample":
        order = np.random.default_rng(seed).permutation(len(df))
    if limit and limit < len(df):
        order = order[:limit]
    out = df.iloc[order].reset_index(drop=True)
    out.insert(0, "rank", np.arange(len(out)))
    return out[COLUMNS]


def summarise(df: pd.DataFrame) -> dict:
    counts = Counter(df["status"])
    return {"rows": int(len(df)), "ok": int(counts.get("ok", 0)),
            "by_status": dict(sorted((k, int(v)) for k, v in counts.items())),
            "unique_images": int(df.loc[df["status"] == "ok", "id"].nunique()),
            "captions_with_control_chars": int(df["caption"].str.contains(CONTROL).sum())}


def build(source, out_tsv, summary_json, limit=0, how="first", seed=0, layout: dict | None = None) -> dict:
    df = parse_source(source, layout)
    total = len(df)
    sel = select_rows(df, limit, how, seed)
    summary = summarise(sel) | {"source": str(source), "source_rows": total,
                                "select": how, "limit": limit, "seed": seed}
    write_tsv(sel, out_tsv)
    write_json(summary, summary_json)
    log.info("manifest: %d of %d source rows selected; %s", len(sel), total, json.dumps(summary["by_status"]))
    return summary


def read_captions(path, what: str, expected: str) -> pd.DataFrame:
    """A captions table (the manifest, or a subset's ``captions.tsv``) as strings; ``id``,
    ``caption`` and ``status`` must be there (``expected``: the columns the error names)."""
    try:
        df = read_tsv(path, dtype={"id": str, "caption": str, "status": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read {what} ({e})") from e
    missing = [c for c in ("id", "caption", "status") if c not in df.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {missing} (expected {expected})")
    return df


def subset(fetched_tsv, size: int, out_tsv) -> pd.DataFrame:
    """The captions table of one subset: well-formed rows with rank < size (0: all)."""
    df = read_tsv(fetched_tsv, dtype={"id": str, "caption": str, "path": str, "status": str})
    rank = pd.to_numeric(df["rank"], errors="coerce") if "rank" in df else None
    if rank is None or rank.isna().any():
        bad = "no rank column" if rank is None else f"row {int(rank.isna().to_numpy().argmax()) + 2} has no integer rank"
        raise UserError(f"{fetched_tsv}: not a fetched manifest ({bad})")
    df["rank"] = rank.astype(int)
    if size:
        df = df[df["rank"] < size]
    df = df[~df["status"].isin(MALFORMED)]
    out = df[["rank", "row", "id", "caption", "status", "path"]]
    write_tsv(out, out_tsv)
    log.info("subset of %s rows: %d well-formed captions, %d with a live image",
             size or "all", len(out), int((out["status"] == "ok").sum()))
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m groundwords.data.manifest", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="parse and select source rows")
    b.add_argument("--source", required=True, help="caption<TAB>url file")
    b.add_argument("--out", required=True)
    b.add_argument("--summary", required=True)
    b.add_argument("--limit", type=int, default=0, help="rows to select (0: all)")
    add_config_argument(b, "data")
    add_section_arguments(b, "data", only=("select", "seed", *LAYOUT_KEYS))
    s = sub.add_parser("subset", help="captions of the first N selected rows")
    s.add_argument("--fetched", required=True, help="merged fetch table")
    s.add_argument("--size", type=int, required=True, help="0: all rows")
    s.add_argument("--out", required=True)
    a = p.parse_args(argv)
    setup_logging()
    if a.cmd == "build":
        s = stage_settings(a, "data", only=("select", "seed"))
        build(a.source, a.out, a.summary, a.limit, s["select"], s["seed"], {k: getattr(a, k) for k in LAYOUT_KEYS})
    else:
        subset(a.fetched, a.size, a.out)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
