"""The read and extract transforms: whole-file failures and records without pairs become located rejects,
and each producer's own counts match what it emitted."""
from __future__ import annotations

from beam_helpers import run_transform
from cmtp.transforms.extract import ExtractPairs
from cmtp.transforms.read import ReadSource
from cmtp.transforms.sources import REGISTRY, SourceRecord
from conftest import SAMPLE


def read(source: str, paths: list) -> dict:
    return run_transform(ReadSource(REGISTRY[source](), [str(p) for p in paths]), None,
                         ("records", "rejects", "stats"))


def test_records_and_read_rejects_add_up_to_the_readers_count():
    out = read("wudao", sorted((SAMPLE / "wudao").iterdir()))
    assert len(out["records"]) == 31 and len(out["rejects"]) == 1
    assert sum(n for (name, *_), n in out["stats"] if name == "records_read") == 32


def test_corrupt_gzip_is_one_unreadable_reject_and_the_run_goes_on(tmp_path):
    (tmp_path / "bad.json.gz").write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    out = read("wudao", [tmp_path / "bad.json.gz", SAMPLE / "wudao" / "wudao_part0.json"])
    (reject,) = out["rejects"]
    assert (reject.stage, reject.reason, reject.position) == ("read", "unreadable", "file")
    assert reject.file.endswith("bad.json.gz")
    assert len(out["records"]) == 22


def test_file_in_another_layout_names_what_the_source_expects(tmp_path):
    (tmp_path / "cmrc.json").write_text('{"version": "v1", "articles": []}', encoding="utf-8")
    (tmp_path / "broken.json").write_text('{"data": [{"paragraphs": []}], "version": x}', encoding="utf-8")
    (tmp_path / "cut.json").write_text('{"data": [', encoding="utf-8")
    out = read("cmrc2018", [tmp_path / "cmrc.json", tmp_path / "broken.json", tmp_path / "cut.json"])
    reasons = sorted((r.file.rsplit("/", 1)[1], r.reason) for r in out["rejects"])
    assert reasons == [("broken.json", "unexpected_layout"), ("cmrc.json", "unexpected_layout"),
                       ("cut.json", "truncated")]
    layout = [r for r in out["rejects"] if r.reason == "unexpected_layout"]
    assert all("cmrc2018 expects SQuAD JSON" in r.detail for r in layout)
    assert any("line 1 column 43" in r.detail for r in layout)
    (cut,) = [r for r in out["rejects"] if r.reason == "truncated"]
    assert cut.position == "document" and "byte 10" in cut.detail and "line 1 column 11" in cut.detail


def test_extract_rejects_records_without_a_pair_and_counts_what_it_made():
    records = [SourceRecord("wudao", "f.json", "record 0", {"title": "标题", "content": "正文内容"}),
               SourceRecord("wudao", "f.json", "record 1", {"title": "", "content": "正文内容"}),
               SourceRecord("wudao", "f.json", "record 2", {"title": "标题", "content": ["正文"]})]
    out = run_transform(ExtractPairs({"wudao": REGISTRY["wudao"]()}), records, ("pairs", "rejects", "stats"))
    assert [p.position for p in out["pairs"]] == ["record 0"]
    assert sorted((r.position, r.reason) for r in out["rejects"]) == [("record 1", "empty_title"),
                                                                        ("record 2", "wrong_type")]
    assert sorted(out["stats"]) == [(("pairs_made", "wudao", "", ""), 1), (("records_with_pairs", "wudao", "", ""), 1)]


def _news_lines(n: int) -> bytes:
    import json

    return "".join(json.dumps({"news_id": str(i), "title": f"新闻标题{i}", "content": "正文内容。" * 40}, ensure_ascii=False)
                   + "\n" for i in range(n)).encode("utf-8")


def _decompressible(packed: bytes, gzip_framed: bool) -> bytes:
    """What of a cut .gz or .zst decompresses."""
    import zlib

    import zstandard

    if gzip_framed:
        return zlib.decompressobj(wbits=31).decompress(packed)
    return zstandard.ZstdDecompressor().decompressobj().decompress(packed)


