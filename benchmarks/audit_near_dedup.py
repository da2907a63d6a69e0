"""Near dedup against an exact reference, on a set of real passages with known edit families (docs/quality.md).

    python benchmarks/audit_near_dedup.py [--seed 1] [--chain 60] [--big-chain 10000] [--systems new,old,datasketch]
        [--old-commit 983b26c] [--json]

1. The set (`build_set`, seeded): real passages from ../shared/data, read in place (CSL abstracts, CMRC 2018
   contexts, DuReader documents cut to 800 characters), first thinned to one passage per near-duplicate cluster of
   their own (so that every link in the set is one the families made), then edited in families, each instance of a
   family a `group`:
   - footer_appended: an article and three copies, each with different real page furniture appended on lines of
     its own (benchmarks/audit/injections.tsv: DuReader paragraphs, read in place);
   - footer_removed: an article as published with two furniture lines, a copy with one removed, a copy with both;
   - repunctuation: a passage, a copy with the other width of punctuation (ASCII <-> full width), a copy without
     punctuation;
   - traditional: a passage and its Traditional copy (OpenCC s2t);
   - sentence_swap: a passage of 4+ sentences and a copy with two of its sentences exchanged;
   - chain: overlapping windows over one long real text (a DuReader document): window k is word characters
     [k x step, k x step + width) with the punctuation between them; step = width / 10, so consecutive windows
     share ~0.81 of their shingles, windows two apart ~0.66, three apart ~0.53. One chain of `--chain` windows
     and eight shorter ones over other documents;
   - distractor: the remaining real passages, unedited.
   The footer families are drawn so that every two copies in a group have an exact Jaccard of 0.85 or more (one
   cluster by construction, with room for MinHash's error); the other families are left to the reference.
   `big_chain` is a separate chain of 10,000 windows (width 100, step 10) over the CSL abstracts, concatenated.
2. The reference: every pair's exact Jaccard on the shingle sets the transform uses (transforms/near_dedup.py
   `shingles`, same n and unit, Traditional folded by OpenCC t2s as `MinHasher` does), computed as a sparse
   item x shingle product (every pair sharing a shingle; the rest have Jaccard 0); pairs at the threshold or above
   are edges, clustered by union-find. The restricted reference keeps only the edges whose two signatures share
   an LSH band under the transform's `MinHasher.band_keys` (what its candidate generation can find).
3. Systems, each giving clusters of the set's items:
   - new: NearDedup of the working tree on FnApiRunner (its defaults but the shingle settings; `max_nodes` = the
     item count where the transform takes it, as the pipelines pass their input size). A cluster is a survivor
     and the rejects naming it (union-find over reject -> survivor).
   - old: the same transform as of `--old-commit` (`git show`, loaded into a temporary module).
   - datasketch: MinHashLSH(threshold, num_perm) with its default weights, MinHash(num_perm, seed) with its
     default SHA-1 hash, on the same shingle sets; every item is inserted, then queried, and united with every key
     the query returns (no verification). datasketch_verified: the same, united only when the two MinHashes'
     estimated Jaccard reaches the threshold.
4. Measures, each system's clusters against the reference's:
   - pair precision / recall: over all item pairs, the relation "in one cluster": predicted pairs that the
     reference also has in one cluster, over predicted pairs / over reference pairs (recall also against the
     restricted reference);
   - purity: of the items in predicted clusters of 2+, the share whose cluster lies inside one reference cluster;
   - completeness: of the reference clusters of 2+, the share that lie inside one predicted cluster; restricted
     completeness: the same for the restricted reference's clusters;
   - survivors per family: the predicted clusters a group's items fall in, summed over groups (the reference's
     own count beside it), and the groups that end with exactly one;
   - the transform's stats (near_dedup_rounds, near_dedup_unsettled) where it reports them, and wall time.
Nothing is written; the table (or --json) goes to stdout.
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable, Optional, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _path in (HERE, REPO / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import numpy as np  # noqa: E402
import opencc  # noqa: E402
from audit_filters import injections  # noqa: E402
from scipy import sparse  # noqa: E402

from beam_helpers import run_transform  # noqa: E402
from cmtp.schemas import Pair, pair_id  # noqa: E402
from cmtp.transforms import near_dedup as current  # noqa: E402
from cmtp.transforms.survivor import SurvivorOrder  # noqa: E402
from real_pairs import SHARED  # noqa: E402

NGRAM, NUM_PERM, THRESHOLD, SEED, UNIT = 5, 128, 0.7, 1, "char"  # the NearDedupConfig defaults
OLD_COMMIT = "983b26c"
FOOTER_MIN_JACCARD = 0.85  # every two copies of a footer group, exactly
DOC_CUT = 800  # DuReader documents outside the chains are cut to this many characters, as passages are
CHAIN_WIDTH, CHAIN_STEP = 300, 20  # step = width / 15: windows 1 and 2 apart are near duplicates, 3+ apart not
BIG_CHAIN_WIDTH, BIG_CHAIN_STEP = 150, 10
EDIT_GROUPS = {"footer_appended": 120, "footer_removed": 100, "repunctuation": 150, "traditional": 150,
               "sentence_swap": 150, "near_miss": 100}
NEAR_MISS_WIDTH, NEAR_MISS_GAPS = 150, (30, 40)  # two windows this many word characters apart: Jaccard ~0.66, ~0.59
SHORT_CHAINS, SHORT_CHAIN_WINDOWS = 8, 25
FAMILIES = ("footer_appended", "footer_removed", "chain", "repunctuation", "traditional", "sentence_swap",
            "near_miss", "distractor")
_SENTENCE = re.compile(r"(?<=[。！？!?])")
_WORD_CHAR = re.compile(r"[^\W_]")  # what shingles keep
_TO_ASCII = str.maketrans({"，": ",", "。": ".", "！": "!", "？": "?", "：": ":", "；": ";", "（": "(", "）": ")",
                           "“": '"', "”": '"', "‘": "'", "’": "'", "、": ","})
_TO_FULL = str.maketrans({",": "，", ".": "。", "!": "！", "?": "？", ":": "：", ";": "；", "(": "（", ")": "）"})
_PUNCTUATION = re.compile(r"[^\w\s]|_")


@dataclass(frozen=True)
class Item:
    text: str
    family: str
    group: str  # the family instance ("footer_appended/12"); a distractor is a group of its own
    source: str  # where the text came from: csl, cmrc, dureader


# ---------------------------------------------------------------------------------------------------- the set


def real_texts(shared: Path) -> dict[str, list]:
    """CSL abstracts, CMRC 2018 contexts, and DuReader documents (paragraphs joined by line breaks) by question."""
    csl = [line.split("\t")[1] for line in (shared / "csl" / "ts_dev.tsv").read_text("utf-8").splitlines()]
    squad = json.loads((shared / "cmrc2018" / "squad-style" / "cmrc2018_trial.json").read_text("utf-8"))
    cmrc = [p["context"] for article in squad["data"] for p in article["paragraphs"]]
    dureader = []
    for line in (shared / "dureader" / "search.dev.json").read_text("utf-8").splitlines():
        docs = ["\n".join(p.strip() for p in d["paragraphs"] if p.strip()) for d in json.loads(line)["documents"]]
        dureader.append([d for d in docs if len(d) >= 80])
    return {"csl": csl, "cmrc": cmrc, "dureader": dureader}


def footers(shared: Path) -> list[str]:
    """Real page furniture: the boilerplate and spam paragraphs of benchmarks/audit/injections.tsv."""
    found = injections(shared)
    return [text.strip() for family in ("boilerplate", "spam") for text in found.get(family, ()) if text.strip()]


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text) if s.strip()]


def windows(text: str, width: int, step: int, count: Optional[int] = None) -> list[str]:
    """Window k: the text from its word character k x step to word character k x step + width - 1, punctuation
    between them included; so two windows d steps apart share width - d x step of their width word characters."""
    spans = [m.span() for m in _WORD_CHAR.finditer(text)]
    available = (len(spans) - width) // step + 1 if len(spans) >= width else 0
    count = available if count is None else min(count, available)
    return [text[spans[k * step][0]:spans[k * step + width - 1][1]] for k in range(count)]


class Shingler:
    """The transform's shingle sets: Traditional folded to Simplified first (as MinHasher does), then `shingles`."""

    def __init__(self, ngram: int = NGRAM, unit: str = UNIT, fold_traditional: bool = True):
        self.ngram, self.unit = ngram, unit
        self._t2s = opencc.OpenCC("t2s") if fold_traditional else None

    def __call__(self, text: str) -> set[str]:
        return current.shingles(self._t2s.convert(text) if self._t2s else text, self.ngram, self.unit)


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def repunctuate(text: str) -> str:
    """The other width of punctuation: full width to ASCII where the text has more full-width marks, else back."""
    full = sum(text.count(c) for c in "，。！？：；")
    ascii_ = sum(text.count(c) for c in ",.!?:;")
    return text.translate(_TO_ASCII) if full >= ascii_ else text.translate(_TO_FULL)


