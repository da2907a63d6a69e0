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


def extract_all(source: str, path, **settings) -> tuple[list, list]:
    """(pairs, extract errors) of every parsed record of the file, through the configured source."""
    from cmtp.transforms.sources import SourceSettings

    configured = REGISTRY[source](SourceSettings(**settings))
    pairs, errors = [], []
    with open_binary(str(path)) as stream:
        for item in configured.parse(str(path), stream):
            if isinstance(item, Parsed):
                try:
                    pairs += configured.extract_enabled(SourceRecord(source, str(path), item.position, item.value)).pairs
                except ExtractError as error:
                    errors.append((item.position, error.reason))
    return pairs, errors


def json_lines(path) -> list:
    import gzip as gz

    import zstandard

    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gz.decompress(data)
    elif path.suffix == ".zst":
        data = zstandard.ZstdDecompressor().decompress(data)
    return data.decode("utf-8").splitlines()


def test_wudao_sub_titles_become_subtitle_passage_pairs_qualified_by_the_title():
    pairs, _ = extract_all("wudao", SAMPLE / "wudao" / "wudao_part0.json")
    record = json.loads((SAMPLE / "wudao" / "wudao_part0.json").read_text("utf-8"))[2]
    subtitles = [p for p in pairs if p.position.startswith("record 2 ") and p.kind == "subtitle_passage"]
    assert [p.query for p in subtitles] == [f"{record['title']} 起源与发展", f"{record['title']} 主要特点",
                                            f"{record['title']} 现代价值"]
    assert subtitles[0].passage in record["content"] and "二、" not in subtitles[0].passage
    assert subtitles[0].origin_id == "2"


def test_wudao_lead_question_option_recovers_titles_of_the_real_finance_records(shared_data):
    pairs, errors = extract_all("wudao", shared_data / "wudao" / "jinrong_data.json",
                                options={"lead_question_as_title": True})
    assert len(pairs) == 21 and not errors
    assert (pairs[0].query, pairs[0].passage[:8]) == ("平安信用卡上门激活失败是为啥？", "平安信用卡上门激")
    _, errors = extract_all("wudao", shared_data / "wudao" / "jinrong_data.json")
    assert [(position.split(" (")[0], reason) for position, reason in errors] == [
        (f"record {i}", "empty_title") for i in range(21)]


def test_zhihu_webtext_question_answer_and_located_bad_lines():
    path = SAMPLE / "zhihu" / "web_text_zh_sample.json"
    pairs, errors = extract_all("zhihu", path)
    raw = json.loads(json_lines(path)[0])
    assert (pairs[0].query, pairs[0].passage, pairs[0].kind, pairs[0].origin_id, pairs[0].position) == (
        raw["title"], raw["content"], "question_answer", raw["answer_id"], "line 1")
    assert errors == [("line 11", "empty_answer")]
    with_desc, _ = extract_all("zhihu", path, options={"with_description": True})
    assert with_desc[0].query == f"{raw['title']} {raw['desc']}"


def test_zhihu_kol_parquet_rows_with_answer_url():
    import pyarrow.parquet as pq

    path = SAMPLE / "zhihu" / "zhihu_kol_sample.parquet"
    pairs, errors = extract_all("zhihu", path)
    rows = pq.read_table(path).to_pylist()
    assert len(pairs) == len(rows) == 8 and not errors
    assert (pairs[0].query, pairs[0].passage, pairs[0].position) == (rows[0]["INSTRUCTION"], rows[0]["RESPONSE"], "row 0")
    assert pairs[0].origin_id == json.loads(rows[0]["METADATA"])["url"]


