"""The flagged-word rule on real text from ../shared/data: curated pairs are kept, the issue's false drops are kept,
spam lines injected into real passages are caught, and a word is judged on jieba word boundaries, next to its
allowed contexts and spam cues, by the share of words it holds."""
from __future__ import annotations

import json
import random

import pytest

from cmtp.pipelines.config import FiltersConfig, MaliciousConfig
from cmtp.schemas import Pair, pair_id
from cmtp.transforms.filters.base import first_drop
from cmtp.transforms.filters.lexicon import FlaggedWordsRule, read_lexicon, shipped_lexicon, split_entry
from cmtp.transforms.filters.pii import mask_pii
from cmtp.transforms.normalize import normalize_text

CATEGORIES = ("porn", "gambling", "ads", "abuse")
# sources whose pairs are good by construction: every drop there is a false drop
CURATED = ("csl", "cmrc2018", "dureader", "lcqmc", "pawsx", "afqmc", "ocnli", "cmnli")

# spam and contact lines, as answer and comment spam writes them (loans, invoices, order brushing, fake documents,
# gambling sites, porn sites, contact solicitations), written for this test
SPAM_LINES = (
    "急用钱?不看征信,不查负债,黑户也能下款,当天到账。",
    "专业代办大额贷款,无视征信,额度五十万起,最快当天放款。",
    "网贷口子大全,秒批秒到账,不看征信不打电话。",
    "花呗套现、信用卡套现,手续费低至百分之三,秒到账。",
    "专业代开发票,增值税专用发票、普通发票均可开,点数低。",
    "招聘刷单兼职,一单一结,佣金日结,不收任何费用。",
    "宝妈兼职,在家用手机点赞就能赚钱,日入二百不是梦。",
    "办理各类证件,毕业证、驾驶证、学位证,三天出证,可上网查询。",
    "私家侦探,婚外情调查,手机定位,查通话记录,专业可靠。",
    "论文代写代发,本科硕士博士均可,包过查重。",
    "有需要的朋友加微信:xyz88866,备注来意。",
    "想了解的加v:lili5678,看朋友圈有案例。",
    "需要资源的私聊,或者加QQ 1234567890。",
    "联系电话13912345678(同微信),随时恭候。",
    "注册即送三十八元彩金,首存百分之百优惠,提款秒到账。",
    "北京赛车pk10计划群,专业导师带单,稳赚不赔。",
    "真人荷官在线发牌,百家乐龙虎斗,二十四小时不打烊。",
    "线上赌场新人首存送百分之五十,流水三倍即可出款。",
    "同城约炮,附近美女,真实可靠,加微信看照片。",
    "成人影院,高清无码,每日更新,手机在线观看。",
    "小姐上门服务,全套服务,包夜价格优惠,微信联系。",
    "色情网站导航,海量成人视频免费看。",
)

# the issue's loan-spam answer ("不看征信…代办大额贷款"), as such answers read
LOAN_SPAM_ANSWER = ("您好,如果您的征信有逾期记录,银行一般不会批。我们这边可以帮您解决:不看征信,不看负债,"
                    "黑白户都可以办理,专业代办大额贷款,额度五万到五十万,最快当天下款。")
# the issue's false drops, in the texts they came from (a writer's biography, an article about a TV channel)
BIOGRAPHY = ("张竞生是中国现代哲学家、性学家和美学家。他早年留学法国,获里昂大学哲学博士学位,回国后在北京大学任教,"
             "提倡美育与节育。晚年定居故乡,潜心著述,一生写了大量的色情小说,也留下了许多研究美学和民俗的论著,"
             "他的思想在当时备受争议,直到八十年代以后才重新得到学界的评价。")
TV_CHANNEL = ("明珠台是香港电视广播有限公司旗下的英语免费电视频道,于1967年启播。频道以播放外国电影、纪录片和新闻为主,"
              "每逢星期二、四及六晚上会直播六合彩攪珠,周末下午则转播英超足球赛事。2016年起频道改为高清广播,"
              "节目表亦增加了财经和教育节目。")


