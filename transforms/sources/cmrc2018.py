"""CMRC 2018 reading comprehension: each question with its context -> (question, context).

Two published layouts: the SQuAD one (`{"data": [{"paragraphs": [{"context", "qas": [...]}]}]}`) and the
original list (`[{"context_text", "qas": [{"query_text", ...}]}]`). A record is one question.
"""
from __future__ import annotations

from typing import IO, Any, Iterator

from cmtp.schemas import Pair
from cmtp.transforms.io import holds_surrogates, redecode
from cmtp.transforms.sources.base import ExtractError, Source, SourceRecord, register
from cmtp.transforms.sources.layouts import Item, LayoutError, Parsed, Unparsed, load_json_document


@register
class Cmrc2018(Source):
    name = "cmrc2018"
    expected_layout = 'SQuAD JSON {"data": [{"paragraphs": [{"context", "qas"}]}]} or the original [{"context_text", "qas"}]'
    kinds = ("question_passage",)

    def parse(self, path: str, stream: IO[bytes]) -> Iterator[Item]:
        loaded = load_json_document(stream)
        if loaded is None:  # an empty file: the reader rejects it as `no_records`
            return
        if isinstance(loaded, Unparsed):  # the document is cut short or too deep: one reject
            yield loaded
            return
        document = loaded.value
        if isinstance(document, dict) and isinstance(document.get("data"), list):
            yield from self._squad(document["data"])
        elif isinstance(document, list):
            yield from self._original(document)
        else:
            raise LayoutError("top level is neither {'data': [...]} nor a list of contexts")

    def _squad(self, articles: list) -> Iterator[Item]:
        for a, article in enumerate(articles):
            paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
            if not isinstance(paragraphs, list):
                yield Unparsed(f"data[{a}]", "missing_field", "article has no 'paragraphs' list", str(article)[:200])
                continue
            for p, paragraph in enumerate(paragraphs):
                yield from self._questions(f"data[{a}].paragraphs[{p}]", paragraph, "context", "question", "id")

    def _original(self, contexts: list) -> Iterator[Item]:
        for c, context in enumerate(contexts):
            yield from self._questions(f"[{c}]", context, "context_text", "query_text", "query_id")

    @staticmethod
    def _questions(where: str, paragraph: Any, context_key: str, question_key: str, id_key: str) -> Iterator[Item]:
        qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
        if not isinstance(qas, list) or not qas:
            yield Unparsed(where, "missing_field", "paragraph has no questions ('qas')", str(paragraph)[:200])
            return
        for q, qa in enumerate(qas):
            if not isinstance(qa, dict):
                yield Unparsed(f"{where}.qas[{q}]", "not_an_object", "question is not a JSON object", str(qa)[:200])
                continue
            yield _question(f"{where}.qas[{q}]", {"context": paragraph.get(context_key),
                                                  "question": qa.get(question_key), "id": qa.get(id_key)})

    def extract(self, record: SourceRecord) -> list[Pair]:
        question = self.text(record.fields, "question")
        context = self.text(record.fields, "context")
        if not question:
            raise ExtractError("empty_question", "question text is empty")
        if not context:
            raise ExtractError("empty_context", "the question's paragraph has no context text")
        return [self.pair(record, "question_passage", question, context, record.fields.get("id"))]


def _question(where: str, fields: dict) -> Item:
    """A question record, its texts read in the record's own encoding; bytes that are neither UTF-8 nor GB18030
    make it an `undecodable` reject (the rest of the document is unaffected)."""
    if not holds_surrogates(fields):  # clean text, told by one scan: undecodable bytes are kept as surrogates
        return Parsed(where, fields)
    names = [name for name, value in fields.items() if isinstance(value, str)]
    texts = redecode([fields[name] for name in names])
    if texts is None or holds_surrogates(texts):
        return Unparsed(where, "undecodable", f"bytes in its {' or '.join(names)} are neither UTF-8 nor GB18030",
                        str(fields.get("question"))[:200])
    return Parsed(where, {**fields, **dict(zip(names, texts))})
