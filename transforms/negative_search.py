"""Hard-negative mining: exact blocked top-k by cosine, then seeded sampling from a rank range.

Each query (a labeled record: its vector, its positives' vectors, ids never to return) gets the exact top-k
passages of its task's corpus by cosine, k = rank_hi, ranked by score descending with ties broken by corpus id
ascending. Ranks count over the raw list, positives included (FlagEmbedding hn_mine's `range_for_sampling`).
A candidate is eligible when its rank is in [rank_lo, rank_hi), its id is not in the query's `exclude`, and
its cosine to every positive is <= `ceiling` (not a near duplicate of a positive). `per_record` eligible
candidates are sampled without replacement with `random.Random(f"{seed}:{qid}")` and returned in rank order.

Beam data flow (`MineNegatives`): corpus items and queries are counted per task (a side input) to size the
blocks: n_cblocks = ceil(corpus / corpus_block), n_qblocks = ceil(queries / query_block). A corpus item goes to
corpus block blake2b(cid) mod n_cblocks and is replicated to keys (task, qb, cb) for every qb; a query goes to
query block blake2b(qid) mod n_qblocks and is replicated to (task, qb, cb) for every cb. Each key's group (one
query block x one corpus block) is scored by `block_topk`, which emits each query's partial top-k; a CombinePerKey
by (task, qid) keeps only the best k as partials arrive; the query itself is also keyed into that combine, so a
query whose task has no corpus still yields one `Mined` (with no negatives).

Exactness (results identical for every block size, bundle and runner, and to `brute_force_topk`): BLAS float32
matmul results depend on matrix shapes (kernel blocking, FMA, summation order), so one (query, passage) can
score ~1e-7 differently in different blocks and near ties would reorder. Float32 scores are therefore only used
to pre-select: for any summation order, |fl32(x.y) - x.y| <= gamma_d * |x| |y| with gamma_d = d u / (1 - d u),
u = 2**-24 (Higham, Accuracy and Stability of Numerical Algorithms, (3.5)); `exact_scores` is within ~1e-15 of
x.y. Let delta bound |float32 score - exact score|. With t the k-th best float32 score of a query's row in a
block, every candidate with float32 score >= t - eps is kept, eps = d * 2**-22 * max(1, max|q| max|c|) >=
2 * delta whenever d < 2**22. A passage j in the block's exact top-k is always kept: if its float32 score were
below t - eps, the k passages scoring >= t in float32 would all have exact scores >= t - delta > s32_j + eps -
delta >= exact_j + eps - 2 delta >= exact_j, so j would be outside the exact top-k. The kept candidates are
re-scored with `exact_scores` and the block's top k taken by (-exact score, cid). `exact_scores` is the float64
dot product of the float32 vectors (products of two float32 values are exact in float64) summed by a fixed
pairwise tree over the d products of each pair: elementwise float64 additions of array halves, so every pair's
value is the same bits whatever the other rows or the shapes, on any IEEE-754 machine. The top k of a union is the top k of
the union of the parts' top k's (the order (-score, cid) is total, cids being unique), so merging partials in
any order gives the exact global top k. Reported scores
are these exact float64 scores. The near-duplicate check (exact cosine to a positive > ceiling) is done at
block time for the kept candidates, and carried as the `excluded` flag with exclude-list membership: float32
cosines pre-select the pairs at or above ceiling - eps, and those are decided by the exact score (a pair below
it in float32 is below the ceiling exactly). Assumes IEEE float32 BLAS (not TF32/bf16 modes).

Memory per worker: one query block and one corpus block (query_block + corpus_block vectors of d float32),
their float32 score matrix and its partitioned copy (query_block x corpus_block: 32 MiB each at the defaults),
the pre-selected candidates
(~k per query, re-scored in cache-sized chunks), and k entries per query in the combine. No step gathers a
task's whole corpus or all its queries; hash assignment makes a block's size binomial around its mean
(<= the block size). Shuffle volume: the corpus n_qblocks times and the queries (with their positives) n_cblocks
times into the CoGroupByKey, each vector as d float32 bytes (2 KiB at d = 512) beside its id, then k (score, cid, flag) entries per query per corpus block into the combine
(pre-combined where the runner lifts it).
"""
from __future__ import annotations

import hashlib
import math
import random
from itertools import chain
from operator import itemgetter
from typing import Iterable, NamedTuple, Optional, Sequence

