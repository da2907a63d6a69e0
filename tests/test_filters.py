"""Each general-filter rule on real text from ../shared/data (kept) and on crafted bad cases (dropped,
with the right reason); PII found, validated and masked; the rules as a Beam transform."""
from __future__ import annotations

import json

import pytest

from beam_helpers import run_transform
from cmtp.schemas import Pair, pair_id
from cmtp.transforms.filters import GeneralFilter
from cmtp.transforms.filters.base import first_drop
from cmtp.transforms.filters.language import LanguageRule, ScriptStatistics
from cmtp.transforms.filters.length import FragmentRule, LengthRatioRule, LengthRule
from cmtp.transforms.filters.lexicon import FlaggedWordsRule, shipped_lexicon
from cmtp.transforms.filters.nontext import (
    _GBK_MOJIBAKE,
    CjkRatioRule,
    NonTextRule,
    char_repetition_ratio,
    cjk_ratio,
    mojibake_ratio,
    ngram_repetition_ratio,
    symbol_ratio,
    url_ratio,
)
from cmtp.transforms.filters.pair import BoilerplateRule, EmptySideRule, SameTextRule, compact
from cmtp.transforms.filters.pii import PiiRule, find_pii, luhn, mask_pii, valid_id_card
from cmtp.transforms.normalize import normalize_text


def make_pair(query: str, passage: str, kind: str = "title_body") -> Pair:
    query, passage = normalize_text(query), normalize_text(passage)
    return Pair(pair_id("csl", kind, query, passage), query, passage, "csl", kind, "f.tsv", "line 1")


@pytest.fixture(scope="module")
def real_pairs(shared_data) -> list[Pair]:
    """(title, abstract) from CSL and (question, context) from CMRC: 1,256 real pairs that are prose."""
    pairs = []
    for line in (shared_data / "csl" / "ts_dev.tsv").read_text("utf-8").splitlines():
        _, abstract, title = line.split("\t")
        pairs.append(make_pair(title, abstract))
    squad = json.loads((shared_data / "cmrc2018" / "squad-style" / "cmrc2018_trial.json").read_text("utf-8"))
    for article in squad["data"]:
        for paragraph in article["paragraphs"]:
            pairs.append(make_pair(paragraph["qas"][0]["question"], paragraph["context"], "question_passage"))
    return pairs


def test_nontext_and_cjk_rules_keep_nearly_all_real_prose(real_pairs):
    rules = [CjkRatioRule("query", 0.3), CjkRatioRule("passage", 0.3), NonTextRule("query"), NonTextRule("passage")]
    dropped = [(first_drop(rules, p), p.passage[:40]) for p in real_pairs if first_drop(rules, p)]
    assert len(dropped) <= 0.01 * len(real_pairs), dropped[:10]


@pytest.mark.parametrize("text,reason", [
    ("详情请访问 http://www.example.com/a/b/c?id=123 以及 https://spam.example.net/x/y/z/page.html 谢谢", "passage_url"),
    ('<div class="main" style="width:100px;">{"key": "value", "list": [1, 2, 3]}</div> function() { return null; }',
     "passage_markup"),
    ("★★★★☆☆☆ ■■■■ ◆◆◆ ※※※ ♥♥♥ 好评 ☺☺☺☺", "passage_symbols"),
    ("ä¸\xadæ–‡ç½‘ç«™çš„ç¼–ç é—®é¢˜ä¸\xadæ–‡ç½‘ç«™", "passage_mojibake"),
    ("平安信用卡上门激活失败的主要原因".encode("utf-8").decode("gbk", errors="replace"), "passage_mojibake"),
    ("文件打开以后显示锟斤拷锟斤拷,完全无法阅读里面的内容", "passage_mojibake"),
    ("哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈这个太好笑了", "passage_char_repetition"),
    ("这个产品真的很好用。" * 6, "passage_ngram_repetition"),
    ("第一行内容\n重复的行\n重复的行\n重复的行\n重复的行", "passage_duplicate_lines"),
])
def test_nontext_rule_drops_each_kind_of_non_text(text, reason):
    drop = NonTextRule("passage")(make_pair("标题", text))
    assert drop is not None and drop.reason == reason, drop


