"""The contract every filter rule keeps, and the transform that applies a list of them.

A rule is a callable `rule(pair) -> Drop | None`, built from typed thresholds. A rule that needs
a resource (a model, a lexicon automaton) loads it in `setup()`, which GeneralFilter calls once
per DoFn instance. A rule may also flag a pair it keeps (`Drop(..., flag=True)`): the pair goes
on with the reason added to its `flags`.
"""
from __future__ import annotations

from typing import Mapping, NamedTuple, Optional, Protocol, Sequence

import apache_beam as beam
from apache_beam.metrics import Metrics

from cmtp.schemas import Pair, Reject
from cmtp.transforms.report import STATS
from cmtp.transforms.stage import REJECTS


class Drop(NamedTuple):
    reason: str  # machine-readable: "passage_too_short", "query_flagged_ads", ...
    detail: str  # the measured value or the matched text
    flag: bool = False  # keep the pair, recording the reason in its flags


class Rule(Protocol):
    def __call__(self, pair: Pair) -> Optional[Drop]: ...


def side_text(pair: Pair, side: str) -> str:
    return pair.query if side == "query" else pair.passage


def with_flag(pair: Pair, drop: Drop) -> Pair:
    flag = f"{drop.reason}:{drop.detail}"
    return pair._replace(flags=f"{pair.flags};{flag}" if pair.flags else flag)


class _ApplyRules(beam.DoFn):
    def __init__(self, rules: Sequence[Rule], per_source: Mapping[str, Sequence[Rule]]):
        self._rules = tuple(rules)
        self._per_source = {source: tuple(rules) for source, rules in per_source.items()}

    def setup(self):
        for rules in (self._rules, *self._per_source.values()):
            for rule in rules:
                if hasattr(rule, "setup"):
                    rule.setup()

    def process(self, pair: Pair):
        for rule in self._per_source.get(pair.source, self._rules):
            drop = rule(pair)
            if drop is None:
                continue
            Metrics.counter("filter", drop.reason).inc()
            if drop.flag:
                pair = with_flag(pair, drop)
                continue
            yield beam.pvalue.TaggedOutput(REJECTS, Reject(
                id=pair.id, source=pair.source, stage="filter", reason=drop.reason, detail=drop.detail,
                file=pair.file, position=pair.position, kind=pair.kind, query=pair.query, passage=pair.passage))
            return
        yield pair


def first_drop(rules: Sequence[Rule], pair: Pair) -> Optional[Drop]:
    """The first rule's drop (flags skipped), as GeneralFilter decides; for tests and benchmarks."""
    for rule in rules:
        drop = rule(pair)
        if drop is not None and not drop.flag:
            return drop
    return None


class GeneralFilter(beam.PTransform):
    """Pairs -> kept pairs (main output) and filter rejects (`rejects`); the first rule that drops decides.

    `per_source` gives some sources rules of their own (a labeled task's filters); the rest get `rules`.
    """

    def __init__(self, rules: Sequence[Rule], per_source: Optional[Mapping[str, Sequence[Rule]]] = None):
        super().__init__()
        self._rules, self._per_source = rules, per_source or {}

    def expand(self, pairs):
        return pairs | beam.ParDo(_ApplyRules(self._rules, self._per_source)).with_outputs(REJECTS, STATS, main="pairs")