import apache_beam as beam
import numpy as np

_PAIR_CHUNK = 128  # pairs re-scored per chunk: 128 x d float64 (512 KiB at d = 512, cache-sized)
_BRUTE_CELLS = 1 << 25  # float32 cells per brute-force score matrix chunk (128 MiB)


class MiningQuery(NamedTuple):
    task: str
    qid: str  # record id, unique within the run
    vector: np.ndarray  # (d,) float32, L2-normalized
    positives: np.ndarray  # (p, d) float32, L2-normalized; (0, d) when the record has none
    exclude: tuple[str, ...]  # corpus ids never to return (the positives' ids, given negatives, the query's own)


class CorpusItem(NamedTuple):
    task: str
    cid: str  # corpus text id, unique within a task
    vector: np.ndarray  # (d,) float32, L2-normalized


class Mined(NamedTuple):
    task: str
    qid: str
    negatives: tuple[tuple[int, float, str], ...]  # (rank, exact score, cid), rank 0-based, in rank order
    candidates: int  # how many eligible candidates the rank range held


# ---------------------------------------------------------------------------------------------- exact scoring


def _tree_sum(values: np.ndarray) -> np.ndarray:
    """Sum over the last axis by a fixed pairwise tree of elementwise adds: each row's result depends only on
    that row's values, never on how many rows there are (elementwise IEEE adds are correctly rounded)."""
    width = values.shape[-1]
    if width == 0:
        return np.zeros(values.shape[:-1])
    while width > 1:
        half = width // 2
        summed = values[..., :half] + values[..., half:2 * half]
        if width % 2:
            summed[..., 0] += values[..., 2 * half]
        values, width = summed, half
    return values[..., 0]


def _pair_dots(left: np.ndarray, left_rows: np.ndarray, right: np.ndarray, right_rows: np.ndarray) -> np.ndarray:
    """Exact-order float64 dots of left[left_rows[i]] . right[right_rows[i]] for every i."""
    out = np.empty(len(left_rows), dtype=np.float64)
    buffer = np.empty((min(_PAIR_CHUNK, len(left_rows)), left.shape[1]), dtype=np.float64)
    for start in range(0, len(left_rows), _PAIR_CHUNK):
        stop = min(start + _PAIR_CHUNK, len(left_rows))
        products = buffer[:stop - start]
        products[...] = left[left_rows[start:stop]]
        products *= right[right_rows[start:stop]]  # float32 x float32 is exact in float64
        out[start:stop] = _tree_sum(products)
    return out


def _pair_dots32(left: np.ndarray, left_rows: np.ndarray, right: np.ndarray, right_rows: np.ndarray) -> np.ndarray:
    """float32 dots of left[left_rows[i]] . right[right_rows[i]], in chunks (any order: only used against eps)."""
    out = np.empty(len(left_rows), dtype=np.float32)
    for start in range(0, len(left_rows), 32 * _PAIR_CHUNK):
        stop = start + 32 * _PAIR_CHUNK
        out[start:stop] = np.einsum("ij,ij->i", left[left_rows[start:stop]], right[right_rows[start:stop]])
    return out


def exact_scores(queries: np.ndarray, corpus: np.ndarray) -> np.ndarray:
    """(m, n) float64 dot products of float32 rows, each summed in the same fixed order whatever m and n."""
    queries = np.asarray(queries, dtype=np.float32)
    corpus = np.asarray(corpus, dtype=np.float32)
    m, n = len(queries), len(corpus)
    out = np.empty((m, n), dtype=np.float64)
    step = max(1, (1 << 20) // max(n, 1))  # index arrays of at most ~1M pairs at a time
    for start in range(0, m, step):
        rows = np.arange(start, min(start + step, m))
        out[rows] = _pair_dots(queries, np.repeat(rows, n), corpus, np.tile(np.arange(n), len(rows))).reshape(-1, n)
    return out


def _max_norm(vectors: np.ndarray) -> float:
    return float(np.sqrt(np.max(np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64)))) if len(vectors) else 0.0


def _eps(d: int, left_norm: float, right_norm: float) -> float:
    """A bound >= 2x the float32 dot error of rows with these norms (see the module docstring); the last factor
    covers the float64 re-score's own ~1e-15."""
    return d * 2.0 ** -22 * max(1.0, left_norm * right_norm) * 1.0001


