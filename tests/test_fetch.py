"""Tests for groundwords.data.fetch against a local HTTP server (tests/_httpserver.py)."""

from __future__ import annotations

import hashlib
import io
import json
import random
import socket
import struct
import sys
import time
import zlib
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _httpserver import Reply, http_server  # noqa: E402,F401 - http_server is a fixture

from groundwords.cli import UserError, run_cli  # noqa: E402
from groundwords.data import fetch  # noqa: E402
from groundwords.data.fetch import downloader as fetch_downloader
from groundwords.data.fetch import shard as fetch_run
from groundwords.files import read_tsv, write_tsv

# Fast settings: a slow response costs (retries + 1) * read_timeout = 1.5 s.
OPTS = dict(workers=8, connect_timeout=2, read_timeout=0.5, retries=2, backoff=0.01,
            max_bytes=50_000, min_side=16, max_pixels=1_000_000, max_redirects=5, progress=False)


# ---------------------------------------------------------------------------------------------
# test data


def image_bytes(fmt: str, size=(64, 48), color=(200, 30, 30)) -> bytes:
    im = Image.new("RGB", size, color)
    im.putpixel((1, 1), (0, 0, 0))
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims huge dimensions but holds almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def image_id(url: str) -> str:
    return hashlib.sha1(url.encode()).hexdigest()[:16]


