"""Near-duplicate removal: MinHash signatures over Chinese-aware shingles, LSH bands grouped by key,
verified candidate edges, and connected components by large-star/small-star rounds, all as Beam transforms.

1. Each pair's text (its passage, query or both, per `scope`) becomes shingles: character n-grams with
   spaces and punctuation removed and Traditional folded to Simplified (default), or word n-grams (jieba for Chinese, whitespace for English). A text
   with fewer than n units is one shingle, so it can only match an identical text.
2. A datasketch MinHash signature (permutations drawn once; shingles hashed with CRC-32, 2x faster
   than datasketch's SHA-1 default) is cut into LSH bands; bands x rows come from datasketch's
   optimal-parameter search at the Jaccard threshold, weighted towards recall (false positives are
   verified away, a missed candidate is a duplicate in the output).
3. Band buckets (band key -> pair ranks, ~60 bytes each) are grouped; the members of a bucket, sorted in survivor
   order, become candidate pairs: every pair in a bucket of up to WINDOW + 1 (17) members, and beyond that each
   member with the next WINDOW members, so a bucket of k members gives at most k x WINDOW candidates (a bucket of
   5,000 identical-band members: 79,864, not 12.5 million). Two joins by pair id bring the two signatures
   together (each signature is shuffled once per candidate, not once per band), and a candidate whose estimated
   Jaccard reaches the threshold becomes an edge.
4. Connected components by alternating large-star / small-star rounds (transforms/components.py), unrolled to a
   bound from the input size (log2 of an upper bound on the pair count, + 2); the rounds taken and the nodes
   still changing in the last one are `near_dedup_rounds` and `near_dedup_unsettled` in the report, and a run
   with unsettled nodes fails its checks.
5. A pair whose component's smallest node is not itself is dropped, naming it: its component's best pair.

Memory: every step is keyed. The largest group a worker holds is one bucket's ranks (sorted: 60 bytes a
member) or one node's neighbours (a component's best pair, once the component is a star: at most the
component's size), never the dataset. Volume: bands x N ranks (20 x 100M x ~60 B = 120 GB of shuffle at 100M pairs),
N signatures (512 B each) once per candidate, and the component rounds shuffle the edges (at most bands x
WINDOW x D for D pairs in duplicate clusters; in practice about one per duplicate) twice a round.
"""
from __future__ import annotations

import hashlib
import re
import zlib
from typing import TYPE_CHECKING, Iterable, Optional

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from datasketch import MinHash
from datasketch.lsh import _optimal_param

from cmtp.schemas import Pair, Reject
from cmtp.transforms.components import ConnectedComponents, rounds_bound
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
    """MinHash signatures with fixed permutations and a fast shingle hash, cut into LSH band keys."""

    def __init__(self, ngram: int, num_perm: int, threshold: float, seed: int, unit: str = "char",
                 fold_traditional: bool = True):
        self.ngram, self.num_perm, self.seed, self.threshold, self.unit = ngram, num_perm, seed, threshold, unit
        self.fold_traditional = fold_traditional
        self._t2s = None
        self._minhash: Optional[MinHash] = None
        self.bands, self.rows = lsh_shape(threshold, num_perm)
        template = MinHash(num_perm=num_perm, seed=seed)  # drawing the permutations once is most of the set-up cost
        self._permutations, self._scheme = template.permutations, template.scheme

    def __getstate__(self):  # the OpenCC converter and the working MinHash are made again where they are used
        return {**self.__dict__, "_t2s": None, "_minhash": None}

    def signature(self, text: str) -> np.ndarray:
        if self.fold_traditional:  # 資訊 and 资讯 are one text to dedup, whatever normalize did
            if self._t2s is None:
                import opencc

                self._t2s = opencc.OpenCC("t2s")
            text = self._t2s.convert(text)
        if self._minhash is None:  # one MinHash, cleared for each text: its construction costs as much as hashing
            self._minhash = MinHash(num_perm=self.num_perm, seed=self.seed, permutations=self._permutations,
                                    scheme=self._scheme, hashfunc=zlib.crc32)
        self._minhash.clear()
        self._minhash.update_batch([s.encode("utf-8") for s in shingles(text, self.ngram, self.unit)])
        return self._minhash.hashvalues.copy()

    def band_keys(self, values: np.ndarray, prefix: bytes = b"") -> list[bytes]:
        return [
            bytes([band]) + hashlib.blake2b(prefix + values[band * self.rows:(band + 1) * self.rows].tobytes(),
                                            digest_size=12).digest()
            for band in range(self.bands)
        ]


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a == b)) / len(a)