def build_set(shared: Path = SHARED, seed: int = 1, chain: int = 60) -> list[Item]:
    """The audit set: edited families of real passages, one long chain of `chain` windows and eight short ones,
    and the remaining real passages as distractors. The same on every call with the same seed."""
    rng = random.Random(seed)
    s2t = opencc.OpenCC("s2t")
    shingler = Shingler()
    data = real_texts(shared)
    furniture = footers(shared)

    # chains: the longest DuReader documents, of different questions; those questions give no other passage
    by_length = sorted(((len(_WORD_CHAR.findall(doc)), q, d) for q, docs in enumerate(data["dureader"])
                        for d, doc in enumerate(docs)), reverse=True)
    chain_docs, reserved = [], set()
    for _, q, d in by_length:
        if q not in reserved:
            chain_docs.append(data["dureader"][q][d])
            reserved.add(q)
        if len(chain_docs) == 1 + SHORT_CHAINS:
            break
    items: list[Item] = []
    long_chain = windows(chain_docs[0], CHAIN_WIDTH, CHAIN_STEP, chain)
    assert len(long_chain) == chain, f"the longest document gives {len(long_chain)} windows, not {chain}"
    for k, doc in enumerate(chain_docs):
        texts = long_chain if k == 0 else windows(doc, CHAIN_WIDTH, CHAIN_STEP, SHORT_CHAIN_WINDOWS)
        items += [Item(text, "chain", f"chain/{k}", "dureader") for text in texts]

    # the pool: real passages, one per near-duplicate cluster among themselves (exact reference)
    pool = [(text, "csl") for text in data["csl"]] + [(text, "cmrc") for text in data["cmrc"]]
    pool += [(doc[:DOC_CUT], "dureader") for q, docs in enumerate(data["dureader"]) if q not in reserved
             for doc in docs]
    seen: set[str] = set()
    pool = [(text, source) for text, source in pool if len(text) >= 60 and not (text in seen or seen.add(text))]
    pool_sets = [shingler(text) for text, _ in pool]
    labels = union_find_labels(len(pool), exact_edges(pool_sets, THRESHOLD))
    first: dict[int, int] = {}
    pool = [entry for i, entry in enumerate(pool) if first.setdefault(labels[i], i) == i]
    rng.shuffle(pool)

    def take(accept: Callable[[str], bool], count: int) -> list[tuple[str, str]]:
        chosen = [entry for entry in pool if accept(entry[0])][:count]
        for entry in chosen:
            pool.remove(entry)
        return chosen

    def word_chars(text: str) -> int:
        return len(_WORD_CHAR.findall(text))

    def footer_group(base: str, make: Callable[[list[str]], list[str]], lines: int) -> Optional[list[str]]:
        """Copies of `base` with furniture drawn until every two copies have an exact Jaccard of 0.85 or more."""
        for _ in range(30):
            texts = make(rng.sample(furniture, lines))
            sets = [shingler(text) for text in texts]
            if len(set(texts)) == len(texts) and min(jaccard(a, b) for i, a in enumerate(sets)
                                                     for b in sets[i + 1:]) >= FOOTER_MIN_JACCARD:
                return texts
        return None

    def appended(base: str) -> Callable[[list[str]], list[str]]:
        return lambda lines: [base] + [base + "\n" + line for line in lines]

    def removed(base: str) -> Callable[[list[str]], list[str]]:
        return lambda lines: [base + "\n" + "\n".join(lines), base + "\n" + lines[0], base]

    for family, make, lines in (("footer_appended", appended, 3), ("footer_removed", removed, 2)):
        made = 0
        for base, source in take(lambda text: word_chars(text) >= 250, 3 * EDIT_GROUPS[family]):
            texts = footer_group(base, make(base), lines) if made < EDIT_GROUPS[family] else None
            if texts is None:
                pool.append((base, source))  # back to the distractors
                continue
            items += [Item(text, family, f"{family}/{made}", source) for text in texts]
            made += 1
        assert made == EDIT_GROUPS[family], (family, made)

    for k, (base, source) in enumerate(take(lambda text: bool(_PUNCTUATION.search(text)),
                                            EDIT_GROUPS["repunctuation"])):
        texts = [base, repunctuate(base), _PUNCTUATION.sub("", base)]
        items += [Item(text, "repunctuation", f"repunctuation/{k}", source) for text in dict.fromkeys(texts)]

    for k, (base, source) in enumerate(take(lambda text: s2t.convert(text) != text, EDIT_GROUPS["traditional"])):
        items += [Item(text, "traditional", f"traditional/{k}", source) for text in (base, s2t.convert(base))]

    for k, (base, source) in enumerate(take(lambda text: len(sentences(text)) >= 4, EDIT_GROUPS["sentence_swap"])):
        parts = sentences(base)
        i, j = sorted(rng.sample(range(len(parts)), 2))
        while parts[i] == parts[j] and len(parts) > 2:
            i, j = sorted(rng.sample(range(len(parts)), 2))
        parts[i], parts[j] = parts[j], parts[i]
        items += [Item(text, "sentence_swap", f"sentence_swap/{k}", source)
                  for text in dict.fromkeys([base, "".join(parts)])]

    for k, (base, source) in enumerate(take(lambda text: word_chars(text) >= NEAR_MISS_WIDTH + 40,
                                            EDIT_GROUPS["near_miss"])):
        texts = windows(base, NEAR_MISS_WIDTH, NEAR_MISS_GAPS[k % len(NEAR_MISS_GAPS)], 2)
        items += [Item(text, "near_miss", f"near_miss/{k}", source) for text in texts]

    items += [Item(text, "distractor", f"distractor/{k}", source) for k, (text, source) in enumerate(pool)]
    unique: dict[str, Item] = {}
    for item in items:  # exact copies would have been removed by exact dedup before near dedup
        unique.setdefault(item.text, item)
    return list(unique.values())


