"""Near dedup against a peer: CPU, peak memory, precision and recall of our Beam stage and of datasketch's in-memory
MinHashLSH + union-find, on the same 50k-100k passages derived from real text.

    python benchmarks/bench_dedup_peers.py [--sizes 50000,100000] [--repeats 3]
        [--systems ours,ours_exact_near,datasketch,datasketch_crc32] [--json out.json] [--rev REV]
        [--feed memory|create]

The package is frozen at the start (benchmarks/trees.py): the working tree's package folders as they are then, copied
to a temp dir first on PYTHONPATH of the parent and of every child, so an edit made while the benchmark runs (the
stage is being rewritten) reaches no run; or, with --rev, the package folders at commit REV (git archive). Every
child checks that its `cmtp.*` modules came from that copy. The benchmark scripts themselves are the working tree's.

Passages: `make_passage(i)` of benchmarks/bench_dedup.py, i = 0..N-1 (real passages from ../shared/data, read in
place, mutated deterministically: every fifth a light edit of an earlier passage, a near duplicate; the others
heavy mutations, different texts).

Every system sees the same shingle sets: `cmtp.transforms.near_dedup.shingles(text, 5, "char")` after folding
Traditional to Simplified with `opencc.OpenCC("t2s")` (what our MinHasher does, fold_traditional=True), 128
permutations, threshold 0.7, seed 1.

Systems, each run in a child process of its own (`python bench_dedup_peers.py --child SYSTEM N --result FILE`):
  ours              transforms/near_dedup.py `NearDedup(NearDedupConfig(ngram=5, threshold=0.7), SurvivorOrder({}),
                    max_nodes=600 * N)` on Beam's FnApiRunner, fed `Pair` rows made as bench_dedup.py makes them,
                    before the timing; the rejects' (id, survivor) written as text lines
                    (`beam.io.WriteToText`) and read back after the run. A cluster is a survivor and the rejects
                    naming it.
  ours_exact_near   the same after `ExactDedup(SurvivorOrder({}), "passage")` (transforms/exact_dedup.py), as the
                    pipeline runs the two; its rejects name survivors too and join the clusters.
  datasketch        `datasketch.MinHash(num_perm=128, seed=1)` with its default hash (SHA-1) per passage,
                    `update_batch` of the utf-8 shingles; `MinHashLSH(threshold=0.7, num_perm=128)` (its default
                    weights); every passage inserted, then each queried, and united (union-find) with each result
                    whose estimated Jaccard (`m.jaccard(other)`) reaches 0.7: the candidates are VERIFIED, as our
                    stage verifies its own. Its default weights give 14 bands of 9 rows at 0.7 and 128
                    permutations; our stage's recall-weighted search gives 20 x 6: more candidates, so the recall gap
                    between the rows is the band shape, not the framework.
  datasketch_crc32  the same with `hashfunc=zlib.crc32`, the shingle hash our stage uses: the two datasketch rows
                    differ from ours only in the framework and the algorithmic structure (LSH buckets grouped by key,
                    joins, component rounds vs. a dict of buckets and a union-find in one process).
  beam_floor        (opt-in, not in the default list) the same feed of the same pairs, each pair's id written
                    with `WriteToText`: what the harness costs on the runner with no dedup at all, a floor under the
                    ours rows.
The ours feed (--feed): `memory` (default): `beam.Create` of the chunk offsets 0, 5000, ... and a FlatMap that yields
each chunk's rows from a list the child filled before the timing (FnApiRunner runs its worker in the child's own
process; the function pickles by reference). `create`: `beam.Create(rows, reshuffle=False)`, the plain way, which
pickles and bz2-compresses all N rows into the pipeline proto when the pipeline is submitted and decompresses and
unpickles them in the worker: ~12 s of CPU at 50k passages (beam_floor), a cost of this harness that no pipeline run
has (they read files) and that would be charged to the stage. Create's default reshuffle (a shuffle of the whole
input ahead of the stage) is off in both.

Measures, in each child:
  - CPU: `time.process_time()` (every thread of the child) around the work only: after the imports and after the
    passages (and for ours the `Pair` rows) are made. For ours: building the pipeline, running it to the end
    (shingling, hashing, LSH, candidates, verification, components, decisions) and writing the rejects. For
    datasketch: the OpenCC converter, shingling, hashing, LSH insert and query, verification and union-find to a
    label per passage. Wall time around the same; on a shared machine CPU time is the fair measure.
  - memory: peak RSS (VmHWM from /proc/self/status) at the end, RSS (VmRSS) at the start of the timed work, and
    the difference (what the work added over the imports and the passages), also per passage. Note that the
    datasketch children import apache_beam too (through cmtp.transforms.near_dedup, for `shingles`), so the start
    RSS of every row includes Beam's ~110 MiB of imports; compare the differences.
Repeats are interleaved (every system once, then again); the table gives medians.

Quality: against an exact reference computed once per size in the parent (not part of any timing): every pair of
passages whose exact Jaccard on the shingle sets reaches 0.7 (benchmarks/audit_near_dedup.py `exact_edges`, a sparse
passage x shingle product), clustered by union-find; pair precision and recall of the relation "in one cluster"
(audit_near_dedup `score`). Clusters: the clusters of two or more passages; survivors: all clusters, singletons
included (the passages a dedup keeps).

Peers not run: the issue that asked for this quotes datatrove (22.5 s, 74 MiB at 50k passages) and text-dedup
(35.6 s, 546 MiB at 50k). Neither is installed here and neither is implemented in this script (asking for them in
--systems is an error); they are not measured on this machine or these passages, so their numbers do not compare
with the table's.

Prints a markdown table per size, the CPU ratios ours / datasketch and ours / datasketch_crc32, and the raw runs;
--json writes runs and summary to a file. Nothing is written in the repo.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bench_dedup import make_passage  # noqa: E402

NGRAM, NUM_PERM, THRESHOLD, SEED, UNIT = 5, 128, 0.7, 1, "char"
SYSTEMS = ("ours", "ours_exact_near", "datasketch", "datasketch_crc32")
OPT_IN = ("beam_floor",)
NOT_HERE = ("datatrove", "text_dedup", "text-dedup")


def status_mib(key: str) -> float:
    """A line of /proc/self/status in MiB: VmHWM (peak resident set) or VmRSS (resident set now)."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def stage_source_hash(root: Path) -> str:
    """A hash of the transforms/*.py a process imported its stage from (runs of different sources do not compare)."""
    digest = hashlib.blake2b(digest_size=6)
    for path in sorted((root / "transforms").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------- children


_ROWS: list = []  # the child's Pair rows, read by `rows_from_memory` in the runner's in-process worker
CHUNK = 5000


def rows_from_memory(start: int):
    """Rows start .. start + CHUNK - 1 of `_ROWS`: the in-memory feed (the module is imported by name in the child,
    so Beam pickles this function by reference, not the rows with it)."""
    if not _ROWS:
        raise RuntimeError("no rows: the memory feed needs the runner's worker in the child's own process")
    yield from _ROWS[start:start + CHUNK]


def child_ours(n: int, system: str, feed: str) -> dict:
    import apache_beam as beam
    from apache_beam.metrics import Metrics
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from cmtp.pipelines.config import NearDedupConfig
    from cmtp.schemas import Pair, pair_id
    from cmtp.transforms.exact_dedup import ExactDedup
    from cmtp.transforms.near_dedup import NearDedup
    from cmtp.transforms.survivor import SurvivorOrder

    pairs = []
    for i in range(n):
        passage = make_passage(i)
        pairs.append(Pair(pair_id("b", "k", str(i), passage), f"q{i}", passage, "b", "title_body", "f", f"line {i}"))
    index = {pair.id: i for i, pair in enumerate(pairs)}
    assert len(index) == n, "pair ids must be unique"
    import bench_dedup_peers  # this file by its module name (the child runs it as __main__)

    bench_dedup_peers._ROWS[:] = pairs

    with tempfile.TemporaryDirectory(prefix="bench_dedup_peers_") as tmp:
        rss_start, cpu_start, wall_start = status_mib("VmRSS"), time.process_time(), time.perf_counter()
        pipeline = beam.Pipeline(runner=FnApiRunner())
        if feed == "create":  # reshuffle=False: no shuffle of the whole input ahead of the stage
            rows = pipeline | beam.Create(pairs, reshuffle=False)
        else:
            rows = (pipeline | beam.Create(list(range(0, n, CHUNK)), reshuffle=False)
                    | "FromMemory" >> beam.FlatMap(bench_dedup_peers.rows_from_memory))
        if system == "beam_floor":
            rows | "Ids" >> beam.Map(lambda pair: pair.id) | "WriteIds" >> beam.io.WriteToText(f"{tmp}/ids")
        else:
            rejects = []
            if system == "ours_exact_near":
                exact = rows | ExactDedup(SurvivorOrder({}), "passage")
                rows = exact["pairs"]
                rejects.append(exact["rejects"])
            near = rows | NearDedup(NearDedupConfig(ngram=NGRAM, threshold=THRESHOLD), SurvivorOrder({}),
                                    max_nodes=600 * n)
            rejects.append(near["rejects"])
            near["pairs"] | "CountKept" >> beam.Map(lambda _, c=Metrics.counter("bench", "kept"): c.inc())
            (rejects | "AllRejects" >> beam.Flatten()
             | "Link" >> beam.Map(lambda reject: f"{reject.id}\t{reject.survivor}")
             | "WriteRejects" >> beam.io.WriteToText(f"{tmp}/rejects"))
            (near["stats"] | "Stat" >> beam.Map(lambda item: json.dumps([item[0][0], item[1]]))
             | "WriteStats" >> beam.io.WriteToText(f"{tmp}/stats"))
        result = pipeline.run()
        result.wait_until_finish()
        cpu, wall = time.process_time() - cpu_start, time.perf_counter() - wall_start

        def lines(prefix: str) -> list[str]:
            return [line for path in sorted(Path(tmp).glob(prefix + "*")) for line in
                    path.read_text("utf-8").splitlines() if line]

        out = {"cpu_s": cpu, "wall_s": wall, "rss_start_mib": rss_start}
        if system == "beam_floor":
            assert len(lines("ids")) == n
            return out
        links = [(index[a], index[b]) for a, b in (line.split("\t") for line in lines("rejects"))]
        stats: Counter = Counter()
        for line in lines("stats"):
            name, count = json.loads(line)
            stats[name] += count
        counters = {m.key.metric.name: m.committed for m in
                    result.metrics().query(MetricsFilter().with_namespace("bench"))["counters"]}
        assert counters.get("kept", 0) + len(links) == n, (counters, len(links), n)
        return {**out, "links": links, "kept": counters.get("kept", 0), "stats": dict(stats)}


def child_datasketch(n: int, system: str) -> dict:
    import zlib

    import opencc
    from audit_near_dedup import UnionFind
    from datasketch import MinHash, MinHashLSH

    from cmtp.transforms.near_dedup import shingles

    texts = [make_passage(i) for i in range(n)]
    hashfunc = zlib.crc32 if system == "datasketch_crc32" else None  # None: datasketch's default, SHA-1

    rss_start, cpu_start, wall_start = status_mib("VmRSS"), time.process_time(), time.perf_counter()
    t2s = opencc.OpenCC("t2s")
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    hashes = []
    for i, text in enumerate(texts):
        minhash = MinHash(num_perm=NUM_PERM, seed=SEED, hashfunc=hashfunc)
        minhash.update_batch([s.encode("utf-8") for s in shingles(t2s.convert(text), NGRAM, UNIT)])
        lsh.insert(i, minhash)
        hashes.append(minhash)
    uf = UnionFind(n)
    candidates = verified = 0
    for i, minhash in enumerate(hashes):
        for j in lsh.query(minhash):
            if j > i:  # LSH buckets are symmetric: j's query returns i; each candidate pair checked once
                candidates += 1
                if minhash.jaccard(hashes[j]) >= THRESHOLD:
                    verified += 1
                    uf.union(i, j)
    labels = uf.labels()
    cpu, wall = time.process_time() - cpu_start, time.perf_counter() - wall_start
    return {"cpu_s": cpu, "wall_s": wall, "rss_start_mib": rss_start, "labels": labels,
            "stats": {"candidates": candidates, "verified_edges": verified, "lsh_bands_rows": [lsh.b, lsh.r]}}


def child(system: str, n: int, result_path: str, feed: str) -> None:
    import resource

    from trees import foreign_modules, package_root

    out = child_datasketch(n, system) if system.startswith("datasketch") else child_ours(n, system, feed)
    root = package_root()
    out.update({"system": system, "passages": n, "peak_rss_mib": status_mib("VmHWM"),
                "source": stage_source_hash(root), "cmtp_root": str(root), "foreign_modules": foreign_modules(root),
                "children_cpu_s": resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
                + resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime})
    Path(result_path).write_text(json.dumps(out), encoding="utf-8")


# ---------------------------------------------------------------------------------------------------- parent


def root(i: int) -> int:
    """The passage a near duplicate was edited from, followed back to a heavy mutation (bench_dedup.make_passage)."""
    import random

    while i % 5 == 4:
        i = random.Random(i).randrange(i)
    return i


def reference(n: int):
    """Exact reference for passages 0..n-1, and the items `score` takes (one group per generated edit family)."""
    from audit_near_dedup import Item, Reference, Shingler, exact_edges, union_find_labels

    start = time.perf_counter()
    shingler = Shingler(NGRAM, UNIT, fold_traditional=True)
    sets = [shingler(make_passage(i)) for i in range(n)]
    edges = exact_edges(sets, THRESHOLD)
    del sets
    labels = union_find_labels(n, edges)
    ref = Reference([], edges, labels, edges, labels, time.perf_counter() - start)
    items = [Item("", "passage", f"family/{root(i)}", "bench") for i in range(n)]
    return ref, items


def labels_of(run: dict, n: int) -> list[int]:
    if "labels" in run:
        return run["labels"]
    from audit_near_dedup import UnionFind

    uf = UnionFind(n)
    for reject, survivor in run["links"]:
        uf.union(reject, survivor)
    return uf.labels()


def run_child(system: str, n: int, env: dict, root: Path, feed: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_dedup_peers_") as tmp:
        result = Path(tmp) / "result.json"
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--child", system, str(n), "--result", str(result),
                               "--feed", feed],
                              capture_output=True, text=True, env=env)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0 or not result.exists():
            return {"system": system, "passages": n, "error": (proc.stderr or proc.stdout)[-3000:]}
        run = json.loads(result.read_text("utf-8"))
    run["child_wall_s"] = elapsed
    if Path(run["cmtp_root"]) != root.resolve() or run["foreign_modules"]:
        return {"system": system, "passages": n, "error": f"cmtp from {run['cmtp_root']}, not the frozen {root};"
                f" modules from elsewhere: {', '.join(run['foreign_modules']) or 'none'}"}
    return run


