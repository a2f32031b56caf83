"""Parquet sources (``data.format: parquet``, LAION/SBU style) through the manifest stage."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from groundwords.cli import UserError
from groundwords.files import read_tsv
from groundwords.data.manifest import image_id, main


def _source(path):
    captions = ["a dog", "two\nlines\tand a tab", None, "caf\u00e9 \r\x0b\x0c\x1c\x85\u2028 end", "a dup",
                "bad port", "  ", "last"]
    urls = ["http://x.org/1.jpg", "http://x.org/2.jpg", "http://x.org/3.jpg", "http://x.org/4.jpg",
            "http://x.org/1.jpg", "http://x.org:99999/p.jpg", "http://x.org/7.jpg", None]
    table = pa.table({"SAMPLE_ID": pa.array(range(len(urls)), pa.int64()), "URL": pa.array(urls, pa.string()),
                      "TEXT": pa.array(captions, pa.large_string()), "WIDTH": pa.array([64] * len(urls))})
    pq.write_table(table, path, row_group_size=3)  # several row groups
    return captions, urls


def test_parquet_source_keeps_every_row(tmp_path):
    src = tmp_path / "laion.parquet"
    captions, urls = _source(src)
    out, summary = tmp_path / "m.tsv", tmp_path / "s.json"
    main(["build", "--source", str(src), "--out", str(out), "--summary", str(summary),
          "--format", "parquet", "--caption-col", "TEXT", "--url-col", "URL"])
    m = read_tsv(out, dtype=str)
    assert len(m) == len(urls) and list(m["row"].astype(int)) == list(range(len(urls)))  # counted in = out
    assert list(m["status"]) == ["ok", "ok", "empty_caption", "ok", "ok", "bad_url", "empty_caption", "bad_url"]
    assert m.loc[1, "caption"] == "two\nlines\tand a tab"  # quoted in the TSV, read back unchanged
    assert m.loc[3, "caption"] == captions[3].strip()
    assert m.loc[0, "id"] == m.loc[4, "id"] == image_id("http://x.org/1.jpg")
    assert m.loc[7, "id"] == "" and m.loc[2, "url"] == "http://x.org/3.jpg"


def test_parquet_columns_by_number_and_binary_urls(tmp_path):
    src = tmp_path / "b.parquet"
    pq.write_table(pa.table({"u": pa.array([b"http://x.org/a.jpg", b"http://x.org/\xff.jpg"], pa.binary()),
                             "c": ["one", "two"]}), src)
    out = tmp_path / "m.tsv"
    main(["build", "--source", str(src), "--out", str(out), "--summary", str(tmp_path / "s.json"),
          "--format", "parquet", "--caption-col", "1", "--url-col", "0"])
    m = read_tsv(out, dtype=str)
    assert list(m["status"]) == ["ok", "bad_encoding"] and m.loc[0, "url"] == "http://x.org/a.jpg"


def test_parquet_errors_name_the_key(tmp_path):
    src = tmp_path / "laion.parquet"
    _source(src)
    with pytest.raises(UserError, match="data.caption_col: no column 'caption'"):
        main(["build", "--source", str(src), "--out", str(tmp_path / "m.tsv"), "--summary", str(tmp_path / "s.json"),
              "--format", "parquet", "--caption-col", "caption", "--url-col", "URL"])
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(UserError, match="data.source: .* is not a readable Parquet file"):
        main(["build", "--source", str(tmp_path / "bad.parquet"), "--out", str(tmp_path / "m.tsv"),
              "--summary", str(tmp_path / "s.json"), "--format", "parquet", "--caption-col", "TEXT", "--url-col", "URL"])
