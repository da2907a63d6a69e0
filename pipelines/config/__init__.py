"""Run configs: YAML validated into frozen, typed objects before anything runs.

An unknown key (with the nearest known one), a key given twice, a wrong type, values that contradict each
other (a minimum above its maximum), an unknown source, an input path that matches no file, or an embedding
model that is not on this machine is refused with one line naming the key (`sources[1].paths[0]`) and what is
wrong, before anything is written. Relative paths are relative to the config file, so a config runs the same
from any working directory. A single path may be given as a string.

The sections live in common.py (shared by both pipelines), unlabeled.py and labeled.py; this module reads and
resolves a config file. Loading one imports no Beam, datasketch or scipy: those come with building a pipeline.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import yaml
from pydantic import ValidationError

from cmtp.configs import LEXICONS
from cmtp.pipelines.config.common import (
    DEFAULT_ACTIONS,
    Bounds,
    ConfigError,
    EmbedderConfig,
    ExactDedupConfig,
    FiltersConfig,
    LanguageConfig,
    LexiconConfig,
    MaliciousConfig,
    NearDedupConfig,
    NonTextConfig,
    NormalizeConfig,
    OutputConfig,
    PairRulesConfig,
    PiiConfig,
    SideLimits,
    SurvivorConfig,
    _one_line,
)
from cmtp.pipelines.config.labeled import (
    RETRIEVAL_INSTRUCTION,
    LabeledDedupConfig,
    LabeledRunConfig,
    LabeledSourceConfig,
    MiningConfig,
    TaskConfig,
)
from cmtp.pipelines.config.unlabeled import (
    CONSISTENCY_DEFAULT,
    ConsistencyConfig,
    DedupConfig,
    RunConfig,
    ScoringConfig,
    SourceConfig,
)
from cmtp.transforms.embedders import ModelUnavailable, check_model
from cmtp.transforms.io import expand_paths, uri_scheme

__all__ = [
    "CONSISTENCY_DEFAULT", "DEFAULT_ACTIONS", "RETRIEVAL_INSTRUCTION", "Bounds", "ConfigError", "ConsistencyConfig",
    "DedupConfig", "EmbedderConfig", "ExactDedupConfig", "FiltersConfig", "LabeledDedupConfig", "LabeledRunConfig",
    "LabeledSourceConfig", "LanguageConfig", "LexiconConfig", "LoadedConfig", "MaliciousConfig", "MiningConfig",
    "NearDedupConfig", "NonTextConfig", "NormalizeConfig", "OutputConfig", "PairRulesConfig", "PiiConfig",
    "RunConfig", "ScoringConfig", "SideLimits", "SourceConfig", "SurvivorConfig", "TaskConfig", "load_config",
    "resolved_yaml",
]


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
        from apache_beam.io.filesystems import FileSystems  # only building a pipeline asks: Beam is loaded by then

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
        resolved = pattern if uri_scheme(pattern) else os.path.normpath(os.path.join(base, pattern))
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
