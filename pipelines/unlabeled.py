"""The unlabeled pipeline: native files -> pairs -> cleaning -> sharded Parquet, rejects and report."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from cmtp.pipelines.config import LoadedConfig
from cmtp.pipelines.rules import general_rules
from cmtp.schemas import PAIR_SCHEMA, REJECT_SCHEMA
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
    exact_config = config.dedup.exact
    late_rejects = []  # from dedup on: a survivor a dedup reject names may be dropped by any of these stages
    for scope in ("pair", "passage"):
        if getattr(exact_config, scope):
            exact = pairs | f"ExactDedup {scope}" >> ExactDedup(order, scope, exact_config.within_source)
            pairs = exact.pairs
            late_rejects.append(exact.rejects)
    near_config = config.dedup.near
    if near_config.enabled:
        near = pairs | "NearDedup" >> near_config.build(order)
        pairs = near["pairs"]
        late_rejects.append(near["rejects"])
        stats.append(near["stats"])
    dedup_steps = len(late_rejects)
    scoring = config.scoring
    if scoring.enabled and not (exact_config.pair or exact_config.passage or near_config.enabled):
        # no dedup shuffle before the scorer: without one it would be fused behind the readers, a big file's
        # pairs all scored by the worker that read it
        pairs = pairs | "SpreadForScoring" >> beam.Reshuffle()
    if scoring.enabled:
        scored = pairs | "SemanticFilter" >> SemanticFilter(scoring.backend, scoring.threshold, scoring.min_batch_size,
                                                            scoring.max_batch_size, scoring.slice_size,
                                                            scoring.settings())
        pairs = scored.pairs
        late_rejects.append(scored.rejects)
    if late_rejects:
        settled = (late_rejects | "FromDedupOn" >> beam.Flatten()
                   | "SettleSurvivors" >> SettleSurvivors(dedup_steps))
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
        "scorer": {"backend": scoring.backend, "model": scoring.settings().get("model"),
                   "threshold": scoring.threshold} if scoring.enabled else None,
        "near_dedup": {"threshold": near_config.threshold, "num_perm": near_config.num_perm,
                       "bands_rows": list(near_config.bands_rows), "ngram": near_config.ngram,
                       "unit": near_config.unit, "scope": near_config.scope, "rounds": near_config.rounds}
        if near_config.enabled else None,
    }
    streams = {"stats": stats | "AllStats" >> beam.Flatten(), "records": records, "pairs": extracted_pairs,
               "kept": pairs, "rejects": rejects}
    streams | "Report" >> WriteReport(FileSystems.join(out_dir, "report.json"), header)
