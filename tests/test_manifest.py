"""Manifest: every source row accounted for, stable ids, nested subsets."""

import json

import pytest

from groundwords.cli import UserError
from groundwords.data.manifest import MALFORMED, build, image_id, parse_source, select_rows, subset
from groundwords.files import read_tsv, write_tsv


def write_source(tmp_path, lines, raw=None):
    p = tmp_path / "src.tsv"
    p.write_bytes(raw if raw is not None else "\n".join(lines).encode() + b"\n")
    return p


def test_statuses_for_malformed_rows(tmp_path):
    (tmp_path / "img.png").write_bytes(b"x")
    raw = (
        b"a dog on the beach\thttp://example.com/a.jpg\r\n"   # CRLF
        b"no url column\n"                                     # 1 field
        b"too\tmany\tcolumns\n"
        b"\thttp://example.com/b.jpg\n"                        # empty caption
        b"bad scheme\tftp://example.com/c.jpg\n"
        b"no host\thttp:///c.jpg\n"
        b"caf\xe9 latin-1\thttp://example.com/d.jpg\n"          # not UTF-8
        b"local file\timg.png\n"
        b"file url\tfile:///tmp/x.png"                         # no final newline
    )
    df = parse_source(write_source(tmp_path, None, raw))
    assert list(df["status"]) == ["ok", "malformed_columns", "malformed_columns", "empty_caption",
                                  "bad_url", "bad_url", "bad_encoding", "ok", "ok"]
    assert list(df["row"]) == list(range(9))
    assert df.loc[0, "caption"] == "a dog on the beach"
    assert df.loc[7, "url"] == (tmp_path / "img.png").resolve().as_uri()
    assert set(df["status"]) - {"ok"} <= set(MALFORMED)


#: URLs on which the manifest and the fetcher used to disagree (#9), with the manifest's status: both
#: now ask groundwords.data.urls.classify_url, so a URL the fetcher rejects is bad_url here already
URL_CASES = [
    ("http://:80/x.jpg", "bad_url"),             # a netloc but no host name (was ok here)
    ("http://user@/x.jpg", "bad_url"),           # the same, with a user
    ("file://otherhost/x.jpg", "bad_url"),       # a file on another machine (was ok here)
    ("file://", "bad_url"),                      # no path (the fetcher read "")
    ("file://localhost/no/such/x.jpg", "ok"),    # localhost is this machine
    ("http://x.org/a\x0bb.jpg", "bad_url"),      # a control character inside (the fetcher sent it)
    ("http://x.org/a\x85b.jpg", "bad_url"),
    ("C:\\images\\x.jpg", "ok"),               # a Windows drive letter is a path (was bad_url here)
    ("c:/images/x.jpg", "ok"),
    ("  img.png  ", "ok"),                       # surrounding spaces are dropped by both
    ("http://x.org:99999/x.jpg", "bad_url"),     # a port outside 0-65535
    ("http://x.org:8o/x.jpg", "bad_url"),        # a port that is not a number
    ("ftp://x.org/x.jpg", "bad_url"),            # another scheme (bad_scheme in the fetcher)
]


@pytest.mark.parametrize("url,status", URL_CASES)
def test_manifest_rejects_what_the_fetcher_rejects(tmp_path, url, status):
    from groundwords.data import fetch
    from groundwords.data.urls import source_url

    df = parse_source(write_source(tmp_path, [f"a caption\t{url}"]))
    assert df.loc[0, "status"] == status
    assert df.loc[0, "id"] == image_id(url.strip())
    kind, _ = fetch.classify_url(url)
    assert (kind in ("http", "file")) == (status == "ok")
    assert source_url(url, tmp_path)[0] == status  # unstripped too
    if status == "ok":  # the url handed on (local paths as absolute file:// URLs) is fetchable
        assert fetch.classify_url(df.loc[0, "url"])[0] == kind
        if kind == "file":
            assert df.loc[0, "url"].startswith("file://")


