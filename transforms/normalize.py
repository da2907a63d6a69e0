"""Text normalization applied to both sides of every pair before any filter or hash sees them."""
from __future__ import annotations

import re
import unicodedata

import apache_beam as beam

from cmtp.schemas import Pair

_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """NFKC (which also folds full-width ASCII and the ideographic space to half-width), whitespace runs to one space."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def normalize_pair(pair: Pair) -> Pair:
    return pair._replace(query=normalize_text(pair.query), passage=normalize_text(pair.passage))


class NormalizePairs(beam.PTransform):
    """Pairs -> the same pairs with normalized text; ids are kept, so a pair is traceable to its raw input."""

    def expand(self, pairs):
        return pairs | beam.Map(normalize_pair)
