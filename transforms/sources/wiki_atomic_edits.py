"""Wiki Atomic Edits (Chinese insertions): tsv with header `base_sentence, phrase, edited_sentence` ->
(base_sentence, edited_sentence) `paraphrase`.

The dump may separate words with spaces; spaces next to a Chinese character are removed so the
pair reads as Chinese is written (spaces between two Latin words stay).
"""
from __future__ import annotations

import re
from typing import IO, Iterator

from cmtp.schemas import Pair
from cmtp.transforms.sources.base import ExtractError, Source, SourceOptions, SourceRecord, register
from cmtp.transforms.sources.layouts import Item, LayoutError, Parsed, Unparsed, iter_tsv

HEADER = ["base_sentence", "phrase", "edited_sentence"]
_WIDE = "\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_SPACE_BY_WIDE = re.compile(f"(?<=[{_WIDE}]) +| +(?=[{_WIDE}])")


def detokenize(text: str) -> str:
    """Remove the spaces a word tokenizer put around Chinese characters and full-width punctuation."""
    return _SPACE_BY_WIDE.sub("", text)


class WikiEditsOptions(SourceOptions):
    detokenize: bool = True


@register
class WikiAtomicEdits(Source):
    name = "wiki_atomic_edits"
    expected_layout = "tsv with the header base_sentence, phrase, edited_sentence"
    kinds = ("paraphrase",)
    Options = WikiEditsOptions

    def parse(self, path: str, stream: IO[bytes]) -> Iterator[Item]:
        for item in iter_tsv(stream):
            if isinstance(item, Parsed) and item.position == "line 1":
                if [cell.strip().lstrip("\ufeff") for cell in item.value] != HEADER:
                    raise LayoutError(f"first line is not the header {HEADER}: {item.value[:3]}")
                continue
            if isinstance(item, Parsed) and len(item.value) != len(HEADER):
                yield Unparsed(item.position, "wrong_column_count", f"{len(item.value)} columns; expected 3",
                               "\t".join(item.value)[:200])
            elif isinstance(item, Parsed):
                yield Parsed(item.position, dict(zip(HEADER, item.value)))
            else:
                yield item

    def extract(self, record: SourceRecord) -> list[Pair]:
        base, edited = self.text(record.fields, "base_sentence"), self.text(record.fields, "edited_sentence")
        if self.options.detokenize:
            base, edited = detokenize(base), detokenize(edited)
        if not base or not edited:
            raise ExtractError("empty_sentence", "base or edited sentence is empty")
        if base == edited:
            raise ExtractError("no_edit", "edited sentence equals the base sentence")
        return [self.pair(record, "paraphrase", base, edited)]
