"""Flagged-word lexicons (porn, gambling, ads, abuse, ...): files a user can extend, judged by evidence, not one hit.

A hit is a lexicon entry found on a compacted copy of a side (so "加 微 信", "代*开*发*票" still match) that
falls on word boundaries (jieba words for Chinese: "增加微信粉丝" holds no "加微信"; whole words for English)
with no allowed context near it in its clause (configs/lexicons/<lang>/allowed_contexts.txt: "警方", "诈骗",
"是什么意思", ...). A `drop` category drops a side when a hit is strong (a list line starting with `!`: a
phrase only spam writes, "!代开发票"), when a hit shares its sentence with a spam cue (spam_cues.txt: the
sales pitch, "免费下载", "注册即送"), when the side solicits contact (ads: "加微信" + an id, or a line of its
own with a hotline, a QQ group, a QR-code call or a source URL, as pasted ads and page furniture are), or when at
least `min_hits` different flagged words and cues are at least `max_ratio` of its words, as Data-Juicer's
flagged-words ratio does: one mention of 六合彩 in an article about a TV channel is a topic, not spam. A
`flag` category flags any hit.

Speed: one Aho-Corasick automaton (ahocorasick-rs) over every category finds candidates in one pass; only a
side with a candidate (about 1 in 100 of real text) is segmented (jieba, ~1 us a character) and checked.
"""
from __future__ import annotations

import logging
import re
from bisect import bisect_right
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple, Optional

from cmtp.configs import LEXICONS  # configs/lexicons/<lang>/<category>.txt, shipped as package data
from cmtp.schemas import Pair
from cmtp.transforms.filters.base import Drop
from cmtp.transforms.filters.pair import compact

STRONG = "!"  # a lexicon line starting with it is a strong entry: one hit is evidence
ALLOWED_CONTEXTS = "allowed_contexts"  # configs/lexicons/<lang>/allowed_contexts.txt
SPAM_CUES = "spam_cues"  # configs/lexicons/<lang>/spam_cues.txt
CUE = "<cue>"  # the category of a spam-cue hit
CONTACT = "contact"  # the kind of a contact-solicitation hit
_NOT_WORD = re.compile(r"[\W_]+")
_SPELLED_APART = re.compile(r"\b(?:[a-z0-9][\W_]+){2,}[a-z0-9]\b")
_TRAILING_COMMENT = re.compile(r"\s+#.*$")
_SENTENCE_END = re.compile(r"[。！？!?；;\n]+")
_CLAUSE_END = re.compile(r"[。！？!?；;\n，,、：:]+")
# contact solicitation on a compacted side: a verb and a channel, then an id (or PII's <WECHAT>/<QQ>/<PHONE>, which
# compact to wechat/qq/phone); a channel spelled to dodge filters (薇信, 扣扣, vx) needs no id; "<PHONE>同微信",
# "电话同微信" (the number is the WeChat id too)
_CONTACT_TRIGGERS = ("微信", "薇信", "威信", "徽信", "v信", "vx", "wx", "weixin", "wechat", "qq", "扣扣", "企鹅",
                     "加v", "加q", "phone", "同微信", "微信同号")
_VERB = r"(?:加|添加|联系|咨询|私聊|私信|找)[我本人客服老师小编博主的个下]{0,3}"
_CONTACT = re.compile(
    _VERB + r"(?:微信|薇信|威信|徽信|v信|vx|wx|weixin|wechat|qq|扣扣|企鹅|q|v)(?:号码|号|群)?(?:wechat|qq|phone|[a-z0-9]{5,})"
    r"|" + _VERB + r"(?:薇信|威信|徽信|v信|vx|wx|扣扣|企鹅号)"
    r"|(?:phone|1[3-9][0-9]{9}|电话|手机|手机号|号码)(?:同微信|微信同号|同v|同vx)")
