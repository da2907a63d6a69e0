"""Baike: community QA (baike_qa2019) and encyclopedia entries (wiki2019zh).

- baike_qa2019 JSON lines `{qid, category, title, desc, answer}` -> (title [+ desc], answer) `question_answer`.
- wiki2019zh JSON lines `{id, url, title, text}`, paragraphs joined by blank lines, section headings as
  short paragraphs ending with "." -> (title, first paragraph) `title_summary` and
  (title + section heading, section text) `subtitle_passage`.
"""
from __future__ import annotations

from cmtp.schemas import Pair
from cmtp.transforms.sources.base import ExtractError, Source, SourceOptions, SourceRecord, register
from cmtp.transforms.sources.records import joined
from cmtp.transforms.sources.sections import sections, wiki_heading


class BaikeOptions(SourceOptions):
    with_description: bool = False  # QA: query = title + desc
    subtitle_with_title: bool = True  # encyclopedia: query "entry heading" rather than the bare heading


@register
class Baike(Source):
    name = "baike"
    expected_layout = "JSON lines of {qid, category, title, desc, answer} (baike_qa) or {id, url, title, text} (wiki)"
    kinds = ("question_answer", "title_summary", "subtitle_passage")
    field_names = ("qid", "title", "desc", "answer", "id", "url", "text")
    Options = BaikeOptions

    def extract(self, record: SourceRecord) -> list[Pair]:
        fields = record.fields
        title = self.text(fields, "title")
        if self.settings.fields.get("answer", "answer") in fields:
            return self._qa(record, title)
        if self.settings.fields.get("text", "text") in fields:
            return self._entry(record, title)
        raise ExtractError("missing_field", "record has neither 'answer' (baike_qa) nor 'text' (wiki)")

    def _qa(self, record: SourceRecord, title: str) -> list[Pair]:
        question = joined(title, self.text(record.fields, "desc")) if self.options.with_description else title
        answer = self.text(record.fields, "answer")
        if not question:
            raise ExtractError("empty_question", "question title is empty")
        if not answer:
            raise ExtractError("empty_answer", "answer is empty")
        return [self.pair(record, "question_answer", question, answer, self.text(record.fields, "qid"))]

    def _entry(self, record: SourceRecord, title: str) -> list[Pair]:
        if not title:
            raise ExtractError("empty_title", "entry title is empty")
        origin = self.text(record.fields, "url") or self.text(record.fields, "id")
        blocks = [block.strip() for block in self.text(record.fields, "text").split("\n\n") if block.strip()]
        if blocks and blocks[0] == title:
            blocks = blocks[1:]
        pairs = []
        if blocks and not wiki_heading(blocks[0]):
            pairs.append(self.pair(record, "title_summary", title, blocks[0], origin))
        for heading, passage in sections(blocks, wiki_heading):
            query = f"{title} {heading}" if self.options.subtitle_with_title else heading
            pairs.append(self.pair(record, "subtitle_passage", query, passage, origin))
        if not pairs:
            raise ExtractError("empty_text", "entry has no text beyond its title")
        return pairs
