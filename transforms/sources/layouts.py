"""Parsers for the file layouts sources use: JSON arrays (streamed, with recovery), JSON lines, TSV, CSV, JSON documents.

Each parser yields `Parsed(position, value)` for a record it could read and `Unparsed(position, reason,
detail, text)` for one it could not, so a reader turns the second into a located reject and goes on. Bytes are
decoded per line or per record (UTF-8, else GB18030): a bad byte costs its record, never the file. Reasons for
damage, as opposed to another layout: `undecodable`, `truncated`, `record_too_large`, `too_deep`.
"""
from __future__ import annotations

import codecs
import csv
import json
import re
from typing import IO, Any, Iterator, NamedTuple, Optional, Union

import pyarrow.parquet as pq

from cmtp.transforms.io import (
    MAX_LINE_BYTES,
    Line,
    decode,
    failure_of,
    first_bad_byte,
    has_escapes,
    holds_surrogates,
    iter_lines,
)

_WS = re.compile(r"\s*")
_RECORDS_WRAPPER = re.compile(r'\s*\{\s*"RECORDS"\s*:\s*\[')
_NEXT_RECORD = re.compile(r"\}\s*,\s*(?=\{)")
_BRACKET_OR_QUOTE = re.compile(r'["{}\[\]]')
_STRING_BODY = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*', re.DOTALL)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # `\ud800`..`\udfff` in JSON text
_PARTIAL_TOKEN = re.compile(r"-|\.|[eE][-+]?|t|tr|tru|f|fa|fal|fals|n|nu|nul")  # a literal or number cut short
_CHUNK = 1 << 20
_MAX_RECORD_CHARS = 16 << 20
MAX_DOCUMENT_BYTES = 1 << 30  # a whole-file JSON document (SQuAD-style) is held in memory: CMRC's train set is 9 MB
_SNIPPET = 200
_DECODER = json.JSONDecoder()
DAMAGE_REASONS = frozenset({"undecodable", "truncated", "record_too_large", "too_deep"})


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


