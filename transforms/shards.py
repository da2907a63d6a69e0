"""Shuffles of many small values in few elements: values go to a shard by a stable hash of their key, gathered per
shard within a bundle, and each shard's values travel as one list.

Every shuffle element pays the runner's encode, buffer, group and decode however little it holds: near dedup's 20
LSH band keys a pair, one element each, cost more than the MinHash that made them, and the stage took less than half
the CPU once they moved per shard (docs/benchmarks.md, "Half the CPU per pair"). The shard count bounds what one group
holds: the values of 1/shards of the keys, so `shard_count` sizes it from an upper bound on the keys, and no group
ever holds the dataset.
"""
from __future__ import annotations

import math
import pickle
import zlib
from typing import Hashable, Iterator

import apache_beam as beam
import zstandard
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from cmtp.transforms.progress import is_local

KEYS_PER_SHARD = 1 << 20  # an upper bound on the keys (input bytes) per shard: ~1,000 real pairs a shard
MAX_SHARDS = 4096
# rows a packed shard list holds on a distributed runner: Flink sorts each list as one record, and a record larger
# than a sorter's share of managed memory fails the job ("The record exceeds the maximum size of a sort buffer":
# 688 KB with 256 MB for ~400 tasks); 64 rows of the largest pairs (~6 KB) or labeled records (~15 KB) stay under 1 MB
REMOTE_LIMIT = 64


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
    """Values gathered per shard within one bundle; a list that reaches `limit` values is given out at once, the rest
    when the bundle finishes (as windowed values, which is what finish_bundle must emit). `add` returns what to give
    out, for `yield from`: nothing, or the full list."""

    def __init__(self, limit: int = 4096):
        self._limit = limit
        self._lists: dict[int, list] = {}

    def add(self, shard: int, value) -> tuple:
        values = self._lists.get(shard)
        if values is None:
            values = self._lists[shard] = []
        values.append(value)
        if len(values) < self._limit:
            return ()
        del self._lists[shard]
        return ((shard, values),)

    def take(self) -> list[tuple[int, list]]:
        """The lists not yet given out, (shard, values) each; the gatherer is empty after."""
        lists, self._lists = self._lists, {}
        return list(lists.items())

    def drain(self) -> Iterator:
        for shard_values in self.take():
            yield at_bundle_end(shard_values)


class ShardingDoFn(beam.DoFn):
    """A DoFn that sends its outputs to shards: `yield from self.lists.add(shard, value)` in `process`; the lists
    not yet full are given out when the bundle finishes. A subclass with a start_bundle of its own calls this one;
    LIMIT is how many values a list gathers before it goes."""

    LIMIT = 4096

    def start_bundle(self):
        self.lists = ShardLists(self.LIMIT)

    def finish_bundle(self):
        return self.lists.drain()


def _tagged(tag: str, value):
    return value if tag is None else beam.pvalue.TaggedOutput(tag, value)


def at_bundle_end(value, tag: str | None = None):
    """`value` as finish_bundle must give it out: windowed (the global window), on output `tag`."""
    return _tagged(tag, WindowedValue(value, MIN_TIMESTAMP, [GlobalWindow()]))


class GroupInShards(beam.PTransform):
    """GroupByKey, or CoGroupByKey of a dict of keyed collections, with the values moving a shard at a time.

    (key, value) rows -> (key, [values]) (one collection) or (key, {tag: [values]}) (a dict of them, every tag present,
    empty where that collection has no value for the key), as GroupByKey and CoGroupByKey give them. Each bundle
    gathers its rows per shard of the key and sends each shard's as one pickled list; a shard's group is regrouped by
    key in memory, so the runner moves a few elements a bundle, not one a row. A group holds 1/shards of the keys:
    `shards` from `shard_count`.
    """

    def __init__(self, shards: int, compress: bool = False):
        super().__init__()
        self._shards, self._compress = shards, compress

    def expand(self, keyed):
        tags = list(keyed) if isinstance(keyed, dict) else None
        inputs = keyed if tags else {None: keyed}
        pipeline = next(iter(inputs.values())).pipeline
        limit = _ToShards.LIMIT if is_local(pipeline) else REMOTE_LIMIT
        sharded = [rows | f"Shard {tag or 'rows'}" >> beam.ParDo(_ToShards(tag, self._shards, self._compress, limit))
                   for tag, rows in inputs.items()]
        return (
            sharded | "AllShards" >> beam.Flatten(pipeline=pipeline)
            | "ByShard" >> beam.GroupByKey()
            | "ByKey" >> beam.ParDo(_Regroup(tags, self._compress))
        )


