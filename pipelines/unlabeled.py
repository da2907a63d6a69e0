"""The unlabeled pipeline: native files -> pairs -> cleaning -> sharded Parquet, rejects and report."""
from __future__ import annotations

import apache_beam as beam

from cmtp.pipelines.config import LoadedConfig
from cmtp.pipelines.outputs import write_outputs
from cmtp.pipelines.rules import general_rules
from cmtp.schemas import PAIR_SCHEMA
from cmtp.transforms.best_per_passage import BestPerPassage, FirstPerPassage
from cmtp.transforms.components import rounds_bound
from cmtp.transforms.exact_dedup import ExactDedup
from cmtp.transforms.extract import ExtractPairs
from cmtp.transforms.filters import GeneralFilter
from cmtp.transforms.filters.pii import MaskPii
from cmtp.transforms.flatten_rows import FlattenRows
from cmtp.transforms.near_dedup import NearDedup
from cmtp.transforms.progress import Progress, is_local
from cmtp.transforms.read import ReadSource
from cmtp.transforms.report import PAIR_LEDGER
from cmtp.transforms.scoring import SemanticFilter
from cmtp.transforms.shards import shard_count
from cmtp.transforms.similar_queries import DeriveSimilarQuestions
from cmtp.transforms.stage import Stage, clean, stage_order
from cmtp.transforms.survivor import SurvivorOrder


def read_and_extract(pipeline: beam.Pipeline, loaded: LoadedConfig, sources: dict):
    """Every source's files read and their pairs extracted: (records, extracted pairs, [rejects], [stats])."""
    rejects, stats, records = [], [], []
    for name, source in sources.items():
        read = pipeline | f"Read {name}" >> ReadSource(source, loaded.files[name])
        records.append(read.records)
        rejects.append(read.rejects)
        stats.append(read.stats)
    records = records | "AllRecords" >> beam.Flatten()
    extracted = records | "Extract" >> ExtractPairs(sources)
    return records, extracted.pairs, rejects + [extracted.rejects], stats + [extracted.stats]


def cleaning(loaded: LoadedConfig, order: SurvivorOrder) -> list[Stage]:
    """The configured cleaning stages, in the paper's order: PII masking, the general filter, exact pair dedup,
    near dedup, the semantic filter, one pair per passage."""
    config = loaded.config
    exact, near, scoring = config.dedup.exact, config.dedup.near, config.scoring
    max_pairs = loaded.max_records()  # an upper bound from the input's bytes (it lists every input file)
    shards = shard_count(max_pairs)  # the dedup groups: each holds 1/shards of the pairs
    stages = []
    if config.filters.pii.action == "mask":
        stages.append(Stage("MaskPII", MaskPii(config.filters.pii.types)))
    stages.append(Stage("GeneralFilter", GeneralFilter(general_rules(loaded))))
    if exact.pair:
        stages.append(Stage("ExactDedup pair", ExactDedup(order, "pair", exact.within_source, shards), dedup_steps=1))
    one_per_passage = near.enabled and exact.passage and near.scope == "passage"
    if one_per_passage:  # near dedup compares passages: one pair each, the others wait for the scorer
        stages.append(Stage("FirstPerPassage", FirstPerPassage(order, exact.within_source, shards), aside_until="NearDedup"))
    if near.enabled:
        stages.append(Stage("NearDedup", NearDedup(near, order, max_pairs), dedup_steps=1))
    if scoring.enabled:
        spread = not (exact.pair or near.enabled)  # no dedup shuffle before the scorer to spread its pairs
        stages.append(Stage("SemanticFilter", SemanticFilter(scoring, spread)))
    if exact.passage:  # after scoring: the passage keeps its best passing pair
        # a trail may pass this step twice: a passage's pair -> its first pair (near-deduped) -> a near duplicate
        # whose passage kept another pair
        stages.append(Stage("BestPerPassage", BestPerPassage(order, exact.within_source, shards),
                            dedup_steps=1 + int(one_per_passage), reads="NearDedup" if one_per_passage else None))
    return stages


def build(pipeline: beam.Pipeline, loaded: LoadedConfig, out_dir: str) -> None:
    """Add the unlabeled data flow to `pipeline`, writing under `out_dir`."""
    config = loaded.config
    sources = {source.name: source.build() for source in config.sources}
    records, pairs, rejects, stats = read_and_extract(pipeline, loaded, sources)
    local = is_local(pipeline)
    if local:
        records | "ProgressRead" >> Progress("records read")

    pairs = pairs | "Normalize" >> config.normalize.build()
    similar_groups = {name: source.options.max_similar_group for name, source in sources.items()
                      if "similar_question" in source.enabled}
    if similar_groups:
        similar = pairs | "SimilarQuestions" >> DeriveSimilarQuestions(similar_groups)
        stats.append(similar.stats)
        pairs = (pairs, similar.pairs) | "WithSimilar" >> beam.Flatten()

    stages = cleaning(loaded, SurvivorOrder(config.priorities, config.dedup.survivor.quality))
    cleaned = clean(pairs, stages)
    near = config.dedup.near
    header = {
        "pipeline": "unlabeled",
        "config": loaded.path,
        "files": {name: len(files) for name, files in sorted(loaded.files.items())},
        "exact_pair_dedup": config.dedup.exact.pair,
        "scorer": config.scoring.header() if config.scoring.enabled else None,
        "near_dedup": {"threshold": near.threshold, "num_perm": near.num_perm, "bands_rows": list(near.bands_rows),
                       "ngram": near.ngram, "unit": near.unit, "scope": near.scope,
                       "max_rounds": near.max_rounds or rounds_bound(loaded.max_records())}
        if near.enabled else None,
        "stages": stage_order(stages),
    }
    streams = {"stats": [*stats, cleaned.stats], "records": records, "extracted": pairs, "kept": cleaned.pairs,
               "rejects": (*rejects, cleaned.rejects) | "AllRejects" >> FlattenRows()}
    write_outputs(loaded, out_dir, PAIR_SCHEMA, streams, header, PAIR_LEDGER, local)
