"""General filtering: small rules, each answering keep or drop-with-a-reason for one side of a pair.

A rule is a callable `rule(pair) -> Drop | None`. `GeneralFilter` applies them in order; the first
drop sends the pair to the rejects (stage `filter`) with the rule's reason and the measured value,
and counts the reason in Beam metrics.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional, Sequence

import apache_beam as beam
from apache_beam.metrics import Metrics

from cmtp.schemas import Pair, Reject

REJECTS = "rejects"
_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_WORD = re.compile(r"\w")


class Drop(NamedTuple):
    reason: str
    detail: str


Rule = Callable[[Pair], Optional[Drop]]


def cjk_ratio(text: str) -> float:
    """Share of CJK ideographs among the word characters (letters, digits, ideographs); 0 for none."""
    words = len(_WORD.findall(text))
    return len(_CJK.findall(text)) / words if words else 0.0


@dataclass(frozen=True)
class LengthRule:
    """Drop a pair whose `side` is shorter than `min_chars` or longer than `max_chars` characters."""

    side: str  # "query" or "passage"
    min_chars: int
    max_chars: int

    def __call__(self, pair: Pair) -> Optional[Drop]:
        length = len(getattr(pair, self.side))
        if length < self.min_chars:
            return Drop(f"{self.side}_too_short", f"{length} chars < {self.min_chars}")
        if length > self.max_chars:
            return Drop(f"{self.side}_too_long", f"{length} chars > {self.max_chars}")
        return None


@dataclass(frozen=True)
class CjkRatioRule:
    """Drop a pair whose `side` has too small a share of Chinese characters (another language, codes, numbers)."""

    side: str
    min_ratio: float

    def __call__(self, pair: Pair) -> Optional[Drop]:
        ratio = cjk_ratio(getattr(pair, self.side))
        if ratio < self.min_ratio:
            return Drop(f"{self.side}_low_cjk_ratio", f"CJK share {ratio:.2f} < {self.min_ratio:.2f}")
        return None


class _ApplyRules(beam.DoFn):
    def __init__(self, rules: Sequence[Rule]):
        self._rules = tuple(rules)

    def process(self, pair: Pair):
        for rule in self._rules:
            drop = rule(pair)
            if drop is not None:
                Metrics.counter("filter", drop.reason).inc()
                yield beam.pvalue.TaggedOutput(REJECTS, Reject(
                    id=pair.id, source=pair.source, stage="filter", reason=drop.reason, detail=drop.detail,
                    file=pair.file, position=pair.position, kind=pair.kind, query=pair.query, passage=pair.passage))
                return
        yield pair


class GeneralFilter(beam.PTransform):
    """Pairs -> kept pairs (main output) and filter rejects (`rejects`); the first rule that drops decides."""

    def __init__(self, rules: Sequence[Rule]):
        super().__init__()
        self._rules = rules

    def expand(self, pairs):
        return pairs | beam.ParDo(_ApplyRules(self._rules)).with_outputs(REJECTS, main="pairs")