def big_chain(shared: Path = SHARED, count: int = 10000) -> list[Item]:
    """`count` windows (width 100, step 10 word characters) over the CSL abstracts concatenated: one chain."""
    text = "\n".join(line.split("\t")[1] for line in (shared / "csl" / "ts_dev.tsv").read_text("utf-8").splitlines())
    texts = windows(text, BIG_CHAIN_WIDTH, BIG_CHAIN_STEP, count)
    assert len(texts) == count, f"the CSL abstracts give {len(texts)} windows, not {count}"
    return [Item(t, "chain", "big_chain", "csl") for t in dict.fromkeys(texts)]


def to_pairs(items: Sequence[Item]) -> list[Pair]:
    return [Pair(pair_id(item.source, item.family, "", item.text), "", item.text, item.source, "audit", item.group,
                 f"item {i}") for i, item in enumerate(items)]


# ------------------------------------------------------------------------------------------------ the reference


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def labels(self) -> list[int]:
        return [self.find(i) for i in range(len(self.parent))]


def union_find_labels(n: int, edges) -> list[int]:
    uf = UnionFind(n)
    for a, b, *_ in edges:
        uf.union(a, b)
    return uf.labels()


def exact_edges(sets: Sequence[set], threshold: float, chunk: int = 1000) -> list[tuple[int, int, float]]:
    """(i, j, Jaccard) for every i < j whose exact Jaccard reaches `threshold`: intersections of all pairs that share
    a shingle from a sparse item x shingle product, in row chunks; pairs that share none have Jaccard 0."""
    vocabulary: dict[str, int] = {}
    indices = [vocabulary.setdefault(s, len(vocabulary)) for shingle_set in sets for s in shingle_set]
    indptr = np.cumsum([0] + [len(s) for s in sets])
    matrix = sparse.csr_matrix((np.ones(len(indices), dtype=np.int32), indices, indptr),
                               shape=(len(sets), max(len(vocabulary), 1)))
    transposed = matrix.T.tocsr()
    sizes = np.array([len(s) for s in sets])
    edges = []
    for start in range(0, len(sets), chunk):
        product = (matrix[start:start + chunk] @ transposed).tocoo()
        rows, cols, shared = product.row + start, product.col, product.data
        keep = cols > rows
        rows, cols, shared = rows[keep], cols[keep], shared[keep]
        scores = shared / (sizes[rows] + sizes[cols] - shared)
        hit = scores >= threshold
        edges += zip(rows[hit].tolist(), cols[hit].tolist(), scores[hit].tolist())
    return edges


