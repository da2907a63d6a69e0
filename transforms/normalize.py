"""Text normalization applied to both sides of every pair before any filter or hash sees them.

In order: HTML entities unescaped and tags stripped (with the text of script and style elements),
NFKC (which also folds full-width ASCII and the ideographic space to half-width), zero-width and
control characters removed, optionally Traditional -> Simplified (OpenCC `t2s`), then
whitespace: runs of spaces become one space, lines are stripped and blank lines dropped. Line
breaks are kept: the duplicate-line and sub-title logic needs them.
"""
from __future__ import annotations

import html
import re
import unicodedata
from typing import Optional

import apache_beam as beam

from cmtp.schemas import Pair

_SCRIPT = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?/?>|<!--.*?-->", re.DOTALL)
_BREAK_TAG = re.compile(r"<(?:br|/p|/div|/li|/h[1-6]|/tr)\b[^>]*>", re.IGNORECASE)
# zero-width and bidi marks, and C0/C1 controls other than tab and newline
_INVISIBLE = re.compile("[\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\ufeff\u00ad"
                        "\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[^\S\n]+")
_LINES = re.compile(r"\s*\n\s*")


def strip_markup(text: str) -> str:
    """Unescape entities and remove tags; block-level tags become line breaks."""
    if "<" in text:
        text = _SCRIPT.sub(" ", text)
        text = _BREAK_TAG.sub("\n", text)
        text = _TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
        if "<" in text:  # escaped markup (&lt;p&gt;) becomes markup on unescaping
            text = _TAG.sub(" ", text)
    return text


def normalize_text(text: str, t2s: Optional[object] = None) -> str:
    """The normalized text; `t2s` is an OpenCC converter or None."""
    text = unicodedata.normalize("NFKC", strip_markup(text))
    text = _INVISIBLE.sub("", text)
    if t2s is not None:
        text = t2s.convert(text)
    return _LINES.sub("\n", _SPACES.sub(" ", text)).strip()


class _Normalize(beam.DoFn):
    def __init__(self, t2s: bool):
        self._t2s = t2s
        self._converter = None

    def setup(self):
        if self._t2s:
            import opencc

            self._converter = opencc.OpenCC("t2s")

    def process(self, pair: Pair):
        yield pair._replace(query=normalize_text(pair.query, self._converter),
                            passage=normalize_text(pair.passage, self._converter))


class NormalizePairs(beam.PTransform):
    """Pairs -> the same pairs with normalized text; ids are kept, so a pair is traceable to its raw input."""

    def __init__(self, t2s: bool = False):
        super().__init__()
        self._t2s = t2s

    def expand(self, pairs):
        return pairs | beam.ParDo(_Normalize(self._t2s))
