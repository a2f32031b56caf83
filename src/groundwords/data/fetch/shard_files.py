"""The files of one shard beside its TSV (journal, staging file, tar, stats), and what an earlier
run left in them (resume).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from groundwords.data.fetch.outcomes import PERMANENT_STATUSES, SHARD_COLUMNS
from groundwords.data.fetch.store import _staged
from groundwords.data.images import split_tar_path
from groundwords.files import read_tsv

log = logging.getLogger("groundwords.data.fetch")


def partial_path(out_tsv: str | os.PathLike) -> Path:
    return Path(f"{out_tsv}.partial")


def tar_path(out_tsv: str | os.PathLike) -> Path:
    """The shard's tar (``fetch.store: tar``) beside its TSV: ``shard-{i}-of-{K}.tar``."""
    out_tsv = Path(out_tsv)
    return out_tsv.with_name(out_tsv.name.removesuffix(".tsv") + ".tar")


def staging_path(out_tsv: str | os.PathLike) -> Path:
    """Where a tar shard's images wait (:class:`Stager`) until the tar is written."""
    out_tsv = Path(out_tsv)
    return out_tsv.with_name(out_tsv.name.removesuffix(".tsv") + ".staging")


def stats_path(out_tsv: str | os.PathLike) -> Path:
    """The shard's stats JSON beside its TSV: ``shard-{i}-of-{K}.stats.json``."""
    out_tsv = Path(out_tsv)
    return out_tsv.with_name(out_tsv.name.removesuffix(".tsv") + ".stats.json")


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _attempts(rec: dict) -> int:
    try:
        return max(int(float(rec.get("attempts") or 0)), 0)
    except (TypeError, ValueError):
        return 0


def _image_exists(path: str) -> bool:
    staged = _staged(path)
    if staged:
        return _size(staged[0]) >= staged[1] + staged[2]
    in_tar = split_tar_path(path)
    return Path(in_tar[0] if in_tar else path).is_file() if path else False


def _reusable(rec: dict, max_attempts: int) -> bool:
    status = rec.get("status")
    if status == "ok":
        return _image_exists(rec.get("path") or "")
    return status in PERMANENT_STATUSES or (bool(status) and _attempts(rec) >= max_attempts)


def load_previous(out_tsv: str | os.PathLike, ids: dict[str, str], max_attempts: int) -> tuple[dict[str, dict], dict[str, int]]:
    """Records of this shard from an earlier ``out_tsv`` and/or ``.partial``: the reusable ones
    (``ok`` with its file, a permanent status, or a transient one after ``max_attempts``
    attempts), and the attempts made so far for the others (fetched again).

    Later records win (the ``.partial`` is newer than the TSV); lines that do not parse
    (a write cut short by a kill) are skipped.
    """
    found: dict[str, dict] = {}
    out_tsv = Path(out_tsv)
    if out_tsv.exists():
        try:
            df = read_tsv(out_tsv, dtype=str)
            if list(df.columns) == SHARD_COLUMNS:
                found.update({r["id"]: r for r in df.to_dict("records")})
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            log.warning("ignoring unreadable %s", out_tsv)
    partial = partial_path(out_tsv)
    if partial.exists():
        with open(partial, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("id"), str):
                    found[rec["id"]] = rec
    reusable, prior = {}, {}
    for i, rec in found.items():
        if i not in ids or rec.get("url") != ids[i]:
            continue
        if _reusable(rec, max_attempts):
            reusable[i] = {c: rec.get(c, "") for c in SHARD_COLUMNS}
        elif rec.get("status") != "ok":
            prior[i] = _attempts(rec)
    return reusable, prior


def shard_is_complete(out_tsv: str | os.PathLike, ids: Iterable[str]) -> bool:
    """True when ``out_tsv`` exists, has the shard columns and exactly the ids ``ids``."""
    try:
        df = read_tsv(out_tsv, dtype=str)
    except (FileNotFoundError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return False
    if list(df.columns) != SHARD_COLUMNS or sorted(df["id"]) != sorted(ids):
        return False
    tars = {t[0] for t in map(split_tar_path, df.loc[df["status"] == "ok", "path"]) if t}
    return all(Path(t).is_file() for t in tars)  # a tar shard's images are there too
