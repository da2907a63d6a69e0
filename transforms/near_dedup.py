"""Near-duplicate removal: MinHash signatures over Chinese-aware shingles, LSH bands grouped by key,
verified candidate edges, and connected components by label propagation, all as Beam transforms.

1. Each pair's text (its passage, query or both, per `scope`) becomes shingles: character n-grams with
   spaces and punctuation removed and Traditional folded to Simplified (default), or word n-grams (jieba for Chinese, whitespace for English). A text
   with fewer than n units is one shingle, so it can only match an identical text.
2. A datasketch MinHash signature (permutations drawn once; shingles hashed with CRC-32, 2x faster
   than datasketch's SHA-1 default) is cut into LSH bands; bands x rows come from datasketch's
   optimal-parameter search at the Jaccard threshold, weighted towards recall (false positives are
   verified away, a missed candidate is a duplicate in the output).
3. Band buckets (band key -> pair ranks, ~60 bytes each) are grouped; each member of a bucket but its
   best (SurvivorOrder) becomes a candidate edge to the best: a star, so a bucket of k members gives
   k-1 candidates, not k^2. Two joins by pair id bring the two signatures together (each signature
   is shuffled once per candidate, not once per band), and a candidate whose estimated Jaccard
   reaches the threshold becomes an edge.
4. Connected components by min-label propagation, unrolled `rounds` times: every node takes the best
   label among itself and its neighbours. Star edges keep the components' diameters small, so a few
   rounds converge; the nodes still changing after the last round are counted in the report
   (`near_dedup_unconverged`), and each is still dropped for a better pair of its component.
5. A pair whose final label is not itself is dropped, naming the label: its component's best pair.

Memory: every step is keyed. The largest group a worker sees is one bucket's ranks or one node's
edges (the degree of a component's best pair: at most the component's size), iterated as a stream,
never the dataset. Volume: bands x N ranks (20 x 100M x ~60 B = 120 GB of shuffle at 100M pairs),
N signatures (512 B each) twice, and at most 2 x bands x D directed edges for D pairs in duplicate
clusters (20% of 100M -> at most 800M), spread over workers by node id.
"""
from __future__ import annotations

import hashlib
import re
import zlib
from typing import Iterable, Optional

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from datasketch import MinHash
from datasketch.lsh import _optimal_param

from cmtp.schemas import Pair, Reject
from cmtp.transforms.report import STATS
from cmtp.transforms.survivor import SurvivorOrder

REJECTS = "rejects"
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
        rank = self._order.key(pair)[:4]  # (priority, quality, quality, id): ids are unique after exact dedup
        signature = self._hasher.signature(scoped_text(pair, self._scope))
        prefix = pair.source.encode("utf-8") if self._within else b""
        for key in self._hasher.band_keys(signature, prefix):
            yield key, rank
        yield beam.pvalue.TaggedOutput("signatures", (pair.id, signature))


def _candidates(bucket: tuple[bytes, Iterable[tuple]]):
    """A bucket's star: (member id, (member rank, best rank)) for every member but the best."""
    _, ranks = bucket
    best = min(ranks)
    for rank in ranks:
        if rank != best:
            yield rank[3], (rank, best)


class _AttachSignature(beam.DoFn):
    """Join 1 (by member id): the member's signature travels on to the best member's key."""

    def process(self, element):
        _, grouped = element
        signatures = list(grouped["signature"])
        for member_rank, best_rank in grouped["candidate"]:
            yield best_rank[3], (member_rank, best_rank, signatures[0])


class _Verify(beam.DoFn):
    """Join 2 (by best id): keep the candidate edges whose estimated Jaccard reaches the threshold, both ways,
    with each end's own rank as a label seed."""

    def __init__(self, threshold: float):
        self._threshold = threshold

    def process(self, element):
        _, grouped = element
        signatures = list(grouped["signature"])
        best_signature = signatures[0]
        for member_rank, best_rank, member_signature in grouped["candidate"]:
            if estimated_jaccard(member_signature, best_signature) >= self._threshold:
                yield member_rank[3], best_rank
                yield best_rank[3], member_rank
                yield member_rank[3], member_rank
                yield best_rank[3], best_rank


