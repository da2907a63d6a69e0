"""News (news2016zh): JSON lines `{news_id, title, content, source, time, keywords, desc}` ->
(title, content) `title_body` and (title, desc) `title_summary`."""
from __future__ import annotations

from cmtp.schemas import Pair
from cmtp.transforms.sources.base import ExtractError, Source, SourceRecord, register


@register
class News(Source):
    name = "news"
    expected_layout = "JSON lines of {news_id, title, content, source, time, keywords, desc}"
    kinds = ("title_body", "title_summary")
    field_names = ("news_id", "title", "content", "desc")

    def extract(self, record: SourceRecord) -> list[Pair]:
        fields = record.fields
        title = self.text(fields, "title", required=True)
        content = self.text(fields, "content", required=True)
        desc = self.text(fields, "desc")
        origin = self.text(fields, "news_id")
        if not title:
            raise ExtractError("empty_title", "headline is empty")
        pairs = [self.pair(record, "title_body", title, content, origin)] if content else []
        if desc and desc != content:
            pairs.append(self.pair(record, "title_summary", title, desc, origin))
        if not pairs:
            raise ExtractError("empty_content", "neither content nor desc has text")
        return pairs
