"""The labeled pipeline end to end through `cmtp run` and `cmtp export`: on the embedded sample (every labeled
source) and on the real labeled samples in ../shared/data, read in place."""
from __future__ import annotations

import json
from collections import Counter

import pytest
from test_end_to_end import read_dir, run_cli

from cmtp.pipelines.cli import main
from cmtp.schemas import LABELED_SCHEMA, REJECT_SCHEMA
from cmtp.transforms.records_with_negatives import text_id
from conftest import REPO

RETRIEVAL = "为这个句子生成表示以用于检索相关文章："


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("labeled") / "run"
    report = run_cli(REPO / "configs" / "sample-labeled.yaml", out)
    return {"out": out, "report": report, "records": read_dir(out / "data", LABELED_SCHEMA),
            "rejects": read_dir(out / "rejects", REJECT_SCHEMA)}


def test_every_labeled_source_gives_records_with_its_tasks_instruction(sample_run):
    records = sample_run["records"]
    by_source = Counter(r["source"] for r in records)
    assert set(by_source) == {"t2ranking", "dureader_retrieval", "mmarco", "cmedqa2", "multi_cpr", "nli_zh", "cmnli",
                              "ocnli"}, by_source
    for record in records:
        similarity = record["source"] in ("nli_zh", "cmnli", "ocnli")
        assert record["instruction"] == (None if similarity else RETRIEVAL)
        assert record["task"] == record["source"] and record["pos"] and record["query"]
        assert record["query"] not in record["pos"]


def test_mined_negatives_come_from_the_rank_range_and_are_never_positives(sample_run):
    records = sample_run["records"]
    mined = [r for r in records if r["mined"]]
    assert len(mined) > 0.8 * len(records)
    for record in records:
        assert record["mined"] == len(record["mined_ranks"]) == len(record["mined_scores"]) <= 1
        negatives = record["neg"][len(record["neg"]) - record["mined"]:] if record["mined"] else []
        for negative, rank in zip(negatives, record["mined_ranks"]):
            assert 2 <= rank < 20
            assert negative not in record["pos"] and negative != record["query"]
        assert len(set(record["neg"])) == len(record["neg"])  # a mined negative never repeats a given one
    report = sample_run["report"]
    assert report["totals"]["negatives_mined"] == sum(r["mined"] for r in records)


def test_deliberate_bad_rows_of_the_sample_are_rejects_with_their_reason(sample_run):
    reasons = Counter((r["source"], r["reason"]) for r in sample_run["rejects"])
    for expected in [("t2ranking", "passage_not_in_corpus"), ("t2ranking", "query_not_found"),
                     ("t2ranking", "bad_label"), ("t2ranking", "between_grades"),
                     ("multi_cpr", "passage_not_in_corpus"), ("cmedqa2", "passage_not_in_corpus"),
                     ("cmedqa2", "bad_label"), ("mmarco", "wrong_column_count"),
                     ("dureader_retrieval", "wrong_column_count"), ("dureader_retrieval", "empty_passage"),
                     ("nli_zh", "bad_label"), ("nli_zh", "empty_text"), ("cmnli", "invalid_json"),
                     ("cmnli", "neutral"), ("ocnli", "neutral"), ("ocnli", "no_gold_label")]:
        assert reasons[expected] >= 1, (expected, reasons)


def test_report_accounts_for_every_row_and_judgment(sample_run):
    report = sample_run["report"]
    totals = report["totals"]
    assert report["balanced"]
    assert totals["judgments_extracted"] == totals["judgments_kept"] + totals["judgments_dropped"]
    assert totals["judgments_dropped"] == sum(1 for r in sample_run["rejects"] if r["stage"] not in ("read", "extract"))
    kept = sum(len(r["pos"]) + len(r["neg"]) - r["mined"] for r in sample_run["records"])
    assert totals["judgments_kept"] == kept
    counters = report["counters"]  # read back from the shards by the run itself
    assert (counters["rows_written"], counters["reject_rows_written"], counters["repeated_ids"]) == (
        len(sample_run["records"]), len(sample_run["rejects"]), 0)
    assert set(report["tasks"]) == {"t2ranking", "dureader_retrieval", "mmarco", "cmedqa2", "multi_cpr", "nli_zh",
                                    "cmnli", "ocnli"}


def shape(value) -> str:
    if isinstance(value, list):
        return "list[" + ",".join(sorted({shape(v) for v in value})) + "]"
    return type(value).__name__


def test_export_matches_the_flagembedding_format_of_the_published_examples(sample_run, shared_data, tmp_path):
    assert main(["export", str(sample_run["out"]), "--format", "flagembedding", "--out", str(tmp_path / "fe")]) == 0
    published: dict[str, set] = {}
    for path in sorted((shared_data / "flagembedding").glob("*.jsonl")):
        for line in path.read_text("utf-8").splitlines():
            for key, value in json.loads(line).items():
                published.setdefault(key, set()).add(shape(value))
    files = sorted((tmp_path / "fe").glob("*.jsonl"))
    assert {f.stem for f in files} == {r["task"] for r in sample_run["records"] if r["neg"]}
    rows = 0
    for path in files:
        for line in path.read_text("utf-8").splitlines():
            row = json.loads(line)
            rows += 1
            assert {"query", "pos", "neg"} <= set(row) <= set(published)
            for key, value in row.items():
                assert shape(value) in published[key] | {"list[]"}, (key, value)
            assert row["pos"] and row["neg"]
            assert ("prompt" in row) == (path.stem not in ("nli_zh", "cmnli", "ocnli"))
    assert rows == sum(1 for r in sample_run["records"] if r["neg"])


