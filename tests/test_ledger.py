"""The ledger proves the written data: one row per id, as many rows in the shards as the report says were kept and
rejected, and no dedup reject naming a survivor that was itself dropped without saying so."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
import pytest

from beam_helpers import run_transform
from cmtp.pipelines.cli import main
from cmtp.schemas import PAIR_SCHEMA, Pair, Reject, pair_id
from cmtp.transforms.filters import GeneralFilter
from cmtp.transforms.filters.length import LengthRule
from cmtp.transforms.parquet_shards import WriteParquetShards
from cmtp.transforms.report import assemble
from cmtp.transforms.stage import Stage, Staged, clean, stage_order
from cmtp.transforms.survivor_state import SettleSurvivors
from cmtp.transforms.written_rows import CountWrittenRows
from conftest import REPO, write_config

QUESTION = "高血压患者饮食上要注意什么"
PARAGRAPH = "饮食上首先要限制食盐，每天摄入量最好控制在五克以内，少吃咸菜、腊肉等腌制食品，多吃新鲜蔬菜水果。"
OTHER_QUESTION = "诗仙指的是哪位诗人"
OTHER_PARAGRAPH = "李白字太白，号青莲居士，是唐代浪漫主义诗人，诗风豪放飘逸，被后人誉为诗仙，代表作有将进酒、蜀道难等。"
NO_DEDUP = "dedup:\n  exact: {pair: false, passage: false}\n  near: {enabled: false}\n"


def dureader_file(folder: Path) -> Path:
    """DuReader 2.0 JSON lines: line 1's two selected documents hold one most-related paragraph; line 2 is plain."""
    def document(paragraphs: list[str], related: int) -> dict:
        return {"title": "-", "paragraphs": paragraphs, "is_selected": True, "most_related_para": related}

    records = [
        {"question_id": 1, "question": QUESTION,
         "documents": [document([PARAGRAPH], 0), document(["高血压是常见的慢性病，需要长期管理。", PARAGRAPH], 1)]},
        {"question_id": 2, "question": OTHER_QUESTION, "documents": [document([OTHER_PARAGRAPH], 0)]},
    ]
    path = folder / "search.train.json"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def read_rows(directory: Path) -> list[dict]:
    return [row for shard in sorted(directory.glob("part-*.parquet")) for row in pq.read_table(shard).to_pylist()]


def run(config: Path, out: Path) -> tuple[int, dict]:
    code = main(["run", str(config), "--out", str(out)])
    return code, json.loads((out / "report.json").read_text("utf-8"))


def test_two_selected_documents_with_one_paragraph_give_one_row(tmp_path):
    config = write_config(tmp_path / "run.yaml", {"dureader": [dureader_file(tmp_path)]}, threshold=-1.0)
    code, report = run(config, tmp_path / "out")
    assert code == 0 and report["balanced"], report["checks"]
    kept, rejects = read_rows(tmp_path / "out" / "data"), read_rows(tmp_path / "out" / "rejects")
    assert Counter(row["query"] for row in kept) == {QUESTION: 1, OTHER_QUESTION: 1}
    (copy,) = rejects
    survivor = pair_id("dureader", "question_passage", QUESTION, PARAGRAPH)
    assert (copy["stage"], copy["reason"], copy["id"], copy["survivor"]) == ("dedup", "exact_duplicate", survivor,
                                                                              survivor)
    assert copy["detail"].startswith(f"another copy of {survivor} from the same record")
    assert report["counters"]["repeated_ids"] == 0
    assert report["counters"]["rows_written"] == report["totals"]["pairs_kept"] == 2
    assert report["counters"]["reject_rows_written"] == 1


def test_with_pair_dedup_off_copies_keep_their_shared_id_and_the_report_counts_them(tmp_path):
    """An id is a hash of the pair's content, so copies share it; with exact pair dedup off the user asked to keep
    copies: the report counts the repeated ids, and promises unique ids only when pair dedup is on."""
    config = write_config(tmp_path / "run.yaml", {"dureader": [dureader_file(tmp_path)]}, threshold=-1.0,
                          extra=NO_DEDUP)
    code, report = run(config, tmp_path / "out")
    assert len(read_rows(tmp_path / "out" / "data")) == report["totals"]["pairs_kept"] == 3
    assert report["counters"]["repeated_ids"] == 1
    assert "no id repeated in the written data" not in report["checks"]
    assert report["balanced"] and code == 0


