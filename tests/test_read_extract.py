"""The read and extract transforms: whole-file failures and records without pairs become located rejects,
and each producer's own counts match what it emitted."""
from __future__ import annotations

from cmtp.transforms.extract import ExtractPairs
from cmtp.transforms.read import ReadSource
from cmtp.transforms.sources import REGISTRY, SourceRecord

from beam_helpers import run_transform
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
    (tmp_path / "broken.json").write_text('{"data": [', encoding="utf-8")
    out = read("cmrc2018", [tmp_path / "cmrc.json", tmp_path / "broken.json"])
    reasons = sorted((r.file.rsplit("/", 1)[1], r.reason) for r in out["rejects"])
    assert reasons == [("broken.json", "unexpected_layout"), ("cmrc.json", "unexpected_layout")]
    assert all("cmrc2018 expects SQuAD JSON" in r.detail for r in out["rejects"])
    assert any("line 1 column 11" in r.detail for r in out["rejects"])


def test_extract_rejects_records_without_a_pair_and_counts_what_it_made():
    records = [SourceRecord("wudao", "f.json", "record 0", {"title": "标题", "content": "正文内容"}),
               SourceRecord("wudao", "f.json", "record 1", {"title": "", "content": "正文内容"}),
               SourceRecord("wudao", "f.json", "record 2", {"title": "标题", "content": ["正文"]})]
    out = run_transform(ExtractPairs({"wudao": REGISTRY["wudao"]()}), records, ("pairs", "rejects", "stats"))
    assert [p.position for p in out["pairs"]] == ["record 0"]
    assert sorted((r.position, r.reason) for r in out["rejects"]) == [("record 1", "empty_title"),
                                                                        ("record 2", "wrong_type")]
    assert sorted(out["stats"]) == [(("pairs_made", "wudao", "", ""), 1), (("records_with_pairs", "wudao", "", ""), 1)]
