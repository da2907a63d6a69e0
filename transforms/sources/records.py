"""Small helpers shared by JSON-based readers."""
from __future__ import annotations

from typing import Iterator

from cmtp.transforms.sources.layouts import Item, Parsed, Unparsed


def only_objects(items: Iterator[Item]) -> Iterator[Item]:
    """Pass records that are JSON objects; any other JSON value is a located `not_an_object` failure."""
    for item in items:
        if isinstance(item, Parsed) and not isinstance(item.value, dict):
            yield Unparsed(item.position, "not_an_object", f"expected a JSON object, got {type(item.value).__name__}",
                           str(item.value)[:200])
        else:
            yield item


def joined(*parts: str) -> str:
    """Non-empty parts joined by a space (a question and its description)."""
    return " ".join(part for part in parts if part)
