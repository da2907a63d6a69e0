"""Shuffles of many small values in few elements: values go to a shard by a stable hash of their key, gathered per
shard within a bundle, and each shard's values travel as one list.

A shuffle element costs the local runner about 10 us whatever it holds (encode, buffer, group, decode, the DoFn
call), so 20 LSH band keys a pair, one element each, cost more than the MinHash that made them. Gathered per shard
they cost a few elements per bundle. The shard count bounds what one group holds: the values of 1/shards of the
keys, so `shard_count` sizes it from an upper bound on the keys, and no group ever holds the dataset.
"""
from __future__ import annotations

import math
import zlib
from typing import Hashable, Iterator

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

KEYS_PER_SHARD = 1 << 20  # an upper bound on the keys (input bytes) per shard: ~1,000 real pairs a shard
MAX_SHARDS = 4096


def shard_count(max_keys: int) -> int:
    """Shards for at most `max_keys` keys: a power of two from 1 to MAX_SHARDS."""
    return min(MAX_SHARDS, 1 << max(0, math.ceil(math.log2(max(max_keys, 1) / KEYS_PER_SHARD))))


def text_shard(text: str, shards: int) -> int:
    """A stable shard for a string key (Python's own hash of a str differs between processes)."""
    return zlib.crc32(text.encode("utf-8")) % shards


def node_shard(node: Hashable, shards: int) -> int:
    """A stable shard for any key whose repr is stable (ints, strings, tuples of them)."""
    return zlib.crc32(repr(node).encode("utf-8")) % shards


class ShardLists:
    """Values gathered per (tag, shard) within one bundle; a list that reaches `limit` values is given out at once,
    the rest when the bundle finishes (as windowed values, which is what finish_bundle must emit)."""

    def __init__(self, limit: int = 4096):
        self._limit = limit
        self._lists: dict[tuple, list] = {}

    def add(self, tag: str, shard: int, value) -> Iterator:
        values = self._lists.setdefault((tag, shard), [])
        values.append(value)
        if len(values) >= self._limit:
            del self._lists[(tag, shard)]
            yield _tagged(tag, (shard, values))

    def extend(self, tag: str, shard: int, values: list) -> Iterator:
        for value in values:
            yield from self.add(tag, shard, value)

    def drain(self) -> Iterator:
        lists, self._lists = self._lists, {}
        for (tag, shard), values in lists.items():
            yield at_bundle_end((shard, values), tag)


def _tagged(tag: str, value):
    return value if tag is None else beam.pvalue.TaggedOutput(tag, value)


def at_bundle_end(value, tag: str | None = None):
    """`value` as finish_bundle must give it out: windowed (the global window), on output `tag`."""
    return _tagged(tag, WindowedValue(value, MIN_TIMESTAMP, [GlobalWindow()]))