class _Text:
    """A file's text a chunk at a time, UTF-8 with undecodable bytes kept as surrogate escapes (so a bad byte costs
    its record, which is then re-read as GB18030 or rejected); tells the line and byte offset of what it holds."""

    def __init__(self, stream: IO[bytes]):
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.buf, self.pos, self.eof = "", 0, False
        self._base_byte = 0  # bytes before buf[0]
        self._mark, self._mark_line = 0, 1  # a position in buf and its line: lines are counted once, moving forward

    def fill(self) -> bool:
        """Append the next chunk; False at the end of the file."""
        if self.eof:
            return False
        chunk = self._stream.read(_CHUNK)
        self.eof = not chunk
        self.buf += self._decoder.decode(chunk, final=self.eof)
        return not self.eof

    def drop(self, upto: int) -> None:
        """Forget the text before `upto` (it was consumed), keeping the line and byte counts."""
        self._mark_line = self.line_at(upto)
        self._base_byte += len(self.buf[:upto].encode("utf-8", "surrogateescape"))
        self.buf, self._mark, self.pos = self.buf[upto:], 0, self.pos - upto

    def skip_ws(self) -> None:
        """Move past whitespace, reading on as needed."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf) or not self.fill():
                return

    def at_end(self) -> bool:
        """Whether pos is past the text read so far (after skip_ws: the end of the file)."""
        return self.pos >= len(self.buf)

    def line_at(self, index: int) -> int:
        """The 1-based line of buf[index], counting forward from the last position asked about."""
        if index < self._mark:
            return self._mark_line - self.buf.count("\n", index, self._mark)
        self._mark_line += self.buf.count("\n", self._mark, index)
        self._mark = index
        return self._mark_line

    def column_at(self, index: int) -> int:
        """The 1-based column of buf[index] in its line."""
        return index - self.buf.rfind("\n", 0, index)

    def byte_at(self, index: int) -> int:
        """The byte offset of buf[index] in the (decompressed) file."""
        return self._base_byte + len(self.buf[:index].encode("utf-8", "surrogateescape"))

    def resync(self, start: int) -> bool:
        """Move to the next `}, {` boundary after `start`, reading on as needed; False when the file has none."""
        while True:
            boundary = _NEXT_RECORD.search(self.buf, start)
            if boundary:
                self.pos = boundary.end()
                return True
            keep = self.buf.rfind("}", start)  # a boundary may straddle the chunk's end
            self.pos = keep if keep >= 0 else len(self.buf)
            self.drop(self.pos)
            start = 0
            if not self.fill():
                self.pos = len(self.buf)
                return False

    def skip_value(self) -> bool:
        """Move past the JSON value at pos without holding it whole (brackets counted outside strings), reading on
        as needed; False when the file ends inside it."""
        depth, in_string, i = 0, False, self.pos
        while True:
            if in_string:
                i = _STRING_BODY.match(self.buf, i).end()
                if i < len(self.buf) and self.buf[i] == '"':
                    in_string, i = False, i + 1
                    if depth == 0:
                        self.pos = i
                        return True
                    continue
            else:
                found = _BRACKET_OR_QUOTE.search(self.buf, i)
                if found:
                    i, mark = found.end(), found.group()
                    depth += 1 if mark in "[{" else -1 if mark in "]}" else 0
                    in_string = mark == '"'
                    if depth <= 0 and mark in "]}":
                        self.pos = i
                        return True
                    continue
                i = len(self.buf)
            self.pos = i  # the buffer ends inside the value (or at a lone backslash in a string): read on
            self.drop(i)
            i = 0
            if not self.fill():
                self.pos = len(self.buf)
                return False


class JsonArray:
    """Elements of a top-level JSON array, or of the array in `{"RECORDS": [...]}`, one at a time: iterate it.

    Memory holds one chunk plus the current record, not the file. A malformed or undecodable element becomes an
    `Unparsed` and reading resumes at the next `}, {` boundary, so one broken record costs one record; a record
    over the size limit or too deeply nested is skipped to its end; a file cut short keeps the records before
    the cut and rejects the cut one.
    """

    def __init__(self, stream: IO[bytes]):
        self._text = _Text(stream)

    def __iter__(self) -> Iterator[Item]:
        text = self._text
        text.fill()
        text.pos = 1 if text.buf.startswith("\ufeff") else 0
        text.skip_ws()
        if text.at_end():  # empty or blank file: no records (the reader says so)
            return
        wrapper = _RECORDS_WRAPPER.match(text.buf, text.pos)
        if wrapper:
            text.pos = wrapper.end()
        elif text.buf[text.pos:text.pos + 1] == "[":
            text.pos += 1
        else:
            raise LayoutError('expected a JSON array or {"RECORDS": [...]}, found ' + repr(text.buf[text.pos:text.pos + 40]))
        index = 0
        while True:
            if text.pos > _CHUNK:
                text.drop(text.pos)
            text.skip_ws()
            if text.at_end():
                yield Unparsed(f"record {index} (line {text.line_at(text.pos)})", "truncated",
                               f"the file ends at byte {text.byte_at(text.pos)} before the array closes", "")
                return
            if text.buf[text.pos] == "]":
                return
            if text.buf[text.pos] == ",":
                text.pos += 1
                continue
            item, more = self._record(f"record {index} (line {text.line_at(text.pos)})")
            yield item
            index += 1
            if not more:
                return

    def _record(self, where: str) -> tuple[Item, bool]:
        """The array element at the reading position, and whether reading can go on past it (False when the file
        ends in it)."""
        text = self._text
        start = text.pos
        while True:
            try:
                value, end = _DECODER.raw_decode(text.buf, start)
            except json.JSONDecodeError as error:
                if not text.eof and len(text.buf) - start < _MAX_RECORD_CHARS and text.fill():
                    continue  # the record may only be cut by the chunk's end: read on and retry
                return self._broken(where, error)
            except RecursionError:
                return self._skipped(where, "too_deep", "nested deeper than the JSON parser can follow")
            except ValueError as error:  # valid JSON Python cannot hold: an integer over its digit limit
                return self._skipped(where, "invalid_json", str(error))
            text.pos = end
            if has_escapes(text.buf, start, end):
                return self._redecoded(where, start, end), True
            if _SURROGATE_ESCAPE.search(text.buf, start, end) and holds_surrogates(value):
                return _half_character(where, text.buf[start:min(end, start + _SNIPPET)]), True
            return Parsed(where, value), True

    def _skipped(self, where: str, reason: str, detail: str) -> tuple[Item, bool]:
        """A well-formed record that cannot be kept, moved past by its brackets."""
        text = self._text
        snippet = text.buf[text.pos:text.pos + _SNIPPET]
        detail = f"{detail} (record starts at byte {text.byte_at(text.pos)})"
        return Unparsed(where, reason, detail, snippet), text.skip_value()

    def _redecoded(self, where: str, start: int, end: int) -> Item:
        """A record with bytes that are not UTF-8: parsed again as GB18030 when it is that, else rejected."""
        text = self._text
        raw = text.buf[start:end].encode("utf-8", "surrogateescape")
        decoded = decode(raw)
        try:
            value = json.loads(decoded) if decoded is not None else None
        except (ValueError, RecursionError):  # the GB18030 reading is not the record the UTF-8 one parsed
            decoded = None
        if decoded is None:
            return Unparsed(where, "undecodable", f"bytes are neither UTF-8 nor GB18030 at byte "
                            f"{text.byte_at(start) + first_bad_byte(raw)}", text.buf[start:min(end, start + _SNIPPET)])
        return _half_character(where, decoded[:_SNIPPET]) if holds_surrogates(value) else Parsed(where, value)

    def _broken(self, where: str, error: json.JSONDecodeError) -> tuple[Item, bool]:
        """A record that does not parse: truncated (the file ends in it), too large (it did not end within the
        limit), or malformed or undecodable (reading resumes at the next record boundary)."""
        text = self._text
        start = text.pos
        snippet = text.buf[start:start + _SNIPPET]
        located = f"{error.msg} at line {text.line_at(error.pos)} column {text.column_at(error.pos)}"
        if _cut_short(text.buf, error):
            if text.eof:
                return Unparsed(where, "truncated", f"the file ends inside this record, at byte "
                                f"{text.byte_at(len(text.buf))}: {located}", snippet), False
            if len(text.buf) - start >= _MAX_RECORD_CHARS:
                detail = f"longer than {_MAX_RECORD_CHARS} characters (record starts at byte {text.byte_at(start)})"
                return Unparsed(where, "record_too_large", detail, snippet), text.skip_value()
        boundary = _NEXT_RECORD.search(text.buf, start + 1)
        end = boundary.start() + 1 if boundary else len(text.buf)
        if has_escapes(text.buf, start, end):  # GB18030 whose second bytes misled the UTF-8 reading (0x5C is "\\"),
            return self._redecoded(where, start, end), text.resync(start + 1)  # or bytes that are neither
        return Unparsed(where, "invalid_json", located, snippet), text.resync(start + 1)


iter_json_array = JsonArray  # the name the readers use


def _cut_short(buf: str, error: json.JSONDecodeError) -> bool:
    """Whether the parse failed only because the text ended: at its end, in a string, or in a literal or number."""
    rest = buf[error.pos:].strip()
    return error.msg.startswith("Unterminated string") or not rest or _PARTIAL_TOKEN.fullmatch(rest) is not None


def iter_json_records(stream: IO[bytes]) -> Iterator[Item]:
    """JSON records in whichever of the two common layouts the file uses, told from its first line:
    JSON lines (webtext2019zh's `.json` files are lines) or a JSON array / `{"RECORDS": [...]}`."""
    head = stream.peek(1 << 16)[:1 << 16].removeprefix(codecs.BOM_UTF8).lstrip()
    raw_line, newline, _ = head.partition(b"\n")
    first_line = decode(raw_line) or raw_line.decode("utf-8", "replace")
    try:
        value = json.loads(first_line)
        is_lines = isinstance(value, dict) and "RECORDS" not in value
    except (ValueError, RecursionError):  # not one JSON value; a first line longer than the head is one object
        is_lines = not newline and first_line.startswith("{") and not _RECORDS_WRAPPER.match(first_line)
    return iter_json_lines(stream) if is_lines else iter_json_array(stream)


def iter_json_lines(stream: IO[bytes]) -> Iterator[Item]:
    """One JSON value per line; blank lines are skipped, undecodable, cut or malformed lines are `Unparsed`."""
    for line in iter_lines(stream):
        if line.cut or line.text is None:
            yield _damaged(line, stream)
        elif line.text.strip():
            yield _json_line(line)


def _json_line(line: Line) -> Item:
    """A decoded line as one JSON record, or why it is not one."""
    where = f"line {line.number}"
    try:
        value = json.loads(line.text)
    except json.JSONDecodeError as error:
        return Unparsed(where, "invalid_json", f"{error.msg} at column {error.colno}", line.text[:_SNIPPET])
    except RecursionError:
        return Unparsed(where, "too_deep", "nested deeper than the JSON parser can follow", line.text[:_SNIPPET])
    except ValueError as error:  # valid JSON Python cannot hold: an integer over its digit limit
        return Unparsed(where, "invalid_json", str(error), line.text[:_SNIPPET])
    if _SURROGATE_ESCAPE.search(line.text) and holds_surrogates(value):
        return _half_character(where, line.text[:_SNIPPET])
    return Parsed(where, value)


def _half_character(where: str, snippet: str) -> Unparsed:
    """A record whose JSON escapes make half a character (a lone surrogate such as `\\ud800`): not text."""
    return Unparsed(where, "undecodable", "a \\uD800-\\uDFFF escape without its pair: half a character", snippet)


def iter_tsv(stream: IO[bytes]) -> Iterator[Item]:
    """Tab-separated rows as lists of fields; blank lines are skipped."""
    for line in iter_lines(stream):
        if line.cut or line.text is None:
            yield _damaged(line, stream)
        elif line.text.strip():
            yield Parsed(f"line {line.number}", line.text.split("\t"))


def iter_csv(stream: IO[bytes]) -> Iterator[Item]:
    """CSV rows as dicts keyed by the header row; quoted fields may hold commas and newlines. Lines are decoded
    one by one: a row with a line that does not decode, or that the file's end cuts, is `Unparsed`."""
    damaged: list[Line] = []  # the damaged lines of the row being read

    def texts() -> Iterator[str]:
        for line in iter_lines(stream, keep_ends=True):
            if line.cut or line.text is None:
                damaged.append(line)
            yield line.raw.decode("utf-8", "surrogateescape") if line.text is None else line.text

    reader = csv.reader(texts())
    header = next(reader, None)
    if header is None:
        return
    index = 0
    while True:
        index += 1
        damaged.clear()
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:  # e.g. a field over the csv module's size limit
            yield Unparsed(f"row {index} (line {reader.line_num})", _csv_reason(error), str(error), "")
            continue
        item = _csv_row(f"row {index} (line {reader.line_num})", header, row, damaged, stream)
        if item is not None:
            yield item


def _csv_row(where: str, header: list[str], row: list[str], damaged: list[Line], stream: IO[bytes]) -> Optional[Item]:
    """One CSV row as an item; None for a blank row."""
    if damaged:
        return _damaged(damaged[0], stream)._replace(position=where)
    if len(row) != len(header):
        return Unparsed(where, "wrong_column_count", f"{len(row)} fields; the header has {len(header)}",
                        ",".join(row)[:_SNIPPET])
    return Parsed(where, dict(zip(header, row))) if any(row) else None


def _csv_reason(error: csv.Error) -> str:
    """The reject reason for a row the csv module refuses."""
    return "record_too_large" if "field limit" in str(error) else "invalid_csv"


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


def load_json_document(stream: IO[bytes]) -> Item | None:
    """A whole-file JSON document (SQuAD and the like) as one item: `Parsed("document", value)`, an `Unparsed`
    one when the file is cut short, too deeply nested, or broken where its bytes are bad, None for an empty file.
    The document is decoded as a whole (UTF-8, else GB18030); bytes that are neither stay as surrogate escapes
    for the caller to reject the records holding them (see io.redecode). Any other syntax error raises
    LayoutError with its location."""
    raw = stream.read(MAX_DOCUMENT_BYTES + 1)  # bounded: a small .gz can hold gigabytes
    if len(raw) > MAX_DOCUMENT_BYTES:
        return Unparsed("document", "record_too_large", f"the document is over {MAX_DOCUMENT_BYTES:,} bytes "
                        "(decompressed); split it, or read it as JSON lines", "")
    raw = raw[len(codecs.BOM_UTF8):] if raw.startswith(codecs.BOM_UTF8) else raw
    text = decode(raw)
    text = raw.decode("utf-8", "surrogateescape") if text is None else text
    if not text.strip():
        return None
    try:
        return Parsed("document", json.loads(text))
    except json.JSONDecodeError as error:
        located = f"{error.msg} at line {error.lineno} column {error.colno}"
        if _cut_short(text, error):
            failure = failure_of(stream)
            cause = f" ({failure})" if failure else ""
            return Unparsed("document", "truncated", f"the file ends inside the JSON document, at byte {len(raw)}"
                            f"{cause}: {located}", text[-_SNIPPET:])
        if has_escapes(text):  # a bad byte may have taken a quote or a bracket's place
            return Unparsed("document", "undecodable", f"bytes are neither UTF-8 nor GB18030 at byte "
                            f"{first_bad_byte(raw)}, and the document does not parse: {located}", text[:_SNIPPET])
        raise LayoutError(f"invalid JSON: {located}") from error
    except RecursionError:
        return Unparsed("document", "too_deep", "nested deeper than the JSON parser can follow", text[:_SNIPPET])
    except ValueError as error:  # valid JSON Python cannot hold: an integer over its digit limit
        return Unparsed("document", "invalid_json", str(error), text[:_SNIPPET])


def _damaged(line: Line, stream: IO[bytes]) -> Unparsed:
    """A line cut by the file's end, over the size limit, or whose bytes are neither UTF-8 nor GB18030."""
    where, snippet = f"line {line.number}", line.raw[:_SNIPPET].decode("utf-8", "replace")
    if line.too_large:
        return Unparsed(where, "record_too_large", f"the line holds {line.too_large:,} bytes, over the limit of "
                        f"{MAX_LINE_BYTES:,}; skipped", snippet)
    if line.cut:
        return Unparsed(where, "truncated", f"the file ends inside this line, at byte {line.offset + len(line.raw)}: "
                        f"{failure_of(stream)}", snippet)
    return Unparsed(where, "undecodable", f"bytes are neither UTF-8 nor GB18030 at byte "
                    f"{line.offset + first_bad_byte(line.raw)}", snippet)
