"""Connected components (transforms/components.py) and near dedup's candidate pairs, against union-find on the same
edges: chains converge and say in how many rounds, a bound too small fails the run, a giant bucket stays within
its documented number of candidates."""
from __future__ import annotations

import json
import random
from pathlib import Path

from beam_helpers import run_transform
from cmtp.pipelines.cli import main
from cmtp.transforms.components import ConnectedComponents, rounds_bound
from cmtp.transforms.near_dedup import WINDOW, _candidates


def union_find(nodes, edges) -> dict:
    parent = {node: node for node in nodes}

    def root(node):
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for a, b in edges:
        ra, rb = root(a), root(b)
        parent[max(ra, rb)] = min(ra, rb)
    return {node: root(node) for node in nodes}


def components(edges, max_rounds):
    out = run_transform(ConnectedComponents(max_rounds), edges, outputs=("labels", "summary"))
    (summary,) = out["summary"]
    return dict(out["labels"]), summary


def chain(n: int, seed: int) -> list[tuple[int, int]]:
    ids = list(range(n))
    random.Random(seed).shuffle(ids)
    return [(min(a, b), max(a, b)) for a, b in zip(ids, ids[1:])]


def test_chains_of_60_and_10000_become_one_component_and_say_how_many_rounds():
    for n in (60, 10_000):
        labels, (rounds, unsettled) = components(chain(n, seed=n), rounds_bound(n))
        assert unsettled == 0 and set(labels.values()) == {0} and len(labels) == n - 1
        assert 1 < rounds <= rounds_bound(n)
    # in node order too (each node's smaller neighbour is the one before it): the slowest start for min-labels
    labels, (rounds, unsettled) = components([(i, i + 1) for i in range(9_999)], rounds_bound(10_000))
    assert unsettled == 0 and set(labels.values()) == {0} and rounds <= rounds_bound(10_000)


def test_a_bound_too_small_leaves_nodes_unsettled_and_says_how_many():
    labels, (rounds, unsettled) = components([(i, i + 1) for i in range(200)], max_rounds=2)
    assert rounds == 2 and unsettled > 0
    assert len(set(labels.values())) > 1  # not converged: more than one survivor would remain


def test_random_graphs_match_union_find():
    rng = random.Random(7)
    for n, m in ((300, 200), (2_000, 1_900), (2_000, 4_000)):
        edges = {tuple(sorted(rng.sample(range(n), 2))) for _ in range(m)}
        labels, (_, unsettled) = components(sorted(edges), rounds_bound(n))
        nodes = {node for edge in edges for node in edge}
        expected = {node: r for node, r in union_find(nodes, edges).items() if r != node}
        assert unsettled == 0 and labels == expected


def ranks(n: int) -> list[tuple]:
    return [(0, -100, -10, f"{i:05d}") for i in range(n)]


def test_a_small_bucket_gives_every_pair_and_a_giant_one_a_bounded_window():
    small = list(_candidates((b"k", ranks(WINDOW + 1))))
    assert len(small) == (WINDOW + 1) * WINDOW // 2
    members = ranks(5_000)
    giant = list(_candidates((b"k", reversed(members))))
    assert len(giant) == WINDOW * (5_000 - WINDOW) + WINDOW * (WINDOW - 1) // 2 == 79_864
    linked = {(worse[3], better[3]) for _, (worse, better) in giant}
    assert all((f"{i + 1:05d}", f"{i:05d}") in linked for i in range(4_999))  # consecutive members always meet
    assert all(better < worse for _, (worse, better) in giant)


def test_a_run_whose_components_do_not_converge_fails_its_checks(tmp_path, capsys, shared_data):
    """A chain of overlapping windows over real CMRC text with max_rounds 1: exit 1, the unsettled count named;
    with the default bound the chain ends as one survivor."""
    squad = json.loads((shared_data / "cmrc2018" / "squad-style" / "cmrc2018_trial.json").read_text("utf-8"))
    text = "".join(p["context"] for a in squad["data"] for p in a["paragraphs"])
    windows = [text[i * 12:i * 12 + 120] for i in range(40)]  # consecutive ones share 90% of their characters
    rows = "".join(f"to title\t{window}\t标题{i}号论文的研究\n" for i, window in enumerate(windows))
    data = tmp_path / "chain.tsv"
    data.write_text(rows, "utf-8")
    base = ("pipeline: unlabeled\nsources:\n  - name: csl\n    paths: ['" + str(data) + "']\n"
            "scoring: {enabled: false}\n"
            "filters: {max_length_ratio: 100}\n")
    bounded = tmp_path / "bounded.yaml"
    bounded.write_text(base + "dedup: {near: {max_rounds: 1}}\n", "utf-8")
    assert main(["run", str(bounded), "--out", str(tmp_path / "bounded")]) == 1
    out = capsys.readouterr().out
    assert "near dedup: " in out and "nodes still changing after the last of 1 rounds" in out
    # (unconverged labels also chain survivors past what SettleSurvivors follows: the ledger is off by those)
    assert "balanced: NO: " in out and "near dedup converged: near_dedup_unsettled == 0" in out
    free = tmp_path / "free.yaml"
    free.write_text(base, "utf-8")
    assert main(["run", str(free), "--out", str(tmp_path / "free")]) == 0
    report = json.loads((Path(tmp_path / "free") / "report.json").read_text("utf-8"))
    assert report["balanced"], report["checks"]
    assert report["totals"]["pairs_kept"] == 1 and report["counters"]["near_dedup_unsettled"] == 0
    assert report["counters"]["near_dedup_rounds"] >= 2
