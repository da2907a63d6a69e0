"""Running a transform on Beam's in-process runner and collecting its outputs."""
from __future__ import annotations

from typing import Optional

import apache_beam as beam
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

_SINKS: dict[str, list] = {}


class _Collect(beam.DoFn):
    def __init__(self, sink: str):
        self._sink = sink

    def process(self, element):
        _SINKS.setdefault(self._sink, []).append(element)


def run_transform(transform: beam.PTransform, inputs: Optional[list],
                  outputs: tuple[str, ...] = ("pairs", "rejects")) -> dict:
    """Apply `transform` to `inputs` (or to the pipeline itself when None) with FnApiRunner;
    returns each named output as a list."""
    for name in outputs:
        _SINKS.pop(name, None)
    with beam.Pipeline(runner=FnApiRunner()) as pipeline:
        start = pipeline if inputs is None else pipeline | beam.Create(inputs, reshuffle=False)
        result = start | transform
        for name in outputs:
            result[name] | f"Collect {name}" >> beam.ParDo(_Collect(name))
    return {name: list(_SINKS.pop(name, [])) for name in outputs}
