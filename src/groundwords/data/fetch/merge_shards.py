"""Merge: join the shard files back onto the manifest.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable

import pandas as pd

from groundwords.cli import UserError
from groundwords.data.fetch.outcomes import SHARD_COLUMNS
from groundwords.data.fetch.shard import _status_counts, read_manifest
from groundwords.data.manifest import COLUMNS as MANIFEST_COLUMNS
from groundwords.files import read_tsv, write_json, write_tsv

log = logging.getLogger("groundwords.data.fetch")


MERGED_COLUMNS = MANIFEST_COLUMNS + ["path", "sha256"]


def merge(manifest_path: str | os.PathLike, shard_tsvs: Iterable[str | os.PathLike],
          out_tsv: str | os.PathLike, summary_json: str | os.PathLike) -> dict:
    """Join the shard results onto every manifest row; write ``out_tsv`` and the summary.

    Raises :class:`UserError` when an ``ok`` manifest id is in none of the shard files.
    Returns the summary dict (also printed).
    """
    manifest = read_manifest(manifest_path)
    frames = []
    for path in shard_tsvs:
        try:
            df = read_tsv(path, dtype=str)
        except FileNotFoundError:
            raise UserError(f"shard file not found: {path}") from None
        if list(df.columns) != SHARD_COLUMNS:
            raise UserError(f"{path} is not a fetch shard file (columns {list(df.columns)})")
        frames.append(df)
    fetched = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SHARD_COLUMNS, dtype=str)
    dup = fetched["id"].duplicated()
    if dup.any():
        log.warning("%d ids appear in more than one shard file; using the first", int(dup.sum()))
        fetched = fetched[~dup]
    by_id = fetched.set_index("id")

    well_formed = manifest["status"] == "ok"
    missing = sorted(set(manifest.loc[well_formed, "id"]) - set(by_id.index))
    if missing:
        raise UserError(f"{len(missing)} image id(s) of the manifest are in no shard file "
                        f"(e.g. {missing[0]}): were all shards given?")

    out = manifest[MANIFEST_COLUMNS].copy()
    ids = out.loc[well_formed, "id"]
    out.loc[well_formed, "status"] = ids.map(by_id["status"]).to_numpy()
    out["path"] = ""
    out["sha256"] = ""
    out.loc[well_formed, "path"] = ids.map(by_id["path"]).to_numpy()
    out.loc[well_formed, "sha256"] = ids.map(by_id["sha256"]).to_numpy()
    assert len(out) == len(manifest)
    write_tsv(out[MERGED_COLUMNS], out_tsv)

    ok = out["status"] == "ok"
    n_well = int(well_formed.sum())
    summary = {
        "rows": len(out),
        "well_formed": n_well,
        "ok": int(ok.sum()),
        "alive_fraction": round(int(ok.sum()) / n_well, 6) if n_well else 0.0,
        "by_status": _status_counts(out["status"]),
        "unique_ids": int(out.loc[well_formed, "id"].nunique()),
        "unique_images": int(out.loc[ok, "sha256"].nunique()),
    }
    write_json(summary, summary_json)
    print(json.dumps(summary, indent=2))
    return summary