def test_mojibake_characters_are_rare_in_real_text_and_common_in_mojibake(shared_data):
    real = (shared_data / "csl" / "ts_dev.tsv").read_text("utf-8")
    hanzi = [ch for ch in real if "\u4e00" <= ch <= "\u9fff"]
    assert sum(ch in _GBK_MOJIBAKE for ch in hanzi) / len(hanzi) < 0.001
    lines = [line.split("\t")[1] for line in real.splitlines()[:50]]
    assert all(mojibake_ratio(line.encode("utf-8").decode("gbk", errors="ignore")) > 0.2 for line in lines)
    assert max(mojibake_ratio(line) for line in lines) < 0.05


def test_cjk_ratio_and_ngram_repetition_values():
    assert cjk_ratio("基于YOLO的检测") == 5 / 6  # a Latin word is one unit, not its four letters
    assert cjk_ratio("1840年代的89c51") == 3 / 4  # a number is no unit; a word with letters in it is
    assert ngram_repetition_ratio("这是一段没有重复的普通文字内容，用来检查重复率的计算方法", 5) == 0.0
    assert ngram_repetition_ratio("好的" * 30, 5) > 0.9


def test_length_rules_per_side_per_kind_and_ratio():
    rule = LengthRule("passage", 10, 100, per_kind={"similar_question": (4, 50)})
    assert rule(make_pair("标题", "短文本"))[:2] == ("passage_too_short", "3 chars < 10")
    assert rule(make_pair("怎样睡得更好?", "如何提高睡眠质量?", "similar_question")) is None
    words = LengthRule("passage", 3, 100, unit="words")
    assert words(make_pair("title", "two words")).reason == "passage_too_short"
    assert LengthRatioRule(3.0)(make_pair("很长很长的标题" * 5, "短正文")).reason == "query_longer_than_passage"


def test_pair_rules():
    assert EmptySideRule()(make_pair("标题", "<p>&nbsp;</p>")).reason == "empty_passage"
    same = SameTextRule()
    assert same(make_pair("深度学习", "深度学习。")).reason == "identical_sides"
    assert same(make_pair("深度学习", "深度学习 深度学习 深度学习")).reason == "passage_repeats_query"
    assert same(make_pair("深度学习的应用与发展", "深度学习的")).reason == "passage_is_query_prefix"
    assert same(make_pair("深度学习", "深度学习是机器学习的分支。")) is None
    boilerplate = BoilerplateRule(frozenset(compact(p) for p in shipped_lexicon("zh", "boilerplate")))
    assert boilerplate(make_pair("这个问题怎么解决?", "同问!!!")).reason == "boilerplate_passage"
    assert boilerplate(make_pair("这个问题怎么解决?", "谢谢大家,问题已经通过重启解决了。")) is None


def test_same_text_rule_for_sentence_pairs_keeps_prefixes_and_identical_positives():
    rule = SameTextRule(prefix=False, keep_identical_positives=True)
    assert rule(make_pair("天津长征医院的药", "天津长征医院", "negative")) is None
    assert rule(make_pair("阿德林点点头。", "阿德林点点头", "positive")) is None
    assert rule(make_pair("阿德林点点头。", "阿德林点点头", "negative")).reason == "identical_sides"
    assert rule(make_pair("深度学习", "深度学习 深度学习", "positive")).reason == "passage_repeats_query"


def test_fragment_rule_keeps_whole_short_answers_and_drops_cut_ones():
    rule = FragmentRule("passage", frozenset({"question_passage"}), 6)
    assert rule(make_pair("刘亦菲给谁当过伴娘", "周扬。", "question_passage")) is None
    assert rule(make_pair("白云观求什么最灵验", "心诚则灵!", "question_passage")) is None
    assert rule(make_pair("硝酰氟的化学式", "硝酰氟（化", "question_passage")).reason == "passage_fragment"
    assert rule(make_pair("标题", "短文", "title_body")) is None  # not an answer kind: the length rule's


