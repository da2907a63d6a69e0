"""Each labeled source's reader on its real published files (read in place) and on the embedded sample:
row -> judgments, label by label."""
from __future__ import annotations

import csv
import io
import json
import zipfile
from collections import Counter
from itertools import islice

import pytest

from cmtp.schemas import Pair
from cmtp.transforms.io import open_binary
from cmtp.transforms.sources import REGISTRY, ExtractError, SourceRecord
from cmtp.transforms.sources.judgments import NEGATIVE, POSITIVE, Link, Text, text_key
from cmtp.transforms.sources.layouts import Parsed


def judged_rows(source: str, role: str, path, limit: int | None = None, **options) -> list:
    """[(parsed row, judgments or the ExtractError)] for the file's rows, in order."""
    reader = REGISTRY[source].__new__(REGISTRY[source])
    from cmtp.transforms.sources.base import SourceSettings

    reader.__init__(SourceSettings(options=options))
    out = []
    with open_binary(str(path)) as stream:
        for item in islice(reader.parse_role(role, str(path), stream), limit):
            assert isinstance(item, Parsed), item
            try:
                out.append((item, reader.judge(role, SourceRecord(source, str(path), item.position, item.value))))
            except ExtractError as error:
                out.append((item, error))
    return out


NLI_MAPPING = {"entailment": POSITIVE, "contradiction": NEGATIVE}


@pytest.mark.parametrize("source, path", [("ocnli", "ocnli/train.3k.json"), ("cmnli", "cmnli/dev.tsv")])
def test_nli_labels_map_row_by_row(shared_data, source, path):
    rows = judged_rows(source, "rows", shared_data / path)
    raw = [json.loads(line) for line in open(shared_data / path, encoding="utf-8")] if path.endswith(".json") else \
        [dict(zip(("sentence1", "sentence2", "label"), line.rstrip("\n").split("\t")))
         for line in open(shared_data / path, encoding="utf-8")]
    assert len(rows) == len(raw) > 1000
    outcomes = Counter()
    for (item, result), row in zip(rows, raw):
        label = row["label"]
        if label in NLI_MAPPING:
            (pair,) = result
            assert (pair.kind, pair.query, pair.passage) == (NLI_MAPPING[label], row["sentence1"].strip(),
                                                             row["sentence2"].strip())
            assert pair.origin_id == text_key(pair.query)  # one record per premise text
        else:
            assert isinstance(result, ExtractError)
            assert result.reason == {"neutral": "neutral", "-": "no_gold_label"}[label]
        outcomes[label] += 1
    assert outcomes["neutral"] > 0 and outcomes["entailment"] > 0 and outcomes["contradiction"] > 0


def test_ocnli_unlabeled_test_set_is_refused_before_the_run(shared_data):
    from cmtp.transforms.read import check_layout

    ocnli = REGISTRY["ocnli"]()
    problem = check_layout(ocnli.view("rows"), str(shared_data / "ocnli" / "test.json"))
    assert problem and "record has no 'label'" in problem
    assert check_layout(ocnli.view("rows"), str(shared_data / "ocnli" / "train.3k.json")) is None


def test_ocnli_no_gold_label_rows_are_rejected_never_positive(shared_data):
    rows = judged_rows("ocnli", "rows", shared_data / "ocnli" / "train.3k.json")
    dashes = [result for item, result in rows if item.value["label"] == "-"]
    assert len(dashes) == 6 and all(r.reason == "no_gold_label" for r in dashes)


@pytest.mark.parametrize("name, columns", [("lcqmc_dev.tsv", 3), ("atec_test.tsv", 3), ("afqmc_dev.tsv", 3),
                                           ("pawsx_dev_2k.tsv", 4)])
