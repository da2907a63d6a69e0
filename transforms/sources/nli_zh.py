"""NLI-zh's paraphrase sets (ATEC, BQ, LCQMC, PAWS-X, STS-B, and SNLI-zh as converted by text2vec): sentence
pairs labeled 1/0, or STS-B's 0-5 similarity.

Rows are tsv `sentence1 \\t sentence2 \\t label` (PAWS-X adds a leading id column and a header), or JSON lines
`{sentence1, sentence2, label}` / `{text1, text2, label}`. Label 1, or an STS-B score of `positive_min_score`
and up, is a positive; label 0 is a negative of the same first sentence (`label_0_as_negative`), a natural
hard negative in LCQMC-style sets, which pair topically close questions. Files matching `graded_files` hold
0-5 scores; there, scores of `negative_max_score` and below are negatives when it is set.
"""
from __future__ import annotations

import fnmatch
import os
from typing import IO, Iterator, Optional

from pydantic import Field

from cmtp.transforms.sources.base import ExtractError, SourceOptions, SourceRecord, register
from cmtp.transforms.sources.judgments import NEGATIVE, POSITIVE, Judged, LabeledSource, iter_rows
from cmtp.transforms.sources.layouts import Item


class NliZhOptions(SourceOptions):
    graded_files: list[str] = ["*sts*", "*STS*"]  # file-name globs of the sets scored 0-5
    positive_min_score: float = Field(default=4.0, ge=0, le=5)
    negative_max_score: Optional[float] = Field(default=None, ge=0, le=5)
    label_0_as_negative: bool = True


@register
class NliZh(LabeledSource):
    name = "nli_zh"
    task_type = "similarity"
    roles = {"rows": "tsv sentence1 \\t sentence2 \\t label (or id \\t sentence1 \\t sentence2 \\t label), or JSON "
                     "lines {sentence1, sentence2, label} / {text1, text2, label}"}
    Options = NliZhOptions

    def parse_role(self, role: str, path: str, stream: IO[bytes]) -> Iterator[Item]:
        return iter_rows(stream)

    def judge(self, role: str, record: SourceRecord) -> list[Judged]:
        fields = record.fields
        if isinstance(fields, list):
            if len(fields) not in (3, 4):
                raise ExtractError("wrong_column_count", f"{len(fields)} fields; rows have [id,] sentence1, "
                                                         "sentence2, label")
            first, second, label = (field.strip() for field in fields[-3:])
        else:
            names = ("sentence1", "sentence2") if "sentence1" in fields else ("text1", "text2")
            first, second = self.text(fields, names[0], True), self.text(fields, names[1], True)
            label = self.text(fields, "label", True)
        if not first or not second:
            raise ExtractError("empty_text", "a sentence is empty")
        try:
            score = float(label)
        except ValueError:
            raise ExtractError("bad_label", f"label {label!r} is not a number") from None
        options = self.options
        if any(fnmatch.fnmatch(os.path.basename(record.file), glob) for glob in options.graded_files):
            if score >= options.positive_min_score:
                return [self.judgment(record, POSITIVE, first, second)]
            if options.negative_max_score is not None and score <= options.negative_max_score:
                return [self.judgment(record, NEGATIVE, first, second)]
            raise ExtractError("below_positive_score", f"similarity {score:g} < positive_min_score "
                                                       f"{options.positive_min_score:g}")
        if score == 1:
            return [self.judgment(record, POSITIVE, first, second)]
        if score == 0:
            if options.label_0_as_negative:
                return [self.judgment(record, NEGATIVE, first, second)]
            raise ExtractError("not_paraphrase", "label 0: not a paraphrase")
        raise ExtractError("bad_label", f"label {label!r}; paraphrase rows are labeled 1 or 0")
