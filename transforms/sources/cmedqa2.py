"""cMedQA-v2: `question.csv` (question_id, content), `answer.csv` (ans_id, question_id, content), and candidate
lists: `train_candidates.txt` (question_id, pos_ans_id, neg_ans_id) or dev/test candidates (question_id, ans_id,
cnt, label 1/0). All are CSV with a header, published zipped (a one-file .zip is read as it is)."""
from __future__ import annotations

from typing import IO, Iterator

from cmtp.transforms.sources.base import ExtractError, SourceRecord, register
from cmtp.transforms.sources.judgments import NEGATIVE, POSITIVE, Judged, LabeledSource
from cmtp.transforms.sources.layouts import Item, iter_csv


@register
class CMedQA2(LabeledSource):
    name = "cmedqa2"
    task_type = "retrieval"
    roles = {"queries": "question.csv: question_id,content", "corpus": "answer.csv: ans_id,question_id,content",
             "candidates": "train_candidates.txt: question_id,pos_ans_id,neg_ans_id; or dev/test candidates: "
                           "question_id,ans_id,cnt,label"}

    def parse_role(self, role: str, path: str, stream: IO[bytes]) -> Iterator[Item]:
        return iter_csv(stream)

    def judge(self, role: str, record: SourceRecord) -> list[Judged]:
        if role == "queries":
            return [self.lookup(record, role, self.text(record.fields, "question_id", True),
                                self.text(record.fields, "content"))]
        if role == "corpus":
            return [self.lookup(record, role, self.text(record.fields, "ans_id", True),
                                self.text(record.fields, "content"))]
        qid = self.text(record.fields, "question_id", True)
        if "pos_ans_id" in record.fields:
            return [self.link(record, qid, self.text(record.fields, "pos_ans_id", True), POSITIVE),
                    self.link(record, qid, self.text(record.fields, "neg_ans_id", True), NEGATIVE)]
        label = self.text(record.fields, "label", True)
        if label not in ("0", "1"):
            raise ExtractError("bad_label", f"label {label!r}; candidates are labeled 1 or 0")
        return [self.link(record, qid, self.text(record.fields, "ans_id", True), POSITIVE if label == "1" else NEGATIVE)]
