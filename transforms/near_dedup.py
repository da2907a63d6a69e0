"""Near-duplicate removal: MinHash signatures over Chinese-aware shingles, LSH bands grouped by key,
verified candidate edges, and connected components by large-star/small-star rounds, all as Beam transforms.

1. Each pair's text (its passage, query or both, per `scope`) becomes shingles: character n-grams with
   spaces and punctuation removed and Traditional folded to Simplified (default), or word n-grams (jieba for Chinese, whitespace for English). A text
   with fewer than n units is one shingle, so it can only match an identical text.
2. A datasketch MinHash signature (permutations drawn once; shingles hashed with CRC-32, 2x faster than
   datasketch's SHA-1 default) is cut into LSH bands; bands x rows come from datasketch's optimal-parameter search
   at the Jaccard threshold, weighted towards recall (false positives are verified away, a missed candidate is a
   duplicate in the output). Signatures are computed for a batch of pairs at once (`MinHasher.signatures`: the
   values datasketch would give, in a few numpy passes), and each band becomes a 64-bit key.
3. Band keys (with each pair's rank: 22 bytes an entry when its numbers fit int16) are grouped by shard of the
   key (transforms/shards.py: a batch's entries of one shard travel as one element); within a shard, equal keys
   are a bucket, whose members, sorted in survivor order, become candidate pairs: every pair in a bucket of up to
   WINDOW + 1 (17) members, and beyond that each member with the next WINDOW members, so a bucket of k members
   gives at most k x WINDOW candidates (a bucket of 5,000 identical-band members: 79,864, not 12.5 million). Each
   candidate asks for its two signatures by the shard of each member's id; one join of those requests with the
   signatures sends each distinct candidate both, and a candidate whose estimated Jaccard reaches the threshold
   becomes an edge.
4. Connected components by alternating large-star / small-star rounds (transforms/components.py), unrolled to a
   bound from the input size (log2 of an upper bound on the pair count, + 2); the rounds taken and the nodes
   still changing in the last one are `near_dedup_rounds` and `near_dedup_unsettled` in the report, and a run
   with unsettled nodes fails its checks.
5. A pair whose component's smallest node is not itself is dropped, naming it: its component's best pair.

Memory: every step is keyed, by shard. The largest group a worker holds is one shard's band entries (bands x N /
shards, 22-40 bytes each), one shard's signatures (N / shards, 512 bytes each) or one node's neighbours in the
components (at most its component's size), never the dataset; `shard_count` sizes the shards from the input's
bytes. Volume: bands x N entries (20 x 100M x ~40 B = 80 GB of shuffle at 100M pairs, in a few elements per
bundle), N signatures once, two signatures per candidate, and the component edges (about one per duplicate) twice
a round until their component is a finished star.
"""
from __future__ import annotations

import bisect
import re
import zlib
from typing import TYPE_CHECKING, Iterable, Optional, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from datasketch import MinHash
from datasketch.lsh import _optimal_param
from datasketch.minhash import _fmix

from cmtp.schemas import Pair, Reject
from cmtp.transforms.components import ConnectedComponents, rounds_bound
from cmtp.transforms.shards import GroupInShards, ShardingDoFn, at_bundle_end, shard_count, text_shard
from cmtp.transforms.stage import PAIRS, REJECTS, Staged
from cmtp.transforms.survivor import PAIR_ID, SurvivorOrder

if TYPE_CHECKING:
    from cmtp.pipelines.config import NearDedupConfig

FALSE_POSITIVE_WEIGHT, FALSE_NEGATIVE_WEIGHT = 0.1, 0.9


