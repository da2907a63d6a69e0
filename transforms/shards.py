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

    def drain(self) -> Iterator:
        lists, self._lists = self._lists, {}
        for shard, values in lists.items():
            yield at_bundle_end((shard, values))


class ShardingDoFn(beam.DoFn):
    """A DoFn that sends its outputs to shards: `yield from self.lists.add(shard, value)` in `process`; the lists
    not yet full are given out when the bundle finishes. A subclass with a start_bundle of its own calls this one."""

    def start_bundle(self):
        self.lists = ShardLists()

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
        sharded = [rows | f"Shard {tag or 'rows'}" >> beam.ParDo(_ToShards(tag, self._shards, self._compress))
                   for tag, rows in inputs.items()]
        return (
            sharded | "AllShards" >> beam.Flatten(pipeline=next(iter(inputs.values())).pipeline)
            | "ByShard" >> beam.GroupByKey()
            | "ByKey" >> beam.ParDo(_Regroup(tags, self._compress))
        )


SHARD_LIST = 1024  # rows a shard's list gathers before it is sent


class _ToShards(beam.DoFn):
    def __init__(self, tag: str | None, shards: int, compress: bool):
        self._tag, self._shards, self._compress = tag, shards, compress

    def start_bundle(self):
        self._lists: dict[int, list] = {}

    def process(self, row):
        shard = key_shard(row[0], self._shards)
        rows = self._lists.setdefault(shard, [])
        rows.append(row)
        if len(rows) >= SHARD_LIST:
            del self._lists[shard]
            yield shard, (self._tag, _packed(rows, self._compress))

    def finish_bundle(self):
        lists, self._lists = self._lists, {}
        for shard, rows in lists.items():
            yield at_bundle_end((shard, (self._tag, _packed(rows, self._compress))))


def _packed(rows: list, compress: bool = False) -> bytes:
    """A shard's (key, value) rows pickled; when every value is a NamedTuple of one class (the pipelines' rows),
    as plain tuples and the class once: pickle rebuilds a NamedTuple through its Python-level __new__, and the rows
    took twice as long to pickle and a fifth longer to load. `compress`: zstd level 1 (pickled Chinese rows shrink
    to ~0.7 at ~440 MB/s), for a shuffle whose rows the local runner holds while other stages run."""
    kind = type(rows[0][1])
    if hasattr(kind, "_fields") and all(type(value) is kind for _, value in rows):
        blob = pickle.dumps((kind, [(key, tuple(value)) for key, value in rows]), pickle.HIGHEST_PROTOCOL)
    else:
        blob = pickle.dumps((None, rows), pickle.HIGHEST_PROTOCOL)
    return zstandard.ZstdCompressor(level=1).compress(blob) if compress else blob


def _unpacked(blob: bytes, compressed: bool = False) -> list:
    if compressed:
        blob = zstandard.ZstdDecompressor().decompress(blob)
    kind, rows = pickle.loads(blob)
    if kind is None:
        return rows
    new = tuple.__new__
    return [(key, new(kind, values)) for key, values in rows]


class _Regroup(beam.DoFn):
    def __init__(self, tags: list[str] | None, compressed: bool):
        self._tags, self._compressed = tags, compressed

    def process(self, element):
        groups: dict = {}
        tags = self._tags
        for tag, blob in element[1]:
            for key, value in _unpacked(blob, self._compressed):
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
