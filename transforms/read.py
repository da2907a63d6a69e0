"""Read a source's files into records; what cannot be read becomes a located reject (stage `read`)."""
from __future__ import annotations

import codecs
import gzip
import os
import re
import zipfile
import zlib
from itertools import islice
from typing import Iterator, Optional, Union

import apache_beam as beam
import zstandard
from apache_beam.metrics import Metrics

from cmtp.schemas import Reject, pair_id
from cmtp.transforms.io import not_a_regular_file, open_binary
from cmtp.transforms.report import STATS, stat
from cmtp.transforms.sources import ExtractError, Source, SourceRecord
from cmtp.transforms.sources.layouts import DAMAGE_REASONS, Item, LayoutError, Parsed

REJECTS = "rejects"
_SURROGATE = re.compile("[\ud800-\udfff]")  # an undecodable byte kept as a surrogate escape, or half a character


def read_reject(source: str, path: str, position: str, reason: str, detail: str, text: str | None = None) -> Reject:
    """A located reject of stage `read`; undecodable bytes in its texts show as U+FFFD (Parquet holds UTF-8)."""
    return Reject(id=pair_id(source, "read", path, position), source=source, stage="read", reason=reason,
                  detail=_SURROGATE.sub("\ufffd", detail), file=path, position=position,
                  text=None if text is None else _SURROGATE.sub("\ufffd", text))


class _ReadFile(beam.DoFn):
    def __init__(self, source: Source):
        self._source = source
        self._records = Metrics.counter("read", f"{source.name}.records")
        self._rejects = Metrics.counter("read", f"{source.name}.rejects")

    def process(self, path: str) -> Iterator[Union[SourceRecord, beam.pvalue.TaggedOutput]]:
        seen = 0
        for output in self._read(path):
            seen += 1
            yield output
        if seen == 0:  # say so: an empty input is often a failed download
            seen = 1
            yield self._reject(path, "file", "no_records", "the file holds no records")
        yield stat(self._source.name, "records_read", seen)

    def _read(self, path: str) -> Iterator[Union[SourceRecord, beam.pvalue.TaggedOutput]]:
        name = self._source.name
        if os.path.isdir(path):  # a folder its glob could not list (see io.expand_paths)
            yield self._reject(path, "file", "unreadable", _unlisted_folder(path))
            return
        problem = not_a_regular_file(path)
        if problem:
            yield self._reject(path, "file", "unreadable", problem)
            return
        try:
            with open_binary(path) as stream:
                if stream.peek(2)[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
                    yield self._reject(path, "file", "undecodable", "UTF-16 text (it opens with a UTF-16 byte-order "
                                       "mark); re-encode the file as UTF-8")
                    return
                cut = False  # a record the end of the bytes cut is already a `truncated` reject
                for item in self._source.parse(path, stream):
                    if isinstance(item, Parsed):
                        self._records.inc()
                        yield SourceRecord(name, path, item.position, item.value)
                    else:
                        cut = cut or item.reason == "truncated"
                        yield self._reject(path, item.position, item.reason, item.detail, item.text)
                if stream.failure and not cut:
                    yield self._reject(path, "file", "unreadable", f"{stream.failure}; the {stream.delivered} bytes "
                                       "before it were read")
        except LayoutError as error:
            yield self._reject(path, "file", "unexpected_layout",
                               f"{error}; {name} expects {self._source.expected_layout}")
        except _UNREADABLE as error:
            yield self._reject(path, "file", "unreadable", f"{type(error).__name__}: {error}")

    def _reject(self, path: str, position: str, reason: str, detail: str,
                text: str | None = None) -> beam.pvalue.TaggedOutput:
        self._rejects.inc()
        return beam.pvalue.TaggedOutput(REJECTS, read_reject(self._source.name, path, position, reason, detail, text))


def _unlisted_folder(path: str) -> str:
    """The reject detail for an input folder: its glob could not list it, so no file under it is read."""
    try:
        with os.scandir(path):
            cause = "unreadable when the paths were expanded"
    except OSError as error:
        cause = f"{type(error).__name__}: {error.strerror}"
    return f"folder {path} could not be listed ({cause}); no file under it was read"


_UNREADABLE = (OSError, EOFError, zlib.error, zstandard.ZstdError, gzip.BadGzipFile, zipfile.BadZipFile)


def check_layout(source: Source, path: str, probe: int = 5) -> Optional[str]:
    """Why the file is not in a layout the source reads, judged from its first records; None when it is.

    Run for every input before the pipeline starts, so pointing a source at the wrong files is
    refused at once rather than as a run of rejects. Only another layout is refused: a file that is
    empty, cut short, unreadable or holds bad bytes passes, and is rejected while reading, keeping
    every record that can be read.
    """
    if not_a_regular_file(path):
        return None  # rejected while reading, without opening it
    try:
        with open_binary(path) as stream:
            items = [item for item in islice(source.parse(path, stream), probe) if not _damaged(item)]
    except LayoutError as error:
        return str(error)
    except _UNREADABLE:
        return None
    if items and not any(isinstance(item, Parsed) for item in items):
        return f"its first {len(items)} records do not parse ({items[0].position}: {items[0].detail})"
    misfits = []
    for item in (item for item in items if isinstance(item, Parsed)):
        try:
            source.check(SourceRecord(source.name, path, item.position, item.value))
            return None
        except ExtractError as error:
            if error.reason not in LAYOUT_REASONS:
                return None
            misfits.append(f"{item.position}: {error.detail}")
    if misfits:
        return f"its first {len(misfits)} records lack the fields it needs ({misfits[0]})"
    return None


def _damaged(item: Item) -> bool:
    """A record lost to damage (bad bytes, a cut, its size), which says nothing about the file's layout."""
    return not isinstance(item, Parsed) and item.reason in DAMAGE_REASONS


LAYOUT_REASONS = frozenset({"missing_field", "not_an_object", "wrong_type", "wrong_column_count", "not_a_row"})


class ReadSource(beam.PTransform):
    """Files of one source -> records (main output), read rejects (`rejects`) and the reader's counts (`stats`).

    The file list is fixed at construction, so a missing input is refused before the pipeline
    starts; a reshuffle spreads files over workers instead of fusing them all behind one.
    """

    def __init__(self, source: Source, paths: list[str]):
        super().__init__()
        self._source = source
        self._paths = paths

    def expand(self, pbegin):
        return (
            pbegin
            | "Files" >> beam.Create(self._paths)
            | "Spread" >> beam.Reshuffle()
            | "Parse" >> beam.ParDo(_ReadFile(self._source)).with_outputs(REJECTS, STATS, main="records")
        )
