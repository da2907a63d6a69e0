"""`cmtp eval --data DIR --retriever bm25|BACKEND`: a retriever scored on CapRetrieval-layout data, the paper's way.

The data: `candidates.jsonl` ({id, text}), `queries.jsonl` ({id, query, positives: [{id, score}]}, graded
2 strong / 1 weak, every unlisted pair 0) and optionally `types.json` ({type: [query text, ...]}). All text
is lower-cased. nDCG@1/5/10 with linear gains (the gain of a passage is its grade, as pytrec_eval's
ndcg_cut, which MTEB uses), averaged over the queries that have positives: the paper excludes the others
(27 of 404). Rankings break score ties by candidate id, so a run is deterministic.

- `bm25`: Okapi BM25 from rank-bm25 (BM25Okapi: k1 = 1.5, b = 0.75, epsilon = 0.25, its defaults) over jieba
  tokens: candidates cut in jieba's search mode, queries in its default mode, as the paper's evaluation does.
  That reproduces the paper's 74.40 / 69.30 / 66.54 as 74.40 / 69.36 / 66.62.
- any embedding backend of the scorer (transforms/embedders.py): cosine of normalized embeddings, with the
  query instruction or prefix the model wants (`--query-prefix`, e.g. the paper's "Given an image search
  query, retrieve relevant image captions").
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

KS = (1, 5, 10)


class EvalError(ValueError):
    """Data that cannot be evaluated; the message names the file and the problem."""


@dataclass(frozen=True)
class EvalData:
    candidate_ids: list[str]
    candidates: list[str]  # lower-cased
    queries: list[dict]  # {id, query (lower-cased), positives: {candidate id: grade}}, with positives only
    without_positives: int
    types: dict[str, list[str]]  # type -> lower-cased query texts


def _jsonl(path: str) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise EvalError(f"{path}: line {number}: invalid JSON ({error.msg})") from None
    return rows


def load_data(directory: str) -> EvalData:
    paths = {name: os.path.join(directory, name) for name in ("candidates.jsonl", "queries.jsonl", "types.json")}
    for name in ("candidates.jsonl", "queries.jsonl"):
        if not os.path.isfile(paths[name]):
            raise EvalError(f"{directory}: no {name} (CapRetrieval layout: candidates.jsonl, queries.jsonl[, types.json])")
    candidates = _jsonl(paths["candidates.jsonl"])
    ids = [str(c["id"]) for c in candidates]
    known = set(ids)
    queries, without = [], 0
    for row in _jsonl(paths["queries.jsonl"]):
        positives = {str(p["id"]): int(p["score"]) for p in row.get("positives") or [] if int(p["score"]) > 0}
        unknown = sorted(set(positives) - known)
        if unknown:
            raise EvalError(f"{paths['queries.jsonl']}: query {row.get('id')} lists positive {unknown[0]!r}, "
                            "which is not in candidates.jsonl")
        if not positives:
            without += 1
            continue
        queries.append({"id": str(row["id"]), "query": row["query"].lower(), "positives": positives})
    types = {}
    if os.path.isfile(paths["types.json"]):
        with open(paths["types.json"], encoding="utf-8") as handle:
            types = {name: [q.lower() for q in members] for name, members in json.load(handle).items()}
    return EvalData(ids, [c["text"].lower() for c in candidates], queries, without, types)


def ndcg(ranked: Sequence[str], grades: dict[str, int], k: int) -> float:
    """nDCG@k with linear gains: sum(grade / log2(rank + 1)) over the top k, over the ideal ordering's."""
    dcg = sum(grades.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    ideal = sorted(grades.values(), reverse=True)[:k]
    idcg = sum(grade / math.log2(rank + 2) for rank, grade in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def top_ids(scores: np.ndarray, ids: Sequence[str], k: int) -> list[str]:
    """The k best ids by score, ties broken by id."""
    order = sorted(range(len(ids)), key=lambda i: (-scores[i], ids[i]))
    return [ids[i] for i in order[:k]]


def bm25_scorer(data: EvalData) -> Callable[[str], np.ndarray]:
    import logging

    import jieba
    from rank_bm25 import BM25Okapi

    jieba.setLogLevel(logging.WARNING)
    index = BM25Okapi([[w for w in jieba.lcut_for_search(text) if w.strip()] for text in data.candidates])
    return lambda query: np.asarray(index.get_scores([w for w in jieba.lcut(query) if w.strip()]))


def embedding_scorer(data: EvalData, backend: str, settings: dict, query_prefix: str = "",
                     passage_prefix: str = "", slice_size: int = 64) -> Callable[[str], np.ndarray]:
    from cmtp.transforms.embedders import load_embedder
    from cmtp.transforms.scoring import encode_sorted

    embedder = load_embedder(backend, **settings)
    # the scorer's encoding: shortest first in slices, halving a slice on GPU out-of-memory
    passages, _ = encode_sorted(embedder, [passage_prefix + t for t in data.candidates], "passage", slice_size)
    return lambda query: passages @ embedder.encode([query_prefix + query], "query")[0]


def evaluate(data: EvalData, score: Callable[[str], np.ndarray]) -> dict:
    """nDCG@1/5/10 (in points) overall and per query type, and the queries/s of ranking."""
    per_query = {}
    started = time.perf_counter()
    for query in data.queries:
        ranked = top_ids(score(query["query"]), data.candidate_ids, max(KS))
        per_query[query["id"]] = (query["query"], {k: ndcg(ranked, query["positives"], k) for k in KS})
    seconds = time.perf_counter() - started

    def mean(rows):
        return {f"ndcg@{k}": round(100 * float(np.mean([r[k] for r in rows])), 2) for k in KS} if rows else {}

    result = {"queries": len(per_query), "queries_without_positives_excluded": data.without_positives,
              "overall": mean([scores for _, scores in per_query.values()]),
              "queries_per_second": round(len(per_query) / seconds, 1) if seconds else None}
    if data.types:
        by_text = {text: scores for text, scores in per_query.values()}
        result["by_type"] = {name: {"queries": len(rows), **mean(rows)} for name, members in data.types.items()
                             for rows in [[by_text[q] for q in members if q in by_text]]}
    return result


def table(result: dict, retriever: str) -> str:
    lines = [f"{retriever}: {result['queries']} queries ({result['queries_without_positives_excluded']} without "
             f"positives excluded), {result['queries_per_second']} queries/s",
             f"{'':24} {'nDCG@1':>8} {'nDCG@5':>8} {'nDCG@10':>8} {'queries':>8}",
             f"{'overall':24} " + " ".join(f"{result['overall'][f'ndcg@{k}']:8.2f}" for k in KS)
             + f" {result['queries']:8d}"]
    for name, row in (result.get("by_type") or {}).items():
        if row["queries"]:
            lines.append(f"{name:24} " + " ".join(f"{row[f'ndcg@{k}']:8.2f}" for k in KS) + f" {row['queries']:8d}")
    return "\n".join(lines)


def run_eval(directory: str, retriever: str, settings: Optional[dict] = None, query_prefix: str = "",
             passage_prefix: str = "") -> dict:
    data = load_data(directory)
    if retriever == "bm25":
        score = bm25_scorer(data)
    else:
        score = embedding_scorer(data, retriever, settings or {}, query_prefix, passage_prefix)
    return {"retriever": retriever, **evaluate(data, score)}
