"""Parsers for the file layouts sources use: JSON arrays (streamed, with recovery), JSON lines, TSV, JSON documents.

Each parser yields `Parsed(position, value)` for a record it could read and `Unparsed(position, reason,
detail, text)` for one it could not, so a reader turns the second into a located reject and goes on.
"""
from __future__ import annotations

import csv
import json
import re
from typing import IO, Any, Iterator, NamedTuple, Union

import pyarrow.parquet as pq

from cmtp.transforms.io import Line, iter_lines, open_text, sniff_encoding

_WS = re.compile(r"\s*")
_RECORDS_WRAPPER = re.compile(r'\s*\{\s*"RECORDS"\s*:\s*\[')
_NEXT_RECORD = re.compile(r"\}\s*,\s*(?=\{)")
_CHUNK = 1 << 20
_MAX_RECORD_CHARS = 16 << 20
_SNIPPET = 200


class Parsed(NamedTuple):
    position: str
    value: Any


class Unparsed(NamedTuple):
    position: str
    reason: str
    detail: str
    text: str


Item = Union[Parsed, Unparsed]


class LayoutError(ValueError):
    """The file as a whole is not in the layout the source expects."""


def iter_json_array(stream: IO[bytes]) -> Iterator[Item]:
    """Elements of a top-level JSON array, or of the array in `{"RECORDS": [...]}`, one at a time.

    Memory holds one chunk plus the current record, not the file. A malformed element becomes an
    `Unparsed` and reading resumes at the next `}, {` boundary, so one broken record costs one record.
    """
    text = open_text(stream)
    buf, pos, eof = "", 0, False
    mark, mark_line = 0, 1  # a position in buf and its line number: lines are counted once, moving forward

    def compact() -> None:
        nonlocal buf, pos, mark, mark_line
        if pos > _CHUNK:  # drop what has been consumed, keeping the line count
            mark_line, mark = line_at(pos), 0
            buf, pos = buf[pos:], 0

    def fill() -> bool:
        nonlocal buf, eof
        if eof:
            return False
        chunk = text.read(_CHUNK)
        eof = chunk == ""
        buf += chunk
        return not eof

    def line_at(index: int) -> int:
        nonlocal mark, mark_line
        if index < mark:
            return mark_line - buf.count("\n", index, mark)
        mark_line += buf.count("\n", mark, index)
        mark = index
        return mark_line

    def skip_ws() -> None:
        nonlocal pos
        while True:
            pos = _WS.match(buf, pos).end()
            if pos < len(buf) or not fill():
                return

    fill()
    skip_ws()
    if pos >= len(buf):  # empty or blank file: no records (the reader says so)
        return
    wrapper = _RECORDS_WRAPPER.match(buf, pos)
    if wrapper:
        pos = wrapper.end()
    elif buf[pos:pos + 1] == "[":
        pos += 1
    else:
        raise LayoutError('expected a JSON array or {"RECORDS": [...]}, found ' + repr(buf[pos:pos + 40]))
    decoder = json.JSONDecoder()
    index = 0
    while True:
        compact()
        skip_ws()
        if pos >= len(buf) or buf[pos] == "]":
            return
        if buf[pos] == ",":
            pos += 1
            continue
        where = f"record {index} (line {line_at(pos)})"
        try:
            value, pos = decoder.raw_decode(buf, pos)
            yield Parsed(where, value)
            index += 1
            continue
        except json.JSONDecodeError as error:
            if not eof and len(buf) - pos < _MAX_RECORD_CHARS and fill():
                continue  # the record may only be cut by the chunk's end: read on and retry
            failure = error
        boundary = _NEXT_RECORD.search(buf, pos + 1)
        end = boundary.end() if boundary else len(buf)
        detail = f"{failure.msg} at line {line_at(failure.pos)} column {failure.pos - buf.rfind(chr(10), 0, failure.pos)}"
        yield Unparsed(where, "invalid_json", detail, buf[pos:min(end, pos + _SNIPPET)])
        index += 1
        pos = end
        if boundary is None:
            return


def iter_json_records(stream: IO[bytes]) -> Iterator[Item]:
    """JSON records in whichever of the two common layouts the file uses, told from its first line:
    JSON lines (webtext2019zh's `.json` files are lines) or a JSON array / `{"RECORDS": [...]}`."""
    head = stream.peek(1 << 16)[:1 << 16]
    first_line = head.lstrip().split(b"\n", 1)[0].decode(sniff_encoding(head), "replace").lstrip("\ufeff")
    try:
        value = json.loads(first_line)
        is_lines = isinstance(value, dict) and "RECORDS" not in value
    except json.JSONDecodeError:
        is_lines = False
    return iter_json_lines(stream) if is_lines else iter_json_array(stream)


def iter_json_lines(stream: IO[bytes]) -> Iterator[Item]:
    """One JSON value per line; blank lines are skipped, undecodable or malformed lines are `Unparsed`."""
    for line in iter_lines(stream):
        if line.text is None:
            yield _undecodable(line)
        elif line.text.strip():
            try:
                yield Parsed(f"line {line.number}", json.loads(line.text))
            except json.JSONDecodeError as error:
                yield Unparsed(f"line {line.number}", "invalid_json", f"{error.msg} at column {error.colno}",
                               line.text[:_SNIPPET])


def iter_tsv(stream: IO[bytes]) -> Iterator[Item]:
    """Tab-separated rows as lists of fields; blank lines are skipped."""
    for line in iter_lines(stream):
        if line.text is None:
            yield _undecodable(line)
        elif line.text.strip():
            yield Parsed(f"line {line.number}", line.text.split("\t"))


def iter_csv(stream: IO[bytes]) -> Iterator[Item]:
    """CSV rows as dicts keyed by the header row; quoted fields may hold commas and newlines."""
    reader = csv.reader(open_text(stream))
    header = next(reader, None)
    if header is None:
        return
    for index, row in enumerate(reader, start=1):
        where = f"row {index} (line {reader.line_num})"
        if len(row) != len(header):
            yield Unparsed(where, "wrong_column_count", f"{len(row)} fields; the header has {len(header)}",
                           ",".join(row)[:_SNIPPET])
        elif any(row):
            yield Parsed(where, dict(zip(header, row)))


def iter_parquet(stream: IO[bytes]) -> Iterator[Item]:
    """Parquet rows as dicts, a record batch at a time; a file that is not Parquet is a LayoutError."""
    try:
        table = pq.ParquetFile(stream)
    except Exception as error:  # pyarrow raises ArrowInvalid (and friends) for a non-Parquet file
        raise LayoutError(f"not a Parquet file ({error})") from error
    index = 0
    for batch in table.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            yield Parsed(f"row {index}", row)
            index += 1


def load_json_document(stream: IO[bytes]) -> Any:
    """A whole-file JSON document (SQuAD and the like); a syntax error raises LayoutError with its location."""
    try:
        return json.load(open_text(stream))
    except json.JSONDecodeError as error:
        raise LayoutError(f"invalid JSON: {error.msg} at line {error.lineno} column {error.colno}") from error
    except UnicodeDecodeError as error:
        raise LayoutError(f"undecodable bytes at offset {error.start}: {error.reason}") from error


def _undecodable(line: Line) -> Unparsed:
    return Unparsed(f"line {line.number}", "undecodable", "bytes are neither UTF-8 nor GB18030",
                    line.raw[:_SNIPPET].decode("utf-8", "replace"))
