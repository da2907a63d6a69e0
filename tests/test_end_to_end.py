"""End to end through `cmtp run`: real files in ../shared/data plus the embedded sample, read back and checked."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cmtp.pipelines.cli import main
from cmtp.schemas import PAIR_SCHEMA, REJECT_SCHEMA
from cmtp.transforms.sources import REGISTRY
from cmtp.transforms.sources.judgments import LabeledSource
from conftest import REPO, SAMPLE, write_config


def run_cli(config: Path, out: Path) -> dict:
    """Run `cmtp run`; every end-to-end run must account for every record and pair."""
    assert main(["run", str(config), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text("utf-8"))
    assert report["balanced"], report["checks"]
    return report


def read_dir(directory: Path, schema) -> list[dict]:
    files = sorted(directory.glob("part-*-of-*.parquet"))
    assert files, f"no shards in {directory}"
    rows = []
    for file in files:
        table = pq.read_table(file)
        assert table.schema.remove_metadata() == schema, file
        assert pq.ParquetFile(file).metadata.row_group(0).column(0).compression == "ZSTD"
        rows += table.to_pylist()
    return rows


ALL_SAMPLES = {
    "wudao": [SAMPLE / "wudao" / "*"],
    "zhihu": [SAMPLE / "zhihu" / "*"],
    "baike": [SAMPLE / "baike" / "*.json", SAMPLE / "baike" / "wiki_zh" / "*" / "wiki_*"],
    "news": [SAMPLE / "news" / "*"],
    "csl": [SAMPLE / "csl" / "*"],
    "xlsum": [SAMPLE / "xlsum" / "*"],
    "amazon_reviews": [SAMPLE / "amazon" / "*"],
    "cmrc2018": [SAMPLE / "cmrc2018" / "*"],
    "wiki_atomic_edits": [SAMPLE / "wiki_atomic_edits" / "*"],
    "dureader": [SAMPLE / "dureader" / "*"],
    "zhidao": [SAMPLE / "zhidao" / "*"],
}


@pytest.fixture(scope="module")
def real_config(tmp_path_factory, shared_data) -> Path:
    real = {
        "wudao": [shared_data / "wudao" / "*"],
        "cmrc2018": [shared_data / "cmrc2018" / "*" / "*.json"],
        "csl": [shared_data / "csl" / "*"],
        "dureader": [shared_data / "dureader" / "*"],
        "zhidao": [shared_data / "zhidao" / "*"],
    }
    sources = {name: real.get(name, []) + paths for name, paths in ALL_SAMPLES.items()}
    return write_config(tmp_path_factory.mktemp("cfg") / "real.yaml", sources,
                        options={"wudao": {"lead_question_as_title": True}})


@pytest.fixture(scope="module")
def real_runs(real_config, tmp_path_factory) -> list[Path]:
    outs = [tmp_path_factory.mktemp("run") / "out" for _ in range(2)]
    for out in outs:
        run_cli(real_config, out)
    return outs


def test_outputs_read_back_under_the_declared_schemas(real_runs):
    out = real_runs[0]
    report = json.loads((out / "report.json").read_text("utf-8"))
    kept, rejects = read_dir(out / "data", PAIR_SCHEMA), read_dir(out / "rejects", REJECT_SCHEMA)
    assert len(kept) == report["totals"]["pairs_kept"] > 1000
    assert len(rejects) == sum(n for reasons in report["dropped"].values() for n in reasons.values())
    assert (out / "config.yaml").is_file()
    assert all(row["score"] is not None and row["scorer"] for row in kept)
    assert len({row["id"] for row in kept}) == len(kept)


def test_report_balances_for_every_source(real_runs):
    report = json.loads((real_runs[0] / "report.json").read_text("utf-8"))
    assert report["balanced"], report["checks"]
    totals = report["totals"]
    assert totals["records_read"] == totals["read_rejects"] + totals["extract_rejects"] + totals["records_with_pairs"]
    assert totals["pairs_extracted"] == totals["pairs_kept"] + totals["pairs_dropped"]
    assert set(report["sources"]) == set(ALL_SAMPLES)
    read = {name: row["records_read"] for name, row in report["sources"].items()}
    # real files + embedded sample: 1,002 CMRC questions in each real layout + 34; CSL 1,000 ts + 1,000 kg
    # + 160 FewCLUE + 41; 100 DuReader questions + 6; 8 Zhidao rows + 8; 21 + 20 Wudao records + 32
    assert (read["cmrc2018"], read["csl"], read["dureader"], read["zhidao"], read["wudao"]) == (
        2038, 2201, 106, 16, 73)


def test_every_reject_carries_stage_reason_and_location(real_runs):
    rejects = read_dir(real_runs[0] / "rejects", REJECT_SCHEMA)
    assert {r["stage"] for r in rejects} == {"read", "extract", "filter", "dedup", "semantic"}
    for reject in rejects:
        assert reject["reason"] and reject["detail"] and reject["file"] and reject["position"]
    semantic = [r for r in rejects if r["stage"] == "semantic"]
    assert all(r["score"] is not None and r["score"] < 0.2 for r in semantic)


def test_two_runs_give_identical_rows(real_runs):
    """Identical rows; the float32 score and margin may differ in their last bits with the batch they were encoded in
    (Beam sizes batches by timing), and the rank never does."""
    for sub, schema in (("data", PAIR_SCHEMA), ("rejects", REJECT_SCHEMA)):
        first, second = (sorted(read_dir(out / sub, schema), key=lambda r: (r["id"], r["file"], r["position"]))
                         for out in real_runs)
        assert len(first) == len(second)
        for a, b in zip(first, second):
            assert same_row(a, b)


def same_row(a: dict, b: dict) -> bool:
    """Equal rows, the floats within 1e-5 and the texts that print them with their four decimals; a consistency
    rank within one (a pool passage that ties the pair's own score within float32 noise, which moves with the
    batch a text was encoded in, may fall on either side: about one pair in 3,000 against 2,048 rivals)."""
    floats = ("score", "margin")
    for name in floats:
        if (a[name] is None) != (b[name] is None) or a[name] is not None and a[name] != pytest.approx(b[name], abs=1e-5):
            return False
    if (a["rank"] is None) != (b["rank"] is None) or a["rank"] is not None and abs(a["rank"] - b["rank"]) > 1:
        return False
    rest = [{k: v for k, v in row.items() if k not in (*floats, "rank", "detail")} for row in (a, b)]
    details = [re.sub(r"[-+]?\d+\.\d{4}|ranks \d+", "#", row.get("detail") or "") for row in (a, b)]
    return rest[0] == rest[1] and details[0] == details[1]


def test_sample_config_shows_every_reject_path(tmp_path):
    report = run_cli(REPO / "configs" / "sample.yaml", tmp_path / "sample")
    assert report["balanced"]
    rejects = read_dir(tmp_path / "sample" / "rejects", REJECT_SCHEMA)
    found = {(Path(r["file"]).name, r["position"].split(" (")[0], r["reason"]) for r in rejects}
    for expected in [
        ("wudao_records.json.gz", "record 5", "invalid_json"),
        ("wudao_part0.json", "record 5", "empty_title"),
        ("wudao_part0.json", "record 8", "query_low_cjk_ratio"),
        ("wudao_part0.json", "record 9", "near_duplicate"),  # record 10 is the longer of the two, so it survives
        ("wudao_part0.json", "record 12", "exact_duplicate"),
        ("wudao_part0.json", "record 13", "below_top_k"),
        ("wudao_part0.json", "record 14", "boilerplate_passage"),  # "详见附件。"
        ("csl_sample.tsv", "line 5", "wrong_column_count"),
        ("csl_sample.tsv", "line 13", "passage_low_cjk_ratio"),
        ("csl_sample.tsv", "line 2", "near_duplicate"),  # line 17 survives: equal length, smaller id
        ("csl_sample.tsv", "line 21", "below_top_k"),  # the keywords pair; its title pair ranks 10th of 195
        ("cmrc2018_sample.json", "data[2].paragraphs[0].qas[2]", "empty_question"),
        ("cmrc2018_sample.json", "data[4].paragraphs[0].qas[0]", "empty_context"),
        ("web_text_zh_noisy.json", "line 1", "passage_flagged_ads"),
        ("web_text_zh_noisy.json", "line 2", "passage_flagged_gambling"),
        ("web_text_zh_noisy.json", "line 5", "passage_mojibake"),
        ("web_text_zh_noisy.json", "line 6", "passage_language"),
        ("web_text_zh_noisy.json", "line 7", "boilerplate_passage"),
    ]:
        assert expected in found, expected
    kept = read_dir(tmp_path / "sample" / "data", PAIR_SCHEMA)
    counters = report["counters"]  # read back from the shards by the run itself
    assert (counters["rows_written"], counters["reject_rows_written"], counters["repeated_ids"]) == (
        len(kept), len(rejects), 0)
    assert {row["source"] for row in kept} == {name for name, source in REGISTRY.items()  # querygen: own tests
                                               if not issubclass(source, LabeledSource) and name != "querygen"}
    assert any(Path(row["file"]).name == "csl_sample_gb18030.tsv" for row in kept)
    noisy = {row["position"]: row for row in kept if row["file"].endswith("web_text_zh_noisy.json")}
    assert "<PHONE>" in noisy["line 3"]["passage"] and "13812345678" not in noisy["line 3"]["passage"]
    assert "<div" not in noisy["line 4"]["passage"] and noisy["line 4"]["passage"].startswith("可以使用浏览器自带的")
    assert noisy["line 8"]["flags"].startswith("passage_flagged_abuse:")
    assert report["sources"]["zhihu"]["pii_masked"] == {"phone": 1}
    assert report["sources"]["zhihu"]["flagged"] == {"passage_flagged_abuse": 1}
    every_kind = {kind for name, source in REGISTRY.items() if not issubclass(source, LabeledSource)
                  and name != "querygen" for kind in source.kinds}
    assert {row["kind"] for row in kept} | {r["kind"] for r in rejects if r["kind"]} == every_kind


def test_survivors_do_not_depend_on_file_order_or_how_the_input_is_split(tmp_path, shared_data):
    """The same real records as one file and as three files listed in another order: the same pairs survive
    each stage, and each reject names the same survivor."""
    lines = (shared_data / "csl" / "ts_dev.tsv").read_text("utf-8").splitlines(keepends=True)
    lines += lines[:200]  # exact copies, so dedup has survivors to choose
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    whole.mkdir()
    parts.mkdir()
    (whole / "all.tsv").write_text("".join(lines), encoding="utf-8")
    for i in range(3):
        (parts / f"part{i}.tsv").write_text("".join(lines[i::3]), encoding="utf-8")

    def outcome(folder: Path, name: str) -> tuple:
        config = write_config(tmp_path / f"{name}.yaml", {"csl": [folder / "*.tsv"]})
        run_cli(config, tmp_path / name)
        kept = sorted(row["id"] for row in read_dir(tmp_path / name / "data", PAIR_SCHEMA))
        rejects = sorted((r["id"], r["reason"], r["detail"].split(" (")[0]) for r in
                         read_dir(tmp_path / name / "rejects", REJECT_SCHEMA) if r["stage"] == "dedup")
        return kept, rejects

    one, split = outcome(whole, "one"), outcome(parts, "split")
    assert one == split and len(one[1]) >= 200


def test_inspect_summary_equals_the_report_and_the_shards(real_runs, capsys):
    from cmtp.pipelines.cli import main
    from cmtp.pipelines.inspect import inspect_run

    out = real_runs[0]
    report = json.loads((out / "report.json").read_text("utf-8"))
    result = inspect_run(str(out))
    kept, rejects = read_dir(out / "data", PAIR_SCHEMA), read_dir(out / "rejects", REJECT_SCHEMA)
    assert result["data"]["rows"] == len(kept) == report["totals"]["pairs_kept"]
    assert result["rejects"]["rows"] == len(rejects)
    assert sum(result["kept_by_source_and_kind"].values()) == len(kept)
    for source, row in report["sources"].items():
        steps = dict(result["funnel"][source])
        assert steps["records read"] == row["records_read"] and steps["kept"] == row["pairs_kept"]
        for stage, reasons in row["dropped"].items():
            for reason, n in reasons.items():
                assert result["dropped_by_source_stage_reason"][f"{source}/{stage}/{reason}"] == n
    assert main(["inspect", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["data"]["rows"] == len(kept)


def test_inspect_filters_return_only_matching_rows_and_samples_repeat(real_runs):
    from cmtp.pipelines.inspect import Selection, inspect_run, render

    out = str(real_runs[0])
    csl = inspect_run(out, Selection(source="csl", kind="title_abstract", min_score=0.3, samples=8))
    assert len(csl["samples"]["kept"]) == 8
    assert all(r["source"] == "csl" and r["kind"] == "title_abstract" and r["score"] >= 0.3
               for r in csl["samples"]["kept"])
    assert all(r["source"] == "csl" for rows in csl["samples"]["rejects"].values() for r in rows)
    dedup = inspect_run(out, Selection(stage="dedup", reason="duplicate_passage", samples=3))
    assert dedup["samples"]["kept"] == [] and list(dedup["samples"]["rejects"]) == ["dedup/duplicate_passage"]
    grep = inspect_run(out, Selection(grep="研究", samples=5))
    assert grep["samples"]["kept"] and all("研究" in r["query"] + r["passage"] for r in grep["samples"]["kept"])
    again = inspect_run(out, Selection(source="csl", kind="title_abstract", min_score=0.3, samples=8))
    assert [r["id"] for r in again["samples"]["kept"]] == [r["id"] for r in csl["samples"]["kept"]]
    other = inspect_run(out, Selection(source="csl", kind="title_abstract", min_score=0.3, samples=8, seed=2))
    assert [r["id"] for r in other["samples"]["kept"]] != [r["id"] for r in csl["samples"]["kept"]]
    text = render(csl)
    assert "funnel:" in text and "scores, csl (threshold 0.2)" in text and "kept, 8 sampled" in text


def test_a_run_directory_gets_a_dataset_card_with_the_kept_counts(real_runs):
    import re

    out = real_runs[0]
    report = json.loads((out / "report.json").read_text("utf-8"))
    card = (out / "README.md").read_text("utf-8")
    rows = re.findall(r"^\| (\w+) \| ([\d,]+) \| [\d.]+% \| (.+?) \| (.+?) \|$", card, re.M)
    assert {source: int(n.replace(",", "")) for source, n, _, _ in rows} == {
        source: row["pairs_kept"] for source, row in report["sources"].items() if row["pairs_kept"]}
    licenses = {source: license for source, _, _, license in rows}
    assert licenses["cmrc2018"] == "CC-BY-SA-4.0" and licenses["csl"] == "not stated"
    assert "cosine >= 0.2" in card and "```yaml\npipeline: unlabeled" in card


def _chromium() -> str:
    import shutil

    found = shutil.which("chromium")
    if not found:  # .ci/run installs it; a machine without Debian's packages cannot
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return found


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0"]


# Appended to a copy of the page: draws each CJK character of the page in the table cells' fonts on a canvas and
# lists those drawn exactly like a code point no font has (U+10FFFD), i.e. as the missing-glyph box.
GLYPH_CHECK = r"""<script>(async () => {
  const family = getComputedStyle(document.querySelector("td")).fontFamily, font = `32px ${family}`;
  const chars = [...new Set(document.body.innerText)].filter(c => c.codePointAt(0) >= 0x2e80);
  await document.fonts.load(font, chars.join(""));
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 48;
  const context = canvas.getContext("2d", {willReadFrequently: true});
  context.font = font;
  const draw = c => { context.clearRect(0, 0, 48, 48); context.fillText(c, 4, 38);
                      return context.getImageData(0, 0, 48, 48).data.join(); };
  const box = draw("\u{10FFFD}"), out = document.createElement("pre");
  out.id = "glyph-check";
  out.textContent = JSON.stringify({family, checked: chars.length, missing: chars.filter(c => draw(c) === box)});
  document.body.append(out);
})();</script>"""


def _embedded_font_characters(text: str) -> set[str]:
    """The characters the page's embedded web font has glyphs for."""
    import base64
    import io
    import re

    from fontTools.ttLib import TTFont

    fonts = re.findall(r"@font-face\{[^}]*src:url\(data:font/woff;base64,([A-Za-z0-9+/=]+)\)", text)
    assert fonts, "the page embeds its web fonts"
    return {chr(code) for font in fonts for code in TTFont(io.BytesIO(base64.b64decode(font))).getBestCmap()}