def lsh_shape(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimizing the weighted false positive and negative areas around the Jaccard threshold.

    Equal weights (datasketch's default) make only ~44% of pairs exactly at the threshold candidates
    (0.7, 128 permutations -> 14x9); 0.1/0.9 gives 20x6: ~92% at 0.7, ~100% at 0.8, and the extra
    candidates below the threshold are removed by verification.
    """
    return _optimal_param(threshold, num_perm, FALSE_POSITIVE_WEIGHT, FALSE_NEGATIVE_WEIGHT)


_NOT_WORD = re.compile(r"[\W_]+")


def shingles(text: str, n: int, unit: str = "char") -> set[str]:
    """The text's n-grams of characters (spaces and punctuation removed: a re-punctuated copy is the same text),
    of jieba words ("jieba") or of whitespace words ("word", for English); a text with fewer than n units is
    its own single shingle."""
    text = text.lower()
    if unit == "char":  # slices of one string: 2x faster than joining slices of a list of characters
        chars = _NOT_WORD.sub("", text)
        if len(chars) <= n:
            return {chars}
        return {chars[i:i + n] for i in range(len(chars) - n + 1)}
    if unit == "jieba":
        import jieba

        units = [token for token in jieba.lcut(text) if token.strip()]
    else:
        units = text.split()
    if len(units) <= n:
        return {" ".join(units)}
    return {" ".join(units[i:i + n]) for i in range(len(units) - n + 1)}


class MinHasher:
    """MinHash signatures with fixed permutations and a fast shingle hash, for a batch of texts at once; cut into
    LSH bands.

    The values are datasketch's (MinHash(num_perm, seed), its default affine32 scheme, `hashfunc=zlib.crc32`, the
    shingles' UTF-8 bytes): `signatures` computes them for many texts in a few numpy passes instead of one
    MinHash update per text. Character shingles are cut and CRC-32-hashed as byte ranges of the batch's joined
    UTF-8 (`_char_hashes`); word shingles are hashed one by one. A shingle repeated in a text is hashed twice,
    which leaves its minimum unchanged.
    """

    def __init__(self, ngram: int, num_perm: int, threshold: float, seed: int, unit: str = "char",
                 fold_traditional: bool = True):
        self.ngram, self.num_perm, self.seed, self.threshold, self.unit = ngram, num_perm, seed, threshold, unit
        self.fold_traditional = fold_traditional
        self._t2s = None
        self.bands, self.rows = lsh_shape(threshold, num_perm)
        template = MinHash(num_perm=num_perm, seed=seed)  # drawing the permutations once is most of the set-up cost
        if template.scheme != "affine32":
            raise ValueError(f"datasketch's MinHash scheme is {template.scheme}; this code computes affine32")
        self._a, self._b = (column[:, None] for column in template.permutations)

    def __getstate__(self):  # the OpenCC converter is made again where it is used
        return {**self.__dict__, "_t2s": None}

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """One signature a text: (len(texts), num_perm) uint32."""
        if self.fold_traditional:  # 資訊 and 资讯 are one text to dedup, whatever normalize did
            if self._t2s is None:
                import opencc

                self._t2s = opencc.OpenCC("t2s")
            texts = [self._t2s.convert(text) for text in texts]
        out = np.empty((len(texts), self.num_perm), dtype=np.uint32)
        for start in range(0, len(texts), SIGNATURE_CHUNK):
            chunk = texts[start:start + SIGNATURE_CHUNK]
            hashes, counts = self._char_hashes(chunk) if self.unit == "char" else self._word_hashes(chunk)
            permuted = self._a * _fmix(hashes, 32) + self._b  # (num_perm, shingles), wrapping as uint32
            firsts = np.concatenate(([0], np.cumsum(counts[:-1])))
            out[start:start + len(chunk)] = np.minimum.reduceat(permuted, firsts, axis=1).T
        return out

    def signature(self, text: str) -> np.ndarray:
        return self.signatures([text])[0]

    def _char_hashes(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """CRC-32 of every character n-gram's UTF-8 bytes (spaces and punctuation removed, lower-cased; a text of
        at most n characters is one shingle), all texts' in one array; and how many each text has."""
        n = self.ngram
        cleaned = [_NOT_WORD.sub("", text.lower()) for text in texts]
        lengths = np.fromiter(map(len, cleaned), np.int64, len(cleaned))
        joined = "".join(cleaned)
        raw = np.frombuffer(joined.encode("utf-8") + bytes(4 * n), dtype=np.uint8)  # padded: reads past the end
        if len(raw) == len(joined) + 4 * n:  # ASCII: a character is a byte
            offsets = np.arange(len(joined) + 1)
        else:  # where each character's bytes begin (not a continuation byte), and the end
            offsets = np.append(np.flatnonzero((raw[:len(raw) - 4 * n] & 0xC0) != 0x80), len(raw) - 4 * n)
        counts = np.maximum(lengths - n + 1, 1)
        text_of = np.repeat(np.arange(len(texts)), counts)
        text_start = np.concatenate(([0], np.cumsum(lengths[:-1])))[text_of]
        first = np.concatenate(([0], np.cumsum(counts[:-1])))
        start = text_start + np.arange(int(counts.sum())) - first[text_of]
        end = np.where(lengths[text_of] <= n, text_start + lengths[text_of], start + n)
        begin, size = offsets[start], offsets[end] - offsets[start]
        crc = np.full(len(begin), 0xFFFFFFFF, dtype=np.uint32)
        for j in range(int(size.max(initial=0))):  # table-driven CRC-32 (zlib's), one byte of every shingle a step
            crc = np.where(size > j, _CRC_TABLE[(crc ^ raw[begin + j]) & 0xFF] ^ (crc >> 8), crc)
        return crc ^ np.uint32(0xFFFFFFFF), counts

    def _word_hashes(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        sets = [shingles(text, self.ngram, self.unit) for text in texts]
        hashes = [zlib.crc32(shingle.encode("utf-8")) for words in sets for shingle in words]
        return np.array(hashes, dtype=np.uint32), np.array([len(words) for words in sets])

    def band_keys(self, values: np.ndarray, prefix: bytes = b"") -> list[bytes]:
        """A signature's LSH band keys: the band's number, `prefix` and its values (equal keys: the same band)."""
        return [bytes([band]) + prefix + values[band * self.rows:(band + 1) * self.rows].tobytes()
                for band in range(self.bands)]


def _crc_table() -> np.ndarray:
    """zlib's CRC-32 (reflected polynomial 0xEDB88320) table: the CRC of each byte value."""
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0xEDB88320), table >> 1)
    return table


