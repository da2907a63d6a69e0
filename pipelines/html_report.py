"""`cmtp inspect DIR --html FILE`: one self-contained HTML page of a run (no network assets).

The funnel, per-source tables, score histograms per source with the threshold marked, length
distributions of both sides, and sample tables of kept and rejected rows. Plots are drawn with
matplotlib (the `[report]` extra) and embedded as PNG data URIs. Lengths are read a column batch at a
time (pyarrow's utf8_length), so the page is made in bounded memory whatever the run's size.

Chinese renders without a CJK font on the machine: the `[report]` extra ships Noto Sans SC (OFL-1.1, from
pylopdf-fonts-zh-cn), which the plots fall back to for glyphs their Latin font lacks, and which the page embeds
as a web font cut down to the characters it shows (fontTools, which matplotlib already needs). Characters it lacks
(a real CMRC sample quotes Hebrew) come from matplotlib's own DejaVu Sans, embedded the same way.
"""
from __future__ import annotations

import base64
import glob
import html
import io
import os
from typing import Iterable

import matplotlib
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fontTools import subset
from fontTools.ttLib import TTFont
from matplotlib import font_manager
from pylopdf_fonts_zh_cn import sans_path

from cmtp.pipelines.inspect import InspectError, Selection, check_columns, inspect_run, reading

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

LENGTH_BINS = np.array([0, 5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 10 ** 9])

CJK_FONT = str(sans_path())  # Noto Sans SC Regular: every GB 18030 hanzi and CJK punctuation
font_manager.fontManager.addfont(CJK_FONT)  # explicitly, whatever fonts the system has
CJK_FAMILY = font_manager.FontProperties(fname=CJK_FONT).get_name()
WEB_FONT = "cmtp-cjk"  # the page's name for the embedded cut of CJK_FONT
FALLBACK_FONT = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")  # ships with matplotlib
WEB_FALLBACK_FONT = "cmtp-other"  # the page's name for the embedded cut of FALLBACK_FONT
# the plots' fonts: the configured ones first (Latin looks as before), CJK_FONT for the glyphs they lack
with_cjk_fallback = plt.rc_context({"font.family": [*plt.rcParams["font.family"], CJK_FAMILY]})


def _font_face(text: str) -> str:
    """@font-face rules embedding CJK_FONT, and for the characters it lacks (Hebrew, Arabic, ... in a real
    sample) matplotlib's DejaVu Sans, each cut to the non-ASCII characters of `text` it has (WOFF, no hinting);
    '' for none. The page's own font comes first, so Latin text looks as before."""
    wanted = {ord(c) for c in text if ord(c) > 127}
    rules = []
    for name, path in ((WEB_FONT, CJK_FONT), (WEB_FALLBACK_FONT, FALLBACK_FONT)):
        font = TTFont(path, recalcBBoxes=False)  # the font's bounding box is kept: a third of the time
        has = wanted & set(font.getBestCmap())
        if not has:
            continue
        wanted -= has
        subsetter = subset.Subsetter(subset.Options(flavor="woff", layout_features=[], hinting=False))
        subsetter.populate(unicodes=has)
        subsetter.subset(font)
        buffer = io.BytesIO()
        font.flavor = "woff"
        font.save(buffer)
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        rules.append(f"@font-face{{font-family:{name};src:url(data:font/woff;base64,{data}) format('woff')}}")
    return "".join(rules)


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _add_lengths(out: dict[str, dict[str, np.ndarray]], batch, sides: tuple[str, str], labeled: bool) -> None:
    """Add one record batch's length histograms per source and side to `out`."""
    sources = batch.column("source").to_numpy(zero_copy_only=False)
    for side in sides:
        column = batch.column(side)
        if labeled and side == "pos":  # every positive, under its record's source
            owners = np.repeat(sources, pc.list_value_length(column).to_numpy(zero_copy_only=False))
            lengths = pc.utf8_length(pc.list_flatten(column)).to_numpy(zero_copy_only=False)
        else:
            owners, lengths = sources, pc.utf8_length(column).to_numpy(zero_copy_only=False)
        for source in np.unique(owners):
            counts, _ = np.histogram(lengths[owners == source], bins=LENGTH_BINS)
            entry = out.setdefault(str(source), {})
            entry[side] = entry.get(side, np.zeros(len(LENGTH_BINS) - 1, dtype=np.int64)) + counts


