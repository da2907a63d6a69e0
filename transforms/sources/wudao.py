"""WuDaoCorpora: JSON arrays of `{id, uniqueKey, titleUkey, dataType, title, content}` -> (title, content).

Both published layouts are read: a bare JSON array, and the array wrapped as `{"RECORDS": [...]}`.
The FlagAI-derived JSON-lines layout `{title, id, meta, text}` is read too (`.jsonl` files).
"""
from __future__ import annotations

from typing import IO, Iterator

from cmtp.schemas import Pair
from cmtp.transforms.io import logical_name
from cmtp.transforms.sources.base import ExtractError, Source, SourceRecord, register, text_field
from cmtp.transforms.sources.layouts import Item, Parsed, Unparsed, iter_json_array, iter_json_lines


@register
class Wudao(Source):
    name = "wudao"
    expected_layout = 'a JSON array (or {"RECORDS": [...]}) of {id, title, content, ...} objects, or .jsonl of {id, title, text}'

    def parse(self, path: str, stream: IO[bytes]) -> Iterator[Item]:
        items = iter_json_lines(stream) if logical_name(path).endswith(".jsonl") else iter_json_array(stream)
        for item in items:
            if isinstance(item, Parsed) and not isinstance(item.value, dict):
                yield Unparsed(item.position, "not_an_object", f"expected a JSON object, got {type(item.value).__name__}",
                               str(item.value)[:200])
            else:
                yield item

    def extract(self, record: SourceRecord) -> list[Pair]:
        fields = record.fields
        if "content" not in fields and "text" not in fields:
            raise ExtractError("missing_field", "record has neither 'content' nor 'text'")
        title = text_field(fields, "title").strip()
        content = text_field(fields, "content" if "content" in fields else "text").strip()
        if not title:
            raise ExtractError("empty_title", "title is empty, so there is no query for the content")
        if not content:
            raise ExtractError("empty_content", "content is empty")
        return [self.pair(record, "title_body", title, content, fields.get("id"))]
