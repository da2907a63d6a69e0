"""DuReader-retrieval, in RocketQA's tsv layouts or as the DuReader 2.0 JSON lines it was built from.

- `rows`: `cross.train.tsv` (query, title, para, label 0/1); `dual.train.tsv` (query, title, positive para,
  title, negative para, label); or DuReader 2.0 `{question_id, question, documents: [{paragraphs, is_selected,
  most_related_para}]}` whose selected documents' most related paragraphs are positives.
- `corpus` (optional): `dureader.para` (title, para), more passages for hard-negative mining.

Titles are "-" in the published files; the passage is the paragraph.
"""
from __future__ import annotations

from typing import IO, Iterator

from cmtp.transforms.sources.base import ExtractError, SourceRecord, register
from cmtp.transforms.sources.dureader import related_paragraphs
from cmtp.transforms.sources.judgments import NEGATIVE, POSITIVE, Judged, LabeledSource, iter_rows, iter_table, text_key
from cmtp.transforms.sources.layouts import Item


def _paragraph(text: str) -> str:
    return "" if text.strip() in ("", "-") else text.strip()


@register
class DuReaderRetrieval(LabeledSource):
    name = "dureader_retrieval"
    task_type = "retrieval"
    roles = {"rows": "cross.train.tsv (query, title, para, label), dual.train.tsv (query, title, pos para, title, "
                     "neg para, label) or DuReader 2.0 JSON lines {question, documents}",
             "corpus": "dureader.para: title \\t para"}

    def parse_role(self, role: str, path: str, stream: IO[bytes]) -> Iterator[Item]:
        return iter_rows(stream) if role == "rows" else iter_table(stream)

    def judge(self, role: str, record: SourceRecord) -> list[Judged]:
        fields = record.fields
        if role == "corpus":
            if not isinstance(fields, list) or len(fields) != 2:
                raise ExtractError("wrong_column_count", "a dureader.para row has title, para")
            passage = _paragraph(fields[1])
            return [self.lookup(record, role, text_key(passage), passage)]
        if isinstance(fields, dict):
            return self._dureader2(record)
        if not isinstance(fields, list) or len(fields) not in (4, 6):
            raise ExtractError("wrong_column_count", f"{len(fields) if isinstance(fields, list) else 'no'} fields; "
                                                     "cross rows have 4, dual rows 6")
        query = fields[0].strip()
        if not query or query == "-":
            raise ExtractError("empty_query", "the row's query is empty")
        if len(fields) == 6:
            positive, negative = _paragraph(fields[2]), _paragraph(fields[4])
            if not positive:
                raise ExtractError("empty_passage", "the positive paragraph is empty")
            judged = [self.judgment(record, POSITIVE, query, positive)]
            if negative:
                judged.append(self.judgment(record, NEGATIVE, query, negative))
            return judged
        passage, label = _paragraph(fields[2]), fields[3].strip()
        if label not in ("0", "1"):
            raise ExtractError("bad_label", f"label {label!r}; cross rows are labeled 1 or 0")
        if not passage:
            raise ExtractError("empty_passage", "the row has no paragraph (an inference-format query row?)")
        return [self.judgment(record, POSITIVE if label == "1" else NEGATIVE, query, passage)]

    def _dureader2(self, record: SourceRecord) -> list[Judged]:
        fields = record.fields
        question = self.text(fields, "question", required=True)
        if not question:
            raise ExtractError("empty_query", "question is empty")
        return [self.judgment(record, POSITIVE, question, paragraph, fields.get("question_id"))
                for paragraph in related_paragraphs(fields)]
