"""Opening input files (plain, .gz, .zst, single-file .zip; UTF-8 with or without BOM, or GB18030) and writing Parquet shards."""
from __future__ import annotations

import codecs
import glob
import gzip
import io
import os
import zipfile
from typing import IO, Iterator, NamedTuple

import apache_beam as beam
import pyarrow as pa
import zstandard
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

_SNIFF_BYTES = 1 << 16


def expand_paths(pattern: str) -> list[str]:
    """The files a path or glob names, sorted; works for local paths and any Beam filesystem (gs://, s3://)."""
    if FileSystems.get_scheme(pattern) is None:  # local: glob handles ** and gives a stable order
        return sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
    (result,) = FileSystems.match([pattern])
    return sorted(m.path for m in result.metadata_list)


def open_binary(path: str) -> IO[bytes]:
    """A buffered, decompressed byte stream of the file; the compression is told by the suffix."""
    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    if path.endswith(".gz"):
        return io.BufferedReader(gzip.GzipFile(fileobj=raw), _SNIFF_BYTES)
    if path.endswith(".zst"):
        return io.BufferedReader(_ZstdReader(raw), _SNIFF_BYTES)
    if path.endswith(".zip"):  # cMedQA-v2 and others publish one file per archive
        archive = zipfile.ZipFile(raw)
        members = [info for info in archive.infolist() if not info.is_dir()]
        if len(members) != 1:
            raise OSError(f"expected a zip archive holding one file, found {len(members)}: "
                          f"{', '.join(m.filename for m in members[:5])}")
        return io.BufferedReader(archive.open(members[0]), _SNIFF_BYTES)
    return io.BufferedReader(raw, _SNIFF_BYTES)


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


def sniff_encoding(head: bytes) -> str:
    """utf-8-sig for a BOM; utf-8 when the head is UTF-8 but for a few bad bytes (those lines are rejected
    later, one by one); gb18030 (older Chinese dumps) when most of it is not UTF-8."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    decoded = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(head, final=False)
    bad = decoded.count("\ufffd")
    return "utf-8" if bad <= 0.01 * max(len(decoded), 1) else "gb18030"


class Line(NamedTuple):
    number: int  # 1-based
    text: str | None  # None when the bytes do not decode in the file's encoding
    raw: bytes


def iter_lines(stream: IO[bytes]) -> Iterator[Line]:
    """The file's lines without line endings, each decoded on its own so one bad line cannot sink the file."""
    encoding = sniff_encoding(stream.peek(_SNIFF_BYTES)[:_SNIFF_BYTES])
    for number, raw in enumerate(stream, start=1):
        if number == 1 and encoding == "utf-8-sig":
            raw = raw[len(codecs.BOM_UTF8):] if raw.startswith(codecs.BOM_UTF8) else raw
        body = raw.rstrip(b"\r\n")
        try:
            text = body.decode("gb18030" if encoding == "gb18030" else "utf-8")
        except UnicodeDecodeError:
            text = None
        yield Line(number, text, body)


def open_text(stream: IO[bytes]) -> IO[str]:
    """A text stream over the bytes, in the sniffed encoding; an undecodable byte raises UnicodeDecodeError."""
    encoding = sniff_encoding(stream.peek(_SNIFF_BYTES)[:_SNIFF_BYTES])
    return io.TextIOWrapper(stream, encoding=encoding, errors="strict", newline="")


class WriteParquetShards(beam.PTransform):
    """Records (NamedTuples) to `DIR/part-SSSSS-of-NNNNN.parquet`, zstd-compressed, under the given schema.

    Shards are bounded, not counted. Beam's Parquet writer turns each bundle's rows into Arrow tables of
    `row_group_bytes` (a row group each) and its file sink writes a bundle to one shard, however large,
    unless the sink has a capacity: here a shard closes after `shard_bytes // row_group_bytes` row groups
    and the next opens (FileBasedSinkWriter.at_capacity). So a large bundle never becomes one huge file,
    and no step groups every row to fix a shard count. `num_shards` > 0 asks for that fixed count instead
    (one grouping of all rows by shard).
    """

    def __init__(self, directory: str, schema: pa.Schema, shard_bytes: int = 512 << 20,
                 row_group_bytes: int = 64 << 20, num_shards: int = 0):
        super().__init__()
        self._prefix = FileSystems.join(directory, "part")
        self._schema = schema
        self._row_groups_per_shard = max(1, shard_bytes // row_group_bytes)
        self._row_group_bytes, self._num_shards = row_group_bytes, num_shards

    def expand(self, records):
        write = beam.io.WriteToParquet(
            self._prefix,
            self._schema,
            row_group_buffer_size=self._row_group_bytes,
            codec="zstd",
            file_name_suffix=".parquet",
            num_shards=self._num_shards,
            shard_name_template="-SSSSS-of-NNNNN",
        )
        if not self._num_shards:  # the sink honours a capacity but WriteToParquet does not expose it
            write._sink.max_records_per_shard = self._row_groups_per_shard  # records of the sink: row groups
        return records | "AsDict" >> beam.Map(lambda record: record._asdict()) | "Write" >> write
