"""Flatten for large collections of rows: on the local runner the rows cross the Flatten as pickled lists.

FnApiRunner materializes every Flatten of two or more inputs (fn_api_runner/translations.py, `sink_flattens`:
"TODO: Actually attempt to sink rather than always materialize"): each row is encoded into a buffer with the output's
coder and decoded again, and for our NamedTuple rows that coder is FastPrimitivesCoder, a pickle per row. The
pipeline flattened ~1.75 rows per pair so (the kept pairs and the rows set aside before the next stage, every stage's
rejects twice, the survivor trails): 175k pickles at 100k pairs. Here each bundle's rows of each input are packed
into lists of up to PACK rows, pickled once a list, flattened, and unpacked: a few elements cross the buffer.

Runners that fuse a Flatten into its consumers (Dataflow, and the portable runners' fuser) move no row through it, so
there this is Beam's own Flatten.
"""
from __future__ import annotations

import pickle

import apache_beam as beam

from cmtp.transforms.progress import is_local
from cmtp.transforms.shards import at_bundle_end

PACK = 1024  # rows in one pickled list


class _Pack(beam.DoFn):
    def start_bundle(self):
        self._rows = []

    def process(self, row):
        self._rows.append(row)
        if len(self._rows) >= PACK:
            rows, self._rows = self._rows, []
            yield pickle.dumps(rows, pickle.HIGHEST_PROTOCOL)

    def finish_bundle(self):
        rows, self._rows = self._rows, []
        if rows:
            yield at_bundle_end(pickle.dumps(rows, pickle.HIGHEST_PROTOCOL))


class FlattenRows(beam.PTransform):
    """`beam.Flatten()` of an iterable of collections (`pipeline` for one that may be empty), moving each bundle's
    rows as pickled lists where the runner would copy them row by row (the local runner)."""

    def __init__(self, pipeline: beam.Pipeline | None = None):
        super().__init__()
        self.pipeline = pipeline  # what Beam's __ror__ reads when no input is deferred (none given)

    def __ror__(self, pvalueish, label=None):  # Beam takes a list (unlike a tuple) for values to Create
        return super().__ror__(tuple(pvalueish) if isinstance(pvalueish, list) else pvalueish, label)

    def expand(self, pcolls):
        pcolls = (pcolls,) if isinstance(pcolls, beam.PCollection) else tuple(pcolls)
        pipeline = self.pipeline or pcolls[0].pipeline
        if len(pcolls) < 2 or not is_local(pipeline):
            return pcolls | "Flatten" >> beam.Flatten(pipeline=pipeline)
        packed = [rows | f"Pack{i}" >> beam.ParDo(_Pack()) for i, rows in enumerate(pcolls)]
        return packed | "Flatten" >> beam.Flatten() | "Unpack" >> beam.FlatMap(pickle.loads)
