"""The general filter's rules, built from the `filters:` section of a config, cheapest and most specific first.

`rules_for(loaded, source)` is the one place that says which rules a source gets: the labeled pipeline, the
audit and the tests all ask it, so what they measure is what runs.
"""
from __future__ import annotations

from typing import Optional

from cmtp.pipelines.config import FiltersConfig, LabeledRunConfig, LoadedConfig
from cmtp.transforms.filters.language import LanguageRule, ScriptStatistics
from cmtp.transforms.filters.length import FragmentRule, LengthRatioRule, LengthRule
from cmtp.transforms.filters.lexicon import FlaggedWordsRule, read_lexicon, shipped_lexicon
from cmtp.transforms.filters.nontext import CjkRatioRule, NonTextRule
from cmtp.transforms.filters.pair import BoilerplateRule, EmptySideRule, SameTextRule, compact
from cmtp.transforms.filters.pii import PiiRule


def general_rules(loaded: LoadedConfig, filters: Optional[FiltersConfig] = None) -> list:
    """The rules of `filters` (default: the config's top-level `filters:`), files resolved against the config."""
    filters = filters or loaded.config.filters
    unit = "words" if filters.lang == "en" else "chars"
    rules: list = [EmptySideRule()]
    if filters.pair.same_text:
        rules.append(SameTextRule(filters.pair.prefix, filters.pair.keep_identical_positives))
    if filters.pair.boilerplate or filters.pair.boilerplate_files:
        phrases = shipped_lexicon(filters.lang, "boilerplate") if filters.pair.boilerplate else []
        for file in filters.pair.boilerplate_files:
            phrases += read_lexicon(loaded.resolve(file))
        rules.append(BoilerplateRule(frozenset(compact(phrase) for phrase in phrases)))
    for side in ("query", "passage"):
        limits = getattr(filters, side)
        per_kind = {kind: (b.min_length, b.max_length) for kind, b in limits.per_kind.items()}
        rules.append(LengthRule(side, limits.min_length, limits.max_length, unit, per_kind))
    if filters.fragment_kinds and filters.fragment_below:
        rules.append(FragmentRule("passage", frozenset(filters.fragment_kinds), filters.fragment_below, unit))
    if filters.max_length_ratio is not None:
        rules.append(LengthRatioRule(filters.max_length_ratio, unit))
    for side in ("query", "passage"):  # before the CJK share, so mojibake and markup are named as such
        rules.append(NonTextRule(side, **filters.nontext.model_dump()))
    for side in ("query", "passage"):
        limits = getattr(filters, side)
        if limits.min_cjk_ratio is not None:
            rules.append(CjkRatioRule(side, limits.min_cjk_ratio, filters.short_min_cjk_ratio, filters.short_units))
    if filters.pii.action == "drop":
        rules.append(PiiRule(tuple(filters.pii.types)))
    if filters.malicious.enabled and filters.malicious.categories:
        lexicons = {}
        for name, category in filters.malicious.categories.items():
            words = shipped_lexicon(filters.lang, name) if category.shipped else []
            for file in category.files:
                words += read_lexicon(loaded.resolve(file))
            lexicons[name] = (category.action, words)
        rules.append(FlaggedWordsRule(lexicons, filters.lang))
    if filters.language.enabled:
        language = filters.language
        accept = tuple(language.accept or [filters.lang])
        script = ScriptStatistics(ja_min_kana_share=language.ja_min_kana_share,
                                  max_simplified_share=language.max_simplified_share,
                                  chinese_script=language.chinese_script)
        for side in language.sides:
            rules.append(LanguageRule(side, accept, language.min_score, language.min_length, script))
    return rules


def filters_for(loaded: LoadedConfig, source: str) -> FiltersConfig:
    """The filters a source's pairs get: its task's (LabeledRunConfig.filters_for: its own, or the top-level ones as
    sentence pairs need them for a similarity task) in a labeled run, the top-level ones otherwise."""
    config = loaded.config
    if isinstance(config, LabeledRunConfig) and any(s.name == source for s in config.sources):
        return config.filters_for(config.task_of(source))
    return config.filters


def rules_for(loaded: LoadedConfig, source: str) -> list:
    """The rules the general filter applies to a source's pairs (see filters_for)."""
    return general_rules(loaded, filters_for(loaded, source))
