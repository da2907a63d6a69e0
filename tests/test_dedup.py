"""Exact and MinHash near-duplicate removal: who survives, who is dropped, and that it never depends on order."""
from __future__ import annotations

import random

import pytest

from beam_helpers import run_transform
from cmtp.pipelines.config import NearDedupConfig
from cmtp.schemas import Pair, pair_id
from cmtp.transforms.exact_dedup import ExactDedup
from cmtp.transforms.near_dedup import MinHasher, NearDedup, lsh_shape, shingles
from cmtp.transforms.survivor import SurvivorOrder

BASE = ("锂离子电池的能量密度在过去十年间提升了约一倍，主要得益于正极材料的改进和电池结构的优化。"
        "研究人员通过提高镍含量、引入单晶颗粒以及改进电解液配方，使电芯在循环寿命和安全性之间取得了更好的平衡。")
NEAR = BASE.replace("一倍", "两倍")  # Jaccard of 5-grams ~0.9
OTHER = "大熊猫是中国特有的物种，主要栖息在四川、陕西和甘肃的山区，以竹子为主要食物，被誉为国宝。" * 2


def make_pair(query: str, passage: str, source: str = "wudao", position: str = "record 0") -> Pair:
    return Pair(pair_id(source, "title_body", query, passage), query, passage, source, "title_body", "f.json",
                position)


def test_lsh_shape_is_derived_from_threshold_and_permutations():
    bands, rows = lsh_shape(0.8, 128)
    assert bands * rows <= 128
    assert (bands, rows) != lsh_shape(0.5, 128)


def test_texts_shorter_than_n_are_one_shingle_and_match_only_themselves():
    assert shingles("你好", 5) == {"你好"}
    hasher = MinHasher(5, 128, 0.8, 1)
    assert (hasher.signature("你好") == hasher.signature("你 好")).all()
    assert (hasher.signature("你好") != hasher.signature("您好")).mean() > 0.9


def test_exact_dedup_keeps_one_copy_and_names_the_survivor():
    a = make_pair("电池", BASE, position="record 1")
    b = make_pair("电池", BASE, position="record 7")
    c = make_pair("熊猫", OTHER)
    out = run_transform(ExactDedup(SurvivorOrder({})), [b, c, a])
    assert sorted(p.position for p in out["pairs"]) == ["record 0", "record 1"]
    (reject,) = out["rejects"]
    assert (reject.reason, reject.position, reject.survivor) == ("exact_duplicate", "record 7", a.id)
    assert a.id in reject.detail and "record 1" in reject.detail


def test_copies_differing_only_in_punctuation_width_are_exact_duplicates():
    """Normalization keeps Chinese punctuation as written; the same answer written once with `，` and once with `,`
    (35 such groups in the real DuReader answers) is still one text to exact dedup."""
    wide = make_pair("电池", BASE, position="record 1")
    ascii_commas = make_pair("电池", BASE.replace("，", ","), position="record 2")
    out = run_transform(ExactDedup(SurvivorOrder({})), [wide, ascii_commas])
    assert len(out["pairs"]) == 1 and len(out["rejects"]) == 1
    assert out["pairs"][0].passage in (BASE, BASE.replace("，", ","))  # a copy kept as it was written


@pytest.mark.parametrize("scope", ["pair", "passage"])
def test_identical_copies_from_one_record_keep_one_row(scope):
    """One record giving one pair twice (same id, file and position: the survivor key ties completely)."""
    a = make_pair("电池", BASE, position="line 3")
    out = run_transform(ExactDedup(SurvivorOrder({}), scope), [a, a, a, make_pair("熊猫", OTHER)])
    assert sorted(p.query for p in out["pairs"]) == ["熊猫", "电池"]
    assert len(out["rejects"]) == 2
    assert all(r.id == r.survivor == a.id and r.position == "line 3" and r.detail.startswith(
        f"another copy of {a.id} from the same record") for r in out["rejects"])


def test_near_dedup_drops_the_near_copy_and_keeps_unrelated_text():
    original, edited, other = make_pair("电池进展", BASE), make_pair("电池新闻", NEAR), make_pair("熊猫", OTHER)
    out = run_transform(NearDedup(NearDedupConfig(ngram=5, threshold=0.8), SurvivorOrder({})),
                        [original, edited, other])
    kept = {p.id for p in out["pairs"]}
    assert other.id in kept and len(kept) == 2
    (reject,) = out["rejects"]
    assert reject.reason == "near_duplicate" and reject.stage == "dedup"
    survivor = (kept - {other.id}).pop()
    assert survivor in reject.detail and reject.id != survivor and reject.survivor == survivor


