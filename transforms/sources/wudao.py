"""WuDaoCorpora: JSON records `{id, uniqueKey, titleUkey, dataType, title, content}` -> (title, content),
and (sub-title, passage) where the content has enumerated headings ("一、…", "（二）…", "3、…").

Layouts: a JSON array, the array wrapped as `{"RECORDS": [...]}`, and the FlagAI JSON lines
`{title, id, meta, text}`; told apart from the file's first line.
"""
from __future__ import annotations

import re

from cmtp.schemas import Pair
from cmtp.transforms.sources.base import ExtractError, Source, SourceOptions, SourceRecord, register
from cmtp.transforms.sources.sections import numbered_heading, sections

_LEAD_QUESTION = re.compile(r"^(.{4,64}?[？?])(.+)$", re.DOTALL)


class WudaoOptions(SourceOptions):
    subtitle_with_title: bool = True  # query "title heading": a bare "发展历程" means little on its own
    lead_question_as_title: bool = False  # empty title + content opening with a short question: use it


@register
class Wudao(Source):
    name = "wudao"
    expected_layout = 'a JSON array (or {"RECORDS": [...]}) of {id, title, content, ...}, or JSON lines of {id, title, text}'
    kinds = ("title_body", "subtitle_passage")
    field_names = ("id", "title", "content", "text")
    Options = WudaoOptions

    def extract(self, record: SourceRecord) -> list[Pair]:
        fields = record.fields
        has_content = self.settings.fields.get("content", "content") in fields
        content = self.text(fields, "content" if has_content else "text", required=True)
        title = self.text(fields, "title")
        origin = self.text(fields, "id")
        if not content:
            raise ExtractError("empty_content", "content is empty")
        body = content
        if not title and self.options.lead_question_as_title:
            lead = _LEAD_QUESTION.match(content)
            if lead:
                title, body = lead.group(1).strip(), lead.group(2).strip()
        pairs = [self.pair(record, "title_body", title, body, origin)] if title and body else []
        for heading, passage in sections(content.split("\n"), numbered_heading):
            query = f"{title} {heading}" if title and self.options.subtitle_with_title else heading
            pairs.append(self.pair(record, "subtitle_passage", query, passage, origin))
        if not pairs:
            raise ExtractError("empty_title", "title is empty and the content has no headed sections")
        return pairs
