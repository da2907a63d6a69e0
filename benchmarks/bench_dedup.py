"""Near-dedup cost as the input grows: the exact + near dedup stage on FnApiRunner at 10k, 100k, 1M passages.

    python benchmarks/bench_dedup.py [--sizes 10000,100000,1000000] [--versions new,old]

Passages are made by repeating and perturbing the real ones in ../shared/data (CSL abstracts, CMRC
contexts, DuReader paragraphs cut to 200 characters): each copy gets a few characters changed at
random places, so ~1 in 5 is a near duplicate of another and the rest are distinct. Each size runs in
a child process (the dedup transforms only, reading from memory, counting outputs), reporting wall
time, peak RSS, and pairs kept and dropped. `old` is transforms/near_dedup.py as of commit 983b26c (audit_near_dedup.load_old) (star
candidates, five label-propagation rounds), loaded from git into the child, for a baseline in the same run; `new`
is the working tree's, its component rounds bounded as a run bounds them (from ~600 input bytes a passage).
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"


def seed_passages() -> list[str]:
    texts = [line.split("\t")[1][:200] for line in (SHARED / "csl" / "ts_dev.tsv").read_text("utf-8").splitlines()]
    squad = json.loads((SHARED / "cmrc2018" / "squad-style" / "cmrc2018_trial.json").read_text("utf-8"))
    texts += [p["context"][:200] for a in squad["data"] for p in a["paragraphs"]]
    for line in (SHARED / "dureader" / "search.dev.json").read_text("utf-8").splitlines():
        texts += [" ".join(d["paragraphs"])[:200] for d in json.loads(line)["documents"]]
    return [t for t in texts if len(t) >= 100]


_BASE: list[str] = []


def make_passage(i: int) -> str:
    """Passage i, the same on every call and worker: every fifth is a light edit of an earlier passage (a near
    duplicate), the others heavy mutations of a real one (a different text)."""
    if not _BASE:
        _BASE.extend(seed_passages())
    rng = random.Random(i)
    if i % 5 == 4:
        text, changes = make_passage(rng.randrange(i)), 3
    else:
        text, changes = _BASE[i % len(_BASE)], 60 + i % 40
    chars = list(text)
    for _ in range(changes):
        chars[rng.randrange(len(chars))] = chr(0x4E00 + rng.randrange(0x5000))
    return "".join(chars)


def child(n: int, version: str) -> None:
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from cmtp.pipelines.config import NearDedupConfig
    from cmtp.schemas import Pair, pair_id
    from cmtp.transforms.exact_dedup import ExactDedup
    from cmtp.transforms.near_dedup import NearDedup
    from cmtp.transforms.survivor import SurvivorOrder

    if version == "old":
        from audit_near_dedup import load_old  # the version before the rewrite, from git

        near_dedup = load_old().NearDedup(SurvivorOrder({}), 5, 128, 0.7, 1)
    else:
        near_dedup = NearDedup(NearDedupConfig(ngram=5, threshold=0.7), SurvivorOrder({}), max_nodes=600 * n)

    def chunk_pairs(start: int, size: int = 10000):
        # each worker regenerates the same deterministic passages: the input is not held by the driver
        for i in range(start, min(start + size, n)):
            p = make_passage(i)
            yield Pair(pair_id("b", "k", str(i), p), f"q{i}", p, "b", "title_body", "f", f"line {i}")

    from apache_beam.metrics import Metrics
    from apache_beam.metrics.metric import MetricsFilter

    order = SurvivorOrder({})
    start = time.perf_counter()
    pipeline = beam.Pipeline(runner=FnApiRunner())
    pairs = pipeline | beam.Create(list(range(0, n, 10000))) | beam.Reshuffle() | beam.FlatMap(chunk_pairs)
    exact = pairs | ExactDedup(order, "passage")
    near = exact.pairs | near_dedup
    for name, pcoll in (("kept", near["pairs"]), ("dropped", near["rejects"])):
        pcoll | f"Count {name}" >> beam.Map(lambda _, c=Metrics.counter("bench", name): c.inc())
    result = pipeline.run()
    result.wait_until_finish()
    wall = time.perf_counter() - start
    counts = {m.key.metric.name: m.committed for m in result.metrics().query(MetricsFilter().with_namespace("bench"))[
        "counters"]}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"version": version, "passages": n, "wall_s": round(wall, 1), "peak_rss_mib": round(peak), **counts,
                      "passages_per_s": round(n / wall)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--versions", default="new,old")
    parser.add_argument("--child", type=int)
    parser.add_argument("--version", default="new")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.version)
        return
    for n in map(int, args.sizes.split(",")):
        for version in args.versions.split(","):
            out = subprocess.run([sys.executable, __file__, "--child", str(n), "--version", version],
                                 capture_output=True, text=True)
            print(out.stdout.strip() or out.stderr[-2000:], flush=True)


if __name__ == "__main__":
    main()
