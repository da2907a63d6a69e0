"""Opening input files (plain, .gz, .zst, single-file .zip) and writing Parquet shards. Text is decoded line by line
or record by record, never per file: UTF-8 (a BOM is dropped), else GB18030, else the line is a located reject."""
from __future__ import annotations

import codecs
import fnmatch
import glob
import gzip
import io
import os
import re
import stat
import zipfile
import zlib
from typing import IO, Any, Iterator, NamedTuple, Optional

import zstandard

_BUFFER_BYTES = 1 << 16
_STREAM_ERRORS = (OSError, EOFError, zlib.error, zstandard.ZstdError, zipfile.BadZipFile)
_ESCAPED = re.compile("[\udc80-\udcff]")  # an undecodable byte, kept by the surrogateescape error handler
_SURROGATE = re.compile("[\ud800-\udfff]")  # half a character: no UTF-8 text holds one
_URI = re.compile("(?P<scheme>[a-zA-Z][-a-zA-Z0-9+.]*)://.*")  # Beam's FileSystems.URI_SCHEMA_PATTERN


def uri_scheme(path: str) -> Optional[str]:
    """The scheme of a path for a Beam filesystem (`gs`, `s3`), None for a local path; as FileSystems.get_scheme
    tells it, without importing Beam (listing local files and loading a config do not need it)."""
    match = _URI.match(path.strip())
    return match.group("scheme") if match else None


def expand_paths(pattern: str) -> list[str]:
    """The files a path or glob names, sorted, with any folder the glob could not list (the reader rejects it by
    name: glob alone skips it in silence); works for local paths and any Beam filesystem (gs://, s3://)."""
    if uri_scheme(pattern) is None:  # local: glob handles ** and gives a stable order
        matched = _recursive_glob(pattern) if "**" in pattern else glob.glob(pattern)
        entries = [p for p in matched if not os.path.isdir(p)]
        return sorted(_once_each(entries) + unlistable_folders(pattern))
    from apache_beam.io.filesystems import FileSystems

    (result,) = FileSystems.match([pattern])
    return sorted(m.path for m in result.metadata_list)


def _recursive_glob(pattern: str) -> list[str]:
    """What `glob.glob(pattern, recursive=True)` matches, each folder walked once: glob follows links to folders,
    so two links back to a parent (`d/l1 -> ..`, `d/l2 -> ..`) make it walk 2^40 paths and never return."""
    parts = pattern.split(os.sep)
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    root, wild = os.sep.join(parts[:fixed]) or (os.sep if pattern.startswith(os.sep) else os.curdir), parts[fixed:]
    found, walked = [], set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in walked:  # reached again through a link: already listed
            subfolders[:] = []
            continue
        walked.add(real)
        below = [] if folder == root else os.path.relpath(folder, root).split(os.sep)
        subfolders[:] = [name for name in subfolders if _glob_lists(below + [name], wild)]
        found += [os.path.normpath(os.path.join(folder, name)) for name in files if _glob_matches(below + [name], wild)]
    return found


def _glob_matches(path: list[str], wild: list[str]) -> bool:
    """Whether glob's `wild` components match the path's components below the root (`**`: any folders, hidden
    ones excepted; a hidden name only by a pattern that starts with a dot)."""
    if not wild:
        return not path
    if wild[0] == "**":
        return _glob_matches(path, wild[1:]) or (bool(path) and not path[0].startswith(".")
                                                 and _glob_matches(path[1:], wild))
    if not path or (path[0].startswith(".") and not wild[0].startswith(".")):
        return False
    return fnmatch.fnmatchcase(path[0], wild[0]) and _glob_matches(path[1:], wild[1:])


def _once_each(paths: list[str]) -> list[str]:
    """The shortest path to each file: `**` follows links to folders, so a link loop (`a/loop -> ..`) names one
    file many times. Entries that are not regular files (a dangling link, a FIFO) stay, for the reader to reject."""
    shortest: dict[str, str] = {}
    for path in paths:
        real = os.path.realpath(path)
        if real not in shortest or (path.count(os.sep), path) < (shortest[real].count(os.sep), shortest[real]):
            shortest[real] = path
    return list(shortest.values())


def not_a_regular_file(path: str) -> Optional[str]:
    """Why a local input path cannot be read as a file (a dangling link, a FIFO, a device), or None. Checked before
    opening: opening a FIFO would wait for a writer forever."""
    if uri_scheme(path) is not None or os.path.isdir(path):
        return None
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"{path} is a link to {os.readlink(path)!r}, which does not exist" if os.path.islink(path) \
            else f"{path} no longer exists"
    except OSError as error:
        return f"{path}: {error.strerror}"
    return None if stat.S_ISREG(mode) else f"{path} is not a regular file (a FIFO, socket or device)"


