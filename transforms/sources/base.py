"""What every source provides: a reader from its native files to records, and an extractor from records to pairs.

A source is configured by `SourceSettings`: which of its pair kinds to emit, how many pairs one
record may give, field-name overrides for look-alike layouts (a dump that says `headline` where
the publisher says `title`), and its own typed `Options`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import IO, Any, ClassVar, Iterator, Mapping, NamedTuple, Optional

from pydantic import BaseModel, ConfigDict

from cmtp.schemas import Pair, pair_id
from cmtp.transforms.sources.layouts import Item, iter_json_records
from cmtp.transforms.sources.records import only_objects


class SourceRecord(NamedTuple):
    """One parsed record of a source, with where it was read."""

    source: str
    file: str
    position: str
    fields: Any


class ExtractError(Exception):
    """A record that yields no pair: `reason` is machine-readable, `detail` says what was found; `stage` is the
    reject's stage (a subclass may name its own, as query generation does)."""

    stage: ClassVar[str] = "extract"

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SourceOptions(BaseModel):
    """A source's own options; subclasses add typed fields with defaults. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


@dataclass(frozen=True)
class SourceSettings:
    kinds: Optional[tuple[str, ...]] = None  # None: every kind the source can give
    max_pairs_per_record: Optional[int] = None  # None: no cap
    fields: Mapping[str, str] = field(default_factory=dict)  # the source's field name -> the name in the file
    options: Mapping[str, Any] = field(default_factory=dict)  # validated by the source's Options


class Extracted(NamedTuple):
    pairs: list[Pair]
    capped: int  # pairs the record gave beyond max_pairs_per_record


class Source:
    """A dataset in its published layout. Subclasses set the class attributes and implement `parse` and `extract`."""

    name: ClassVar[str]
    expected_layout: ClassVar[str]  # said to the user when a file is in another layout
    kinds: ClassVar[tuple[str, ...]]  # the pair kinds it can give, in the order it gives them
    field_names: ClassVar[tuple[str, ...]] = ()  # the fields a user may rename with `fields:`
    Options: ClassVar[type[SourceOptions]] = SourceOptions

    def __init__(self, settings: SourceSettings = SourceSettings()):
        """Raises ValueError for a kind or field the source does not have (pydantic's for a bad option)."""
        unknown = [kind for kind in settings.kinds or () if kind not in self.kinds]
        if unknown:
            raise ValueError(f"kinds: {unknown[0]!r} is not a kind of {self.name}; it gives {', '.join(self.kinds)}")
        unknown = [name for name in settings.fields if name not in self.field_names]
        if unknown:
            raise ValueError(f"fields: {unknown[0]!r} is not a field of {self.name}; renamable fields: "
                             f"{', '.join(self.field_names) or 'none'}")
        self.settings = settings
        self.options = self.Options.model_validate(dict(settings.options))
        self.enabled = frozenset(settings.kinds or self.kinds)
        if "similar_question" in self.enabled and "question_answer" not in self.enabled:
            raise ValueError("kinds: similar_question pairs are derived from question_answer pairs; enable both")

    def parse(self, path: str, stream: IO[bytes]) -> Iterator[Item]:
        """The file's records as `Parsed` values (or `Unparsed` failures), in file order.

        By default JSON objects, as JSON lines or a JSON array (most publishers use one of the two);
        sources with other layouts override this.
        """
        return only_objects(iter_json_records(stream))

    def extract(self, record: SourceRecord) -> list[Pair]:
        """The pairs the record gives (of any kind); raises ExtractError when it cannot give one."""
        raise NotImplementedError

    def check(self, record: SourceRecord) -> list[Pair]:
        """What the up-front layout check runs on a file's first records: `extract`, unless that is expensive
        (querygen checks its inner source's extraction and generates nothing)."""
        return self.extract(record)

    def extract_enabled(self, record: SourceRecord) -> Extracted:
        """The record's pairs of the enabled kinds, at most max_pairs_per_record; ExtractError when none."""
        pairs = [pair for pair in self.extract(record) if pair.kind in self.enabled]
        if not pairs:
            raise ExtractError("no_pair", f"no pair of the enabled kinds ({', '.join(sorted(self.enabled))})")
        cap = self.settings.max_pairs_per_record
        if cap is not None and len(pairs) > cap:
            return Extracted(pairs[:cap], len(pairs) - cap)
        return Extracted(pairs, 0)

    def text(self, fields: Any, name: str, required: bool = False) -> str:
        """A string field by its source name (renamed by `fields:` if configured), stripped; absent or null
        is "" (or a `missing_field` error when required); anything but a string or number is refused."""
        key = self.settings.fields.get(name, name)
        if not isinstance(fields, dict):
            raise ExtractError("not_an_object", f"expected a JSON object, got {type(fields).__name__}")
        if key not in fields:
            if required:
                raise ExtractError("missing_field", f"record has no {key!r}")
            return ""
        value = fields[key]
        if value is None:
            return ""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise ExtractError("wrong_type", f"field {key!r} is {type(value).__name__}, expected a string")
        return value.strip()

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


REGISTRY: dict[str, type[Source]] = {}


def register(cls: type[Source]) -> type[Source]:
    """Class decorator: make the source available to configs under its `name`."""
    REGISTRY[cls.name] = cls
    return cls
