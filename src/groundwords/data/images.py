"""Image helpers shared by the fetch and encode stages."""

from __future__ import annotations

import io
import os
import tarfile

from PIL import Image

#: what transparent pixels become: vision models' preprocessing expects an opaque image, and
#: dropping the alpha channel would leave whatever colour the transparent pixels happen to hold
BACKGROUND = (255, 255, 255)


def has_alpha(im: Image.Image) -> bool:
    """True for an image with an alpha channel or a transparent colour (``tRNS``, GIF index)."""
    return im.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in im.info


def to_rgb(im: Image.Image) -> Image.Image:
    """``im`` as RGB; transparent images (RGBA/LA, palette or colour-key transparency) are
    composited onto a white background first."""
    if not has_alpha(im):
        return im.convert("RGB")
    rgba = im.convert("RGBA")
    out = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
    out.alpha_composite(rgba)
    return out.convert("RGB")


# ---------------------------------------------------------------------------------------------
# Images inside tar shards (fetch.store: tar): a path "{shard}.tar::{member}" names one member.

TAR_SEP = "::"
_TARS: dict[tuple[int, str], tuple[tarfile.TarFile, dict[str, tarfile.TarInfo]]] = {}


def tar_member_path(tar: str | os.PathLike, member: str) -> str:
    return f"{tar}{TAR_SEP}{member}"


def split_tar_path(path: str | os.PathLike) -> tuple[str, str] | None:
    """``(tar, member)`` for a ``"{x}.tar::{member}"`` path, else None."""
    tar, sep, member = str(path).partition(TAR_SEP)
    return (tar, member) if sep and tar.endswith(".tar") and member else None


def read_tar_member(tar: str, member: str) -> bytes:
    """The bytes of one member; each process keeps its tar files open with a name index."""
    key = (os.getpid(), str(tar))  # DataLoader workers are forked: each opens its own handle
    if key not in _TARS:
        tf = tarfile.open(tar, "r:")
        _TARS[key] = (tf, {m.name: m for m in tf.getmembers()})
    tf, index = _TARS[key]
    info = index.get(member)
    if info is None:
        raise FileNotFoundError(f"no member {member!r} in {tar}")
    f = tf.extractfile(info)
    if f is None:
        raise FileNotFoundError(f"member {member!r} of {tar} is not a file")
    return f.read()


def open_image(path: str | os.PathLike) -> Image.Image:
    """``Image.open`` of a file, or of a tar member (``"{shard}.tar::{member}"``)."""
    in_tar = split_tar_path(path)
    if in_tar is None:
        return Image.open(path)
    return Image.open(io.BytesIO(read_tar_member(*in_tar)))


def forget_tar(tar: str | os.PathLike) -> None:
    """Close this process's handle of ``tar`` (before it is replaced)."""
    entry = _TARS.pop((os.getpid(), str(tar)), None)
    if entry is not None:
        entry[0].close()
