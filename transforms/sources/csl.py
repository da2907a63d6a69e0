"""CSL (Chinese Scientific Literature): (title, abstract) and (keywords, abstract).

Layouts: the full dump, tsv `title, abstract, keywords(_-joined), discipline, category` without
header; the CSL benchmark's tsv files `"to title", abstract, title` (ts_*) and
`"to keywords", abstract + " " + title, keywords` (kg_*); FewCLUE's JSON lines
`{id, abst, keyword: [...], label}`, where label "0" marks keywords that were tampered with.
"""
from __future__ import annotations

import re
from typing import IO, Iterator

from cmtp.schemas import Pair
from cmtp.transforms.io import logical_name
from cmtp.transforms.sources.base import ExtractError, Source, SourceRecord, register
from cmtp.transforms.sources.layouts import Item, Parsed, Unparsed, iter_json_records, iter_tsv
from cmtp.transforms.sources.records import only_objects

_FULL_DUMP = ("title", "abstract", "keywords", "discipline", "category")
_ABSTRACT_THEN_TITLE = re.compile(r"^(.*[.。!?！？])\s+(\S.*)$", re.DOTALL)
KEYWORD_SEPARATOR = "、"


@register
class Csl(Source):
    name = "csl"
    expected_layout = ("tsv: title, abstract, keywords, discipline, category (full dump); 'to title', abstract, "
                       "title; 'to keywords', abstract + title, keywords; or FewCLUE JSON lines {abst, keyword, label}")
    kinds = ("title_abstract", "keywords_abstract")

    def parse(self, path: str, stream: IO[bytes]) -> Iterator[Item]:
        if logical_name(path).endswith((".json", ".jsonl")):
            yield from only_objects(iter_json_records(stream))
            return
        for item in iter_tsv(stream):
            if isinstance(item, Unparsed):
                yield item
                continue
            row = item.value
            if len(row) == len(_FULL_DUMP):
                yield Parsed(item.position, dict(zip(_FULL_DUMP, row)))
            elif len(row) == 3 and row[0] == "to title":
                yield Parsed(item.position, {"title": row[2], "abstract": row[1]})
            elif len(row) == 3 and row[0] == "to keywords":
                split = _ABSTRACT_THEN_TITLE.match(row[1])
                abstract = split.group(1) if split else row[1]
                yield Parsed(item.position, {"abstract": abstract, "keywords": row[2]})
            else:
                yield Unparsed(item.position, "wrong_column_count",
                               f"{len(row)} tab-separated columns; expected {self.expected_layout}",
                               "\t".join(row)[:200])

    def extract(self, record: SourceRecord) -> list[Pair]:
        fields = record.fields
        if not isinstance(fields, dict) or not ({"abst", "abstract"} & set(fields)):
            raise ExtractError("missing_field", "record has neither 'abst' (FewCLUE) nor 'abstract'")
        if "abst" in fields:  # FewCLUE
            if str(fields.get("label")) != "1":
                raise ExtractError("keywords_not_genuine", "FewCLUE label is not 1: the keywords were tampered with")
            abstract, keywords = self.text(fields, "abst"), fields.get("keyword") or []
            if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
                raise ExtractError("wrong_type", "'keyword' is not a list of strings")
        else:
            abstract = self.text(fields, "abstract")
            keywords = [k for k in self.text(fields, "keywords").split("_")]
        keywords = [k.strip() for k in keywords if k.strip()]
        if not abstract:
            raise ExtractError("empty_abstract", "abstract is empty")
        title = self.text(fields, "title")
        pairs = [self.pair(record, "title_abstract", title, abstract, fields.get("id"))] if title else []
        if keywords:
            pairs.append(self.pair(record, "keywords_abstract", KEYWORD_SEPARATOR.join(keywords), abstract,
                                   fields.get("id")))
        if not pairs:
            raise ExtractError("empty_title", "paper title is empty and there are no keywords")
        return pairs