def test_paraphrase_sets_label_1_positive_label_0_negative(shared_data, name, columns):
    path = shared_data / "nli_zh" / name
    rows = judged_rows("nli_zh", "rows", path)
    # a byte-order mark opening a line is dropped: ATEC's test file has two mid-file, where files were joined
    lines = [line.rstrip("\n").lstrip("\ufeff").split("\t") for line in open(path, encoding="utf-8")]
    if lines[0][0] == "id":
        lines = lines[1:]  # PAWS-X's header row is skipped, not judged
    assert len(rows) == len(lines)
    for (item, result), line in zip(rows, lines):
        (pair,) = result
        assert pair.kind == {"1": POSITIVE, "0": NEGATIVE}[line[-1].strip()]
        assert (pair.query, pair.passage) == (line[-3].strip(), line[-2].strip())


def test_paraphrase_label_0_is_a_reject_when_not_used_as_negative(shared_data):
    rows = judged_rows("nli_zh", "rows", shared_data / "nli_zh" / "lcqmc_dev.tsv", 50, label_0_as_negative=False)
    assert {r.reason for _, r in rows if isinstance(r, ExtractError)} == {"not_paraphrase"}
    assert all(r[0].kind == POSITIVE for _, r in rows if not isinstance(r, ExtractError))


def test_stsb_scores_of_4_and_up_are_positives_the_rest_rejected(shared_data):
    path = shared_data / "nli_zh" / "stsb_dev.tsv"
    rows = judged_rows("nli_zh", "rows", path)
    scores = [float(line.rstrip("\n").split("\t")[2]) for line in open(path, encoding="utf-8")]
    assert len(rows) == len(scores)
    for (_, result), score in zip(rows, scores):
        if score >= 4:
            assert result[0].kind == POSITIVE
        else:
            assert isinstance(result, ExtractError) and result.reason == "below_positive_score"
    graded = judged_rows("nli_zh", "rows", path, negative_max_score=1.0)
    assert sum(isinstance(r, list) and r[0].kind == NEGATIVE for _, r in graded) == sum(s <= 1 for s in scores) > 0


def test_snli_zh_json_lines_with_text1_text2(shared_data):
    rows = judged_rows("nli_zh", "rows", shared_data / "nli_zh" / "snli_zh_50.jsonl")
    kinds = Counter(result[0].kind for _, result in rows)
    raw = Counter(json.loads(line)["label"] for line in open(shared_data / "nli_zh" / "snli_zh_50.jsonl"))
    assert kinds == {POSITIVE: raw[1], NEGATIVE: raw[0]}


def test_dureader_retrieval_dual_rows_give_a_positive_and_a_negative(shared_data):
    rows = judged_rows("dureader_retrieval", "rows", shared_data / "dureader_retrieval" / "dual.train.tsv")
    assert len(rows) == 100
    for item, (positive, negative) in rows:
        fields = item.value
        assert (positive.kind, positive.query, positive.passage) == (POSITIVE, fields[0].strip(), fields[2].strip())
        assert (negative.kind, negative.passage) == (NEGATIVE, fields[4].strip())
        assert positive.origin_id == negative.origin_id == text_key(fields[0].strip())


def test_dureader_retrieval_cross_rows_follow_their_label(shared_data):
    rows = judged_rows("dureader_retrieval", "rows", shared_data / "dureader_retrieval" / "cross.train.tsv")
    for item, (pair,) in rows:
        assert pair.kind == (POSITIVE if item.value[3].strip() == "1" else NEGATIVE)
    assert Counter(pair.kind for _, (pair,) in rows) == {POSITIVE: 20, NEGATIVE: 80}


def test_dureader_inference_files_query_rows_are_rejected_para_rows_are_corpus(shared_data):
    queries = judged_rows("dureader_retrieval", "rows", shared_data / "dureader_retrieval" / "dureader.q")
    assert {result.reason for _, result in queries} == {"empty_passage"}
    corpus = judged_rows("dureader_retrieval", "corpus", shared_data / "dureader_retrieval" / "dureader.para")
    assert len(corpus) == 100 and all(isinstance(text, Text) and text.role == "corpus" for _, (text,) in corpus)


