"""Personal data in Chinese web text: find it, then mask it with a typed placeholder or drop the pair.

Types: mainland mobile numbers; resident ID numbers (GB 11643, checksum and birth date checked, so an
18-digit order number is left alone); bank card numbers (16-19 digits with a card network's prefix, passing Luhn: 1 in 10 random numbers
pass Luhn alone); emails; QQ
numbers and WeChat ids (only after a "QQ" / "微信" label: bare digits are too ambiguous).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Callable, Optional, Sequence

import apache_beam as beam

from cmtp.schemas import Pair
from cmtp.transforms.filters.base import Drop
from cmtp.transforms.report import STATS, stat

PII_TYPES = ("email", "id_card", "bank_card", "phone", "qq", "wechat")
PLACEHOLDER = {kind: f"<{kind.upper()}>" for kind in PII_TYPES}

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def valid_id_card(number: str) -> bool:
    """GB 11643-1999: 17 digits, a real birth date at 7-14, and the ISO 7064 MOD 11-2 check character."""
    number = number.upper()
    if len(number) != 18 or not number[:17].isdigit():
        return False
    try:
        date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return _ID_CHECK[sum(int(d) * w for d, w in zip(number, _ID_WEIGHTS)) % 11] == number[17]


def luhn(number: str) -> bool:
    total = 0
    for i, digit in enumerate(reversed(number)):
        d = int(digit)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


# the cheap tests: plain `in` checks cost a tenth of a regex search; an ASCII class beats \d (Unicode)
_LONG_NUMBER = re.compile(r"[0-9]{4}[ -]?[0-9]{2}")  # no alternation: the scan stays fast
_PHONE_HINT = re.compile(r"1[3-9][0-9][ -]?[0-9]{4}[ -]?[0-9]{4}")  # a literal first character: a fast scan


def _qq_hint(text: str) -> bool:
    return "q" in text or "Q" in text or "扣" in text


def _wechat_hint(text: str) -> bool:
    return "信" in text or "x" in text or "X" in text or "W" in text


# one scan that every labelled type (email, QQ, WeChat) needs to pass before its own test
_LABELS = re.compile("[@qQ扣信xXW]")
_LABELLED = frozenset({"email", "qq", "wechat"})

# (type, a cheap test a text must pass before the pattern is tried, pattern, group to mask, validator)
_PATTERNS: tuple[tuple[str, Callable[[str], object], re.Pattern, int, Optional[Callable[[str], bool]]], ...] = (
    ("email", lambda t: "@" in t, re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), 0, None),
    ("id_card", _LONG_NUMBER.search, re.compile(r"(?<![0-9A-Za-z])([1-9]\d{16}[0-9Xx])(?![0-9A-Za-z])"), 1, valid_id_card),
    ("bank_card", _LONG_NUMBER.search, re.compile(r"(?<![0-9])((?:3[47]|35|4|5[1-5]|62|60|65)(?:\d[ -]?){13,16}\d)(?![0-9])"), 1,
     lambda s: luhn(_digits(s))),
    ("phone", _PHONE_HINT.search, re.compile(r"(?<![0-9])((?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4})(?![0-9])"), 1, None),
    ("qq", _qq_hint, re.compile(r"(?:QQ|qq|Qq|扣扣)\s*(?:号码|号|群)?\s*[:：]?\s*([1-9]\d{4,11})(?![0-9])"), 1, None),
    ("wechat", _wechat_hint, re.compile(r"(?:微信|weixin|WeChat|wechat|VX|vx|Vx|wx|WX)\s*(?:号)?\s*[:：]?\s*([a-zA-Z][-_a-zA-Z0-9]{5,19})"),
     1, None),
)


def find_pii(text: str, types: Sequence[str] = PII_TYPES) -> list[tuple[str, int, int]]:
    """(type, start, end) of each piece of personal data, without overlaps, in text order."""
    found: list[tuple[str, int, int]] = []
    hints: dict = {}  # id_card and bank_card share theirs: test it once
    labels = None
    for kind, hint, pattern, group, valid in _PATTERNS:
        if kind not in types:
            continue
        if kind in _LABELLED:
            if labels is None:
                labels = _LABELS.search(text) is not None
            if not labels:
                continue
        if hint not in hints:
            hints[hint] = hint(text)
        if not hints[hint]:
            continue
        for match in pattern.finditer(text):
            start, end = match.span(group)
            if valid and not valid(match.group(group)):
                continue
            if any(start < e and s < end for _, s, e in found):
                continue
            found.append((kind, start, end))
    return sorted(found, key=lambda item: item[1])


def mask_pii(text: str, types: Sequence[str] = PII_TYPES) -> tuple[str, list[str]]:
    """The text with each piece of personal data replaced by its placeholder, and the types replaced."""
    found = find_pii(text, types)
    for kind, start, end in reversed(found):
        text = text[:start] + PLACEHOLDER[kind] + text[end:]
    return text, [kind for kind, _, _ in found]


@dataclass(frozen=True)
class PiiRule:
    """Drop a pair with personal data on either side (the `drop` action; `mask` is MaskPii)."""

    types: tuple[str, ...] = PII_TYPES

    def __call__(self, pair: Pair) -> Optional[Drop]:
        for side, text in (("query", pair.query), ("passage", pair.passage)):
            found = find_pii(text, self.types)
            if found:
                kind, start, end = found[0]
                return Drop(f"{side}_pii_{kind}", f"{kind} at {start}-{end}")
        return None


class _Mask(beam.DoFn):
    def __init__(self, types: tuple[str, ...]):
        self._types = types

    def process(self, pair: Pair):
        query, in_query = mask_pii(pair.query, self._types)
        passage, in_passage = mask_pii(pair.passage, self._types)
        for kind in in_query + in_passage:
            yield stat(pair.source, f"pii_masked:{kind}")
        yield pair._replace(query=query, passage=passage) if in_query or in_passage else pair


class MaskPii(beam.PTransform):
    """Pairs -> the same pairs with personal data masked (`<PHONE>`, `<ID_CARD>`, ...) and per-type counts (`stats`)."""

    def __init__(self, types: Sequence[str] = PII_TYPES):
        super().__init__()
        self._types = tuple(types)

    def expand(self, pairs):
        return pairs | beam.ParDo(_Mask(self._types)).with_outputs(STATS, main="pairs")
