"""What Beam's runner costs: the CPU of `cmtp run` (the unlabeled pipeline on Beam's in-process FnApiRunner,
scoring off) against the CPU of the same stage functions called in a plain Python loop over the same input.

    python benchmarks/bench_overhead.py [--sizes 10000,100000] [--repeats 3] [--json out.json] [--rev REV]

Input and config come from benchmarks/bench_pipeline.py: `generate` writes CSL tsv files made from real pairs (in
a temp dir outside the repo), `write_config(..., "near")` writes configs/sample.yaml's settings with scoring off:
normalize, PII mask, general filter, exact pair dedup, FirstPerPassage, near dedup, BestPerPassage, outputs.

Both sides import cmtp from a copy of the package folders taken at the start (benchmarks/trees.py): the working
tree as it is then, or commit REV with --rev; an edit made during the run reaches neither side, and each child checks
that every `cmtp.*` module it imported came from that copy.

Each size runs its two sides `--repeats` times, interleaved (beam, loop, loop, beam, ...), each run a child
process. The child imports everything first (Beam, the cli, the pipeline, the transforms), then measures around
the work only: `time.process_time()` (the CPU of every thread of the process: FnApiRunner runs its worker in
threads of the same process) and wall time; and at exit the peak RSS (VmHWM from /proc/self/status).
  beam  `cmtp.pipelines.cli.main(["run", CONFIG, "--out", OUT, "--overwrite"])`, what the `cmtp` script runs.
  loop  `loop_run(CONFIG, OUT)`: the same stage functions, called in plain Python over lists, one stage after
        another in the order `cmtp.pipelines.unlabeled.cleaning()` gives; with the garbage collector set as
        `cmtp run` sets it on the local runner (pipelines/collector.py), so the sides differ in Beam alone.
"The same stage functions" means the pipeline's own DoFns and helpers, called directly: `_ReadFile.process`,
`_Extract.process`, `_Normalize.process`, `_Mask.process`, `_ApplyRules.process` with `general_rules`, `_KeepOne`
over groups keyed by `content_key`, `_First`, near dedup's `MinHasher`, `_candidates` and `estimated_jaccard` (with
a union-find in place of the large-star/small-star rounds, which a loop does not need), `_Choose`, and the
survivor settling's `_fate`, `_first` and `_settle`. What the loop leaves out is Beam's share: coders, shuffles
(GroupByKey / CoGroupByKey become dicts), bundles, fused stages and the ledger counts per stage; the loop writes
one Parquet file each for the kept pairs and the rejects and a small report.json (totals and the balance).

Printed per size: the median CPU of each side and their ratio beam/loop, the median wall, the peak RSS of each and
its growth per input pair between sizes (KB/pair), whether the two sides wrote the same output (the kept ids, and
the rejects' (id, stage, reason, survivor), read back from the Parquet), and the loop's CPU per stage and per
step of its near dedup (where a loop would spend its time: what Beam's share is measured against).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter, defaultdict
from contextlib import contextmanager, nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import generate, write_config  # noqa: E402

from trees import FOLDERS, REPO, foreign_modules, old_tree, package_root, working_tree  # noqa: E402

SIDES = ("beam", "loop")
MAIN = "main"  # run_dofn's tag for a DoFn's main output


# ---------------------------------------------------------------- the loop side

def run_dofn(dofn, elements) -> dict[str, list]:
    """A DoFn's outputs over `elements`, by tag (MAIN for the main output), as a one-bundle runner would call it."""
    import apache_beam as beam
    from apache_beam.utils.windowed_value import WindowedValue

    out: dict[str, list] = defaultdict(list)

    def collect(outputs) -> None:
        for output in outputs or ():
            tag, value = (output.tag, output.value) if isinstance(output, beam.pvalue.TaggedOutput) else (MAIN, output)
            out[tag].append(value.value if isinstance(value, WindowedValue) else value)  # finish_bundle's are windowed

    dofn.setup()
    dofn.start_bundle()
    for element in elements:
        collect(dofn.process(element))
    collect(dofn.finish_bundle())
    dofn.teardown()
    return out


def grouped(rows, key) -> dict:
    """GroupByKey as a dict: key(row) -> the rows with that key, in input order."""
    groups: dict = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    return groups