def summarize(runs: list[dict], n: int, ref, items) -> dict:
    from audit_near_dedup import score

    good = [r for r in runs if "error" not in r]
    if not good:
        return {"runs": len(runs), "errors": len(runs)}
    scores = []
    for run in good if "links" in good[0] or "labels" in good[0] else ():  # beam_floor clusters nothing
        measured = score(items, labels_of(run, n), ref)
        scores.append({key: measured[key] for key in ("pair_precision", "pair_recall", "clusters", "predicted_pairs")}
                      | {"clusters_2plus": sum(1 for c in Counter(labels_of(run, n)).values() if c > 1)})
    first = scores[0] if scores else dict.fromkeys(("pair_precision", "pair_recall", "clusters_2plus", "clusters",
                                                    "predicted_pairs"))
    return {
        "runs": len(runs), "errors": len(runs) - len(good),
        "cpu_s": statistics.median(r["cpu_s"] for r in good),
        "wall_s": statistics.median(r["wall_s"] for r in good),
        "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in good),
        "rss_start_mib": statistics.median(r["rss_start_mib"] for r in good),
        "rss_added_mib": statistics.median(r["peak_rss_mib"] - r["rss_start_mib"] for r in good),
        "precision": first["pair_precision"], "recall": first["pair_recall"],
        "clusters_2plus": first["clusters_2plus"], "survivors": first["clusters"],
        "predicted_pairs": first["predicted_pairs"],
        "same_clusters_every_run": all(s == first for s in scores),
        "sources": sorted({r["source"] for r in good}),
        "stats": good[0].get("stats", {}),
    }


