"""Non-text rules: is this side prose at all? Markup and code remnants, URLs, symbol soup, too little Chinese,
mojibake, and repetition. Each measures one ratio, keeps it in the reject's detail, and drops above a bound.

The measures read text as the normalizer leaves it, with Chinese punctuation folded to ASCII or kept as written:
both are prose punctuation here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

from cmtp.schemas import Pair
from cmtp.transforms.filters.base import Drop, side_text
from cmtp.transforms.filters.pair import compact

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
# kana (less the middle dot ・, which Chinese text uses between foreign names) and hangul: syllables, one unit each
_SYLLABIC = "\u3041-\u30fa\u30fc-\u30ff\u31f0-\u31ff\u1100-\u11ff\uac00-\ud7af"
# counting runs (a few per side) is faster than deleting everything else, which is 3x faster than findall's list
# of one-character strings
_CJK_RUN = re.compile(f"[{_HAN}]+")
_NOT_SYLLABIC = re.compile(f"[^{_SYLLABIC}]+")
_ANY_SYLLABIC = re.compile(f"[{_SYLLABIC}]")
# a word of any alphabet (Latin, Cyrillic, ...) or a number, joined across ' - . ("don't", "MPEG-2", "88.48CNY")
_ALPHA_WORD = re.compile(f"[^\\W_{_HAN}{_SYLLABIC}]+(?:['\u2019.\\-][^\\W_{_HAN}{_SYLLABIC}]+)*")
_NUMBER = re.compile(r"[\d'\u2019.\-]+")  # a word of digits: no language at all ("2017.6.3", "1840年代")
_MARKUP_HINT = re.compile(r"[<>{}=&|]")  # with "()", "->" and "++": no markup or code token gets far without one
_URL = re.compile(r"(?:https?://|ftp://|www\.)[^\s\u3000-\u303f\uff01-\uff60\u4e00-\u9fff]+", re.IGNORECASE)
_MARKUP = re.compile(
    r"</?(?!(?:EMAIL|ID_CARD|BANK_CARD|PHONE|QQ|WECHAT)>)[a-zA-Z][^<>\n]{0,80}>|&#?\w{2,8};|\b(?:class|style|href|src|width|height|id|onclick)\s*=\s*[\"']?"
    r"|[a-z-]+\s*:\s*[^;{}\n\u0080-\U0010ffff]{1,40};|\{|\}|\b(?:function|var|let|const|return|def|import|public|"
    r"static|void|printf?|console\.log|null|undefined|True|False|None|elif|endif|#include)\b|==|!=|=>|->|&&|\|\||"
    r"\+\+|[A-Za-z_][\w.]*(?:\([^()\n]{0,40}\)\s*\{|\(\)|\[\])|\"[A-Za-z_]\w*\"\s*:"
    r"|\[/?(?:url|img|b|i|u|s|color|size|font|quote|code|align|attach|email|list|table|tr|td)(?:=[^\]\n]{0,80})?\]"
    r"|<!\[CDATA\[|\]\]>|<![A-Za-z][^<>\n]{0,80}>|<\?xml[^<>\n]{0,80}\?>"
)
# CSS values are ASCII ("-{zh-hans:皇家赌场;}-" is a Wikipedia variant label); an empty () or [] is code after a
# name ("init()"), and a blank to fill in after Chinese ("孔子的老师是()"); a name with arguments and a brace
# ("getUserList(params) {") is a function; a quoted name and a colon is a JSON key; [b], [url=...] are BBCode;
# <![CDATA[ ]]>, <!DOCTYPE ...> and <?xml ...?> are what a tag stripper may leave of XML

# prose punctuation, ASCII and Chinese (the normalizer may keep ，？！：；（）［］… as written)
_PROSE = r",.!?;:'\"()\[\]、。《》「」『』【】“”‘’\-—–…‥%·・/，？！：；（）［］〈〉〔〕"
_SYMBOL = rf"[^\w\s{_PROSE}]"
_SYMBOLS = re.compile(_SYMBOL)
_MASK = re.compile(r"\*{2,}")  # a run of asterisks masks digits ("还款***元"): not symbols
_RUN = re.compile(r"(.)\1{3,}", re.DOTALL)  # a character repeated 4+ times in a row
# runs that ordinary text has: digits ("10100000"), dots typed as an ellipsis ("所以......", "。。。。"), masks
_ORDINARY_RUNS = frozenset("0123456789.。*")
_LATIN1_LETTERS = re.compile("[\u00c0-\u00ff\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u02c6\u02dc\u2018-\u201e"
                             "\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]")
# Latin-1 letters proper (no × ÷): without one, cp1252 punctuation is just punctuation (Chinese “” ‘’ …)
_LATIN1_ALPHA = re.compile("[\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff\u0152\u0153\u0160\u0161\u0178\u017d\u017e]")
_MOJIBAKE_MARKERS = ("锟斤拷", "烫烫烫", "屯屯屯", "\ufffd")
# Hanzi that UTF-8 Chinese read as GBK is made of and ordinary text almost never uses: the GBK decodings of
# the 1,000 most frequent characters in ../shared/data, less the 2,500 most frequent there (0.007% of real
# text; a third of mojibake). tests/test_filters.py checks both shares. One such character (无瑕, 山楂, 冰淇淋)
# is a rare word, not mojibake: the measure needs two different ones.
_GBK_MOJIBAKE = frozenset(
    "銆鈥锛"  # and the GBK readings of the lead bytes of 。、《》, “”…— and ，：？！（）
    "鍙涓鍏浜浠鍗缁鏈鍒鍚璇瀹澶鎵璐涔浼搴璁鍐杩浣鐢鏉閫灏鍛鎴鍥寮鏂鍔寰鐩甯闄鎬鏃閲瀛鐗宸鏍鏋姝瑙绾鏄琛濂棰鏀杞鏁鎷"
    "鎶姹灞鍦瀵娌骞鍑鐜淇闈闂鑰绉姣鍝鍖褰绛杈娲鎺闃绔鍊娆鐪鍘缃璧鍩绗鎭鏇蹇鍋娴绠娓鎹楠椤璺璋绌鍧鑲鑸娉鑷濡绀閭姘"
    "鐭鐮鏌鎸鐧娑棣鐣椋渚钀鏅濮闆绂瓒鑾濉闅妫閿閰鐨鑺鑳缇鍓鎻鐞铓鑹琚閮閽鐐闀鎰鎯寤鍟闇鑱绋閾鐙澹瑁绫榛鑻妗澧鐥"
    "绱绁鍠鐖娣鐘鑽婕鑴宀绮闊鐤璞鍞鑿鍜瑕閬楂瑗鐫绯鐒椹鍨鍣韬纭鍍鐏鍎妯璀鎮鐓瑷鐑鐚婧鐝濞婊鍕娈婵榫鎿鍡鏆椴楸鎾"
    "鑼缂绐钃楹铔濠妤钘椁鍌钁鎽妞钂鐡")
_GBK_MOJIBAKE_RUN = re.compile("[" + "".join(sorted(_GBK_MOJIBAKE)) + "]")


_MOJIBAKE_HINT = re.compile(_LATIN1_LETTERS.pattern[:-1] + "".join(sorted(_GBK_MOJIBAKE)) + "锟烫屯]")
# One search that any text with markup, mojibake or symbols matches: most real text does not, and then
# those three measures are 0 without running them.
# (Markup's hint characters <>{}=&|+ are symbols already; only "()" and "[]" need their own alternative.)
_SUSPECT = re.compile("|".join((_SYMBOL, _MOJIBAKE_HINT.pattern, r"\(\)|\[\]")))


def ratio(count: int, total: int) -> float:
    return count / total if total else 0.0


def count_cjk(text: str) -> int:
    return sum(map(len, _CJK_RUN.findall(text)))


def count_syllabic(text: str) -> int:
    """Kana and hangul characters (the middle dot ・ aside)."""
    return len(_NOT_SYLLABIC.sub("", text)) if _ANY_SYLLABIC.search(text) else 0


@lru_cache(maxsize=256)  # the CJK-share rule and the language rule ask about the same sides
def cjk_units(text: str) -> tuple[int, int]:
    """(ideographs, units): a unit is an ideograph, a kana or hangul syllable, or a whole word of another alphabet
    ("89c51" too), so "Celecoxib的合成" is 3 of 4 units where it was 3 of 12 letters. A number is a unit only in a
    side without words or ideographs: "1840年代" is 2 of 2 units, a row of figures is figures."""
    han, syllabic = count_cjk(text), count_syllabic(text)
    found = _ALPHA_WORD.findall(text)
    words = sum(not _NUMBER.fullmatch(word) for word in found)
    return han, han + syllabic + (words if words or han or syllabic else len(found))


def cjk_ratio(text: str) -> float:
    """Share of CJK ideographs among the units (see cjk_units); 0 for none."""
    return ratio(*cjk_units(text))


def markup_ratio(text: str) -> float:
    """Share of characters in markup or code tokens (tags, entities, attributes, braces, keywords, operators)."""
    if not _MARKUP_HINT.search(text) and "()" not in text and "->" not in text and "++" not in text:
        return 0.0
    return ratio(sum(len(m) for m in _MARKUP.findall(text)), len(text))


def url_ratio(text: str) -> float:
    """Share of the units (cjk_units, a URL being one) that are URLs: a link in a sentence ("进入http://google.com.hk
    首页后...") is a mention, a list of links is not prose."""
    if "://" not in text and "www." not in text and "WWW." not in text:
        return 0.0
    urls = len(_URL.findall(text))
    return ratio(urls, urls + cjk_units(_URL.sub(" ", text))[1]) if urls else 0.0


def symbol_ratio(text: str) -> float:
    """Share of non-space characters that are neither word characters nor prose punctuation (★, emoji, ■, ~, #...);
    a run of asterisks is a mask for digits, not a symbol."""
    symbols = len(_SYMBOLS.findall(text))
    if "**" in text:
        symbols -= sum(map(len, _MASK.findall(text)))
    return ratio(symbols, len(text) - text.count(" ") - text.count("\n"))


def mojibake_ratio(text: str) -> float:
    """The larger of: the share of word characters that are Latin-1 letters and cp1252 punctuation (UTF-8 or GBK
    bytes read as Latin-1: "ä¸­æ–‡", "ÖÐÎÄ"), and the share of ideographs typical of UTF-8 read as GBK ("涓枃");
    1.0 where a replacement marker ("锟斤拷", U+FFFD) appears. cp1252 punctuation counts only beside a Latin-1
    letter: alone, “” ‘’ … are ordinary Chinese punctuation; GBK-reading ideographs count only when at least two
    different ones appear ("无瑕的瑕" is a word)."""
    if any(marker in text for marker in _MOJIBAKE_MARKERS):
        return 1.0
    if not _MOJIBAKE_HINT.search(text):  # one scan for both kinds; most text has neither
        return 0.0
    latin = len(_LATIN1_LETTERS.findall(text)) if _LATIN1_ALPHA.search(text) else 0
    gbk = _GBK_MOJIBAKE_RUN.findall(text)
    gbk_count = len(gbk) if len(set(gbk)) >= 2 else 0  # one rare character, however often, is a word
    return max(ratio(latin, len(compact(text))), ratio(gbk_count, count_cjk(text)))


def char_repetition_ratio(text: str) -> float:
    """Share of characters inside runs of one character repeated 4+ times ("哈哈哈哈", "!!!!"), less the runs
    ordinary text has (digits, dots, masks)."""
    if not _RUN.search(text):
        return 0.0
    return ratio(sum(len(m.group()) for m in _RUN.finditer(text) if m.group(1) not in _ORDINARY_RUNS), len(text))


def ngram_repetition_ratio(text: str, n: int, at_least: float = 0.0) -> float:
    """Share of character n-grams that repeat an earlier one: 0 for varied text, near 1 for a phrase said over.

    The n-grams starting at every other position are counted (half the cost; a repeated phrase repeats
    at even offsets too within two periods). With `at_least`, a text that cannot reach that share
    returns 0 without counting: each repeated n-gram starts with a character seen before, so a share r
    needs at most (1 - r) * total + n distinct characters, and a set of characters is cheaper.
    """
    total = len(text) - n + 1
    if total < 4 * n:  # a title-length text: too short for the share to mean anything
        return 0.0
    if at_least and total > 200 and len(set(text)) > (1 - at_least) * total + n:  # rarely prunes short texts
        return 0.0
    starts = range(0, total, 2)
    return 1.0 - len({text[i:i + n] for i in starts}) / len(starts)


def duplicate_line_ratio(text: str) -> float:
    lines = text.split("\n")
    return 1.0 - len(set(lines)) / len(lines) if len(lines) >= 3 else 0.0


@dataclass(frozen=True)
class CjkRatioRule:
    """Drop a pair whose `side` has too small a share of Chinese characters (another language, codes), counted in
    units (cjk_units). A side of at most `short_units` units (a query, a keyword list) is held to `short_min_ratio`
    instead: one Latin term among three words is a Chinese query, not English. A side of fewer than `min_units`
    units is not judged: "CCTV" answers "大唐荣耀哪里能看全集", and "2017.6.3" is in no language."""

    side: str
    min_ratio: float
    short_min_ratio: Optional[float] = None
    short_units: int = 0
    min_units: int = 3

    def __call__(self, pair: Pair) -> Optional[Drop]:
        han, units = cjk_units(side_text(pair, self.side))
        if units < self.min_units:
            return None
        short = self.short_min_ratio is not None and units <= self.short_units
        bound = self.short_min_ratio if short else self.min_ratio
        value = ratio(han, units)
        if value < bound:
            return Drop(f"{self.side}_low_cjk_ratio", f"CJK share {value:.2f} < {bound:.2f} ({han} of {units} units)")
        return None


_NEED_SUSPECT = frozenset({"markup", "mojibake", "symbols"})


@dataclass(frozen=True)
class NonTextRule:
    """Drop a pair whose `side` is not prose: the first measure above its bound decides, in the order below.
    A bound of None turns that measure off."""

    side: str
    max_url_ratio: Optional[float] = 0.15
    max_markup_ratio: Optional[float] = 0.2
    max_symbol_ratio: Optional[float] = 0.2
    max_mojibake_ratio: Optional[float] = 0.2
    max_char_repetition: Optional[float] = 0.3
    max_ngram_repetition: Optional[float] = 0.4
    ngram: int = 5
    max_duplicate_line_ratio: Optional[float] = 0.3

    def __post_init__(self):
        checks = (
            ("url", self.max_url_ratio, url_ratio),
            ("markup", self.max_markup_ratio, markup_ratio),
            ("mojibake", self.max_mojibake_ratio, mojibake_ratio),
            ("symbols", self.max_symbol_ratio, symbol_ratio),
            ("char_repetition", self.max_char_repetition, char_repetition_ratio),
            ("duplicate_lines", self.max_duplicate_line_ratio, duplicate_line_ratio),
            ("ngram_repetition", self.max_ngram_repetition,
             lambda t: ngram_repetition_ratio(t, self.ngram, self.max_ngram_repetition)),
        )
        object.__setattr__(self, "_checks", tuple(c for c in checks if c[1] is not None))

    def __call__(self, pair: Pair) -> Optional[Drop]:
        text = side_text(pair, self.side)
        if not text:
            return None
        suspect = _SUSPECT.search(text) is not None
        for name, bound, measure in self._checks:
            if not suspect and name in _NEED_SUSPECT:
                continue
            value = measure(text)
            if value > bound:
                return Drop(f"{self.side}_{name}", f"{name} ratio {value:.2f} > {bound:.2f}")
        return None
