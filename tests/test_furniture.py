"""Page furniture lines are taken out of passages, counted in the pair's flags, and real text keeps its lines."""
from __future__ import annotations

import json

from test_normalize import _Named

from beam_helpers import run_transform
from cmtp.schemas import Pair
from cmtp.transforms.furniture import strip_furniture
from cmtp.transforms.normalize import NormalizePairs, normalize_text


def dureader_paragraphs(shared) -> list[str]:
    paragraphs = []
    for line in (shared / "dureader" / "search.dev.json").read_text("utf-8").splitlines():
        for document in json.loads(line).get("documents", []):
            paragraphs += document.get("paragraphs", [])
    return [normalize_text(p) for p in paragraphs]


def test_real_furniture_paragraphs_around_a_real_passage_are_removed(shared_data):
    """Paragraphs of crawled pages that are only furniture (a footer, a credit, a repost notice), put around a real
    CMRC context as a page would: the context comes out as it was, and the count is the number removed."""
    paragraphs = dureader_paragraphs(shared_data)
    footer = next(p for p in paragraphs if "公网安备" in p)
    credit = next(p for p in paragraphs if p.startswith("(责任编辑"))
    notice = next(p for p in paragraphs if "禁止转载" in p)
    squad = json.loads((shared_data / "cmrc2018" / "squad-style" / "cmrc2018_trial.json").read_text("utf-8"))
    context = normalize_text(squad["data"][0]["paragraphs"][0]["context"])
    assert strip_furniture("\n".join((credit, context, notice, footer))) == (context, 3)


def test_real_multi_line_texts_keep_every_line(shared_data):
    """The curated real texts that have several lines (CMRC, DuReader answers, Zhidao replies) lose none."""
    texts = []
    for line in (shared_data / "dureader" / "search.dev.json").read_text("utf-8").splitlines():
        texts += json.loads(line).get("answers", [])
    squad = json.loads((shared_data / "cmrc2018" / "squad-style" / "cmrc2018_trial.json").read_text("utf-8"))
    texts += [p["context"] for article in squad["data"] for p in article["paragraphs"]]
    multi = [t for t in (normalize_text(t) for t in texts) if "\n" in t]
    assert multi and all(strip_furniture(t) == (t, 0) for t in multi)


def test_a_passage_of_one_line_or_only_furniture_is_left_for_the_filter():
    assert strip_furniture("上一篇:如何在Word文档中添加背景图片") == ("上一篇:如何在Word文档中添加背景图片", 0)
    assert strip_furniture("相关阅读\n提交评论") == ("相关阅读\n提交评论", 0)


def test_normalize_records_what_it_removed_in_the_flags():
    pair = Pair("a", "问题", "答案在这里。\n(责任编辑:王亚楠)", "dureader", "question_answer", "f", "line 1")
    (out,) = run_transform(_Named(NormalizePairs()), [pair], ("pairs",))["pairs"]
    assert (out.passage, out.flags) == ("答案在这里。", "furniture_removed:1")
