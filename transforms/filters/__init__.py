"""General filtering: small rules, each answering keep or drop-with-a-reason, applied by GeneralFilter.

Rule sets live one per module: length, nontext (markup, URLs, symbols, CJK share, mojibake,
repetition), pair (identical sides, boilerplate), lexicon (flagged words), language (fastText
language ID). PII masking is its own transform (pii.py), run before the rules.
"""
from cmtp.transforms.filters.base import Drop, GeneralFilter, Rule

__all__ = ["Drop", "GeneralFilter", "Rule"]
