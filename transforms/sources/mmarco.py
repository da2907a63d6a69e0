"""mMARCO (Chinese): `collection` (pid, passage), `queries` (qid, query), qrels (qid 0 pid 1, TREC style) and
`triples.train.ids.small.tsv` (qid, positive pid, negative pid): the triple's negative is a hard negative."""
from __future__ import annotations

from cmtp.transforms.sources.base import ExtractError, SourceRecord, register
from cmtp.transforms.sources.judgments import NEGATIVE, POSITIVE, Judged, TableSource, field_list


@register
class MMarco(TableSource):
    name = "mmarco"
    task_type = "retrieval"
    roles = {"corpus": "collection.tsv: pid \\t passage", "queries": "queries.*.tsv: qid \\t query",
             "qrels": "qrels.*.tsv: qid 0 pid 1", "triples": "triples.train.ids.small.tsv: qid \\t pos pid \\t neg pid"}
    whitespace_roles = ("qrels", "triples")

    def judge_row(self, role: str, record: SourceRecord) -> list[Judged]:
        if role == "triples":
            qid, positive, negative = field_list(record.fields, 3, "a triples row (qid, pos pid, neg pid)")
            return [self.link(record, qid, positive, POSITIVE), self.link(record, qid, negative, NEGATIVE)]
        qid, _, pid, label = field_list(record.fields, 4, "a qrels row (qid, 0, pid, 1)")
        if label != "1":
            raise ExtractError("not_relevant", f"qrels label {label!r}; only 1 (relevant) is a positive")
        return [self.link(record, qid, pid, POSITIVE)]
