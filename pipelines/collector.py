"""Python's garbage collector set for a batch run whose worker is this process (FnApiRunner).

A run makes millions of short-lived objects (rows, their texts, Beam's windowed values), almost none of them in
reference cycles, and Python's defaults (a young collection every 700 allocations, an older one every 10 of those)
made the collector 9% of `cmtp run`'s CPU at 100k pairs (py-spy, docs/benchmarks.md "Half the CPU per pair"), most
of it walking objects that are alive for the whole run. Inside `batch_collector` the objects alive when it starts
(the imports) are frozen out of collection, and a young collection runs every YOUNG allocations: cycles are still
found, later (a run does make some: ~130k objects in cycles at 100k pairs, so the collector is not switched off). It covers building the graph too: with the imports alive, each older collection
while the graph was built walked them all. At 100k pairs: 41.2 s of CPU with Python's defaults, 38.8 s with young
collections every 20,000 allocations during the run, 37.5 s every 200,000, 37.3 s with no collection at all; the
graph's build under the same settings saved another ~1 s in one comparison. Everything is restored when the run ends.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator

YOUNG, OLDER = 200_000, 100  # allocations between young collections; collections between older ones


@contextmanager
def batch_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG, OLDER, OLDER)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
