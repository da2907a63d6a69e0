"""Flatten for large collections of rows: on the local runner the rows cross the Flatten as pickled lists.

FnApiRunner materializes every Flatten of two or more inputs (fn_api_runner/translations.py, `sink_flattens`:
"TODO: Actually attempt to sink rather than always materialize"): each row is encoded into a buffer with the output's
coder and decoded again, and for our NamedTuple rows that coder is FastPrimitivesCoder, a pickle per row. The
pipeline flattened ~1.75 rows per pair so (the kept pairs and the rows set aside before the next stage, every stage's
rejects twice, the survivor trails): 175k pickles at 100k pairs. Here each bundle's rows of each input are packed
into lists of up to PACK rows, packed as GroupInShards packs them (transforms/shards.py `pack_rows`), flattened, and
unpacked: a few elements cross the buffer.

Runners that fuse a Flatten into its consumers (Dataflow, and the portable runners' fuser) move no row through it, so
there this is Beam's own Flatten.
"""
from __future__ import annotations

import apache_beam as beam

from cmtp.transforms.progress import is_local
from cmtp.transforms.shards import ShardingDoFn, at_bundle_end, pack_rows, unpack_rows

PACK = 1024  # rows in one packed list

class _Pack(ShardingDoFn):
    """Rows -> the bundle's rows packed (`pack_rows`), LIMIT rows a blob."""

    LIMIT = PACK

    def process(self, row):
        for _, rows in self.lists.add(0, row):
            yield pack_rows(rows)

    def finish_bundle(self):
        for _, rows in self.lists.take():
            yield at_bundle_end(pack_rows(rows))


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
        return packed | "Flatten" >> beam.Flatten() | "Unpack" >> beam.FlatMap(unpack_rows)
