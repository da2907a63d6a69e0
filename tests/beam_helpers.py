"""Running a transform on Beam's in-process runner and collecting its outputs."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.runners.portability.fn_api_runner import FnApiRunner


class _Collect(beam.DoFn):
    def __init__(self, sink: str):
        self._sink = sink

    def process(self, element):
        _SINKS.setdefault(self._sink, []).append(element)


_SINKS: dict[str, list] = {}


def run_transform(transform: beam.PTransform, inputs: list, outputs: tuple[str, ...] = ("pairs", "rejects")) -> dict:
    """Apply `transform` to `inputs` with FnApiRunner; returns each named output as a list."""
    for name in outputs:
        _SINKS.pop(name, None)
    with beam.Pipeline(runner=FnApiRunner()) as pipeline:
        result = pipeline | beam.Create(inputs, reshuffle=False) | transform
        for name in outputs:
            result[name] | f"Collect {name}" >> beam.ParDo(_Collect(name))
    return {name: list(_SINKS.pop(name, [])) for name in outputs}
