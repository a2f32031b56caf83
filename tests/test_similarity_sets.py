"""Benchmark file parser and registry (offline; downloads are served from 127.0.0.1)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from groundwords.cli import UserError
from groundwords.evaluation import sets as bm

# ---------------------------------------------------------------------------------------------
# read_pairs


def _write(tmp_path: Path, data: bytes, name="pairs.txt") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_tabs_crlf_no_final_newline(tmp_path):
    p = _write(tmp_path, b"love\tsex\t6.77\r\ntiger\tcat\t7.35\r\nmoney\tcash\t9.15")
    df = bm.read_pairs(p)
    assert list(df.columns) == ["word1", "word2", "score"]
    assert df.values.tolist() == [["love", "sex", 6.77], ["tiger", "cat", 7.35], ["money", "cash", 9.15]]
    assert df.attrs["header_lines"] == 0


def test_spaces_comments_blank_header(tmp_path):
    text = (
        "\ufeff# a comment\n"
        "# Word 1\tWord 2\tHuman (mean)\n"
        "Word1 Word2 Score\n"
        "\n"
        "sun   sunlight 50\n"
        "  automobile car 49.5  \n"
        "\n"
    )
    df = bm.read_pairs(_write(tmp_path, text.encode()))
    assert df.values.tolist() == [["sun", "sunlight", 50.0], ["automobile", "car", 49.5]]
    assert df.attrs["header_lines"] == 1
    assert df.attrs["comment_lines"] == 2


def test_tab_separated_words_may_contain_spaces(tmp_path):
    df = bm.read_pairs(_write(tmp_path, b"New York\tcity\t8\nice cream\tdessert\t7.5\n"))
    assert df["word1"].tolist() == ["New York", "ice cream"]


def test_header_after_data_is_an_error(tmp_path):
    p = _write(tmp_path, b"a\tb\t1\nword1\tword2\tscore\n")
    with pytest.raises(UserError, match=r"pairs\.txt:2: .*not a number"):
        bm.read_pairs(p)


@pytest.mark.parametrize("data, line", [
    (b"a\tb\t1\nc\td\n", 2),                     # too few fields
    (b"a b 1\r\n\r\nc d e 2\r\n", 3),            # too many (after a blank CRLF line)
    (b"# c\na\tb\t1\tx\n", 2),                   # extra tab field
])
def test_wrong_field_count_names_file_and_line(tmp_path, data, line):
    p = _write(tmp_path, data, name="bad.txt")
    with pytest.raises(UserError, match=rf"bad\.txt:{line}: expected 3 fields"):
        bm.read_pairs(p)


def test_no_pairs_and_missing_file(tmp_path):
    with pytest.raises(UserError, match="no word pairs"):
        bm.read_pairs(_write(tmp_path, b"# only a comment\n\n"))
    with pytest.raises(UserError, match="does not exist"):
        bm.read_pairs(tmp_path / "nope.txt")


def test_non_finite_score(tmp_path):
    with pytest.raises(UserError, match=":1: .*finite"):
        bm.read_pairs(_write(tmp_path, b"a\tb\tnan\n"))


# ---------------------------------------------------------------------------------------------
# registry


REQUIRED = ["men", "simlex999", "ws353", "ws353_sim", "ws353_rel", "rg65", "mc30", "mturk287",
            "mturk771", "rw", "simverb3500", "yp130", "verb143"]


def test_registry_entries():
    assert set(REQUIRED) <= set(bm.BENCHMARKS)
    for name, b in bm.BENCHMARKS.items():
        assert b.name == name
        assert b.url == ("https://raw.githubusercontent.com/mfaruqui/eval-word-vectors/master/"
                         "data/word-sim/" + b.filename)
        assert len(b.sha256) == 64 and int(b.sha256, 16) >= 0
        assert b.n_pairs > 0 and b.description
    assert bm.BENCHMARKS["men"].packaged is None  # MEN is not available offline


@pytest.mark.parametrize("name, n", [("ws353", 353), ("simlex999", 999)])
def test_resolve_packaged_offline(tmp_path, name, n):
    p = bm.resolve(name, cache_dir=tmp_path)  # no download allowed: must come from gensim
    assert "gensim" in str(p)
    assert len(bm.read_pairs(p)) == n
    assert bm.sha256_file(p) == bm.BENCHMARKS[name].packaged_sha256
    assert not any(tmp_path.iterdir())


def test_resolve_explicit_path(tmp_path):
    p = _write(tmp_path, b"a\tb\t1\n")
    assert bm.resolve("men", path=p) == p
    assert bm.resolve("my_custom_set", path=str(p)) == p  # unregistered names are fine with a path
    with pytest.raises(UserError, match=r"does not exist.*benchmarks\.men\.path"):
        bm.resolve("men", path=tmp_path / "missing.txt")


def test_resolve_unavailable_offline_explains(tmp_path):
    with pytest.raises(UserError, match=r"benchmarks\.men\.path.*fetch men"):
        bm.resolve("men", cache_dir=tmp_path)
    with pytest.raises(UserError, match="unknown benchmark 'nope'"):
        bm.resolve("nope")
    with pytest.raises(UserError, match="cache directory"):
        bm.resolve("men", download=True)


# ---------------------------------------------------------------------------------------------
# downloads from a local HTTP server


@pytest.fixture
def server(tmp_path):
    """Serve ``tmp_path/www`` on 127.0.0.1; yields (base_url, www_dir, request_log)."""
    www = tmp_path / "www"
    www.mkdir()
    requests_seen: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(www), **kw)

        def log_message(self, *a):
            requests_seen.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", www, requests_seen
    finally:
        httpd.shutdown()
        httpd.server_close()


MEN_TOY = b"sun\tsunlight\t50.0\nautomobile\tcar\t50.0\nbakery\tzebra\t0.0\n"


def _fake_men(monkeypatch, base_url, sha256):
    b = dataclasses.replace(bm.BENCHMARKS["men"], url=base_url + "EN-MEN-TR-3k.txt", sha256=sha256)
    monkeypatch.setitem(bm.BENCHMARKS, "men", b)
    return b


def test_download_verified_and_cached(tmp_path, server, monkeypatch):
    base, www, seen = server
    (www / "EN-MEN-TR-3k.txt").write_bytes(MEN_TOY)
    _fake_men(monkeypatch, base, hashlib.sha256(MEN_TOY).hexdigest())
    cache = tmp_path / "cache"

    p = bm.resolve("men", cache_dir=cache, download=True)
    assert p == cache / "EN-MEN-TR-3k.txt" and p.read_bytes() == MEN_TOY
    assert len(seen) == 1
    assert [f.name for f in cache.iterdir()] == ["EN-MEN-TR-3k.txt"]  # no temporary left over

    # now available offline from the cache, without another request
    assert bm.resolve("men", cache_dir=cache) == p
    assert bm.fetch("men", cache) == p
    assert len(seen) == 1

    # a corrupted cache is refused offline and repaired when downloading is allowed
    p.write_bytes(b"x\ty\t1\n")
    with pytest.raises(UserError, match="cached file .* sha256"):
        bm.resolve("men", cache_dir=cache)
    assert bm.resolve("men", cache_dir=cache, download=True).read_bytes() == MEN_TOY
    assert len(seen) == 2


def test_download_sha256_mismatch_not_kept(tmp_path, server, monkeypatch):
    base, www, _ = server
    (www / "EN-MEN-TR-3k.txt").write_bytes(MEN_TOY)
    _fake_men(monkeypatch, base, "0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match="sha256 .* expected 0{64}; not kept"):
        bm.resolve("men", cache_dir=cache, download=True)
    assert not any(cache.iterdir())


def test_download_http_error(tmp_path, server, monkeypatch):
    base, _, _ = server  # nothing served: 404
    _fake_men(monkeypatch, base, "0" * 64)
    with pytest.raises(UserError, match="downloading .* failed"):
        bm.resolve("men", cache_dir=tmp_path / "c", download=True)
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())


def test_cli_list_and_fetch(tmp_path, server, monkeypatch, capsys):
    base, www, _ = server
    (www / "EN-MEN-TR-3k.txt").write_bytes(MEN_TOY)
    _fake_men(monkeypatch, base, hashlib.sha256(MEN_TOY).hexdigest())
    from groundwords.cli import run_cli

    assert run_cli(bm.main, ["list"]) == 0
    out = capsys.readouterr().out
    assert "ws353" in out and "yes (packaged)" in out
    men_line = next(ln for ln in out.splitlines() if ln.startswith("men "))
    assert "no (" in men_line

    assert run_cli(bm.main, ["fetch", "men", "--cache-dir", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / "EN-MEN-TR-3k.txt").read_bytes() == MEN_TOY
    assert run_cli(bm.main, ["list", "--cache-dir", str(tmp_path / "c")]) == 0
    men_line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("men "))
    assert "yes (cached)" in men_line

    assert run_cli(bm.main, ["fetch", "nope", "--cache-dir", str(tmp_path / "c")]) == 2
    assert "unknown benchmark" in capsys.readouterr().err