def scoped_text(pair: Pair, scope: str) -> str:
    return pair.passage if scope == "passage" else pair.query if scope == "query" else pair.query + "\n" + pair.passage


class _BandKeys(beam.DoFn):
    """A pair's LSH band keys, each with the pair's rank; its signature once, on the `signatures` output."""

    def __init__(self, hasher: MinHasher, order: SurvivorOrder, scope: str, within_source: bool):
        self._hasher, self._order, self._scope, self._within = hasher, order, scope, within_source

    def process(self, pair: Pair):
        rank = self._order.rank(pair)
        signature = self._hasher.signature(scoped_text(pair, self._scope))
        prefix = pair.source.encode("utf-8") if self._within else b""
        for key in self._hasher.band_keys(signature, prefix):
            yield key, rank
        yield beam.pvalue.TaggedOutput("signatures", (pair.id, signature))


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


class _AttachSignature(beam.DoFn):
    """Join 1 (by member id): the member's signature travels on to the best member's key."""

    def process(self, element):
        _, grouped = element
        signatures = list(grouped["signature"])
        for member_rank, best_rank in grouped["candidate"]:
            yield best_rank[PAIR_ID], (member_rank, best_rank, signatures[0])


class _Verify(beam.DoFn):
    """Join 2 (by the better member's id): the candidate pairs whose estimated Jaccard reaches the threshold, as
    edges (better rank, worse rank)."""

    def __init__(self, threshold: float):
        self._threshold = threshold

    def process(self, element):
        _, grouped = element
        signatures = list(grouped["signature"])
        best_signature = signatures[0]
        for member_rank, best_rank, member_signature in grouped["candidate"]:
            if estimated_jaccard(member_signature, best_signature) >= self._threshold:
                yield best_rank, member_rank


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

    def expand(self, pairs):
        keyed = pairs | "BandKeys" >> beam.ParDo(
            _BandKeys(self._hasher, self._order, self._scope, self._within)).with_outputs("signatures", main="bands")
        window = self._window
        candidates = (
            keyed.bands
            | "Buckets" >> beam.GroupByKey()
            | "Candidates" >> beam.FlatMap(_candidates, window)
            | "OneCandidate" >> beam.Distinct()  # two pairs that share several bands are one candidate
        )
        with_member = (
            {"candidate": candidates, "signature": keyed.signatures}
            | "JoinMember" >> beam.CoGroupByKey()
            | "AttachSignature" >> beam.ParDo(_AttachSignature())
        )
        edges = (
            {"candidate": with_member, "signature": keyed.signatures}
            | "JoinBest" >> beam.CoGroupByKey()
            | "Verify" >> beam.ParDo(_Verify(self._hasher.threshold))
        )
        components = edges | "Components" >> ConnectedComponents(self.max_rounds)
        stats = (
            components["summary"]
            | "AsStats" >> beam.FlatMap(lambda summary: [(("near_dedup_rounds", "", "", ""), summary[0]),
                                                          (("near_dedup_unsettled", "", "", ""), summary[1])])
        )
        labels = components["labels"] | "ById" >> beam.Map(lambda item: (item[0][PAIR_ID], item[1]))
        by_id = pairs | "PairById" >> beam.Map(lambda pair: (pair.id, pair))
        decided = (
            {"pair": by_id, "label": labels}
            | "Join" >> beam.CoGroupByKey()
            | "Decide" >> beam.ParDo(_Decide()).with_outputs(REJECTS, main=PAIRS)
        )
        return Staged(decided.pairs, decided.rejects, stats)