def _at_least(scores32: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """scores32 >= threshold (float64, per row) without a float64 copy: the threshold rounded down to float32
    gives the same comparison for float32 scores."""
    down = threshold.astype(np.float32)
    down = np.where(down > threshold, np.nextafter(down, np.float32(-np.inf)), down)
    return scores32 >= down[:, None]


def _exact_topk(queries: np.ndarray, corpus: np.ndarray, cid_rank: np.ndarray, k: int, corpus_norm: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One float32 matmul, eps pre-selection, exact re-score, top k per row by (-exact score, cid).

    Returns (rows, cols, scores) of the kept entries, sorted by row, then rank; at most k per row."""
    scores32 = queries @ corpus.T
    n = scores32.shape[1]
    if n > k:
        kth = np.partition(scores32, n - k, axis=1)[:, n - k].astype(np.float64)
        eps = _eps(queries.shape[1], _max_norm(queries), corpus_norm)
        rows, cols = np.nonzero(_at_least(scores32, kth - eps))
    else:
        rows, cols = np.nonzero(np.ones(scores32.shape, dtype=bool))
    del scores32
    exact = _pair_dots(queries, rows, corpus, cols)
    order = np.lexsort((cid_rank[cols], -exact, rows))
    rows, cols, exact = rows[order], cols[order], exact[order]
    if n > k and len(rows):
        starts = np.searchsorted(rows, rows, side="left")
        keep = np.arange(len(rows)) - starts < k
        rows, cols, exact = rows[keep], cols[keep], exact[keep]
    return rows, cols, exact


def _cid_ranks(cids: Sequence[str]) -> np.ndarray:
    """Each cid's position in ascending cid order (Python string order, the tie-break)."""
    order = sorted(range(len(cids)), key=cids.__getitem__)
    ranks = np.empty(len(cids), dtype=np.int64)
    ranks[order] = np.arange(len(cids))
    return ranks


def _as_matrix(vectors, d: Optional[int] = None) -> np.ndarray:
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix.reshape(-1, d or 0) if matrix.size == 0 else matrix[None, :]
    return matrix


# ---------------------------------------------------------------------------------------------- public helpers


def block_topk(queries: np.ndarray, corpus: np.ndarray, cids: Sequence[str], k: int,
               positives_list: Sequence[np.ndarray], exclude_list: Sequence[Iterable[str]], ceiling: float
               ) -> list[list[tuple[float, str, bool]]]:
    """Each query's exact top k of this corpus block as (exact score, cid, excluded), best first (ties by cid).

    `excluded`: the cid is in the query's exclude list, or its exact cosine to one of the query's positives is
    above `ceiling`."""
    queries, corpus = _as_matrix(queries), _as_matrix(corpus)
    m, n = len(queries), len(corpus)
    if m == 0:
        return []
    if n == 0 or k <= 0:
        return [[] for _ in range(m)]
    cids = list(cids)
    corpus_norm = _max_norm(corpus)
    rows, cols, exact = _exact_topk(queries, corpus, _cid_ranks(cids), k, corpus_norm)
    entries = len(rows)

    # near-duplicate check of the kept entries against their query's positives, all pairs in one pass
    positives = [_as_matrix(p, corpus.shape[1]) for p in positives_list]
    counts = np.array([len(p) for p in positives], dtype=np.int64)
    excluded = np.zeros(entries, dtype=bool)
    per_entry = counts[rows]
    total = int(per_entry.sum())
    if total:
        stacked = np.concatenate([p for p in positives if len(p)])
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        entry = np.repeat(np.arange(entries), per_entry)
        positive = offsets[rows][entry] + np.arange(total) - np.repeat(np.cumsum(per_entry) - per_entry, per_entry)
        # float32 cosines are within eps / 2 of the exact ones: only those near or above the ceiling need the
        # exact check, and the flag is the exact cosine's either way
        eps = _eps(corpus.shape[1], _max_norm(stacked), corpus_norm)
        near = _pair_dots32(stacked, positive, corpus, cols[entry]).astype(np.float64) >= ceiling - eps
        entry, positive = entry[near], positive[near]
        excluded[entry[_pair_dots(stacked, positive, corpus, cols[entry]) > ceiling]] = True

    # exclude-list membership, matched as (row, column) keys
    column = {cid: i for i, cid in enumerate(cids)}
    banned = [row * n + column[cid] for row, ids in enumerate(exclude_list) for cid in ids if cid in column]
    if banned:
        excluded |= np.isin(rows * n + cols, banned)

    bounds = np.searchsorted(rows, np.arange(m + 1)).tolist()
    scores, names, flags = exact.tolist(), [cids[c] for c in cols.tolist()], excluded.tolist()
    return [list(zip(scores[a:b], names[a:b], flags[a:b])) for a, b in zip(bounds, bounds[1:])]


def merge_topk(parts: Iterable[Sequence[tuple[float, str, bool]]], k: int) -> list[tuple[float, str, bool]]:
    """The best k of ranked partial lists by (-score, cid), keeping the flags."""
    merged = list(chain.from_iterable(parts))
    merged.sort(key=itemgetter(1))  # cid ascending, then a stable sort by score descending
    merged.sort(key=itemgetter(0), reverse=True)
    del merged[max(k, 0):]
    return merged


def sample_negatives(qid: str, ranked: Sequence[tuple[float, str, bool]], rank_lo: int, rank_hi: int, n: int,
                     seed: int) -> tuple[tuple[tuple[int, float, str], ...], int]:
    """(negatives, eligible count): `n` of the eligible entries of `ranked` (rank in [rank_lo, rank_hi), not
    excluded) drawn by random.Random(f"{seed}:{qid}") without replacement, as (rank, score, cid) in rank order."""
    eligible = [(rank, score, cid) for rank, (score, cid, excluded) in enumerate(ranked[:rank_hi])
                if rank >= rank_lo and not excluded]
    picks = sorted(random.Random(f"{seed}:{qid}").sample(range(len(eligible)), min(max(n, 0), len(eligible))))
    return tuple(eligible[i] for i in picks), len(eligible)


def brute_force_topk(queries: np.ndarray, corpus: np.ndarray, cids: Sequence[str], k: int
                     ) -> list[list[tuple[float, str]]]:
    """The baseline: the whole corpus in memory, one float32 matmul of each query chunk against all of it, the
    same eps pre-selection and exact re-score; each query's top k as (exact score, cid), best first."""
    queries, corpus = _as_matrix(queries), _as_matrix(corpus)
    out: list[list[tuple[float, str]]] = [[] for _ in range(len(queries))]
    if not len(corpus) or k <= 0:
        return out
    cids = list(cids)
    cid_rank, corpus_norm = _cid_ranks(cids), _max_norm(corpus)
    step = max(1, _BRUTE_CELLS // len(corpus))
    for start in range(0, len(queries), step):
        rows, cols, exact = _exact_topk(queries[start:start + step], corpus, cid_rank, k, corpus_norm)
        for row, col, score in zip(rows.tolist(), cols.tolist(), exact.tolist()):
            out[start + row].append((score, cids[col]))
    return out


# ---------------------------------------------------------------------------------------------- Beam


def stable_block(key: str, blocks: int) -> int:
    """The block of an id: blake2b of its UTF-8 bytes mod `blocks` (the same on every worker and run)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big") % blocks


def _blocks(counts: dict, kind: str, task: str, size: int) -> int:
    return math.ceil(counts.get((kind, task), 0) / size)


def _vector_bytes(vectors) -> bytes:
    return np.ascontiguousarray(vectors, dtype=np.float32).tobytes()


def _compact_corpus(item: CorpusItem) -> tuple[str, str, bytes]:
    """(task, cid, float32 bytes): encoded by Beam's fast coder as is, no pickling of arrays."""
    return item.task, item.cid, _vector_bytes(item.vector)


def _compact_query(query: MiningQuery) -> tuple[str, str, bytes, bytes, tuple[str, ...]]:
    return query.task, query.qid, _vector_bytes(query.vector), _vector_bytes(query.positives), tuple(query.exclude)


def _corpus_to_blocks(item: tuple, counts: dict, query_block: int, corpus_block: int):
    task, cid, vector = item
    cb = stable_block(cid, _blocks(counts, "corpus", task, corpus_block))
    for qb in range(_blocks(counts, "queries", task, query_block)):
        yield (task, qb, cb), (cid, vector)


def _query_to_blocks(query: tuple, counts: dict, query_block: int, corpus_block: int):
    task, qid = query[:2]
    qb = stable_block(qid, _blocks(counts, "queries", task, query_block))
    for cb in range(_blocks(counts, "corpus", task, corpus_block)):
        yield (task, qb, cb), query[1:]


def _matrix(chunks: list[bytes], d: int) -> np.ndarray:
    return np.frombuffer(b"".join(chunks), dtype=np.float32).reshape(-1, d)


def _mine_block(element, k: int, ceiling: float):
    (task, _, _), groups = element
    queries, corpus = list(groups["queries"]), list(groups["corpus"])
    if not queries or not corpus:
        return
    d = len(queries[0][1]) // 4
    ranked = block_topk(_matrix([q[1] for q in queries], d), _matrix([c[1] for c in corpus], d),
                        [c[0] for c in corpus], k, [_matrix([q[2]], d) for q in queries],
                        [q[3] for q in queries], ceiling)
    for query, part in zip(queries, ranked):
        yield (task, query[0]), part


class _TopK(beam.CombineFn):
    """Partial ranked lists of one query -> its best k; the accumulator never holds more than k entries."""

    def __init__(self, k: int):
        super().__init__()
        self._k = k

    def create_accumulator(self):
        return []

    def add_input(self, accumulator, part):
        return merge_topk((accumulator, part), self._k)

    def merge_accumulators(self, accumulators):
        return merge_topk(list(accumulators), self._k)

    def extract_output(self, accumulator):
        return accumulator


class MineNegatives(beam.PTransform):
    """{"queries": PCollection[MiningQuery], "corpus": PCollection[CorpusItem]} -> PCollection[Mined], one per
    query: `per_record` negatives sampled from ranks [rank_lo, rank_hi) of the exact top-rank_hi by cosine,
    never excluded ids, never above `ceiling` cosine to a positive (see the module docstring)."""

    def __init__(self, rank_lo: int, rank_hi: int, per_record: int, ceiling: float, seed: int,
                 query_block: int = 1024, corpus_block: int = 8192):
        super().__init__()
        if not 0 <= rank_lo < rank_hi:
            raise ValueError(f"need 0 <= rank_lo < rank_hi, got [{rank_lo}, {rank_hi})")
        if per_record < 0 or query_block < 1 or corpus_block < 1:
            raise ValueError("per_record must be >= 0 and the block sizes >= 1")
        self._lo, self._hi, self._n = rank_lo, rank_hi, per_record
        self._ceiling, self._seed = float(ceiling), seed
        self._qblock, self._cblock = query_block, corpus_block

    def expand(self, inputs):
        # compact (task, id, float32 bytes, ...) tuples first: what waits for the counts and what is shuffled
        corpus = inputs["corpus"] | "CompactCorpus" >> beam.Map(_compact_corpus)
        queries = inputs["queries"] | "CompactQueries" >> beam.Map(_compact_query)
        counts = beam.pvalue.AsDict(
            (corpus | "CorpusTasks" >> beam.Map(lambda c: (("corpus", c[0]), None)),
             queries | "QueryTasks" >> beam.Map(lambda q: (("queries", q[0]), None)))
            | "AllTasks" >> beam.Flatten()
            | "CountPerTask" >> beam.combiners.Count.PerKey())
        keyed_corpus = corpus | "CorpusToBlocks" >> beam.FlatMap(_corpus_to_blocks, counts, self._qblock,
                                                                 self._cblock)
        keyed_queries = queries | "QueriesToBlocks" >> beam.FlatMap(_query_to_blocks, counts, self._qblock,
                                                                    self._cblock)
        partials = ({"queries": keyed_queries, "corpus": keyed_corpus}
                    | "JoinBlocks" >> beam.CoGroupByKey()
                    | "BlockTopK" >> beam.FlatMap(_mine_block, self._hi, self._ceiling))
        # every query keyed into the combine too: one Mined per query even when its task has no corpus
        own = queries | "EveryQuery" >> beam.Map(lambda q: ((q[0], q[1]), []))
        lo, hi, n, seed = self._lo, self._hi, self._n, self._seed

        def to_mined(element):
            (task, qid), ranked = element
            negatives, eligible = sample_negatives(qid, ranked, lo, hi, n, seed)
            return Mined(task, qid, negatives, eligible)

        return ((partials, own)
                | "WithEveryQuery" >> beam.Flatten()
                | "TopKPerQuery" >> beam.CombinePerKey(_TopK(self._hi))
                | "Sample" >> beam.Map(to_mined))