def test_dureader2_json_selected_documents_most_related_paragraphs_are_positives(shared_data):
    path = shared_data / "dureader" / "search.dev.json"
    rows = judged_rows("dureader_retrieval", "rows", path)
    for item, result in rows:
        docs = item.value["documents"]
        expected = [d["paragraphs"][d["most_related_para"]].strip() for d in docs if d["is_selected"]]
        expected = [p for p in expected if p]
        if expected:
            assert [p.passage for p in result] == expected
            assert all(p.kind == POSITIVE and p.origin_id == str(item.value["question_id"]) for p in result)
        else:
            assert result.reason in ("no_selected_document", "no_related_paragraph")


def test_multi_cpr_queries_are_lookups_and_qrels_are_positive_links(shared_data):
    for domain in ("ecom", "medical", "video"):
        queries = judged_rows("multi_cpr", "queries", shared_data / "multi_cpr" / domain / "dev.query.txt")
        qrels = judged_rows("multi_cpr", "qrels", shared_data / "multi_cpr" / domain / "qrels.dev.tsv")
        assert len(queries) == len(qrels) == 1000
        assert all(isinstance(t, Text) and t.role == "queries" for _, (t,) in queries)
        for item, (link,) in qrels:
            assert isinstance(link, Link) and link.kind == POSITIVE
            folder = str(shared_data / "multi_cpr" / domain)  # ids are scoped by domain folder
            assert (link.qid, link.pid) == (f"{folder}:{item.value[0]}", f"{folder}:{item.value[2]}")


def test_cmedqa2_zipped_dev_candidates_label_1_positive_0_negative(shared_data):
    path = shared_data / "cmedqa2" / "dev_candidates.zip"
    rows = judged_rows("cmedqa2", "candidates", path, limit=2000)
    with zipfile.ZipFile(path) as archive:
        raw = list(islice(csv.DictReader(io.TextIOWrapper(archive.open("dev_candidates.txt"), "utf-8")), 2000))
    assert len(rows) == 2000
    for (_, (link,)), row in zip(rows, raw):
        assert (link.qid, link.pid, link.kind) == (row["question_id"], row["ans_id"],
                                                   POSITIVE if row["label"] == "1" else NEGATIVE)


def test_t2ranking_grades_split_at_the_configured_cut_offs():
    t2 = REGISTRY["t2ranking"]()
    record = lambda fields: SourceRecord("t2ranking", "qrels.train.tsv", "line 2", fields)  # noqa: E731
    assert [link.kind for link in t2.judge("qrels", record(["7", "70", "3"]))] == [POSITIVE]
    assert [link.kind for link in t2.judge("qrels", record(["7", "70", "2"]))] == [POSITIVE]
    assert [link.kind for link in t2.judge("qrels", record(["7", "70", "0"]))] == [NEGATIVE]
    assert [link.kind for link in t2.judge("qrels", record(["7", "70"]))] == [POSITIVE]  # qrels.retrieval layout
    with pytest.raises(ExtractError) as raised:
        t2.judge("qrels", record(["7", "70", "1"]))
    assert raised.value.reason == "between_grades"
    from cmtp.transforms.sources.base import SourceSettings

    strict = REGISTRY["t2ranking"](SourceSettings(options={"positive_min_grade": 3, "negative_max_grade": 1}))
    assert [link.kind for link in strict.judge("qrels", record(["7", "70", "1"]))] == [NEGATIVE]
    with pytest.raises(ExtractError):
        strict.judge("qrels", record(["7", "70", "2"]))


def test_mmarco_triples_give_a_positive_and_a_hard_negative_link():
    mmarco = REGISTRY["mmarco"]()
    links = mmarco.judge("triples", SourceRecord("mmarco", "triples.tsv", "line 1", ["11", "22", "33"]))
    assert [(link.qid, link.pid, link.kind) for link in links] == [("11", "22", POSITIVE), ("11", "33", NEGATIVE)]


def test_inline_judgments_are_pairs_links_are_not():
    (pair,) = REGISTRY["cmnli"]().judge("rows", SourceRecord("cmnli", "f", "line 1", ["甲在跑步。", "有人在运动。",
                                                                                         "entailment"]))
    assert isinstance(pair, Pair) and pair.id and pair.source == "cmnli"