def loop_near_dedup(pairs: list, near_settings, order, times: dict | None = None) -> tuple[list, list]:
    """NearDedup over a list: (kept pairs, near_duplicate rejects). Signatures by the transform's MinHasher (all
    texts in one call: it sketches them in chunks), LSH buckets as the transform finds them (every pair's band
    entries as uint32 rows (band, source code or 0, the band's values) in one array, sorted, equal rows one bucket),
    candidates by its `_candidates`, verified by `estimated_jaccard`; components by union-find over the ranks (a
    component's label is its smallest rank); then `_Decide`'s rule: a pair whose component's smallest node is
    another pair is rejected, naming it. The CPU of each step is added to `times` if given."""
    from cmtp.transforms.near_dedup import WINDOW, MinHasher, _candidates, estimated_jaccard, scoped_text
    from cmtp.transforms.survivor import PAIR_ID

    s = near_settings
    hasher = MinHasher(s.ngram, s.num_perm, s.threshold, s.seed, s.unit, s.fold_traditional)
    times = {} if times is None else times
    with timed(times, "signatures"):
        matrix = hasher.signatures([scoped_text(pair, s.scope) for pair in pairs])
        signatures = dict(zip((pair.id for pair in pairs), matrix))
    with timed(times, "band entries"):
        buckets, owner = _buckets(matrix, [pair.source for pair in pairs], hasher.bands, hasher.rows, s.within_source)
        ranks = [order.rank(pair) for pair in pairs]
    with timed(times, "candidates"):
        candidates = {edge for members in buckets for _, edge in
                      _candidates((None, [ranks[i] for i in owner[members].tolist()]), WINDOW)}

    parent: dict = {}

    def find(node):
        root = node
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[node] != root:  # path compression
            parent[node], node = root, parent[node]
        return root

    with timed(times, "verify + components"):
        for worse, better in candidates:
            if estimated_jaccard(signatures[worse[PAIR_ID]], signatures[better[PAIR_ID]]) >= hasher.threshold:
                a, b = find(worse), find(better)
                if a != b:
                    parent[max(a, b)] = min(a, b)  # the root is the component's smallest rank
    with timed(times, "decide"):
        return _decide(pairs, order, lambda rank: find(rank) if rank in parent else rank)


def _buckets(matrix, sources: list[str], bands: int, rows: int, within_source: bool) -> tuple[list, object]:
    """The LSH buckets of 2+ members, each as the indices of its entries, and each entry's pair (its row in
    `matrix`): equal (band, source code or 0, band values) rows of the sorted entries are one bucket."""
    import numpy as np

    count = len(matrix)
    entries = np.empty((count, bands, rows + 2), dtype=np.uint32)
    entries[:, :, 0] = np.arange(bands, dtype=np.uint32)
    codes = [zlib.crc32(source.encode("utf-8")) if within_source else 0 for source in sources]
    entries[:, :, 1] = np.array(codes, dtype=np.uint32)[:, None]
    entries[:, :, 2:] = matrix[:, :bands * rows].reshape(count, bands, rows)
    entries = entries.reshape(count * bands, rows + 2)
    owner = np.repeat(np.arange(count), bands)
    order = np.lexsort(entries.T[::-1])
    ordered = entries[order]
    new = np.ones(len(order) + 1, dtype=bool)
    new[1:-1] = np.any(ordered[1:] != ordered[:-1], axis=1)
    bounds = np.flatnonzero(new).tolist()
    return [order[start:end] for start, end in zip(bounds, bounds[1:]) if end - start > 1], owner


def _decide(pairs: list, order, label_of) -> tuple[list, list]:
    """`_Decide` over a list: a pair whose label (its component's smallest rank) is another pair's is rejected."""
    from cmtp.schemas import Reject
    from cmtp.transforms.survivor import PAIR_ID

    kept, rejects = [], []
    for pair in pairs:
        label = label_of(order.rank(pair))
        if label[PAIR_ID] == pair.id:
            kept.append(pair)
            continue
        rejects.append(Reject(
            id=pair.id, source=pair.source, stage="dedup", reason="near_duplicate",
            detail=f"near duplicate of {label[PAIR_ID]}", file=pair.file, position=pair.position,
            kind=pair.kind, query=pair.query, passage=pair.passage, survivor=label[PAIR_ID]))
    return kept, rejects


