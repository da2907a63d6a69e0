"""`cmtp calibrate`: the metrics against hand-computed values, and the embedded scorer on real LCQMC pairs."""
from __future__ import annotations

import json

import numpy as np

from cmtp.pipelines.calibrate import at_threshold, average_precision, read_labeled, roc_auc
from cmtp.pipelines.cli import main


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
                 "--target-precision", "0.8", "--json"])
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