def sha256_file(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


RNG = random.Random(0)
PNG = image_bytes("PNG", color=(10, 200, 10))
JPG = image_bytes("JPEG", size=(80, 60), color=(10, 10, 200))
FLAKY = image_bytes("PNG", color=(1, 2, 3))
RATE = image_bytes("JPEG", color=(4, 5, 6))
TARGET = image_bytes("PNG", color=(7, 8, 9))
NOISE = bytes(RNG.getrandbits(8) for _ in range(200_000))
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64"/></svg>'
IMG = {"Content-Type": "image/png"}
JPEG = {"Content-Type": "image/jpeg"}


def flaky(hit: int) -> Reply:
    return Reply(500, b"oops") if hit == 1 else Reply(body=FLAKY, headers=IMG)


def rate_limited(hit: int) -> Reply:
    if hit == 1:
        return Reply(429, b"slow down", {"Retry-After": "1"})
    return Reply(body=RATE, headers=JPEG)


# path -> (reply, expected status); the "slow" ones are left out of FAST manifests
ROUTES = {
    "/good.png": (Reply(body=PNG, headers=IMG), "ok"),
    "/good.jpg": (Reply(body=JPG, headers=JPEG), "ok"),
    "/missing.jpg": (Reply(404, b"<html>gone</html>", {"Content-Type": "text/html"}), "http_404"),
    "/flaky.png": (flaky, "ok"),
    "/always500.png": (Reply(500, b"down"), "http_500"),
    "/page.html": (Reply(body=b"<!doctype html><html><body>hi</body></html>",
                         headers={"Content-Type": "text/html"}), "not_image"),
    "/truncated.png": (Reply(body=image_bytes("PNG", (64, 64), (90, 90, 90))[:60], headers=IMG), "corrupt_image"),
    "/garbage.jpg": (Reply(body=NOISE[:3000], headers=JPEG), "corrupt_image"),
    "/big.jpg": (Reply(body=NOISE, headers=JPEG), "too_large"),
    "/big-chunked.jpg": (Reply(body=NOISE, headers=JPEG, chunked=True), "too_large"),
    "/loop": (Reply(302, b"", {"Location": "/loop"}), "redirect_loop"),
    "/redirect.png": (Reply(301, b"", {"Location": "/target.png"}), "ok"),
    "/target.png": (Reply(body=TARGET, headers=IMG), None),  # only reached through /redirect.png
    "/tiny.png": (Reply(body=image_bytes("PNG", (4, 4)), headers=IMG), "too_small"),
    "/drawing.svg": (Reply(body=SVG, headers={"Content-Type": "image/svg+xml"}), "unsupported_format"),
    "/drawing-xml.bin": (Reply(body=b'<?xml version="1.0"?>\n' + SVG, headers={"Content-Type": "application/octet-stream"}),
                         "unsupported_format"),
    "/bomb.png": (Reply(body=png_header_only(20_000, 20_000), headers=IMG), "decompression_bomb"),
    # 1.1 Mpx: between max_pixels and 2 * max_pixels, where Pillow only warns
    "/bomb-warn.png": (Reply(body=image_bytes("PNG", (1100, 1000)), headers=IMG), "decompression_bomb"),
}
SLOW_ROUTES = {
    "/ratelimited.jpg": (rate_limited, "ok"),
    "/slow.png": (Reply(body=PNG, headers=IMG, delay=5), "timeout"),
    "/stall.png": (Reply(body=image_bytes("PNG", (64, 64), (3, 3, 3)), headers=IMG, stall_after=20, stall=5),
                   "timeout"),
}
# statuses not in fetch.PERMANENT_STATUSES: fetched again on every resume
TRANSIENT = {"/always500.png", "/loop", "/slow.png", "/stall.png"}


class Site:
    """The test server's routes plus local files, and the manifests built from them."""

    def __init__(self, server, tmp: Path):
        self.server = server
        self.tmp = tmp
        self.expected: dict[str, str] = {}  # url -> expected status
        for path, (reply, status) in {**ROUTES, **SLOW_ROUTES}.items():
            url = server.route(path, reply)
            if status is not None:
                self.expected[url] = status
        local = tmp / "local files"
        local.mkdir()
        (local / "local.jpg").write_bytes(image_bytes("JPEG", color=(250, 250, 0)))
        (local / "plain.png").write_bytes(image_bytes("PNG", color=(0, 250, 250)))
        self.expected[(local / "local.jpg").as_uri()] = "ok"
        self.expected[str(local / "plain.png")] = "ok"
        self.expected[(local / "nope.jpg").as_uri()] = "file_not_found"
        with socket.socket() as sock:  # a port nobody listens on
            sock.bind(("127.0.0.1", 0))
            closed_port = sock.getsockname()[1]
        self.expected[f"http://127.0.0.1:{closed_port}/refused.jpg"] = "connection_error"
        self.expected["ftp://127.0.0.1/pub/x.jpg"] = "bad_scheme"
        self.expected["data:image/png;base64,AAAA"] = "bad_scheme"

    def url(self, path: str) -> str:
        return self.server.url(path)

    def urls(self, fast: bool = False) -> list[str]:
        slow = {self.url(p) for p in SLOW_ROUTES}
        return [u for u in self.expected if not (fast and u in slow)]

    def manifest(self, name: str = "manifest.tsv", fast: bool = False) -> Path:
        """ok rows for every URL (good.png twice: a duplicate URL), plus malformed rows."""
        urls = self.urls(fast)
        urls.insert(3, self.url("/good.png"))
        rows = [dict(id=image_id(u), caption=f"caption {i}", url=u, status="ok") for i, u in enumerate(urls)]
        rows += [
            dict(id=image_id("http://x/e.jpg"), caption="", url="http://x/e.jpg", status="empty_caption"),
            dict(id="", caption="", url="", status="malformed_columns"),
            dict(id="", caption="a dog", url="not a url", status="bad_url"),
        ]
        for r, row in enumerate(rows):
            row.update(rank=r, row=10 + r)
        path = self.tmp / name
        write_tsv(pd.DataFrame(rows, columns=fetch.MANIFEST_COLUMNS), path)
        return path

    def hits(self, path: str) -> int:
        return self.server.hits[path]


@pytest.fixture
def site(http_server, tmp_path):  # noqa: F811
    s = Site(http_server, tmp_path)
    http_server.reset()
    return s


def run_shard(site: Site, manifest: Path, shard=0, k=1, **kw) -> tuple[pd.DataFrame, Path]:
    out = site.tmp / "fetch" / f"shard-{shard}-of-{k}.tsv"
    fetch.fetch_shard(manifest, shard, k, out, site.tmp / "images", **{**OPTS, **kw})
    return read_tsv(out, dtype=str), out


# ---------------------------------------------------------------------------------------------
# fetch_shard


def test_every_row_gets_its_expected_status(site):
    manifest = site.manifest()
    df, out = run_shard(site, manifest)

    assert list(df.columns) == fetch.SHARD_COLUMNS
    assert list(df["id"]) == sorted(df["id"])
    assert len(df) == len(site.expected)  # one row per unique id
    got = dict(zip(df["url"], df["status"]))
    assert got == site.expected
    assert not fetch.partial_path(out).exists()

    rows = df.set_index("url")
    # retries: 500 once then 200; 500 until the retries run out; 429 with Retry-After: 1
    assert rows.loc[site.url("/flaky.png"), "attempts"] == "2"
    assert rows.loc[site.url("/always500.png"), ["attempts", "http_status"]].tolist() == ["3", "500"]
    assert site.hits("/always500.png") == 3
    assert site.hits("/slow.png") == 3 and site.hits("/stall.png") == 3
    rl = rows.loc[site.url("/ratelimited.jpg")]
    assert rl["attempts"] == "2" and float(rl["elapsed_s"]) >= 0.9
    refused = next(u for u, st in site.expected.items() if st == "connection_error")
    assert rows.loc[refused, ["attempts", "http_status"]].tolist() == ["3", ""]
    assert rows.loc[site.url("/missing.jpg"), "http_status"] == "404"
    assert rows.loc[site.url("/missing.jpg"), "attempts"] == "1"  # 404 is not retried
    assert int(rows.loc[site.url("/big.jpg"), "bytes"]) == len(NOISE)  # from Content-Length
    assert 50_000 < int(rows.loc[site.url("/big-chunked.jpg"), "bytes"]) < len(NOISE)  # aborted stream
    assert site.hits("/loop") == 6  # first request + max_redirects
    assert rows.loc[site.url("/tiny.png"), ["width", "height"]].tolist() == ["4", "4"]
    for url in (site.url("/page.html"), site.url("/bomb.png"), "ftp://127.0.0.1/pub/x.jpg"):
        assert rows.loc[url, "error"], url  # failures say why

    # duplicate URL fetched once; a redirect lands on its target
    assert site.hits("/good.png") == 1
    assert site.hits("/redirect.png") == 1 and site.hits("/target.png") == 1

    # stored images: original bytes, content-addressed, extension from the decoded format
    ok = df[df["status"] == "ok"]
    for _, r in ok.iterrows():
        path = Path(r["path"])
        assert path.is_file()
        assert sha256_file(path) == r["sha256"] == path.stem
        assert path.parent.name == r["sha256"][:2]
        assert path.suffix == {"PNG": ".png", "JPEG": ".jpg"}[r["format"]]
        assert r["error"] == "" and int(r["width"]) >= 16
    good = rows.loc[site.url("/good.jpg")]
    assert Path(good["path"]).read_bytes() == JPG
    assert (good["format"], good["width"], good["height"], good["bytes"]) == ("JPEG", "80", "60", str(len(JPG)))
    assert not [p for p in (site.tmp / "images").rglob("*") if p.is_file() and p.name.startswith(".")]  # no temp files
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # the guard is restored after the run


def test_sharding_partitions_ids(site):
    manifest = site.manifest(fast=True)
    k = 3
    shards = [run_shard(site, manifest, shard=i, k=k)[0] for i in range(k)]
    ids = [set(df["id"]) for df in shards]
    want = {image_id(u) for u in site.urls(fast=True)}
    assert set().union(*ids) == want
    assert sum(len(s) for s in ids) == len(want)  # no overlaps
    for i, df in enumerate(shards):
        assert all(int(x, 16) % k == i for x in df["id"])
        assert list(df["id"]) == sorted(df["id"])
    assert site.hits("/good.png") == 1


def test_empty_shard_writes_header_only(site):
    url = site.url("/good.png")
    manifest = site.tmp / "one.tsv"
    write_tsv(pd.DataFrame([dict(rank=0, row=0, id=image_id(url), caption="c", url=url, status="ok")]), manifest)
    other = 1 - int(image_id(url), 16) % 2
    _, out = run_shard(site, manifest, shard=other, k=2)
    assert out.read_text() == "\t".join(fetch.SHARD_COLUMNS) + "\n"
    assert site.server.total_hits == 0


def test_resume_from_partial_skips_done_ids(site):
    manifest = site.manifest(fast=True)
    first, out = run_shard(site, manifest)
    by_url = {r["url"]: r for r in first.to_dict("records")}
    good, jpg, deleted = by_url[site.url("/good.png")], by_url[site.url("/good.jpg")], by_url[site.url("/flaky.png")]
    missing, redirect = by_url[site.url("/missing.jpg")], by_url[site.url("/redirect.png")]

    # a journal as a killed run leaves it: ok records, a permanent failure, a transient
    # failure, an ok record whose image has since been deleted, and a half-written last line
    Path(deleted["path"]).unlink()
    lines = [json.dumps(r) for r in (good, jpg, missing, deleted, {**redirect, "status": "timeout", "path": ""})]
    out.unlink()
    fetch.partial_path(out).write_text("\n".join(lines) + '\n{"id": "abc", "sta')
    site.server.reset()

    second, _ = run_shard(site, manifest)
    assert site.hits("/good.png") == site.hits("/good.jpg") == site.hits("/missing.jpg") == 0
    assert site.hits("/redirect.png") == 1  # transient status: fetched again
    assert site.hits("/flaky.png") == 2  # image file gone: fetched again (500 once, then ok)
    assert Path(deleted["path"]).is_file()
    assert dict(zip(second["url"], second["status"])) == {u: site.expected[u] for u in site.urls(fast=True)}
    assert not fetch.partial_path(out).exists()


def test_interrupted_run_resumes(site, monkeypatch):
    manifest = site.manifest(fast=True)
    urls = dict(sorted((image_id(u), u) for u in site.urls(fast=True)))
    stop_at = list(urls)[6]
    real = fetch.Fetcher.fetch_one

    def interrupted(self, image_id_, url, prior=0):
        if image_id_ == stop_at:
            raise KeyboardInterrupt
        return real(self, image_id_, url, prior)

    monkeypatch.setattr(fetch.Fetcher, "fetch_one", interrupted)
    out = site.tmp / "fetch" / "shard-0-of-1.tsv"
    with pytest.raises(KeyboardInterrupt):
        fetch.fetch_shard(manifest, 0, 1, out, site.tmp / "images", **{**OPTS, "workers": 1})
    assert not out.exists()
    journal = [json.loads(line) for line in fetch.partial_path(out).read_text().splitlines()]
    done_ids = [r["id"] for r in journal]  # one line per finished id
    assert done_ids[:6] == list(urls)[:6] and stop_at not in done_ids

    monkeypatch.setattr(fetch.Fetcher, "fetch_one", real)
    site.server.reset()
    df, _ = run_shard(site, manifest)
    done_before = {urls[r["id"]] for r in journal if r["status"] == "ok" or r["status"] in fetch.PERMANENT_STATUSES}
    for url in done_before:
        if url.startswith("http"):
            assert site.server.hits[url.split(str(site.server.port), 1)[1]] == 0, url
    assert len(df) == len(urls)
    assert dict(zip(df["url"], df["status"])) == {u: site.expected[u] for u in site.urls(fast=True)}


def test_crash_before_final_write_keeps_the_journal(site, monkeypatch):
    manifest = site.manifest(fast=True)

    def disk_full(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(fetch_run, "write_tsv", disk_full)
    with pytest.raises(OSError):
        run_shard(site, manifest)
    monkeypatch.undo()
    hits_first = site.server.total_hits
    site.server.reset()
    df, out = run_shard(site, manifest)
    # everything was journaled; only the transient failures are asked again
    assert dict(site.server.hits) == {"/always500.png": 3, "/loop": 6}
    assert hits_first > 9 and len(df) == len(site.urls(fast=True))


def test_second_run_downloads_nothing(site, capsys):
    manifest = site.manifest()
    out = site.tmp / "fetch" / "shard-0-of-1.tsv"
    argv = ["shard", "--manifest", str(manifest), "--shard", "0", "--num-shards", "1", "--out", str(out),
            "--images-dir", str(site.tmp / "images"), "--workers", "8", "--read-timeout", "0.5",
            "--retries", "2", "--backoff", "0.01", "--max-bytes", "50000", "--max-pixels", "1000000",
            "--max-redirects", "5", "--no-progress"]
    assert run_cli(fetch.main, argv) == 0
    first = read_tsv(out, dtype=str)
    assert dict(zip(first["url"], first["status"])) == site.expected
    images = sorted((p, p.stat().st_mtime_ns) for p in (site.tmp / "images").rglob("*.*"))

    site.server.reset()
    assert run_cli(fetch.main, argv) == 0  # complete: the CLI does nothing
    assert site.server.total_hits == 0

    # the library function reuses the finished file too: only transient failures are retried
    df, _ = run_shard(site, manifest)
    assert set(site.server.hits) == TRANSIENT
    volatile = ["elapsed_s", "attempts", "error"]
    assert df.drop(columns=volatile).equals(first.drop(columns=volatile))
    assert sorted((p, p.stat().st_mtime_ns) for p in (site.tmp / "images").rglob("*.*")) == images


def test_decoder_exception_becomes_error(site, monkeypatch):
    manifest = site.manifest(fast=True)
    real = fetch_downloader.decode_image

    def broken(data, *a, **k):
        if data == JPG:
            raise RuntimeError("injected decoder failure")
        return real(data, *a, **k)

    monkeypatch.setattr(fetch_downloader, "decode_image", broken)
    df, _ = run_shard(site, manifest)
    rows = df.set_index("url")
    assert rows.loc[site.url("/good.jpg"), "status"] == "error"
    assert rows.loc[site.url("/good.jpg"), "error"] == "RuntimeError: injected decoder failure"
    assert rows.loc[site.url("/good.jpg"), "path"] == ""
    others = {u: s for u, s in zip(df["url"], df["status"]) if u != site.url("/good.jpg")}
    assert others == {u: site.expected[u] for u in site.urls(fast=True) if u != site.url("/good.jpg")}


def test_bad_arguments(site):
    manifest = site.manifest(fast=True)
    with pytest.raises(UserError):
        run_shard(site, manifest, shard=3, k=3)
    with pytest.raises(UserError, match="manifest not found"):
        run_shard(site, site.tmp / "nope.tsv")
    bad = site.tmp / "bad.tsv"
    write_tsv(pd.DataFrame([dict(rank=0, row=0, id="0x12", caption="c", url="u", status="ok")]), bad)
    with pytest.raises(UserError, match="bad image id"):
        run_shard(site, bad)
    write_tsv(pd.DataFrame([dict(rank=0, id="ab", url="u")]), bad)
    with pytest.raises(UserError, match="lacks column"):
        run_shard(site, bad)


# ---------------------------------------------------------------------------------------------
# merge


def test_merge_accounts_for_every_manifest_row(site, capsys):
    manifest = site.manifest(fast=True)
    shards = [run_shard(site, manifest, shard=i, k=2)[1] for i in range(2)]
    out, summary_path = site.tmp / "fetched.tsv", site.tmp / "fetch_summary.json"
    summary = fetch.merge(manifest, shards, out, summary_path)

    m = read_tsv(manifest, dtype=str)
    merged = read_tsv(out, dtype=str)
    assert list(merged.columns) == fetch.MERGED_COLUMNS
    assert len(merged) == len(m)
    assert merged[fetch.MANIFEST_COLUMNS[:5]].equals(m[fetch.MANIFEST_COLUMNS[:5]])
    for (_, mrow), (_, row) in zip(m.iterrows(), merged.iterrows()):
        if mrow["status"] != "ok":
            assert (row["status"], row["path"], row["sha256"]) == (mrow["status"], "", "")
        else:
            assert row["status"] == site.expected[row["url"]]
            assert bool(row["path"]) == (row["status"] == "ok") == bool(row["sha256"])

    n_ok = sum(s == "ok" for s in merged["status"])
    assert summary == json.loads(summary_path.read_text())
    assert summary["rows"] == len(m) and summary["well_formed"] == len(m) - 3
    assert summary["ok"] == n_ok and summary["alive_fraction"] == pytest.approx(n_ok / (len(m) - 3), abs=1e-6)
    assert summary["by_status"]["empty_caption"] == 1 and summary["by_status"]["malformed_columns"] == 1
    assert sum(summary["by_status"].values()) == len(m)
    assert summary["unique_images"] == len(set(merged.loc[merged["status"] == "ok", "sha256"]))
    assert '"alive_fraction"' in capsys.readouterr().out


def test_merge_missing_id_is_a_user_error(site, capsys):
    manifest = site.manifest(fast=True)
    shard0 = run_shard(site, manifest, shard=0, k=2)[1]
    m = read_tsv(manifest, dtype=str)
    lost = sorted(i for i, s in zip(m["id"], m["status"]) if s == "ok" and int(i, 16) % 2 == 1)[0]
    with pytest.raises(UserError, match=lost):
        fetch.merge(manifest, [shard0], site.tmp / "m.tsv", site.tmp / "s.json")
    argv = ["merge", "--manifest", str(manifest), "--out", str(site.tmp / "m.tsv"),
            "--summary", str(site.tmp / "s.json"), str(shard0)]
    assert run_cli(fetch.main, argv) == 2
    assert lost in capsys.readouterr().err
    assert not (site.tmp / "m.tsv").exists()


# ---------------------------------------------------------------------------------------------
# helpers


def test_parse_retry_after():
    assert fetch.parse_retry_after("3", cap=30) == 3
    assert fetch.parse_retry_after("3600", cap=30) == 30
    assert fetch.parse_retry_after(None, cap=30) is None
    assert fetch.parse_retry_after("soon", cap=30) is None
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 10))
    assert 5 < fetch.parse_retry_after(future, cap=30) <= 10
    assert fetch.parse_retry_after("Mon, 01 Jan 2001 00:00:00 GMT", cap=30) == 0


