"""XL-Sum (chinese_simplified): JSON lines `{id, url, title, summary, text}` ->
(title, summary) `title_summary` and (summary, text) `summary_body`."""
from __future__ import annotations

from cmtp.schemas import Pair
from cmtp.transforms.sources.base import ExtractError, Source, SourceRecord, register


@register
class XlSum(Source):
    name = "xlsum"
    expected_layout = "JSON lines of {id, url, title, summary, text}"
    kinds = ("title_summary", "summary_body")
    field_names = ("id", "url", "title", "summary", "text")

    def extract(self, record: SourceRecord) -> list[Pair]:
        fields = record.fields
        title, text = self.text(fields, "title"), self.text(fields, "text")
        summary = self.text(fields, "summary", required=True)
        origin = self.text(fields, "url") or self.text(fields, "id")
        if not summary:
            raise ExtractError("empty_summary", "summary is empty")
        pairs = []
        if title:
            pairs.append(self.pair(record, "title_summary", title, summary, origin))
        if text:
            pairs.append(self.pair(record, "summary_body", summary, text, origin))
        if not pairs:
            raise ExtractError("empty_text", "neither title nor text has text")
        return pairs