def test_ids_are_stable_and_shared_by_duplicate_urls(tmp_path):
    df = parse_source(write_source(tmp_path, ["a\thttp://x.org/1.jpg", "b\thttp://x.org/2.jpg",
                                              "c\thttp://x.org/1.jpg"]))
    assert df.loc[0, "id"] == df.loc[2, "id"] == image_id("http://x.org/1.jpg")
    assert df.loc[0, "id"] != df.loc[1, "id"]
    assert len(df.loc[0, "id"]) == 16


def test_selection_first_and_sample_are_nested(tmp_path):
    df = parse_source(write_source(tmp_path, [f"cap {i}\thttp://x.org/{i}.jpg" for i in range(100)]))
    first = select_rows(df, 10, "first")
    assert list(first["row"]) == list(range(10)) and list(first["rank"]) == list(range(10))
    s10, s50 = select_rows(df, 10, "sample", seed=3), select_rows(df, 50, "sample", seed=3)
    assert list(s50["row"][:10]) == list(s10["row"])  # smaller subsets are prefixes
    assert list(select_rows(df, 10, "sample", seed=4)["row"]) != list(s10["row"])
    with pytest.raises(UserError, match="data.select"):
        select_rows(df, 10, "random")


def test_build_writes_manifest_and_summary(tmp_path):
    src = write_source(tmp_path, ["a\thttp://x.org/1.jpg", "broken", "c\thttp://x.org/3.jpg"])
    summary = build(src, tmp_path / "m.tsv", tmp_path / "s.json", limit=0)
    m = read_tsv(tmp_path / "m.tsv")
    assert list(m.columns) == ["rank", "row", "id", "caption", "url", "status"]
    assert len(m) == 3 and summary["by_status"] == {"malformed_columns": 1, "ok": 2}
    assert json.loads((tmp_path / "s.json").read_text())["rows"] == 3


def test_missing_source_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="data.source"):
        parse_source(tmp_path / "nope.tsv")


def test_subset_keeps_well_formed_rows_of_the_prefix(tmp_path):
    import pandas as pd

    fetched = pd.DataFrame({
        "rank": [0, 1, 2, 3], "row": [0, 1, 2, 3], "id": ["a", "", "c", "d"],
        "caption": ["x", "", "z", "w"], "url": ["u", "", "u3", "u4"],
        "status": ["ok", "malformed_columns", "http_404", "ok"], "path": ["p", "", "", "p4"], "sha256": ["", "", "", ""],
    })
    write_tsv(fetched, tmp_path / "f.tsv")
    out = subset(tmp_path / "f.tsv", 3, tmp_path / "c.tsv")
    assert list(out["rank"]) == [0, 2] and list(out["status"]) == ["ok", "http_404"]
    assert len(subset(tmp_path / "f.tsv", 0, tmp_path / "c.tsv")) == 3


def test_local_ids_do_not_depend_on_where_the_dataset_lies(tmp_path):
    """Ids hash the path as the source writes it, so a moved checkout keeps its ids (and seeded splits)."""
    import pandas as pd

    from groundwords.grounding.word_images import use_manifest_ids

    ids = []
    for where in ("a", "b/c"):
        d = tmp_path / where
        (d / "images").mkdir(parents=True)
        (d / "images" / "1F436.png").write_bytes(b"x")
        df = parse_source(write_source(d, ["dog face\timages/1F436.png", "remote\thttp://x.org/1.jpg"]))
        assert df.loc[0, "url"] == (d / "images" / "1F436.png").resolve().as_uri()  # fetched from here
        ids.append(list(df["id"]))
        # the word-image table of the same files gets the same ids (encodings are shared)
        pairs = pd.DataFrame({"word": ["dog"], "image_id": ["1F436"], "path": [str(d / "images" / "1F436.png")]})
        assert use_manifest_ids(pairs, d)["image_id"].tolist() == [df.loc[0, "id"]]
    assert ids[0] == ids[1] and ids[0][0] == image_id("images/1F436.png")


