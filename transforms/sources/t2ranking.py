"""T2Ranking: `collection.tsv` (pid, text), `queries.*.tsv` (qid, text), and qrels: `qrels.train.tsv` graded
(qid, pid, rel 0-3) or `qrels.retrieval.*.tsv` (qid, pid), each with a header row.

A graded passage is a positive at `positive_min_grade` or above and a negative candidate at
`negative_max_grade` or below; grades between the two are not used (reason `between_grades`).
"""
from __future__ import annotations

from pydantic import Field, model_validator

from cmtp.transforms.sources.base import ExtractError, SourceOptions, SourceRecord, register
from cmtp.transforms.sources.judgments import NEGATIVE, POSITIVE, Judged, TableSource


class T2RankingOptions(SourceOptions):
    positive_min_grade: int = Field(default=2, ge=0, le=3)  # the paper's: rel 2 and 3 are relevant
    negative_max_grade: int = Field(default=0, ge=-1, le=3)  # -1: no graded negatives

    @model_validator(mode="after")
    def _apart(self) -> "T2RankingOptions":
        if self.negative_max_grade >= self.positive_min_grade:
            raise ValueError(f"negative_max_grade ({self.negative_max_grade}) must be below "
                             f"positive_min_grade ({self.positive_min_grade})")
        return self


@register
class T2Ranking(TableSource):
    name = "t2ranking"
    task_type = "retrieval"
    roles = {"corpus": "collection.tsv: pid \\t text", "queries": "queries.*.tsv: qid \\t text",
             "qrels": "qrels.*.tsv: qid \\t pid \\t rel (0-3), or qid \\t pid"}
    Options = T2RankingOptions

    def judge_row(self, role: str, record: SourceRecord) -> list[Judged]:
        fields = record.fields
        if not isinstance(fields, list) or len(fields) not in (2, 3):
            raise ExtractError("wrong_column_count", f"{len(fields)} fields; a qrels row has qid, pid[, rel]")
        qid, pid = fields[0], fields[1]
        if len(fields) == 2:
            return [self.link(record, qid, pid, POSITIVE)]
        try:
            grade = int(fields[2])
        except ValueError:
            raise ExtractError("bad_label", f"rel {fields[2]!r} is not an integer grade") from None
        if grade >= self.options.positive_min_grade:
            return [self.link(record, qid, pid, POSITIVE)]
        if grade <= self.options.negative_max_grade:
            return [self.link(record, qid, pid, NEGATIVE)]
        raise ExtractError("between_grades", f"rel {grade} is below positive_min_grade "
                                             f"{self.options.positive_min_grade} and above negative_max_grade "
                                             f"{self.options.negative_max_grade}")