class _Propagate(beam.DoFn):
    """One round: a node's label goes to each of its neighbours (keyed by the node)."""

    def process(self, element):
        node, grouped = element
        labels = list(grouped["label"])
        if not labels:
            return
        label = labels[0]
        yield node, label
        for neighbour in grouped["neighbours"]:
            yield neighbour, label


def _changed(element) -> Iterable[int]:
    _, grouped = element
    before, after = list(grouped["before"]), list(grouped["after"])
    if before and after and before[0] != after[0]:
        yield 1


class _Decide(beam.DoFn):
    def process(self, element):
        pair_id, grouped = element
        labels = list(grouped["label"])
        for pair in grouped["pair"]:
            label: Optional[tuple] = labels[0] if labels else None
            if label is None or label[3] == pair_id:
                yield pair
                continue
            Metrics.counter("dedup", "near_duplicate").inc()
            yield beam.pvalue.TaggedOutput(REJECTS, Reject(
                id=pair.id, source=pair.source, stage="dedup", reason="near_duplicate",
                detail=f"near duplicate of {label[3]}", file=pair.file, position=pair.position,
                kind=pair.kind, query=pair.query, passage=pair.passage, survivor=label[3]))


class NearDedup(beam.PTransform):
    """Pairs -> one pair per near-duplicate component (main), the others as rejects naming it (`rejects`), and the
    count of nodes still unsettled after the last round (`stats`).

    Expects ids to be unique, which exact dedup guarantees (the id is a hash of the content).
    """

    def __init__(self, order: SurvivorOrder, ngram: int, num_perm: int, threshold: float, seed: int,
                 scope: str = "passage", unit: str = "char", within_source: bool = False, rounds: int = 5,
                 fold_traditional: bool = True):
        super().__init__()
        self._order = order
        self._hasher = MinHasher(ngram, num_perm, threshold, seed, unit, fold_traditional)
        self._scope, self._within, self._rounds = scope, within_source, rounds

    def expand(self, pairs):
        keyed = pairs | "BandKeys" >> beam.ParDo(
            _BandKeys(self._hasher, self._order, self._scope, self._within)).with_outputs("signatures", main="bands")
        candidates = (
            keyed.bands
            | "Buckets" >> beam.GroupByKey()
            | "Candidates" >> beam.FlatMap(_candidates)
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
        # node id -> neighbour ids (each edge once), and the starting labels: a node's best neighbour or itself
        neighbours = (
            edges
            | "EdgeIds" >> beam.Map(lambda edge: (edge[0], edge[1][3]))
            | "NotSelf" >> beam.Filter(lambda edge: edge[0] != edge[1])
            | "OneEdge" >> beam.Distinct()
        )
        labels = edges | "StartLabels" >> beam.CombinePerKey(min)  # only nodes with an edge carry a label
        previous = labels
        for round_ in range(self._rounds):
            previous = labels
            labels = (
                {"label": labels, "neighbours": neighbours}
                | f"Round{round_}" >> beam.CoGroupByKey()
                | f"Spread{round_}" >> beam.ParDo(_Propagate())
                | f"Best{round_}" >> beam.CombinePerKey(min)
            )
        unsettled = (
            {"before": previous, "after": labels}
            | "Compare" >> beam.CoGroupByKey()
            | "Changed" >> beam.FlatMap(_changed)
            | "CountUnsettled" >> beam.CombineGlobally(sum)
            | "AsStat" >> beam.Map(lambda n: (("near_dedup_unsettled", "", "", ""), n))
        )
        by_id = pairs | "ById" >> beam.Map(lambda pair: (pair.id, pair))
        decided = (
            {"pair": by_id, "label": labels}
            | "Join" >> beam.CoGroupByKey()
            | "Decide" >> beam.ParDo(_Decide()).with_outputs(REJECTS, main="pairs")
        )
        return {"pairs": decided.pairs, "rejects": decided.rejects, STATS: unsettled}