def test_truncated_gz_and_zst_keep_every_record_before_the_cut_and_reject_the_cut_one(tmp_path):
    import gzip

    import zstandard

    data = _news_lines(3000)
    for name, packed in (("cut.json.gz", gzip.compress(data)), ("cut.json.zst", zstandard.ZstdCompressor().compress(data))):
        (tmp_path / name).write_bytes(packed[: len(packed) // 2])
        readable = _decompressible(packed[: len(packed) // 2], name.endswith(".gz"))
        out = read("news", [tmp_path / name])
        (reject,) = out["rejects"]
        complete = readable.count(b"\n")
        assert (reject.reason, reject.position) == ("truncated", f"line {complete + 1}"), name
        assert "EOFError" in reject.detail and f"byte {len(readable)}" in reject.detail
        assert len(out["records"]) == complete
        assert sum(n for _, n in out["stats"]) == len(out["records"]) + len(out["rejects"])


def test_a_gz_cut_between_lines_keeps_every_line_and_is_one_unreadable_reject(tmp_path):
    import zlib

    packer = zlib.compressobj(wbits=31)  # gzip framing; the sync flush ends the bytes right after the last line
    (tmp_path / "cut.json.gz").write_bytes(packer.compress(_news_lines(100)) + packer.flush(zlib.Z_SYNC_FLUSH))
    out = read("news", [tmp_path / "cut.json.gz"])
    assert len(out["records"]) == 100
    (reject,) = out["rejects"]
    assert (reject.reason, reject.position) == ("unreadable", "file") and "EOFError" in reject.detail


def test_an_empty_file_is_one_no_records_reject(tmp_path):
    (tmp_path / "empty.json").write_bytes(b"")
    out = read("news", [tmp_path / "empty.json"])
    assert [(r.reason, r.position) for r in out["rejects"]] == [("no_records", "file")]
    assert out["records"] == [] and out["stats"] == [(("records_read", "news", "", ""), 1)]


def test_bom_file_reads_its_first_record(tmp_path):
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + _news_lines(2))
    out = read("news", [tmp_path / "bom.json"])
    assert [r.fields["news_id"] for r in out["records"]] == ["0", "1"] and not out["rejects"]


def test_wrong_layout_files_are_found_before_the_run(tmp_path):
    from cmtp.transforms.read import check_layout

    assert check_layout(REGISTRY["csl"](), str(SAMPLE / "csl" / "csl_sample.tsv")) is None
    problem = check_layout(REGISTRY["csl"](), str(SAMPLE / "zhihu" / "web_text_zh_sample.json"))
    assert problem.startswith("its first 5 records lack the fields it needs (line 1: record has neither 'abst'")
    problem = check_layout(REGISTRY["csl"](), str(SAMPLE / "wiki_atomic_edits" / "chinese_insertions_sample.tsv"))
    assert problem.startswith("its first 5 records do not parse (line 1: 3 tab-separated columns")
    problem = check_layout(REGISTRY["wiki_atomic_edits"](), str(SAMPLE / "csl" / "csl_sample.tsv"))
    assert problem.startswith("first line is not the header")
    problem = check_layout(REGISTRY["wudao"](), str(SAMPLE / "csl" / "csl_sample.tsv"))
    assert problem.startswith("expected a JSON array")
    assert check_layout(REGISTRY["zhihu"](), str(SAMPLE / "zhihu" / "zhihu_kol_sample.parquet")) is None
    (tmp_path / "x.parquet").write_bytes((SAMPLE / "csl" / "csl_sample.tsv").read_bytes())
    assert check_layout(REGISTRY["zhihu"](), str(tmp_path / "x.parquet")).startswith("not a Parquet file")
    assert check_layout(REGISTRY["zhihu"](), str(tmp_path / "missing.parquet")) is None  # a read reject instead


def test_similar_questions_chain_questions_that_share_an_answer():
    from cmtp.schemas import Pair, pair_id
    from cmtp.transforms.similar_queries import DeriveSimilarQuestions

    def qa(question: str, answer: str, source: str = "zhihu") -> Pair:
        return Pair(pair_id(source, "question_answer", question, answer), question, answer, source, "question_answer",
                    "f.json", "line 1")

    shared = "固定起床时间,睡前一小时不看手机。"
    pairs = [qa("如何提高睡眠质量?", shared), qa("怎样才能睡得更好?", shared + " "), qa("怎样才能睡得更好?", shared),
             qa("失眠怎么办?", "固定起床时间，睡前一小时不看手机"), qa("别的问题", "完全不同的回答内容"),
             qa("谢谢1", "谢谢邀请"), qa("谢谢2", "谢谢邀请"), qa("谢谢3", "谢谢邀请"), qa("other", shared, source="baike")]
    out = run_transform(DeriveSimilarQuestions({"zhihu": 2}), pairs, ("pairs", "stats"))
    assert out["pairs"] == []  # 3 distinct questions share the first answer: over the limit of 2
    out = run_transform(DeriveSimilarQuestions({"zhihu": 3}), pairs, ("pairs", "stats"))
    got = sorted((p.query, p.passage) for p in out["pairs"])
    assert got == sorted([("失眠怎么办?", "如何提高睡眠质量?"), ("如何提高睡眠质量?", "怎样才能睡得更好?"),
                          ("谢谢1", "谢谢2"), ("谢谢2", "谢谢3")])
    assert all(p.kind == "similar_question" and "," in p.origin_id for p in out["pairs"])
    assert sum(n for _, n in out["stats"]) == 4


def test_a_cmrc_document_is_decoded_as_a_whole_and_a_bad_question_costs_only_itself(tmp_path):
    import json

    def document(contexts: list[str]) -> str:
        paragraphs = [{"context": c, "qas": [{"id": str(i), "question": f"第{i}个问题是什么？"}]} for i, c in enumerate(contexts)]
        return json.dumps({"data": [{"paragraphs": paragraphs}]}, ensure_ascii=False)

    (tmp_path / "gb.json").write_bytes(document(["嘰嘰喳喳的上下文", "第二段上下文"]).encode("gb18030"))
    bad = document(["第一段上下文", "坏字节的上下文", "第三段上下文"]).replace("第三段", "第三段\\ud800")  # a JSON escape
    (tmp_path / "bad.json").write_bytes(bad.encode("utf-8").replace("坏".encode("utf-8"), b"\xff\xfe\xfd"))
    (tmp_path / "empty.json").write_bytes(b"")
    (tmp_path / "quote.json").write_bytes(document(["上下文"]).encode("utf-8").replace(b'"context"', b'\xff\xfe"', 1))
    out = read("cmrc2018", [tmp_path / "gb.json", tmp_path / "bad.json", tmp_path / "empty.json", tmp_path / "quote.json"])
    assert sorted((r.file.rsplit("/", 1)[1], r.fields["context"]) for r in out["records"]) == [
        ("bad.json", "第一段上下文"), ("gb.json", "嘰嘰喳喳的上下文"), ("gb.json", "第二段上下文")]
    assert sorted((r.file.rsplit("/", 1)[1], r.position, r.reason) for r in out["rejects"]) == [
        ("bad.json", "data[0].paragraphs[1].qas[0]", "undecodable"),
        ("bad.json", "data[0].paragraphs[2].qas[0]", "undecodable"), ("empty.json", "file", "no_records"),
        ("quote.json", "document", "undecodable")]  # a bad byte took a quote's place: the document cannot parse