@dataclass
class Reference:
    sets: list[set]
    edges: list[tuple[int, int, float]]  # exact Jaccard >= threshold
    labels: list[int]
    restricted_edges: list[tuple[int, int, float]]  # ... and the two share an LSH band of the transform
    restricted_labels: list[int]
    seconds: float


def reference(items: Sequence[Item], threshold: float = THRESHOLD) -> Reference:
    start = time.perf_counter()
    shingler = Shingler()
    sets = [shingler(item.text) for item in items]
    edges = exact_edges(sets, threshold)
    seconds = time.perf_counter() - start
    hasher = current.MinHasher(NGRAM, NUM_PERM, threshold, SEED, UNIT, True)
    keys = [hasher.band_keys(hasher.signature(item.text)) for item in items]
    restricted = [edge for edge in edges if any(x == y for x, y in zip(keys[edge[0]], keys[edge[1]]))]
    return Reference(sets, edges, union_find_labels(len(items), edges), restricted,
                     union_find_labels(len(items), restricted), seconds)


# ------------------------------------------------------------------------------------------------ the systems


@dataclass
class Outcome:
    system: str
    labels: list[int]  # cluster label per item
    seconds: float
    stats: dict = field(default_factory=dict)
    kept: Optional[frozenset[int]] = None  # the items the transform kept (its survivors)