def _mask_pii(rows, _reads, loaded, _order) -> dict[str, list]:
    from cmtp.transforms.filters.pii import _Mask

    return run_dofn(_Mask(tuple(loaded.config.filters.pii.types)), rows)


def _general_filter(rows, _reads, loaded, _order) -> dict[str, list]:
    from cmtp.pipelines.rules import general_rules
    from cmtp.transforms.filters.base import _ApplyRules

    return run_dofn(_ApplyRules(general_rules(loaded), {}), rows)


def _exact_pair(rows, _reads, loaded, order) -> dict[str, list]:
    from cmtp.transforms.exact_dedup import _KeepOne, content_key

    within = loaded.config.dedup.exact.within_source
    groups = grouped(rows, lambda pair: content_key(pair, "pair", within))
    return run_dofn(_KeepOne(order, "exact_duplicate"), groups.items())


def _first_per_passage(rows, _reads, loaded, order) -> dict[str, list]:
    from cmtp.transforms.best_per_passage import _First
    from cmtp.transforms.exact_dedup import content_key

    within = loaded.config.dedup.exact.within_source
    return run_dofn(_First(order), grouped(rows, lambda pair: content_key(pair, "passage", within)).items())


NEAR_STEPS: dict[str, float] = {}  # the CPU of loop_near_dedup's steps in this process


def _near(rows, _reads, loaded, order) -> dict[str, list]:
    kept, rejects = loop_near_dedup(rows, loaded.config.dedup.near, order, NEAR_STEPS)
    return {MAIN: kept, "rejects": rejects}


def _best_per_passage(rows, reads, loaded, order) -> dict[str, list]:
    """BestPerPassage.expand's CoGroupByKey as two dicts by passage key: the pairs, and the near-dedup rejects of
    FirstPerPassage's pairs (`reads`) as (id, file, position)."""
    from cmtp.transforms.best_per_passage import _Choose
    from cmtp.transforms.exact_dedup import content_key

    within = loaded.config.dedup.exact.within_source
    pairs = grouped(rows, lambda pair: content_key(pair, "passage", within))
    set_aside = defaultdict(list)
    for reject in reads or ():
        set_aside[content_key(reject, "passage", within)].append((reject.id, reject.file, reject.position))
    keys = list(pairs) + [key for key in set_aside if key not in pairs]
    return run_dofn(_Choose(order), ((key, {"pairs": pairs.get(key, []), "set_aside": set_aside.get(key, [])})
                                     for key in keys))


# the pipeline's stage labels (cmtp.pipelines.unlabeled.cleaning) -> the loop's version of each:
# (rows, the rejects of the stage it reads or None, loaded, order) -> outputs by tag
LOOP_STAGES = {"MaskPII": _mask_pii, "GeneralFilter": _general_filter, "ExactDedup pair": _exact_pair,
               "FirstPerPassage": _first_per_passage, "NearDedup": _near, "BestPerPassage": _best_per_passage}


def settle(late: list, hops: int, stats: Counter) -> list:
    """SettleSurvivors over a list: each dedup reject follows its survivor's trail through the dicts of fates, at
    most `hops` steps; the other late rejects pass as they are."""
    from cmtp.transforms.survivor_state import DROPPED, _fate, _first, _settle

    dedup = [r for r in late if r.stage == "dedup"]
    settled = [r for r in late if r.stage != "dedup"]
    fates = grouped((_fate(r) for r in settled + [r for r in dedup if r.survivor != r.id]), lambda item: item[0])
    fate_of = {pointer: _first(reject for _, reject in items) for pointer, items in fates.items()}
    trails = [(r.survivor, (r,)) for r in dedup]
    for _ in range(hops):
        following = []
        for pointer, trail in trails:
            fate = fate_of.get(pointer)
            if fate is not None and fate.stage == "dedup":
                following.append((fate.survivor, (*trail, fate)))
                continue
            settled.append(_settle(trail, pointer, fate))
            stats[("", DROPPED)] += int(fate is not None)
        trails = following
    if trails:
        raise RuntimeError(f"{len(trails)} survivor trails longer than {hops} hops")
    return settled


