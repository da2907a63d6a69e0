"""CSL (Chinese Scientific Literature): paper title -> abstract.

Layouts: the full dump, tsv `title, abstract, keywords(_-joined), discipline, category` without header;
and the CSL benchmark's title-generation tsv `"to title", abstract, title` (ts_*.tsv).
"""
from __future__ import annotations

from typing import IO, Iterator

from cmtp.schemas import Pair
from cmtp.transforms.sources.base import ExtractError, Source, SourceRecord, register
from cmtp.transforms.sources.layouts import Item, Parsed, Unparsed, iter_tsv

_FULL_DUMP = ("title", "abstract", "keywords", "discipline", "category")


@register
class Csl(Source):
    name = "csl"
    expected_layout = "tsv: title, abstract, keywords, discipline, category (full dump) or 'to title', abstract, title"

    def parse(self, path: str, stream: IO[bytes]) -> Iterator[Item]:
        for item in iter_tsv(stream):
            if isinstance(item, Unparsed):
                yield item
                continue
            row = item.value
            if len(row) == len(_FULL_DUMP):
                yield Parsed(item.position, dict(zip(_FULL_DUMP, row)))
            elif len(row) == 3 and row[0] == "to title":
                yield Parsed(item.position, {"title": row[2], "abstract": row[1]})
            else:
                yield Unparsed(item.position, "wrong_column_count",
                               f"{len(row)} tab-separated columns; expected {self.expected_layout}",
                               "\t".join(row)[:200])

    def extract(self, record: SourceRecord) -> list[Pair]:
        title, abstract = record.fields["title"].strip(), record.fields["abstract"].strip()
        if not title:
            raise ExtractError("empty_title", "paper title is empty")
        if not abstract:
            raise ExtractError("empty_abstract", "abstract is empty")
        return [self.pair(record, "title_abstract", title, abstract)]