def test_cjk_share_counts_words_holds_short_sides_to_a_looser_bound_and_skips_tiny_ones():
    rule = CjkRatioRule("query", 0.3, short_min_ratio=0.15, short_units=8)
    assert rule(make_pair("Dell XPS 13 9370 i7 8550U 评测", "正文")) is None  # 2 of 6 units (numbers are none)
    assert rule(make_pair("What is a black hole", "正文")).detail == "CJK share 0.00 < 0.15 (0 of 5 units)"
    long_english = "the committee will meet again next tuesday to review the budget 预算"
    assert rule(make_pair(long_english, "正文")).detail == "CJK share 0.15 < 0.30 (2 of 13 units)"
    assert rule(make_pair("CCTV", "正文")) is None and rule(make_pair("2017.6.3", "正文")) is None  # too little to tell
    assert rule(make_pair("0.00 12.5% -3.2% 1,234 5,678 ¥ $", "正文")).reason == "query_low_cjk_ratio"  # figures only


def test_url_share_counts_a_link_as_one_unit():
    assert url_ratio("进入http://google.com.hk首页后把下面的中文简体换成繁体,大陆手机号就能验证成功了。") < 0.05
    assert url_ratio("上一篇:http://www.example.gov.cn/a/1.htm 下一篇:http://www.example.gov.cn/a/2.htm") == 0.25


def test_repetition_and_symbol_measures_leave_ordinary_runs_and_masks_alone():
    assert char_repetition_ratio("10100000贷款可靠么") == 0.0
    assert char_repetition_ratio("我从来没做过蛋糕,所以......") == 0.0
    assert char_repetition_ratio("好评！！！！！！！哈哈哈哈") == 11 / 13
    assert symbol_ratio("***月***号用花呗 几号还") == 0.0
    assert symbol_ratio("好评★★★") == 0.6


def test_script_statistics_tell_chinese_japanese_and_korean_apart():
    script = ScriptStatistics()
    assert script("これは日本語の文章です。東京の天気は晴れで、とても暖かいです。").lang == "ja"
    assert script("東京都は本日、新型肺炎の感染者を確認したと発表しました").lang == "ja"  # kanji-heavy: particles
    assert script("《卡美拉 大怪兽空中决战》(原名:ガメラ 大怪獣空中决戦)是1995年上映的日本怪兽电影").lang == "zh"
    assert script("오늘은 날씨가 좋아서 친구와 함께 공원에 산책하러 갔습니다.").lang == "ko"
    assert script("The committee will meet again next Tuesday.").lang is None  # fastText's to judge


def zh_lexicons(abuse_action: str = "drop") -> FlaggedWordsRule:
    cats = {name: ("drop", shipped_lexicon("zh", name)) for name in ("porn", "gambling", "ads")}
    cats["abuse"] = (abuse_action, shipped_lexicon("zh", "abuse"))
    return FlaggedWordsRule(cats, "zh")


@pytest.mark.parametrize("text,category", [
    ("想了解详情请加微信咨询,价格优惠", "ads"),
    ("想了解详情请加 微 信咨询", "ads"),
    ("正规代*开*发*票,税点低", "ads"),
    ("线上娱乐城,百家乐每日返水", "gambling"),
    ("网上赌-博平台注册就送", "gambling"),
])
def test_flagged_words_are_caught_with_evasion(text, category):
    drop = zh_lexicons()(make_pair("标题", text))
    assert drop is not None and drop.reason == f"passage_flagged_{category}", drop


def test_flag_action_keeps_the_pair_with_a_flag(real_pairs):
    rule = zh_lexicons(abuse_action="flag")
    abuse_word = shipped_lexicon("zh", "abuse")[0]
    drop = rule(make_pair("评论", f"这个人真是{abuse_word},不要理他"))
    assert drop.flag and drop.reason == "passage_flagged_abuse"
    assert first_drop([rule], make_pair("评论", f"这个人真是{abuse_word},不要理他")) is None
    assert sum(rule(p) is not None for p in real_pairs) <= 3  # real prose rarely contains a flagged entry


def test_english_lexicon_matches_whole_words_and_spelled_apart():
    # strong entries (`!`): one hit is evidence; a plain entry needs company since one hit in a passage is not
    rule = FlaggedWordsRule({"gambling": ("drop", ["!online casino"]), "abuse": ("drop", ["!idiot"])}, "en")
    assert rule(make_pair("t", "Join the best ONLINE   casino today")).reason == "passage_flagged_gambling"
    assert rule(make_pair("t", "you are an i.d.i.o.t")).reason == "passage_flagged_abuse"
    assert rule(make_pair("t", "the idiotic plan failed")) is None


