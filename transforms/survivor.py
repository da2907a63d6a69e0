"""Which of several duplicates survives: one deterministic order, shared by every dedup step."""
from __future__ import annotations

from typing import Mapping, NamedTuple

from cmtp.schemas import Pair


class Rank(NamedTuple):
    """A pair's place in survivor order without its location (smaller is better); ids are unique after exact
    dedup, so it is total there. Near dedup keys and compares these.

    Beam's coder pickles a NamedTuple (here 3-5x slower to encode and decode than a plain tuple, and 1.5-3x
    bigger), so a rank travels as the plain tuple `tuple(rank)` and hot code reads its id as `rank[PAIR_ID]`.
    """

    priority: int  # minus the source's priority
    passage: int  # minus the passage's length (0 with quality "none")
    query: int  # minus the query's length (0 with quality "none")
    pair_id: str


PAIR_ID = Rank._fields.index("pair_id")


class SurvivorOrder:
    """Best first: higher source priority, then the quality key, then id, then location.

    Quality "length" prefers the longer passage, then the longer query (the fuller copy of a text);
    "none" goes straight to the id. (The semantic score is not known yet: dedup runs before the
    scorer, so that expensive stage sees each text once.) The key is total, file and position ending
    ties between identical records, so the survivor is the same whatever the input order, sharding
    or runner. Its fourth element is always the pair id.
    """

    def __init__(self, priorities: Mapping[str, int], quality: str = "length"):
        self._priorities = dict(priorities)
        self._quality = quality

    def key(self, pair: Pair) -> tuple:
        quality = (-len(pair.passage), -len(pair.query)) if self._quality == "length" else (0, 0)
        return (-self._priorities.get(pair.source, 0), *quality, pair.id, pair.file, pair.position)

    def rank(self, pair: Pair) -> tuple:
        """The pair's `Rank`, as the plain tuple that travels (the key's first four elements)."""
        return tuple(Rank(*self.key(pair)[:4]))
