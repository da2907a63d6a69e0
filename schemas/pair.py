"""The unlabeled pair: one (query, passage) training example and where it came from."""
from __future__ import annotations

import hashlib
from typing import NamedTuple, Optional

from cmtp.schemas.arrow import arrow_schema
from cmtp.schemas.coders import register_row_coder


class Pair(NamedTuple):
    id: str  # stable content hash: pair_id(source, kind, query, passage) at extraction
    query: str
    passage: str
    source: str  # registered source name, e.g. "wudao"
    kind: str  # how the pair was mined: title_body, question_answer, ...
    file: str  # provenance: the input file ...
    position: str  # ... and where in it ("record 3", "line 12", "data[0].paragraphs[2].qas[1]")
    origin_id: Optional[str] = None  # the record's own id in the source, where it has one
    score: Optional[float] = None  # semantic-filter cosine, once scored
    scorer: Optional[str] = None  # which model produced the score
    rank: Optional[int] = None  # consistency mode: 1 + the pool passages that outscored this one for its query
    margin: Optional[float] = None  # consistency mode: this passage's score minus the best pool passage's
    flags: Optional[str] = None  # kept-but-flagged rules, "reason:detail;..." (e.g. abuse set to flag)
    generator: Optional[str] = None  # for generated queries: which generator wrote the query


def pair_id(source: str, kind: str, query: str, passage: str) -> str:
    """A 16-hex-digit hash of the pair's content: the same input always gets the same id."""
    digest = hashlib.blake2b(digest_size=8)
    for part in (source, kind, query, passage):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x1f")
    return digest.hexdigest()


PAIR_SCHEMA = arrow_schema(Pair)
register_row_coder(Pair)