def test_the_page_embeds_a_glyph_for_every_character_of_a_real_sample_hebrew_included(shared_data):
    """Before: a CMRC context quoting Hebrew, sampled into the page, had no glyph in the embedded CJK font."""
    from cmtp.pipelines.html_report import _font_face

    squad = json.loads((shared_data / "cmrc2018" / "squad-style" / "cmrc2018_trial.json").read_text("utf-8"))
    context = next(p["context"] for a in squad["data"] for p in a["paragraphs"]
                   if any("\u0590" <= c <= "\u05ff" for c in p["context"]))
    wanted = {c for c in context if ord(c) > 127}
    assert any("\u0590" <= c <= "\u05ff" for c in wanted) and any("\u4e00" <= c <= "\u9fff" for c in wanted)
    assert wanted <= _embedded_font_characters(_font_face(context))


@pytest.mark.filterwarnings("error:Glyph .* missing from font:UserWarning")  # matplotlib's tofu, in a chart
def test_html_report_opens_in_a_headless_browser_with_funnel_and_histograms(real_runs, tmp_path):
    import html
    import re
    import subprocess

    from cmtp.pipelines.cli import main

    page = tmp_path / "report.html"
    assert main(["inspect", str(real_runs[0]), "--html", str(page), "--samples", "3"]) == 0
    text = page.read_text("utf-8")
    assert not re.search(r"""(src|href)=['"]?(https?:|//)""", text)  # self-contained: nothing to fetch
    # Chinese renders on a machine without a CJK font: the page carries a font with every character it shows
    shown = {c for c in re.sub(r"<style>.*?</style>", "", text, flags=re.S) if ord(c) > 127}
    cjk = {c for c in shown if ord(c) >= 0x2E80}
    assert len(cjk) > 500 and shown <= _embedded_font_characters(text)
    chromium = _chromium()
    flags = CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Funnel" in dom.stdout and 'alt="funnel"' in dom.stdout
    report = json.loads((real_runs[0] / "report.json").read_text("utf-8"))
    scored = [source for source, row in report["sources"].items() if row["score_histogram"]]
    assert len(re.findall(r'<img class="histogram"[^>]+src="data:image/png;base64,', dom.stdout)) == len(scored) > 3
    assert not re.search(r"CONSOLE|Uncaught|net::ERR_", dom.stderr)  # no script errors, no failed loads
    shot = tmp_path / "report.png"
    result = subprocess.run([chromium, *flags, "--window-size=1200,2400", f"--screenshot={shot}", page.as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # and chromium draws each of them as a glyph, not as the missing-glyph box
    probe = tmp_path / "glyph-check.html"
    probe.write_text(text.replace("</body>", GLYPH_CHECK + "</body>"), encoding="utf-8")
    checked = subprocess.run([chromium, *flags, "--virtual-time-budget=20000", "--dump-dom", probe.as_uri()],
                             capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="glyph-check">(.*?)</pre>', checked.stdout)
    assert checked.returncode == 0 and found, checked.stderr[-2000:]
    glyphs = json.loads(html.unescape(found.group(1)))
    assert glyphs["checked"] == len(cjk) and glyphs["missing"] == [], glyphs
