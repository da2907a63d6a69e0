"""The general filter's rules, built from the `filters:` section of a config, cheapest and most specific first."""
from __future__ import annotations

from typing import Optional

from cmtp.pipelines.config import FiltersConfig, LoadedConfig
from cmtp.transforms.filters.language import LanguageRule
from cmtp.transforms.filters.length import LengthRatioRule, LengthRule
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
        rules.append(SameTextRule())
    if filters.pair.boilerplate or filters.pair.boilerplate_files:
        phrases = shipped_lexicon(filters.lang, "boilerplate") if filters.pair.boilerplate else []
        for file in filters.pair.boilerplate_files:
            phrases += read_lexicon(loaded.resolve(file))
        rules.append(BoilerplateRule(frozenset(compact(phrase) for phrase in phrases)))
    for side in ("query", "passage"):
        limits = getattr(filters, side)
        per_kind = {kind: (b.min_length, b.max_length) for kind, b in limits.per_kind.items()}
        rules.append(LengthRule(side, limits.min_length, limits.max_length, unit, per_kind))
    if filters.max_length_ratio is not None:
        rules.append(LengthRatioRule(filters.max_length_ratio, unit))
    for side in ("query", "passage"):  # before the CJK share, so mojibake and markup are named as such
        rules.append(NonTextRule(side, **filters.nontext.model_dump()))
    for side in ("query", "passage"):
        limits = getattr(filters, side)
        if limits.min_cjk_ratio is not None:
            rules.append(CjkRatioRule(side, limits.min_cjk_ratio))
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
        accept = tuple(filters.language.accept or [filters.lang])
        for side in filters.language.sides:
            rules.append(LanguageRule(side, accept, filters.language.min_score, filters.language.min_length))
    return rules
