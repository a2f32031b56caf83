"""One shard: select its ids, fetch them in a thread pool, journal each record, write the shard's
TSV (and tar) and stats.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import itertools
import json
import logging
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from groundwords.cli import UserError
from groundwords.config import section_settings
from groundwords.data.fetch.downloader import DEFAULT_USER_AGENT, Fetcher
from groundwords.data.fetch.network import make_session
from groundwords.data.fetch.outcomes import SHARD_COLUMNS
from groundwords.data.fetch.shard_files import (
    _size,
    load_previous,
    partial_path,
    staging_path,
    stats_path,
    tar_path,
)
from groundwords.data.fetch.store import Stager, write_tar_shard
from groundwords.data.fetch.validate import _pillow_bomb_guard
from groundwords.data.manifest import COLUMNS as MANIFEST_COLUMNS
from groundwords.files import atomic_path, read_tsv, write_json, write_tsv

log = logging.getLogger("groundwords.data.fetch")


_HEX = re.compile(r"[0-9a-fA-F]+")


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a manifest TSV as strings, checking its columns."""
    try:
        df = read_tsv(path, dtype=str)
    except FileNotFoundError:
        raise UserError(f"manifest not found: {path}") from None
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"manifest {path} lacks column(s) {', '.join(missing)}")
    return df


def select_shard(manifest: pd.DataFrame, shard: int, num_shards: int) -> dict[str, str]:
    """Unique ids (with their first URL) of the ``ok`` rows of one shard, sorted by id."""
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise UserError(f"shard must be in 0..num_shards-1, got shard={shard} num_shards={num_shards}")
    ok = manifest[manifest["status"] == "ok"]
    urls: dict[str, str] = {}
    conflicts = 0
    for image_id, url in zip(ok["id"], ok["url"]):
        if not _HEX.fullmatch(image_id):
            raise UserError(f"manifest row with status ok has a bad image id {image_id!r} (want hex)")
        if int(image_id, 16) % num_shards != shard:
            continue
        seen = urls.setdefault(image_id, url)
        conflicts += seen != url
    if conflicts:
        log.warning("%d manifest rows share an id with a different URL; fetching the first URL", conflicts)
    return dict(sorted(urls.items()))


def _run_pool(fn: Callable[..., dict | None], items: Iterable[tuple], workers: int,
              stop: threading.Event) -> Iterator[dict]:
    """Run ``fn`` over ``items`` in a thread pool, yielding results as they finish.

    At most ``4 * workers`` tasks are queued at a time (memory stays flat on huge shards).
    If the consumer stops early (exception, Ctrl-C), queued tasks are cancelled and running
    ones are told to stop.
    """
    items = iter(items)
    order: dict[cf.Future, int] = {}  # submission order, to yield finished tasks in order
    counter = itertools.count()
    finished_normally = False
    # no `with`: its exit would wait for every running download; on Ctrl-C the watchdog cuts
    # their connections instead and the threads end on their own
    pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch")

    def submit(n: int) -> None:
        for item in itertools.islice(items, n):
            fut = pool.submit(fn, *item)
            order[fut] = next(counter)
            pending.add(fut)

    try:
        pending: set[cf.Future] = set()
        submit(4 * workers)
        while pending:
            done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            submit(len(done))
            failure = None
            for fut in sorted(done, key=order.pop):
                try:
                    result = fut.result()
                except BaseException as e:  # noqa: BLE001 - re-raised below, after the others
                    failure = failure or e
                    continue
                if result is not None:
                    yield result
            if failure is not None:
                raise failure
        finished_normally = True
    finally:
        if not finished_normally:
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
        else:
            pool.shutdown(wait=True)


def _records_frame(records: dict[str, dict], ids: Iterable[str]) -> pd.DataFrame:
    rows = [[("" if records[i].get(c) is None else records[i].get(c, "")) for c in SHARD_COLUMNS] for i in ids]
    return pd.DataFrame(rows, columns=SHARD_COLUMNS, dtype=object)


def _status_counts(statuses: Iterable[str]) -> dict[str, int]:
    counts = Counter(statuses)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def fetch_settings(settings: dict | None = None) -> dict:
    """The ``fetch`` config keys (but ``shards``): ``settings`` over the schema's defaults, validated."""
    return section_settings("fetch", settings, exclude=("shards",))


