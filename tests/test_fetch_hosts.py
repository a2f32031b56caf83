"""Fetch: per-host politeness reaches redirect targets, and name resolution counts against
``total_timeout`` (issue #11). Loopback server; host names ``*.test`` resolve to 127.0.0.1
through a patched ``socket.getaddrinfo`` (the resolver every connection goes through)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from _httpserver import Reply, http_server  # noqa: F401 - http_server is a fixture
from test_fetch import IMG, PNG, one_row_each, run_shard, site  # noqa: F401 - site is a fixture

_real_getaddrinfo = socket.getaddrinfo


@pytest.fixture
def fake_dns(monkeypatch):
    """``*.test`` -> 127.0.0.1; ``slow*.test`` after ``delay['s']`` seconds."""
    delay = {"s": 0.0}

    def getaddrinfo(host, port, *a, **k):
        if isinstance(host, str) and host.endswith(".test"):
            if host.startswith("slow"):
                time.sleep(delay["s"])
            host = "127.0.0.1"
        return _real_getaddrinfo(host, port, *a, **k)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return delay


def _counting(state, lock, seconds=0.2):
    """A handler that holds each request ``seconds`` and records the most requests in flight at once."""
    def slow(hit):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(seconds)
        with lock:
            state["now"] -= 1
        return Reply(body=PNG, headers=IMG)
    return slow


def test_max_per_host_applies_to_redirect_targets(site, fake_dns):
    """Six origin hosts (one URL each) all redirect to one image host: with max_per_host 2 no
    more than two downloads reach the image host at a time (the origins' own caps never bind)."""
    lock, state = threading.Lock(), {"now": 0, "max": 0}
    port = site.server.port
    urls = []
    for i in range(6):
        site.server.route(f"/img/{i}.png", _counting(state, lock))
        site.server.route(f"/go/{i}", Reply(status=302, headers={"Location": f"http://localhost:{port}/img/{i}.png"}))
        urls.append(f"http://origin{i}.test:{port}/go/{i}")
    df, _ = run_shard(site, one_row_each(site, urls), workers=8, max_per_host=2)
    assert set(df["status"]) == {"ok"} and state["max"] == 2
    state["max"] = 0
    df, _ = run_shard(site, one_row_each(site, urls, name="m2.tsv"), workers=8, max_per_host=0, resume=False)
    assert set(df["status"]) == {"ok"} and state["max"] > 2  # without the cap they overlap


def test_a_redirect_waiting_for_a_busy_host_ends_as_timeout(site, fake_dns):
    """The slot of a redirect target is waited for within total_timeout."""
    port = site.server.port
    site.server.route("/busy.png", Reply(body=PNG, headers=IMG, delay=3.0))
    site.server.route("/to-busy", Reply(status=302, headers={"Location": f"http://localhost:{port}/busy.png"}))
    urls = [f"http://localhost:{port}/busy.png", f"http://other.test:{port}/to-busy"]
    t0 = time.monotonic()
    df, _ = run_shard(site, one_row_each(site, urls), workers=2, max_per_host=1, total_timeout=1.0)
    by_url = dict(zip(df["url"], df["status"]))
    assert by_url[urls[1]] == "timeout"
    assert "fetch.max_per_host=1" in df.set_index("url").loc[urls[1], "error"]
    assert time.monotonic() - t0 < 6


def test_slow_name_resolution_counts_against_total_timeout(site, fake_dns):
    port = site.server.port
    site.server.route("/dns.png", Reply(body=PNG, headers=IMG))
    fake_dns["s"] = 4.0
    url = f"http://slow1.test:{port}/dns.png"
    t0 = time.monotonic()
    df, _ = run_shard(site, one_row_each(site, [url]), total_timeout=1.0, retries=0)
    elapsed = time.monotonic() - t0
    assert df.loc[0, "status"] == "timeout" and "resolving slow1.test" in df.loc[0, "error"]
    assert elapsed < 1.0 + 1.5  # not the resolver's 4 s
    fake_dns["s"] = 0.0  # a quick resolver: the same URL is fine
    df, _ = run_shard(site, one_row_each(site, [url], name="m2.tsv"), total_timeout=1.0, resume=False)
    assert df.loc[0, "status"] == "ok"
