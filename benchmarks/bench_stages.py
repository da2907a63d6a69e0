"""Throughput of the hot stages against a naive baseline measured in the same run, and end-to-end wall time.

    python benchmarks/bench_stages.py [--repeats 5]

1. MinHash signatures: ours (permutations drawn once, CRC-32 shingle hash, batch update, Traditional
   folding included) vs a naive datasketch loop (`MinHash()` + `update()` per shingle), on real CMRC
   contexts and CSL abstracts cut to 200 characters, 128 permutations.
2. `cmtp run configs/sample.yaml`: wall time and peak memory of the whole job, in a child process.
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

from datasketch import MinHash

from cmtp.transforms.near_dedup import MinHasher, shingles
from cmtp.transforms.normalize import normalize_text
from real_pairs import cmrc_pairs, csl_pairs

REPO = Path(__file__).resolve().parent.parent


def real_pairs() -> list[tuple[str, str]]:
    return [(normalize_text(q), normalize_text(p)) for q, p in cmrc_pairs() + csl_pairs()]


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
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    pairs = real_pairs()
    results = {
        "minhash": bench_minhash([p for _, p in pairs], args.repeats),
        "sample_run": bench_sample_run(3),
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