_CRC_TABLE = _crc_table()
SIGNATURE_CHUNK = 64  # texts whose shingles are permuted in one pass: (num_perm x their shingles) fits in cache


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a == b)) / len(a)


def scoped_text(pair: Pair, scope: str) -> str:
    return pair.passage if scope == "passage" else pair.query if scope == "query" else pair.query + "\n" + pair.passage


BATCH = 1024  # pairs sketched at once


class _Sketch(beam.DoFn):
    """Pairs -> their LSH band entries by band shard (main: (shard, (entries, ranks))) and their signatures by id
    shard ("signatures": (shard, (ids, signatures))), a batch of pairs at a time.

    An entry is the band's key (`band_hashes`); its rank is the pair's (`_rank_columns`). Keys, ranks and signatures
    travel as bytes, a shard's of one batch in one element.
    """

    def __init__(self, hasher: MinHasher, order: SurvivorOrder, scope: str, within_source: bool, shards: int):
        self._hasher, self._order, self._scope, self._within, self._shards = hasher, order, scope, within_source, shards

    def start_bundle(self):
        self._pairs = []

    def process(self, pair: Pair):
        self._pairs.append(pair)
        if len(self._pairs) >= BATCH:
            yield from self._flush()

    def finish_bundle(self):
        for output in self._flush():
            tagged = isinstance(output, beam.pvalue.TaggedOutput)
            yield at_bundle_end(output.value, output.tag) if tagged else at_bundle_end(output)

    def _flush(self):
        pairs, self._pairs = self._pairs, []
        if not pairs:
            return
        hasher, shards = self._hasher, self._shards
        signatures = hasher.signatures([scoped_text(pair, self._scope) for pair in pairs])
        ranks = [self._order.rank(pair) for pair in pairs]
        sources = [_source_code(pair.source) if self._within else 0 for pair in pairs]
        keys = band_hashes(signatures, hasher.bands, hasher.rows, np.array(sources, dtype=np.uint64)).ravel()
        owner = np.repeat(np.arange(len(pairs)), hasher.bands)
        columns = _rank_columns(ranks)
        for shard, picked in _by_shard((keys % np.uint64(shards)).astype(np.int64)):
            owners = owner[picked]
            yield shard, (keys[picked].tobytes(), [ranks[i] for i in owners] if columns is None
                          else (columns[0].dtype.str, columns[0][owners].tobytes(), columns[1][owners].tobytes()))
        id_shards = np.array([text_shard(pair.id, shards) for pair in pairs])
        for shard, picked in _by_shard(id_shards):
            yield beam.pvalue.TaggedOutput(SIGNATURES, (shard, ([pairs[i].id for i in picked],
                                                                signatures[picked].tobytes())))


