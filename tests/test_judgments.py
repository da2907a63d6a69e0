"""Links resolved against the lookup tables, and judgments assembled into one record per query."""
from __future__ import annotations

import apache_beam as beam

from beam_helpers import run_transform
from cmtp.schemas import Pair, pair_id
from cmtp.transforms.judgments import AssembleRecords, JudgeRows, ResolveLinks
from cmtp.transforms.read import ReadSource
from cmtp.transforms.sources import REGISTRY
from cmtp.transforms.sources.judgments import NEGATIVE, POSITIVE


class _ReadAndResolve(beam.PTransform):
    """Read a labeled source's role files, judge the rows and resolve the links."""

    def __init__(self, source: str, roles: dict):
        super().__init__()
        self._source, self._roles = REGISTRY[source](), roles

    def expand(self, pipeline):
        rows = []
        for role, files in self._roles.items():
            read = pipeline | f"Read {role}" >> ReadSource(self._source.view(role), [str(f) for f in files])
            rows.append(read.records | f"Tag {role}" >> beam.Map(lambda r, role=role: (role, r)))
        judged = rows | beam.Flatten() | JudgeRows({self._source.name: self._source})
        resolved = {"links": judged.links, "texts": judged.texts} | ResolveLinks()
        return {"pairs": resolved["judgments"], "rejects": resolved["rejects"]}


def test_qrels_pointing_at_a_missing_corpus_are_rejects_with_that_reason(shared_data):
    folder = shared_data / "multi_cpr" / "medical"
    out = run_transform(_ReadAndResolve("multi_cpr", {"queries": [folder / "dev.query.txt"],
                                                      "qrels": [folder / "qrels.dev.tsv"]}), None)
    assert out["pairs"] == []
    assert len(out["rejects"]) == 1000
    assert {(r.stage, r.reason) for r in out["rejects"]} == {("resolve", "passage_not_in_corpus")}
    first = min(out["rejects"], key=lambda r: int(r.position.split()[1]))
    assert first.detail.startswith("passage id ") and first.detail.endswith("is not in the corpus files")
    assert first.file.endswith("qrels.dev.tsv") and first.position == "line 1"


def test_links_resolve_to_texts_and_unknown_ids_are_located_rejects(tmp_path):
    (tmp_path / "corpus.tsv").write_text("1\t高铁的最高运营时速是多少公里\n2\t绿茶属于不发酵茶\n", encoding="utf-8")
    (tmp_path / "train.query.txt").write_text("10\t高铁多快\n11\t绿茶是发酵茶吗\n", encoding="utf-8")
    (tmp_path / "qrels.train.tsv").write_text("10\t0\t1\t1\n11\t0\t2\t1\n12\t0\t1\t1\n11\t0\t9\t1\n",
                                              encoding="utf-8")
    out = run_transform(_ReadAndResolve("multi_cpr", {"corpus": [tmp_path / "corpus.tsv"],
                                                      "queries": [tmp_path / "train.query.txt"],
                                                      "qrels": [tmp_path / "qrels.train.tsv"]}), None)
    resolved = sorted((p.query, p.passage, p.kind, p.position) for p in out["pairs"])
    assert resolved == [("绿茶是发酵茶吗", "绿茶属于不发酵茶", POSITIVE, "line 2"),
                        ("高铁多快", "高铁的最高运营时速是多少公里", POSITIVE, "line 1")]
    rejects = sorted((r.position, r.reason) for r in out["rejects"])
    assert rejects == [("line 3", "query_not_found"), ("line 4", "passage_not_in_corpus")]


def judgment(kind: str, query: str, passage: str, group: str = "g1", position: str = "line 1",
             source: str = "t2ranking") -> Pair:
    return Pair(id=pair_id(source, kind, query, passage), query=query, passage=passage, source=source, kind=kind,
                file="qrels.tsv", position=position, origin_id=group)


def test_assemble_makes_one_record_per_query_and_accounts_for_every_judgment():
    judgments = [
        judgment(POSITIVE, "绿茶是发酵茶吗", "绿茶属于不发酵茶。", position="line 1"),
        judgment(POSITIVE, "绿茶是发酵茶吗", "绿茶属于不发酵茶。", position="line 2"),  # repeated
        judgment(NEGATIVE, "绿茶是发酵茶吗", "红茶是全发酵茶。", position="line 3"),
        judgment(NEGATIVE, "绿茶是发酵茶吗", "绿茶属于不发酵茶。", position="line 4"),  # also a positive
        judgment(NEGATIVE, "高铁多快", "普速列车较慢。", group="g2", position="line 5"),  # no positive
    ]
    out = run_transform(AssembleRecords({"t2ranking": "t2ranking"}, {"t2ranking": "为这个句子生成表示以用于检索相关文章："}),
                        judgments, ("records", "rejects"))
    (record,) = out["records"]
    assert (record.query, record.pos, record.neg) == ("绿茶是发酵茶吗", ["绿茶属于不发酵茶。"], ["红茶是全发酵茶。"])
    assert (record.task, record.instruction, record.origin_id, record.mined) == (
        "t2ranking", "为这个句子生成表示以用于检索相关文章：", "g1", 0)
    reasons = sorted((r.position, r.reason) for r in out["rejects"])
    assert reasons == [("line 2", "duplicate_judgment"), ("line 4", "negative_is_positive"),
                       ("line 5", "no_positive")]
    assert len(out["records"][0].pos) + len(out["records"][0].neg) + len(out["rejects"]) == len(judgments)


def test_assembled_records_do_not_depend_on_input_order():
    judgments = [judgment(POSITIVE, "q", f"正例{i}", position=f"line {i}") for i in range(5)]
    judgments += [judgment(NEGATIVE, "q", f"负例{i}", position=f"line {10 + i}") for i in range(5)]
    one = run_transform(AssembleRecords({"t2ranking": "t"}, {}), judgments, ("records",))["records"]
    two = run_transform(AssembleRecords({"t2ranking": "t"}, {}), judgments[::-1], ("records",))["records"]
    assert one == two and one[0].pos == [f"正例{i}" for i in range(5)] and one[0].instruction is None
