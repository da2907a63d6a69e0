"""Connected components of an edge list by alternating large-star and small-star rounds (Kiveris, Lattanzi,
Mirrokni, Rastogi, Vassilvitskii, "Connected Components in MapReduce and Beyond", SoCC 2014).

Nodes are ordered values (here SurvivorOrder ranks: smaller is better). Each round is two shuffles by node:

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

The shuffles are by shard of the node (transforms/shards.py): a shard's group holds its nodes' neighbours, each
round gives a few elements per bundle however many edges move, and a node's work is the same as keyed by node.

Memory: a shard's group holds its nodes' neighbours; the most any node holds is its component's size (the centre
of a star), as with any component algorithm keyed by node.
"""
from __future__ import annotations

import math

import apache_beam as beam

from cmtp.transforms.shards import ShardingDoFn, node_shard

CHANGES, LABELS = "changes", "labels"


def rounds_bound(max_nodes: int) -> int:
    """Alternations allowed for a graph of at most `max_nodes` nodes."""
    return math.ceil(math.log2(max(max_nodes, 2))) + 2


class _Spread(ShardingDoFn):
    """Edges (a, b) -> (shard, [(node, neighbour, False), ...]): each edge at both ends, gathered per shard."""

    def __init__(self, shards: int):
        self._shards = shards

    def process(self, edge):
        small, large = edge
        yield from self.lists.add(node_shard(small, self._shards), (small, large, False))
        yield from self.lists.add(node_shard(large, self._shards), (large, small, False))


class _LargeStar(ShardingDoFn):
    """At each node u of the shard: every neighbour larger than u is re-linked to m(u), the smallest of u and its
    neighbours; the new edges go to their larger end's shard, for small-star.

    A node whose one neighbour is smaller is a leaf, and says so to its own small-star. A node smaller than all its
    neighbours, each of them a leaf of it alone (the entries' third field, set by the leaves' small-star), is the
    centre of a finished star: its component can change no more, so its labels go out (`labels`) and its edges
    leave the rounds. The later rounds then move only the components still forming.
    """

    def __init__(self, round_: int, shards: int):
        self._round, self._shards = round_, shards

    def process(self, element):
        changed, neighbours_of = 0, {}
        for node, neighbour, leaf in (entry for values in element[1] for entry in values):
            leaves = neighbours_of.setdefault(node, {})
            leaves[neighbour] = leaves.get(neighbour, True) and leaf
        for node, neighbours in neighbours_of.items():
            smallest = min(min(neighbours), node)
            if smallest == node and all(neighbours.values()):  # a finished star
                for v in neighbours:
                    yield beam.pvalue.TaggedOutput(LABELS, (v, node))
                continue
            larger = [v for v in neighbours if v > node]
            for v in larger:
                yield from self.lists.add(node_shard(v, self._shards), (v, smallest, False))
            if not larger and len(neighbours) == 1:
                yield from self.lists.add(node_shard(node, self._shards), (node, smallest, True))
            changed += smallest < node and bool(larger)
        yield beam.pvalue.TaggedOutput(CHANGES, (self._round, changed))  # (0, 0) too: the graph has a node


class _SmallStar(ShardingDoFn):
    """At each node u of the shard (keyed by the larger end of its edges): u and every neighbour smaller than u are
    re-linked to the smallest of them; each new edge goes to both its ends' shards, for the next large-star. A leaf
    (it said so in large-star) still has one neighbour, its centre's smallest; it tells that centre it is a leaf."""

    def __init__(self, round_: int, shards: int):
        self._round, self._shards = round_, shards

    def process(self, element):
        changed, smaller_of, leaves = 0, {}, set()
        for node, neighbour, leaf in (entry for values in element[1] for entry in values):
            if leaf:
                leaves.add(node)
            else:
                smaller_of.setdefault(node, set()).add(neighbour)
        for node, smaller in smaller_of.items():  # a leaf whose centre finished has no entry left: it is done
            smallest = min(smaller)
            for v in smaller | {node}:
                if v != smallest:
                    yield from self.lists.add(node_shard(smallest, self._shards),
                                               (smallest, v, v == node and node in leaves))
                    yield from self.lists.add(node_shard(v, self._shards), (v, smallest, False))
            changed += len(smaller) > 1
        if changed:
            yield beam.pvalue.TaggedOutput(CHANGES, (self._round, changed))


def _leaves(element):
    """(node, a smaller neighbour) for each such entry of a shard: once the components are stars, each node's
    smallest neighbour is its centre."""
    for node, neighbour, _ in element[1]:
        if neighbour < node:
            yield node, neighbour


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

    def __init__(self, max_rounds: int, shards: int = 16):
        super().__init__()
        self._max_rounds, self._shards = max_rounds, shards

    def expand(self, edges):
        shards, changes, finished = self._shards, [], []
        adjacent = edges | "Spread" >> beam.ParDo(_Spread(shards))
        for round_ in range(self._max_rounds):
            large = (
                adjacent
                | f"ByNode{round_}L" >> beam.GroupByKey()
                | f"LargeStar{round_}" >> beam.ParDo(_LargeStar(round_, shards)).with_outputs(CHANGES, LABELS,
                                                                                               main="edges")
            )
            small = (  # small-star needs each node's smaller neighbours only: the edges keyed by their larger end
                large.edges
                | f"ByNode{round_}S" >> beam.GroupByKey()
                | f"SmallStar{round_}" >> beam.ParDo(_SmallStar(round_, shards)).with_outputs(CHANGES, main="edges")
            )
            adjacent = small.edges
            changes += [large[CHANGES], small[CHANGES]]
            finished.append(large[LABELS])
        summary = (
            changes | "AllChanges" >> beam.Flatten(pipeline=edges.pipeline)
            | "Summarize" >> beam.CombineGlobally(_Summary(self._max_rounds))
        )
        left = adjacent | "Leaves" >> beam.FlatMap(_leaves) | "Centre" >> beam.CombinePerKey(min)
        labels = (left, *finished) | "Labels" >> beam.Flatten()
        return {"labels": labels, "summary": summary}
