"""Progress of a long local run on the terminal: elements counted as they pass, one line every few seconds.

Counts are per worker process (one process for the in-process runner) and printed to stderr at most every
`CMTP_PROGRESS_SECONDS` (default 10) seconds, so a run of hours writes a few hundred lines, not one per
record. Remote runners have their own progress pages; pipelines add this step only for local runs.
"""
from __future__ import annotations

import os
import sys
import time
from collections import Counter

import apache_beam as beam

_COUNTS: Counter = Counter()  # this process's counts, shared by every Progress step in it
_STATE: dict = {"started": None, "last": None}  # monotonic seconds of the first element and of the last line


def reset() -> None:
    """Forget the counts and the clock: a new run in this process starts from zero and prints its first element.

    (Times are only ever compared with times read in the same run: `time.monotonic()` counts from an
    unspecified point, the machine's boot on Linux, so no constant may stand for "long ago".)
    """
    _COUNTS.clear()
    _STATE.update(started=None, last=None)


def _interval() -> float:
    return float(os.environ.get("CMTP_PROGRESS_SECONDS", "10"))


class _Tick(beam.DoFn):
    def __init__(self, name: str):
        self._name = name

    def process(self, element):
        _COUNTS[self._name] += 1
        now = time.monotonic()
        if _STATE["started"] is None:
            _STATE["started"] = now
        if _STATE["last"] is None or now - _STATE["last"] >= _interval():
            _STATE["last"] = now
            counts = " · ".join(f"{name} {n:,}" for name, n in _COUNTS.items())
            print(f"[cmtp {now - _STATE['started']:7.1f}s] {counts}", file=sys.stderr, flush=True)
        yield element


class Progress(beam.PTransform):
    """Passes elements through unchanged, counting them as `name` for the progress line."""

    def __init__(self, name: str):
        super().__init__()
        self._name = name

    def expand(self, pcoll):
        return pcoll | beam.ParDo(_Tick(self._name))


def is_local(pipeline: beam.Pipeline) -> bool:
    """Whether the pipeline runs in this machine's processes (Beam's in-process or local runners)."""
    return type(pipeline.runner).__name__ in ("FnApiRunner", "DirectRunner", "BundleBasedDirectRunner")
