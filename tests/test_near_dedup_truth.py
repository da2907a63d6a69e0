"""NearDedup against an exact reference on real passages with known edit families (benchmarks/audit_near_dedup.py,
docs/quality.md "Near dedup against an exact reference").

The set: ~3,100 items from CSL, CMRC 2018 and DuReader texts in ../shared/data: footer families (an article with
three copies carrying different real page furniture; an article as published with two furniture lines and copies
with one and both removed), chains of overlapping windows (one of 60, eight of 25), re-punctuated copies,
Traditional copies, two sentences exchanged, near misses (two windows of a passage with exact Jaccard ~0.6) and
unrelated real passages. The reference is every pair's exact Jaccard on the transform's own shingles, clustered
by union-find; restricted, it keeps only the pairs that share an LSH band of the transform's MinHasher.

Held: each footer family and each chain (60 windows in the set; 10,000 windows on their own) ends with one
survivor, with the components settled where the transform reports it (near_dedup_unsettled 0, some rounds run);
pair precision of the "in one cluster" relation >= 0.99 against the full reference; cluster completeness >= 0.99
against the restricted reference.
"""
from __future__ import annotations

import sys
from collections import defaultdict

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import audit_near_dedup as audit  # noqa: E402

MIN_PRECISION, MIN_COMPLETENESS = 0.99, 0.99
FOOTERS = ("footer_appended", "footer_removed")


@pytest.fixture(scope="module")
def items(shared_data) -> list:
    return audit.build_set(shared_data)


@pytest.fixture(scope="module")
def reference(items) -> audit.Reference:
    return audit.reference(items)


@pytest.fixture(scope="module")
def outcome(items) -> audit.Outcome:
    """The working tree's NearDedup on FnApiRunner, at its defaults (no rounds argument)."""
    return audit.run_near_dedup(items)


def groups(items) -> dict[str, list[int]]:
    members = defaultdict(list)
    for i, item in enumerate(items):
        members[item.group].append(i)
    return members


def assert_settled(stats: dict) -> None:
    """Where the transform reports its components' rounds, they ran and nothing was still changing."""
    if "near_dedup_unsettled" in stats:
        assert stats["near_dedup_unsettled"] == 0, stats
    if "near_dedup_rounds" in stats:
        assert stats["near_dedup_rounds"] > 0, stats


def test_the_set_has_its_families_and_the_reference_agrees(items, reference):
    families = defaultdict(set)
    for item in items:
        families[item.family].add(item.group)
    assert {family: len(g) for family, g in families.items() if family != "distractor"} == {
        "footer_appended": 120, "footer_removed": 100, "chain": 9, "repunctuation": 150, "traditional": 150,
        "sentence_swap": 150, "near_miss": 100}
    assert len(families["distractor"]) >= 500 and len(items) >= 3000
    members = groups(items)
    assert len(members["chain/0"]) == 60
    chains = audit.chain_summary(items, reference)
    assert all(row["consecutive"] == row["windows"] - 1 for row in chains.values()), chains
    for group, indices in members.items():  # footers and chains: one cluster each, LSH candidates alone included
        if group.startswith(FOOTERS + ("chain/",)):
            assert len({reference.restricted_labels[i] for i in indices}) == 1, group


def test_footer_families_end_with_one_survivor_each(items, outcome):
    members = groups(items)
    footer_groups = [g for g in members if g.startswith(FOOTERS)]
    assert len(footer_groups) == 220
    wrong = {g: sum(i in outcome.kept for i in members[g]) for g in footer_groups
             if sum(i in outcome.kept for i in members[g]) != 1}
    assert not wrong, wrong


def test_chain_of_60_windows_ends_with_one_survivor(items, outcome):
    members = groups(items)
    survivors = {g: sum(i in outcome.kept for i in members[g]) for g in members if g.startswith("chain/")}
    print(f"\nchain survivors {survivors}; stats {outcome.stats}")
    assert survivors["chain/0"] == 1 and set(survivors.values()) == {1}, survivors
    assert_settled(outcome.stats)


def test_chain_of_10000_windows_ends_with_one_survivor(shared_data):
    chain = audit.big_chain(shared_data, 10000)
    assert len(chain) == 10000
    reference = audit.reference(chain)
    assert len(set(reference.restricted_labels)) == 1  # one component through LSH candidates alone
    outcome = audit.run_near_dedup(chain)
    print(f"\n10,000-window chain: {len(outcome.kept)} survivors in {outcome.seconds:.1f} s; stats {outcome.stats}")
    assert len(outcome.kept) == 1
    assert_settled(outcome.stats)


def test_precision_and_completeness_against_the_exact_reference(items, outcome, reference):
    scores = audit.score(items, outcome.labels, reference)
    print("\n" + " ".join(f"{name} {scores[name]:.4f}" for name in (
        "pair_precision", "pair_recall", "pair_recall_restricted", "purity", "completeness",
        "completeness_restricted")) + f" ({scores['restricted_clusters']} restricted reference clusters)")
    assert scores["pair_precision"] >= MIN_PRECISION
    assert scores["completeness_restricted"] >= MIN_COMPLETENESS


def test_the_reference_is_every_pairs_exact_jaccard(items, reference):
    """exact_edges (sparse product) against a plain double loop, on the set's first 300 items (chains, footer
    families) and every tenth of the others."""
    sample = list(range(300)) + list(range(300, len(items), 10))
    sets = [reference.sets[i] for i in sample]
    brute = {(a, b) for a in range(len(sets)) for b in range(a + 1, len(sets))
             if audit.jaccard(sets[a], sets[b]) >= audit.THRESHOLD}
    assert brute and {(a, b) for a, b, _ in audit.exact_edges(sets, audit.THRESHOLD)} == brute


def test_the_measures_on_a_small_case():
    items = [audit.Item(str(i), "f", "f/0" if i < 3 else f"d/{i}", "s") for i in range(5)]
    ref = audit.Reference(sets=[], edges=[], labels=[0, 0, 0, 3, 4], restricted_edges=[],
                          restricted_labels=[0, 0, 2, 3, 4], seconds=0.0)
    scores = audit.score(items, [0, 0, 2, 2, 4], ref)  # {0, 1} right, 2 split off and joined to 3
    assert (scores["pair_precision"], scores["pair_recall"], scores["pair_recall_restricted"]) == (0.5, 1 / 3, 1.0)
    assert (scores["purity"], scores["completeness"], scores["completeness_restricted"]) == (0.5, 0.0, 1.0)
    assert scores["families"]["f"]["survivors"] == 2 + 1 + 1 and scores["families"]["f"]["one_survivor"] == 2
