"""The HTML report's fonts: Chinese in its charts and on its page renders on a machine without a CJK font."""
from __future__ import annotations

import base64
import io
import re
import warnings

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from cmtp.pipelines import html_report  # noqa: E402  (after the skip)

MISSING_GLYPH = "Glyph .* missing from font"  # matplotlib's warning when it draws a box


def _draw_chinese_charts() -> None:
    html_report._funnel_plot([("读取的记录", 120), ("保留", 80)])
    html_report._histogram_plot("知乎", {"0.1": 3, "0.2": 5}, 0.2, "语义分数")
    html_report._length_plot("百科", {"query": np.arange(11), "passage": np.arange(11)})


def test_chinese_chart_labels_are_drawn_with_the_bundled_font():
    import matplotlib.pyplot as plt

    family = list(plt.rcParams["font.family"])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", MISSING_GLYPH, UserWarning)
        _draw_chinese_charts()
    assert plt.rcParams["font.family"] == family  # the fallback is the report's own, not the process's
    # the signal is real: the same titles in the Latin font alone are boxes, and matplotlib says so
    with pytest.warns(UserWarning, match=MISSING_GLYPH):
        figure, axis = plt.subplots()
        axis.set_title("知乎", family="DejaVu Sans")
        figure.savefig(io.BytesIO(), format="png")
    plt.close(figure)


def test_page_embeds_the_font_cut_to_the_characters_it_shows():
    from fontTools.ttLib import TTFont

    rule = html_report._font_face("<td>研究 → abc</td>")
    data = re.fullmatch(r"@font-face\{font-family:cmtp-cjk;src:url\(data:font/woff;base64,([A-Za-z0-9+/=]+)\) "
                        r"format\('woff'\)\}", rule).group(1)
    font = TTFont(io.BytesIO(base64.b64decode(data)))
    assert font.flavor == "woff" and font["name"].getDebugName(1) == "Noto Sans SC"
    assert {"研", "究", "→"} <= {chr(code) for code in font.getBestCmap()} and 0x4E2D not in font.getBestCmap()
    assert len(data) < 20_000  # a cut: the whole font is 8 MB
    assert html_report._font_face("<td>abc</td>") == ""  # nothing to embed on an ASCII page
    assert "font-family:sans-serif,cmtp-cjk" in html_report.STYLE  # the page's own font first, then the embedded
