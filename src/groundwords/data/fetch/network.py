"""The shared ``requests`` session (:func:`make_session`) and the deadlines of downloads.

Deadlines: every socket a download uses is registered with it, and a watchdog thread shuts
them down when its deadline passes (or the run is stopped), whatever the server does: slow
headers, a body dripping one byte a second, a stalled TLS handshake, a chain of redirects.
Per-receive timeouts alone cannot bound that (each byte that arrives restarts them).
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    NameResolutionError,
)

from groundwords.data.fetch.outcomes import _Fail

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
