"""File opening and layout parsing: compression, encodings, streamed JSON arrays that survive a broken record."""
from __future__ import annotations

import csv as csv_module
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


def test_each_line_is_utf8_or_else_gb18030_and_damaged_utf8_is_neither():
    assert cmtp_io.decode("中文摘要".encode("gb18030")) == "中文摘要"
    assert cmtp_io.decode("中文摘要".encode("utf-8")) == "中文摘要"
    damaged = "这是一段中文摘要".encode("utf-8")
    damaged = damaged[:8] + b"\xc0" + damaged[9:]  # one byte changed: its GB18030 reading would be mojibake
    assert damaged.decode("gb18030") and cmtp_io.decode(damaged) is None
    assert cmtp_io.decode(b"\xff\xfe broken") is None


def test_parquet_shards_are_bounded_not_one_file_per_bundle(tmp_path):
    import apache_beam as beam
    import pyarrow.parquet as pq
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from cmtp.schemas import PAIR_SCHEMA, Pair
    from cmtp.transforms.parquet_shards import WriteParquetShards

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


def _array_with_record_ends(records: list) -> tuple[bytes, list[int]]:
    """A pretty JSON array and the byte offset just past each record."""
    data, ends = b"[\n", []
    for i, record in enumerate(records):
        data += (b",\n" if i else b"") + json.dumps(record, ensure_ascii=False, indent=1).encode("utf-8")
        ends.append(len(data))
    return data + b"\n]\n", ends


def test_a_json_array_cut_at_any_byte_keeps_the_records_before_and_rejects_the_cut_one():
    records = [{"id": -1.5e3, "ok": True, "no": None, "f": False, "t": '引"号\\n中', "n": [1, {"a": []}]},
               {"id": 2, "title": "标题", "content": "正文"}]
    data, ends = _array_with_record_ends(records)
    closed = data.rindex(b"]") + 1
    for cut in range(1, len(data) + 1):
        items = list(layouts.iter_json_array(_stream(data[:cut])))
        parsed = [item for item in items if isinstance(item, Parsed)]
        assert len(parsed) == sum(end <= cut for end in ends), cut
        assert [item.reason for item in items if isinstance(item, Unparsed)] == ([] if cut >= closed else ["truncated"])


def test_json_array_records_are_decoded_one_by_one():
    records = [{"id": 0, "content": "嘰嘰喳喳"}, {"id": 1, "title": '乗"'}, {"id": 2, "content": "内容"}]
    gb18030 = json.dumps(records, ensure_ascii=False).encode("gb18030")  # 嘰 and 乗 end in 0x5C, a backslash
    assert [item.value for item in layouts.iter_json_array(_stream(gb18030))] == records
    utf8, gb, bad = (json.dumps(record, ensure_ascii=False).encode(encoding) for record, encoding in
                     zip(records, ("utf-8", "gb18030", "utf-8")))
    bad = bad.replace("内".encode("utf-8"), b"\xff\xb8\x85", 1)
    data = b"[" + b",\n".join((utf8, gb, bad)) + b"]"
    items = list(layouts.iter_json_array(_stream(data)))
    assert [item.value for item in items[:2]] == records[:2]
    assert items[2].reason == "undecodable" and items[2].position == "record 2 (line 3)"
    bad_byte = data.index(b"\xff")
    assert items[2].detail.endswith(f"at byte {bad_byte}")


def test_a_record_over_the_size_limit_is_skipped_by_its_brackets(monkeypatch):
    monkeypatch.setattr(layouts, "_CHUNK", 7)  # strings, escapes and brackets straddle the chunks
    monkeypatch.setattr(layouts, "_MAX_RECORD_CHARS", 60)
    huge = {"id": "huge", "nested": [{"a": '"}, {"'}, {"b": "\\"}] * 10, "content": "很长的正文" * 30}
    data = json.dumps([{"id": 0}, huge, {"id": 2}, {"id": 3}], ensure_ascii=False).encode("utf-8")
    items = list(layouts.iter_json_array(_stream(data)))
    assert [(type(item), item.position) for item in items] == [
        (Parsed, "record 0 (line 1)"), (Unparsed, "record 1 (line 1)"), (Parsed, "record 2 (line 1)"),
        (Parsed, "record 3 (line 1)")]
    assert items[1].reason == "record_too_large" and "starts at byte 12" in items[1].detail
    assert [item.value["id"] for item in items if isinstance(item, Parsed)] == [0, 2, 3]