def test_classify_url():
    assert fetch.classify_url("https://a.b/c.jpg") == ("http", "https://a.b/c.jpg")
    assert fetch.classify_url("file:///data/x%20y.jpg") == ("file", "/data/x y.jpg")
    assert fetch.classify_url("images/x.jpg") == ("file", "images/x.jpg")
    assert fetch.classify_url("ftp://a/b")[0] == "bad"
    assert fetch.classify_url("file://otherhost/x.jpg") == ("invalid", "remote file URL: file://otherhost/x.jpg")
    assert fetch.classify_url("file://localhost/data/x.jpg") == ("file", "/data/x.jpg")
    assert fetch.classify_url("file://")[0] == "invalid"
    assert fetch.classify_url("")[0] == "invalid"
    assert fetch.classify_url("  ")[0] == "invalid"
    assert fetch.classify_url("http://:80/x.jpg") == ("invalid", "invalid URL: no host")
    assert fetch.classify_url("http://a.b:65536/x.jpg")[0] == "invalid"
    assert fetch.classify_url("http://a.b/x\x0by.jpg")[0] == "invalid"
    assert fetch.classify_url(" https://a.b/c.jpg\t") == ("http", "https://a.b/c.jpg")
    assert fetch.classify_url("  images/x.jpg ") == ("file", "images/x.jpg")
    assert fetch.classify_url("C:\\images\\x.jpg") == ("file", "C:\\images\\x.jpg")  # a drive letter


