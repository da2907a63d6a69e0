"""Beam's RowCoder for the record types, registered without importing Beam.

Loading a config or printing `cmtp --help` reads the record types but must not pay for Beam's import; every
pipeline must still encode them with RowCoder. So a record type is registered at once where Beam is already
imported (a worker, a pipeline module), and otherwise the moment Beam's package finishes importing.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from typing import Any, NamedTuple

_WAITING: list[type] = []  # record types to register once Beam is imported


def register_row_coder(record_type: type[NamedTuple]) -> None:
    """Have Beam encode `record_type` with RowCoder: now if Beam is imported, else as soon as it is."""
    _WAITING.append(record_type)
    if "apache_beam" in sys.modules:
        _register_waiting()
    elif not any(isinstance(finder, _AfterBeamImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterBeamImport())


def _register_waiting() -> None:
    from apache_beam.coders import RowCoder, registry

    while _WAITING:
        registry.register_coder(_WAITING.pop(0), RowCoder)


class _AfterBeamImport(importlib.abc.MetaPathFinder):
    """Finds `apache_beam` as the other finders do (once, then steps aside) and registers the waiting record types
    right after the package's own code has run."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "apache_beam":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            run = spec.loader.exec_module

            def exec_module(module: Any) -> None:
                run(module)
                _register_waiting()

            spec.loader.exec_module = exec_module  # this spec's loader only: its other methods stay as they are
        return spec