def test_export_prefix_mode_puts_the_instruction_before_the_query(sample_run, tmp_path):
    out = tmp_path / "t2.jsonl"
    assert main(["export", str(sample_run["out"]), "--out", str(tmp_path / "all"), "--instruction", "prefix"]) == 0
    row = json.loads((tmp_path / "all" / "t2ranking.jsonl").read_text("utf-8").splitlines()[0])
    assert row["query"].startswith(RETRIEVAL) and "prompt" not in row
    assert main(["export", str(sample_run["out"]), "--out", str(out)]) == 2  # several tasks need a directory


def test_real_labeled_samples_end_to_end(shared_data, tmp_path):
    config = tmp_path / "real.yaml"
    config.write_text(f"""pipeline: labeled
sources:
  - name: ocnli
    paths: {{rows: [{shared_data}/ocnli/train.3k.json]}}
  - name: dureader_retrieval
    paths:
      rows: [{shared_data}/dureader_retrieval/dual.train.tsv, {shared_data}/dureader_retrieval/cross.train.tsv,
             {shared_data}/dureader/search.dev.json]
      corpus: [{shared_data}/dureader_retrieval/dureader.para]
  - name: multi_cpr
    paths: {{queries: [{shared_data}/multi_cpr/video/dev.query.txt], qrels: [{shared_data}/multi_cpr/video/qrels.dev.tsv]}}
tasks:
  ocnli: {{filters: {{passage: {{min_length: 2, max_length: 256}}, max_length_ratio: null, language: {{enabled: false}}}}}}
negatives: {{rank_range: [3, 30], corpus_block: 512}}
""", encoding="utf-8")
    out = tmp_path / "out"
    report = run_cli(config, out)
    records = read_dir(out / "data", LABELED_SCHEMA)
    sources = report["sources"]
    assert sources["multi_cpr"]["judgments_kept"] == 0
    assert sources["multi_cpr"]["dropped"] == {"resolve": {"passage_not_in_corpus": 1000}}
    assert sources["ocnli"]["dropped"]["extract"] == {"neutral": 1054, "no_gold_label": 6}
    ocnli = [r for r in records if r["source"] == "ocnli"]
    assert ocnli and all(r["instruction"] is None for r in ocnli)
    dureader = [r for r in records if r["source"] == "dureader_retrieval"]
    assert dureader and all(r["instruction"] == RETRIEVAL for r in dureader)
    for record in records:
        for negative in record["neg"][len(record["neg"]) - record["mined"]:]:
            assert text_id(negative) not in {text_id(p) for p in record["pos"]}


def test_mining_is_deterministic_across_block_sizes(sample_run, tmp_path):
    text = (REPO / "configs" / "sample-labeled.yaml").read_text("utf-8")
    text = text.replace("query_block: 256", "query_block: 3").replace("corpus_block: 1024", "corpus_block: 7")
    text = text.replace('"../data/', f'"{REPO}/data/')
    config = tmp_path / "blocks.yaml"
    config.write_text(text, encoding="utf-8")
    run_cli(config, tmp_path / "out")
    again = read_dir(tmp_path / "out" / "data", LABELED_SCHEMA)

    def key(rows):
        return sorted((r["id"], tuple(r["neg"]), tuple(r["mined_ranks"])) for r in rows)

    assert key(again) == key(sample_run["records"])


def test_export_refuses_what_is_not_a_labeled_run(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "fe")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["export", str(tmp_path / "empty"), "--out", str(tmp_path / "fe")]) == 2
    assert "not a finished cmtp run" in capsys.readouterr().err
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "unlabeled" / "data").mkdir(parents=True)
    pq.write_table(pa.table({"id": ["a"], "query": ["q"], "passage": ["p"]}),
                   tmp_path / "unlabeled" / "data" / "part-00000-of-00001.parquet")
    manifest = {"cmtp_run": 1, "pipeline": "unlabeled", "files": ["data/part-00000-of-00001.parquet"]}
    (tmp_path / "unlabeled" / ".cmtp-run.json").write_text(json.dumps(manifest), "utf-8")
    assert main(["export", str(tmp_path / "unlabeled"), "--out", str(tmp_path / "fe")]) == 2
    assert "not a labeled run" in capsys.readouterr().err


def test_export_keeps_records_without_negatives_only_when_asked(sample_run, tmp_path):
    no_neg = sum(1 for r in sample_run["records"] if not r["neg"])
    assert main(["export", str(sample_run["out"]), "--out", str(tmp_path / "all"), "--keep-without-neg"]) == 0
    lines = sum(len(f.read_text("utf-8").splitlines()) for f in (tmp_path / "all").glob("*.jsonl"))
    assert lines == len(sample_run["records"]) and lines - no_neg == sum(1 for r in sample_run["records"] if r["neg"])


def test_inspect_reads_a_labeled_run(sample_run):
    from cmtp.pipelines.inspect import Selection, inspect_run, render

    result = inspect_run(str(sample_run["out"]), Selection(kind="t2ranking", samples=3))
    assert result["pipeline"] == "labeled" and result["data"]["rows"] == len(sample_run["records"])
    assert sum(result["kept_by_source_and_task"].values()) == len(sample_run["records"])
    assert result["funnel"]["total"][-1] == ("kept", sample_run["report"]["totals"]["judgments_kept"])
    assert all(r["task"] == "t2ranking" for r in result["samples"]["kept"]) and result["samples"]["kept"]
    assert "pos:" in render(result)
