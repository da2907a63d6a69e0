"""Page furniture: the short lines a crawled page wraps around its text (previous/next links, share and report
buttons, comment-box labels, copyright and ICP footers, editor and source credits, repost notices).

They are removed line by line, not by dropping the pair: the passage between them is good text. A line goes only
when it is short, carries one of the cues, and the passage has other lines; the pair records how many went in
its `flags` (`furniture_removed:N`), so nothing changes silently. C4 and Gopher clean lines the same
way (lines with "javascript", "cookie policy", "terms of use"); the cues here are the Chinese web's.
"""
from __future__ import annotations

import re

# Cues that short lines of page furniture carry and short lines of text rarely do (a line of text that mentions
# 评论 or 来源 in passing is longer than MAX_LINE).
_CUES = re.compile("|".join((
    r"举报", r"上一[篇页章]", r"下一[篇页章]", r"返回(?:顶部|首页|列表)", r"分享到", r"一键分享", r"打赏", r"点赞",
    r"加入收藏", r"设为首页", r"字体大小", r"翻页", r"抢沙发", r"责任编辑", r"^[(（\[【]?编辑[:：]", r"来源[:：]",
r"发表(?:于|时间|日期|我的评论|评论)", r"发布(?:时间|日期)[:：]", r"(?:网友|热门|精彩|全部|最新|暂无|查看|提交)评论",
    r"评论(?:加载|功能|[(（:：]|\d+条)", r"(?:还没有|暂无|没有)(?:人)?评论", r"已有\d*人", r"无法评论", r"阅读(?:全文|原文)",
    r"(?:相关|延伸|推荐)阅读", r"猜你喜欢", r"版权(?:所有|声明|归)", r"免责声明", r"郑重声明", r"转载", r"仅代表作者",
    r"不代表.{0,12}(?:立场|观点)", r"ICP(?:备|证)", r"公网安备", r"copyright", r"all rights reserved", r"©",
    r"扫一扫", r"扫码", r"扫描二维码", r"(?:关注|联系|加入|关于)我们", r"意见反馈",
)), re.IGNORECASE)
# Disclaimers and repost notices run longer than other furniture, and their wording is their own.
_DISCLAIMER = re.compile(r"声明[:：]|仅代表作者|不代表.{0,12}(?:立场|观点)|未经.{0,8}(?:许可|授权).{0,8}转载|转载请注明")
MAX_DISCLAIMER = 120  # characters
_LINE = re.compile(r"\n")
_SPACE = re.compile(r"\s+")
MAX_LINE = 60  # characters (spaces aside): furniture is short


def _is_furniture(line: str) -> bool:
    """Whether a line is page furniture: short and carrying one of the cues, or a disclaimer."""
    compact = _SPACE.sub("", line)
    if not compact or len(compact) > MAX_DISCLAIMER:
        return False
    return _CUES.search(compact) is not None if len(compact) <= MAX_LINE else _DISCLAIMER.search(compact) is not None


def strip_furniture(text: str) -> tuple[str, int]:
    """The text without its furniture lines, and how many went; a one-line text, or one made only of such
    lines, is left whole (the filter judges it as it is)."""
    if "\n" not in text:
        return text, 0
    lines = _LINE.split(text)
    kept = [line for line in lines if not _is_furniture(line)]
    if not any(line.strip() for line in kept):
        return text, 0
    return "\n".join(kept).strip(), len(lines) - len(kept)
