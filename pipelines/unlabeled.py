"""The unlabeled pipeline: native files -> pairs -> cleaning -> sharded Parquet, rejects and report."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from cmtp.pipelines.config import LoadedConfig
from cmtp.pipelines.rules import general_rules
from cmtp.schemas import PAIR_SCHEMA, REJECT_SCHEMA
from cmtp.transforms.best_per_passage import OTHERS, BestPerPassage, FirstPerPassage
from cmtp.transforms.exact_dedup import ExactDedup
from cmtp.transforms.extract import ExtractPairs
from cmtp.transforms.filters import GeneralFilter
from cmtp.transforms.filters.pii import MaskPii
from cmtp.transforms.io import WriteParquetShards
from cmtp.transforms.progress import Progress, is_local
from cmtp.transforms.read import ReadSource
from cmtp.transforms.report import WriteReport
from cmtp.transforms.scoring import SemanticFilter
from cmtp.transforms.similar_queries import DeriveSimilarQuestions
from cmtp.transforms.survivor import SurvivorOrder
from cmtp.transforms.survivor_state import SettleSurvivors
from cmtp.transforms.written_rows import CountWrittenRows


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
    extracted_pairs = pairs
    if config.filters.pii.action == "mask":
        masked = pairs | "MaskPII" >> MaskPii(config.filters.pii.types)
        stats.append(masked.stats)
        pairs = masked.pairs
    filtered = pairs | "GeneralFilter" >> GeneralFilter(general_rules(loaded))
    pairs = filtered.pairs
    rejects.append(filtered.rejects)

    order = SurvivorOrder(config.priorities, config.dedup.survivor.quality)
    exact_config, near_config, scoring = config.dedup.exact, config.dedup.near, config.scoring
    late_rejects = []  # from dedup on: a survivor a dedup reject names may be dropped by any of these stages
    if exact_config.pair:
        exact = pairs | "ExactDedup pair" >> ExactDedup(order, "pair", exact_config.within_source)
        pairs = exact.pairs
        late_rejects.append(exact.rejects)
    set_aside = None  # near-dedup rejects of the pairs that stood for their passage
    if near_config.enabled:
        one_per_passage = exact_config.passage and near_config.scope == "passage"
        if one_per_passage:  # near dedup compares passages: one pair each, the others wait for the scorer
            split = pairs | "FirstPerPassage" >> FirstPerPassage(order, exact_config.within_source)
            pairs = split.first
        near_dedup = near_config.build(order, loaded.max_records())
        near = pairs | "NearDedup" >> near_dedup
        pairs = near["pairs"]
        late_rejects.append(near["rejects"])
        stats.append(near["stats"])
        if one_per_passage:
            pairs = (pairs, split[OTHERS]) | "WithOtherPairsOfPassages" >> beam.Flatten()
            set_aside = near["rejects"]
    if scoring.enabled and not (exact_config.pair or near_config.enabled):
        # no dedup shuffle before the scorer: without one it would be fused behind the readers, a big file's
        # pairs all scored by the worker that read it
        pairs = pairs | "SpreadForScoring" >> beam.Reshuffle()
    if scoring.enabled:
        scored = pairs | "SemanticFilter" >> SemanticFilter(scoring.backend, scoring.min_batch_size,
                                                            scoring.max_batch_size, scoring.slice_size,
                                                            scoring.settings(), **scoring.filter_args())
        pairs = scored["pairs"]
        late_rejects.append(scored["rejects"])
        stats.append(scored["stats"])
    hops = len(late_rejects) - int(scoring.enabled)
    if exact_config.passage:  # after scoring: the passage keeps its best passing pair
        best = (pairs, set_aside) | "BestPerPassage" >> BestPerPassage(order, exact_config.within_source)
        pairs = best.pairs
        late_rejects.append(best.rejects)
        # a trail may pass this step twice: a passage's pair -> its first pair (near-deduped) -> a near duplicate
        # whose passage kept another pair
        hops += 1 + int(set_aside is not None)
    if late_rejects:
        settled = (late_rejects | "FromDedupOn" >> beam.Flatten()
                   | "SettleSurvivors" >> SettleSurvivors(hops))
        rejects.append(settled["rejects"])
        stats.append(settled["stats"])

    rejects = rejects | "AllRejects" >> beam.Flatten()
    if local:
        pairs = pairs | "ProgressKept" >> Progress("pairs kept")
    output = config.output.write_args()
    written = pairs | "WritePairs" >> WriteParquetShards(FileSystems.join(out_dir, "data"), PAIR_SCHEMA, **output)
    written_rejects = rejects | "WriteRejects" >> WriteParquetShards(FileSystems.join(out_dir, "rejects"),
                                                                    REJECT_SCHEMA, **output)
    stats.append(written | "CountWritten" >> CountWrittenRows("rows_written"))
    stats.append(written_rejects | "CountWrittenRejects" >> CountWrittenRows("reject_rows_written"))
    header = {
        "pipeline": "unlabeled",
        "config": loaded.path,
        "files": {name: len(files) for name, files in sorted(loaded.files.items())},
        "exact_pair_dedup": exact_config.pair,
        "scorer": scoring.header() if scoring.enabled else None,
        "near_dedup": {"threshold": near_config.threshold, "num_perm": near_config.num_perm,
                       "bands_rows": list(near_config.bands_rows), "ngram": near_config.ngram,
                       "unit": near_config.unit, "scope": near_config.scope, "max_rounds": near_dedup.max_rounds}
        if near_config.enabled else None,
    }
    streams = {"stats": stats | "AllStats" >> beam.Flatten(), "records": records, "pairs": extracted_pairs,
               "kept": pairs, "rejects": rejects}
    streams | "Report" >> WriteReport(FileSystems.join(out_dir, "report.json"), header)
