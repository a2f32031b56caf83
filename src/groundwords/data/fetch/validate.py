"""Checks on downloaded bytes: does it decode as a sane image (format, size, decompression bombs),
and the resize on download (``max_side``).
"""

from __future__ import annotations

import contextlib
import io
import struct
import warnings
import zlib
from collections.abc import Iterator

from PIL import Image, UnidentifiedImageError

from groundwords.data.fetch.outcomes import _exc_message, _Fail
from groundwords.data.images import has_alpha, to_rgb

#: Magic numbers of common image formats (a body starting with one is "meant" to be an image).
_IMAGE_MAGIC = (
    b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
)

#: Exceptions Pillow raises on broken image data (anything else is reported as ``error``).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, struct.error, zlib.error)


def _looks_like_image(data: bytes, content_type: str) -> bool:
    if content_type.split(";")[0].strip().lower().startswith("image/"):
        return True
    return data.startswith(_IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _unsupported_format(data: bytes, content_type: str) -> str:
    """The name of a known image format Pillow does not decode (SVG, HEIC/AVIF without a
    plugin), or ``""``."""
    ctype = content_type.split(";")[0].strip().lower()
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if ctype == "image/svg+xml" or head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "SVG"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis"):
        return "AVIF" if data[8:12] in (b"avif", b"avis") else "HEIC"
    return ""


def decode_image(data: bytes, content_type: str = "", *, min_side: int, max_pixels: int) -> tuple[str, int, int]:
    """Check that ``data`` is a complete, sane image; return ``(format, width, height)``.

    Raises :class:`_Fail` with ``not_image``, ``corrupt_image``, ``decompression_bomb`` or
    ``too_small``.  Exceptions outside Pillow's usual decode errors propagate (-> ``error``).
    """
    if not data:
        raise _Fail("not_image", "empty body")
    fmt, width, height = "", 0, 0
    try:
        with Image.open(io.BytesIO(data)) as im:  # reads the header only
            fmt, (width, height) = im.format or "", im.size
            if width * height > max_pixels:
                raise _Fail("decompression_bomb", f"{width}x{height} pixels exceeds max_pixels={max_pixels}",
                            width=width, height=height, format=fmt)
            im.verify()  # structural check (e.g. PNG chunk CRCs); leaves im unusable
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # full decode: catches truncated files
            to_rgb(im)  # what the encoder will do with it
    except _Fail:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise _Fail("decompression_bomb", _exc_message(e)) from None
    except UnidentifiedImageError:
        unsupported = _unsupported_format(data, content_type)
        if unsupported:
            raise _Fail("unsupported_format", f"{unsupported} images are not supported", format=unsupported) from None
        if _looks_like_image(data, content_type):
            raise _Fail("corrupt_image", f"unrecognised image data (Content-Type {content_type or '?'})") from None
        raise _Fail("not_image", f"not an image (Content-Type {content_type or '?'})") from None
    except _DECODE_ERRORS as e:
        raise _Fail("corrupt_image", _exc_message(e), format=fmt) from None
    if min(width, height) < min_side:
        raise _Fail("too_small", f"{width}x{height} < min_side={min_side}", width=width, height=height, format=fmt)
    return fmt, width, height


def shrink_image(data: bytes, max_side: int) -> tuple[bytes, str, int, int]:
    """Resize so that the longer side is ``max_side``, keeping the aspect ratio; re-encode as
    JPEG (quality 90), or PNG for an image with transparency. -> ``(bytes, format, w, h)``."""
    with Image.open(io.BytesIO(data)) as im:
        if im.format == "JPEG":
            im.draft("RGB", (max_side, max_side))  # DCT-domain downscale while decoding
        alpha = has_alpha(im)
        im = im.convert("RGBA" if alpha else "RGB")
    w, h = im.size
    scale = max_side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    buf = io.BytesIO()
    fmt = "PNG" if alpha else "JPEG"
    im.save(buf, format=fmt, **({"optimize": True} if alpha else {"quality": 90}))
    return buf.getvalue(), fmt, size[0], size[1]


@contextlib.contextmanager
def _pillow_bomb_guard(max_pixels: int) -> Iterator[None]:
    """Set Pillow's decompression-bomb limit and make its warning an error, then restore."""
    old = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = old
