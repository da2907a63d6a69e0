"""The run folder on the user's disk: checked before anything is written, written into a staging folder beside
it, renamed into place when the run has finished, with a manifest of the files the run wrote.

- A finished run holds `.cmtp-run.json`, the manifest: the only marker that `cmtp run` made the folder. A
  killed or failed run never gets one, so it never looks finished.
- `--overwrite` removes only the files a manifest lists, and refuses a folder that holds anything else.
- `/`, the home folder, a git work tree's root and any folder that is, holds or lies inside an input are
  refused whatever the flags.
- One run at a time per folder: an flock on a lock file beside it, released by the kernel when the process
  dies, so a killed run never blocks the next.
"""
from __future__ import annotations

import fcntl
import glob
import json
import os
import shutil
from pathlib import Path
from typing import Iterable, Optional

MANIFEST = ".cmtp-run.json"
_STAGING_MARK = ".cmtp-staging"  # inside a staging folder: only folders holding it are ever removed as stale
_FORMAT = 1


class RunDirError(ValueError):
    """A run folder that cannot be used or read as asked; the message is one line naming the path."""


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(os.path.abspath(os.path.expanduser(str(path)))))


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies under it."""
    return path == folder or folder in path.parents


def input_roots(patterns: Iterable[str]) -> list[Path]:
    """The folders input globs list: each wildcard pattern up to its first wildcard. A run folder inside one could
    be read as input by the next run, or hide among the inputs."""
    roots = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            parts = Path(pattern).parts
            fixed = parts[:next(i for i, part in enumerate(parts) if glob.has_magic(part))]
            roots.append(_real(Path(*fixed) if fixed else "."))
    return roots


def _forbidden(out: Path) -> Optional[str]:
    """Why no run may ever write to `out` itself, whatever the flags; None when it may."""
    if out == Path(out.anchor):
        return "is the filesystem root"
    if out == _real(Path.home()):
        return "is the home folder"
    if (out / ".git").exists():
        return "is the root of a git work tree (a repository checkout)"
    return None


def check_out(out: str, inputs: Iterable[str | Path]) -> Path:
    """The absolute run folder for `--out`, after refusing what must never be written to: a literal `~`, a path
    that is or lies under a file, `/`, home, a repository root, and any overlap with an input."""
    if not out.strip():
        raise RunDirError("--out: empty; give the run folder's path, e.g. runs/x")
    try:
        out.encode("utf-8")
    except UnicodeEncodeError:
        raise RunDirError(f"--out {out!r}: not UTF-8; give a folder name in UTF-8") from None
    if out.startswith("~"):
        raise RunDirError(f"--out {out}: '~' was not expanded (quoted, or not at a word's start); "
                          "give the folder's full path, e.g. $HOME/runs/x")
    path = _real(out)
    for ancestor in [path, *path.parents]:
        if ancestor.exists() and not ancestor.is_dir():
            what = "is a file" if ancestor == path else f"lies under {ancestor}, which is a file"
            raise RunDirError(f"--out {out}: {what}, not a folder")
    why = _forbidden(path)
    if why:
        raise RunDirError(f"--out {out}: refused: it {why}; choose a folder of its own, e.g. runs/x")
    if path.is_mount():
        raise RunDirError(f"--out {out}: is a mount point: a finished run is renamed into place, which a mount point "
                          "cannot take; write to a folder inside it")
    roots = sorted({_real(i) for i in inputs})
    for relation, overlaps in (("is", lambda root: path == root), ("lies inside", lambda root: _inside(path, root)),
                               ("holds", lambda root: _inside(root, path))):
        root = next((root for root in roots if overlaps(root)), None)
        if root is not None:
            raise RunDirError(f"--out {out}: refused: it {relation} the input {root}; write the run elsewhere")
    return path


def read_manifest(folder: Path) -> Optional[dict]:
    """The folder's manifest, or None where it has none (or one no cmtp run wrote)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("cmtp_run") != _FORMAT or not isinstance(manifest.get("files"), list):
        return None
    return manifest


def _files_under(folder: Path) -> list[str]:
    """Every file and link under `folder`, relative, sorted."""
    found = []
    for path, dirs, files in os.walk(folder):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(path, d))]:
            found.append(os.path.relpath(os.path.join(path, name), folder))
    return sorted(found)


def _folders_under(folder: Path) -> list[str]:
    """Every real folder under `folder`, relative, sorted (links to folders are entries of `_files_under`)."""
    found = []
    for path, dirs, _ in os.walk(folder):
        found += [os.path.relpath(os.path.join(path, d), folder) for d in dirs if not os.path.islink(os.path.join(path, d))]
    return sorted(found)


def _foreign(out: Path, listed: set[str], folders: set[str]) -> list[str]:
    """What `out` holds beyond a run's listed files and folders: a user's files, links and folders (empty ones too)."""
    return ([name for name in _files_under(out) if name not in listed]
            + [f"{name}/" for name in _folders_under(out) if name not in folders])


