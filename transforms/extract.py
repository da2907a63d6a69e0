"""Records -> (query, passage) pairs by each source's extractor; a record with no pair is a reject (stage `extract`)."""
from __future__ import annotations

from typing import Mapping

import apache_beam as beam
from apache_beam.metrics import Metrics

from cmtp.schemas import Reject, pair_id
from cmtp.transforms.report import STATS, CountingDoFn
from cmtp.transforms.sources import ExtractError, Source, SourceRecord

REJECTS = "rejects"


def extract_reject(record: SourceRecord, error: ExtractError) -> beam.pvalue.TaggedOutput:
    """A record that gave no pair (or no judgment), as a located reject of the error's stage (`extract`, or
    `generate` for a failed query generation)."""
    Metrics.counter("extract", f"{record.source}.{error.reason}").inc()
    return beam.pvalue.TaggedOutput(REJECTS, Reject(
        id=pair_id(record.source, "extract", record.file, record.position), source=record.source,
        stage=error.stage, reason=error.reason, detail=error.detail, file=record.file, position=record.position,
        text=str(record.fields)[:200]))


class _Extract(CountingDoFn):
    def __init__(self, sources: Mapping[str, Source]):
        self._sources = dict(sources)

    def process(self, record: SourceRecord):
        try:
            pairs, capped = self._sources[record.source].extract_enabled(record)
        except ExtractError as error:
            yield extract_reject(record, error)
            return
        Metrics.counter("extract", f"{record.source}.pairs").inc(len(pairs))
        self.count(record.source, "records_with_pairs")
        self.count(record.source, "pairs_made", len(pairs))
        if capped:
            self.count(record.source, "pairs_capped", capped)
        yield from pairs


class ExtractPairs(beam.PTransform):
    """Records of the configured sources -> pairs (main output), extract rejects (`rejects`) and counts (`stats`)."""

    def __init__(self, sources: Mapping[str, Source]):
        super().__init__()
        self._sources = sources

    def expand(self, records):
        return records | beam.ParDo(_Extract(self._sources)).with_outputs(REJECTS, STATS, main="pairs")
