"""Text normalization applied to both sides of every pair before any filter or hash sees them.

In order: HTML entities unescaped and tags stripped (with the text of script and style elements),
compatibility characters folded (below), zero-width and control characters removed, optionally
Traditional -> Simplified (OpenCC `t2s`), then whitespace: runs of spaces become one space, lines are
stripped and blank lines dropped. Line breaks are kept: the duplicate-line and sub-title logic needs them.

Folding is NFKC where NFKC is right and nothing where it is wrong: full-width letters and digits (Ａ１ -> A1),
ideographic and no-break spaces, ligatures, Roman numerals, half-width katakana, ℃, ㎏ and the like are folded;
Chinese punctuation stays as written (，？！：；（）［］～…, which NFKC turns into ASCII while it leaves 。、
alone), and so do marks whose fold changes what the text says: superscripts and subscripts (m², ㎡), circled
numbers (① -> 1 runs into the digits beside it), vulgar fractions (3½ -> 31⁄2), spacing accents, Hangul
compatibility jamo and ™ (a superscript). A small or vertical form of a kept mark (﹐, ︵) becomes that mark.
`nfkc=True` is the old behaviour: plain NFKC. Exact dedup should compare `dedup_form(text)`, which also folds the
punctuation's width.
"""
from __future__ import annotations

import html
import re
import unicodedata
from typing import Optional

import apache_beam as beam

from cmtp.schemas import Pair
from cmtp.transforms.furniture import strip_furniture

_SCRIPT = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?/?>|<!--.*?-->|<![a-zA-Z][^<>]*>|<\?xml[^<>]*\?>", re.DOTALL)
_BREAK_TAG = re.compile(r"<(?:br|/p|/div|/li|/h[1-6]|/tr)\b[^>]*>", re.IGNORECASE)
# zero-width, bidi marks and isolates, Hangul fillers, and C0/C1 controls other than tab and newline
_INVISIBLE = re.compile("[\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad\u180e"
                        "\u115f\u1160\u3164\uffa0\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[^\S\n]+")
_LINES = re.compile(r"\s*\n\s*")

# Chinese punctuation (GB/T 15834) that NFKC would turn into ASCII: kept as written
KEPT_PUNCTUATION = "！（），：；？［］～…‥"
_KEPT_TAGS = ("<super>", "<sub>", "<circle>", "<fraction>")
# code points with a compatibility decomposition: CJK ideographs and Hangul syllables have none, so are skipped
_COMPAT_RANGES = ((0xA0, 0x3400), (0xA000, 0xAC00), (0xD7A4, 0x20000), (0x2F800, 0x2FA20))


def _tag(char: str) -> str:
    """The compatibility tag of a character's decomposition ("<wide>", "<super>", ...), or ""."""
    decomposition = unicodedata.decomposition(char)
    return decomposition.split()[0] if decomposition.startswith("<") else ""


def _keeps(char: str) -> bool:
    """Whether NFKC would be wrong for this character: it is kept as written."""
    if char in KEPT_PUNCTUATION or _tag(char) in _KEPT_TAGS or "\u3131" <= char <= "\u318e":
        return True
    parts = unicodedata.decomposition(char).split()[1:]  # ㎡ is "m" and "²": its fold would lose the square
    if any(_tag(chr(int(part, 16))) in _KEPT_TAGS for part in parts if not part.startswith("<")):
        return True
    folded = unicodedata.normalize("NFKC", char)
    return len(folded) > 1 and folded[0] == " "  # a spacing accent (´) would become a space and a combining mark


def _fold_table() -> dict[str, str]:
    """Each character NFKC changes and is right to change -> what it becomes; a kept mark's variants -> the mark."""
    to_kept = {unicodedata.normalize("NFKC", mark): mark for mark in KEPT_PUNCTUATION}
    table = {}
    for low, high in _COMPAT_RANGES:
        for point in range(low, high):
            char = chr(point)
            if not unicodedata.is_normalized("NFKC", char) and not _keeps(char):
                folded = unicodedata.normalize("NFKC", char)
                table[char] = to_kept.get(folded, folded)
    return table


def _char_class(chars) -> str:
    """A regex character class of these characters, as ranges."""
    points = sorted(ord(char) for char in chars)
    ranges, start = [], points[0]
    for previous, point in zip(points, points[1:] + [None]):
        if point != previous + 1:
            ranges.append(re.escape(chr(start)) + ("-" + re.escape(chr(previous)) if previous > start else ""))
            start = point
    return "[" + "".join(ranges) + "]"


_FOLD = _fold_table()
_FOLDABLE = re.compile(_char_class(_FOLD))


def fold_compat(text: str) -> str:
    """NFKC where it is right (widths, spaces, ligatures), the text as written where it is wrong (see above)."""
    if text.isascii():
        return text
    if _FOLDABLE.search(text):
        text = _FOLDABLE.sub(lambda match: _FOLD[match.group()], text)
    # each piece folded is NFKC's own decomposition, so NFC of the whole is NFKC of it (ｶﾞ -> ガ)
    return unicodedata.normalize("NFC", text)


def dedup_form(text: str) -> str:
    """Normalized text as exact dedup should hash it: NFKC, so copies that differ in punctuation width are one."""
    if text.isascii():
        return text
    return _LINES.sub("\n", _SPACES.sub(" ", unicodedata.normalize("NFKC", text))).strip()


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


def normalize_text(text: str, t2s: Optional[object] = None, nfkc: bool = False) -> str:
    """The normalized text; `t2s` is an OpenCC converter or None; `nfkc` folds Chinese punctuation to ASCII too."""
    text = strip_markup(text)
    text = unicodedata.normalize("NFKC", text) if nfkc else fold_compat(text)
    text = _INVISIBLE.sub("", text)
    if t2s is not None:
        text = t2s.convert(text)
    return _LINES.sub("\n", _SPACES.sub(" ", text)).strip()


class _Normalize(beam.DoFn):
    def __init__(self, t2s: bool, nfkc: bool):
        self._t2s = t2s
        self._nfkc = nfkc
        self._converter = None

    def setup(self):
        if self._t2s:
            import opencc

            self._converter = opencc.OpenCC("t2s")

    def process(self, pair: Pair):
        passage, removed = strip_furniture(normalize_text(pair.passage, self._converter, self._nfkc))
        if removed:
            flag = f"furniture_removed:{removed}"
            pair = pair._replace(flags=f"{pair.flags};{flag}" if pair.flags else flag)
        yield pair._replace(query=normalize_text(pair.query, self._converter, self._nfkc), passage=passage)


class NormalizePairs(beam.PTransform):
    """Pairs -> the same pairs with normalized text, page-furniture lines taken out of passages (counted in the
    pair's flags, transforms/furniture.py); ids are kept, so a pair is traceable to its raw input."""

    def __init__(self, t2s: bool = False, nfkc: bool = False):
        super().__init__()
        self._t2s = t2s
        self._nfkc = nfkc

    def expand(self, pairs):
        return pairs | beam.ParDo(_Normalize(self._t2s, self._nfkc))
