"""What every source provides: a reader from its native files to records, and an extractor from records to pairs."""
from __future__ import annotations

from typing import IO, Any, ClassVar, Iterator, NamedTuple

from cmtp.schemas import Pair, pair_id
from cmtp.transforms.sources.layouts import Item


class SourceRecord(NamedTuple):
    """One parsed record of a source, with where it was read."""

    source: str
    file: str
    position: str
    fields: Any


class ExtractError(Exception):
    """A record that yields no pair: `reason` is machine-readable, `detail` says what was found."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Source:
    """A dataset in its published layout. Subclasses set `name` and implement `parse` and `extract`."""

    name: ClassVar[str]
    expected_layout: ClassVar[str]  # said to the user when a file is in another layout

    def parse(self, path: str, stream: IO[bytes]) -> Iterator[Item]:
        """The file's records as `Parsed` values (or `Unparsed` failures), in file order."""
        raise NotImplementedError

    def extract(self, record: SourceRecord) -> list[Pair]:
        """The pairs the record gives; raises ExtractError when it gives none."""
        raise NotImplementedError

    def pair(self, record: SourceRecord, kind: str, query: str, passage: str, origin_id: Any = None) -> Pair:
        return Pair(
            id=pair_id(self.name, kind, query, passage),
            query=query,
            passage=passage,
            source=self.name,
            kind=kind,
            file=record.file,
            position=record.position,
            origin_id=None if origin_id in (None, "") else str(origin_id),
        )


def text_field(fields: dict, key: str) -> str:
    """A string field of a JSON record: absent or null is "", anything but a string is refused."""
    value = fields.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ExtractError("wrong_type", f"field {key!r} is {type(value).__name__}, expected a string")
    return value


REGISTRY: dict[str, type[Source]] = {}


def register(cls: type[Source]) -> type[Source]:
    """Class decorator: make the source available to configs under its `name`."""
    REGISTRY[cls.name] = cls
    return cls
