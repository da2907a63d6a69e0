"""File opening and layout parsing: compression, encodings, streamed JSON arrays that survive a broken record."""
from __future__ import annotations

import gzip
import io
import json

import pytest
import zstandard

from cmtp.transforms import io as cmtp_io
from cmtp.transforms.sources import layouts
from cmtp.transforms.sources.layouts import LayoutError, Parsed, Unparsed


def _stream(data: bytes) -> io.BufferedReader:
    return io.BufferedReader(io.BytesIO(data))


def _records(n: int) -> list[dict]:
    return [{"id": i, "title": f"标题{i}", "content": "内容" * (i + 1)} for i in range(n)]


def test_json_array_yields_every_record_with_its_index_and_line():
    text = json.dumps(_records(3), ensure_ascii=False, indent=4).encode("utf-8")
    items = list(layouts.iter_json_array(_stream(text)))
    assert [item.value["id"] for item in items] == [0, 1, 2]
    assert items[0].position == "record 0 (line 2)"
    assert items[2].position.startswith("record 2 (line ")


def test_records_wrapper_layout_is_read_like_a_bare_array():
    text = json.dumps({"RECORDS": _records(2)}, ensure_ascii=False, indent=4).encode("utf-8")
    assert [item.value["id"] for item in layouts.iter_json_array(_stream(text))] == [0, 1]


def test_a_broken_record_is_one_located_failure_and_reading_goes_on():
    good = [json.dumps(r, ensure_ascii=False) for r in _records(4)]
    good[2] = good[2].replace('"title":', '"title"')  # missing colon
    text = ("[\n" + ",\n".join(good) + "\n]").encode("utf-8")
    items = list(layouts.iter_json_array(_stream(text)))
    assert [type(item) for item in items] == [Parsed, Parsed, Unparsed, Parsed]
    assert items[2].reason == "invalid_json"
    assert items[2].position == "record 2 (line 4)"
    assert "line 4" in items[2].detail
    assert items[3].value["id"] == 3


def test_records_cut_by_the_read_chunk_are_completed_not_rejected(monkeypatch):
    monkeypatch.setattr(layouts, "_CHUNK", 7)  # every record straddles several chunks
    text = json.dumps(_records(5), ensure_ascii=False, indent=2).encode("utf-8")
    items = list(layouts.iter_json_array(_stream(text)))
    assert all(isinstance(item, Parsed) for item in items)
    assert [item.value["id"] for item in items] == list(range(5))


def test_a_file_that_is_not_an_array_is_a_layout_error():
    with pytest.raises(LayoutError, match="expected a JSON array"):
        list(layouts.iter_json_array(_stream(b'{"data": []}')))


def test_tsv_line_that_does_not_decode_is_located_and_others_read():
    good = "标题\t这是一段足够长的中文摘要，用来让文件的开头以 UTF-8 为主。\n" * 20
    data = good.encode("utf-8") + b"\xff\xfe broken\t\n" + "标题三\t摘要三\n".encode("utf-8")
    items = list(layouts.iter_tsv(_stream(data)))
    assert [type(item) for item in items] == [Parsed] * 20 + [Unparsed, Parsed]
    assert items[20].position == "line 21" and items[20].reason == "undecodable"
    assert items[21].value == ["标题三", "摘要三"]


@pytest.mark.parametrize("suffix,compress", [
    ("", lambda b: b),
    (".gz", gzip.compress),
    (".zst", lambda b: zstandard.ZstdCompressor().compress(b)),
])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_plain_gz_and_zst_files_in_any_supported_encoding_read_the_same(tmp_path, suffix, compress, encoding):
    text = "论文标题\t本文研究了中文文本的表示学习方法。\tA_B\t计算机\t工学\n"
    path = tmp_path / f"sample.tsv{suffix}"
    path.write_bytes(compress(text.encode(encoding)))
    with cmtp_io.open_binary(str(path)) as stream:
        (item,) = list(layouts.iter_tsv(stream))
    assert item.value[0] == "论文标题"
    assert cmtp_io.logical_name(str(path)).endswith("sample.tsv")


def test_gb18030_is_detected_when_bytes_are_not_utf8():
    assert cmtp_io.sniff_encoding("中文摘要".encode("gb18030")) == "gb18030"
    assert cmtp_io.sniff_encoding("中文摘要".encode("utf-8")) == "utf-8"
    assert cmtp_io.sniff_encoding("中文摘要".encode("utf-8-sig")) == "utf-8-sig"


def test_parquet_shards_are_bounded_not_one_file_per_bundle(tmp_path):
    import apache_beam as beam
    import pyarrow.parquet as pq
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from cmtp.schemas import PAIR_SCHEMA, Pair
    from cmtp.transforms.io import WriteParquetShards

    rows = [Pair(f"{i:08d}", "问题" * 20, "段落" * 50, "s", "k", "f", str(i)) for i in range(20000)]
    with beam.Pipeline(runner=FnApiRunner()) as pipeline:  # FnApiRunner: the whole input is one bundle
        pipeline | beam.Create(rows) | WriteParquetShards(str(tmp_path), PAIR_SCHEMA, shard_bytes=400_000,
                                                          row_group_bytes=100_000)
    files = sorted(tmp_path.glob("part-*-of-*.parquet"))
    sizes = [pq.ParquetFile(f).metadata.num_rows for f in files]
    assert len(files) > 2 and files[-1].name.endswith(f"-of-{len(files):05d}.parquet")
    assert sum(sizes) == 20000 and max(sizes) - min(sizes) <= max(sizes) // 2  # balanced
    ids = sorted(i for f in files for i in pq.read_table(f, columns=["id"]).column("id").to_pylist())
    assert ids == [row.id for row in rows]
