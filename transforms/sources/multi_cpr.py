"""Multi-CPR (e-commerce, medical, video): per domain `corpus.tsv` (pid, passage), `train.query.txt` /
`dev.query.txt` (qid, query) and `qrels.train.tsv` / `qrels.dev.tsv` (qid, 0, pid, 1): query -> passage.

Each domain numbers its passages and queries on its own, so ids are scoped by folder: a domain's qrels
resolve against the tables beside them, and one source entry can read all three domains.
"""
from __future__ import annotations

from cmtp.transforms.sources.base import ExtractError, SourceRecord, register
from cmtp.transforms.sources.judgments import POSITIVE, Judged, TableSource, field_list


@register
class MultiCpr(TableSource):
    name = "multi_cpr"
    task_type = "retrieval"
    roles = {"corpus": "corpus.tsv: pid \\t passage", "queries": "*.query.txt: qid \\t query",
             "qrels": "qrels.*.tsv: qid \\t 0 \\t pid \\t 1"}
    whitespace_roles = ("qrels",)
    id_scope = "directory"

    def judge_row(self, role: str, record: SourceRecord) -> list[Judged]:
        qid, _, pid, label = field_list(record.fields, 4, "a qrels row (qid, 0, pid, 1)")
        if label != "1":
            raise ExtractError("not_relevant", f"qrels label {label!r}; only 1 (relevant) is a positive")
        return [self.link(record, qid, pid, POSITIVE)]
