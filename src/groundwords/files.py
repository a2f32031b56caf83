"""Small I/O helpers shared by every stage: atomic writes, TSV and HDF5 feature files.

Every output of the pipeline is written to a temporary sibling and renamed into place,
so an interrupted stage never leaves a half-written file that looks finished.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
import pandas as pd

from groundwords.cli import UserError, log

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix if suffix is not None else ".tmp", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():  # mkstemp makes 0600 files; outputs get the usual umask-based mode
            os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_tsv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a DataFrame as a tab-separated file with a header, atomically.

    Rows end in ``\n``; a field holding a tab, ``\n`` or ``"`` is quoted. Every other character
    (``\r``, ``\x0b``, ``\x0c``, ``\x1c``-``\x1e``, ``\x85``, U+2028, ...) is written as is and
    read back as is by :func:`read_tsv`, which ends rows at ``\n`` only.
    """
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False, lineterminator="\n")


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a DataFrame as a comma-separated file with a header, atomically."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g", lineterminator="\n")


def read_tsv(path: str | os.PathLike, **kw) -> pd.DataFrame:
    """Read a TSV written by :func:`write_tsv` (strings stay strings, empty stays empty).

    Rows end at ``\n`` only: a bare ``\r`` (or any other character that ``str.splitlines``
    would take for a line end) inside a field is data, not a row break.
    """
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[], dtype=kw.pop("dtype", None),
                       lineterminator="\n", **kw)


def write_json(obj, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


# ---------------------------------------------------------------------------------------------
# HDF5 feature files: datasets ``ids`` (utf-8 strings) and ``features`` (float32, N x D),
# with free-form attributes (model id, pooling, ...). Used for raw encodings, PCA projections
# and per-word averaged features (where ``ids`` are words).

STR = h5py.string_dtype(encoding="utf-8")


def write_features(path, ids, features, attrs: dict | None = None, extra: dict | None = None) -> None:
    """Write ids + features (+ optional extra datasets) to HDF5 atomically."""
    features = np.asarray(features, dtype=np.float32)
    ids = [str(i) for i in ids]
    if features.ndim != 2 or features.shape[0] != len(ids):
        raise ValueError(f"features shape {features.shape} does not match {len(ids)} ids")
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("ids", data=np.array(ids, dtype=object), dtype=STR)
            chunks = (min(max(len(ids), 1), 1024), features.shape[1]) if len(ids) and features.shape[1] else None
            f.create_dataset("features", data=features, chunks=chunks)
            for k, v in (extra or {}).items():
                f.create_dataset(k, data=v)
            for k, v in (attrs or {}).items():
                f.attrs[k] = v if not isinstance(v, (dict, list)) else json.dumps(v)


def read_features(path) -> tuple[list[str], np.ndarray, dict]:
    """Read ``(ids, features, attrs)`` from an HDF5 feature file."""
    with h5py.File(path, "r") as f:
        ids = [x.decode() if isinstance(x, bytes) else str(x) for x in f["ids"][()]]
        feats = f["features"][()].astype(np.float32, copy=False)
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
    return ids, feats, attrs


CHECKSUM_ALGORITHMS = {"md5": 32, "sha1": 40, "sha256": 64}


def read_feature_matrix(path, what: str = "features", unique: bool = False) -> tuple[list[str], np.ndarray, dict]:
    """:func:`read_features`, validated for a stage: a missing or unreadable file, a non-finite or
    misshapen matrix, no rows (or, with ``unique``, repeated ids) end as a :class:`UserError`."""
    if not Path(path).is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        ids, feats, attrs = read_features(path)
    except (OSError, KeyError) as e:
        raise UserError(f"{path}: not an HDF5 feature file with 'ids' and 'features' ({e})") from e
    if feats.ndim != 2 or feats.shape[0] != len(ids) or feats.shape[1] < 1 or not np.isfinite(feats).all():
        raise UserError(f"{path}: features must be a finite ({len(ids)}, k >= 1) matrix (got {feats.shape})")
    if not ids:
        raise UserError(f"{path}: no rows")
    if unique and len(set(ids)) != len(ids):
        raise UserError(f"{path}: duplicate ids")
    return ids, feats, attrs


def parse_checksum(checksum: str) -> tuple[str, str]:
    """``"sha256:<hex>"``, ``"sha1:<hex>"``, ``"md5:<hex>"`` or a bare 64-hex sha256 -> (algorithm, hex)."""
    algo, sep, digest = str(checksum).strip().partition(":")
    if not sep:
        algo, digest = "sha256", algo
    algo, digest = algo.lower(), digest.lower()
    n = CHECKSUM_ALGORITHMS.get(algo)
    if n is None or not re.fullmatch(f"[0-9a-f]{{{n}}}", digest):
        raise UserError(f"checksum {checksum!r}: expected sha256:<64 hex>, sha1:<40 hex> or md5:<32 hex>")
    return algo, digest


def download_verified(url: str, checksum: str, dest: str | os.PathLike, *, what: str = "file",
                      max_bytes: int = 50 << 20, timeout=(10, 60)) -> Path:
    """Download ``url`` to ``dest`` atomically; keep it only if its checksum matches.

    ``checksum``: see :func:`parse_checksum` (a bare hex digest is a sha256). Publishers of
    old corpora often give only an md5 or sha1 (text8.zip: sha1), so those are accepted too.
    """
    import hashlib

    import requests

    algo, expected = parse_checksum(checksum)
    dest = Path(dest)
    log.info("downloading %s -> %s", url, dest)
    try:
        with requests.get(url, timeout=timeout, stream=True) as r:
            r.raise_for_status()
            with atomic_path(dest) as tmp:
                h, size = hashlib.new(algo), 0
                with open(tmp, "wb") as f:
                    for chunk in r.iter_content(1 << 16):
                        size += len(chunk)
                        if size > max_bytes:
                            raise UserError(f"{url}: larger than {max_bytes} bytes; refusing")
                        h.update(chunk)
                        f.write(chunk)
                if h.hexdigest() != expected:
                    # raising inside atomic_path removes the temporary file: nothing is kept
                    raise UserError(f"{what}: download of {url} has {algo} {h.hexdigest()}, "
                                    f"expected {expected}; not kept")
    except requests.RequestException as e:
        raise UserError(f"{what}: downloading {url} failed: {e}") from None
    return dest


def load_image_features(path, unique: bool = False) -> tuple[list[str], np.ndarray]:
    """Image ids and the (n, d) float32 feature matrix of an encode-stage HDF5 file."""
    ids, feats, _ = read_feature_matrix(path, "image features", unique=unique)
    return ids, feats


def write_markdown(text: str, path) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