def load_old(commit: str = OLD_COMMIT) -> ModuleType:
    """transforms/near_dedup.py as of `commit`, as a module of its own (it imports only cmtp.* and third parties)."""
    source = subprocess.run(["git", "show", f"{commit}:transforms/near_dedup.py"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    name = f"near_dedup_{commit}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.py"
        path.write_text(source, encoding="utf-8")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # Beam pickles the DoFns by reference to their module
        spec.loader.exec_module(module)
    return module


def near_dedup(module: ModuleType = current, n_items: Optional[int] = None):
    """The module's NearDedup at the default shingle settings and its own defaults otherwise (no rounds argument:
    `rounds` before the rewrite, `max_rounds` after); `max_nodes` where it takes one, as the pipelines pass it.
    The current version takes its config section; the old one positional arguments."""
    extra = {}
    if n_items is not None and "max_nodes" in inspect.signature(module.NearDedup).parameters:
        extra["max_nodes"] = n_items
    if module is current:
        from cmtp.pipelines.config import NearDedupConfig

        settings = NearDedupConfig(ngram=NGRAM, num_perm=NUM_PERM, threshold=THRESHOLD, seed=SEED)
        return module.NearDedup(settings, SurvivorOrder({}), **extra)
    return module.NearDedup(SurvivorOrder({}), NGRAM, NUM_PERM, THRESHOLD, SEED, **extra)


def run_near_dedup(items: Sequence[Item], module: ModuleType = current, system: str = "new") -> Outcome:
    pairs = to_pairs(items)
    index = {pair.id: i for i, pair in enumerate(pairs)}
    assert len(index) == len(pairs), "ids must be unique"
    start = time.perf_counter()
    out = run_transform(near_dedup(module, len(pairs)), pairs, ("pairs", "rejects", "stats"))
    seconds = time.perf_counter() - start
    kept = {pair.id for pair in out["pairs"]}
    rejected = {reject.id: reject.survivor for reject in out["rejects"]}
    assert len(kept) + len(rejected) == len(pairs) and set(index) == kept | set(rejected)
    uf = UnionFind(len(pairs))
    for pair, survivor in rejected.items():
        uf.union(index[pair], index[survivor])
    stats: dict[str, int] = defaultdict(int)
    for (name, *_), count in out["stats"]:
        stats[name] += count
    return Outcome(system, uf.labels(), seconds, dict(stats), frozenset(index[pair] for pair in kept))


def run_datasketch(items: Sequence[Item], verified: bool = False) -> Outcome:
    """MinHashLSH at its default weights, every item inserted then queried and united with all it returns (or,
    verified, with those whose estimated Jaccard reaches the threshold). Timed from the texts."""
    from datasketch import MinHash, MinHashLSH

    start = time.perf_counter()
    shingler = Shingler()
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    hashes = []
    for i, item in enumerate(items):
        minhash = MinHash(num_perm=NUM_PERM, seed=SEED)
        minhash.update_batch([s.encode("utf-8") for s in shingler(item.text)])
        lsh.insert(i, minhash)
        hashes.append(minhash)
    uf = UnionFind(len(items))
    for i, minhash in enumerate(hashes):
        for j in lsh.query(minhash):
            if j != i and (not verified or minhash.jaccard(hashes[j]) >= THRESHOLD):
                uf.union(i, j)
    return Outcome("datasketch_verified" if verified else "datasketch", uf.labels(), time.perf_counter() - start)


# ------------------------------------------------------------------------------------------------ the measures


def _pairs(sizes) -> int:
    return sum(s * (s - 1) // 2 for s in sizes)


def score(items: Sequence[Item], predicted: Sequence[int], ref: Reference) -> dict:
    """Pair precision / recall of the "in one cluster" relation, purity, completeness (full and restricted), and
    survivors per family (module docstring)."""
    def clusters(labels):
        members = defaultdict(list)
        for i, label in enumerate(labels):
            members[label].append(i)
        return members

    predicted_clusters = clusters(predicted)
    both = Counter(zip(predicted, ref.labels))
    both_restricted = Counter(zip(predicted, ref.restricted_labels))
    predicted_pairs = _pairs(len(m) for m in predicted_clusters.values())
    reference_pairs = _pairs(Counter(ref.labels).values())
    restricted_pairs = _pairs(Counter(ref.restricted_labels).values())
    agree, agree_restricted = _pairs(both.values()), _pairs(both_restricted.values())
    in_groups = [m for m in predicted_clusters.values() if len(m) > 1]
    pure = sum(len(m) for m in in_groups if len({ref.labels[i] for i in m}) == 1)

    def completeness(labels) -> tuple[int, int]:
        groups = [m for m in clusters(labels).values() if len(m) > 1]
        return sum(len({predicted[i] for i in m}) == 1 for m in groups), len(groups)

    complete, reference_clusters = completeness(ref.labels)
    complete_restricted, restricted_clusters = completeness(ref.restricted_labels)
    by_group = defaultdict(list)
    for i, item in enumerate(items):
        by_group[(item.family, item.group)].append(i)
    families: dict[str, dict] = {}
    for (family, _), members in by_group.items():
        row = families.setdefault(family, {"groups": 0, "items": 0, "survivors": 0, "reference_survivors": 0,
                                           "one_survivor": 0, "as_reference": 0})
        mine, theirs = len({predicted[i] for i in members}), len({ref.labels[i] for i in members})
        row["groups"] += 1
        row["items"] += len(members)
        row["survivors"] += mine
        row["reference_survivors"] += theirs
        row["one_survivor"] += mine == 1
        row["as_reference"] += mine == theirs
    return {
        "pair_precision": agree / predicted_pairs if predicted_pairs else 1.0,
        "pair_recall": agree / reference_pairs if reference_pairs else 1.0,
        "pair_recall_restricted": agree_restricted / restricted_pairs if restricted_pairs else 1.0,
        "purity": pure / sum(len(m) for m in in_groups) if in_groups else 1.0,
        "completeness": complete / reference_clusters if reference_clusters else 1.0,
        "completeness_restricted": complete_restricted / restricted_clusters if restricted_clusters else 1.0,
        "predicted_pairs": predicted_pairs, "reference_pairs": reference_pairs,
        "reference_clusters": reference_clusters, "restricted_clusters": restricted_clusters,
        "clusters": len(predicted_clusters), "families": families,
    }


def chain_summary(items: Sequence[Item], ref: Reference) -> dict:
    """Per chain: windows, reference edges, whether consecutive windows are all edges and the farthest edge."""
    out = {}
    position, seen = {}, Counter()
    for i, item in enumerate(items):
        if item.family == "chain":
            position[i] = (item.group, seen[item.group])
            seen[item.group] += 1
    by_chain: dict[str, dict] = defaultdict(lambda: {"windows": 0, "edges": 0, "consecutive": 0, "farthest": 0})
    for i, (group, _) in position.items():
        by_chain[group]["windows"] += 1
    for a, b, _ in ref.edges:
        if a in position and b in position and position[a][0] == position[b][0]:
            row = by_chain[position[a][0]]
            gap = abs(position[a][1] - position[b][1])
            row["edges"] += 1
            row["consecutive"] += gap == 1
            row["farthest"] = max(row["farthest"], gap)
    out.update(by_chain)
    return out


# ------------------------------------------------------------------------------------------------ the audit


SYSTEMS = ("new", "old", "datasketch", "datasketch_verified")


def run_systems(items: Sequence[Item], systems: Sequence[str], old: Optional[ModuleType]) -> list[Outcome]:
    outcomes = []
    for system in systems:
        if system == "new":
            outcomes.append(run_near_dedup(items, current, "new"))
        elif system == "old" and old is not None:
            outcomes.append(run_near_dedup(items, old, "old"))
        elif system in ("datasketch", "datasketch_verified"):
            outcomes.append(run_datasketch(items, verified=system == "datasketch_verified"))
    return outcomes


def audit(shared: Path = SHARED, seed: int = 1, chain: int = 60, big: int = 10000,
          systems: Sequence[str] = SYSTEMS, old_commit: str = OLD_COMMIT) -> dict:
    start = time.perf_counter()
    items = build_set(shared, seed, chain)
    built = time.perf_counter() - start
    ref = reference(items)
    old = load_old(old_commit) if "old" in systems else None
    report: dict = {
        "settings": {"ngram": NGRAM, "unit": UNIT, "num_perm": NUM_PERM, "threshold": THRESHOLD, "seed": SEED,
                     "lsh_shape": list(current.lsh_shape(THRESHOLD, NUM_PERM)), "set_seed": seed,
                     "old_commit": old_commit, "build_s": round(built, 1), "reference_s": round(ref.seconds, 1)},
        "set": {family: {"items": sum(i.family == family for i in items),
                         "groups": len({i.group for i in items if i.family == family})} for family in FAMILIES},
        "reference": {"items": len(items), "edges": len(ref.edges), "restricted_edges": len(ref.restricted_edges),
                      "clusters": sum(1 for c in Counter(ref.labels).values() if c > 1),
                      "restricted_clusters": sum(1 for c in Counter(ref.restricted_labels).values() if c > 1),
                      "chains": chain_summary(items, ref)},
        "systems": {},
    }
    for outcome in run_systems(items, systems, old):
        report["systems"][outcome.system] = {"seconds": round(outcome.seconds, 1), "stats": outcome.stats,
                                             "kept": None if outcome.kept is None else len(outcome.kept),
                                             **score(items, outcome.labels, ref)}
    if big:
        chain_items = big_chain(shared, big)
        chain_ref = reference(chain_items)
        report["big_chain"] = {"windows": len(chain_items), "reference": chain_summary(chain_items, chain_ref)["big_chain"],
                               "reference_clusters": len(set(chain_ref.labels)), "systems": {}}
        for outcome in run_systems(chain_items, systems, old):
            report["big_chain"]["systems"][outcome.system] = {
                "seconds": round(outcome.seconds, 1), "survivors": len(set(outcome.labels)), "stats": outcome.stats}
    return report


def render(report: dict) -> str:
    settings, ref = report["settings"], report["reference"]
    families = ", ".join(f"{name} {row['items']} in {row['groups']} groups" for name, row in report["set"].items())
    lines = [f"set: {ref['items']} items ({families}); built in {settings['build_s']} s",
             f"reference: {ref['edges']} pairs with exact Jaccard >= {settings['threshold']} on char {settings['ngram']}-grams,"
             f" {ref['clusters']} clusters of 2+ ({settings['reference_s']} s); restricted to pairs sharing an LSH band"
             f" ({settings['lsh_shape'][0]}x{settings['lsh_shape'][1]}): {ref['restricted_edges']} pairs,"
             f" {ref['restricted_clusters']} clusters",
             "chains: " + "; ".join(f"{name} {row['windows']} windows, {row['edges']} edges ({row['consecutive']}"
                                    f" consecutive, farthest {row['farthest']} apart)" for name, row in ref["chains"].items()
                                    if name == "chain/0") + f" and {len(ref['chains']) - 1} shorter chains",
             "",
             "| system | seconds | pair precision | pair recall | pair recall (restricted) | purity | completeness |"
             " completeness (restricted) | rounds | unsettled |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in report["systems"].items():
        stats = row["stats"]
        lines.append(f"| {name} | {row['seconds']} | {row['pair_precision']:.4f} | {row['pair_recall']:.4f} |"
                     f" {row['pair_recall_restricted']:.4f} | {row['purity']:.4f} | {row['completeness']:.4f} |"
                     f" {row['completeness_restricted']:.4f} | {stats.get('near_dedup_rounds', '-')} |"
                     f" {stats.get('near_dedup_unsettled', '-')} |")
    names = list(report["systems"])
    lines += ["", "survivors per family (sum over groups; groups ending with one survivor)", "",
              "| family | groups | items | reference | " + " | ".join(names) + " |",
              "|---|---:|---:|---:|" + "---:|" * len(names)]
    for family in FAMILIES:
        rows = [report["systems"][name]["families"].get(family) for name in names]
        first = next((row for row in rows if row), None)
        if first is None:
            continue
        lines.append(f"| {family} | {first['groups']} | {first['items']} | {first['reference_survivors']} | "
                     + " | ".join(f"{row['survivors']} ({row['one_survivor']})" for row in rows) + " |")
    if "big_chain" in report:
        big = report["big_chain"]
        lines += ["", f"big chain: {big['windows']} windows, reference {big['reference_clusters']} cluster(s),"
                  f" {big['reference']['edges']} edges, farthest {big['reference']['farthest']} apart", "",
                  "| system | seconds | survivors | rounds | unsettled |", "|---|---:|---:|---:|---:|"]
        for name, row in big["systems"].items():
            lines.append(f"| {name} | {row['seconds']} | {row['survivors']} | {row['stats'].get('near_dedup_rounds', '-')}"
                         f" | {row['stats'].get('near_dedup_unsettled', '-')} |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chain", type=int, default=60, help="windows of the long chain in the set")
    parser.add_argument("--big-chain", type=int, default=10000, help="windows of the separate chain (0: none)")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--old-commit", default=OLD_COMMIT)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; choose from {', '.join(SYSTEMS)}")
    report = audit(SHARED, args.seed, args.chain, args.big_chain, systems, args.old_commit)
    print(json.dumps(report, ensure_ascii=False, indent=1) if args.json else render(report))


if __name__ == "__main__":
    main()