def test_baike_qa_and_encyclopedia_layouts():
    qa, errors = extract_all("baike", SAMPLE / "baike" / "baike_qa_sample.json")
    raw = json.loads(json_lines(SAMPLE / "baike" / "baike_qa_sample.json")[0])
    assert (qa[0].query, qa[0].passage, qa[0].origin_id) == (raw["title"], raw["answer"], raw["qid"])
    assert errors == [("line 7", "empty_answer")]
    wiki, errors = extract_all("baike", SAMPLE / "baike" / "wiki_zh" / "AA" / "wiki_00")
    first = [p for p in wiki if p.position == "line 1"]
    assert [p.kind for p in first] == ["title_summary", "subtitle_passage", "subtitle_passage", "subtitle_passage"]
    assert first[0].query == "黄山" and first[0].passage.startswith("黄山是位于中国安徽省南部的山脉")
    assert first[1].query == "黄山 名称由来" and first[1].passage.startswith("黄山古称黟山")
    assert first[0].origin_id == "https://zh.wikipedia.org/wiki?curid=1180634"
    assert errors == [("line 4", "empty_text")]


def test_news_title_body_and_title_desc():
    path = SAMPLE / "news" / "news2016zh_sample.json.gz"
    pairs, errors = extract_all("news", path)
    raw = json.loads(json_lines(path)[0])
    first = [p for p in pairs if p.position == "line 1"]
    assert [(p.kind, p.query, p.passage) for p in first] == [
        ("title_body", raw["title"], raw["content"]), ("title_summary", raw["title"], raw["desc"])]
    assert errors == [("line 4", "empty_title")]
    only_body, _ = extract_all("news", path, kinds=("title_body",))
    assert {p.kind for p in only_body} == {"title_body"}


def test_csl_keyword_layouts(shared_data):
    kg, _ = extract_all("csl", shared_data / "csl" / "kg_dev.tsv")
    ts = (shared_data / "csl" / "ts_dev.tsv").read_text("utf-8").splitlines()[0].split("\t")
    assert kg[0].kind == "keywords_abstract" and kg[0].passage == ts[1]  # the title appended in kg is cut off
    assert kg[0].query == "修正Rodrigues参数模型、平方和优化、大角度机动、Lyapunov函数"
    fewclue, errors = extract_all("csl", shared_data / "csl" / "fewclue_dev_few_all.json")
    labels = [json.loads(line)["label"] for line in (shared_data / "csl" / "fewclue_dev_few_all.json").read_text("utf-8").splitlines()]
    assert len(fewclue) == labels.count("1") and len(errors) == labels.count("0")
    assert {reason for _, reason in errors} == {"keywords_not_genuine"}


def test_csl_full_dump_gives_both_kinds_and_the_cap_keeps_the_first():
    pairs, _ = extract_all("csl", SAMPLE / "csl" / "csl_sample.tsv")
    line1 = (SAMPLE / "csl" / "csl_sample.tsv").read_text("utf-8").splitlines()[0].split("\t")
    first = [p for p in pairs if p.position == "line 1"]
    assert [(p.kind, p.query, p.passage) for p in first] == [
        ("title_abstract", line1[0], line1[1]), ("keywords_abstract", "、".join(line1[2].split("_")), line1[1])]
    capped, _ = extract_all("csl", SAMPLE / "csl" / "csl_sample.tsv", max_pairs_per_record=1)
    assert len({p.position for p in capped}) == len(capped)
    assert [p.kind for p in capped if p.position == "line 1"] == ["title_abstract"]


def test_xlsum_title_summary_and_summary_body():
    path = SAMPLE / "xlsum" / "chinese_simplified_sample.jsonl.zst"
    pairs, errors = extract_all("xlsum", path)
    raw = json.loads(json_lines(path)[0])
    assert [(p.kind, p.query, p.passage, p.origin_id) for p in pairs[:2]] == [
        ("title_summary", raw["title"], raw["summary"], raw["url"]), ("summary_body", raw["summary"], raw["text"], raw["url"])]
    assert len(pairs) == 16 and not errors