def render(n: int, ref, summary: dict, reference_clusters: int) -> str:
    lines = [f"### {n:,} passages",
             "",
             f"reference: {len(ref.edges):,} pairs with exact Jaccard >= {THRESHOLD} on char {NGRAM}-grams,"
             f" {reference_clusters:,} clusters of 2+, {len(set(ref.labels)):,} survivors"
             f" ({ref.seconds:.1f} s, not timed)",
             "",
             "| system | CPU s (median) | wall s | peak RSS MiB | RSS at start MiB | added MiB | added KB / passage |"
             " precision | recall | clusters (2+) | survivors |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for system, row in summary.items():
        if "cpu_s" not in row:
            lines.append(f"| {system} | failed ({row['errors']} of {row['runs']} runs) |||||||||")
            continue
        vary = "" if row["same_clusters_every_run"] else " (varies)"
        if row["precision"] is None:  # beam_floor: no clusters
            row = {**row, "precision": float("nan"), "recall": float("nan"), "clusters_2plus": 0, "survivors": 0}
        lines.append(f"| {system} | {row['cpu_s']:.1f} | {row['wall_s']:.1f} | {row['peak_rss_mib']:.0f} |"
                     f" {row['rss_start_mib']:.0f} | {row['rss_added_mib']:.0f} |"
                     f" {row['rss_added_mib'] * 1024 / n:.2f} | {row['precision']:.4f}{vary} | {row['recall']:.4f} |"
                     f" {row['clusters_2plus']:,} | {row['survivors']:,} |")
    lines.append("")
    for ours in ("ours", "ours_exact_near"):
        for peer in ("datasketch", "datasketch_crc32"):
            if "cpu_s" in summary.get(ours, {}) and "cpu_s" in summary.get(peer, {}):
                lines.append(f"CPU {ours} / {peer}: {summary[ours]['cpu_s'] / summary[peer]['cpu_s']:.2f}x")
    sources = {s for row in summary.values() for s in row.get("sources", ())}
    if len(sources) > 1:
        lines.append(f"WARNING: the runs imported different transforms (sources {sorted(sources)}); rerun")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50000,100000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--json", help="write the runs and the summary to this file")
    parser.add_argument("--feed", choices=("memory", "create"), default="memory",
                        help="how the ours rows enter the pipeline (module docstring)")
    parser.add_argument("--rev", help="run the package folders at this commit, not the working tree frozen now")
    parser.add_argument("--child", nargs=2, metavar=("SYSTEM", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.result, args.feed)
        return
    systems = [s for s in args.systems.split(",") if s]
    absent = [s for s in systems if s in NOT_HERE]
    if absent:
        parser.error(f"{', '.join(absent)}: not installed here and not implemented (see the docstring)")
    unknown = set(systems) - set(SYSTEMS) - set(OPT_IN)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; choose from {', '.join(SYSTEMS + OPT_IN)}")

    with tempfile.TemporaryDirectory(prefix="bench_dedup_peers_tree_") as tmp:
        run_all(args, systems, Path(tmp))


def run_all(args, systems: list[str], where: Path) -> None:
    from trees import foreign_modules, old_tree, package_root, working_tree

    if "cmtp" in sys.modules:
        raise RuntimeError("cmtp imported before the package was frozen")
    env = old_tree(args.rev, where) if args.rev else working_tree(where)
    sys.path.insert(0, str(where))  # the parent's reference shingles from the same copy as the children
    root = package_root()
    if root != where.resolve() or foreign_modules(root):
        raise RuntimeError(f"cmtp imported from {root}, not the frozen copy {where}")
    tree = f"{args.rev or 'working tree'} (transforms {stage_source_hash(root)})"
    print(f"package: {tree}; ours fed from {args.feed}", flush=True)
    report: dict = {"settings": {"ngram": NGRAM, "unit": UNIT, "num_perm": NUM_PERM, "threshold": THRESHOLD,
                                 "seed": SEED, "fold_traditional": True, "repeats": args.repeats, "tree": tree,
                                 "feed": args.feed},
                    "sizes": {}}
    raw: list[str] = []
    for n in map(int, args.sizes.split(",")):
        ref, items = reference(n)
        runs: dict[str, list[dict]] = {system: [] for system in systems}
        for repeat in range(args.repeats):
            for system in systems:
                run = run_child(system, n, env, where, args.feed)
                runs[system].append(run)
                shown = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in run.items()
                         if k not in ("labels", "links", "cmtp_root", "foreign_modules")}
                raw.append(json.dumps({"repeat": repeat, **shown}))
                print(raw[-1], file=sys.stderr, flush=True)
        summary = {system: summarize(runs[system], n, ref, items) for system in systems}
        reference_clusters = sum(1 for c in Counter(ref.labels).values() if c > 1)
        print(render(n, ref, summary, reference_clusters), flush=True)
        print(flush=True)
        report["sizes"][str(n)] = {
            "reference": {"edges": len(ref.edges), "clusters_2plus": reference_clusters,
                          "survivors": len(set(ref.labels)), "seconds": ref.seconds},
            "summary": summary,
            "runs": {system: [{k: v for k, v in run.items() if k not in ("labels", "links")} for run in rs]
                     for system, rs in runs.items()}}
    print("raw runs:")
    print("\n".join(raw))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
