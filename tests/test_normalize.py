"""Normalization: widths, whitespace, markup, invisible characters, Traditional -> Simplified."""
from __future__ import annotations

import opencc

from cmtp.transforms.normalize import normalize_text, strip_markup


def test_full_width_folds_and_spaces_collapse_but_lines_stay():
    assert normalize_text("\u3000ＡＢＣ１２３，  深度\t学习 \n\n  第二行 ") == "ABC123, 深度 学习\n第二行"


def test_html_entities_and_tags_are_removed_with_script_text():
    raw = '<div class="c"><p>深度&nbsp;学习&amp;应用</p><script>var x = 1;</script><br/>第二段</div>'
    assert normalize_text(raw) == "深度 学习&应用\n第二段"
    assert strip_markup("&lt;b&gt;粗体&lt;/b&gt;").strip() == "粗体"
    assert normalize_text("a < b 且 c > d") == "a < b 且 c > d"  # comparisons are not tags


def test_zero_width_and_control_characters_are_removed():
    assert normalize_text("加\u200b微\u200d信\ufeff\x07号") == "加微信号"


def test_traditional_to_simplified_is_optional():
    converter = opencc.OpenCC("t2s")
    assert normalize_text("臺灣的資訊與軟體", converter) == "台湾的资讯与软体"
    assert normalize_text("臺灣的資訊與軟體") == "臺灣的資訊與軟體"
