"""Pair rules: the two sides must say different things, and the passage must be more than filler."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import FrozenSet, Optional

from cmtp.schemas import Pair
from cmtp.transforms.filters.base import Drop
from cmtp.transforms.sources.judgments import POSITIVE

_NOT_WORD = re.compile(r"[\W_]+")


@lru_cache(maxsize=256)  # several rules compact the same two sides of a pair in a row
def compact(text: str) -> str:
    """Lower-case word characters only: what is left when spaces, punctuation and symbols are taken out."""
    return _NOT_WORD.sub("", text.lower())


@dataclass(frozen=True)
class EmptySideRule:
    """Drop a pair with a side that normalization left without a single word character."""

    def __call__(self, pair: Pair) -> Optional[Drop]:
        for side, text in (("query", pair.query), ("passage", pair.passage)):
            if not compact(text):
                return Drop(f"empty_{side}", f"{side} has no word characters after normalization")
        return None


@dataclass(frozen=True)
class SameTextRule:
    """Drop a pair whose passage says nothing beyond the query: the same text, the query repeated, or (with
    `prefix`) a prefix of the query (a truncated title standing in for a body).

    Sentence-pair tasks turn `prefix` off: "天津长征医院的药 / 天津长征医院" is LCQMC's hard negative, not a
    truncation. With `keep_identical_positives` a positive whose sides are the same text is kept (a paraphrase
    set's trivial positive); an identical negative contradicts its label and is dropped either way."""

    prefix: bool = True
    keep_identical_positives: bool = False

    def __call__(self, pair: Pair) -> Optional[Drop]:
        query, passage = compact(pair.query), compact(pair.passage)
        if not query or not passage:
            return None
        if query == passage:
            if self.keep_identical_positives and pair.kind == POSITIVE:
                return None
            return Drop("identical_sides", "query and passage are the same text")
        if not passage.replace(query, ""):
            return Drop("passage_repeats_query", f"passage is the query {len(passage) // len(query)} times")
        if self.prefix and query.startswith(passage):
            return Drop("passage_is_query_prefix", f"passage is the first {len(passage)} characters of the query")
        return None


@dataclass(frozen=True)
class BoilerplateRule:
    """Drop a pair whose passage is, once compacted, one of the boilerplate replies ("谢谢", "同问", "如题")."""

    phrases: FrozenSet[str]

    def __call__(self, pair: Pair) -> Optional[Drop]:
        passage = compact(pair.passage)
        if passage in self.phrases:
            return Drop("boilerplate_passage", f"passage is the boilerplate {pair.passage!r}")
        return None