def fetch_shard(
    manifest_path: str | os.PathLike,
    shard: int,
    num_shards: int,
    out_tsv: str | os.PathLike,
    images_dir: str | os.PathLike,
    *,
    progress: bool = True,
    resume: bool = True,
    **settings,
) -> pd.DataFrame:
    """Download one shard of the manifest's images; write ``out_tsv``; return its rows.

    ``settings``: keys of the ``fetch`` config section (``workers``, ``total_timeout``, ...; see
    the schema), the schema's defaults for the rest; a bad value is a :class:`UserError` naming
    the key.  See the package docstring for statuses, retries and resume.  ``resume=False``
    ignores (and deletes) an existing ``.partial`` and ``out_tsv``'s records; stored images are
    still never rewritten.
    """
    settings = fetch_settings(settings)
    manifest = read_manifest(manifest_path)
    ids = select_shard(manifest, shard, num_shards)
    out_tsv = Path(out_tsv)
    out_tsv.parent.mkdir(parents=True, exist_ok=True)

    records, prior = _restart_journal(out_tsv, ids, settings["max_attempts"], resume)
    todo = [(i, u, prior.get(i, 0)) for i, u in ids.items() if i not in records]
    log.info("shard %d/%d: %d ids, %d reused from an earlier run, %d to fetch",
             shard, num_shards, len(ids), len(records), len(todo))

    t0 = time.monotonic()
    bar = _progress_bar(len(ids), len(records), f"fetch {shard}/{num_shards}", progress)
    n_ok = _fetch_into(records, todo, out_tsv, images_dir, settings, bar, resume=resume)
    to_tar = settings["store"] == "tar"
    df = _write_shard(out_tsv, records, ids, to_tar)

    elapsed = time.monotonic() - t0
    counts = _status_counts(df["status"])
    _write_stats(out_tsv, shard, num_shards, ids, records, todo, n_ok, counts, elapsed, to_tar)
    log.info("shard %d/%d done: %d ids, alive %.1f%% (%d ok), fetched %d in %.1fs (%.1f/s); %s",
             shard, num_shards, len(ids), 100 * n_ok / max(len(ids), 1), n_ok, len(todo), elapsed,
             len(todo) / elapsed if elapsed > 0 else 0.0,
             " ".join(f"{k}={v}" for k, v in counts.items()) or "no ids")
    return df


def _restart_journal(out_tsv: Path, ids: dict[str, str], max_attempts: int,
                     resume: bool) -> tuple[dict[str, dict], dict[str, int]]:
    """The reusable records of an earlier run and the attempts made for the others (both empty
    without ``resume``); the journal (``.partial``) starts afresh with just the reusable records
    (this compacts repeated resumes)."""
    records, prior = load_previous(out_tsv, ids, max_attempts) if resume else ({}, {})
    with atomic_path(partial_path(out_tsv)) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for rec in records.values():
            f.write(json.dumps(rec) + "\n")
    return records, prior


def _progress_bar(total: int, initial: int, desc: str, progress: bool) -> tqdm:
    return tqdm(total=total, initial=initial, unit="img", desc=desc,
                file=sys.stderr, disable=not progress, dynamic_ncols=True,
                mininterval=0.5 if sys.stderr.isatty() else 30)  # log files: a line every 30 s


def _fetch_into(records: dict[str, dict], todo: list[tuple[str, str, int]], out_tsv: Path, images_dir,
                settings: dict, bar: tqdm, *, resume: bool) -> int:
    """Fetch the ``todo`` ids in a thread pool; add each record to ``records`` and append it to the
    journal as it finishes.  Returns the number of ``ok`` records (reused ones included)."""
    workers = settings["workers"]
    stop = threading.Event()
    session = make_session(workers, settings["user_agent"] or DEFAULT_USER_AGENT, settings["max_redirects"])
    if not resume:
        staging_path(out_tsv).unlink(missing_ok=True)
    stager = Stager(staging_path(out_tsv)) if settings["store"] == "tar" else None
    fetcher = Fetcher(session, images_dir, settings, stop=stop, stager=stager)
    n_ok = sum(r["status"] == "ok" for r in records.values())
    try:
        with session, contextlib.closing(fetcher), _pillow_bomb_guard(settings["max_pixels"]), \
                open(partial_path(out_tsv), "a", encoding="utf-8") as journal, \
                contextlib.closing(_run_pool(fetcher.fetch_one, todo, workers, stop)) as results:
            for rec in results:
                records[rec["id"]] = rec
                journal.write(json.dumps(rec) + "\n")
                journal.flush()
                n_ok += rec["status"] == "ok"
                bar.update(1)
                bar.set_postfix(alive=f"{n_ok / len(records):.0%}", refresh=False)
    finally:
        bar.close()
        if stager is not None:
            stager.close()
    return n_ok


def _write_shard(out_tsv: Path, records: dict[str, dict], ids: dict[str, str], to_tar: bool) -> pd.DataFrame:
    """Write the shard's tar (``store: tar``) and its TSV; remove the journal and the staging file."""
    if to_tar:
        write_tar_shard(tar_path(out_tsv), records, ids)
    df = _records_frame(records, ids)
    write_tsv(df, out_tsv)
    partial_path(out_tsv).unlink(missing_ok=True)
    if to_tar:
        staging_path(out_tsv).unlink(missing_ok=True)
    return df


def _write_stats(out_tsv: Path, shard: int, num_shards: int, ids: dict[str, str], records: dict[str, dict],
                 todo: list[tuple[str, str, int]], n_ok: int, counts: dict[str, int], elapsed: float,
                 to_tar: bool) -> None:
    """The shard's stats JSON (:func:`stats_path`)."""
    fetched_now = [records[i] for i, *_ in todo if i in records]
    stored = {r["path"] for r in records.values() if r["status"] == "ok" and r["path"]}
    if to_tar:
        stored = {str(tar_path(out_tsv))}
    write_json({
        "shard": shard, "num_shards": num_shards, "ids": len(ids), "ok": n_ok,
        "alive_fraction": round(n_ok / len(ids), 6) if ids else 0.0, "by_status": counts,
        "fetched": len(fetched_now), "reused": len(ids) - len(fetched_now),
        "bytes_downloaded": int(sum(int(r.get("bytes") or 0) for r in fetched_now)),
        "bytes_stored": int(sum(_size(p) for p in stored)),
        "elapsed_s": round(elapsed, 3), "images_per_s": round(len(fetched_now) / elapsed, 3) if elapsed > 0 else 0.0,
    }, stats_path(out_tsv))