class _ToShards(ShardingDoFn):
    """(key, value) rows -> (shard of the key, (tag, the shard's rows packed)), a list of up to LIMIT rows at a time."""

    LIMIT = 1024

    def __init__(self, tag: str | None, shards: int, compress: bool, limit: int = LIMIT):
        self._tag, self._shards, self._compress, self.LIMIT = tag, shards, compress, limit

    def process(self, row):
        for shard, rows in self.lists.add(key_shard(row[0], self._shards), row):
            yield shard, (self._tag, pack_rows(rows, self._compress))

    def finish_bundle(self):
        for shard, rows in self.lists.take():
            yield at_bundle_end((shard, (self._tag, pack_rows(rows, self._compress))))


def _row_class(value) -> type | None:
    kind = type(value)
    return kind if hasattr(kind, "_fields") else None


def pack_rows(rows: list, compress: bool = False) -> bytes:
    """A list of rows as one pickled blob. NamedTuple rows of one class (the pipelines' rows), alone or as the values
    of (key, row) pairs, travel as plain tuples with the class once: pickle rebuilds a NamedTuple through its
    Python-level __new__, and such rows took twice as long to pickle and a fifth longer to load. `compress`: zstd
    level 1 (pickled Chinese rows shrink to ~0.7 at ~440 MB/s), for rows the local runner holds while other stages
    run. `unpack_rows` gives the list back."""
    first = rows[0]
    kind, keyed, data = _row_class(first), False, rows
    if kind is not None and all(type(row) is kind for row in rows):
        data = [tuple(row) for row in rows]
    elif type(first) is tuple and len(first) == 2 and (kind := _row_class(first[1])) is not None and all(
            type(row) is tuple and len(row) == 2 and type(row[1]) is kind for row in rows):
        keyed, data = True, [(key, tuple(value)) for key, value in rows]
    else:
        kind = None
    blob = pickle.dumps((kind, keyed, data), pickle.HIGHEST_PROTOCOL)
    return zstandard.ZstdCompressor(level=1).compress(blob) if compress else blob


def unpack_rows(blob: bytes, compressed: bool = False) -> list:
    if compressed:
        blob = zstandard.ZstdDecompressor().decompress(blob)
    kind, keyed, data = pickle.loads(blob)
    if kind is None:
        return data
    new = tuple.__new__
    return [(key, new(kind, values)) for key, values in data] if keyed else [new(kind, values) for values in data]


class _Regroup(beam.DoFn):
    def __init__(self, tags: list[str] | None, compressed: bool):
        self._tags, self._compressed = tags, compressed

    def process(self, element):
        groups: dict = {}
        tags = self._tags
        for tag, blob in element[1]:
            for key, value in unpack_rows(blob, self._compressed):
                if tags is None:
                    groups.setdefault(key, []).append(value)
                else:
                    group = groups.get(key)
                    if group is None:
                        group = groups[key] = {name: [] for name in tags}
                    group[tag].append(value)
        yield from groups.items()


def key_shard(key, shards: int) -> int:
    """A stable shard for a grouping key: bytes and strings by their CRC-32, anything else by its repr's."""
    if isinstance(key, str):
        key = key.encode("utf-8")
    elif not isinstance(key, bytes):
        key = repr(key).encode("utf-8")
    return zlib.crc32(key) % shards
