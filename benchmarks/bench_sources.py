"""Read + extract throughput per source on one core, against the plainest parse of the same file.

    python benchmarks/bench_sources.py [--size-mb 50] [--only wudao,csl] [--repeats 3]

For each source a file of at least --size-mb is made in a temporary folder by repeating real records
(../shared/data where it has the source, else the embedded sample) in the source's native layout.
Ours: the source's reader (encoding sniffing, layout handling, located errors) plus its extractor,
record by record, as the pipeline's DoFns run them but without Beam. Baseline, measured in the same
run on the same file: `json.loads` per line for JSON lines; `json.load` of the whole file for a JSON
document or array; `str.split("\\t")` per line for tsv; `csv.reader` for csv; pyarrow's `to_pylist`
for Parquet. Medians of the repeats.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

from cmtp.transforms.io import open_binary
from cmtp.transforms.sources import REGISTRY, ExtractError, SourceRecord
from cmtp.transforms.sources.layouts import Parsed

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
SAMPLE = REPO / "data" / "sample"

# source -> (seed file, layout): where the records to repeat come from
SEEDS = {
    "wudao": (SHARED / "wudao" / "jinrong_data.json", "json_array"),
    "cmrc2018": (SHARED / "cmrc2018" / "squad-style" / "cmrc2018_trial.json", "squad"),
    "csl": (SHARED / "csl" / "ts_dev.tsv", "tsv"),
    "dureader": (SHARED / "dureader" / "search.dev.json", "jsonl"),
    "zhidao": (SHARED / "zhidao" / "financezhidao_filter.csv", "csv"),
    "zhihu": (SAMPLE / "zhihu" / "web_text_zh_sample.json", "jsonl"),
    "baike": (SAMPLE / "baike" / "baike_qa_sample.json", "jsonl"),
    "news": (SAMPLE / "news" / "news2016zh_sample.json.gz", "jsonl"),
    "xlsum": (SAMPLE / "xlsum" / "chinese_simplified_sample.jsonl.zst", "jsonl"),
    "amazon_reviews": (SAMPLE / "amazon" / "amazon_reviews_zh_sample.json", "jsonl"),
    "wiki_atomic_edits": (SAMPLE / "wiki_atomic_edits" / "chinese_insertions_sample.tsv", "tsv_header"),
}


def _text(path: Path) -> str:
    with open_binary(str(path)) as stream:
        return stream.read().decode("utf-8")


def make_file(source: str, folder: Path, size_mb: int) -> tuple[Path, str]:
    seed, layout = SEEDS[source]
    target = size_mb << 20
    if layout == "json_array":
        records = json.loads(_text(seed))["RECORDS"]
        unit = len(json.dumps(records, ensure_ascii=False).encode("utf-8"))
        body = json.dumps({"RECORDS": records * (target // unit + 1)}, ensure_ascii=False, indent=4)
        path = folder / f"{source}.json"
    elif layout == "squad":
        document = json.loads(_text(seed))
        unit = len(json.dumps(document, ensure_ascii=False).encode("utf-8"))
        document["data"] = document["data"] * (target // unit + 1)
        body, path = json.dumps(document, ensure_ascii=False), folder / f"{source}.json"
    else:
        lines = _text(seed).splitlines(keepends=True)
        header, lines = (lines[:1], lines[1:]) if layout in ("csv", "tsv_header") else ([], lines)
        lines = [line if line.endswith("\n") else line + "\n" for line in lines]
        if layout == "jsonl":  # keep only lines that parse, so the baseline can run
            lines = [line for line in lines if _parses(line)]
        unit = len("".join(lines).encode("utf-8"))
        body = "".join(header + lines * (target // unit + 1))
        suffix = {"csv": ".csv", "tsv": ".tsv", "tsv_header": ".tsv"}.get(layout, ".json")
        path = folder / f"{source}{suffix}"
    path.write_text(body, encoding="utf-8")
    return path, layout


def _parses(line: str) -> bool:
    try:
        json.loads(line)
        return True
    except json.JSONDecodeError:
        return False


def baseline(path: Path, layout: str) -> int:
    if layout in ("json_array", "squad"):
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        if layout == "json_array":
            return len(document["RECORDS"])
        return sum(len(p["qas"]) for a in document["data"] for p in a["paragraphs"])
    with open(path, encoding="utf-8", newline="") as handle:
        if layout == "jsonl":
            return sum(1 for line in handle if json.loads(line) is not None)
        if layout == "csv":
            return sum(1 for _ in csv.reader(handle)) - 1
        rows = sum(1 for line in handle if line.rstrip("\n").split("\t"))
        return rows - (layout == "tsv_header")


def ours(source_name: str, path: Path) -> int:
    source = REGISTRY[source_name]()
    records = 0
    with open_binary(str(path)) as stream:
        for item in source.parse(str(path), stream):
            records += 1
            if isinstance(item, Parsed):
                try:
                    source.extract_enabled(SourceRecord(source_name, str(path), item.position, item.value))
                except ExtractError:
                    pass
    return records


def median_time(fn: Callable[[], int], repeats: int) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        count = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=",".join(SEEDS))
    args = parser.parse_args()
    print(f"{'source':18} {'MB':>5} {'records':>9} {'baseline rec/s':>15} {'ours rec/s':>11} {'ours/baseline':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        for source in args.only.split(","):
            path, layout = make_file(source, Path(tmp), args.size_mb)
            size = path.stat().st_size / 2**20
            base_s, base_n = median_time(lambda: baseline(path, layout), args.repeats)
            ours_s, ours_n = median_time(lambda: ours(source, path), args.repeats)
            assert base_n == ours_n, (source, base_n, ours_n)
            print(f"{source:18} {size:5.0f} {ours_n:9d} {base_n / base_s:15,.0f} {ours_n / ours_s:11,.0f} "
                  f"{base_s / ours_s:14.2f}", flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
