"""Baidu Zhidao community QA: CSV with header `title, question, reply, is_best` ->
(title [+ question], reply) `question_answer`."""
from __future__ import annotations

from typing import IO, Iterator

from cmtp.schemas import Pair
from cmtp.transforms.sources.base import ExtractError, Source, SourceOptions, SourceRecord, register
from cmtp.transforms.sources.layouts import Item, iter_csv
from cmtp.transforms.sources.records import joined


class ZhidaoOptions(SourceOptions):
    with_description: bool = False  # query = title + question (the longer description)
    best_only: bool = False  # keep only replies marked is_best=1
    max_similar_group: int = 5  # an answer shared by more questions is boilerplate: no similar_question pairs


@register
class Zhidao(Source):
    name = "zhidao"
    expected_layout = "CSV with header title, question, reply, is_best"
    kinds = ("question_answer", "similar_question")
    field_names = ("title", "question", "reply", "is_best")
    Options = ZhidaoOptions

    def parse(self, path: str, stream: IO[bytes]) -> Iterator[Item]:
        return iter_csv(stream)

    def extract(self, record: SourceRecord) -> list[Pair]:
        fields = record.fields
        title = self.text(fields, "title", required=True)
        question = joined(title, self.text(fields, "question")) if self.options.with_description else title
        reply = self.text(fields, "reply", required=True)
        if self.options.best_only and self.text(fields, "is_best") != "1":
            raise ExtractError("not_best_reply", "is_best is not 1 and best_only is set")
        if not question:
            raise ExtractError("empty_question", "question title is empty")
        if not reply:
            raise ExtractError("empty_answer", "reply is empty")
        return [self.pair(record, "question_answer", question, reply)]