# a line of its own that sends the reader elsewhere, as page furniture and pasted ads do: a contact label and its
# value ("客服热线400-002-0232", "QQ群:<QQ>", "(微信号:<WECHAT>)"), a QR-code or follow-our-account call
# ("扫一扫关注…", "加微信公众号…"), a consult button, a source URL. Only in a side of two or more lines, and not when the query asks for a way to reach someone
_LINE_LABEL = r"(?:QQ群|QQ号|QQ|qq|扣扣|微信公众号|公众号|微信号|微信|VX|vx|WX|wx|热线|电话|客服|手机|[Tt]el|TEL)"
_LINE_VALUE = r"(?:<QQ>|<WECHAT>|<PHONE>|<EMAIL>|[+＋]?[0-9][0-9 \-]{4,}[0-9]|[A-Za-z][A-Za-z0-9_\-]{4,})"
_CONTACT_LINE = re.compile(
    _LINE_LABEL + r"[^\n。!?！？]{0,8}?" + _LINE_VALUE
    + r"|(?:扫一扫|扫码|扫描二维码|长按识别)[^\n]{0,12}?(?:关注|添加|加|下载|咨询)"
    + r"|(?:关注|添加|加|搜索)(?:我们的|我的)?(?:微信)?(?:公众号|服务号|订阅号)"
    + r"|(?:点击咨询|在线咨询|免费咨询|立即咨询)"
    + r"|(?:转载|来源|本文地址|原文|出处)[^\n]{0,12}?(?:https?://|www\.)")
_ASKS_FOR_CONTACT = re.compile(r"电话|热线|客服|QQ|qq|微信|公众号|联系方式|号码|怎么联系|官网|网址|地址")
_RECENT = 1024  # sides with a candidate whose evidence is kept, for the next pair that repeats one


class Hit(NamedTuple):
    """A lexicon entry, a contact solicitation or a spam cue found in a compacted side: where, what, of which category."""

    start: int
    end: int
    category: str
    word: str  # the entry, or the matched text of a contact
    strong: bool
    kind: str = "entry"  # entry | contact | cue


def read_lexicon(path) -> list[str]:
    """Entries of a lexicon file (a path or an importlib resource): one per line; blank lines, #-comment lines and
    trailing ` # reason` comments ignored."""
    lines = path.read_text(encoding="utf-8").splitlines() if hasattr(path, "read_text") else \
        Path(path).read_text(encoding="utf-8").splitlines()
    entries = (_TRAILING_COMMENT.sub("", line).strip() for line in lines if not line.lstrip().startswith("#"))
    return [entry for entry in entries if entry]


compact_zh = compact  # the same compaction the pair rules use (and cache)


def compact_en(text: str) -> str:
    """Lower-case words separated by single spaces, letters spelled apart joined, padded so entries match whole words."""
    text = _SPELLED_APART.sub(lambda m: _NOT_WORD.sub("", m.group()), text.lower())
    return " " + _NOT_WORD.sub(" ", text).strip() + " "


def split_entry(line: str) -> tuple[str, bool]:
    """(entry, strong) of a lexicon line: a leading `!` marks a strong entry."""
    return (line[len(STRONG):].strip(), True) if line.startswith(STRONG) else (line.strip(), False)


def shipped_lexicon(lang: str, name: str) -> list[str]:
    """A lexicon shipped in configs/lexicons/<lang>/<name>.txt (installed with the package)."""
    return read_lexicon(LEXICONS / lang / f"{name}.txt")


def shipped_phrases(lang: str, name: str) -> list[str]:
    """A shipped phrase list of a language (allowed contexts, spam cues); none when the language ships no file."""
    path = LEXICONS / lang / f"{name}.txt"
    return read_lexicon(path) if path.is_file() else []


# common words jieba's dictionary lacks: without them "参加qq群" is cut 参/加qq/群 and "增加微信" 增/加微信
_MISSING_WORDS = ("微信", "微博", "qq", "vx", "wx", "扣扣", "抖音", "淘宝", "支付宝", "花呗", "借呗")


