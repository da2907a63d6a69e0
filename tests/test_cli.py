"""`cmtp run`: refusals happen before the pipeline starts, with one line and exit status 2."""
from __future__ import annotations

import json

from cmtp.pipelines.cli import main
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
