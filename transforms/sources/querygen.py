"""`querygen`: generated (query, passage) pairs at two granularities over the passages of any other source.

The files are read by `from_source`'s reader, its pairs' passages (of `from_kinds`, default all) become the
passages, and the configured generator (transforms/query_generators.py) writes `sm` and `kw` queries for each:
`mix: {sm: 1, kw: 2}` asks one SM and two KW queries a passage. Pairs have kind `generated_sm` or
`generated_kw`, and their `generator` column names the generator; they flow through the same cleaning
as mined pairs.

Leakage: with `leakage.eval_data` (a CapRetrieval-layout folder, or any JSON lines with `text`), a passage
whose character n-gram Jaccard with an evaluation text reaches `leakage.threshold` is not used (the
CapRetrieval paper drops training captions too similar to test captions); a record whose passages all
leak is a reject `leaks_eval_set` naming the closest evaluation text.

Failed generation: a record any of whose passages the endpoint failed for (after retries, or a 4xx) is a
reject of stage `generate`, reason `generation_failed`, with the HTTP status; its other passages' answers are
cached, so a re-run asks only for the failed ones. A missing or refused API key (`GenerationAuthError`) is not
a record's fault: it stops the run.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import IO, Any, Iterator, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cmtp.schemas import Pair, pair_id
from cmtp.transforms.query_generators import GenerationAuthError, GenerationError
from cmtp.transforms.sources.base import (
    REGISTRY,
    ExtractError,
    Source,
    SourceOptions,
    SourceRecord,
    SourceSettings,
    register,
)
from cmtp.transforms.sources.layouts import Item


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ChatOptions(_Strict):
    endpoint: str  # e.g. https://api.openai.com/v1 or a local vLLM server
    model: str
    api_key_env: str = "OPENAI_API_KEY"  # the key's environment variable; the key itself is never in a config
    cache_dir: Optional[str] = ".cmtp-querygen-cache"
    requests_per_minute: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    backoff_seconds: float = Field(default=1.0, ge=0)
    timeout_seconds: float = Field(default=60.0, gt=0)
    temperature: float = Field(default=0.7, ge=0, le=2)


class LeakageOptions(_Strict):
    eval_data: str  # a folder with candidates.jsonl, or a JSON-lines file of {text}
    threshold: float = Field(default=0.6, gt=0, le=1)  # character n-gram Jaccard at which a passage leaks
    ngram: int = Field(default=3, ge=1)


class QueryGenOptions(SourceOptions):
    from_source: str  # the source whose reader reads the files and whose pairs' passages are used
    from_kinds: Optional[list[str]] = None
    generator: Literal["offline", "chat"] = "offline"
    language: Literal["zh", "en"] = "zh"
    mix: dict[Literal["sm", "kw"], int] = {"sm": 1, "kw": 1}  # queries per passage of each granularity
    chat: Optional[ChatOptions] = None
    leakage: Optional[LeakageOptions] = None

    @field_validator("mix")
    @classmethod
    def _asks_something(cls, mix: dict[str, int]) -> dict[str, int]:
        """A mix asking no query would turn every record into a reject."""
        if not any(count > 0 for count in mix.values()):
            raise ValueError("ask at least one query, e.g. {sm: 1, kw: 1}")
        return mix


class GenerationFailed(ExtractError):
    """A record the generator failed for: a reject of stage `generate` (not `extract`), with the HTTP status."""

    stage = "generate"

    def __init__(self, error: Exception, failed: int, passages: int):
        super().__init__("generation_failed", f"{failed} of {passages} passages: {error}")
        self.status = getattr(error, "status", None)


class _LeakIndex:
    """Character n-gram sets of the evaluation texts, with an inverted index to find the ones a passage shares
    n-grams with; max Jaccard over those."""

    def __init__(self, texts: list[tuple[str, str]], n: int):
        self._n, self._sets, self._ids = n, [], []
        self._index: dict[str, list[int]] = defaultdict(list)
        for ident, text in texts:
            grams = self.grams(text)
            for gram in grams:
                self._index[gram].append(len(self._sets))
            self._sets.append(grams)
            self._ids.append(ident)

    def grams(self, text: str) -> frozenset:
        text = "".join(text.lower().split())
        return frozenset(text[i:i + self._n] for i in range(max(1, len(text) - self._n + 1)))

    def closest(self, text: str) -> tuple[float, Optional[str]]:
        grams = self.grams(text)
        shared: dict[int, int] = defaultdict(int)
        for gram in grams:
            for i in self._index.get(gram, ()):
                shared[i] += 1
        best = (0.0, None)
        for i, common in shared.items():
            jaccard = common / (len(grams) + len(self._sets[i]) - common)
            if jaccard > best[0]:
                best = (jaccard, self._ids[i])
        return best


def _eval_texts(path: str) -> list[tuple[str, str]]:
    file = os.path.join(path, "candidates.jsonl") if os.path.isdir(path) else path
    texts = []
    with open(file, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                row = json.loads(line)
                texts.append((str(row.get("id", number)), row["text"]))
    return texts


@register
class QueryGen(Source):
    name = "querygen"
    kinds = ("generated_sm", "generated_kw")
    Options = QueryGenOptions

    def __init__(self, settings: SourceSettings = SourceSettings()):
        super().__init__(settings)
        options = self.options
        if options.from_source not in REGISTRY or options.from_source == self.name:
            raise ValueError(f"options.from_source: unknown source {options.from_source!r}")
        self._inner = REGISTRY[options.from_source](SourceSettings(
            kinds=tuple(options.from_kinds) if options.from_kinds else None))
        if options.generator == "chat" and options.chat is None:
            raise ValueError("options.chat: the chat generator needs {endpoint, model[, api_key_env, ...]}")
        if options.leakage and not os.path.exists(options.leakage.eval_data):
            raise ValueError(f"options.leakage.eval_data: no such file or folder {options.leakage.eval_data!r}")
        self._generator = None
        self._leaks: Optional[_LeakIndex] = None

    @property
    def expected_layout(self) -> str:  # type: ignore[override]
        return f"{self._inner.name}'s: {self._inner.expected_layout}"

    def __getstate__(self) -> dict:  # the generator (a lock, a model) is made again where the source runs
        return {**self.__dict__, "_generator": None, "_leaks": None}

    def parse(self, path: str, stream: IO[bytes]) -> Iterator[Item]:
        return self._inner.parse(path, stream)

    def check(self, record: SourceRecord) -> list[Pair]:
        """The layout check: the inner source's extraction only, no generation (no endpoint calls)."""
        return self._inner.extract(record)

    def generator(self):
        if self._generator is None:
            from cmtp.transforms.query_generators import load_generator

            options = self.options
            settings: dict[str, Any] = {}
            if options.generator == "chat":
                settings = {**options.chat.model_dump(), "language": options.language}
            self._generator = load_generator(options.generator, settings)
        return self._generator

    def _generated(self, record: SourceRecord, passage: str) -> list[Pair]:
        """The passage's pairs, each granularity of the mix; GenerationError when the generator fails."""
        generator = self.generator()
        pairs = []
        for granularity, count in self.options.mix.items():
            if count <= 0:
                continue
            kind = f"generated_{granularity}"
            for query in generator.generate(passage, granularity, count):
                pairs.append(Pair(id=pair_id(self.name, kind, query, passage), query=query, passage=passage,
                                  source=self.name, kind=kind, file=record.file, position=record.position,
                                  generator=generator.name))
        return pairs

    def _leak_index(self) -> Optional[_LeakIndex]:
        leakage = self.options.leakage
        if leakage and self._leaks is None:
            self._leaks = _LeakIndex(_eval_texts(leakage.eval_data), leakage.ngram)
        return self._leaks

    def extract(self, record: SourceRecord) -> list[Pair]:
        passages = []
        for pair in self._inner.extract_enabled(record).pairs:
            if pair.passage not in passages:
                passages.append(pair.passage)
        leaks = self._leak_index()
        leaked = []
        if leaks is not None:
            kept = []
            for passage in passages:
                jaccard, closest = leaks.closest(passage)
                (leaked if jaccard >= self.options.leakage.threshold else kept).append((passage, jaccard, closest))
            passages = [passage for passage, _, _ in kept]
        if not passages:
            if leaked:
                _, jaccard, closest = max(leaked, key=lambda item: item[1])
                raise ExtractError("leaks_eval_set", f"n-gram Jaccard {jaccard:.2f} with evaluation text {closest}")
            raise ExtractError("no_passage", "the record gives no passage")
        pairs, failures = [], []
        for passage in passages:
            try:
                pairs += self._generated(record, passage)
            except GenerationAuthError:
                raise
            except GenerationError as error:
                failures.append(error)
        if failures:
            raise GenerationFailed(failures[-1], len(failures), len(passages))
        if not pairs:
            raise ExtractError("no_query_generated", f"the generator wrote no query for {len(passages)} passages")
        return pairs
