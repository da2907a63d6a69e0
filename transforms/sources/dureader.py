"""DuReader 2.0 as a QA source: JSON lines `{question_id, question, documents: [{title, paragraphs, is_selected,
most_related_para}], ...}` -> (question, the most related paragraph of each selected document) `question_passage`."""
from __future__ import annotations

from cmtp.schemas import Pair
from cmtp.transforms.sources.base import ExtractError, Source, SourceRecord, register


def related_paragraphs(fields: dict) -> list[str]:
    """The most related paragraph of each selected document of a DuReader 2.0 record, in document order."""
    documents = fields.get("documents")
    if not isinstance(documents, list):
        raise ExtractError("missing_field", "record has no 'documents' list")
    selected = [d for d in documents if isinstance(d, dict) and d.get("is_selected")]
    if not selected:
        raise ExtractError("no_selected_document", f"none of {len(documents)} documents is selected")
    paragraphs = []
    for document in selected:
        texts, index = document.get("paragraphs"), document.get("most_related_para")
        if isinstance(texts, list) and isinstance(index, int) and 0 <= index < len(texts) \
                and isinstance(texts[index], str) and texts[index].strip():
            paragraphs.append(texts[index].strip())
    if not paragraphs:
        raise ExtractError("no_related_paragraph",
                           "no selected document has a most_related_para that points at a paragraph")
    return paragraphs


@register
class DuReader(Source):
    name = "dureader"
    expected_layout = "JSON lines of {question_id, question, documents: [{paragraphs, is_selected, most_related_para}]}"
    kinds = ("question_passage",)

    def extract(self, record: SourceRecord) -> list[Pair]:
        fields = record.fields
        question = self.text(fields, "question", required=True)
        if not question:
            raise ExtractError("empty_question", "question is empty")
        return [self.pair(record, "question_passage", question, paragraph, fields.get("question_id"))
                for paragraph in related_paragraphs(fields)]