@lru_cache(maxsize=4)  # one tokenizer per process and word list: ~65 MB, 0.8 s, loaded at the first candidate
def _tokenizer(words: tuple[str, ...]):
    """A private jieba tokenizer that knows the entries as words, each as likely as its parts together, so an
    entry is cut as one word where it is one and not where a longer word overlaps it ("增加/微信")."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    common = tokenizer.FREQ["电话"]
    for word in _MISSING_WORDS:
        if not tokenizer.FREQ.get(word):
            tokenizer.add_word(word, common)
    for word in words:
        tokenizer.add_word(word)
    return tokenizer


def sentence_starts(text: str, ends: re.Pattern = _SENTENCE_END) -> list[int]:
    """Offsets, in the compacted text, where each sentence (or clause, by `ends`) of `text` starts."""
    starts, position = [0], 0
    for piece in ends.split(text)[:-1]:
        position += len(_NOT_WORD.sub("", piece))
        starts.append(position)
    return starts


class Evidence(NamedTuple):
    """What a side holds: its hits, the spam cues on word boundaries, its number of words and sentence starts."""

    hits: list[Hit]
    cues: list[Hit]
    words: int
    starts: list[int]


NOTHING = Evidence([], [], 0, [0])


class FlaggedWordsRule:
    """Drop (or flag) a side of a pair whose category hits are strong, pitched, or dense enough.

    `lexicons` maps category -> (action, lines), action "drop" or "flag". `allowed` lists the contexts that
    make a nearby hit innocent, `cues` the sales pitch that makes a nearby hit spam (None: the shipped lists
    of `lang`). The reason names the side and category (`passage_flagged_ads`), the detail the evidence.
    """

    def __init__(self, lexicons: Mapping[str, tuple[str, Iterable[str]]], lang: str = "zh",
                 max_ratio: float = 0.1, min_hits: int = 2, context_chars: int = 10,
                 allowed: Optional[Iterable[str]] = None, cues: Optional[Iterable[str]] = None,
                 contact_category: Optional[str] = "ads", max_contact_line: int = 80):
        self._lang = lang
        self._compact = compact_en if lang == "en" else compact_zh
        self._max_ratio = max_ratio
        self._min_hits = min_hits
        self._context_chars = context_chars
        self._actions = {category: action for category, (action, _) in lexicons.items()}
        self._entries = {category: self._compiled(lines) for category, (_, lines) in lexicons.items()}
        self._allowed = self._phrases(shipped_phrases(lang, ALLOWED_CONTEXTS) if allowed is None else allowed)
        self._cues = self._phrases(shipped_phrases(lang, SPAM_CUES) if cues is None else cues)
        self._contact = contact_category if lang == "zh" and contact_category in lexicons else None
        self._max_line = max_contact_line
        self._automaton = None
        self._recent: dict[str, Evidence] = {}

    def _compiled(self, lines: Iterable[str]) -> dict[str, bool]:
        """Compacted entry -> strong (strong wins when an entry is listed both ways)."""
        entries: dict[str, bool] = {}
        for word, strong in map(split_entry, lines):
            key = self._compact(word)
            if key.strip():
                entries[key] = entries.get(key, False) or strong
        return entries

    def _phrases(self, lines: Iterable[str]) -> list[str]:
        return sorted({key for key in map(self._compact, lines) if key.strip()})

    def setup(self) -> None:
        import ahocorasick_rs

        self._values = [Hit(0, 0, category, word, strong) for category, words in self._entries.items()
                        for word, strong in words.items()]
        triggers = _CONTACT_TRIGGERS if self._contact else ()
        patterns = [hit.word for hit in self._values] + list(triggers)
        self._automaton = ahocorasick_rs.AhoCorasick(patterns) if patterns else None
        self._words = tuple(sorted({hit.word for hit in self._values} | set(self._cues)))  # the tokenizer's own words
        self._word_set = frozenset(self._words)
        self._allowed_automaton = ahocorasick_rs.AhoCorasick(self._allowed) if self._allowed else None
        self._cue_automaton = ahocorasick_rs.AhoCorasick(self._cues) if self._cues else None

    def __getstate__(self):  # the automata are rebuilt on the worker, in setup()
        return {**self.__dict__, "_automaton": None, "_allowed_automaton": None, "_cue_automaton": None, "_recent": {}}

    def _boundaries(self, compacted: str) -> Optional[list[int]]:
        """Word boundaries of a compacted side, in order (None for English, whose entries match whole words)."""
        if self._lang == "en":
            return None
        boundaries, position = [0], 0
        for token in _tokenizer(self._words).cut(compacted, HMM=False):
            position += len(token)
            boundaries.append(position)
        return boundaries

    def _contact_starts_a_word(self, hit: Hit, compacted: str, boundaries: list[int]) -> bool:
        """A contact's verb starts a word, or sits in one of the lists' own words ("详情咨询", "请加微信"); not in
        "增加" or "参加". Its id may run on into the next word, so its end is not checked."""
        if hit.kind != CONTACT:
            return False
        token = bisect_right(boundaries, hit.start) - 1
        return boundaries[token] == hit.start or compacted[boundaries[token]:boundaries[token + 1]] in self._word_set

    def _spans(self, automaton, compacted: str) -> list[tuple[int, int]]:
        if automaton is None:
            return []
        return [(start, end) for _, start, end in automaton.find_matches_as_indexes(compacted, overlapping=True)]

    def _innocent(self, hit: Hit, allowed: list[tuple[int, int]], clauses: list[int]) -> bool:
        """An allowed context within `context_chars` of the hit, in the same clause (not one inside the hit:
        "未满18岁禁止" is a porn site's banner, not a rule that forbids something)."""
        clause = bisect_right(clauses, hit.start)
        low = max(hit.start - self._context_chars, clauses[clause - 1])
        high = hit.end + self._context_chars
        if clause < len(clauses):
            high = min(high, clauses[clause])
        return any(start < high and end > low and not (hit.start <= start and end <= hit.end) for start, end in allowed)

    def evidence(self, text: str) -> Evidence:
        """The side's hits (on word boundaries, outside allowed contexts), cues, words and sentences."""
        if self._automaton is None:
            self.setup()
            if self._automaton is None:  # no entries at all
                return NOTHING
        compacted = self._compact(text)
        if not self._automaton.find_matches_as_indexes(compacted):  # most texts stop here
            return NOTHING
        if text not in self._recent:  # a passage often comes with several questions, a premise with hypotheses
            if len(self._recent) >= _RECENT:
                self._recent.clear()
            self._recent[text] = self._judged(text, compacted)
        return self._recent[text]

    def _judged(self, text: str, compacted: str) -> Evidence:
        """The slow path, for a side with a candidate: contacts, word boundaries, cues, allowed contexts."""
        found = [self._values[index]._replace(start=start, end=end) for index, start, end in
                 self._automaton.find_matches_as_indexes(compacted, overlapping=True) if index < len(self._values)]
        if self._contact:
            found += [Hit(m.start(), m.end(), self._contact, m.group(), True, CONTACT) for m in _CONTACT.finditer(compacted)]
        if not found:
            return NOTHING
        boundaries = self._boundaries(compacted)
        cues = [Hit(start, end, CUE, compacted[start:end], False, "cue") for start, end in
                self._spans(self._cue_automaton, compacted)]
        if boundaries is not None:
            edges = set(boundaries)
            found = [hit for hit in found if self._contact_starts_a_word(hit, compacted, boundaries)
                     or (hit.start in edges and hit.end in edges)]
            cues = [cue for cue in cues if cue.start in edges and cue.end in edges]
        starts = sentence_starts(text) if self._lang != "en" else [0]
        allowed = self._spans(self._allowed_automaton, compacted) if found else []
        if allowed:  # a context counts in its clause: "傻逼,说话之前能不能…" asks nothing about the insult
            clauses = sentence_starts(text, _CLAUSE_END) if self._lang != "en" else [0]
            found = [hit for hit in found if not self._innocent(hit, allowed, clauses)]
        words = len(boundaries) - 1 if boundaries is not None else len(compacted.split())
        return Evidence(found, cues, words, starts)

    def matches(self, text: str) -> list[tuple[str, str, str]]:
        """(category, action, entry) of every hit in the text."""
        return [(hit.category, self._actions[hit.category], hit.word.strip()) for hit in self.evidence(text).hits]

    def verdict(self, side: str, text: str) -> Optional[Drop]:
        """The side's drop (a drop category with enough evidence) or flag (any hit of a flag category), drops first."""
        found = self.evidence(text)
        flagged = None
        for category in dict.fromkeys(hit.category for hit in found.hits):
            mine = [hit for hit in found.hits if hit.category == category]
            if self._actions[category] == "flag":
                flagged = flagged or Drop(f"{side}_flagged_{category}", describe(mine), flag=True)
                continue
            why = self.why(mine, found)
            if why:
                return Drop(f"{side}_flagged_{category}", f"{describe(mine)} ({why})")
        return flagged

    def why(self, hits: list[Hit], found: Evidence) -> str:
        """Why a drop category's hits are evidence ("" when they are not): strong, pitched, or dense."""
        if any(hit.strong for hit in hits):
            return "strong"
        for hit in hits:
            sentence = bisect_right(found.starts, hit.start)
            if any(bisect_right(found.starts, cue.start) == sentence and cue.word != hit.word and not overlaps(cue, hit)
                   for cue in found.cues):
                return "with a spam cue in its sentence"
        distinct = distinct_words(hits + found.cues)
        if distinct >= self._min_hits and distinct >= self._max_ratio * max(found.words, 1):
            return f"{distinct} distinct of {found.words} words"
        return ""

    def contact_line(self, side: str, text: str, other: str) -> Optional[Drop]:
        """The contact category's verdict on a side holding a contact, QR-code or source line of its own."""
        if not self._contact or "\n" not in text or _ASKS_FOR_CONTACT.search(other):
            return None
        lines = [line.strip() for line in text.split("\n") if line.strip()]
        if len(lines) < 2:
            return None
        line = next((line for line in lines if len(line) <= self._max_line and _CONTACT_LINE.search(line)), None)
        if line is None:
            return None
        return Drop(f"{side}_flagged_{self._contact}", f"matched contact line {line[:40]!r}",
                    flag=self._actions[self._contact] == "flag")

    def __call__(self, pair: Pair) -> Optional[Drop]:
        flagged = None
        for side, text, other in (("query", pair.query, pair.passage), ("passage", pair.passage, pair.query)):
            for drop in (self.verdict(side, text), self.contact_line(side, text, other)):
                if drop is not None and not drop.flag:
                    return drop
                flagged = flagged or drop
        return flagged


def overlaps(one: Hit, other: Hit) -> bool:
    return one.start < other.end and other.start < one.end


def distinct_words(hits: list[Hit]) -> int:
    """How many different entries the hits show, counting only hits no other hit contains: "色情小说" is one
    word, not also "色情", and a word said twice is one word (repetition has its own rule)."""
    spans = {(hit.start, hit.end): hit.word for hit in hits}
    return len({word for span, word in spans.items()
                if not any(other != span and other[0] <= span[0] and span[1] <= other[1] for other in spans)})


def describe(hits: list[Hit]) -> str:
    """The detail of a verdict: the entries matched, strong ones first, a contact as what it matched."""
    ordered = sorted(hits, key=lambda hit: (hit.kind != CONTACT, not hit.strong))
    words = dict.fromkeys(f"contact {hit.word!r}" if hit.kind == CONTACT else repr(hit.word.strip()) for hit in ordered)
    return "matched " + ", ".join(words)