def unlistable_folders(pattern: str) -> list[str]:
    """The folders a local glob has to list to match `pattern` but cannot (no permission, an I/O error)."""
    parts = pattern.split(os.sep)
    fixed = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    if fixed == len(parts):  # a plain path: nothing to list
        return []
    root, wild = os.sep.join(parts[:fixed]) or (os.sep if pattern.startswith(os.sep) else os.curdir), parts[fixed:]
    failed: list[str] = []

    def note(error: OSError) -> None:
        if not isinstance(error, (FileNotFoundError, NotADirectoryError)):
            failed.append(error.filename)

    for folder, subfolders, _ in os.walk(root, onerror=note):
        below = [] if folder == root else os.path.relpath(folder, root).split(os.sep)
        subfolders[:] = [name for name in subfolders if _glob_lists(below + [name], wild)]
    return failed


def _glob_lists(folder: list[str], wild: list[str]) -> bool:
    """Whether glob, matching the wildcard components `wild`, lists `folder` (its components below the root)."""
    if not folder:
        return bool(wild)
    if not wild:
        return False
    if wild[0] == "**":  # any number of folders, hidden ones excepted (as glob does)
        return _glob_lists(folder, wild[1:]) or (not folder[0].startswith(".") and _glob_lists(folder[1:], wild))
    hidden_ok = not folder[0].startswith(".") or wild[0].startswith(".")
    return hidden_ok and fnmatch.fnmatchcase(folder[0], wild[0]) and _glob_lists(folder[1:], wild[1:])


def open_binary(path: str) -> Input:
    """A buffered, decompressed byte stream of the file; the compression is told by the suffix."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    if path.endswith(".gz"):
        inner: IO[bytes] = gzip.GzipFile(fileobj=raw)
    elif path.endswith(".zst"):
        inner = _ZstdReader(raw)
    elif path.endswith(".zip"):  # cMedQA-v2 and others publish one file per archive
        archive = zipfile.ZipFile(raw)
        members = [info for info in archive.infolist() if not info.is_dir()]
        if len(members) != 1:
            raise OSError(f"expected a zip archive holding one file, found {len(members)}: "
                          f"{', '.join(m.filename for m in members[:5])}")
        inner = archive.open(members[0])
    else:
        inner = raw
    return Input(_UntilFailure(inner), _BUFFER_BYTES)


class _UntilFailure(io.RawIOBase):
    """A stream's bytes up to where reading it fails (a .gz or .zst cut short, a corrupt block): the failure ends
    it like an end of file and is kept, so nothing read or decompressed before it is lost."""

    def __init__(self, inner: IO[bytes]):
        super().__init__()
        self._inner = inner
        self._read = getattr(inner, "read1", inner.read)  # read1: one step at a time, so a failure costs nothing
        self.failure: Optional[str] = None
        self.delivered = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:  # Parquet seeks
        return self._inner.seekable()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def readinto(self, buffer) -> int:
        if self.failure is not None:
            return 0
        try:
            data = self._read(len(buffer))
        except _STREAM_ERRORS as error:
            self.failure = f"{type(error).__name__}: {error}"
            return 0
        buffer[:len(data)] = data
        self.delivered += len(data)
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()


class Input(io.BufferedReader):
    """A file's bytes, decompressed and buffered; they end early where reading failed, and `failure` says why."""

    @property
    def failure(self) -> Optional[str]:
        """Why the bytes ended before the file did (e.g. "EOFError: Compressed file ended ..."); None if they did not."""
        return self.raw.failure

    @property
    def delivered(self) -> int:
        """How many (decompressed) bytes were read."""
        return self.raw.delivered


def failure_of(stream: IO[bytes]) -> Optional[str]:
    """The reading failure that ended the stream early; None for a whole file, or a stream that is not an `Input`."""
    return getattr(stream, "failure", None)


class _ZstdReader(io.RawIOBase):
    """zstd frames, one after another, decompressed; a file cut inside a frame raises EOFError.

    (zstandard's own stream_reader returns the bytes up to the cut and stops silently, so a
    truncated download would lose its tail without a trace.)
    """

    def __init__(self, raw: IO[bytes]):
        super().__init__()
        self._raw = raw
        self._frame = zstandard.ZstdDecompressor().decompressobj()
        self._pending = b""
        self._started = False  # inside a frame that has not ended yet

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            chunk = self._raw.read(1 << 16)
            if not chunk:
                if self._started and not self._frame.eof:
                    raise EOFError("zstd file ends inside a frame: it is truncated")
                return 0
            while chunk:
                if self._frame.eof:  # the next frame of a multi-frame file
                    self._frame = zstandard.ZstdDecompressor().decompressobj()
                self._started = True
                self._pending += self._frame.decompress(chunk)
                chunk = self._frame.unused_data if self._frame.eof else b""
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        self._raw.close()
        super().close()