def replaceable(out: Path, overwrite: bool) -> list[str]:
    """The files and folders of an earlier run in `out` that the new run will replace: none for a missing or empty
    folder; the manifest's lists with --overwrite; a refusal for anything else (a user's empty folders too)."""
    if not out.exists():
        return []
    manifest = read_manifest(out)
    if manifest is None:
        present = _foreign(out, set(), set())
        if not present:
            return []
        raise RunDirError(f"--out {out}: holds files no cmtp run made ({present[0]}{', ...' if len(present) > 1 else ''}); "
                          "choose a new or empty folder")
    if not overwrite:
        raise RunDirError(f"--out {out}: holds a finished run; pass --overwrite to replace it, or another --out")
    listed, folders = set(manifest["files"]) | {MANIFEST}, set(manifest.get("folders", []))
    others = _foreign(out, listed, folders)
    if others:
        raise RunDirError(f"--out {out}: holds files the earlier run did not write ({others[0]}"
                          f"{f' and {len(others) - 1} more' if len(others) > 1 else ''}); --overwrite removes "
                          "only a run's own files: move them first")
    present = set(_files_under(out))
    return sorted(listed & present) + [f"{name}/" for name in sorted(folders & set(_folders_under(out)))]


def require_finished(folder: str) -> Path:
    """A finished run folder, for inspect and export: one that holds a manifest whose files are all there."""
    path = Path(folder)
    if not path.is_dir():
        staging = _staging_of(_real(folder))
        hint = f" (an unfinished run's staging folder is at {staging})" if staging.is_dir() else ""
        raise RunDirError(f"{folder}: no such run directory{hint}")
    manifest = read_manifest(path)
    if manifest is None:
        raise RunDirError(f"{folder}: not a finished cmtp run: it has no {MANIFEST} manifest "
                          "(a killed or failed run never gets one); run it again")
    missing = [name for name in manifest["files"] if not (path / name).exists()]
    if missing:
        raise RunDirError(f"{folder}: incomplete run: {len(missing)} of the {len(manifest['files'])} files its "
                          f"manifest lists are missing ({missing[0]})")
    return path


def _staging_of(out: Path) -> Path:
    return out.parent / f".{out.name}.cmtp-staging"


class RunFolder:
    """`with RunFolder(out, replaced) as staging:` write the run into `staging`, then `finish()` to make it `out`.

    Entering takes the lock (refusing a second live run) and makes a fresh staging folder beside `out`;
    leaving without `finish()` removes the staging folder; leaving always releases the lock.
    """

    def __init__(self, out: Path, replaced: list[str]):
        self.out, self._replaced = out, replaced
        self.staging = _staging_of(out)
        self._lock_path = out.parent / f".{out.name}.cmtp-lock"
        self._lock: Optional[int] = None
        self._keep = False  # the staging folder holds a finished run that could not be moved into place

    def __enter__(self) -> Path:
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self._lock = self._take_lock()
        except OSError as error:
            raise RunDirError(f"--out {self.out}: cannot write beside it: {error.strerror} ({error.filename})") from None
        try:
            if (self.staging / _STAGING_MARK).exists():  # left by a killed run: ours to remove
                shutil.rmtree(self.staging)
            elif self.staging.exists():
                raise RunDirError(f"--out {self.out}: {self.staging} is in the way (a finished run that could not "
                                  "be moved into place?); move or remove it")
            self.staging.mkdir()
            (self.staging / _STAGING_MARK).write_text(f"{os.getpid()}\n")
        except OSError as error:
            self._release()
            raise RunDirError(f"--out {self.out}: cannot write beside it: {error.strerror} ({error.filename})") from None
        except BaseException:
            self._release()
            raise
        return self.staging

    def _take_lock(self) -> int:
        """An exclusive flock on the lock file, on the file the path names now (another run may unlink it)."""
        while True:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
                os.close(fd)
                raise RunDirError(f"--out {self.out}: another cmtp run (pid {holder}) is writing it; wait for it "
                                  "or choose another --out") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self._lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
                return fd
            os.close(fd)  # the file was unlinked by the run that held it: lock the new one

    def finish(self, pipeline: str) -> None:
        """Write the manifest, remove the earlier run's listed files, and rename the staging folder to `out`."""
        (self.staging / _STAGING_MARK).unlink()
        files = [name for name in _files_under(self.staging) if name != MANIFEST]
        manifest = {"cmtp_run": _FORMAT, "pipeline": pipeline, "files": files, "folders": _folders_under(self.staging)}
        (self.staging / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), "utf-8")
        if self.out.exists():
            replaced = {name.rstrip("/") for name in self._replaced}
            appeared = _foreign(self.out, replaced | {MANIFEST}, replaced)
            if appeared:  # checked again: a user may have saved something there during the run
                self._keep = True
                raise RunDirError(f"--out {self.out}: {appeared[0]} appeared in it during the run; nothing was "
                                  f"replaced, and the finished run is in {self.staging}")
            self._clear_earlier_run()
        try:
            os.rename(self.staging, self.out)  # over a missing or empty folder: atomic
        except OSError as error:
            self._keep = True
            raise RunDirError(f"--out {self.out}: could not move the finished run into place ({error.strerror}); "
                              f"it is in {self.staging}") from None
        self._keep = True

    def _clear_earlier_run(self) -> None:
        """Remove the earlier run's listed files (the manifest first: the folder stops looking finished), then its
        listed folders once empty, deepest first; nothing else."""
        for name in [MANIFEST] + [n for n in self._replaced if not n.endswith("/") and n != MANIFEST]:
            path = self.out / name
            if path.is_file() or path.is_symlink():
                path.unlink()
        for name in sorted((n.rstrip("/") for n in self._replaced if n.endswith("/")), key=len, reverse=True):
            path = self.out / name
            if path.is_dir() and not path.is_symlink() and not os.listdir(path):
                path.rmdir()

    def __exit__(self, *exc) -> None:
        if not self._keep and self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            try:
                os.unlink(self._lock_path)  # while still held: a run waiting on it re-checks the inode
            except FileNotFoundError:
                pass
            os.close(self._lock)
            self._lock = None
