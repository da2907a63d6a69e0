"""The filter audit on ../shared/data (benchmarks/audit_filters.py, docs/quality.md), its targets held as floors:

- curated real pairs (CSL, CMRC 2018, DuReader answers, LCQMC, PAWS-X, AFQMC, OCNLI) are good by construction:
  at most 0.3% of them dropped overall, at most 1% of any one file;
- each corruption family the general filter owns is caught at 95% or more; not held, only reported: the swapped
  passage (the semantic scorer's) and truncation of a sentence pair (a 1-5 character cut reads as a real short
  sentence, "导言", "他走了"), so truncation is held on retrieval passages (CSL, CMRC 2018, DuReader) only;
- each rule's precision on the reviewed drops of the web-like sources is 0.9 or more, once it has
  MIN_LABELS labels (benchmarks/audit/reviewed.tsv).

The audit runs the pipeline's own per-pair code without Beam; one test runs `cmtp run` on real files and checks
that it rejects at the filter exactly the pairs the audit says it drops.
"""
from __future__ import annotations

import json
import sys

import pyarrow.parquet as pq
import pytest
import yaml

from cmtp.pipelines.cli import main
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import audit_filters  # noqa: E402

MAX_CURATED_RATE, MAX_CURATED_FILE_RATE, MIN_CATCH, MIN_PRECISION = 0.003, 0.01, 0.95, 0.9
assert (MIN_CATCH, MIN_PRECISION) == (audit_filters.TARGET_CATCH, audit_filters.TARGET_PRECISION)


@pytest.fixture(scope="module")
def report(shared_data) -> dict:
    """The audit with its defaults but 1,000 records a file (a few seconds)."""
    return audit_filters.audit(shared_data, max_records=1000, examples=5, per_family=200)


def test_curated_pairs_are_kept(report):
    curated = report["groups"]["curated"]
    files = {row["input"]: row for row in report["inputs"] if row["group"] == "curated"}
    print(f"\ncurated: {curated['dropped']} of {curated['pairs']} dropped ({curated['rate']:.2%})")
    print("\n".join(f"{name:44} {row['rate']:6.2%} {row['rules']}" for name, row in files.items()))
    assert curated["pairs"] >= 5000 and len(files) == 10
    over = {name: (row["rate"], row["rules"]) for name, row in files.items() if row["rate"] > MAX_CURATED_FILE_RATE}
    assert curated["rate"] <= MAX_CURATED_RATE and not over, (curated["rules"], over, report["examples"])


def test_each_corruption_family_of_the_filter_is_caught(report):
    families = report["families"]
    print("\n" + "\n".join(f"{name:24} {row['owner']:16} {row['scope']:13} {row['rate']:6.1%}"
                             f"{'' if row['held'] else ' (not held)'}" for name, row in families.items()))
    assert {family.name for family in audit_filters.FAMILIES} == set(families)
    assert all(row["pairs"] == 200 for row in families.values())
    assert families["swap"]["owner"] == "semantic scorer"  # reported, not held: the filter cannot judge relevance
    assert families["truncation"]["scope"] == "retrieval" and families["truncation"]["held"]
    assert {name for name, row in families.items() if not row["held"]} == {"swap", "truncation_sentence_pair"}
    assert all(row["note"] for row in families.values() if not row["held"])  # each says why it is not held
    short = families["truncation_sentence_pair"]["real_short"]  # the real short sentences a rule would drop
    assert set(short) == {"nli_zh/lcqmc_dev.tsv", "nli_zh/pawsx_dev_2k.tsv", "nli_zh/afqmc_dev.tsv",
                          "ocnli/train.3k.json"} and short["ocnli/train.3k.json"][0] > 0
    missed = {name: (row["rate"], row["outcomes"], row["misses"]) for name, row in families.items()
              if row["held"] and row["rate"] < MIN_CATCH}
    assert not missed, missed


def test_each_rule_is_precise_on_the_reviewed_drops(report):
    review = report["review"]
    print("\n" + "\n".join(f"{rule:28} {row['right']}/{row['labelled']} of {row['drops']}"
                           for rule, row in review["rules"].items()))
    counted = {rule: row for rule, row in review["rules"].items() if row["labelled"] >= audit_filters.MIN_LABELS}
    assert all(row["counted"] == (rule in counted) for rule, row in review["rules"].items())  # too few: not held
    assert counted, "no rule has enough labelled drops: label the unlabelled ones the audit lists"
    low = {rule: (row["right"], row["labelled"]) for rule, row in counted.items() if row["precision"] < MIN_PRECISION}
    assert not low, low


def test_reviewed_labels_are_keyed_and_say_why():
    labels = audit_filters.read_labels(audit_filters.REVIEWED)
    rows = audit_filters.REVIEWED.read_text("utf-8").splitlines()[1:]
    assert len(labels) == len(rows) >= 20  # one label per (pair id, rule)
    for (pair_id, rule), row in labels.items():
        assert row["source"] and rule and 10 <= len(row["reason"]) <= 160, row  # a one-line reason, not the text


def test_injected_texts_are_real_and_found(shared_data):
    found = audit_filters.injections(shared_data)
    assert len(found["spam"]) >= 15 and len(found["boilerplate"]) >= 30
    assert all(text.strip() for texts in found.values() for text in texts)
    assert "en" in audit_filters.foreign_texts(shared_data)


def run_rejects(config: dict, path, out) -> set[tuple[str, str]]:
    """(pair id, reason) of every filter reject of `cmtp run` on the config."""
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    assert main(["run", str(path), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text("utf-8"))
    assert report["balanced"], report["checks"]
    rows = [row for file in sorted((out / "rejects").glob("*.parquet")) for row in pq.read_table(file).to_pylist()]
    return {(row["id"], row["reason"]) for row in rows if row["stage"] == "filter"}


def test_the_audit_drops_exactly_what_a_run_drops(shared_data, tmp_path):
    picked = {"csl/ts_dev.tsv", "dureader/search.dev.json", "wudao/jinrong_data.json", "zhidao/financezhidao_filter.csv",
              "nli_zh/pawsx_dev_2k.tsv", "nli_zh/afqmc_dev.tsv", "dureader_retrieval/dual.train.tsv"}
    inputs = [item for item in audit_filters.shared_inputs(shared_data) if item.label(shared_data) in picked]
    for labeled, off in ((False, {"scoring": {"enabled": False}}), (True, {"negatives": {"enabled": False}})):
        mine = [item for item in inputs if (item.role is not None) == labeled]
        config = {"pipeline": "labeled" if labeled else "unlabeled",
                  "sources": audit_filters.source_entries(mine, labeled), **off}
        ran = run_rejects(config, tmp_path / f"{config['pipeline']}.yaml", tmp_path / config["pipeline"])
        judged = audit_filters.audit_pairs(mine, {config["pipeline"]: str(tmp_path / f"{config['pipeline']}.yaml")},
                                           10 ** 6)
        audited = {(item.raw.id, item.reject.reason) for item in judged if item.reject}
        assert ran and ran == audited, (ran - audited, audited - ran)