@contextmanager
def timed(times: dict[str, float], name: str):
    """Add the CPU seconds of the block to times[name]."""
    start = time.process_time()
    try:
        yield
    finally:
        times[name] = times.get(name, 0.0) + time.process_time() - start


def add_stats(stats: Counter, events) -> None:
    for (name, source, _, _), n in events:
        stats[(source, name)] += n


def read_and_extract(loaded, sources: dict, times: dict, stats: Counter) -> tuple[list, list, list]:
    """(records, pairs, rejects) of every source's files, by `_ReadFile` and `_Extract`."""
    from cmtp.transforms.extract import _Extract
    from cmtp.transforms.read import _ReadFile

    records, rejects = [], []
    with timed(times, "read"):
        for name, source in sources.items():
            read = run_dofn(_ReadFile(source), loaded.files[name])
            records += read[MAIN]
            rejects += read["rejects"]
            add_stats(stats, read["stats"])
    with timed(times, "extract"):
        extracted = run_dofn(_Extract(sources), records)
        add_stats(stats, extracted["stats"])
    return records, extracted[MAIN], rejects + extracted["rejects"]


def loop_clean(pairs: list, stages: list, loaded, order, times: dict, stats: Counter) -> tuple[list, list]:
    """`cmtp.transforms.stage.clean` over lists: (kept pairs, the cleaning rejects, dedup ones settled)."""
    rows, rejects, late, rejects_of, waiting, hops = pairs, [], [], {}, {}, 0
    for stage in stages:
        if stage.label not in LOOP_STAGES:
            raise NotImplementedError(f"the loop has no version of stage {stage.label}")
        with timed(times, stage.label):
            out = LOOP_STAGES[stage.label](rows, rejects_of.get(stage.reads), loaded, order)
        rows, rejects_of[stage.label] = out[MAIN], out["rejects"]
        hops += stage.dedup_steps
        (late if hops else rejects).extend(out["rejects"])
        add_stats(stats, out.get("stats", ()))
        if stage.aside_until:
            waiting.setdefault(stage.aside_until, []).extend(out.get("aside", ()))
        if stage.label in waiting:  # the rows set aside rejoin after the stage they waited for
            rows = rows + waiting.pop(stage.label)
    with timed(times, "SettleSurvivors"):
        rejects += settle(late, hops, stats)
    return rows, rejects