SIGNATURES = "signatures"
_HEX = re.compile("[0-9a-f]*")


def _rank_columns(ranks: list[tuple]) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """A batch's ranks as numbers, to travel with the band entries as bytes: the first three fields as columns of
    the narrowest of int16, int32 and int64 that holds them (priorities and text lengths: int16 mostly) and the ids
    as uint64, when every id is a pair id (16 lowercase hex digits: what `pair_id` gives); None otherwise, and the
    entries carry the rank tuples. A tuple costs a coder call each way, 20 a pair; and the band entries are the
    largest thing the local runner holds while it groups them, three times over (docs/benchmarks.md)."""
    ids = [rank[PAIR_ID] for rank in ranks]
    if not all(len(pair_id) == 16 for pair_id in ids) or not _HEX.fullmatch("".join(ids)):
        return None
    if not all(type(value) is int for rank in ranks for value in rank[:PAIR_ID]):  # a priority given as a float
        return None
    numbers = np.array([rank[:PAIR_ID] for rank in ranks], dtype=np.int64)
    for narrow in (np.int16, np.int32):
        limits = np.iinfo(narrow)
        if numbers.size == 0 or (numbers.min() >= limits.min and numbers.max() <= limits.max):
            numbers = numbers.astype(narrow)
            break
    return numbers, np.array([int(pair_id, 16) for pair_id in ids], dtype=np.uint64)


class _EntryRanks:
    """The ranks of a band shard's entries, in entry order, from the batches' numeric columns or tuples; a rank is
    rebuilt as its tuple only when asked for (a member of a bucket of two or more)."""

    def __init__(self):
        self._starts, self._parts, self._size = [], [], 0

    def add(self, count: int, ranks) -> None:
        if isinstance(ranks, tuple):  # (the numbers' dtype, the numbers, the ids)
            ranks = (np.frombuffer(ranks[1], dtype=np.dtype(ranks[0])).reshape(count, PAIR_ID),
                     np.frombuffer(ranks[2], dtype=np.uint64))
        self._starts.append(self._size)
        self._parts.append(ranks)
        self._size += count

    def __getitem__(self, i: int) -> tuple:
        part = bisect.bisect_right(self._starts, i) - 1
        ranks, k = self._parts[part], i - self._starts[part]
        if isinstance(ranks, list):
            return ranks[k]
        numbers, ids = ranks
        return (*numbers[k].tolist(), format(int(ids[k]), "016x"))


_MIX = np.uint64(0x9E3779B97F4A7C15)


def band_hashes(signatures: np.ndarray, bands: int, rows: int, sources: np.ndarray) -> np.ndarray:
    """(texts, bands) uint64: each band's key, a 64-bit hash of its number, the text's source code (0 unless dedup is
    within sources) and its `rows` values. Equal bands have equal keys; two different bands share one with
    probability 2^-64, and a pair they bring together is only a candidate, which verification drops."""
    values = signatures[:, :bands * rows].reshape(len(signatures), bands, rows).astype(np.uint64)
    key = np.broadcast_to(sources[:, None], (len(signatures), bands)) ^ (np.arange(bands, dtype=np.uint64) * _MIX)
    for row in range(rows):
        key = _fmix64((key ^ values[:, :, row]) * _MIX)
    return key


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer (wrapping uint64 arithmetic): every input bit reaches every output bit."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB93FE53A4C05)
    return h ^ (h >> np.uint64(33))


def _source_code(source: str) -> int:
    return zlib.crc32(source.encode("utf-8"))


def _by_shard(shard_of: np.ndarray):
    """(shard, the indices in it) for each shard present."""
    order = np.argsort(shard_of, kind="stable")
    shards, starts = np.unique(shard_of[order], return_index=True)
    for shard, picked in zip(shards.tolist(), np.split(order, starts[1:])):
        yield shard, picked