def test_near_dedup_prefers_the_higher_priority_source():
    low, high = make_pair("电池", BASE, source="wudao"), make_pair("电池", NEAR, source="csl")
    out = run_transform(NearDedup(NearDedupConfig(ngram=5, threshold=0.8), SurvivorOrder({"csl": 5})), [low, high])
    assert [p.source for p in out["pairs"]] == ["csl"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_survivors_do_not_depend_on_input_order(seed):
    pairs = [make_pair(f"标题{i}", text, position=f"record {i}") for i, text in
             enumerate([BASE, NEAR, OTHER, BASE + "补充一句。", OTHER.replace("国宝", "活化石")])]
    shuffled = pairs[:]
    random.Random(seed).shuffle(shuffled)
    first = run_transform(NearDedup(NearDedupConfig(ngram=5, threshold=0.8), SurvivorOrder({})), pairs)
    again = run_transform(NearDedup(NearDedupConfig(ngram=5, threshold=0.8), SurvivorOrder({})), shuffled)
    assert sorted(p.id for p in first["pairs"]) == sorted(p.id for p in again["pairs"])
    assert sorted(r.detail for r in first["rejects"]) == sorted(r.detail for r in again["rejects"])


def test_a_chain_of_near_duplicates_is_one_component_with_one_survivor():
    # A~B and B~C but A and C share too little: connected components keep only the best of the three
    words = "春眠不觉晓处处闻啼鸟夜来风雨声花落知多少白日依山尽黄河入海流欲穷千里目更上一层楼床前明月光疑是地上霜举头望明月低头思故乡"
    a = words[:40]
    b = words[4:44]
    c = words[8:48]
    hasher = MinHasher(3, 128, 0.7, 1)
    from cmtp.transforms.near_dedup import estimated_jaccard
    assert estimated_jaccard(hasher.signature(a), hasher.signature(c)) < 0.7
    pairs = [make_pair("甲", a + "。" * 9, position="record 0"), make_pair("乙", b, position="record 1"),
             make_pair("丙", c, position="record 2")]
    out = run_transform(NearDedup(NearDedupConfig(ngram=3, threshold=0.7), SurvivorOrder({})), pairs,
                        ("pairs", "rejects", "stats"))
    assert [p.position for p in out["pairs"]] == ["record 0"]
    assert sorted(r.position for r in out["rejects"]) == ["record 1", "record 2"]
    assert all(pairs[0].id in r.detail for r in out["rejects"])
    stats = {key[0]: n for key, n in out["stats"]}
    assert stats["near_dedup_unsettled"] == 0 and 1 <= stats["near_dedup_rounds"] <= 4


def test_exact_passage_dedup_and_within_source_scope():
    pairs = [make_pair("问题一", BASE, source="zhihu", position="line 1"),
             make_pair("问题二", BASE, source="zhihu", position="line 2"),
             make_pair("问题三", BASE, source="baike", position="line 3")]
    out = run_transform(ExactDedup(SurvivorOrder({}), scope="passage"), pairs)
    assert len(out["pairs"]) == 1 and {r.reason for r in out["rejects"]} == {"duplicate_passage"}
    out = run_transform(ExactDedup(SurvivorOrder({}), scope="passage", within_source=True), pairs)
    assert sorted(p.source for p in out["pairs"]) == ["baike", "zhihu"]


def test_traditional_and_punctuation_copies_are_near_duplicates():
    import opencc

    traditional = opencc.OpenCC("s2t").convert(BASE)
    assert traditional != BASE
    out = run_transform(NearDedup(NearDedupConfig(ngram=5, threshold=0.7), SurvivorOrder({})), [
        make_pair("简体", BASE), make_pair("繁體", traditional), make_pair("标点", BASE.replace("，", " , "))])
    assert len(out["pairs"]) == 1 and len(out["rejects"]) == 2


def test_word_shingles_with_jieba_and_for_english():
    assert shingles("深度学习是机器学习的分支", 2, "jieba") >= {"深度 学习", "学习 是"}
    assert shingles("Deep learning is a branch of machine learning", 3, "word") >= {"deep learning is"}
    assert shingles("Too short", 3, "word") == {"too short"}
