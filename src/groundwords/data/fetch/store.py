"""Where the images go: the content-addressed files (``store: files``), the staging file of a tar
shard while it runs (:class:`Stager`) and the shard's tar (``store: tar``).
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import threading
from collections.abc import Iterable
from pathlib import Path

from groundwords.data.images import (
    forget_tar,
    read_tar_member,
    split_tar_path,
    tar_member_path,
)
from groundwords.files import atomic_path

#: Pillow format name -> file extension (default: the format name lower-cased).
_EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "TIFF": "tif"}


def image_path(images_dir: str | os.PathLike, sha256: str, fmt: str) -> Path:
    """Content-addressed location of an image: ``{images_dir}/{sha[:2]}/{sha}.{ext}``."""
    ext = _EXTENSIONS.get(fmt.upper(), fmt.lower()) or "bin"
    return Path(images_dir) / sha256[:2] / f"{sha256}.{ext}"


class Stager:
    """Images of a tar shard while it runs: appended to one file (no file per image), each
    named ``"{staging}::{offset}+{length}.{ext}"``; resumable like the journal (a record only
    names bytes that were written before it)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "ab", buffering=0)  # noqa: SIM115 - closed by close()
        self._lock = threading.Lock()

    def add(self, data: bytes, ext: str) -> str:
        with self._lock:
            offset = self._f.tell()
            self._f.write(data)
        return f"{self.path}::{offset}+{len(data)}.{ext}"

    def close(self) -> None:
        self._f.close()


_STAGED = re.compile(r"^(?P<file>.*)::(?P<offset>\d+)\+(?P<length>\d+)\.(?P<ext>\w+)$")


def _staged(path: str) -> tuple[str, int, int, str] | None:
    m = _STAGED.match(path)
    return (m["file"], int(m["offset"]), int(m["length"]), m["ext"]) if m else None


def _read_staged(path: str) -> bytes:
    file, offset, length, _ = _staged(path)
    with open(file, "rb") as f:
        f.seek(offset)
        data = f.read(length)
    if len(data) != length:
        raise OSError(f"{file}: {length} bytes expected at {offset}, the file is shorter")
    return data


def _store(data: bytes, path: Path) -> None:
    """Write ``data`` to ``path`` atomically, unless a file is already there (same hash)."""
    if path.exists():
        return
    with atomic_path(path, suffix=".part") as tmp:
        tmp.write_bytes(data)


def write_tar_shard(tar: Path, records: dict[str, dict], ids: Iterable[str]) -> None:
    """Write the ``ok`` images of ``records`` (in ``ids`` order) into ``tar`` atomically,
    webdataset style: ``{id}.{ext}`` (the image) and ``{id}.json`` (url, sha256, size, format)
    per id; point each record's ``path`` at its member (``"{tar}::{id}.{ext}"``).  Images come
    from the staging file or from the shard's previous tar."""
    members: dict[str, str] = {}
    with atomic_path(tar, suffix=".tar.part") as tmp:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tf:
            for i in ids:
                rec = records[i]
                if rec["status"] != "ok":
                    continue
                src = str(rec["path"])
                in_tar = split_tar_path(src)
                if in_tar:  # the shard's previous tar
                    data = read_tar_member(*in_tar)
                elif _staged(src):
                    data = _read_staged(src)
                else:  # a file of an earlier run with store: files
                    data = Path(src).read_bytes()
                ext = src.rsplit(".", 1)[-1]
                meta = {k: rec.get(k, "") for k in ("id", "url", "sha256", "width", "height", "format")}
                for name, blob in ((f"{i}.{ext}", data), (f"{i}.json", json.dumps(meta, sort_keys=True).encode())):
                    info = tarfile.TarInfo(name)
                    info.size, info.mode, info.mtime = len(blob), 0o644, 0  # reproducible
                    tf.addfile(info, io.BytesIO(blob))
                members[i] = f"{i}.{ext}"
        forget_tar(tar)  # the old tar (read above) is about to be replaced
    for i, member in members.items():
        records[i]["path"] = tar_member_path(tar, member)