def make_pair(query: str, passage: str, source: str = "x") -> Pair:
    """A pair as the rules see it: normalized, then PII masked."""
    query, _ = mask_pii(normalize_text(query))
    passage, _ = mask_pii(normalize_text(passage))
    return Pair(pair_id(source, "k", query, passage), query, passage, source, "k", "f", "0")


def default_rule() -> FlaggedWordsRule:
    """The rule as the default config builds it: the shipped lists, each category with its default action."""
    rule = FlaggedWordsRule({name: (category.action, shipped_lexicon("zh", name))
                             for name, category in MaliciousConfig().categories.items()}, "zh")
    rule.setup()
    return rule


@pytest.fixture(scope="module")
def rule() -> FlaggedWordsRule:
    return default_rule()


def tsv(path, header: bool = False) -> list[list[str]]:
    lines = path.read_text("utf-8").splitlines()
    return [line.split("\t") for line in lines[1 if header else 0:]]


@pytest.fixture(scope="module")
def curated(shared_data) -> dict[str, list[tuple[str, str]]]:
    """(query, passage) of every curated real file, per source."""
    squad = json.loads((shared_data / "cmrc2018" / "squad-style" / "cmrc2018_trial.json").read_text("utf-8"))
    dureader = []
    for line in (shared_data / "dureader" / "search.dev.json").read_text("utf-8").splitlines():
        record = json.loads(line)
        dureader += [(record["question"], doc["paragraphs"][doc.get("most_related_para", 0)])
                     for doc in record["documents"] if doc.get("is_selected")]
    nli = shared_data / "nli_zh"
    return {
        "csl": [(row[2], row[1]) for row in tsv(shared_data / "csl" / "ts_dev.tsv")]
        + [("、".join(row[2].split("_")), row[1]) for row in tsv(shared_data / "csl" / "kg_dev.tsv")],
        "cmrc2018": [(qa["question"], paragraph["context"]) for article in squad["data"]
                     for paragraph in article["paragraphs"] for qa in paragraph["qas"]],
        "dureader": dureader,
        "lcqmc": [tuple(row[:2]) for row in tsv(nli / "lcqmc_dev.tsv")],
        "pawsx": [tuple(row[1:3]) for row in tsv(nli / "pawsx_dev_2k.tsv", header=True)],
        "afqmc": [tuple(row[:2]) for row in tsv(nli / "afqmc_dev.tsv")],
        "ocnli": [(r["sentence1"], r["sentence2"]) for r in map(json.loads, (shared_data / "ocnli" / "train.3k.json")
                                                                .read_text("utf-8").splitlines())],
        "cmnli": [tuple(row[:2]) for row in tsv(shared_data / "cmnli" / "dev.tsv")],
    }


def test_curated_real_pairs_are_kept_at_the_issue_targets(rule, curated):
    """At most 0.3% dropped overall and 1% per source (measured: 0 of 33,707 pairs)."""
    dropped = {}
    for source, rows in curated.items():
        pairs = [make_pair(query, passage, source) for query, passage in rows]
        drops = [(drop.reason, drop.detail, pair.query[:30]) for pair in pairs
                 if (drop := first_drop([rule], pair)) is not None]
        assert len(drops) <= 0.01 * len(pairs), (source, drops[:5])
        dropped[source] = (len(drops), len(pairs))
    total = sum(n for n, _ in dropped.values())
    assert sum(n for _, n in dropped.values()) > 30000
    assert total <= 0.003 * sum(n for _, n in dropped.values()), dropped
    assert total <= 5, dropped  # today's number is 0: a change that starts dropping curated pairs fails here


