"""`cmtp eval --data DIR --retriever bm25|BACKEND`: a retriever scored on CapRetrieval-layout data, the paper's way.

The data: `candidates.jsonl` ({id, text}), `queries.jsonl` ({id, query, positives: [{id, score}]}, graded
2 strong / 1 weak, every unlisted pair 0) and optionally `types.json` ({type: [query text, ...]}). All text
is lower-cased. nDCG@1/5/10 with linear gains (the gain of a passage is its grade, as pytrec_eval's
ndcg_cut, which MTEB uses), averaged over the queries that have positives: the paper excludes the others
(27 of 404). Rankings break score ties by candidate id, so a run is deterministic.

- `bm25`: Okapi BM25 from rank-bm25 (BM25Okapi: k1 = 1.5, b = 0.75, epsilon = 0.25, its defaults). Its tokens
  follow the data's language (`tokenizer="auto"`): Chinese data (CJK ideographs at least 5% of the text units)
  is cut by jieba, candidates in its search mode and queries in its default mode, as the paper's evaluation does,
  which reproduces the paper's 74.40 / 69.30 / 66.54 as 74.40 / 69.36 / 66.62; other data (English, e.g. a
  CapRetrievalEn) into lower-cased word tokens, letters and digits, without jieba's punctuation tokens. The
  result names the tokenizer and the CJK share it was chosen from.
- any embedding backend of the scorer (transforms/embedders.py): cosine of normalized embeddings, with the
  query instruction or prefix the model wants (`--query-prefix`, e.g. the paper's "Given an image search
  query, retrieve relevant image captions").
"""
from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

KS = (1, 5, 10)
TOKENIZERS = ("auto", "jieba", "english")
# jieba cuts Latin words as a word tokenizer does (plus punctuation tokens), while a word tokenizer leaves a run of
# hanzi one token: so any real share of Chinese gets jieba, and only text without it the word tokenizer
JIEBA_FROM_CJK_SHARE = 0.05
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")  # as filters/nontext.py
_WORD = re.compile(r"[^\W_]+")  # a run of letters or digits of any alphabet


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


def cjk_share(data: EvalData) -> float:
    """Share of CJK ideographs among the text units of candidates and queries, a unit being an ideograph or a word
    of another script (as filters/nontext.py's cjk_units counts, without importing the filters and Beam)."""
    han = units = 0
    for text in (*data.candidates, *(query["query"] for query in data.queries)):
        ideographs = len(_HAN.findall(text))
        han, units = han + ideographs, units + ideographs + len(_WORD.findall(_HAN.sub(" ", text)))
    return han / units if units else 0.0


def choose_tokenizer(data: EvalData, tokenizer: str = "auto") -> str:
    """The BM25 tokenizer: the one asked for, or for `auto` jieba on Chinese data and words on any other."""
    if tokenizer not in TOKENIZERS:
        raise EvalError(f"tokenizer {tokenizer!r}: not one of {', '.join(TOKENIZERS)}")
    if tokenizer != "auto":
        return tokenizer
    return "jieba" if cjk_share(data) >= JIEBA_FROM_CJK_SHARE else "english"


def english_tokens(text: str) -> list[str]:
    """Lower-cased words (letters and digits), punctuation dropped: "Flip-flops." -> ["flip", "flops"]."""
    return _WORD.findall(text.lower())


def bm25_scorer(data: EvalData, tokenizer: str = "auto") -> Callable[[str], np.ndarray]:
    from rank_bm25 import BM25Okapi

    if choose_tokenizer(data, tokenizer) == "english":
        english = BM25Okapi([english_tokens(text) for text in data.candidates])
        return lambda query: np.asarray(english.get_scores(english_tokens(query)))
    import logging

    import jieba

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
    if "tokenizer" in result:  # BM25: which tokens, and the share of Chinese they were chosen from
        retriever += f" ({result['tokenizer']} tokens; CJK {result['cjk_share']:.0%} of the text units)"
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
             passage_prefix: str = "", tokenizer: str = "auto") -> dict:
    """`tokenizer` (auto, jieba, english) is BM25's; the result names the one used, with the data's CJK share."""
    data = load_data(directory)
    if retriever == "bm25":
        chosen = choose_tokenizer(data, tokenizer)
        head = {"retriever": retriever, "tokenizer": chosen, "cjk_share": round(cjk_share(data), 4)}
        return {**head, **evaluate(data, bm25_scorer(data, chosen))}
    score = embedding_scorer(data, retriever, settings or {}, query_prefix, passage_prefix)
    return {"retriever": retriever, **evaluate(data, score)}
