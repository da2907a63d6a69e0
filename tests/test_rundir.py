"""The output folder is the user's disk: a run touches only what its manifest lists, refuses folders it must
never write to, is atomic (staging folder renamed into place), and one run at a time holds a folder."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cmtp.pipelines.cli import main
from cmtp.pipelines.rundir import MANIFEST
from conftest import REPO, SAMPLE, write_config

CONFIG = str(REPO / "configs" / "sample.yaml")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under the folder with its bytes, to prove nothing was touched."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(capsys, *argv: str) -> str:
    """Run the cli, assert it exits 2 with one line, and return that line."""
    capsys.readouterr()  # what earlier commands printed
    assert main(list(argv)) == 2
    err = "\n".join(line for line in capsys.readouterr().err.splitlines() if not line.startswith("[cmtp "))
    assert err.startswith("cmtp: error: ") and "\n" not in err, err
    return err


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One finished sample run, for the tests that only read it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["run", CONFIG, "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text("utf-8"))
    assert report["balanced"], report["checks"]  # every record and pair accounted for
    return out


def test_a_finished_run_lists_exactly_its_files_in_its_manifest(finished):
    manifest = json.loads((finished / MANIFEST).read_text("utf-8"))
    on_disk = sorted(str(p.relative_to(finished)) for p in finished.rglob("*") if p.is_file())
    assert sorted(manifest["files"] + [MANIFEST]) == on_disk
    assert {"report.json", "config.yaml", "README.md"} <= set(manifest["files"])
    assert any(name.startswith("data/part-") for name in manifest["files"])
    assert not list(finished.parent.glob(".run.cmtp-*"))  # no staging folder or lock file left beside it


def test_overwrite_refuses_a_folder_holding_a_user_file_and_deletes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", CONFIG, "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine", "utf-8")
    (out / "data" / "keep.parquet").write_bytes(b"mine too")
    before = snapshot(out)
    err = refused(capsys, "run", CONFIG, "--out", str(out), "--overwrite")
    assert "holds files the earlier run did not write" in err and "--overwrite removes only a run's own files" in err
    assert snapshot(out) == before


def test_a_folder_no_run_made_is_refused_with_or_without_overwrite(tmp_path, capsys):
    docs = tmp_path / "documents"
    (docs / "data").mkdir(parents=True)
    (docs / "data" / "thesis.parquet").write_bytes(b"years of work")
    (docs / "README.md").write_text("mine", "utf-8")
    before = snapshot(docs)
    for flags in ([], ["--overwrite"]):
        assert "holds files no cmtp run made" in refused(capsys, "run", CONFIG, "--out", str(docs), *flags)
    assert snapshot(docs) == before


def test_overwrite_replaces_only_the_earlier_runs_files(tmp_path):
    out = tmp_path / "run"
    assert main(["run", CONFIG, "--out", str(out)]) == 0
    (out / "data" / "part-00000-of-00001.parquet").write_bytes(b"old shard")  # listed: the run's own file
    assert main(["run", CONFIG, "--out", str(out), "--overwrite"]) == 0
    assert (out / "data" / "part-00000-of-00001.parquet").read_bytes()[:4] == b"PAR1"
    manifest = json.loads((out / MANIFEST).read_text("utf-8"))
    assert all((out / name).is_file() for name in manifest["files"])


def test_the_repo_root_home_and_root_are_refused_whatever_the_flags(tmp_path, capsys, monkeypatch):
    before = snapshot(SAMPLE)
    assert "root of a git work tree" in refused(capsys, "run", CONFIG, "--out", str(REPO), "--overwrite")
    monkeypatch.chdir(REPO)
    assert "root of a git work tree" in refused(capsys, "run", CONFIG, "--out", ".", "--overwrite")
    assert snapshot(SAMPLE) == before and (REPO / "README.md").is_file()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    assert "is the home folder" in refused(capsys, "run", CONFIG, "--out", str(home), "--overwrite")
    assert "is the filesystem root" in refused(capsys, "run", CONFIG, "--out", "/", "--overwrite")
    assert list(home.iterdir()) == []


def test_a_folder_that_is_holds_or_lies_inside_an_input_is_refused(tmp_path, capsys):
    inputs = tmp_path / "corpus"
    (inputs / "a").mkdir(parents=True)
    source = (SAMPLE / "csl" / "csl_sample.tsv").read_bytes()
    (inputs / "a" / "csl.tsv").write_bytes(source)
    config = write_config(tmp_path / "run.yaml", {"csl": [inputs / "**" / "*.tsv"]})
    for out, relation in ((inputs, "it is the input"), (inputs / "a" / "run", "it lies inside the input"),
                          (tmp_path, "it holds the input")):
        err = refused(capsys, "run", str(config), "--out", str(out), "--overwrite")
        assert relation in err, err
    listed = write_config(tmp_path / "listed.yaml", {"csl": [inputs / "a" / "*.tsv"]})
    assert "it lies inside the input" in refused(capsys, "run", str(listed), "--out", str(inputs / "a" / "run"))
    assert snapshot(inputs) == {"a/csl.tsv": source}


@pytest.mark.parametrize("make, out, message", [
    (lambda t: (t / "f").write_text("x"), "{t}/f", "is a file, not a folder"),
    (lambda t: (t / "f").write_text("x"), "{t}/f/run", "lies under {t}/f, which is a file"),
    (lambda t: None, "~", "'~' was not expanded"),
    (lambda t: None, "~/runs/x", "'~' was not expanded"),
])
def test_bad_output_paths_get_one_line_and_nothing_is_written(tmp_path, capsys, monkeypatch, make, out, message):
    monkeypatch.chdir(tmp_path)
    make(tmp_path)
    before = snapshot(tmp_path)
    err = refused(capsys, "run", CONFIG, "--out", out.format(t=tmp_path))
    assert message.format(t=tmp_path) in err
    assert snapshot(tmp_path) == before and not (tmp_path / "~").exists()


def test_a_full_disk_is_one_line_and_leaves_nothing_behind(tmp_path, capsys):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    try:
        err = refused(capsys, "run", CONFIG, "--out", str(disk / "run"))
        assert f"--out {disk / 'run'}: no space left on device" in err
        assert os.listdir(disk) == []  # no staging folder, no half-written run, no lock file
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=True)  # Beam may still hold the failed shard open


def test_inspect_refuses_a_folder_without_a_complete_manifest(finished, tmp_path, capsys):
    (tmp_path / "half").mkdir()
    for name in ("data", "rejects"):
        (tmp_path / "half" / name).symlink_to(finished / name)
    (tmp_path / "half" / "report.json").write_bytes((finished / "report.json").read_bytes())
    assert "not a finished cmtp run" in refused(capsys, "inspect", str(tmp_path / "half"))
    broken = tmp_path / "broken"
    broken.mkdir()
    manifest = json.loads((finished / MANIFEST).read_text("utf-8"))
    (broken / MANIFEST).write_text(json.dumps(manifest), "utf-8")
    assert "incomplete run" in refused(capsys, "inspect", str(broken))
    assert main(["inspect", str(finished), "--samples", "0"]) == 0


def _lock_holder(out: Path) -> subprocess.Popen:
    """Another process holding the folder's run lock, as a live `cmtp run` does."""
    code = ("import sys, time; from pathlib import Path; from cmtp.pipelines.rundir import RunFolder\n"
            "with RunFolder(Path(sys.argv[1]), []):\n    print('held', flush=True); time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_run_on_the_same_folder_is_refused_while_the_first_lives(tmp_path, capsys):
    out = tmp_path / "run"
    holder = _lock_holder(out)
    try:
        err = refused(capsys, "run", CONFIG, "--out", str(out))
        assert f"another cmtp run (pid {holder.pid}) is writing it" in err
    finally:
        holder.kill()
        holder.wait()
    assert main(["run", CONFIG, "--out", str(out)]) == 0  # the lock died with its process


def test_a_killed_run_never_looks_finished_and_a_rerun_completes(tmp_path, capsys):
    out = tmp_path / "run"
    staging = tmp_path / ".run.cmtp-staging"
    run = subprocess.Popen([sys.executable, "-m", "cmtp.pipelines.cli", "run", CONFIG, "--out", str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (staging / "config.yaml").exists():  # the config is written just before the pipeline starts
        assert run.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.01)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert not out.exists()
    err = refused(capsys, "inspect", str(out))
    assert "no such run directory" in err and "unfinished run's staging folder" in err
    assert main(["run", CONFIG, "--out", str(out)]) == 0
    assert not staging.exists() and (out / MANIFEST).is_file()
    assert main(["inspect", str(out), "--samples", "0"]) == 0


@pytest.mark.parametrize("argv, message", [
    (["run", CONFIG, "--ouut", "X"], "cmtp run: unknown option --ouut (did you mean --out?)"),
    (["run", CONFIG, "--runer", "FlinkRunner"], "cmtp run: unknown option --runer (did you mean --runner?)"),
    (["calibrate", "--data", CONFIG, "--target-precison", "0.9"],
     "cmtp calibrate: unknown option --target-precison (did you mean --target-precision?)"),
    (["inspect", "x", "--max-socre", "1"], "cmtp inspect: unknown option --max-socre (did you mean --max-score?)"),
    (["export", "x", "--out", "y", "--overwrit"], "cmtp export: unknown option --overwrit (did you mean --overwrite?)"),
])
def test_every_subcommand_refuses_an_unknown_option(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert refused(capsys, *argv) == f"cmtp: error: {message}"
    assert list(tmp_path.iterdir()) == []  # `run` wrote nothing, not even the default runs/ folder


# --- found by a hostile re-test after the fixes above ------------------------------------------------------------

def test_a_users_empty_folders_are_never_removed(tmp_path, capsys):
    """Before: `--out` holding only empty folders counted as empty, and they were deleted to make room."""
    out = tmp_path / "music"
    (out / "photos" / "2024").mkdir(parents=True)
    for flags in ([], ["--overwrite"]):
        assert "holds files no cmtp run made (photos/" in refused(capsys, "run", CONFIG, "--out", str(out), *flags)
    assert (out / "photos" / "2024").is_dir()
    run = tmp_path / "run"
    assert main(["run", CONFIG, "--out", str(run)]) == 0
    (run / "my_project" / "sub").mkdir(parents=True)
    assert "did not write (my_project/" in refused(capsys, "run", CONFIG, "--out", str(run), "--overwrite")
    assert (run / "my_project" / "sub").is_dir()


def test_a_file_saved_into_out_during_the_run_keeps_both_runs(tmp_path, capsys, monkeypatch):
    """Before: the earlier run's files were removed, the rename failed, and the finished run was deleted too."""
    from cmtp.pipelines import rundir

    out = tmp_path / "run"
    assert main(["run", CONFIG, "--out", str(out)]) == 0
    earlier = snapshot(out)
    finish = rundir.RunFolder.finish

    def user_saves_a_file_first(folder, pipeline):
        (out / "notes.txt").write_text("saved meanwhile", "utf-8")
        finish(folder, pipeline)

    monkeypatch.setattr(rundir.RunFolder, "finish", user_saves_a_file_first)
    err = refused(capsys, "run", CONFIG, "--out", str(out), "--overwrite")
    assert "notes.txt appeared in it during the run; nothing was replaced" in err
    assert snapshot(out) == {**earlier, "notes.txt": b"saved meanwhile"}
    staging = tmp_path / ".run.cmtp-staging"
    assert (staging / MANIFEST).is_file() and str(staging) in err  # the finished run is where the line says


def test_an_out_that_cannot_be_created_is_one_line(tmp_path, capsys):
    """Before: a 16-line traceback from the lock file's open (a read-only folder, /proc, a too-long name)."""
    for out, cause in (("/proc/cmtp_run", "cannot write beside it"), (str(tmp_path / ("x" * 250)), "File name too long")):
        assert cause in refused(capsys, "run", CONFIG, "--out", out)


def test_an_empty_out_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "--out: empty" in refused(capsys, "run", CONFIG, "--out", "")
    assert list(tmp_path.iterdir()) == []


def test_inspect_html_never_replaces_a_file_unless_asked_nor_a_shard_ever(finished, tmp_path, capsys):
    """Before: `--html` wrote over any file, even the run's own data shard."""
    shard = next((finished / "data").glob("part-*.parquet"))
    before = shard.read_bytes()
    for flags in ([], ["--overwrite"]):
        assert "inside the run's data/" in refused(capsys, "inspect", str(finished), "--samples", "0", "--html",
                                                   str(shard), *flags)
    assert shard.read_bytes() == before
    page = tmp_path / "page.html"
    page.write_text("mine", "utf-8")
    assert "already exists; pass --overwrite" in refused(capsys, "inspect", str(finished), "--samples", "0", "--html",
                                                         str(page))
    assert page.read_text("utf-8") == "mine"


def test_ctrl_c_stops_a_run_in_one_line_and_leaves_nothing(tmp_path):
    """Before: an 83-line KeyboardInterrupt traceback (the cleanup itself was right)."""
    out = tmp_path / "run"
    staging = tmp_path / ".run.cmtp-staging"
    # as a terminal starts it: Ctrl-C handled and not blocked, whatever this test process inherited (the full suite,
    # run in a fresh venv, twice handed the run a SIGINT it never acted on)
    as_from_a_terminal = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                          "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); sys.argv = sys.argv[1:]; "
                          "runpy.run_module('cmtp.pipelines.cli', run_name='__main__')")
    run = subprocess.Popen([sys.executable, "-c", as_from_a_terminal, "cmtp", "run", CONFIG, "--out", str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "CMTP_PROGRESS_SECONDS": "0"})
    seen = []
    for line in run.stderr:  # the first progress line: records are flowing through the pipeline
        seen.append(line.rstrip("\n"))
        if line.startswith("[cmtp"):
            break
    assert run.poll() is None and staging.exists(), f"the run ended before it could be interrupted: {seen[-5:]}"
    run.send_signal(signal.SIGINT)
    err = [line for line in seen + run.communicate(timeout=120)[1].splitlines()
           if line.startswith("cmtp:") or "Traceback" in line]
    assert run.returncode == 130 and err == ["cmtp: interrupted"]
    assert not out.exists() and not staging.exists()


def test_an_out_that_is_a_mount_point_or_not_utf8_is_refused(tmp_path, capsys):
    """Before: a mount point took the rename as EBUSY after the earlier run was removed; a non-UTF-8 name was a
    traceback."""
    assert "is a mount point" in refused(capsys, "run", CONFIG, "--out", "/proc")
    assert "not UTF-8" in refused(capsys, "run", CONFIG, "--out", str(tmp_path) + "/o\udcff7")


def test_inspect_html_never_writes_over_the_runs_own_files(finished, capsys):
    for name in ("report.json", "README.md", MANIFEST):
        before = (finished / name).read_bytes()
        assert "one of the run's own files" in refused(capsys, "inspect", str(finished), "--samples", "0", "--html",
                                                       str(finished / name), "--overwrite")
        assert (finished / name).read_bytes() == before


def test_a_profile_that_is_not_utf8_is_one_line(tmp_path, capsys):
    profile = tmp_path / "p.yaml"
    profile.write_bytes("# 中文\noptions: {}\n".encode("gb18030"))
    assert "not UTF-8 text" in refused(capsys, "run", CONFIG, "--profile", str(profile), "--out", str(tmp_path / "o"))
