"""Connected components of an edge list by alternating large-star and small-star rounds (Kiveris, Lattanzi,
Mirrokni, Rastogi, Vassilvitskii, "Connected Components in MapReduce and Beyond", SoCC 2014).

Nodes are ordered values (here SurvivorOrder ranks: smaller is better). Each round is one shuffle by node:

- large-star at u: every neighbour larger than u is re-linked to m(u), the smallest of u and its neighbours;
- small-star at u: u and every neighbour smaller than u are re-linked to the smallest of them.

Every edge is handled at exactly one end (large-star: its smaller end; small-star: its larger end), so the
components never change, and the alternation ends with every component a star around its smallest node. A round
changes nothing exactly when that is reached; each round counts the nodes it changed, and the component labels
are then each node's smallest neighbour.

Beam has no loops: `ConnectedComponents` unrolls `max_rounds` alternations, and rounds after convergence pass
the (star) edges through unchanged. Kiveris et al. prove O(log^2 n) alternations and measure fewer than log2 n;
a 10,000-node chain takes 12 (ids shuffled) to 14 (ids in chain order). The bound used is ceil(log2 n) + 2 for n
an upper bound on the node count: the pipelines take the input's bytes, which overstate the pairs hundreds of
times over, so the bound has about 9 rounds to spare. The count of nodes still changing in the last alternation
is reported: a run whose graph did not converge fails its checks instead of keeping duplicates (raise
`dedup.near.max_rounds` then).

Memory: a node's group holds its neighbours; the most any node holds is its component's size (the centre of
a star), as with any component algorithm keyed by node.
"""
from __future__ import annotations

import math
from typing import Iterable

import apache_beam as beam

CHANGES = "changes"


def rounds_bound(max_nodes: int) -> int:
    """Alternations allowed for a graph of at most `max_nodes` nodes."""
    return math.ceil(math.log2(max(max_nodes, 2))) + 2


def _both_ways(edge: tuple) -> Iterable[tuple]:
    small, large = edge
    yield small, large
    yield large, small


class _LargeStar(beam.DoFn):
    def __init__(self, round_: int):
        self._round = round_

    def process(self, element):
        node, neighbours = element
        neighbours = set(neighbours)
        smallest = min(min(neighbours), node)
        larger = [v for v in neighbours if v > node]
        for v in larger:
            yield smallest, v
        if smallest < node and larger:
            yield beam.pvalue.TaggedOutput(CHANGES, (self._round, 1))
        elif self._round == 0:
            yield beam.pvalue.TaggedOutput(CHANGES, (0, 0))  # the graph has a node: at least one round ran


class _SmallStar(beam.DoFn):
    def __init__(self, round_: int):
        self._round = round_

    def process(self, element):
        node, neighbours = element
        smaller = {v for v in neighbours if v < node}
        if not smaller:
            return
        smallest = min(smaller)
        yield smallest, node
        for v in smaller:
            if v != smallest:
                yield smallest, v
        if len(smaller) > 1:
            yield beam.pvalue.TaggedOutput(CHANGES, (self._round, 1))


class _Summary(beam.CombineFn):
    """Changes per round -> (rounds run until one changed nothing, that one included: 0 for no graph and at most
    the bound; nodes changed in the last round allowed)."""

    def __init__(self, max_rounds: int):
        self._max_rounds = max_rounds

    def create_accumulator(self):
        return (False, -1, 0)  # any node, the latest round that changed something, changes in the last round

    def add_input(self, accumulator, change):
        round_, count = change
        seen, latest, unsettled = accumulator
        return (True, max(latest, round_) if count else latest,
                unsettled + (count if round_ == self._max_rounds - 1 else 0))

    def merge_accumulators(self, accumulators):
        seen, latest, unsettled = False, -1, 0
        for a_seen, a_latest, a_unsettled in accumulators:
            seen, latest, unsettled = seen or a_seen, max(latest, a_latest), unsettled + a_unsettled
        return seen, latest, unsettled

    def extract_output(self, accumulator):
        seen, latest, unsettled = accumulator
        return (min(latest + 2, self._max_rounds) if seen else 0), unsettled


class ConnectedComponents(beam.PTransform):
    """Edges (a, b) with a < b -> {"labels": (node, its component's smallest node) for every node but the smallest,
    "summary": one (rounds until a round changed nothing, that round included; nodes changed in the last round
    allowed: 0 when the components converged)}."""

    def __init__(self, max_rounds: int):
        super().__init__()
        self._max_rounds = max_rounds

    def expand(self, edges):
        changes = []
        for round_ in range(self._max_rounds):
            large = (
                edges
                | f"Adjacent{round_}L" >> beam.FlatMap(_both_ways)
                | f"ByNode{round_}L" >> beam.GroupByKey()
                | f"LargeStar{round_}" >> beam.ParDo(_LargeStar(round_)).with_outputs(CHANGES, main="edges")
            )
            small = (  # small-star needs each node's smaller neighbours only: the edges keyed by their larger end
                large.edges
                | f"ByLargerEnd{round_}S" >> beam.Map(lambda edge: (edge[1], edge[0]))
                | f"ByNode{round_}S" >> beam.GroupByKey()
                | f"SmallStar{round_}" >> beam.ParDo(_SmallStar(round_)).with_outputs(CHANGES, main="edges")
            )
            edges = small.edges
            changes += [large[CHANGES], small[CHANGES]]
        summary = (
            changes | "AllChanges" >> beam.Flatten(pipeline=edges.pipeline)
            | "Summarize" >> beam.CombineGlobally(_Summary(self._max_rounds))
        )
        labels = (
            edges
            | "Leaf" >> beam.Map(lambda edge: (edge[1], edge[0]))
            | "Centre" >> beam.CombinePerKey(min)
        )
        return {"labels": labels, "summary": summary}