@pytest.mark.parametrize("layout", ["lines", "array", "document"])
def test_json_nested_too_deep_is_one_located_reject(layout):
    deep = "[" * 100_000 + "]" * 100_000
    if layout == "document":
        (item,) = [layouts.load_json_document(_stream(deep.encode()))]
        assert (item.position, item.reason) == ("document", "too_deep")
        return
    good = '{"id": 1}'
    text = f"{good}\n{{\"id\": {deep}}}\n{good}\n" if layout == "lines" else f"[{good}, {{\"id\": {deep}}}, {good}]"
    parse = layouts.iter_json_lines if layout == "lines" else layouts.iter_json_array
    items = list(parse(_stream(text.encode())))
    assert [type(item) for item in items] == [Parsed, Unparsed, Parsed]
    assert items[1].reason == "too_deep"


def test_lines_of_one_file_are_each_utf8_or_gb18030():
    data = ("标题一\t摘要一\n".encode("utf-8") + "标题二\t摘要二\n".encode("gb18030") + b"\xff\xfe\t\n"
            + "标题四\t摘要四".encode("utf-8"))
    items = list(layouts.iter_tsv(_stream(data)))
    assert [item.value for item in items if isinstance(item, Parsed)] == [["标题一", "摘要一"], ["标题二", "摘要二"],
                                                                          ["标题四", "摘要四"]]
    assert (items[2].position, items[2].reason) == ("line 3", "undecodable")
    bad_byte = data.index(b"\xff")
    assert items[2].detail.endswith(f"at byte {bad_byte}")


def test_csv_rows_are_decoded_on_their_own_and_a_bad_one_is_located():
    rows = ["title,question,reply,is_best\n", '标题,问题,"多行的\n回答",1\n', "坏,,答\n", "二,,答,0\n"]
    data = b"".join(row.encode("gb18030" if i == 1 else "utf-8") for i, row in enumerate(rows))
    data = data.replace("坏".encode("utf-8"), b"\xff\xfe\xfd")
    items = list(layouts.iter_csv(_stream(data)))
    assert items[0] == Parsed("row 1 (line 3)", {"title": "标题", "question": "问题", "reply": "多行的\n回答", "is_best": "1"})
    assert (items[1].position, items[1].reason) == ("row 2 (line 4)", "undecodable")
    assert items[2].value["title"] == "二"
    limit = csv_module.field_size_limit(10)
    try:
        items = list(layouts.iter_csv(_stream("title,reply\n短,答\n长,这是一个超过十个字符的很长的回答\n三,答\n".encode())))
    finally:
        csv_module.field_size_limit(limit)
    assert [getattr(item, "reason", None) for item in items] == [None, "record_too_large", None]


def test_json_lines_whose_first_line_is_longer_than_the_sniffed_head_are_lines():
    first = json.dumps({"id": 0, "content": "长" * 70_000}, ensure_ascii=False)
    data = (first + "\n" + json.dumps({"id": 1}) + "\n").encode("utf-8")
    assert [item.value["id"] for item in layouts.iter_json_records(_stream(data))] == [0, 1]


@pytest.mark.parametrize("layout", ["lines", "array"])
def test_a_lone_surrogate_escape_is_one_undecodable_record_and_a_pair_is_text(layout):
    records = ['{"id": 0, "t": "\\ud83d\\ude00"}', '{"id": 1, "t": "\\ud800 half"}', '{"id": 2}']
    text = "\n".join(records) if layout == "lines" else "[" + ",\n".join(records) + "]"
    parse = layouts.iter_json_lines if layout == "lines" else layouts.iter_json_array
    items = list(parse(_stream(text.encode())))
    assert items[0].value == {"id": 0, "t": "😀"} and items[2].value == {"id": 2}
    assert (items[1].reason, items[1].position.split(" (")[0]) == ("undecodable", "line 2" if layout == "lines" else "record 1")