def test_fetcher_and_manifest_agree_on_every_url(tmp_path):
    """#9: the manifest's status of a URL is the fetcher's verdict. Even a hand-written manifest
    that marks every URL of tests/test_manifest.py's URL_CASES ok gets bad_url from the fetcher
    exactly where the manifest says bad_url (bad_scheme for another scheme), and nothing else."""
    from test_manifest import URL_CASES

    from groundwords.data.manifest import build, image_id

    Image.new("RGB", (32, 32), (1, 2, 3)).save(tmp_path / "img.png")
    src = tmp_path / "src.tsv"
    src.write_text("".join(f"caption {i}\t{u}\n" for i, (u, _) in enumerate(URL_CASES)), encoding="utf-8")
    build(src, tmp_path / "m.tsv", tmp_path / "s.json")
    m = read_tsv(tmp_path / "m.tsv", dtype=str)
    assert list(m["status"]) == [st for _, st in URL_CASES]

    rows = [dict(rank=i, row=i, id=image_id(u), caption="c", url=u, status="ok")  # what the fetcher sees
            for i, u in enumerate(m["url"])]
    write_tsv(pd.DataFrame(rows, columns=fetch.MANIFEST_COLUMNS), tmp_path / "all_ok.tsv")
    out = tmp_path / "shard.tsv"
    fetch.fetch_shard(tmp_path / "all_ok.tsv", 0, 1, out, tmp_path / "images", **OPTS)
    got = read_tsv(out, dtype=str).set_index("id")
    for (url, status), norm in zip(URL_CASES, m["url"]):
        fetched = got.loc[image_id(norm)]
        if status == "ok":
            assert fetched["status"] in ("ok", "file_not_found"), (url, fetched["status"])
        else:
            assert fetched["status"] == ("bad_scheme" if url.startswith("ftp:") else "bad_url"), url
            assert fetched["attempts"] == "0"  # never requested
    assert got.loc[image_id(m["url"][URL_CASES.index(("  img.png  ", "ok"))]), "status"] == "ok"