def test_labeled_dureader_record_with_one_paragraph_twice_gives_one_positive(tmp_path):
    rows = dureader_file(tmp_path)
    config = tmp_path / "labeled.yaml"
    config.write_text("pipeline: labeled\nsources:\n  - name: dureader_retrieval\n"
                      f"    paths: {{rows: [{json.dumps(str(rows))}]}}\nnegatives: {{enabled: false}}\n", "utf-8")
    code, report = run(config, tmp_path / "out")
    assert code == 0 and report["balanced"], report["checks"]
    records = read_rows(tmp_path / "out" / "data")
    assert sorted((r["query"], len(r["pos"])) for r in records) == [(OTHER_QUESTION, 1), (QUESTION, 1)]
    (copy,) = read_rows(tmp_path / "out" / "rejects")
    assert (copy["stage"], copy["reason"]) == ("dedup", "exact_duplicate")
    counters = report["counters"]
    assert (counters["repeated_ids"], counters["rows_written"], counters["reject_rows_written"]) == (0, 2, 1)


class _WriteAndCount(beam.PTransform):
    def __init__(self, directory: str):
        super().__init__()
        self._directory = directory

    def expand(self, pairs):
        written = pairs | WriteParquetShards(self._directory, PAIR_SCHEMA, num_shards=3)
        return {"count": written | CountWrittenRows("rows_written")}


def test_written_rows_are_read_back_from_every_shard(tmp_path):
    pairs = [Pair(pair_id("csl", "title_abstract", f"标题{i}", OTHER_PARAGRAPH), f"标题{i}", OTHER_PARAGRAPH, "csl",
                  "title_abstract", "f.tsv", f"line {i}") for i in range(300)]
    (count,) = run_transform(_WriteAndCount(str(tmp_path / "data")), pairs, outputs=("count",))["count"]
    shards = sorted((tmp_path / "data").glob("part-*.parquet"))
    assert len(shards) > 1
    assert count == (("rows_written", "", "", ""), 300) and sum(pq.read_metadata(s).num_rows for s in shards) == 300


class _LosesLine1(WriteParquetShards):
    """A writer that loses the rows of line 1 under `lost` (data or rejects): what a faulty sink would do."""

    lost = "data"

    def expand(self, records):
        if Path(self._prefix).parent.name == self.lost:
            records = records | "LoseLine1" >> beam.Filter(lambda record: record.position != "line 1")
        return super().expand(records)


@pytest.mark.parametrize("lost, check", [("data", "rows_written == pairs_kept"),
                                         ("rejects", "reject_rows_written == read_rejects + extract_rejects + "
                                                     "pairs_dropped")])
def test_rows_lost_by_the_write_fail_the_run(tmp_path, monkeypatch, lost, check):
    monkeypatch.setattr(_LosesLine1, "lost", lost)
    monkeypatch.setattr("cmtp.pipelines.outputs.WriteParquetShards", _LosesLine1)  # the write every pipeline shares
    config = write_config(tmp_path / "run.yaml", {"dureader": [dureader_file(tmp_path)]}, threshold=-1.0)
    code, report = run(config, tmp_path / "out")
    assert not report["checks"][check]
    assert [name for name, ok in report["checks"].items() if not ok] == [check]
    assert code == 1


def reject(id_: str, stage: str, reason: str, survivor: str | None = None, detail: str = "") -> Reject:
    return Reject(id=id_, source="csl", stage=stage, reason=reason, detail=detail or f"{reason} of {survivor}",
                  file="f.tsv", position=f"line {id_}", survivor=survivor)


def test_a_dedup_reject_follows_its_survivor_through_later_stages():
    """a -> b (exact pair), b -> c (exact passage), c -> d (near), d below the threshold: every trail ends in a drop.
    e -> f, f kept: unchanged. g -> h, h -> i, i kept: names i. j, a copy of k with k's id, k dropped: says so."""
    rejects = [
        reject("a", "dedup", "exact_duplicate", "b"), reject("b", "dedup", "duplicate_passage", "c"),
        reject("c", "dedup", "near_duplicate", "d"), reject("d", "semantic", "below_threshold", detail="cosine 0.1"),
        reject("e", "dedup", "exact_duplicate", "f"),
        reject("g", "dedup", "exact_duplicate", "h"), reject("h", "dedup", "near_duplicate", "i"),
        reject("k", "dedup", "exact_duplicate", "k"), reject("k", "semantic", "below_threshold", detail="cosine 0.2"),
    ]
    out = run_transform(SettleSurvivors(hops=3), rejects, outputs=("rejects", "stats"))
    settled = {(r.id, r.stage): r for r in out["rejects"]}
    assert len(out["rejects"]) == len(rejects)
    a = settled["a", "dedup"]
    assert a.survivor is None and a.detail == ("exact_duplicate of b; b was then dropped as duplicate_passage of c; "
                                               "c was then dropped as near_duplicate of d; d was then dropped at "
                                               "semantic: below_threshold (cosine 0.1)")
    assert settled["b", "dedup"].survivor is None and settled["c", "dedup"].survivor is None
    assert settled["e", "dedup"] == rejects[4]
    g = settled["g", "dedup"]
    assert g.survivor == "i" and g.detail.endswith("h was then dropped as near_duplicate of i; i is kept")
    assert settled["h", "dedup"] == rejects[6]
    k = settled["k", "dedup"]
    assert k.survivor is None and k.detail.endswith("k was then dropped at semantic: below_threshold (cosine 0.2)")
    assert settled["d", "semantic"] == rejects[3] and settled["k", "semantic"] == rejects[8]
    dropped = sum(n for key, n in out["stats"] if key == ("dedup_survivor_dropped", "", "", ""))
    assert dropped == 4  # a, b, c and k


