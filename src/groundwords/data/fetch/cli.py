"""``python -m groundwords.data.fetch shard|merge``: the command line (see the package docstring).
"""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from groundwords.cli import setup_logging
from groundwords.config import add_section_arguments
from groundwords.data.fetch.merge_shards import merge
from groundwords.data.fetch.shard import (
    fetch_settings,
    fetch_shard,
    read_manifest,
    select_shard,
)
from groundwords.data.fetch.shard_files import shard_is_complete

log = logging.getLogger("groundwords.data.fetch")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m groundwords.data.fetch",
                                description="Download and validate the manifest's images (sharded), "
                                            "then merge the shard results back onto the manifest.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{shard,merge}")

    s = sub.add_parser("shard", help="fetch the images of one shard",
                       description="Fetch the unique ids with int(id, 16) % K == i; resumable "
                                   "(see the module docstring for statuses and resume).")
    s.add_argument("--manifest", required=True, help="manifest TSV (rank, row, id, caption, url, status)")
    s.add_argument("--shard", type=int, required=True, help="shard index i, 0 <= i < K")
    s.add_argument("--num-shards", type=int, required=True, help="number of shards K")
    s.add_argument("--out", required=True, help="output shard TSV")
    s.add_argument("--images-dir", required=True, help="content-addressed image store")
    add_section_arguments(s, "fetch", exclude=("shards",))
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--force", action="store_true",
                   help="fetch every id again, ignoring an existing --out and its .partial journal")
    s.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    m = sub.add_parser("merge", help="join the shard results onto the manifest",
                       description="One row per manifest row, plus a JSON summary.")
    m.add_argument("--manifest", required=True, help="manifest TSV")
    m.add_argument("--out", required=True, help="merged TSV (rank, row, id, caption, url, status, path, sha256)")
    m.add_argument("--summary", required=True, help="summary JSON")
    m.add_argument("shard_tsvs", nargs="+", metavar="SHARD_TSV", help="the shard TSVs (all of them)")
    m.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    if args.command == "merge":
        merge(args.manifest, args.shard_tsvs, args.out, args.summary)
        return
    signal.signal(signal.SIGTERM, _interrupt)  # a cancelled cluster job stops like Ctrl-C
    if not args.force and Path(args.out).exists():
        ids = select_shard(read_manifest(args.manifest), args.shard, args.num_shards)
        if shard_is_complete(args.out, ids):
            log.info("%s is complete (%d ids); nothing to do", args.out, len(ids))
            return
    keys = fetch_settings().keys()
    settings = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    fetch_shard(args.manifest, args.shard, args.num_shards, args.out, args.images_dir,
                progress=not args.no_progress, resume=not args.force, **settings)


def _interrupt(signum, frame):
    raise KeyboardInterrupt