def test_help_mentions_subcommands():
    text = fetch.build_parser().format_help()
    assert "shard" in text and "merge" in text


# ---------------------------------------------------------------------------------------------
# bounded time, interrupts, attempts across resumes


def test_slow_servers_end_as_timeout_within_total_timeout(site):
    """A server that drips its headers or body (each byte well within read_timeout), or
    redirects slowly without end, cannot hold a worker past total_timeout."""
    body = image_bytes("PNG", (64, 64), (5, 5, 5))[:40]

    def hop(n):
        return lambda hit: Reply(302, b"", {"Location": f"/hop{n + 1}"}, delay=0.3)

    for n in range(40):
        site.server.route(f"/hop{n}", hop(n))
    urls = [site.server.route("/drip-body.png", Reply(body=body, headers=IMG, drip=0.25, drip_body_only=True)),
            site.server.route("/drip-all.png", Reply(body=body, headers=IMG, drip=0.1)),
            site.url("/hop0")]
    manifest = site.tmp / "drip.tsv"
    write_tsv(pd.DataFrame([dict(rank=i, row=i, id=image_id(u), caption="c", url=u, status="ok")
                            for i, u in enumerate(urls)]), manifest)
    total = 1.5
    t0 = time.monotonic()
    df, _ = run_shard(site, manifest, total_timeout=total, read_timeout=2, retries=3, max_redirects=50)
    wall = time.monotonic() - t0
    assert dict(zip(df["url"], df["status"])) == dict.fromkeys(urls, "timeout")
    assert all(total <= float(e) < total + 1 for e in df["elapsed_s"]), list(df["elapsed_s"])
    assert all("total_timeout=1.5" in e for e in df["error"])
    assert wall < total + 3
    assert site.hits("/drip-body.png") == 1  # the deadline covers every retry: none started


