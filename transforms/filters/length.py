"""Length rules: per side in characters (zh) or words (en), with per-kind bounds, the query/passage ratio, and short
answers that must be whole."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Optional

from cmtp.schemas import Pair
from cmtp.transforms.filters.base import Drop, side_text


def length(text: str, unit: str) -> int:
    return len(text.split()) if unit == "words" else len(text)


@dataclass(frozen=True)
class LengthRule:
    """Drop a pair whose `side` is shorter than min_length or longer than max_length (`unit`s); a pair kind
    listed in `per_kind` uses its own (min, max) — a similar question is a short passage by nature."""

    side: str
    min_length: int
    max_length: int
    unit: str = "chars"
    per_kind: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def __call__(self, pair: Pair) -> Optional[Drop]:
        low, high = self.per_kind.get(pair.kind, (self.min_length, self.max_length))
        n = length(side_text(pair, self.side), self.unit)
        if n < low:
            return Drop(f"{self.side}_too_short", f"{n} {self.unit} < {low}")
        if n > high:
            return Drop(f"{self.side}_too_long", f"{n} {self.unit} > {high}")
        return None


@dataclass(frozen=True)
class LengthRatioRule:
    """Drop a pair whose query is more than `max_ratio` times as long as its passage (swapped or truncated fields)."""

    max_ratio: float
    unit: str = "chars"

    def __call__(self, pair: Pair) -> Optional[Drop]:
        query, passage = length(pair.query, self.unit), length(pair.passage, self.unit)
        if query > self.max_ratio * max(passage, 1):
            return Drop("query_longer_than_passage", f"{query}/{passage} {self.unit} > {self.max_ratio}")
        return None


_SENTENCE_END = re.compile(r"[。！？!?…\.」』”’\"'）)]\s*$")


@dataclass(frozen=True)
class FragmentRule:
    """Drop a pair whose `side`, in a pair kind of `kinds`, is shorter than `below` characters and does not end as
    a sentence ends (。！？!?… or a closing quote or bracket): a short answer is whole ("周扬。", "心诚则灵!"), the
    first characters of a cut one are not ("硝酰氟（化")."""

    side: str
    kinds: frozenset[str]
    below: int = 6
    unit: str = "chars"

    def __call__(self, pair: Pair) -> Optional[Drop]:
        if pair.kind not in self.kinds:
            return None
        text = side_text(pair, self.side)
        n = length(text, self.unit)
        if n < self.below and not _SENTENCE_END.search(text):
            return Drop(f"{self.side}_fragment", f"{n} {self.unit} < {self.below}, no sentence end")
        return None
