"""The package at another commit, or the working tree frozen as it is now, importable as `cmtp` in a child process,
so a benchmark can time before and after in one run (bench_startup.py, bench_pipeline.py).

Either tree is put in a folder of its own: the package folders, and a `cmtp` namespace dir of symlinks to them. With
that folder first on PYTHONPATH, `cmtp.pipelines` and the rest are found there before the editable install's finder.
A module the tree lacks (one added since that commit) is still found in the working tree through that finder, so a
child that must not mix trees checks where its `cmtp.*` modules came from (`foreign_modules`).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FOLDERS = ("pipelines", "transforms", "schemas", "configs")  # installed as cmtp.<folder> (setup.py)


def old_tree(commit: str, where: Path) -> dict:
    """The package folders at `commit`, importable as `cmtp` from `where`: the environment to run them with."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, *FOLDERS], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
    return _importable(where)


def working_tree(where: Path) -> dict:
    """The package folders as they are in the working tree now (uncommitted edits included), copied to `where`, so
    an edit made while a benchmark runs does not reach it."""
    for folder in FOLDERS:
        shutil.copytree(REPO / folder, where / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return _importable(where)


def _importable(where: Path) -> dict:
    (where / "cmtp").mkdir()
    for folder in FOLDERS:  # a namespace package on PYTHONPATH is found before the editable install's finder
        (where / "cmtp" / folder).symlink_to(where / folder)
    return {**os.environ, "PYTHONPATH": str(where)}


def package_root() -> Path:
    """The folder the imported `cmtp` package folders live in (the repository, or a folder made here)."""
    import cmtp.pipelines

    return Path(cmtp.pipelines.__file__).resolve().parent.parent


def foreign_modules(root: Path) -> list[str]:
    """The imported `cmtp.*` modules that do not come from `root`."""
    return sorted(name for name, module in list(sys.modules.items())
                  if name.startswith("cmtp.") and getattr(module, "__file__", None)
                  and not Path(module.__file__).resolve().is_relative_to(root))
