"""Fetch stage: download and validate the manifest's images, one shard at a time.

Two sub-commands (see ``python -m groundwords.data.fetch -h``):

``shard``
    :func:`fetch_shard` takes the unique image ids of one shard of the manifest (rows whose
    ``status`` is ``ok``; an id belongs to shard ``int(id, 16) % num_shards``), downloads
    each id once, checks that the bytes decode as an image and stores the *original* bytes
    (or, with ``max_side``, a copy resized to fit ``max_side`` x ``max_side``) content-addressed
    at ``{images_dir}/{sha256[:2]}/{sha256}.{ext}`` (``store: files``), or in one
    webdataset-style tar per shard (``store: tar``, :func:`write_tar_shard`).  It writes one
    row per id to ``data/fetch/shard-{i}-of-{K}.tsv`` (columns :data:`SHARD_COLUMNS`) and the
    shard's stats to ``shard-{i}-of-{K}.stats.json``.  Every setting is a key of the ``fetch``
    config section (:func:`fetch_settings`; defaults in the schema).

``merge``
    :func:`merge` joins the shard files back onto the manifest: one row per manifest row
    (malformed rows included) plus a JSON summary with the alive fraction.

Where the bytes come from
    ``http://`` and ``https://`` URLs are fetched with one shared ``requests.Session``
    (connection pool sized to the number of worker threads), per-request (connect, read)
    timeouts, streamed with a size cap, redirects followed up to a limit.  ``file://`` URLs
    and plain local paths (relative ones are relative to the working directory) are read
    from disk with the same size and decode checks; local images are also copied into the
    content-addressed store so that later stages see one layout.  Any other scheme is
    ``bad_scheme``.

Statuses (the ``status`` column)
    ==================== ===============================================================
    ``ok``               decoded fine; stored at ``path``
    ``http_<code>``      final HTTP error status (e.g. ``http_404``; ``http_500`` or
                         ``http_429`` once the retries are exhausted)
    ``timeout``          connect/read timed out on every attempt, or the whole download
                         (attempts, redirects, retry waits) took longer than ``total_timeout``:
                         a watchdog thread then shuts its connection down, so a server that
                         drips bytes (headers, body, TLS handshake) cannot hold a worker; host
                         names are resolved within that time too, and a redirect to a host
                         whose ``max_per_host`` slots are taken waits for one within it
    ``connection_error`` DNS failure, refused/reset connection, TLS error, ...
    ``too_large``        Content-Length or the streamed body exceeded ``max_bytes``
    ``not_image``        the body is not an image (HTML error page, empty body, ...)
    ``corrupt_image``    recognised as an image but fails to decode (truncated, broken),
                         or unrecognisable bytes served with an ``image/*`` type
    ``unsupported_format`` an image in a format that is not decoded: SVG (vector; not
                         rendered), HEIC/AVIF where Pillow lacks the plugin
    ``too_small``        width or height below ``min_side``
    ``decompression_bomb`` width x height above ``max_pixels``
    ``redirect_loop``    too many redirects (a loop, or a chain longer than the limit)
    ``bad_scheme``       not http(s), ``file://`` or a local path (``ftp://``, ``data:``, ...)
    ``bad_url``          an http(s) URL without a host or with a port outside 0-65535
    ``opted_out``        the reply's ``X-Robots-Tag`` says ``noai`` or ``noimageai`` (to every
                         agent or to groundwords); not downloaded (``honour_noai: false``
                         turns this off)
    ``file_not_found``   a local path that does not exist / is not a regular file
    ``error``            an unexpected exception; its message is in the ``error`` column.
                         One bad image never stops the run.
    ==================== ===============================================================

    Retries: 5xx, 408, 429, connection errors and timeouts are retried up to ``retries``
    times with exponential backoff (``backoff * 2**n``, a little jitter), honouring a
    ``Retry-After`` header on 429/503; every wait is capped at ``max_retry_wait``, and no
    retry starts that the ``total_timeout`` of the download leaves no time for.  ``attempts``
    counts the attempts of *all* runs: after ``max_attempts`` of them a transient failure is
    final (kept on resume).

Resume
    Every finished id is appended as one JSON line to ``{out_tsv}.partial`` (flushed per
    line), so a killed run loses at most the downloads in flight.  On start, records found
    in ``.partial`` (and in an existing ``out_tsv``) are reused when they are ``ok`` and
    their image file still exists, or when their status is permanent
    (:data:`PERMANENT_STATUSES`), or when ``max_attempts`` attempts have been made; other
    transient failures (timeouts, connection errors, 5xx, 429, ``error``, ...) are fetched
    again.  Ctrl-C (SIGINT) or SIGTERM stops a run within a second or so: queued ids are
    dropped, the watchdog cuts the connections in flight, the journal keeps every finished
    id, and the command exits with status 130.  ``.partial`` is removed once ``out_tsv`` has
    been written (atomically).  The CLI exits immediately when ``out_tsv`` already
    covers exactly the shard's ids (``--force`` fetches everything again).

Limits
    The decompression-bomb guard sets Pillow's process-global ``Image.MAX_IMAGE_PIXELS``
    (and turns ``DecompressionBombWarning`` into an error) for the duration of
    :func:`fetch_shard`, restoring both afterwards, so do not run two shards with different
    ``max_pixels`` in threads of one process.  Cookies are not kept between requests.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import email.utils
import hashlib
import http.cookiejar
import ipaddress
import io
import itertools
import json
import logging
import math
import mimetypes
import os
import random
import re
import signal
import socket
import stat
import struct
import sys
import tarfile
import threading
import time
import warnings
import zlib
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator
from urllib.parse import urlsplit
from urllib.request import url2pathname

import pandas as pd
import requests
from PIL import Image, UnidentifiedImageError
from requests.adapters import HTTPAdapter
from tqdm import tqdm
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, ReadTimeoutError

from groundwords import __version__ as _VERSION
from groundwords.cli import UserError, run_cli, setup_logging
from groundwords.config import add_section_arguments, section_settings
from groundwords.data.images import (
    forget_tar,
    has_alpha,
    read_tar_member,
    split_tar_path,
    tar_member_path,
    to_rgb,
)
from groundwords.data.manifest import COLUMNS as MANIFEST_COLUMNS
from groundwords.files import atomic_path, read_tsv, write_json, write_tsv

log = logging.getLogger("groundwords.data.fetch")

SHARD_COLUMNS = [
    "id", "url", "status", "http_status", "attempts", "bytes", "sha256", "path",
    "width", "height", "format", "error", "elapsed_s",
]
MERGED_COLUMNS = MANIFEST_COLUMNS + ["path", "sha256"]

#: Statuses kept on resume (fetching again would give the same answer).  ``ok`` is kept
#: only while its image file exists; every other status is fetched again.
PERMANENT_STATUSES = frozenset({
    "http_404", "http_403", "http_410", "not_image", "corrupt_image", "too_small",
    "too_large", "bad_scheme", "bad_url", "decompression_bomb", "file_not_found", "unsupported_format",
    "opted_out",
})

DEFAULT_USER_AGENT = (
    f"groundwords/{_VERSION} (research image fetcher for grounded word embeddings) "
    f"python-requests/{requests.__version__}"
)

#: Pillow format name -> file extension (default: the format name lower-cased).
_EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "TIFF": "tif"}

#: Magic numbers of common image formats (a body starting with one is "meant" to be an image).
_IMAGE_MAGIC = (
    b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
)

#: Exceptions Pillow raises on broken image data (anything else is reported as ``error``).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, struct.error, zlib.error)

_CHUNK = 64 * 1024
_HEX = re.compile(r"[0-9a-fA-F]+")


# ---------------------------------------------------------------------------------------------
# Outcomes


class _Fail(Exception):
    """A final, classified outcome for one id: ``status`` plus optional record fields."""

    def __init__(self, status: str, error: str = "", **fields):
        super().__init__(status)
        self.status, self.error, self.fields = status, error, fields


class _Retry(_Fail):
    """A transient outcome: retried while attempts are left, else final like :class:`_Fail`."""

    def __init__(self, status: str, error: str = "", retry_after: float | None = None, **fields):
        super().__init__(status, error, **fields)
        self.retry_after = retry_after


class _Cancelled(Exception):
    """The run is being stopped (Ctrl-C or an error in the main thread)."""


def _one_line(msg: str, limit: int = 300) -> str:
    msg = " ".join(str(msg).split())
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def _exc_message(e: BaseException) -> str:
    return _one_line(f"{type(e).__name__}: {e}")


def parse_retry_after(value: str | None, cap: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), cap)


# ---------------------------------------------------------------------------------------------
# Decoding and storage


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


#: X-Robots-Tag directives that ask not to use the image for AI training (as img2dataset)
AI_OPT_OUT = frozenset({"noai", "noimageai"})
_AGENT = "groundwords"
_VALUED_DIRECTIVES = frozenset({"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"})


def opts_out_of_ai(x_robots_tag: str) -> bool:
    """True when an ``X-Robots-Tag`` value says ``noai``/``noimageai`` to every agent or to
    groundwords (``otherbot: noai`` addresses another crawler only)."""
    agent = ""
    for part in x_robots_tag.lower().split(","):
        part = part.strip()
        head, sep, rest = part.partition(":")
        if sep and head.strip() not in _VALUED_DIRECTIVES:
            agent, part = head.strip(), rest.strip()
        if part in AI_OPT_OUT and agent in ("", "*", _AGENT):
            return True
    return False


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


# ---------------------------------------------------------------------------------------------
# Downloading


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


# ---------------------------------------------------------------------------------------------
# Deadlines: every socket a download uses is registered with it, and a watchdog thread shuts
# them down when its deadline passes (or the run is stopped), whatever the server does: slow
# headers, a body dripping one byte a second, a stalled TLS handshake, a chain of redirects.
# Per-receive timeouts alone cannot bound that (each byte that arrives restarts them).

_current = threading.local()  # .download: the _Download the calling worker thread is running


def _dup(sock: socket.socket) -> socket.socket | None:
    """A second descriptor of ``sock`` (shutting it down shuts the connection down for every
    descriptor; closing it leaves the connection open); TLS sockets included."""
    try:
        return socket.socket(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))
    except (OSError, ValueError):
        return None


class _Download:
    """The deadline of one download and the sockets it has used so far."""

    def __init__(self, deadline: float, gate: Callable[[str, float], None] | None = None):
        self.deadline = deadline
        #: ``gate(host, deadline)`` returns once the download may connect to ``host`` (max_per_host)
        self.gate = gate
        self.killed = ""  # "timeout" or "cancelled" once the watchdog has cut the connections
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()

    def add(self, sock: socket.socket | None) -> None:
        dup = _dup(sock) if sock is not None else None
        if dup is None:
            return
        with self._lock:
            self._socks.append(dup)
            killed = self.killed
        if killed:
            self._shutdown([dup])

    def kill(self, why: str) -> None:
        with self._lock:
            if self.killed:
                return
            self.killed = why
            socks = list(self._socks)
        self._shutdown(socks)

    def close(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            s.close()

    @staticmethod
    def _shutdown(socks) -> None:
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Watchdog:
    """One thread that cuts the connections of downloads past their deadline, or of every
    download once ``stop`` is set (Ctrl-C)."""

    TICK = 0.05

    def __init__(self, stop: threading.Event):
        self.stop = stop
        self._active: set[_Download] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fetch-watchdog", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def track(self, deadline: float, gate: Callable[[str, float], None] | None = None) -> Iterator[_Download]:
        d = _Download(deadline, gate)
        with self._lock:
            self._active.add(d)
        _current.download = d
        try:
            yield d
        finally:
            _current.download = None
            with self._lock:
                self._active.discard(d)
            d.close()

    def _run(self) -> None:
        while not self._closed.wait(self.TICK):
            now, stopping = time.monotonic(), self.stop.is_set()
            with self._lock:
                late = [d for d in self._active if stopping or now >= d.deadline]
            for d in late:
                d.kill("cancelled" if stopping else "timeout")
        with self._lock:  # closed: whatever still runs is abandoned (the run is being stopped)
            left = list(self._active)
        for d in left:
            d.kill("cancelled")

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)


def _register(sock) -> None:
    d = getattr(_current, "download", None)
    if d is not None:
        d.add(sock)


def _gate(host: str) -> None:
    d = getattr(_current, "download", None)
    if d is not None and d.gate is not None:
        d.gate(host.strip("[]").lower(), d.deadline)


def _resolve(host: str, port: int, deadline: float) -> list[str]:
    """The addresses of ``host`` (as ``socket.create_connection`` would try them), resolved in a
    helper thread so that a slow resolver cannot hold a download past its deadline: the worker
    waits at most until ``deadline`` (a resolver call cannot be interrupted; the helper thread
    ends when it returns). Raises :class:`socket.gaierror`, or :class:`_Fail` ``timeout``."""
    try:
        ipaddress.ip_address(host.strip("[]").split("%")[0])
        return [host]  # a literal address: nothing to resolve
    except ValueError:
        pass
    done, out = threading.Event(), {}

    def run():
        try:
            out["addrs"] = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except BaseException as e:  # noqa: BLE001 - handed to the waiting worker
            out["error"] = e
        done.set()

    threading.Thread(target=run, name="fetch-dns", daemon=True).start()
    if not done.wait(max(0.0, deadline - time.monotonic())):
        raise _Fail("timeout", f"resolving {host} took longer than the download's total_timeout")
    if "error" in out:
        raise out["error"]
    return list(dict.fromkeys(sa[0] for *_, sa in out["addrs"]))


class _Watched:
    """Connection mixin: wait for the download's slot to the host (``max_per_host``, redirect
    targets included), resolve the host within the download's deadline, and register each socket
    with the download of the calling thread."""

    def _new_conn(self):
        d = getattr(_current, "download", None)
        if d is None:
            sock = super()._new_conn()
        else:
            _gate(self.host)
            try:
                addrs = _resolve(self._dns_host, self.port, d.deadline)
            except socket.gaierror as e:
                raise NameResolutionError(self.host, self, e) from e
            name, last = self._dns_host, None
            for addr in addrs:  # as create_connection does, now with the addresses resolved
                self._dns_host = addr  # only the TCP connection uses it (not Host, SNI or the certificate)
                try:
                    sock = super()._new_conn()
                    break
                except ConnectTimeoutError as e:  # NewConnectionError included
                    last = e
                finally:
                    self._dns_host = name
            else:
                raise last
        _register(sock)  # before the TLS handshake: a stalled handshake is cut too
        return sock

    def request(self, *args, **kwargs):
        if self.sock is not None:  # a kept-alive connection, reused by this download
            _gate(self.host)
            _register(self.sock)
        return super().request(*args, **kwargs)


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


def make_session(workers: int, user_agent: str, max_redirects: int) -> requests.Session:
    """One session for all threads: a connection pool per host sized to ``workers``; its
    connections are registered with the download of the thread using them (see _Watchdog)."""
    session = requests.Session()
    adapter = _WatchedAdapter(pool_connections=max(workers, 10), pool_maxsize=workers, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"User-Agent": user_agent, "Accept": "image/*,*/*;q=0.8"})
    session.max_redirects = max_redirects
    # the session keeps no cookies (a shared jar would grow without bound); cookies set
    # during one redirect chain still reach the next hop (requests keeps a per-request jar)
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return session


class Fetcher:
    """Fetches and validates single images; thread-safe, one instance per run.

    ``settings``: the ``fetch`` config section (:func:`fetch_settings`).
    """

    def __init__(self, session: requests.Session, images_dir, settings: dict, stop: threading.Event | None = None,
                 stager: Stager | None = None):
        self.session = session
        self.images_dir = Path(images_dir)
        self.stager = stager  # store: tar
        self.timeout = (settings["connect_timeout"], settings["read_timeout"])
        self.total_timeout = settings["total_timeout"]
        self.retries, self.backoff = settings["retries"], settings["backoff"]
        self.max_retry_wait = settings["max_retry_wait"]
        self.max_bytes, self.min_side = settings["max_bytes"], settings["min_side"]
        self.max_pixels = settings["max_pixels"]
        self.max_attempts = settings["max_attempts"]
        self.max_side, self.honour_noai = settings["max_side"], settings["honour_noai"]
        self.max_per_host = settings["max_per_host"]
        self._hosts: dict[str, threading.BoundedSemaphore] = {}
        self._hosts_lock = threading.Lock()
        self.stop = stop or threading.Event()
        self.watchdog = _Watchdog(self.stop)

    def close(self) -> None:
        self.watchdog.close()

    # -- one id --------------------------------------------------------------------------

    def fetch_one(self, image_id: str, url: str, prior_attempts: int = 0) -> dict | None:
        """Fetch one id and return its record (:data:`SHARD_COLUMNS`); never raises.

        ``prior_attempts``: attempts made by earlier runs (``attempts`` counts them all).
        Returns None only when the run is being cancelled.
        """
        t0 = time.monotonic()
        rec = dict.fromkeys(SHARD_COLUMNS, "")
        rec.update(id=image_id, url=url, attempts=prior_attempts, bytes=0)
        held: dict[str, threading.BoundedSemaphore] = {}  # this download's host slots
        try:
            try:
                host = urlsplit(url.strip()).hostname if url.strip().lower().startswith("http") else None
                self._hold_host(host, held, None)  # the deadline starts once a connection to the host is allowed
                with self.watchdog.track(time.monotonic() + self.total_timeout,
                                         gate=lambda h, deadline: self._hold_host(h, held, deadline)):
                    self._fetch(url, rec, prior_attempts)
            finally:
                for slot in held.values():
                    slot.release()
            rec["status"] = "ok"
        except _Cancelled:
            return None
        except _Fail as e:
            rec.update(e.fields)
            rec.update(status=e.status, error=_one_line(e.error))
        except Exception as e:  # noqa: BLE001 - one bad image must never stop the run
            log.debug("unexpected error for %s (%s)", image_id, url, exc_info=True)
            rec.update(status="error", error=_exc_message(e))
        rec["elapsed_s"] = round(time.monotonic() - t0, 3)
        return rec

    def _hold_host(self, host: str | None, held: dict, deadline: float | None) -> None:
        """Wait until fewer than ``max_per_host`` downloads hold ``host`` (0: no cap), then hold it
        for this download (``held``) until it ends; a redirect to another host waits for that
        host's slot too, within the download's ``deadline``."""
        if not self.max_per_host or not host or host in held:
            return
        with self._hosts_lock:
            slot = self._hosts.setdefault(host, threading.BoundedSemaphore(self.max_per_host))
        while True:
            wait = 0.2 if deadline is None else min(0.2, max(0.0, deadline - time.monotonic()))
            if slot.acquire(timeout=wait):
                break
            if self.stop.is_set():
                raise _Cancelled
            if deadline is not None and time.monotonic() >= deadline:
                raise _Fail("timeout", f"no connection slot for {host} (fetch.max_per_host={self.max_per_host}) "
                                       f"within total_timeout={self.total_timeout}s")
        held[host] = slot

    def _fetch(self, url: str, rec: dict, prior: int) -> None:
        kind, target = classify_url(url)
        if kind == "http":
            data, content_type = self._download(target, rec, prior)
        elif kind == "file":
            data, content_type = self._read_local(target, rec, prior)
        elif kind == "invalid":
            raise _Fail("bad_url", target)
        else:
            raise _Fail("bad_scheme", target)
        fmt, width, height = decode_image(data, content_type, min_side=self.min_side, max_pixels=self.max_pixels)
        if self.max_side and max(width, height) > self.max_side:
            data, fmt, width, height = shrink_image(data, self.max_side)
        sha = hashlib.sha256(data).hexdigest()
        if self.stager is not None:
            path = self.stager.add(data, image_path("", sha, fmt).suffix[1:])
        else:
            path = image_path(self.images_dir, sha, fmt)
            _store(data, path)
        rec.update(sha256=sha, path=str(path), width=width, height=height, format=fmt)

    # -- local files ---------------------------------------------------------------------

    def _read_local(self, path: str, rec: dict, prior: int) -> tuple[bytes, str]:
        rec["attempts"] = prior + 1
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise _Fail("file_not_found", f"no such file: {path}") from None
        if not stat.S_ISREG(st.st_mode):
            raise _Fail("file_not_found", f"not a regular file: {path}")
        if st.st_size > self.max_bytes:
            raise _Fail("too_large", f"{st.st_size} bytes > max_bytes={self.max_bytes}", bytes=st.st_size)
        with open(path, "rb") as f:
            data = f.read(self.max_bytes + 1)
        rec["bytes"] = len(data)
        if len(data) > self.max_bytes:
            raise _Fail("too_large", f"more than max_bytes={self.max_bytes}")
        return data, mimetypes.guess_type(path)[0] or ""

    # -- HTTP ----------------------------------------------------------------------------

    def _download(self, url: str, rec: dict, prior: int) -> tuple[bytes, str]:
        """GET with bounded retries; returns ``(body, content_type)`` or raises :class:`_Fail`.

        At most ``retries + 1`` attempts in this run and ``max_attempts`` in all runs; the whole
        download (attempts, redirects, waits) ends as ``timeout`` after ``total_timeout``.
        """
        download: _Download = _current.download
        for attempt in itertools.count(1):
            if self.stop.is_set():
                raise _Cancelled
            rec.update(attempts=prior + attempt, http_status="", bytes=0)  # describe the last attempt
            try:
                result = self._attempt(url, rec)
                if download.killed:  # a cut connection can look like a short, complete reply
                    self._raise_killed(download)
                return result
            except _Retry as e:
                if download.killed:
                    self._raise_killed(download)
                if attempt > self.retries or prior + attempt >= self.max_attempts:
                    raise
                wait = self.backoff * 2 ** (attempt - 1) * (1 + 0.25 * random.random())
                if e.retry_after is not None:
                    wait = max(wait, e.retry_after)
                wait = min(wait, self.max_retry_wait)
                if time.monotonic() + wait >= download.deadline:
                    e.error += f" (no time left for a retry within total_timeout={self.total_timeout}s)"
                    raise
                log.debug("%s: %s, retry %d in %.2fs", url, e.status, attempt, wait)
                if self.stop.wait(wait):
                    raise _Cancelled from None
            except _Cancelled:
                raise
            except Exception:
                if download.killed:  # whatever the cut connection raised
                    self._raise_killed(download)
                raise
        raise AssertionError("unreachable")

    def _raise_killed(self, download: _Download):
        if download.killed == "cancelled":
            raise _Cancelled from None
        raise _Fail("timeout", f"download took longer than total_timeout={self.total_timeout}s") from None

    def _attempt(self, url: str, rec: dict) -> tuple[bytes, str]:
        try:
            resp = self.session.get(url, stream=True, timeout=self.timeout, allow_redirects=True)
        except requests.TooManyRedirects as e:
            raise _Fail("redirect_loop", _exc_message(e)) from None
        except requests.Timeout as e:  # ConnectTimeout, ReadTimeout (before the headers)
            raise _Retry("timeout", _exc_message(e)) from None
        except requests.exceptions.SSLError as e:  # certificate problems do not go away
            raise _Fail("connection_error", _exc_message(e)) from None
        except requests.ConnectionError as e:
            raise _Retry("connection_error", _exc_message(e)) from None
        except requests.exceptions.InvalidSchema as e:  # e.g. a redirect to ftp://
            raise _Fail("bad_scheme", _exc_message(e)) from None
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as e:
            raise _Fail("bad_url", f"invalid URL: {_exc_message(e)}") from None

        with resp:
            code = resp.status_code
            rec["http_status"] = code
            content_type = resp.headers.get("Content-Type", "")
            if code == 429 or code == 408 or code >= 500:
                retry_after = None
                if code in (429, 503):
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"), self.max_retry_wait)
                raise _Retry(f"http_{code}", f"HTTP {code} {resp.reason or ''}".strip(), retry_after=retry_after)
            if not 200 <= code < 300:
                raise _Fail(f"http_{code}", f"HTTP {code} {resp.reason or ''}".strip())

            robots = resp.headers.get("X-Robots-Tag", "")
            if self.honour_noai and robots and opts_out_of_ai(robots):
                raise _Fail("opted_out", f"X-Robots-Tag: {robots}")

            length = resp.headers.get("Content-Length", "")
            if length.strip().isdigit() and int(length) > self.max_bytes:
                rec["bytes"] = int(length)
                raise _Fail("too_large", f"Content-Length {length} > max_bytes={self.max_bytes}")

            body = bytearray()
            deadline = _current.download.deadline
            try:
                for chunk in resp.iter_content(_CHUNK):
                    body += chunk
                    rec["bytes"] = len(body)
                    if len(body) > self.max_bytes:
                        raise _Fail("too_large", f"body exceeds max_bytes={self.max_bytes}")
                    if time.monotonic() > deadline:
                        raise _Fail("timeout", f"download took longer than total_timeout={self.total_timeout}s")
                    if self.stop.is_set():
                        raise _Cancelled
            except requests.ConnectionError as e:  # requests wraps a read timeout mid-body in this
                is_timeout = bool(e.args) and isinstance(e.args[0], ReadTimeoutError)
                raise _Retry("timeout" if is_timeout else "connection_error", _exc_message(e)) from None
            except requests.exceptions.ChunkedEncodingError as e:  # connection dropped mid-body
                raise _Retry("connection_error", _exc_message(e)) from None
            except requests.exceptions.ContentDecodingError as e:  # broken gzip/deflate
                raise _Fail("error", _exc_message(e)) from None
            return bytes(body), content_type


def classify_url(url: str) -> tuple[str, str]:
    """``("http", url)``, ``("file", local_path)``, ``("invalid", reason)`` (an http(s) URL
    without a host or with a port outside 0-65535) or ``("bad", reason)`` (another scheme)."""
    url = url.strip()
    if not url:
        return "bad", "empty URL"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port outside 0-65535
    except ValueError as e:
        return "invalid", f"invalid URL: {e}"
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return ("http", url) if parts.hostname else ("invalid", "invalid URL: no host")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            return "bad", f"remote file URL: {url}"
        return "file", url2pathname(parts.path)
    if scheme == "" or len(scheme) == 1:  # a plain path (or a Windows drive letter)
        return "file", url
    return "bad", f"unsupported URL scheme {scheme!r}"


# ---------------------------------------------------------------------------------------------
# Shards


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
    the key.  See the module docstring for statuses, retries and resume.  ``resume=False``
    ignores (and deletes) an existing ``.partial`` and ``out_tsv``'s records; stored images are
    still never rewritten.
    """
    settings = fetch_settings(settings)
    workers = settings["workers"]
    manifest = read_manifest(manifest_path)
    ids = select_shard(manifest, shard, num_shards)
    out_tsv, partial = Path(out_tsv), partial_path(out_tsv)
    out_tsv.parent.mkdir(parents=True, exist_ok=True)

    records, prior = load_previous(out_tsv, ids, settings["max_attempts"]) if resume else ({}, {})
    # start the journal afresh with just the reusable records (compacts repeated resumes)
    with atomic_path(partial) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for rec in records.values():
            f.write(json.dumps(rec) + "\n")
    todo = [(i, u, prior.get(i, 0)) for i, u in ids.items() if i not in records]
    log.info("shard %d/%d: %d ids, %d reused from an earlier run, %d to fetch",
             shard, num_shards, len(ids), len(records), len(todo))

    t0 = time.monotonic()
    stop = threading.Event()
    session = make_session(workers, settings["user_agent"] or DEFAULT_USER_AGENT, settings["max_redirects"])
    to_tar = settings["store"] == "tar"
    if not resume:
        staging_path(out_tsv).unlink(missing_ok=True)
    stager = Stager(staging_path(out_tsv)) if to_tar else None
    fetcher = Fetcher(session, images_dir, settings, stop=stop, stager=stager)
    bar = tqdm(total=len(ids), initial=len(records), unit="img", desc=f"fetch {shard}/{num_shards}",
               file=sys.stderr, disable=not progress, dynamic_ncols=True,
               mininterval=0.5 if sys.stderr.isatty() else 30)  # log files: a line every 30 s
    n_ok = sum(r["status"] == "ok" for r in records.values())
    try:
        with session, contextlib.closing(fetcher), _pillow_bomb_guard(settings["max_pixels"]), \
                open(partial, "a", encoding="utf-8") as journal, \
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

    if to_tar:
        write_tar_shard(tar_path(out_tsv), records, ids)
    df = _records_frame(records, ids)
    write_tsv(df, out_tsv)
    partial.unlink(missing_ok=True)
    if to_tar:
        staging_path(out_tsv).unlink(missing_ok=True)

    elapsed = time.monotonic() - t0
    counts = _status_counts(df["status"])
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
    log.info("shard %d/%d done: %d ids, alive %.1f%% (%d ok), fetched %d in %.1fs (%.1f/s); %s",
             shard, num_shards, len(ids), 100 * n_ok / max(len(ids), 1), n_ok, len(todo), elapsed,
             len(todo) / elapsed if elapsed > 0 else 0.0,
             " ".join(f"{k}={v}" for k, v in counts.items()) or "no ids")
    return df


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


# ---------------------------------------------------------------------------------------------
# Merge


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


# ---------------------------------------------------------------------------------------------
# CLI


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


if __name__ == "__main__":
    rc = run_cli(main)
    if rc == 130:
        # Ctrl-C / SIGTERM: the journal and the stores are closed (every `with` has exited); the
        # download threads still being cut off by the watchdog need not be waited for at exit
        # (a worker killed mid-write leaves what kill -9 leaves, which a rerun resumes from)
        sys.stderr.flush()
        os._exit(rc)
    sys.exit(rc)