def test_spam_lines_injected_into_real_passages_are_caught(rule, curated):
    hosts = [passage for _, passage in curated["cmrc2018"][::8] + curated["dureader"] + curated["csl"][::20]]
    hosts = [host for host in hosts if first_drop([rule], make_pair("标题", host)) is None]
    rng = random.Random(15)
    caught, missed = 0, []
    for i, host in enumerate(hosts):
        line = SPAM_LINES[i % len(SPAM_LINES)]
        sentences = host.split("。")
        cut = rng.randrange(len(sentences) + 1)
        passage = rng.choice(["。", "\n", " "]).join(sentences[:cut] + [line] + sentences[cut:])
        drop = first_drop([rule], make_pair("标题", passage))
        if drop is not None and drop.reason.startswith("passage_flagged_"):
            caught += 1
        else:
            missed.append(line)
    assert len(hosts) >= 200
    assert caught >= 0.95 * len(hosts), sorted(set(missed))


def test_spam_lines_alone_are_caught_with_their_category(rule):
    expected = {"ads": range(0, 14), "gambling": range(14, 18), "porn": range(18, 22)}
    for category, indexes in expected.items():
        for i in indexes:
            drop = first_drop([rule], make_pair("标题", SPAM_LINES[i]))
            assert drop is not None and drop.reason == f"passage_flagged_{category}", (SPAM_LINES[i], drop)


def test_the_loan_spam_answer_is_dropped_as_ads(rule):
    drop = first_drop([rule], make_pair("征信有逾期还能贷款吗?", LOAN_SPAM_ANSWER))
    assert drop.reason == "passage_flagged_ads" and "不看征信" in drop.detail


def test_one_topic_word_in_a_long_passage_is_not_evidence(rule):
    assert first_drop([rule], make_pair("张竞生", BIOGRAPHY)) is None
    assert first_drop([rule], make_pair("明珠台", TV_CHANNEL)) is None
    assert [category for category, _, _ in rule.matches(BIOGRAPHY)] == ["porn"]  # seen, and judged a topic


def test_the_issue_sentences_inserted_into_real_passages_are_kept(rule, curated):
    sentences = ("他一生写了大量的色情小说。", "该频道每周直播六合彩攪珠。", "运营者分享了增加微信粉丝的几种办法。")
    kept = 0
    hosts = [passage for _, passage in curated["cmrc2018"][::40]]
    for host in hosts:
        for sentence in sentences:
            cut = host.find("。") + 1
            kept += first_drop([rule], make_pair("标题", host[:cut] + sentence + host[cut:])) is None
    assert kept == len(hosts) * len(sentences)


def test_words_count_only_on_jieba_word_boundaries(rule):
    assert rule.matches("运营者分享了增加微信粉丝的几种办法") == []
    assert rule.matches("同学们参加qq群的讨论") == []
    assert rule.matches("赌博物馆里陈列着古代的骰子") == []
    assert [word for _, _, word in rule.matches("想了解详情请加微信")] == ["加微信"]
    assert [word for _, _, word in rule.matches("想了解详情请加 微 信")] == ["加微信"]  # spaces do not hide it
    assert [word for _, _, word in rule.matches("想了解详情请加微信咨询")] == ["加微信咨询"]  # the longer entry


def test_allowed_contexts_make_a_hit_innocent(rule):
    for text in ("警方近日捣毁一个网络赌博平台,抓获犯罪嫌疑人十二名。", "谨防刷单兼职诈骗,凡是要求先垫付的都是骗局。",
                 "网上兼职淘宝刷信誉怎么做", "滚犊子是什么意思?"):
        assert rule.matches(text) == [], text
    # a context counts only in the hit's own sentence: spam after a warning is still spam
    assert first_drop([rule], make_pair("标题", "谨防诈骗。专业代开发票,税点低。")).reason == "passage_flagged_ads"


def test_abuse_is_flagged_not_dropped_by_default(rule):
    assert MaliciousConfig().categories["abuse"].action == "flag"
    assert FiltersConfig.model_validate({"malicious": {"categories": {"abuse": {}}}}).malicious.categories[
        "abuse"].action == "flag"
    assert first_drop([rule], make_pair("草泥马是什么意思?", "一种网络用语,原是一种虚构的动物。")) is None
    flagged = rule(make_pair("评论", "你就是个傻逼,说话之前能不能先过过脑子?"))
    assert flagged.flag and flagged.reason == "passage_flagged_abuse" and "傻逼" in flagged.detail


