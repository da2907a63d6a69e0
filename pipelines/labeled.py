"""The labeled pipeline: native files by role -> judgments -> cleaning -> records with instructions and mined
hard negatives -> sharded Parquet, rejects and report."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from cmtp.pipelines.config import LoadedConfig
from cmtp.pipelines.rules import general_rules, rules_for
from cmtp.schemas import LABELED_SCHEMA, REJECT_SCHEMA, Pair
from cmtp.transforms.exact_dedup import ExactDedup
from cmtp.transforms.filters import GeneralFilter
from cmtp.transforms.filters.pii import MaskPii
from cmtp.transforms.io import WriteParquetShards
from cmtp.transforms.judgments import POSITIVE, AssembleRecords, JudgeRows, ResolveLinks
from cmtp.transforms.progress import Progress, is_local
from cmtp.transforms.read import ReadSource
from cmtp.transforms.records_with_negatives import MineHardNegatives
from cmtp.transforms.report import WriteLabeledReport
from cmtp.transforms.survivor import SurvivorOrder
from cmtp.transforms.survivor_state import SettleSurvivors
from cmtp.transforms.written_rows import CountWrittenRows


def _corpus_pair(text) -> Pair:
    """A corpus-file passage as a pair with an empty query, for normalization and the passage-side rules."""
    return Pair(id=text.key, query="", passage=text.text, source=text.source, kind="corpus", file=text.file,
                position=text.position)


def build(pipeline: beam.Pipeline, loaded: LoadedConfig, out_dir: str) -> None:
    """Add the labeled data flow to `pipeline`, writing under `out_dir`."""
    config = loaded.config
    sources = {source.name: source.build() for source in config.sources}
    task_of = {source.name: source.task_name for source in config.sources}
    tasks = sorted(set(task_of.values()))
    rejects, stats, records = [], [], []
    for name, source in sources.items():
        for role, files in sorted(loaded.roles[name].items()):
            read = pipeline | f"Read {name} {role}" >> ReadSource(source.view(role), files)
            records.append(read.records | f"Role {name} {role}" >> beam.Map(lambda r, role=role: (role, r)))
            rejects.append(read.rejects)
            stats.append(read.stats)
    records = records | "AllRows" >> beam.Flatten()
    local = is_local(pipeline)
    if local:
        records | "ProgressRead" >> Progress("rows read")
    judged = records | "Judge" >> JudgeRows(sources)
    rejects.append(judged.rejects)
    stats.append(judged.stats)
    resolved = {"links": judged.links, "texts": judged.texts} | "Resolve" >> ResolveLinks()
    rejects.append(resolved["rejects"])
    extracted = (judged.judgments, judged.links) | "Extracted" >> beam.Flatten()

    judgments = ((judged.judgments, resolved["judgments"]) | "AllJudgments" >> beam.Flatten()
                 | "Normalize" >> config.normalize.build())
    pii = config.filters.pii
    if pii.action == "mask":
        masked = judgments | "MaskPII" >> MaskPii(pii.types)
        stats.append(masked.stats)
        judgments = masked.pairs
    rules = general_rules(loaded)
    per_source = {name: rules_for(loaded, name) for name in sources}  # a similarity task's are its own by default
    filtered = judgments | "GeneralFilter" >> GeneralFilter(rules, per_source)
    rejects.append(filtered.rejects)

    # Dedup applies to (query, positive) pairs of the tasks that take part; negatives are settled per record.
    deduped_sources = {name for name in sources if config.task(task_of[name]).dedup}
    to_dedup = filtered.pairs | "DedupPositives" >> beam.Filter(
        lambda p: p.kind == POSITIVE and p.source in deduped_sources)
    rest = filtered.pairs | "NotDeduped" >> beam.Filter(
        lambda p: not (p.kind == POSITIVE and p.source in deduped_sources))
    order = SurvivorOrder(config.priorities, config.dedup.survivor.quality)
    late_rejects = []  # from dedup on: a survivor a dedup reject names may be dropped by any of these stages
    if config.dedup.exact:
        exact = to_dedup | "ExactDedup" >> ExactDedup(order, "pair")
        to_dedup = exact.pairs
        late_rejects.append(exact.rejects)
    near_config = config.dedup.near
    if near_config.enabled:
        near = to_dedup | "NearDedup" >> near_config.build(order, loaded.max_records())
        to_dedup = near["pairs"]
        late_rejects.append(near["rejects"])
        stats.append(near["stats"])
    dedup_steps = len(late_rejects)
    cleaned = (to_dedup, rest) | "Cleaned" >> beam.Flatten()

    instructions = {task: config.instruction(task) for task in tasks}
    assembled = cleaned | "Assemble" >> AssembleRecords(task_of, instructions)
    late_rejects.append(assembled.rejects)
    settled = late_rejects | "FromDedupOn" >> beam.Flatten() | "SettleSurvivors" >> SettleSurvivors(dedup_steps)
    rejects.append(settled["rejects"])
    stats.append(settled["stats"])
    labeled = assembled.records

    mining = config.negatives
    mined_tasks = [task for task in tasks if config.task(task).mine] if mining.enabled else []
    if mined_tasks:
        corpus_rules = [rule for rule in rules if getattr(rule, "side", None) == "passage"]
        corpus = (
            judged.texts
            | "CorpusTexts" >> beam.Filter(lambda t: t.role == "corpus")
            | "CorpusPairs" >> beam.Map(_corpus_pair)
            | "NormalizeCorpus" >> config.normalize.build()
            | "FilterCorpus" >> GeneralFilter(corpus_rules)
        )
        # Corpus passages that fail the passage rules are simply not mined from; they are lookup rows, not data.
        corpus_texts = corpus.pairs | "CorpusByTask" >> beam.Map(lambda p: (task_of[p.source], p.passage))
        mined = {"records": labeled, "corpus": corpus_texts} | "MineNegatives" >> MineHardNegatives(
            mined_tasks, mining.backend, mining.settings(), per_record=mining.per_record,
            rank_range=mining.rank_range, ceiling=mining.max_similarity_to_positive, seed=mining.seed,
            query_block=mining.query_block, corpus_block=mining.corpus_block, min_batch_size=mining.min_batch_size,
            max_batch_size=mining.max_batch_size, slice_size=mining.slice_size)
        labeled = mined["records"]
        stats.append(mined["stats"])

    rejects = rejects | "AllRejects" >> beam.Flatten()
    if local:
        labeled = labeled | "ProgressKept" >> Progress("records kept")
    output = config.output.write_args()
    written = labeled | "WriteRecords" >> WriteParquetShards(FileSystems.join(out_dir, "data"), LABELED_SCHEMA,
                                                             **output)
    written_rejects = rejects | "WriteRejects" >> WriteParquetShards(FileSystems.join(out_dir, "rejects"),
                                                                    REJECT_SCHEMA, **output)
    stats.append(written | "CountWritten" >> CountWrittenRows("rows_written"))
    stats.append(written_rejects | "CountWrittenRejects" >> CountWrittenRows("reject_rows_written"))
    header = {
        "pipeline": "labeled",
        "config": loaded.path,
        "files": {name: {role: len(files) for role, files in sorted(roles.items())}
                  for name, roles in sorted(loaded.roles.items())},
        "task_of": dict(sorted(task_of.items())),
        "instructions": instructions,
        "negatives": {"backend": mining.backend, "model": mining.settings().get("model"),
                      "per_record": mining.per_record, "rank_range": list(mining.rank_range),
                      "max_similarity_to_positive": mining.max_similarity_to_positive, "seed": mining.seed,
                      "tasks": mined_tasks} if mined_tasks else None,
    }
    streams = {"stats": stats | "AllStats" >> beam.Flatten(), "records": records | "Rows" >> beam.Values(),
               "judgments": extracted, "kept": labeled, "rejects": rejects}
    streams | "Report" >> WriteLabeledReport(FileSystems.join(out_dir, "report.json"), header)
