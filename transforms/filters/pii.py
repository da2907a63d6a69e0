"""Personal data in Chinese web text: find it, then mask it with a typed placeholder or drop the pair.

Types: mainland mobile numbers (11 digits from 13-19, plain or spaced and dashed: "138 0153 6330",
"138 0 153 6330", with +86, 0086, 86- or (+86) before them; not a number glued to letters, digits or a decimal
point, "SN13912345678", "0.15912345678", nor one a waybill, order or serial label introduces, "运单号 13912345678");
resident ID numbers (GB 11643: a province code, a birth date from 1900 to 2030 and the check character, so an
18-digit order number is left alone); bank card numbers (16-19 digits with a card network's prefix, passing Luhn:
1 in 10 random numbers pass Luhn alone); emails; QQ numbers after a "QQ" label; WeChat ids after an id label
("微信号", "微信:", "vx:", "加微信"), id-shaped (6-20 characters from a letter on): "微信 Android 版" is a product.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Callable, Iterator, Optional, Sequence

import apache_beam as beam

from cmtp.schemas import Pair
from cmtp.transforms.filters.base import Drop
from cmtp.transforms.report import STATS, stat
from cmtp.transforms.stage import REJECTS

PII_TYPES = ("email", "id_card", "bank_card", "phone", "qq", "wechat")
PLACEHOLDER = {kind: f"<{kind.upper()}>" for kind in PII_TYPES}

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
# GB/T 2260 province codes (71 Taiwan, 81-83 Hong Kong, Macao and Taiwan residence permits) and 9 + the first digit
# of one (the foreigners' permanent residence card of 2023)
_ID_REGIONS = frozenset("11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 "
                        "61 62 63 64 65 71 81 82 83 91 92 93 94 95 96".split())
# fixed, never today's date: the result must not depend on when it runs
ID_BIRTH_RANGE = (date(1900, 1, 1), date(2030, 12, 31))


def valid_id_card(number: str) -> bool:
    """GB 11643-1999: a province code, a birth date in ID_BIRTH_RANGE at 7-14 and the MOD 11-2 check character."""
    number = number.upper()
    if len(number) != 18 or not number[:17].isdigit() or number[:2] not in _ID_REGIONS:
        return False
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    if not ID_BIRTH_RANGE[0] <= born <= ID_BIRTH_RANGE[1]:
        return False
    return _ID_CHECK[sum(int(d) * w for d, w in zip(number, _ID_WEIGHTS)) % 11] == number[17]


def luhn(number: str) -> bool:
    """The Luhn check every bank card number passes."""
    total = 0
    for i, digit in enumerate(reversed(number)):
        d = int(digit)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digits(text: str) -> str:
    """The text's digits alone."""
    return re.sub(r"\D", "", text)


# the cheap tests: plain `in` checks cost a tenth of a regex search; an ASCII class beats \d (Unicode)
_LONG_NUMBER = re.compile(r"[0-9]{4}[ -]?[0-9]{2}")  # no alternation: the scan stays fast
# 11 digits from a literal "1" (a fast scan), a space or dash allowed after the third; +86 is looked for afterwards
_PHONE = re.compile(r"1[3-9][0-9](?:[ -]?[0-9]){8}")
_PHONE_SEPARATORS = 3  # "138 0 153 6330": more is a run of small numbers, not a phone written out
_COUNTRY_CODE = re.compile(r"(?:[(（]\s*(?:\+|00)?86\s*[)）]|(?:\+|00)?86)[ -]?$")
# a label that makes the number an order, waybill or serial number: "运单号：", "订单编号为", "SN:"
_NOT_PII_LABEL = re.compile(r"(?:单号|运单|订单|快递|编号|序列号|流水号|SN|S/N)(?:号码|号|码)?(?:是|为)?\s*[:：#]?\s*$",
                            re.IGNORECASE)
_GLUED_BEFORE = re.compile(r"(?:[0-9A-Za-z_]|[0-9]\.)$")  # "SN13912345678", "0.15912345678"
_GLUED_AFTER = re.compile(r"[0-9A-Za-z_]|\.[0-9]")
# "6222 1381 2345 678": digits grouped on past the 11, with a separator the number itself uses, are a longer number
_GROUPED_BEFORE = re.compile(r"[0-9]([ -])$")
_GROUPED_AFTER = re.compile(r"([ -])[0-9]")


def _glued(text: str, start: int, end: int) -> bool:
    """Whether the number at start-end runs into letters, digits or a decimal point: part of a code, not PII."""
    return bool(_GLUED_BEFORE.search(text, max(0, start - 2), start) or _GLUED_AFTER.match(text, end))


def _labelled_not_pii(text: str, start: int) -> bool:
    """Whether a waybill, order or serial label introduces the number at start."""
    return _NOT_PII_LABEL.search(text, max(0, start - 12), start) is not None


def _grouped_on(text: str, start: int, end: int) -> bool:
    """Whether the digits at start-end go on, before or after, in groups cut by a separator they use themselves."""
    inside = text[start:end]
    before = _GROUPED_BEFORE.search(text, max(0, start - 2), start)
    after = _GROUPED_AFTER.match(text, end)
    return any(found and found.group(1) in inside for found in (before, after))


def _is_phone(text: str, start: int, end: int) -> bool:
    """Whether the phone-shaped digits at start-end (with any +86 before them) stand alone as a phone number."""
    if _glued(text, start, end) or _labelled_not_pii(text, start):
        return False
    if text.count(" ", start, end) + text.count("-", start, end) > _PHONE_SEPARATORS:
        return False
    return not _grouped_on(text, start, end)


