"""Fetching one id: :class:`Fetcher` (HTTP with retries, local files), the URL and reply-header rules.
"""

from __future__ import annotations

import email.utils
import hashlib
import itertools
import logging
import math
import mimetypes
import os
import random
import stat
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import (
    ReadTimeoutError,
)

from groundwords import __version__ as _VERSION
from groundwords.data.fetch.network import _current, _Download, _Watchdog
from groundwords.data.fetch.outcomes import (
    SHARD_COLUMNS,
    _Cancelled,
    _exc_message,
    _Fail,
    _one_line,
    _Retry,
)
from groundwords.data.fetch.store import Stager, _store, image_path
from groundwords.data.fetch.validate import decode_image, shrink_image
from groundwords.data.urls import classify_url

log = logging.getLogger("groundwords.data.fetch")


DEFAULT_USER_AGENT = (
    f"groundwords/{_VERSION} (research image fetcher for grounded word embeddings) "
    f"python-requests/{requests.__version__}"
)


_CHUNK = 64 * 1024


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
        resp = self._get(url)
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

            return self._read_body(resp, rec), content_type

    def _get(self, url: str) -> requests.Response:
        """The streamed GET (redirects followed); request errors raise :class:`_Fail` / :class:`_Retry`."""
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
        return resp

    def _read_body(self, resp: requests.Response, rec: dict) -> bytes:
        """The body, streamed with the ``max_bytes`` cap and the download's deadline."""
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
        return bytes(body)