def test_no_dedup_reject_of_the_sample_names_a_dropped_survivor(tmp_path):
    code, report = run(REPO / "configs" / "sample.yaml", tmp_path / "out")
    assert code == 0 and report["balanced"], report["checks"]
    kept = {row["id"] for row in read_rows(tmp_path / "out" / "data")}
    dedup = [r for r in read_rows(tmp_path / "out" / "rejects") if r["stage"] == "dedup"]
    # every pair of a passage is scored before the passage keeps one: no survivor of the sample is dropped after it
    # was named (before the scorer came after passage dedup, three were)
    dropped = [r for r in dedup if r["survivor"] not in kept]
    assert dropped == [] and report["counters"]["dedup_survivor_dropped"] == 0
    moved = [r for r in dedup if "was then dropped as" in r["detail"]]  # named a survivor that near dedup dropped
    assert len(moved) == 1 and moved[0]["survivor"] in kept and moved[0]["detail"].endswith("is kept")


class _LosesOne(beam.PTransform):
    """A stage that breaks the contract: it drops the pair whose query is OTHER_QUESTION without a reject row."""

    def expand(self, pairs):
        kept = pairs | beam.Filter(lambda pair: pair.query != OTHER_QUESTION)
        return Staged(kept, pairs.pipeline | "NoRejects" >> beam.Create([]),
                      pairs.pipeline | "NoStats" >> beam.Create([]))


def _pairs() -> list[Pair]:
    return [Pair(pair_id("dureader", "question_passage", q, p), q, p, "dureader", "question_passage", "f", f"line {i}")
            for i, (q, p) in enumerate([(QUESTION, PARAGRAPH), (OTHER_QUESTION, OTHER_PARAGRAPH),
                                        (QUESTION, "太短")])]


class _Clean(beam.PTransform):
    def __init__(self, stages: list[Stage]):
        super().__init__()
        self._stages = stages

    def expand(self, pairs):
        return clean(pairs, self._stages)


def _stage_checks(stages: list[Stage]) -> dict[str, bool]:
    out = run_transform(_Clean(stages), _pairs(), ("pairs", "rejects", "stats"))
    counts = Counter()
    for key, n in out["stats"]:
        counts[key] += n
    report = assemble(list(counts.items()), {"stages": stage_order(stages)})
    return {check: ok for check, ok in report["checks"].items() if check.startswith("stage ")}


def test_the_per_stage_ledger_comes_from_the_stage_list_and_names_a_stage_that_loses_rows():
    filtered = Stage("GeneralFilter", GeneralFilter([LengthRule("passage", 5, 1000)]))
    assert _stage_checks([filtered]) == {"stage GeneralFilter: in == kept + rejected": True}
    assert _stage_checks([filtered, Stage("Loses", _LosesOne())]) == {
        "stage GeneralFilter: in == kept + rejected": True, "stage Loses: in == kept + rejected": False}


def test_a_run_prints_and_reports_each_stage_in_the_order_it_ran(tmp_path, capsys):
    config = write_config(tmp_path / "run.yaml", {"dureader": [dureader_file(tmp_path)]}, threshold=-1.0)
    code, report = run(config, tmp_path / "out")
    assert code == 0 and report["balanced"]
    labels = [row["stage"] for row in report["stages"]]
    assert labels[:3] == ["MaskPII", "GeneralFilter", "ExactDedup pair"] and labels[-1] == "BestPerPassage"
    # the copy of the DuReader paragraph is the one pair exact pair dedup drops; 3 pairs in, 2 written
    assert report["stages"][2] == {"stage": "ExactDedup pair", "in": 3, "kept": 2, "rejected": 1}
    assert report["stages"][0]["in"] == 3 and report["stages"][-1]["kept"] == report["counters"]["rows_written"]
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("stages: ")]
    assert line.startswith("stages: MaskPII 3 -> 3, GeneralFilter 3 -> 3, ExactDedup pair 3 -> 2 (-1), ")
    assert [step.split(" ")[0] for step in line.removeprefix("stages: ").split(", ")] == [
        label.split(" ")[0] for label in labels]
