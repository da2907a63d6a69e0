"""Records -> (query, passage) pairs by each source's extractor; a record with no pair is a reject (stage `extract`)."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from cmtp.schemas import Reject, pair_id
from cmtp.transforms.report import STATS, stat
from cmtp.transforms.sources import REGISTRY, ExtractError, SourceRecord

REJECTS = "rejects"


class _Extract(beam.DoFn):
    def __init__(self):
        self._sources = {}

    def setup(self):
        self._sources = {name: cls() for name, cls in REGISTRY.items()}

    def process(self, record: SourceRecord):
        try:
            pairs = self._sources[record.source].extract(record)
            if not pairs:
                raise ExtractError("no_pair", "the record yields no pair")
        except ExtractError as error:
            Metrics.counter("extract", f"{record.source}.{error.reason}").inc()
            yield beam.pvalue.TaggedOutput(REJECTS, Reject(
                id=pair_id(record.source, "extract", record.file, record.position), source=record.source,
                stage="extract", reason=error.reason, detail=error.detail, file=record.file,
                position=record.position, text=str(record.fields)[:200]))
            return
        Metrics.counter("extract", f"{record.source}.pairs").inc(len(pairs))
        yield stat(record.source, "records_with_pairs")
        yield stat(record.source, "pairs_made", len(pairs))
        yield from pairs


class ExtractPairs(beam.PTransform):
    """Records of any source -> pairs (main output), extract rejects (`rejects`) and its counts (`stats`)."""

    def expand(self, records):
        return records | beam.ParDo(_Extract()).with_outputs(REJECTS, STATS, main="pairs")
