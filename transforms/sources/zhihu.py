"""Zhihu QA: (question [+ description], answer); (question, similar question) is derived later from
questions that share an answer (see transforms/similar_queries.py).

Layouts: webtext2019zh JSON lines `{qid, title, desc, topic, star, content, answer_id, answerer_tags}`
(its files are named `.json` but hold lines), and Zhihu-KOL Parquet `{INSTRUCTION, RESPONSE, SOURCE, METADATA}`.
"""
from __future__ import annotations

import json
from typing import IO, Iterator

from cmtp.schemas import Pair
from cmtp.transforms.io import logical_name
from cmtp.transforms.sources.base import ExtractError, Source, SourceOptions, SourceRecord, register
from cmtp.transforms.sources.layouts import Item, iter_parquet
from cmtp.transforms.sources.records import joined


class ZhihuOptions(SourceOptions):
    with_description: bool = False  # query = title + desc (webtext2019zh)
    max_similar_group: int = 5  # an answer shared by more questions is boilerplate: no similar_question pairs


@register
class Zhihu(Source):
    name = "zhihu"
    expected_layout = ("webtext2019zh JSON lines {qid, title, desc, content, answer_id, ...} or Zhihu-KOL Parquet "
                       "{INSTRUCTION, RESPONSE, SOURCE, METADATA}")
    kinds = ("question_answer", "similar_question")
    field_names = ("qid", "title", "desc", "content", "answer_id", "INSTRUCTION", "RESPONSE", "METADATA")
    Options = ZhihuOptions

    def parse(self, path: str, stream: IO[bytes]) -> Iterator[Item]:
        if logical_name(path).endswith(".parquet"):
            return iter_parquet(stream)
        return super().parse(path, stream)

    def extract(self, record: SourceRecord) -> list[Pair]:
        fields = record.fields
        if self.settings.fields.get("INSTRUCTION", "INSTRUCTION") in fields:  # Zhihu-KOL
            question, answer = self.text(fields, "INSTRUCTION"), self.text(fields, "RESPONSE")
            origin = _kol_url(self.text(fields, "METADATA"))
        else:
            question = self.text(fields, "title", required=True)
            if self.options.with_description:
                question = joined(question, self.text(fields, "desc"))
            answer = self.text(fields, "content", required=True)
            origin = self.text(fields, "answer_id") or self.text(fields, "qid")
        if not question:
            raise ExtractError("empty_question", "question is empty")
        if not answer:
            raise ExtractError("empty_answer", "answer is empty")
        return [self.pair(record, "question_answer", question, answer, origin or None)]


def _kol_url(metadata: str) -> str:
    """The answer's URL from Zhihu-KOL's METADATA JSON string, or "" when it has none."""
    try:
        value = json.loads(metadata) if metadata else {}
    except json.JSONDecodeError:
        return ""
    return str(value.get("url", "")) if isinstance(value, dict) else ""
