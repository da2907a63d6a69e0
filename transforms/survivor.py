"""Which of several duplicates survives: one deterministic order, shared by every dedup step."""
from __future__ import annotations

from typing import Mapping

from cmtp.schemas import Pair


class SurvivorOrder:
    """Best first: higher source priority, then longer passage, then longer query, then id, then location.

    The key is total (file and position end ties between identical records), so the survivor is
    the same whatever the input order, sharding or runner.
    """

    def __init__(self, priorities: Mapping[str, int]):
        self._priorities = dict(priorities)

    def key(self, pair: Pair) -> tuple:
        return (-self._priorities.get(pair.source, 0), -len(pair.passage), -len(pair.query), pair.id, pair.file,
                pair.position)