CONTROL_CHARS = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x00", "\x1f", "\x7f"]


def test_control_characters_in_captions_keep_every_row(tmp_path):
    """Every control character inside a caption survives manifest -> fetch -> merge -> subset:
    rows counted in = rows counted out, and each caption comes back as written."""
    from PIL import Image

    from groundwords.data import fetch

    (tmp_path / "a.png").write_bytes(b"")
    Image.new("RGB", (32, 32), (1, 2, 3)).save(tmp_path / "a.png")
    captions = []
    for i in range(112):
        c = CONTROL_CHARS[i % len(CONTROL_CHARS)]
        captions.append(f"dog {i}{c}in caption{c}" + ("\r" if i % 7 == 0 else "") + " end")
    lines = [f"{c}\ta.png" if i % 3 else f"{c}\tb{i}.png" for i, c in enumerate(captions)]
    lines.append("a real\rrow with a port\thttp://example.com:99999/x.jpg")
    src = tmp_path / "src.tsv"
    src.write_bytes(("\n".join(lines) + "\r\n").encode())  # a CRLF end on the last line
    summary = build(src, tmp_path / "m.tsv", tmp_path / "s.json")
    assert summary["rows"] == len(lines) == 113
    assert summary["by_status"] == {"bad_url": 1, "ok": 112}
    assert summary["captions_with_control_chars"] == 113
    m = read_tsv(tmp_path / "m.tsv", dtype=str)
    assert len(m) == 113 and list(m["caption"][:112]) == [c.strip() for c in captions]

    out = tmp_path / "shard.tsv"
    fetch.fetch_shard(tmp_path / "m.tsv", 0, 1, out, tmp_path / "images", progress=False, workers=2)
    fetch.merge(tmp_path / "m.tsv", [out], tmp_path / "fetched.tsv", tmp_path / "fs.json")
    fetched = read_tsv(tmp_path / "fetched.tsv", dtype=str)
    assert len(fetched) == 113 and fetched["caption"].equals(m["caption"])
    assert (fetched["status"] == "ok").sum() == 74  # a.png; the b*.png files do not exist
    for size, want in ((50, 50), (0, 112)):  # a subset of rows: 50 works too
        sub = subset(tmp_path / "fetched.tsv", size, tmp_path / f"c{size}.tsv")
        back = read_tsv(tmp_path / f"c{size}.tsv", dtype=str)
        assert len(sub) == len(back) == want
        assert list(back["caption"]) == [c.strip() for c in captions[:want]]


def test_subset_of_a_broken_table_is_a_user_error(tmp_path):
    (tmp_path / "f.tsv").write_text("rank\tid\tcaption\tstatus\tpath\n0\ta\tx\tok\tp\nin caption\t\t\t\t\n")
    with pytest.raises(UserError, match="row 3 has no integer rank"):
        subset(tmp_path / "f.tsv", 50, tmp_path / "c.tsv")


