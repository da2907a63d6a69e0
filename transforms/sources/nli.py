"""CMNLI and OCNLI: premise -> entailed hypothesis as a positive, contradicted hypothesis as a hard negative.

Rows are JSON lines `{sentence1, sentence2, label, ...}` (CLUE's layout; OCNLI adds `prem_id`, `genre` and the
annotators' `label0..4`) or tsv `sentence1 \\t sentence2 \\t label`. `neutral` is never a positive (reason
`neutral`), nor is `-`, OCNLI's mark for pairs the annotators did not agree on (reason `no_gold_label`).
A premise's hypotheses are one record, grouped by the premise's text: OCNLI's `prem_id` is not one premise
(in its train.3k sample, 3 prem_ids name two different premises each).
"""
from __future__ import annotations

from typing import IO, Iterator

from cmtp.transforms.sources.base import ExtractError, SourceRecord, register
from cmtp.transforms.sources.judgments import NEGATIVE, POSITIVE, Judged, LabeledSource, iter_rows
from cmtp.transforms.sources.layouts import Item


class NliSource(LabeledSource):
    task_type = "similarity"
    roles = {"rows": "JSON lines {sentence1, sentence2, label: entailment/neutral/contradiction/-} or tsv "
                     "sentence1 \\t sentence2 \\t label"}
    field_names = ("sentence1", "sentence2", "label")

    def parse_role(self, role: str, path: str, stream: IO[bytes]) -> Iterator[Item]:
        return iter_rows(stream)

    def judge(self, role: str, record: SourceRecord) -> list[Judged]:
        fields = record.fields
        if isinstance(fields, list):
            if len(fields) != 3:
                raise ExtractError("wrong_column_count", f"{len(fields)} fields; NLI tsv rows have sentence1, "
                                                         "sentence2, label")
            premise, hypothesis, label = (field.strip() for field in fields)
        else:
            premise, hypothesis = self.text(fields, "sentence1", True), self.text(fields, "sentence2", True)
            label = self.text(fields, "label", True)
        if not premise or not hypothesis:
            raise ExtractError("empty_text", "premise or hypothesis is empty")
        if label == "entailment":
            return [self.judgment(record, POSITIVE, premise, hypothesis)]
        if label == "contradiction":
            return [self.judgment(record, NEGATIVE, premise, hypothesis)]
        if label == "neutral":
            raise ExtractError("neutral", "a neutral hypothesis is neither a positive nor a hard negative")
        if label in ("-", ""):
            raise ExtractError("no_gold_label", "the annotators did not agree on a label ('-')")
        raise ExtractError("bad_label", f"label {label!r}; expected entailment, neutral, contradiction or -")


@register
class Cmnli(NliSource):
    name = "cmnli"


@register
class Ocnli(NliSource):
    name = "ocnli"