def test_id_card_checksum_and_birth_date_are_checked():
    assert valid_id_card("11010519491231002X")
    assert not valid_id_card("110105194912310021")  # wrong check character
    assert not valid_id_card("110105194913310029")  # month 13
    assert luhn("6222021234567890128") and not luhn("6222021234567890127")


def test_pii_is_found_masked_and_a_wrong_checksum_is_left_alone():
    text = ("联系人电话13812345678,身份证11010519491231002X,邮箱 zhang.san@example.com,"
            "卡号6222 0212 3456 7890 128,QQ:123456789,微信号:abc_123456。订单号110105194912310021。")
    masked, types = mask_pii(text)
    assert types == ["phone", "id_card", "email", "bank_card", "qq", "wechat"]
    assert masked == ("联系人电话<PHONE>,身份证<ID_CARD>,邮箱 <EMAIL>,卡号<BANK_CARD>,QQ:<QQ>,微信号:<WECHAT>。"
                      "订单号110105194912310021。")
    assert find_pii("会议于2023年10月12日召开,参会人数为1200人。") == []
    assert PiiRule()(make_pair("联系方式", "请拨打13812345678联系")).reason == "passage_pii_phone"


def test_language_rule_on_chinese_japanese_and_english(real_pairs):
    rule = LanguageRule("passage", ("zh",), 0.5, 20)
    rule.setup()
    assert rule(make_pair("日本語", "これは日本語の文章です。東京の天気は晴れで、とても暖かいです。")).reason == "passage_language"
    assert rule(make_pair("English", "The city's central public library will extend its weekend hours.")).reason == \
        "passage_language"
    dropped = [p.passage[:30] for p in real_pairs if rule(p)]
    assert len(dropped) <= 0.01 * len(real_pairs), dropped


def test_general_filter_routes_drops_to_rejects_and_keeps_flags():
    pairs = [make_pair("深度学习", "深度学习是机器学习的一个分支。"), make_pair("深度学习", "短"),
             make_pair("评论", "这种人就是" + shipped_lexicon("zh", "abuse")[0] + ",别理他就行了")]
    out = run_transform(GeneralFilter([LengthRule("passage", 5, 100), zh_lexicons(abuse_action="flag")]), pairs)
    assert sorted(p.id for p in out["pairs"]) == sorted([pairs[0].id, pairs[2].id])
    flagged = [p for p in out["pairs"] if p.flags]
    assert len(flagged) == 1 and flagged[0].flags.startswith("passage_flagged_abuse:matched")
    (reject,) = out["rejects"]
    assert (reject.reason, reject.stage, reject.detail) == ("passage_too_short", "filter", "1 chars < 5")


def test_english_config_uses_word_lengths_english_lexicons_and_english_language_id(tmp_path):
    from cmtp.pipelines.config import load_config
    from cmtp.pipelines.rules import general_rules
    from conftest import SAMPLE, write_config

    config = write_config(tmp_path / "en.yaml", {"wudao": [SAMPLE / "wudao" / "*"]}, extra="filters: {lang: en}\n")
    rules = general_rules(load_config(str(config)))

    def verdict(query: str, passage: str):
        drop = first_drop(rules, make_pair(query, passage))
        return drop.reason if drop else "kept"

    assert verdict("What is a black hole?", "A black hole is a region of spacetime where gravity is so strong "
                   "that nothing, not even light, can escape from it.") == "kept"
    assert verdict("Best deals", "Visit our ONLINE CASINO tonight and win big with free spins for new players.") == \
        "passage_flagged_gambling"
    assert verdict("Black holes", "Un trou noir est une région de l'espace-temps dont rien, pas même la lumière, "
                   "ne peut s'échapper.") == "passage_language"
    assert verdict("Black holes", "黑洞是时空中引力极强的区域，任何物质甚至光都无法从中逃逸出来。") == "passage_too_short"  # 1 word
    assert verdict("Thanks", "Two words") == "passage_too_short"  # 3 words at least, in words not characters