def logical_name(path: str) -> str:
    """The file name without its compression suffix: what tells the layout (x.json.gz -> x.json)."""
    for suffix in (".gz", ".zst", ".zip"):
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path


def decode(raw: bytes) -> Optional[str]:
    """The bytes as UTF-8; else as GB18030 (older Chinese dumps) when they are that and not UTF-8 with a few bad
    bytes (whose GB18030 reading would be mojibake); None when they are neither."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _not_utf8(raw)


def _not_utf8(raw: bytes) -> Optional[str]:
    """Bytes that are not UTF-8 as GB18030, or None (see `decode`)."""
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError:
        return None
    return None if _damaged_utf8(raw) else text


def _damaged_utf8(raw: bytes) -> bool:
    """Whether at least half the bytes' non-ASCII characters are well-formed UTF-8: damaged UTF-8, not GB18030
    (GB18030 text forms a UTF-8 character only now and then, by chance)."""
    view = raw.decode("utf-8", "replace")
    bad = view.count("\ufffd")
    wide = len(view) - len(view.encode("ascii", "ignore"))
    return wide - bad >= bad


def first_bad_byte(raw: bytes) -> int:
    """The offset of the first byte that is not UTF-8 (0 when all are)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start
    return 0


def has_escapes(text: str, start: int = 0, end: Optional[int] = None) -> bool:
    """Whether the text, decoded with surrogateescape, holds undecodable bytes (in text[start:end])."""
    return _ESCAPED.search(text, start, len(text) if end is None else end) is not None


def holds_surrogates(value: Any) -> bool:
    """Whether any string in a parsed JSON value (keys included) holds a lone surrogate, e.g. from a `\\ud800`
    escape without its pair: text that cannot be written as UTF-8."""
    stack = [value]
    while stack:  # no recursion: the value may be as deep as the parser allowed
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def redecode(texts: list[str]) -> Optional[list[str]]:
    """Texts of one record, decoded as UTF-8 with surrogateescape, re-read as that record's encoding: unchanged when
    they are UTF-8, each read as GB18030 when their bytes together are GB18030, None when neither."""
    if not any(has_escapes(text) for text in texts):
        return texts
    raw = [text.encode("utf-8", "surrogateescape") for text in texts]
    if decode(b"\n".join(raw)) is None:
        return None
    return [part.decode("gb18030") for part in raw]


MAX_LINE_BYTES = 64 << 20  # a line over this (16M characters of up to 4 bytes) is skipped, not held


class Line(NamedTuple):
    number: int  # 1-based
    text: Optional[str]  # None when the bytes are neither UTF-8 nor GB18030, or the line is too large
    raw: bytes  # the line's bytes; only its first MAX_LINE_BYTES when it is too large
    offset: int  # where the line starts, in bytes of the (decompressed) file
    cut: bool  # the file's bytes end inside this line: it is truncated
    too_large: int = 0  # the whole line's size in bytes when over MAX_LINE_BYTES (then skipped, never held)


def _raw_lines(stream: IO[bytes]) -> Iterator[tuple[bytes, int]]:
    """(bytes, size) per line; a line over MAX_LINE_BYTES comes as its head and its full size, the rest of it read
    past a mebibyte at a time, so a decompression bomb of one line cannot fill memory."""
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        size = len(raw)
        if size > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raw = raw[:MAX_LINE_BYTES]
            while True:
                more = stream.readline(1 << 20)
                size += len(more)
                if not more or more.endswith(b"\n"):
                    break
        yield raw, size


def iter_lines(stream: IO[bytes], keep_ends: bool = False) -> Iterator[Line]:
    """The file's lines (without their endings unless asked), each decoded on its own so one bad line cannot sink
    the file; the last is marked `cut` when reading failed inside it (a .gz or .zst cut short). A byte-order mark
    opening any line is dropped: files joined with `cat` carry one at each join."""
    offset = 0
    for number, (raw, size) in enumerate(_raw_lines(stream), start=1):
        start, offset = offset, offset + size
        if size > len(raw):
            yield Line(number, None, raw[:1024], start, False, size)
            continue
        if raw.startswith(codecs.BOM_UTF8):
            raw, start = raw[len(codecs.BOM_UTF8):], start + len(codecs.BOM_UTF8)
        cut = not raw.endswith(b"\n") and failure_of(stream) is not None
        body = raw if keep_ends else raw.rstrip(b"\r\n")
        try:  # decode(body), without a call for the common case
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = _not_utf8(body)
        yield Line(number, text, body, start, cut)
