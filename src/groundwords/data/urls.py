"""The one URL classifier of the pipeline: which image sources the manifest accepts and the fetcher reads.

:func:`classify_url` parses a source's "url" (an http(s) URL, a ``file://`` URL or a local path)
and says what it is; the manifest (:func:`source_url`) and the fetcher
(:mod:`groundwords.data.fetch.downloader`) both ask it, so a URL the fetcher would reject is
already ``bad_url`` in the manifest.

Kinds
    ``("http", url)``       an ``http://`` / ``https://`` URL with a host name and a port in 0-65535
    ``("file", path)``      a ``file://`` URL on this machine (no host or ``localhost``; the path
                            percent-decoded) or a plain local path (a single-letter "scheme" is
                            a Windows drive letter: ``C:\\images\\x.jpg``)
    ``("invalid", reason)`` a supported scheme but a broken URL: empty, a control character
                            inside, no host (``http:///x``, ``http://:80/x``), a port outside
                            0-65535 or not a number, a ``file://`` URL naming another host or no
                            path
    ``("bad", reason)``     another scheme (``ftp://``, ``data:``, ``mailto:``, ...)

Leading and trailing white space is dropped first (the manifest strips its fields too); a
control character left inside (C0, DEL, C1, U+2028, U+2029) makes the URL ``invalid``.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

#: control characters (C0, DEL, C1) and the Unicode line/paragraph separators
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _classify(url: str) -> tuple[str, str, bool]:
    """``(kind, target or reason, whether url is a plain local path)``; see :func:`classify_url`."""
    url = url.strip()
    if not url:
        return "invalid", "empty URL", False
    if CONTROL.search(url):
        return "invalid", f"control character in URL: {url!r}", False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port outside 0-65535 or not a number
    except ValueError as e:
        return "invalid", f"invalid URL: {e}", False
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return ("http", url, False) if parts.hostname else ("invalid", "invalid URL: no host", False)
    if scheme == "file":
        if parts.netloc.lower() not in ("", "localhost"):
            return "invalid", f"remote file URL: {url}", False
        if not parts.path:
            return "invalid", f"file URL without a path: {url}", False
        return "file", url2pathname(parts.path), False
    if scheme == "" or len(scheme) == 1:  # a plain path (or a Windows drive letter)
        return "file", url, True
    return "bad", f"unsupported URL scheme {scheme!r}", False


def classify_url(url: str) -> tuple[str, str]:
    """``("http", url)``, ``("file", local_path)``, ``("invalid", reason)`` (a broken URL: empty,
    a control character, no host, a port outside 0-65535, a remote or empty ``file://`` URL) or
    ``("bad", reason)`` (another scheme). See the module docstring."""
    kind, target, _ = _classify(url)
    return kind, target


def source_url(url: str, base: Path) -> tuple[str, str]:
    """The manifest's view of a source's url: ``("ok", url)`` for the kinds ``http`` and ``file``,
    a plain local path becoming an absolute ``file://`` URL (a relative one is relative to
    ``base``); ``("bad_url", url)`` for the kinds ``invalid`` and ``bad``."""
    kind, target, is_path = _classify(url)
    if kind not in ("http", "file"):
        return "bad_url", url
    if not is_path:
        return "ok", url.strip()
    path = Path(target)
    path = path if path.is_absolute() else (base / path)
    return "ok", path.resolve().as_uri()