def test_a_retry_never_outlives_total_timeout(site):
    url = site.server.route("/busy.png", Reply(503, b"busy", {"Retry-After": "5"}))
    manifest = site.tmp / "busy.tsv"
    write_tsv(pd.DataFrame([dict(rank=0, row=0, id=image_id(url), caption="c", url=url, status="ok")]), manifest)
    t0 = time.monotonic()
    df, _ = run_shard(site, manifest, total_timeout=2, retries=3, max_retry_wait=30)
    assert time.monotonic() - t0 < 1.5  # gives up at once: the 5 s wait would pass the deadline
    assert df.loc[0, "status"] == "http_503" and "no time left" in df.loc[0, "error"]
    assert site.hits("/busy.png") == 1


def test_attempts_add_up_across_resumes_and_stop_at_max_attempts(site):
    url = site.url("/always500.png")
    bad_port = "http://127.0.0.1:99999/x.jpg"
    manifest = site.tmp / "m500.tsv"
    write_tsv(pd.DataFrame([dict(rank=i, row=i, id=image_id(u), caption="c", url=u, status="ok")
                            for i, u in enumerate([url, bad_port])]), manifest)
    opts = dict(retries=2, max_attempts=4)
    seen = []
    for _ in range(3):  # first run, two resumes
        site.server.reset()
        df, _ = run_shard(site, manifest, **opts)
        rows = df.set_index("url")
        seen.append((site.hits("/always500.png"), rows.loc[url, "attempts"], rows.loc[url, "status"]))
        assert rows.loc[bad_port, ["status", "attempts"]].tolist() == ["bad_url", "0"]  # never requested
    assert seen == [(3, "3", "http_500"), (1, "4", "http_500"), (0, "4", "http_500")]


def test_ctrl_c_stops_a_stalled_fetch_quickly_and_keeps_the_journal(site):
    import os
    import signal
    import subprocess

    quick = [site.url(p) for p in ("/good.png", "/good.jpg", "/missing.jpg", "/page.html")]
    stalled = site.server.route("/stalled.png", Reply(body=PNG, headers=IMG, stall_after=10, stall=60))
    manifest = site.tmp / "stall.tsv"
    write_tsv(pd.DataFrame([dict(rank=i, row=i, id=image_id(u), caption="c", url=u, status="ok")
                            for i, u in enumerate(quick + [stalled])]), manifest)
    out = site.tmp / "fetch" / "shard-0-of-1.tsv"
    cmd = [sys.executable, "-m", "groundwords.data.fetch", "shard", "--manifest", str(manifest), "--shard", "0",
           "--num-shards", "1", "--out", str(out), "--images-dir", str(site.tmp / "images"), "--workers", "4",
           "--read-timeout", "60", "--total-timeout", "100", "--no-progress"]
    src = str(Path(fetch.__file__).resolve().parents[3])  # src/ (fetch is a package)
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # as from a terminal: Ctrl-C reaches a foreground process whose SIGINT is not ignored (a shell
    # without job control starts background jobs, e.g. a CI script's `cmd &`, with SIGINT ignored)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    journal = fetch.partial_path(out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:  # the quick ids done, one stalled
        if journal.exists() and len(journal.read_text().splitlines()) == len(quick) and site.hits("/stalled.png"):
            break
        time.sleep(0.05)
    time.sleep(0.3)
    assert proc.poll() is None, proc.communicate()
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    stopped_in = time.monotonic() - t0
    print(f"SIGINT -> exit in {stopped_in:.2f}s")
    assert stopped_in < 5, stopped_in
    assert proc.returncode == 130 and "rerun to resume" in err and "Traceback" not in err
    assert not out.exists()
    records = [json.loads(line) for line in journal.read_text().splitlines()]  # every line whole
    assert sorted(r["url"] for r in records) == sorted(quick)

    site.server.reset()  # the resume fetches only the stalled id
    df, _ = run_shard(site, manifest, total_timeout=0.5)
    assert dict(site.server.hits) == {"/stalled.png": 1}
    assert dict(zip(df["url"], df["status"]))[stalled] == "timeout"