def write_parquet(rows: list, schema, directory: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory.mkdir(parents=True)
    table = pa.Table.from_pylist([row._asdict() for row in rows], schema=schema)
    pq.write_table(table, directory / "part-00000-of-00001.parquet", compression="zstd")


def loop_report(records: list, pairs: list, kept: list, rejects: list, stats: Counter) -> dict:
    """Totals and the balance: records read == read rejects + records parsed, and pairs extracted == kept + the
    rejects of cleaning stages."""
    dropped: dict[str, Counter] = defaultdict(Counter)
    for reject in rejects:
        dropped[reject.stage][reject.reason] += 1
    records_read = sum(n for (_, name), n in stats.items() if name == "records_read")
    read_rejects = sum(dropped["read"].values())
    cleaning = sum(sum(reasons.values()) for stage, reasons in dropped.items()
                   if stage not in ("read", "extract", "generate"))
    totals = {"records_read": records_read, "read_rejects": read_rejects, "records_parsed": len(records),
              "extract_rejects": sum(dropped["extract"].values()) + sum(dropped["generate"].values()),
              "pairs_made": sum(n for (_, name), n in stats.items() if name == "pairs_made"),
              "pairs_extracted": len(pairs), "pairs_dropped": cleaning, "pairs_kept": len(kept)}
    balanced = (records_read == read_rejects + len(records) and len(pairs) == totals["pairs_made"]
                and len(pairs) == len(kept) + cleaning)
    return {"pipeline": "unlabeled (loop)", "totals": totals, "balanced": balanced,
            "dropped": {stage: dict(sorted(reasons.items())) for stage, reasons in sorted(dropped.items()) if reasons}}


def loop_run(config_path: str, out_dir: str) -> dict:
    """The unlabeled pipeline as a plain loop over lists (see the docstring); writes Parquet and report.json under
    out_dir and returns the CPU seconds of each stage."""
    from cmtp.pipelines.config import load_config
    from cmtp.pipelines.unlabeled import cleaning
    from cmtp.schemas import PAIR_SCHEMA, REJECT_SCHEMA
    from cmtp.transforms.normalize import _Normalize
    from cmtp.transforms.survivor import SurvivorOrder

    times: dict[str, float] = {}
    stats: Counter = Counter()
    loaded = load_config(config_path)
    config = loaded.config
    sources = {source.name: source.build() for source in config.sources}
    if any("similar_question" in source.enabled for source in sources.values()):
        raise NotImplementedError("the loop has no DeriveSimilarQuestions")
    order = SurvivorOrder(config.priorities, config.dedup.survivor.quality)
    records, pairs, rejects = read_and_extract(loaded, sources, times, stats)
    with timed(times, "normalize"):
        normalize = config.normalize.build()
        pairs = run_dofn(_Normalize(normalize._t2s, normalize._nfkc), pairs)[MAIN]
    kept, cleaning_rejects = loop_clean(pairs, cleaning(loaded, order), loaded, order, times, stats)
    rejects += cleaning_rejects
    out = Path(out_dir)
    shutil.rmtree(out, ignore_errors=True)
    with timed(times, "write"):
        write_parquet(kept, PAIR_SCHEMA, out / "data")
        write_parquet(rejects, REJECT_SCHEMA, out / "rejects")
        report = loop_report(records, pairs, kept, rejects, stats)
        (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    return {"stage_cpu_s": times, "near_dedup_cpu_s": NEAR_STEPS, "report": report}


# ---------------------------------------------------------------- child

def import_everything() -> None:
    """Every module either side runs, so that neither side's measurement pays for imports."""
    import apache_beam  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    from apache_beam.runners.portability import fn_api_runner  # noqa: F401

    import cmtp.pipelines.cli  # noqa: F401
    import cmtp.pipelines.unlabeled  # noqa: F401
    import cmtp.transforms.best_per_passage  # noqa: F401
    import cmtp.transforms.exact_dedup  # noqa: F401
    import cmtp.transforms.extract  # noqa: F401
    import cmtp.transforms.filters.pii  # noqa: F401
    import cmtp.transforms.near_dedup  # noqa: F401
    import cmtp.transforms.normalize  # noqa: F401
    import cmtp.transforms.read  # noqa: F401
    import cmtp.transforms.survivor_state  # noqa: F401


def _status_mib(key: str) -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    return float("nan")


def loop_collector():
    """The garbage collector's settings `cmtp run` uses on the local runner (pipelines/collector.py), for the loop
    too, so that the two sides differ in Beam alone; nothing for a tree (--rev) from before they existed."""
    import importlib.util

    spec = importlib.util.find_spec("cmtp.pipelines.collector")  # an old tree's own, not the editable install's
    if spec is None or not Path(spec.origin).resolve().is_relative_to(package_root()):
        return nullcontext()
    from cmtp.pipelines.collector import batch_collector

    return batch_collector()


def child(side: str, config_path: str, out_dir: str) -> None:
    import_everything()
    rss_start = _status_mib("VmRSS:")
    cpu, wall = time.process_time(), time.perf_counter()
    if side == "beam":
        from cmtp.pipelines.cli import main

        code, extra = main(["run", config_path, "--out", out_dir, "--overwrite"]), {}
    else:
        with loop_collector():
            code, extra = 0, loop_run(config_path, out_dir)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    peak = _status_mib("VmHWM:")
    if side == "beam" and code == 0:  # its totals, to set beside the loop's in the --json file
        report = json.loads((Path(out_dir) / "report.json").read_text("utf-8"))
        extra["report"] = {key: report[key] for key in ("totals", "balanced", "dropped")}
    root = package_root()
    result = {"side": side, "code": code, "cpu_s": cpu, "wall_s": wall, "rss_after_imports_mib": rss_start,
              "peak_rss_mib": peak, "cmtp_root": str(root), "foreign_modules": foreign_modules(root), **extra}
    print("RESULT " + json.dumps(result, ensure_ascii=False), flush=True)


# ---------------------------------------------------------------- parent

def measure(side: str, config: Path, out_dir: Path, timeout: float, tree: tuple[Path, dict]) -> dict:
    """One child run of `side`, importing cmtp from `tree` (its folder, and the environment that imports it from
    there); its RESULT line, or an error."""
    root, env = tree
    proc = subprocess.run([sys.executable, __file__, "--child", side, str(config), str(out_dir)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"side": side, "error": f"exit {proc.returncode}: {proc.stderr[-1500:]}"}
    result = json.loads(lines[-1][len("RESULT "):])
    if result["code"] != 0:
        return {"side": side, "error": f"cmtp run returned {result['code']}: {proc.stderr[-1500:]}"}
    if Path(result["cmtp_root"]) != root.resolve() or result["foreign_modules"]:
        return {"side": side, "error": f"imported cmtp from {result['cmtp_root']}, not {root}; modules from "
                f"elsewhere: {', '.join(result['foreign_modules']) or 'none'}"}
    return result


def read_output(out_dir: Path) -> tuple[Counter, Counter]:
    """(kept pair ids, rejects' (id, stage, reason, survivor)) of a run's Parquet, as multisets."""
    import pyarrow.parquet as pq

    def rows(folder: str, columns: list[str]):
        for path in sorted((out_dir / folder).glob("*.parquet")):
            yield from zip(*(column.to_pylist() for column in pq.read_table(path, columns=columns).columns))

    kept = Counter(row[0] for row in rows("data", ["id"]))
    rejects = Counter(rows("rejects", ["id", "stage", "reason", "survivor"]))
    return kept, rejects


def compare(beam_dir: Path, loop_dir: Path) -> dict:
    """Whether both sides wrote the same kept ids and rejects; counts and 3 examples of each difference."""
    (beam_kept, beam_rejects), (loop_kept, loop_rejects) = read_output(beam_dir), read_output(loop_dir)
    differences = {}
    for what, beam, loop in (("kept", beam_kept, loop_kept), ("rejects", beam_rejects, loop_rejects)):
        for name, extra in ((f"{what} only in beam", beam - loop), (f"{what} only in loop", loop - beam)):
            if extra:
                differences[name] = {"count": sum(extra.values()), "examples": [list(k) if isinstance(k, tuple)
                                                                                 else k for k in list(extra)[:3]]}
    return {"same": not differences, "kept": sum(beam_kept.values()), "rejects": sum(beam_rejects.values()),
            "differences": differences}


def run_size(n: int, files: list[Path], work: Path, repeats: int, timeout: float, tree: tuple[Path, dict],
             log) -> dict:
    """Both sides `repeats` times, interleaved (beam, loop, loop, beam, ...); the outputs of the last runs
    compared."""
    config = write_config(work / f"config-{n}.yaml", files, "near")
    outs = {side: work / f"out-{n}-{side}" for side in SIDES}
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    for rep in range(repeats):
        for side in SIDES if rep % 2 == 0 else SIDES[::-1]:
            result = measure(side, config, outs[side], timeout, tree)
            runs[side].append(result)
            log(f"  {n:,} {side} rep {rep + 1}: " + (_last_line(result["error"]) if "error" in result else
                f"cpu {result['cpu_s']:.1f} s, wall {result['wall_s']:.1f} s, peak RSS {result['peak_rss_mib']:.0f} MiB"))
    same = (compare(outs["beam"], outs["loop"]) if all("error" not in r[-1] for r in runs.values())
            else {"same": False, "differences": {"error": "a side failed"}})
    for out in outs.values():
        shutil.rmtree(out, ignore_errors=True)
    return {"runs": runs, "output": same}


def _last_line(error: str) -> str:
    """An error's last line (a traceback's exception), for a log line or a table cell."""
    return error.strip().splitlines()[-1][:160] if error.strip() else error


def summarize(n: int, result: dict) -> dict:
    row: dict = {"pairs": n, "output": result["output"]}
    for side, runs in result["runs"].items():
        good = [r for r in runs if "error" not in r]
        if not good:
            row[side] = {"error": runs[0]["error"]}
            continue
        row[side] = {key: statistics.median(r[key] for r in good) for key in ("cpu_s", "wall_s", "peak_rss_mib")}
        if side == "loop":
            for key in ("stage_cpu_s", "near_dedup_cpu_s"):
                row[side][key] = {step: statistics.median(r[key][step] for r in good) for step in good[0][key]}
    return row


def render(rows: list[dict]) -> str:
    out = ["| pairs | CPU beam | CPU loop | beam/loop | wall beam | wall loop | peak RSS beam | peak RSS loop | "
           "RSS growth beam | RSS growth loop | same output |", "|---:" * 10 + "|---|"]
    previous = None
    for row in rows:
        beam, loop = row["beam"], row["loop"]
        if "error" in beam or "error" in loop:
            out.append(f"| {row['pairs']:,} | failed: {_last_line(beam.get('error') or loop['error'])} |" + " |" * 9)
            continue

        def growth(side: str) -> str:
            if previous is None:
                return ""
            per_pair = (row[side]["peak_rss_mib"] - previous[side]["peak_rss_mib"]) * 1024 / (row["pairs"]
                                                                                              - previous["pairs"])
            return f"{per_pair:.1f} KB/pair"

        same = "yes" if row["output"]["same"] else "NO"
        out.append(f"| {row['pairs']:,} | {beam['cpu_s']:.1f} s | {loop['cpu_s']:.1f} s | "
                   f"{beam['cpu_s'] / loop['cpu_s']:.2f}x | {beam['wall_s']:.1f} s | {loop['wall_s']:.1f} s | "
                   f"{beam['peak_rss_mib']:,.0f} MiB | {loop['peak_rss_mib']:,.0f} MiB | {growth('beam')} | "
                   f"{growth('loop')} | {same} |")
        previous = row
    for row in rows:
        output = row["output"]
        out.append(f"\n{row['pairs']:,} pairs: same output: " + (
            f"yes ({output['kept']:,} kept, {output['rejects']:,} rejects)" if output["same"] else "no"))
        for name, diff in output["differences"].items():
            out.append(f"  {name}: {diff}")
        if "stage_cpu_s" in row.get("loop", {}):
            stages = row["loop"]["stage_cpu_s"]
            total = row["loop"]["cpu_s"]
            out.append("  loop CPU by stage: " + ", ".join(
                f"{stage} {seconds:.2f} s ({seconds / total:.0%})" for stage, seconds in stages.items()))
            out.append("  loop NearDedup by step: " + ", ".join(
                f"{step} {seconds:.2f} s" for step, seconds in row["loop"]["near_dedup_cpu_s"].items()))
    return "\n".join(out)


def _working_tree_state() -> str:
    """'the working tree at COMMIT', with the package folders that have uncommitted edits."""
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    status = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", *FOLDERS], capture_output=True,
                            text=True)
    dirty = [line[3:] for line in status.stdout.splitlines()]
    return f"the working tree at {head.stdout.strip()}" + (f", uncommitted edits to {', '.join(dirty)}" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--files", type=int, default=8, help="input files per size")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before a child is killed")
    parser.add_argument("--rev", help="run the package at this commit (default: the working tree, copied at the start "
                        "so that edits made during the run reach neither side)")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--child", nargs=3, metavar=("SIDE", "CONFIG", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    work = Path(tempfile.mkdtemp(prefix="cmtp-bench-overhead-"))
    rows, raw = [], {}
    try:
        (work / "tree").mkdir()
        tree = (work / "tree", old_tree(args.rev, work / "tree") if args.rev else working_tree(work / "tree"))
        state = args.rev or _working_tree_state()
        log(f"cmtp from {state}")
        for n in (int(size) for size in args.sizes.split(",")):
            data_dir = work / f"input-{n}"
            mix = generate(n, data_dir, args.files)
            log(f"{n:,}: input written, mix {mix['kinds']}")
            raw[n] = run_size(n, sorted(data_dir.iterdir()), work, args.repeats, args.timeout, tree, log)
            rows.append(summarize(n, raw[n]))
            shutil.rmtree(data_dir, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"cmtp from {state}. CPU (process_time of the child, all threads) and wall around the work only; "
          f"medians of {args.repeats}:\n")
    print(render(rows))
    if args.json:
        saved = {"tree": state, "summary": rows, "raw": {str(k): v for k, v in raw.items()}}
        Path(args.json).write_text(json.dumps(saved, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