def _lengths(run_dir: str, labeled: bool) -> dict[str, dict[str, np.ndarray]]:
    """Per source, histograms (counts over LENGTH_BINS) of the query and passage lengths in characters."""
    sides = ("query", "pos") if labeled else ("query", "passage")
    out: dict[str, dict[str, np.ndarray]] = {}
    shards = sorted(glob.glob(os.path.join(run_dir, "data", "*.parquet")))
    check_columns(shards, ["source", *sides])
    for shard in shards:
        with reading(shard):
            for batch in pq.ParquetFile(shard).iter_batches(batch_size=65536, columns=["source", *sides]):
                _add_lengths(out, batch, sides, labeled)
    return out


@with_cjk_fallback
def _funnel_plot(steps: list[tuple[str, int]]) -> str:
    figure, axis = plt.subplots(figsize=(7, 0.45 * len(steps) + 0.6))
    labels, values = [label for label, _ in steps][::-1], [n for _, n in steps][::-1]
    axis.barh(labels, values, color="#4c72b0")
    for y, value in enumerate(values):
        axis.text(value, y, f" {value:,}", va="center", fontsize=9)
    axis.set_xlim(0, max(values) * 1.2 if values and max(values) else 1)
    axis.set_title("funnel, all sources")
    return _png(figure)


@with_cjk_fallback
def _histogram_plot(source: str, histogram: dict[str, int], threshold, title: str) -> str:
    figure, axis = plt.subplots(figsize=(5, 2.4))
    lows = sorted(histogram, key=float)
    axis.bar([float(low) for low in lows], [histogram[low] for low in lows], width=0.05, align="edge",
             color="#55a868", edgecolor="white")
    if threshold is not None:
        axis.axvline(threshold, color="#c44e52", linestyle="--", label=f"threshold {threshold}")
        axis.legend(fontsize=8)
    axis.set_title(f"{title}: {source}", fontsize=10)
    axis.set_xlabel("cosine")
    return _png(figure)


@with_cjk_fallback
def _length_plot(source: str, sides: dict[str, np.ndarray]) -> str:
    figure, axis = plt.subplots(figsize=(5, 2.4))
    labels = [f"<{high}" if high < 10 ** 9 else f">={LENGTH_BINS[-2]}" for high in LENGTH_BINS[1:]]
    x = np.arange(len(labels))
    for offset, (side, counts) in zip((-0.2, 0.2), sides.items()):
        axis.bar(x + offset, counts, width=0.4, label=side)
    axis.set_xticks(x, labels, rotation=45, fontsize=7)
    axis.set_title(f"lengths (characters): {source}", fontsize=10)
    axis.legend(fontsize=8)
    return _png(figure)


def _table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _sample_rows(rows: list[dict], rejected: bool) -> list[list[object]]:
    out = []
    for row in rows:
        if "pos" in row:
            texts = [row["query"], " | ".join(row["pos"]), " | ".join(row["neg"])]
        else:
            texts = [row.get("query") or "", row.get("passage") or row.get("text") or ""]
        score = "" if row.get("score") is None else f"{row['score']:.3f}"
        extra = [row.get("detail", ""), f"{row.get('file')} {row.get('position')}"] if rejected else []
        out.append([row.get("source"), row.get("task") or row.get("kind") or "", score, *texts, *extra])
    return out