def test_every_fetch_key_reaches_the_cli_with_its_schema_default():
    import shlex

    from groundwords.config import cli_args, validate_config

    cfg = validate_config({"data": {"source": "x.tsv", "subsets": [{"name": "all", "rows": 0}]},
                           "fetch": {"total_timeout": 7.5, "max_pixels": 1000, "user_agent": "me (+https://x.org)"}})
    keys = set(cfg["fetch"]) - {"shards"}
    assert {"total_timeout", "max_pixels", "max_redirects", "backoff", "max_retry_wait", "user_agent",
            "max_attempts"} <= keys
    argv = ["shard", "--manifest", "m", "--shard", "0", "--num-shards", "1", "--out", "o", "--images-dir", "i"]
    args = fetch.build_parser().parse_args(argv + shlex.split(cli_args(cfg["fetch"], exclude=("shards",))))
    assert {k: getattr(args, k) for k in keys} == {k: cfg["fetch"][k] for k in keys}  # as the rule passes them
    defaults = fetch.fetch_settings()
    assert defaults["total_timeout"] == 120 and defaults["max_pixels"] == 89_478_485  # from the schema
    assert "config key fetch.total_timeout; default 120" in " ".join(fetch.build_parser()._subparsers._group_actions[0]
                                                                       .choices["shard"].format_help().split())
    with pytest.raises(UserError, match="fetch.total_timeout"):
        fetch.fetch_settings({"total_timeout": 0})
    with pytest.raises(UserError, match="fetch"):
        fetch.fetch_settings({"no_such_key": 1})


# ---------------------------------------------------------------------------------------------
# opt-outs, resize on download, per-host cap, per-shard stats


def one_row_each(site, urls, name="m.tsv") -> Path:
    path = site.tmp / name
    write_tsv(pd.DataFrame([dict(rank=i, row=i, id=image_id(u), caption="c", url=u, status="ok")
                            for i, u in enumerate(urls)]), path)
    return path


def test_x_robots_tag_noai_is_honoured(site):
    tags = {"/noai.png": ("noai", "opted_out"), "/noimageai.png": ("noindex, NoImageAI", "opted_out"),
            "/ours.png": ("groundwords: noai", "opted_out"), "/other.png": ("otherbot: noai", "ok"),
            "/dated.png": ("unavailable_after: 25 Jun 2010 15:00:00 PST", "ok")}
    urls = {site.server.route(p, Reply(body=PNG, headers={**IMG, "X-Robots-Tag": tag})): st
            for p, (tag, st) in tags.items()}
    manifest = one_row_each(site, urls)
    df, out = run_shard(site, manifest)
    assert dict(zip(df["url"], df["status"])) == urls
    assert "X-Robots-Tag" in df.set_index("url").loc[site.url("/noai.png"), "error"]
    stats = json.loads(fetch.stats_path(out).read_text())
    assert stats["by_status"] == {"ok": 2, "opted_out": 3} and stats["ids"] == 5 and stats["fetched"] == 5
    assert stats["bytes_stored"] == len(PNG) and stats["elapsed_s"] > 0
    df, _ = run_shard(site, manifest, honour_noai=False, resume=False)
    assert set(df["status"]) == {"ok"}