def test_contact_solicitations_with_an_id_are_strong(rule, curated):
    host = curated["cmrc2018"][0][1]
    for line in ("有需要的加我微信 abc_2023 详聊。", "详情咨询QQ:87654321。", "手机13812345678同微信。", "想要的加vx私聊。"):
        drop = first_drop([rule], make_pair("标题", host + line))
        assert drop is not None and drop.reason == "passage_flagged_ads", line
    assert first_drop([rule], make_pair("标题", host + "可以在微信里搜索公众号,也可以加微信好友。")) is None


def test_a_contact_line_of_its_own_drops_a_side_of_several_lines(rule, curated):
    host = curated["cmrc2018"][0][1]
    for line in ("客服热线400-002-0232", "状态:公测 类型:体育竞技 QQ群:12345678", "加微信公众号\"某某\"或\"abcdef\",每天都有干货",
                 "本文来源:http://www.example.com/article/3497.htm", "扫一扫关注我的医生 快速免费咨询医生"):
        drop = first_drop([rule], make_pair("标题", host + "\n" + line))
        assert drop is not None and drop.reason == "passage_flagged_ads", line
    assert first_drop([rule], make_pair("建行客服电话", "建设银行客服电话是95533")) is None  # the line is the answer
    assert first_drop([rule], make_pair("建设银行客服电话是多少", "总行\n客服热线95533")) is None  # and asked for


def test_density_thresholds_are_typed_constructor_arguments():
    lexicons = {"gambling": ("drop", ["百家乐", "老虎机", "轮盘赌"])}
    dense = "百家乐、老虎机和轮盘赌。"
    long = "这座城市的赌场很多,游客也很多," * 8 + "里面有百家乐和老虎机。"
    assert FlaggedWordsRule(lexicons, cues=())(make_pair("t", dense)).reason == "passage_flagged_gambling"
    assert FlaggedWordsRule(lexicons, cues=())(make_pair("t", long)) is None  # 2 of ~60 words
    assert FlaggedWordsRule(lexicons, cues=(), max_ratio=0.01)(make_pair("t", long)) is not None
    assert FlaggedWordsRule(lexicons, cues=(), min_hits=4)(make_pair("t", dense)) is None


def test_a_strong_entry_is_marked_with_a_bang_and_comments_are_ignored(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("# my list\n!代开发票  # only sellers write it\n刷单\n\n", encoding="utf-8")
    assert [split_entry(line) for line in read_lexicon(path)] == [("代开发票", True), ("刷单", False)]
    rule = FlaggedWordsRule({"ads": ("drop", read_lexicon(path))}, cues=(), allowed=())
    assert rule(make_pair("t", "本公司代开发票。")).reason == "passage_flagged_ads"
    assert rule(make_pair("t", "淘宝刷单是一种违规行为,会被平台处罚。")) is None


def test_shipped_lists_are_well_formed():
    for category in CATEGORIES:
        entries = [split_entry(line)[0] for line in shipped_lexicon("zh", category)]
        assert len(entries) == len(set(entries)), category
        assert all(entry and not entry.startswith("!") for entry in entries)
    assert len(shipped_lexicon("zh", "ads")) >= 150


def test_english_lists_keep_their_strong_entries():
    rule = FlaggedWordsRule({name: ("drop", shipped_lexicon("en", name)) for name in CATEGORIES}, "en")
    assert rule(make_pair("t", "Visit our ONLINE CASINO tonight and win big with free spins.")).reason == \
        "passage_flagged_gambling"
    assert rule(make_pair("t", "The novel describes an online casino in Macau and the people who work there, "
                               "from dealers to cooks, over one long winter.")) is None
