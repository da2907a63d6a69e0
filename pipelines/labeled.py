"""The labeled pipeline: native files by role -> judgments -> cleaning -> records with instructions and mined
hard negatives -> sharded Parquet, rejects and report."""
from __future__ import annotations

import apache_beam as beam

from cmtp.pipelines.config import LoadedConfig
from cmtp.pipelines.outputs import write_outputs
from cmtp.pipelines.rules import general_rules, rules_for
from cmtp.schemas import LABELED_SCHEMA, LabeledRecord, Pair
from cmtp.transforms.exact_dedup import ExactDedup
from cmtp.transforms.filters import GeneralFilter
from cmtp.transforms.filters.pii import MaskPii
from cmtp.transforms.flatten_rows import FlattenRows
from cmtp.transforms.judgments import POSITIVE, AssembleRecords, JudgeRows, ResolveLinks
from cmtp.transforms.near_dedup import NearDedup
from cmtp.transforms.progress import Progress, is_local
from cmtp.transforms.read import ReadSource
from cmtp.transforms.records_with_negatives import MineHardNegatives
from cmtp.transforms.report import JUDGMENT_LEDGER
from cmtp.transforms.stage import SetAside, Stage, clean, stage_order
from cmtp.transforms.survivor import SurvivorOrder


def _corpus_pair(text) -> Pair:
    """A corpus-file passage as a pair with an empty query, for normalization and the passage-side rules."""
    return Pair(id=text.key, query="", passage=text.text, source=text.source, kind="corpus", file=text.file,
                position=text.position)


def cleaning(loaded: LoadedConfig, order: SurvivorOrder, task_of: dict[str, str],
             instructions: dict[str, str]) -> list[Stage]:
    """The configured cleaning of judgments: PII masking, the general filter (a similarity task's rules are its
    own by default), exact and near dedup of the (query, positive) pairs of the tasks that take part (negatives are
    settled per record), and assembly into one record per query."""
    config = loaded.config
    stages = []
    if config.filters.pii.action == "mask":
        stages.append(Stage("MaskPII", MaskPii(config.filters.pii.types)))
    per_source = {name: rules_for(loaded, name) for name in task_of}
    stages.append(Stage("GeneralFilter", GeneralFilter(general_rules(loaded), per_source)))
    deduped = {name for name in task_of if config.task(task_of[name]).dedup}

    def positive_of_deduped_task(pair: Pair) -> bool:
        return pair.kind == POSITIVE and pair.source in deduped

    dedup = []
    if config.dedup.exact:
        dedup.append(Stage("ExactDedup", ExactDedup(order, "pair"), dedup_steps=1))
    if config.dedup.near.enabled:
        dedup.append(Stage("NearDedup", NearDedup(config.dedup.near, order, loaded.max_records()), dedup_steps=1))
    if dedup:  # the rest wait until the last dedup stage
        stages += [Stage("DedupPositives", SetAside(positive_of_deduped_task), aside_until=dedup[-1].label), *dedup]
    stages.append(Stage("Assemble", AssembleRecords(task_of, instructions), units=_judgments_in, kept="records"))
    return stages


def _judgments_in(record: LabeledRecord) -> int:
    """The judgments an assembled record holds (none is mined yet)."""
    return len(record.pos) + len(record.neg)


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

    instructions = {task: config.instruction(task) for task in tasks}
    stages = cleaning(loaded, SurvivorOrder(config.priorities, config.dedup.survivor.quality), task_of, instructions)
    cleaned = clean(judgments, stages)
    labeled = cleaned.pairs

    mining = config.negatives
    mined_tasks = [task for task in tasks if config.task(task).mine] if mining.enabled else []
    if mined_tasks:
        corpus_rules = [rule for rule in general_rules(loaded) if getattr(rule, "side", None) == "passage"]
        corpus = (
            judged.texts
            | "CorpusTexts" >> beam.Filter(lambda t: t.role == "corpus")
            | "CorpusPairs" >> beam.Map(_corpus_pair)
            | "NormalizeCorpus" >> config.normalize.build()
            | "FilterCorpus" >> GeneralFilter(corpus_rules)
        )
        # Corpus passages that fail the passage rules are simply not mined from; they are lookup rows, not data.
        corpus_texts = corpus.pairs | "CorpusByTask" >> beam.Map(lambda p: (task_of[p.source], p.passage))
        mined = ({"records": labeled, "corpus": corpus_texts}
                 | "MineNegatives" >> MineHardNegatives(mining, mined_tasks))
        labeled = mined["records"]
        stats.append(mined["stats"])

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
        "stages": stage_order(stages),
    }
    streams = {"stats": [*stats, cleaned.stats], "records": records | "Rows" >> beam.Values(),
               "extracted": extracted, "kept": labeled,
               "rejects": (*rejects, cleaned.rejects) | "AllRejects" >> FlattenRows()}
    write_outputs(loaded, out_dir, LABELED_SCHEMA, streams, header, JUDGMENT_LEDGER, local)