WINDOW = 16  # a bucket member is verified against the next WINDOW members in survivor order


def _candidates(bucket: tuple[bytes, Iterable[tuple]], window: int = WINDOW):
    """A bucket's candidate pairs, (worse member id, (worse rank, better rank)): every pair of a bucket of up to
    window + 1 members; in a larger one each member with the next `window` members in survivor order, so a bucket
    of k members gives at most k x window candidates, never k^2 / 2. Members of one bucket share a band, so they
    are mostly one family: the window links it and the components join what the window leaves apart."""
    _, ranks = bucket
    members = sorted(ranks)
    for i, better in enumerate(members):
        for worse in members[i + 1:i + 1 + window]:
            yield worse[PAIR_ID], (worse, better)


class _Buckets(ShardingDoFn):
    """A band shard's entries -> the candidate pairs of each bucket of 2+ members (`_candidates`), as two requests
    for signatures, each sent to the shard of the member's id: (shard, [(member id, (worse rank, better rank))]).
    A candidate is asked for once a bundle, however many bands its pair shares (the join drops what repeats
    across bundles)."""

    def __init__(self, window: int, shards: int):
        self._window, self._shards = window, shards

    def start_bundle(self):
        super().start_bundle()
        self._seen = set()

    def process(self, element):
        _, batches = element
        blobs, ranks = [], _EntryRanks()
        for keys, entry_ranks in batches:
            blobs.append(keys)
            ranks.add(len(keys) // 8, entry_ranks)
        keys = np.frombuffer(b"".join(blobs), dtype=np.uint64)
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        new = np.ones(len(order) + 1, dtype=bool)
        new[1:-1] = ordered[1:] != ordered[:-1]
        bounds = np.flatnonzero(new)
        shared = np.flatnonzero(np.diff(bounds) > 1)  # buckets of two or more members: most keys are alone
        for start, end in zip(bounds[shared].tolist(), bounds[shared + 1].tolist()):
            members = [ranks[i] for i in order[start:end].tolist()]
            for worse_id, candidate in _candidates((None, members), self._window):
                if candidate in self._seen:  # two pairs that share several bands: one candidate
                    continue
                self._seen.add(candidate)
                better_id = candidate[1][PAIR_ID]
                yield from self.lists.add(text_shard(worse_id, self._shards), (worse_id, candidate))
                yield from self.lists.add(text_shard(better_id, self._shards), (better_id, candidate))


def _signature_index(blocks) -> dict[str, np.ndarray]:
    """An id shard's signature blocks -> id -> its signature."""
    index = {}
    for ids, values in blocks:
        matrix = np.frombuffer(values, dtype=np.uint32).reshape(len(ids), -1)
        index.update(zip(ids, matrix))
    return index


class _SendSignatures(ShardingDoFn):
    """The join (by id shard) of signature requests and signatures: each distinct candidate gets its two members'
    signatures, sent to the shard of its worse member's id: (shard, [(candidate, is the worse member, signature)]).
    The signatures are read by this one join: a second consumer would make the local runner hold a second copy."""

    def __init__(self, shards: int):
        self._shards = shards

    def process(self, element):
        _, grouped = element
        requests = {request for batch in grouped["request"] for request in batch}
        if not requests:
            return
        signatures = _signature_index(grouped["signature"])
        for member_id, candidate in requests:
            worse_id = candidate[0][PAIR_ID]
            yield from self.lists.add(text_shard(worse_id, self._shards),
                                       (candidate, member_id == worse_id, signatures[member_id].tobytes()))


class _Verify(beam.DoFn):
    """The candidates of a shard, each with its two signatures -> those whose estimated Jaccard reaches the
    threshold, as edges (better rank, worse rank)."""

    def __init__(self, threshold: float):
        self._threshold = threshold

    def process(self, element):
        _, batches = element
        halves: dict = {}
        for candidate, is_worse, signature in (entry for batch in batches for entry in batch):
            halves.setdefault(candidate, [None, None])[int(is_worse)] = signature
        candidates = list(halves)
        if not candidates:
            return
        better = np.frombuffer(b"".join(halves[c][0] for c in candidates), dtype=np.uint32).reshape(len(candidates), -1)
        worse = np.frombuffer(b"".join(halves[c][1] for c in candidates), dtype=np.uint32).reshape(len(candidates), -1)
        agree = np.count_nonzero(worse == better, axis=1) / worse.shape[1]
        for (worse_rank, better_rank), similar in zip(candidates, agree >= self._threshold):
            if similar:
                yield better_rank, worse_rank


class _Decide(beam.DoFn):
    def process(self, element):
        pair_id, grouped = element
        labels = list(grouped["label"])
        for pair in grouped["pair"]:
            label: Optional[tuple] = labels[0] if labels else None
            if label is None or label[PAIR_ID] == pair_id:
                yield pair
                continue
            Metrics.counter("dedup", "near_duplicate").inc()
            yield beam.pvalue.TaggedOutput(REJECTS, Reject(
                id=pair.id, source=pair.source, stage="dedup", reason="near_duplicate",
                detail=f"near duplicate of {label[PAIR_ID]}", file=pair.file, position=pair.position,
                kind=pair.kind, query=pair.query, passage=pair.passage, survivor=label[PAIR_ID]))


class NearDedup(beam.PTransform):
    """Pairs -> one pair per near-duplicate component (main), the others as rejects naming it (`rejects`), and how
    many rounds the components took and how many nodes still changed in the last one allowed (`stats`:
    `near_dedup_rounds`, `near_dedup_unsettled`; the report fails a run whose unsettled count is not 0).

    Expects ids to be unique, which exact dedup guarantees (the id is a hash of the content). `settings` is the
    config's `dedup.near` section (n-grams, permutations, threshold, seed, scope, unit, within_source,
    fold_traditional, max_rounds). `max_rounds` bounds the component rounds (transforms/components.py); by default
    it comes from `max_nodes`, an upper bound on the pairs (the pipelines derive it from the input size).
    """

    def __init__(self, settings: "NearDedupConfig", order: SurvivorOrder, max_nodes: int = 1 << 32,
                 window: int = WINDOW):
        super().__init__()
        self._order = order
        self._hasher = MinHasher(settings.ngram, settings.num_perm, settings.threshold, settings.seed, settings.unit,
                                 settings.fold_traditional)
        self._scope, self._within, self._window = settings.scope, settings.within_source, window
        self.max_rounds = settings.max_rounds or rounds_bound(max_nodes)
        self._shards = shard_count(max_nodes)

    def expand(self, pairs):
        hasher, shards = self._hasher, self._shards
        sketched = pairs | "Sketch" >> beam.ParDo(
            _Sketch(hasher, self._order, self._scope, self._within, shards)).with_outputs(SIGNATURES, main="bands")
        requests = (
            sketched.bands
            | "Buckets" >> beam.GroupByKey()
            | "Candidates" >> beam.ParDo(_Buckets(self._window, shards))
        )
        edges = (
            {"request": requests, "signature": sketched.signatures}
            | "JoinSignatures" >> beam.CoGroupByKey()
            | "SendSignatures" >> beam.ParDo(_SendSignatures(shards))
            | "ByCandidate" >> beam.GroupByKey()
            | "Verify" >> beam.ParDo(_Verify(hasher.threshold))
        )
        components = edges | "Components" >> ConnectedComponents(self.max_rounds, shards)
        stats = (
            components["summary"]
            | "AsStats" >> beam.FlatMap(lambda summary: [(("near_dedup_rounds", "", "", ""), summary[0]),
                                                          (("near_dedup_unsettled", "", "", ""), summary[1])])
        )
        labels = components["labels"] | "ById" >> beam.Map(lambda item: (item[0][PAIR_ID], item[1]))
        by_id = pairs | "PairById" >> beam.Map(lambda pair: (pair.id, pair))
        decided = (
            {"pair": by_id, "label": labels}
            | "Join" >> GroupInShards(self._shards, compress=True)  # the pairs wait here through every step above
            | "Decide" >> beam.ParDo(_Decide()).with_outputs(REJECTS, main=PAIRS)
        )
        return Staged(decided.pairs, decided.rejects, stats)
