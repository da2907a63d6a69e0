"""The labeled run config (`pipeline: labeled`): judged sources grouped into tasks, their instructions, dedup and
hard-negative mining."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, ValidationError, field_validator, model_validator

from cmtp.pipelines.config.common import (
    EmbedderConfig,
    FiltersConfig,
    NearDedupConfig,
    NormalizeConfig,
    OutputConfig,
    SurvivorConfig,
    _as_list,
    _listed_once,
    _one_line,
    _one_of,
    _Strict,
)
from cmtp.transforms.sources import REGISTRY, SourceSettings
from cmtp.transforms.sources.judgments import LOOKUP_ROLES, LabeledSource

RETRIEVAL_INSTRUCTION = "为这个句子生成表示以用于检索相关文章："  # BGE's Chinese retrieval instruction


class LabeledSourceConfig(_Strict):
    name: str
    paths: dict[str, list[str]]  # role -> globs, e.g. {corpus: [...], queries: [...], qrels: [...]}
    task: Optional[str] = None  # default: the source's name; a task shares corpus, instruction and export file
    priority: int = 0
    fields: dict[str, str] = {}
    options: dict[str, Any] = {}

    @field_validator("paths", mode="before")
    @classmethod
    def _one_path_per_role(cls, paths: Any) -> Any:
        return {role: _as_list(globs) for role, globs in paths.items()} if isinstance(paths, dict) else paths

    @field_validator("name")
    @classmethod
    def _labeled(cls, name: str) -> str:
        labeled = {n: s for n, s in REGISTRY.items() if issubclass(s, LabeledSource)}
        if name in REGISTRY and name not in labeled:
            raise ValueError(f"{name!r} is an unlabeled source; the labeled pipeline reads {', '.join(sorted(labeled))}")
        return _one_of(name, labeled, "labeled source")

    @model_validator(mode="after")
    def _roles(self) -> "LabeledSourceConfig":
        source = REGISTRY[self.name]
        for role, globs in self.paths.items():
            if role not in source.roles:
                raise ValueError(f"paths.{role}: {self.name} has no role {role!r}; its roles: "
                                 f"{'; '.join(f'{r}: {layout}' for r, layout in source.roles.items())}")
            if not globs:
                raise ValueError(f"paths.{role}: give at least one file")
        judged = [role for role in source.roles if role not in LOOKUP_ROLES]
        if not any(role in self.paths for role in judged):
            raise ValueError(f"paths: give files for {' or '.join(judged)} (the judgments of {self.name})")
        try:
            self.build()
        except ValidationError as error:
            raise ValueError("options." + _one_line(error, source.Options)) from None
        return self

    @property
    def task_name(self) -> str:
        return self.task or self.name

    def build(self) -> "LabeledSource":
        return REGISTRY[self.name](SourceSettings(fields=dict(self.fields), options=dict(self.options)))


class TaskConfig(_Strict):
    instruction: Optional[str] = None  # unset: `instructions[<the task's type>]`; null: none
    # replaces the top-level filters for this task; unset: the top-level filters, for a similarity task (NLI-zh,
    # CMNLI, OCNLI) as sentence pairs need them (FiltersConfig.for_sentence_pairs)
    filters: Optional[FiltersConfig] = None
    dedup: bool = True  # its (query, positive) pairs take part in dedup
    mine: bool = True  # mine hard negatives for its records (when negatives.enabled)


class MiningConfig(EmbedderConfig):
    enabled: bool = True
    per_record: int = Field(default=1, ge=1)  # the paper: one
    rank_range: tuple[int, int] = (10, 100)  # sample from these ranks [lo, hi) of the query's nearest passages
    max_similarity_to_positive: float = Field(default=0.95, ge=-1.0, le=1.0)  # above: a near-copy of a positive
    seed: int = 1
    query_block: int = Field(default=1024, ge=1)
    corpus_block: int = Field(default=8192, ge=1)

    @field_validator("rank_range", mode="before")
    @classmethod
    def _pair(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    @model_validator(mode="after")
    def _ordered(self) -> "MiningConfig":
        lo, hi = self.rank_range
        if not 0 <= lo < hi:
            raise ValueError(f"rank_range: need 0 <= lo < hi, got [{lo}, {hi}]")
        return self


class LabeledDedupConfig(_Strict):
    exact: bool = True  # identical normalized (query, positive) keep one
    near: NearDedupConfig = NearDedupConfig(enabled=False, scope="pair")
    survivor: SurvivorConfig = SurvivorConfig()


class LabeledRunConfig(_Strict):
    pipeline: Literal["labeled"]
    sources: list[LabeledSourceConfig] = Field(min_length=1)
    instructions: dict[Literal["retrieval", "similarity"], Optional[str]] = {
        "retrieval": RETRIEVAL_INSTRUCTION, "similarity": None}
    tasks: dict[str, TaskConfig] = {}
    normalize: NormalizeConfig = NormalizeConfig()
    filters: FiltersConfig = FiltersConfig.model_validate({})
    dedup: LabeledDedupConfig = LabeledDedupConfig()
    negatives: MiningConfig = MiningConfig()
    output: OutputConfig = OutputConfig()

    _once_each = field_validator("sources")(lambda sources: _listed_once(sources))

    @model_validator(mode="after")
    def _known_tasks(self) -> "LabeledRunConfig":
        tasks = {source.task_name for source in self.sources}
        for name in self.tasks:
            if name not in tasks:
                raise ValueError(f"tasks.{name}: no source has this task; tasks: {', '.join(sorted(tasks))}")
        return self

    @property
    def priorities(self) -> dict[str, int]:
        return {source.name: source.priority for source in self.sources}

    def task_of(self, source: str) -> str:
        return next(s.task_name for s in self.sources if s.name == source)

    def task(self, name: str) -> TaskConfig:
        return self.tasks.get(name, TaskConfig())

    def instruction(self, task: str) -> Optional[str]:
        """The task's instruction: its own if set (even to null), else its type's."""
        config = self.task(task)
        if "instruction" in config.model_fields_set:
            return config.instruction
        source = next(s for s in self.sources if s.task_name == task)
        return self.instructions.get(REGISTRY[source.name].task_type)

    def filters_for(self, task: str) -> FiltersConfig:
        """The task's own filters if set, else the top-level ones, as sentence pairs need them for a similarity task."""
        if self.task(task).filters:
            return self.task(task).filters
        source = next(s for s in self.sources if s.task_name == task)
        return self.filters.for_sentence_pairs() if REGISTRY[source.name].task_type == "similarity" else self.filters