def test_max_side_resizes_keeping_the_aspect_ratio(site):
    big = image_bytes("JPEG", size=(400, 200), color=(200, 100, 50))
    rgba = Image.new("RGBA", (300, 300), (255, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (0, 0, 150, 300))
    buf = io.BytesIO()
    rgba.save(buf, format="PNG")
    urls = [site.server.route("/big.jpeg", Reply(body=big, headers=JPEG)),
            site.server.route("/clear.png", Reply(body=buf.getvalue(), headers=IMG)), site.url("/good.png")]
    df, out = run_shard(site, one_row_each(site, urls), max_side=100)
    rows = df.set_index("url")
    assert rows.loc[urls[0], ["width", "height", "format"]].tolist() == ["100", "50", "JPEG"]
    assert rows.loc[urls[1], ["width", "height", "format"]].tolist() == ["100", "100", "PNG"]
    assert Path(rows.loc[urls[2], "path"]).read_bytes() == PNG  # 64x48: kept as it came
    with Image.open(rows.loc[urls[1], "path"]) as im:
        assert im.mode == "RGBA" and im.size == (100, 100) and im.getpixel((90, 50))[3] == 0  # alpha kept
    for u in urls:
        assert sha256_file(rows.loc[u, "path"]) == rows.loc[u, "sha256"]
    stats = json.loads(fetch.stats_path(out).read_text())
    assert stats["bytes_stored"] < stats["bytes_downloaded"]


def test_max_per_host_caps_concurrent_downloads(site):
    import threading

    from test_fetch_hosts import _counting

    lock, state = threading.Lock(), {"now": 0, "max": 0}
    slow = _counting(state, lock, 0.15)

    urls = [site.server.route(f"/host/{i}.png", slow) for i in range(8)]
    df, _ = run_shard(site, one_row_each(site, urls), workers=8, max_per_host=2)
    assert set(df["status"]) == {"ok"} and state["max"] == 2
    state["max"] = 0
    run_shard(site, one_row_each(site, urls), workers=8, resume=False)
    assert state["max"] > 2  # without the cap the workers overlap


def test_tar_store_writes_one_webdataset_shard_and_resumes(site, monkeypatch):
    import tarfile

    from groundwords.data.images import open_image

    manifest = site.manifest(fast=True)
    files, _ = run_shard(site, manifest)
    site.server.reset()

    def disk_full(*a, **k):  # the first tar run dies before its TSV: images wait in staging
        raise OSError("disk full")

    monkeypatch.setattr(fetch_run, "write_tar_shard", disk_full)
    with pytest.raises(OSError):
        run_shard(site, manifest, store="tar", resume=False)
    monkeypatch.undo()
    out = site.tmp / "fetch" / "shard-0-of-1.tsv"
    ok_files = files[files["status"] == "ok"]
    assert fetch.staging_path(out).stat().st_size == sum(Path(p).stat().st_size for p in ok_files["path"])
    site.server.reset()
    df, out = run_shard(site, manifest, store="tar")
    assert set(site.server.hits) == {"/always500.png", "/loop"}  # the ok images were not fetched again
    assert dict(zip(df["url"], df["status"])) == dict(zip(files["url"], files["status"]))
    tar = fetch.tar_path(out)
    assert tar.is_file() and not fetch.staging_path(out).exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary left
    ok = df[df["status"] == "ok"]
    with tarfile.open(tar) as tf:
        names = tf.getnames()
        assert names == [n for i, e in zip(ok["id"], ok["path"]) for n in (f"{i}.{e.rsplit('.', 1)[1]}", f"{i}.json")]
        meta = json.loads(tf.extractfile(f"{ok['id'].iloc[0]}.json").read())
    assert meta["url"] == ok["url"].iloc[0] and meta["sha256"] == ok["sha256"].iloc[0]
    by_url = files.set_index("url")
    for _, r in ok.iterrows():
        assert r["path"].startswith(f"{tar}::")
        with open_image(r["path"]) as im:  # what the encoder reads
            assert im.size == (int(r["width"]), int(r["height"]))
        assert by_url.loc[r["url"], "sha256"] == r["sha256"]
    assert fetch.shard_is_complete(out, df["id"])
    # switching stores on resume: a files-store shard becomes a tar shard without new downloads
    out2 = site.tmp / "switch" / "shard-0-of-1.tsv"
    fetch.fetch_shard(manifest, 0, 1, out2, site.tmp / "images2", **{**OPTS, "store": "files"})
    site.server.reset()
    fetch.fetch_shard(manifest, 0, 1, out2, site.tmp / "images2", **{**OPTS, "store": "tar"})
    df2 = read_tsv(out2, dtype=str)
    assert set(site.server.hits) <= {"/always500.png", "/loop"}
    assert df2["path"].str.startswith(f"{fetch.tar_path(out2)}::").sum() == len(ok)
    tar.unlink()
    assert not fetch.shard_is_complete(out, df["id"])  # the TSV alone is not a finished tar shard


def test_a_stalled_tls_handshake_ends_as_timeout(site):
    """A host that accepts the connection and never answers the TLS ClientHello."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held, done = [], threading.Event()

    def accept():
        listener.settimeout(0.1)
        while not done.is_set():
            try:
                held.append(listener.accept()[0])  # keep it open, say nothing
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        url = f"https://127.0.0.1:{listener.getsockname()[1]}/x.jpg"
        t0 = time.monotonic()
        df, _ = run_shard(site, one_row_each(site, [url], "tls.tsv"), total_timeout=1, read_timeout=30, retries=3)
        assert df.loc[0, "status"] == "timeout" and time.monotonic() - t0 < 3, df.loc[0].to_dict()
        assert "total_timeout=1" in df.loc[0, "error"]
    finally:
        done.set()
        t.join()
        for s in held + [listener]:
            s.close()


def test_https_downloads_go_through_the_watched_connections(tmp_path, monkeypatch):
    """A real TLS server (self-signed, trusted through REQUESTS_CA_BUNDLE): ok, and a body
    that drips over TLS still ends at total_timeout."""
    import shutil
    import subprocess

    from _httpserver import LocalServer

    if not shutil.which("openssl"):
        pytest.skip("no openssl to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    with LocalServer(tls=(str(cert), str(key))) as server:
        good = server.route("/a.png", Reply(body=PNG, headers=IMG))
        drip = server.route("/drip.png", Reply(body=PNG[:40], headers=IMG, drip=0.2, drip_body_only=True))
        manifest = tmp_path / "m.tsv"
        write_tsv(pd.DataFrame([dict(rank=i, row=i, id=image_id(u), caption="c", url=u, status="ok")
                                for i, u in enumerate([good, drip])]), manifest)
        out = tmp_path / "shard.tsv"
        fetch.fetch_shard(manifest, 0, 1, out, tmp_path / "images", **{**OPTS, "total_timeout": 1, "read_timeout": 5})
        df = read_tsv(out, dtype=str).set_index("url")
    assert good.startswith("https://") and df.loc[good, "status"] == "ok", df.loc[good].to_dict()
    assert df.loc[drip, "status"] == "timeout" and float(df.loc[drip, "elapsed_s"]) < 2
