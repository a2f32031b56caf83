"""A scriptable HTTP/1.1 test server on 127.0.0.1 (used by tests/test_fetch.py and benchmarks).

Routes map a path to a :class:`Reply` or to a function ``(hit_number) -> Reply`` (hit numbers
count from 1 since the last :meth:`LocalServer.reset`), so stateful behaviour such as
"500 once, then 200" is one line.  Every request is counted per path.

    server = LocalServer().start()
    server.route("/a.png", Reply(body=png_bytes, headers={"Content-Type": "image/png"}))
    requests.get(server.url("/a.png"))
    server.hits["/a.png"]  # -> 1
    server.stop()

The fixture :func:`http_server` yields one such server per test session; import it into a
test module (``from _httpserver import http_server``) to use it.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Union
from urllib.parse import urlsplit

try:  # the benchmarks reuse this server without needing pytest
    import pytest
except ImportError:  # pragma: no cover
    pytest = None


@dataclass
class Reply:
    """What the server sends for one request."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: send the body with chunked transfer encoding instead of a Content-Length
    chunked: bool = False
    #: seconds to sleep before sending anything (a server that is slow to answer)
    delay: float = 0.0
    #: if set: send the headers and this many body bytes, then stall for ``stall`` seconds
    stall_after: int | None = None
    stall: float = 0.0
    #: if set: send the status line, headers and body one byte every ``drip`` seconds (a
    #: slow-drip server: each byte arrives well within any per-receive timeout)
    drip: float | None = None
    #: with ``drip``: send the status line and headers at once, drip the body only
    drip_body_only: bool = False


Route = Union[Reply, Callable[[int], Reply]]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like real image hosts
    timeout = 10  # drop idle keep-alive connections eventually
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: "_Server"

    def log_message(self, format, *args):  # noqa: A002 - silence the access log
        pass

    def do_GET(self):  # noqa: N802
        owner = self.server.owner
        path = urlsplit(self.path).path
        hit = owner._count(path)
        if owner.latency:
            owner.stop_event.wait(owner.latency)
        route = owner.routes.get(path)
        reply = route(hit) if callable(route) else route
        if reply is None:
            reply = Reply(404, b"not found", {"Content-Type": "text/plain"})
        try:
            self._send(reply, owner.stop_event)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True  # the client gave up (timeouts, too_large aborts)

    def _send(self, reply: Reply, stop: threading.Event) -> None:
        if reply.delay and stop.wait(reply.delay):
            return
        if reply.drip is not None:
            self._drip(reply, stop)
            return
        self.send_response(reply.status)
        for k, v in reply.headers.items():
            self.send_header(k, v)
        if reply.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        body = reply.body
        if reply.stall_after is not None:
            self._write(body[: reply.stall_after], reply.chunked)
            self.wfile.flush()
            if stop.wait(reply.stall):
                return
            body = body[reply.stall_after:]
        self._write(body, reply.chunked)
        if reply.chunked:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _drip(self, reply: Reply, stop: threading.Event) -> None:
        head = [f"HTTP/1.1 {reply.status} {self.responses.get(reply.status, ('',))[0]}"]
        head += [f"{k}: {v}" for k, v in reply.headers.items()]
        head += [f"Content-Length: {len(reply.body)}", "", ""]
        head_bytes = "\r\n".join(head).encode("latin-1")
        if reply.drip_body_only:
            self.wfile.write(head_bytes)
            data = reply.body
        else:
            data = head_bytes + reply.body
        for i in range(len(data)):
            self.wfile.write(data[i:i + 1])
            if stop.wait(reply.drip):
                return
        self.close_connection = True

    def _write(self, data: bytes, chunked: bool) -> None:
        if not chunked:
            self.wfile.write(data)
            return
        for i in range(0, len(data), 16384):
            piece = data[i:i + 16384]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # handler threads never block interpreter exit
    block_on_close = False
    owner: "LocalServer"

    def handle_error(self, request, client_address):  # clients hanging up are expected
        pass


class LocalServer:
    """A threaded HTTP server on an ephemeral port with per-path hit counters."""

    def __init__(self, latency: float = 0.0, tls: tuple[str, str] | None = None):
        self.tls = tls  # (certfile, keyfile): serve HTTPS
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.latency = latency  # seconds added to every request
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "LocalServer":
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        if self.tls:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="test-http-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()  # wakes sleeping/stalling handlers
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    def url(self, path: str) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"

    def route(self, path: str, reply: Route) -> str:
        """Register ``path``; returns its full URL."""
        self.routes[path] = reply
        return self.url(path)

    def reset(self) -> None:
        """Forget the hit counts (stateful routes start over)."""
        with self._lock:
            self.hits.clear()

    @property
    def total_hits(self) -> int:
        with self._lock:
            return sum(self.hits.values())

    def _count(self, path: str) -> int:
        with self._lock:
            self.hits[path] += 1
            return self.hits[path]

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if pytest is not None:

    @pytest.fixture(scope="session")
    def http_server():
        """A running :class:`LocalServer` for the whole test session (routes accumulate)."""
        with LocalServer() as server:
            yield server