def _phones(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each mobile number, a +86 before it included; a rejected candidate is tried again one
    digit on ("168 131-8281-8311": "168 131-8281-8" is no phone, "131-8281-8311" is)."""
    match = _PHONE.search(text)
    while match:
        start, end = match.span()
        code = _COUNTRY_CODE.search(text, max(0, start - 8), start)
        if code and _is_phone(text, code.start(), end):
            yield code.start(), end
        elif _is_phone(text, start, end):
            yield start, end
        else:
            end = start + 1
        match = _PHONE.search(text, end)


_WECHAT_LABEL = "微信|vx|VX|Vx|vX|wx|WX|Wx|wX|weixin|Weixin|WEIXIN|wechat|WeChat|Wechat|WECHAT|v信|V信|威信|薇信"
# literals first (a fast scan); group 1 is what follows the label, group 2 the id
_WECHAT = re.compile(rf"(?:{_WECHAT_LABEL})((?:\s*(?:号码|号|(?:ID|id|Id)(?![A-Za-z0-9])))?\s*[:：]?)\s*"
                     r"([A-Za-z][-_A-Za-z0-9]{5,19})"
                     r"(?![-_A-Za-z0-9])")
_ID_LABEL = re.compile(r"号|ID|id|Id|:|：")
_NOT_ADD = ("增加", "参加", "附加", "更加", "追加", "外加")
_NOT_WECHAT_IDS = frozenset({"android", "iphone", "ipad", "windows", "harmonyos", "macbook", "version", "online"})


def _added(text: str, start: int) -> bool:
    """Whether "加" (add me on) comes just before start, and not as part of 增加, 参加 and the like."""
    return text.endswith(("加", "加我", "加个"), 0, start) and not text.endswith(_NOT_ADD, 0, start)


def _wechats(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each WeChat id: after an id label ("微信号", "vx:") or "加微信", shaped like an id."""
    for match in _WECHAT.finditer(text):
        start = match.start()
        if start and match.group()[0].isascii() and text[start - 1].isascii() and text[start - 1].isalpha():
            continue  # "newx: ..." is no label
        labelled = _ID_LABEL.search(match.group(1)) or _added(text, start)
        if labelled and match.group(2).lower() not in _NOT_WECHAT_IDS:
            yield match.span(2)


_BANK_CARD = re.compile(r"(?<![0-9])(?:3[47]|35|4|5[1-5]|62|60|65)(?:[0-9][ -]?){13,16}[0-9](?![0-9])")


def _bank_cards(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each bank card number: a network prefix, Luhn, and neither glued nor an order number."""
    for match in _BANK_CARD.finditer(text):
        start, end = match.span()
        if luhn(_digits(match.group())) and not _glued(text, start, end) and not _labelled_not_pii(text, start):
            yield start, end


def _matches(pattern: re.Pattern, group: int, valid: Optional[Callable[[str], bool]]):
    """A finder: (start, end) of each match's group that passes `valid`."""

    def find(text: str) -> Iterator[tuple[int, int]]:
        for match in pattern.finditer(text):
            if valid is None or valid(match.group(group)):
                yield match.span(group)

    return find


def _qq_hint(text: str) -> bool:
    """A QQ label is possible: plain `in` tests, far cheaper than the pattern."""
    return "q" in text or "Q" in text or "扣" in text


def _wechat_hint(text: str) -> bool:
    """A WeChat label is possible ("信", "vx", "wx", "WeChat"): plain `in` tests, far cheaper than the pattern."""
    return "信" in text or "x" in text or "X" in text or "hat" in text or "HAT" in text


# one scan that every labelled type (email, QQ, WeChat) needs to pass before its own test
_LABELS = re.compile("[@qQ扣信xXWw]")
_LABELLED = frozenset({"email", "qq", "wechat"})

# (type, a cheap test a text must pass before the finder runs, the finder: text -> (start, end) spans)
_FINDERS: tuple[tuple[str, Callable[[str], object], Callable[[str], Iterator[tuple[int, int]]]], ...] = (
    ("email", lambda t: "@" in t,
     _matches(re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), 0, None)),
    ("id_card", _LONG_NUMBER.search,
     _matches(re.compile(r"(?<![0-9A-Za-z])([1-9][0-9]{16}[0-9Xx])(?![0-9A-Za-z])"), 1, valid_id_card)),
    ("bank_card", _LONG_NUMBER.search, _bank_cards),
    ("phone", _PHONE.search, _phones),
    ("qq", _qq_hint, _matches(re.compile(r"(?:QQ|qq|Qq|扣扣)\s*(?:号码|号|群)?\s*[:：]?\s*([1-9][0-9]{4,11})(?![0-9])"), 1,
                              None)),
    ("wechat", _wechat_hint, _wechats),
)


def find_pii(text: str, types: Sequence[str] = PII_TYPES) -> list[tuple[str, int, int]]:
    """(type, start, end) of each piece of personal data, without overlaps, in text order."""
    found: list[tuple[str, int, int]] = []
    hints: dict = {}  # id_card and bank_card share theirs: test it once
    labels = None
    for kind, hint, finder in _FINDERS:
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
        for start, end in finder(text):
            if not any(start < e and s < end for _, s, e in found):
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
        return pairs | beam.ParDo(_Mask(self._types)).with_outputs(REJECTS, STATS, main="pairs")  # masks, never drops