def test_amazon_reviews_title_body_and_language_option():
    path = SAMPLE / "amazon" / "amazon_reviews_zh_sample.json"
    pairs, errors = extract_all("amazon_reviews", path)
    raw = json.loads(json_lines(path)[0])
    assert (pairs[0].query, pairs[0].passage, pairs[0].origin_id) == (raw["review_title"], raw["review_body"], raw["review_id"])
    assert errors == [("line 5", "empty_title")]
    _, errors = extract_all("amazon_reviews", path, options={"languages": ["en"]})
    assert {reason for _, reason in errors} == {"other_language"}


def test_wiki_atomic_edits_detokenizes_and_rejects_no_edit():
    pairs, errors = extract_all("wiki_atomic_edits", SAMPLE / "wiki_atomic_edits" / "chinese_insertions_sample.tsv")
    by_line = {p.position: p for p in pairs}
    assert (by_line["line 2"].query, by_line["line 2"].passage) == (
        "长江是中国最长的河流，注入东海。", "长江是中国最长的河流，发源于青藏高原，注入东海。")
    assert (by_line["line 8"].query, by_line["line 8"].passage) == ("这部电影获得了最佳影片奖。", "这部电影获得了当年的最佳影片奖。")
    assert errors == [("line 5", "no_edit")] and by_line["line 2"].kind == "paraphrase"


def test_dureader_real_file_gives_the_most_related_paragraph_of_selected_documents(shared_data):
    path = shared_data / "dureader" / "search.dev.json"
    pairs, errors = extract_all("dureader", path)
    raw = json.loads(path.read_text("utf-8").splitlines()[0])
    expected = [d["paragraphs"][d["most_related_para"]].strip() for d in raw["documents"] if d["is_selected"]]
    assert [p.passage for p in pairs if p.position == "line 1"] == expected
    assert all(p.query == raw["question"] and p.origin_id == str(raw["question_id"]) for p in pairs[:len(expected)])
    assert not errors and len(pairs) == 186


def test_dureader_sample_bad_documents_are_rejects():
    _, errors = extract_all("dureader", SAMPLE / "dureader" / "search_sample.json")
    assert errors == [("line 4", "no_related_paragraph"), ("line 5", "no_selected_document")]


def test_zhidao_real_csv_and_quoted_multiline_sample(shared_data):
    pairs, errors = extract_all("zhidao", shared_data / "zhidao" / "financezhidao_filter.csv")
    import csv as csv_module

    with open(shared_data / "zhidao" / "financezhidao_filter.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv_module.DictReader(handle))
    assert [(p.query, p.passage) for p in pairs] == [(r["title"], r["reply"]) for r in rows] and not errors
    sample, _ = extract_all("zhidao", SAMPLE / "zhidao" / "zhidao_sample.csv")
    assert len(sample) == 8 and any("\n" in p.passage for p in sample)
    best, errors = extract_all("zhidao", SAMPLE / "zhidao" / "zhidao_sample.csv", options={"best_only": True})
    assert len(best) == 5 and {reason for _, reason in errors} == {"not_best_reply"}


@pytest.mark.parametrize("settings,message", [
    ({"kinds": ("title_summary",)}, "kinds: 'title_summary' is not a kind of wudao"),
    ({"fields": {"headline": "title"}}, "fields: 'headline' is not a field of wudao"),
])
def test_settings_a_source_does_not_have_are_refused(settings, message):
    from cmtp.transforms.sources import SourceSettings

    with pytest.raises(ValueError, match=message):
        REGISTRY["wudao"](SourceSettings(**settings))


def test_field_override_reads_a_look_alike_layout(tmp_path):
    path = tmp_path / "news.jsonl"
    path.write_text(json.dumps({"id": "1", "headline": "股市收盘", "body": "今日沪指上涨百分之一。"}, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    pairs, _ = extract_all("news", path, fields={"title": "headline", "content": "body"})
    assert [(p.query, p.passage) for p in pairs] == [("股市收盘", "今日沪指上涨百分之一。")]