def test_source_layouts_header_column_names_csv(tmp_path):
    """CC12M (url<TAB>caption with a header), LAION/SBU-style CSV with named columns and
    quoted fields, and a headerless TSV with the columns swapped: config keys, not code."""
    cc12m = tmp_path / "cc12m.tsv"
    cc12m.write_text("url\tcaption\nhttp://x.org/1.jpg\ta dog\nhttp://x.org/2.jpg\nftp://x.org/3.jpg\tbad scheme\n")
    df = parse_source(cc12m, {"header": True, "caption_col": "caption", "url_col": "url"})
    assert list(df["status"]) == ["ok", "malformed_columns", "bad_url"] and list(df["row"]) == [1, 2, 3]
    assert df.loc[0, "caption"] == "a dog" and df.loc[0, "id"] == image_id("http://x.org/1.jpg")
    swapped = parse_source(cc12m, {"caption_col": 1, "url_col": 0})  # headerless: the header is a row
    assert len(swapped) == 4 and swapped.loc[1, ["caption", "status"]].tolist() == ["a dog", "ok"]

    laion = tmp_path / "laion.csv"
    laion.write_bytes(b'SAMPLE_ID,URL,TEXT,WIDTH\n1,http://x.org/a.jpg,"a cat, on a mat",64\n'
                      b'2,http://x.org/b.jpg,"two\nlines ""quoted""",64\n3,http://x.org/c.jpg,caf\xe9,64\n'
                      b'4,http://x.org/d.jpg\n')
    df = parse_source(laion, {"format": "csv", "header": True, "caption_col": "TEXT", "url_col": "URL"})
    assert list(df["status"]) == ["ok", "ok", "bad_encoding", "malformed_columns"]
    assert list(df["caption"][:2]) == ["a cat, on a mat", 'two\nlines "quoted"'] and list(df["row"]) == [1, 2, 3, 4]
    summary = build(laion, tmp_path / "m.tsv", tmp_path / "s.json",
                    layout={"format": "csv", "header": True, "caption_col": "TEXT", "url_col": "URL"})
    assert summary["rows"] == 4 and len(read_tsv(tmp_path / "m.tsv")) == 4

    for layout, key in (({"header": True, "caption_col": "nope"}, "data.caption_col"),
                        ({"caption_col": "TEXT"}, "data.caption_col"),
                        ({"url_col": 0}, "data.caption_col and data.url_col"),
                        ({"format": "xml"}, "data.format")):
        with pytest.raises(UserError, match=key):
            parse_source(laion, layout)


def test_layout_keys_are_checked_with_the_config_and_reach_the_cli(tmp_path):
    import shlex

    from groundwords.config import LAYOUT_KEYS, cli_args, validate_config
    from groundwords.data.manifest import main

    base = {"source": "x.csv", "subsets": [{"name": "all", "rows": 0}]}
    with pytest.raises(UserError, match="data.url_col"):
        validate_config({"data": {**base, "url_col": "URL"}})  # a name needs a header
    cfg = validate_config({"data": {**base, "format": "csv", "header": True, "caption_col": "TEXT", "url_col": "URL"}})
    src = tmp_path / "s.csv"
    src.write_text("URL,TEXT\nhttp://x.org/a.jpg,a dog\n")
    argv = ["build", "--source", str(src), "--out", str(tmp_path / "m.tsv"), "--summary", str(tmp_path / "s.json")]
    main(argv + shlex.split(cli_args(cfg["data"], only=LAYOUT_KEYS)))  # as the rule passes them
    assert read_tsv(tmp_path / "m.tsv", dtype=str).loc[0, ["caption", "url", "status"]].tolist() == \
        ["a dog", "http://x.org/a.jpg", "ok"]


def test_parquet_without_a_reader_is_a_clear_error(tmp_path):
    import importlib.util

    if importlib.util.find_spec("pyarrow") or importlib.util.find_spec("fastparquet"):
        pytest.skip("a Parquet reader is installed")
    (tmp_path / "s.parquet").write_bytes(b"PAR1")
    with pytest.raises(UserError, match="data.format: parquet needs pyarrow"):
        parse_source(tmp_path / "s.parquet", {"format": "parquet", "caption_col": "caption", "url_col": "url"})


def test_a_csv_row_the_reader_rejects_is_malformed_not_fatal(tmp_path):
    import csv

    src = tmp_path / "s.csv"
    src.write_text("caption,url\nok,http://x.org/1.jpg\n" + "long" * (csv.field_size_limit() // 3) + ",http://x.org/2.jpg\n"
                   "fine,http://x.org/3.jpg\n")
    df = parse_source(src, {"format": "csv", "header": True, "caption_col": "caption", "url_col": "url"})
    assert list(df["status"]) == ["ok", "malformed_columns", "ok"]
