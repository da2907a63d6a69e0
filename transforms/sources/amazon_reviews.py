"""amazon_reviews_multi (zh): JSON lines `{review_id, product_id, reviewer_id, stars, review_body, review_title,
language, product_category}` -> (review_title, review_body) `title_body`."""
from __future__ import annotations

from cmtp.schemas import Pair
from cmtp.transforms.sources.base import ExtractError, Source, SourceOptions, SourceRecord, register


class AmazonOptions(SourceOptions):
    languages: list[str] = ["zh"]  # the dataset ships every language in the same layout


@register
class AmazonReviews(Source):
    name = "amazon_reviews"
    expected_layout = "JSON lines of {review_id, stars, review_body, review_title, language, product_category, ...}"
    kinds = ("title_body",)
    field_names = ("review_id", "review_title", "review_body", "language")
    Options = AmazonOptions

    def extract(self, record: SourceRecord) -> list[Pair]:
        fields = record.fields
        language = self.text(fields, "language")
        if language and language not in self.options.languages:
            raise ExtractError("other_language", f"review language {language!r} is not in {self.options.languages}")
        title, body = self.text(fields, "review_title"), self.text(fields, "review_body", required=True)
        if not title:
            raise ExtractError("empty_title", "review title is empty")
        if not body:
            raise ExtractError("empty_body", "review body is empty")
        return [self.pair(record, "title_body", title, body, self.text(fields, "review_id"))]
