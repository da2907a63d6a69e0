"""The reject record: an input record or a pair that did not make it, with the stage and reason."""
from __future__ import annotations

from typing import NamedTuple, Optional

from cmtp.schemas.arrow import arrow_schema
from cmtp.schemas.coders import register_row_coder


class Reject(NamedTuple):
    id: str  # the pair's id, or for an unreadable record a hash of its location
    source: str
    stage: str  # read, extract, generate, resolve, filter, dedup, semantic, assemble
    reason: str  # machine-readable, e.g. invalid_json, empty_query, near_duplicate
    detail: str  # human-readable specifics: the parser message, the measured value, the survivor's id
    file: str
    position: str
    kind: Optional[str] = None
    query: Optional[str] = None  # the text involved, once there is a pair
    passage: Optional[str] = None
    text: Optional[str] = None  # the raw snippet, for records that did not parse
    score: Optional[float] = None  # semantic: the cosine
    rank: Optional[int] = None  # semantic, consistency mode: the passage's rank for its query in the pool
    margin: Optional[float] = None  # semantic, consistency mode: its score minus the best pool passage's
    survivor: Optional[str] = None  # dedup: the id of the pair kept in its place; None when that pair was dropped


REJECT_SCHEMA = arrow_schema(Reject)
register_row_coder(Reject)
