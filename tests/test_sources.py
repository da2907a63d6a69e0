"""Each source's reader and extractor on its real published files and on the embedded sample."""
from __future__ import annotations

import json

import pytest

from cmtp.transforms.io import open_binary
from cmtp.transforms.sources import REGISTRY, ExtractError, SourceRecord
from cmtp.transforms.sources.layouts import Parsed, Unparsed

from conftest import SAMPLE


def parse(source: str, path) -> list:
    with open_binary(str(path)) as stream:
        return list(REGISTRY[source]().parse(str(path), stream))


def extract(source: str, fields: dict):
    return REGISTRY[source]().extract(SourceRecord(source, "f.json", "record 0", fields))


def test_wudao_records_layout_on_real_file_parses_every_record(shared_data):
    items = parse("wudao", shared_data / "wudao" / "jinrong_data.json")
    assert len(items) == 21 and all(isinstance(item, Parsed) for item in items)
    assert set(items[0].value) == {"id", "uniqueKey", "titleUkey", "dataType", "title", "content"}


def test_wudao_jsonl_layout_on_real_file(shared_data):
    items = parse("wudao", shared_data / "wudao" / "flagai_demo.jsonl")
    assert len(items) == 20 and all("text" in item.value for item in items)


def test_wudao_title_and_content_make_a_title_body_pair():
    (pair,) = extract("wudao", {"id": 7, "title": " 城市轨道交通 ", "content": "地铁新线路开通试运营。"})
    assert (pair.query, pair.passage, pair.kind, pair.origin_id) == ("城市轨道交通", "地铁新线路开通试运营。", "title_body", "7")


def test_wudao_empty_title_is_an_extract_error_not_a_pair():
    with pytest.raises(ExtractError) as raised:
        extract("wudao", {"id": 1, "title": "", "content": "正文"})
    assert raised.value.reason == "empty_title"


def test_wudao_sample_broken_record_is_rejected_and_the_rest_read():
    items = parse("wudao", SAMPLE / "wudao" / "wudao_records.json.gz")
    failures = [item for item in items if isinstance(item, Unparsed)]
    assert len(items) == 10 and len(failures) == 1
    assert failures[0].position.startswith("record 5 ")


@pytest.mark.parametrize("layout", ["squad-style", "original"])
def test_cmrc_both_real_layouts_give_every_question_with_its_context(shared_data, layout):
    items = parse("cmrc2018", shared_data / "cmrc2018" / layout / "cmrc2018_trial.json")
    assert len(items) == 1002
    pairs = extract("cmrc2018", items[0].value)
    assert pairs[0].kind == "question_passage" and pairs[0].passage.startswith("基于《跑跑卡丁车》")


def test_cmrc_question_positions_point_into_the_document(shared_data):
    items = parse("cmrc2018", shared_data / "cmrc2018" / "squad-style" / "cmrc2018_trial.json")
    assert items[0].position == "data[0].paragraphs[0].qas[0]"
    document = json.loads((shared_data / "cmrc2018" / "squad-style" / "cmrc2018_trial.json").read_text("utf-8"))
    assert items[0].value["question"] == document["data"][0]["paragraphs"][0]["qas"][0]["question"]


def test_csl_benchmark_title_layout_on_real_file(shared_data):
    items = parse("csl", shared_data / "csl" / "ts_dev.tsv")
    assert len(items) == 1000 and all(isinstance(item, Parsed) for item in items)
    (pair,) = extract("csl", items[0].value)
    assert pair.query == "一种基于平方和优化的飞行器大角度机动镇定控制器设计方法"
    assert pair.passage.startswith("采用修正的Rodrigues参数")


def test_csl_full_dump_layout_and_wrong_column_count():
    items = parse("csl", SAMPLE / "csl" / "csl_sample.tsv")
    failures = [item for item in items if isinstance(item, Unparsed)]
    assert [f.position for f in failures] == ["line 5"] and failures[0].reason == "wrong_column_count"
    assert set(items[0].value) == {"title", "abstract", "keywords", "discipline", "category"}


def test_csl_gb18030_file_reads_as_chinese():
    items = parse("csl", SAMPLE / "csl" / "csl_sample_gb18030.tsv")
    assert len(items) == 5 and all(isinstance(item, Parsed) for item in items)
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in item.value["title"]) for item in items)


def test_pair_ids_are_stable_content_hashes():
    first = extract("csl", {"title": "标题", "abstract": "摘要内容"})[0]
    again = extract("csl", {"title": "标题", "abstract": "摘要内容"})[0]
    other = extract("csl", {"title": "标题", "abstract": "另一段摘要"})[0]
    assert first.id == again.id != other.id and len(first.id) == 16
