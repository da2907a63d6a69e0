"""`cmtp inspect` and `cmtp export` on damaged runs and bad output paths: one line naming the file and exit 2,
never a traceback; export never replaces an existing file unless asked. Runs are made once by `cmtp run` on the
embedded sample; each test damages its own copy with real files (Parquet written by pyarrow, cut-off JSON)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cmtp.pipelines.cli import main
from cmtp.pipelines.export import ExportError, export_flagembedding
from cmtp.pipelines.inspect import InspectError, inspect_run
from conftest import SAMPLE

CONFIGS = {
    "unlabeled": f"pipeline: unlabeled\nsources:\n  - name: wudao\n    paths: ['{SAMPLE}/wudao/wudao_part0.json']\n"
                 "scoring: {enabled: false}\n",
    "labeled": f"pipeline: labeled\nsources:\n  - name: ocnli\n    paths: {{rows: ['{SAMPLE}/ocnli/train.50k.json']}}\n"
               "negatives: {enabled: false}\n",
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A small unlabeled and a small (one-task) labeled run, made once."""
    base = tmp_path_factory.mktemp("runs")
    out = {}
    for name, text in CONFIGS.items():
        (base / f"{name}.yaml").write_text(text, encoding="utf-8")
        assert main(["run", str(base / f"{name}.yaml"), "--out", str(base / name)]) == 0
        out[name] = base / name
    return out


@pytest.fixture
def run_copy(runs, tmp_path) -> Callable[[str], Path]:
    """A fresh copy of a run to damage."""
    return lambda name: Path(shutil.copytree(runs[name], tmp_path / name))


def refused(argv: list[str], capsys) -> str:
    """Run the command line; it must exit 2 with one line `cmtp: error: ...` and no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cmtp: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def first_shard(run: Path, folder: str) -> Path:
    return sorted((run / folder).glob("*.parquet"))[0]


DAMAGES: dict[str, Callable[[Path], None]] = {
    "cut_in_half": lambda p: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2]),
    "empty": lambda p: p.write_bytes(b""),
    "not_parquet": lambda p: p.write_text("id,query\n1,q\n", encoding="utf-8"),
    "other_columns": lambda p: pq.write_table(pa.table({"source": ["s"], "pos": [["p"]]}), p),  # labeled-looking
}


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("folder", ["data", "rejects"])
def test_inspect_names_a_damaged_shard(run_copy, capsys, folder, damage):
    run = run_copy("unlabeled")
    shard = first_shard(run, folder)
    DAMAGES[damage](shard)
    assert str(shard) in refused(["inspect", str(run)], capsys)
    with pytest.raises(InspectError, match="not a shard of a cmtp run: no column" if damage == "other_columns"
                       else "cannot read it"):
        inspect_run(str(run))


def test_inspect_names_a_report_cut_short_or_not_a_report(run_copy, capsys):
    run = run_copy("unlabeled")
    report = run / "report.json"
    text = report.read_text("utf-8")
    report.write_text(text[:len(text) // 2], encoding="utf-8")
    assert f"{report}: cannot read it: " in refused(["inspect", str(run)], capsys)
    report.write_text("[1, 2]", encoding="utf-8")
    assert f"{report}: not a cmtp report" in refused(["inspect", str(run)], capsys)
    report.write_text('{"sources": {"wudao": {"records_read": 3}}}', encoding="utf-8")
    assert f"{report}: not a cmtp report (no totals, checks, balanced)" in refused(["inspect", str(run)], capsys)
    report.unlink()
    report.mkdir()  # a folder where the report should be
    assert f"{report}: not a file" in refused(["inspect", str(run)], capsys)


def test_html_into_a_missing_folder_or_a_folder_is_refused_before_any_work(runs, tmp_path):
    from cmtp.pipelines.html_report import write_html

    page = tmp_path / "nowhere" / "report.html"
    with pytest.raises(InspectError, match=f"--html {page}: no folder {page.parent}"):
        write_html(str(runs["unlabeled"]), str(page))
    with pytest.raises(InspectError, match="is a folder; give a file name"):
        write_html(str(runs["unlabeled"]), str(tmp_path))
    assert not (tmp_path / "nowhere").exists()


def test_html_and_card_name_a_damaged_file(run_copy):
    from cmtp.pipelines.card import write_card
    from cmtp.pipelines.html_report import write_html

    run = run_copy("unlabeled")
    shard = first_shard(run, "data")
    DAMAGES["empty"](shard)
    with pytest.raises(InspectError, match=f"{shard}: cannot read it"):
        write_html(str(run), str(run / "report.html"))
    run = run_copy("labeled")
    (run / "config.yaml").write_text("pipeline: [labeled\n", encoding="utf-8")
    with pytest.raises(InspectError, match=f"{run / 'config.yaml'}: not valid YAML"):
        write_card(str(run))


@pytest.mark.parametrize("damage", DAMAGES)
def test_export_names_a_damaged_shard_and_writes_nothing(run_copy, tmp_path, capsys, damage):
    run = run_copy("labeled")
    shard = first_shard(run, "data")
    DAMAGES[damage](shard)
    out = tmp_path / "fe"
    assert str(shard) in refused(["export", str(run), "--out", str(out)], capsys)
    assert not out.exists()


def test_export_never_replaces_an_existing_file_unless_asked(runs, tmp_path, capsys):
    run = str(runs["labeled"])
    target = tmp_path / "ocnli.jsonl"
    target.write_text("my own file\n", encoding="utf-8")
    assert f"--out {target}: already exists; pass --overwrite" in refused(["export", run, "--out", str(target)], capsys)
    assert target.read_text("utf-8") == "my own file\n"
    assert f"--out {target}: already exists" in refused(["export", run, "--out", str(tmp_path)], capsys)  # in a folder
    assert target.read_text("utf-8") == "my own file\n"
    summary = export_flagembedding(run, str(target), overwrite=True)
    assert summary["ocnli"]["written"] == len(target.read_text("utf-8").splitlines()) > 0
    assert [p.name for p in tmp_path.iterdir()] == ["ocnli.jsonl"]  # no partial file left beside it


def test_export_refuses_an_out_of_the_wrong_kind(runs, tmp_path):
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    with pytest.raises(ExportError, match="is a file; give a directory"):
        export_flagembedding(str(runs["labeled"]), str(tmp_path / "a-file"))
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(ExportError, match="dir.jsonl: is a folder; give a file name"):
        export_flagembedding(str(runs["labeled"]), str(tmp_path / "dir.jsonl"))
