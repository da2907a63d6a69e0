"""Normalization and the general filter rules, and the filter as a Beam transform."""
from __future__ import annotations

from beam_helpers import run_transform
from cmtp.schemas import Pair, pair_id
from cmtp.transforms.filters import CjkRatioRule, GeneralFilter, LengthRule, cjk_ratio
from cmtp.transforms.normalize import normalize_pair, normalize_text


def make_pair(query: str, passage: str, source: str = "csl") -> Pair:
    return Pair(pair_id(source, "title_abstract", query, passage), query, passage, source, "title_abstract", "f.tsv",
                "line 1")


def test_normalize_folds_full_width_and_collapses_whitespace():
    assert normalize_text("\u3000ＡＢＣ１２３，  深度\t\n学习 ") == "ABC123, 深度 学习"


def test_normalize_pair_keeps_the_id_for_traceability():
    pair = make_pair("  标题 ", "正文　内容")
    normalized = normalize_pair(pair)
    assert (normalized.query, normalized.passage, normalized.id) == ("标题", "正文 内容", pair.id)


def test_cjk_ratio_counts_ideographs_among_word_characters():
    assert cjk_ratio("深度学习") == 1.0
    assert cjk_ratio("Deep learning") == 0.0
    assert cjk_ratio("基于YOLO的检测") == 5 / 9
    assert cjk_ratio("，。！") == 0.0


def test_length_rule_reports_the_measured_length():
    rule = LengthRule("passage", min_chars=10, max_chars=20)
    assert rule(make_pair("标题", "短")) == ("passage_too_short", "1 chars < 10")
    assert rule(make_pair("标题", "长" * 21)).reason == "passage_too_long"
    assert rule(make_pair("标题", "刚" * 10)) is None


def test_cjk_rule_drops_other_languages_with_the_ratio():
    rule = CjkRatioRule("query", 0.3)
    assert rule(make_pair("Deep learning for text", "中文正文内容")) == ("query_low_cjk_ratio", "CJK share 0.00 < 0.30")
    assert rule(make_pair("基于BERT的文本分类", "中文正文内容")) is None


def test_general_filter_routes_drops_to_rejects_with_reason_and_text():
    pairs = [make_pair("深度学习", "深度学习是机器学习的一个分支。"), make_pair("深度学习", "短"),
             make_pair("Deep learning", "深度学习是机器学习的一个分支。")]
    out = run_transform(GeneralFilter([LengthRule("passage", 5, 100), CjkRatioRule("query", 0.3)]), pairs)
    assert [p.id for p in out["pairs"]] == [pairs[0].id]
    reasons = sorted((r.reason, r.stage, r.query) for r in out["rejects"])
    assert reasons == [("passage_too_short", "filter", "深度学习"), ("query_low_cjk_ratio", "filter", "Deep learning")]