STYLE = f"""body{{font-family:sans-serif,{WEB_FONT},{WEB_FALLBACK_FONT};margin:24px;color:#222}}
table{{border-collapse:collapse;margin:8px 0 20px}}
td,th{{border:1px solid #ccc;padding:3px 6px;font-size:12px;vertical-align:top;max-width:520px}}
th{{background:#f0f0f0}}h2{{margin-top:32px}}.plots img{{margin:4px}}"""


def check_html_target(path: str) -> None:
    """Refuse, before any work, a page path whose folder does not exist or that is a folder."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InspectError(f"--html {path}: no folder {folder}; create it or give another path")
    if os.path.isdir(path):
        raise InspectError(f"--html {path}: is a folder; give a file name, e.g. {os.path.join(path, 'report.html')}")


def write_html(run_dir: str, path: str, samples: int = 5, seed: int = 1) -> str:
    """Write the page for a run directory; returns its path. InspectError for a run or a path it cannot use."""
    check_html_target(path)
    result = inspect_run(run_dir, Selection(samples=samples, seed=seed))
    labeled = result["pipeline"] == "labeled"
    parts = [f"<h1>cmtp run: {html.escape(result['run'])}</h1>",
             f"<p>{result['pipeline']} run; report balanced: {result['balanced']}; "
             f"{result['data']['rows']:,} rows kept in {result['data']['shards']} shards, "
             f"{result['rejects']['rows']:,} rejects.</p>", "<h2 id='funnel'>Funnel</h2>"]
    funnel = result["funnel"]
    if "total" in funnel:
        parts.append(f"<img alt='funnel' src='{_funnel_plot(funnel['total'])}'>")
    parts.append(_table(["source", "steps"], [(s, " → ".join(f"{label} {n:,}" for label, n in steps))
                                              for s, steps in funnel.items()]))
    key = "kept_by_source_and_task" if labeled else "kept_by_source_and_kind"
    parts += ["<h2>Kept, by source</h2>",
              _table(["source / " + ("task" if labeled else "kind"), "rows"], result[key].items()),
              "<h2>Dropped, by source, stage and reason</h2>",
              _table(["source / stage / reason", "rows"], result["dropped_by_source_stage_reason"].items())]
    title = "mined negatives' cosine" if labeled else "scores"
    if result["score_histograms"]:
        parts.append(f"<h2 id='scores'>Score histograms ({'mined negatives' if labeled else 'semantic filter'})"
                     "</h2><div class='plots'>")
        for source, histogram in result["score_histograms"].items():
            image = _histogram_plot(source, histogram, None if labeled else result["threshold"], title)
            parts.append(f"<img class='histogram' alt='histogram {html.escape(source)}' src='{image}'>")
        parts.append("</div>")
    parts.append("<h2>Length distributions</h2><div class='plots'>")
    for source, sides in sorted(_lengths(run_dir, labeled).items()):
        parts.append(f"<img alt='lengths {html.escape(source)}' src='{_length_plot(source, sides)}'>")
    parts.append("</div>")
    header = ["source", "task" if labeled else "kind", "score",
              *(["query", "pos", "neg"] if labeled else ["query", "passage"])]
    parts += [f"<h2>Kept, {len(result['samples']['kept'])} sampled (seed {seed})</h2>",
              _table(header, _sample_rows(result["samples"]["kept"], False)), "<h2>Rejected, sampled per reason</h2>"]
    for name, rows in result["samples"]["rejects"].items():
        parts += [f"<h3>{html.escape(name)}</h3>",
                  _table(["source", "kind", "score", "query", "passage / text", "why", "where"],
                         _sample_rows(rows, True))]
    body = "".join(parts)
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>cmtp run report</title>"
            f"<style>{_font_face(body)}{STYLE}</style></head><body>{body}</body></html>")
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(page)
    except OSError as error:
        raise InspectError(f"--html {path}: cannot write it: {error.strerror or error}") from None
    return path
