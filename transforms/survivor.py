"""Which of several duplicates survives: one deterministic order, shared by every dedup step."""
from __future__ import annotations

from typing import Mapping

from cmtp.schemas import Pair


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
