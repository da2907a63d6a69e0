"""The labeled record: a query with its positive and negative passages, its task and instruction."""
from __future__ import annotations

import hashlib
from typing import NamedTuple, Optional

from cmtp.schemas.arrow import arrow_schema
from cmtp.schemas.coders import register_row_coder


class LabeledRecord(NamedTuple):
    id: str  # record_id(...) of its task, source, group, query and positives: the same input, the same id
    query: str
    pos: list[str]  # human-labeled relevant passages (entailed hypotheses, paraphrases), at least one
    neg: list[str]  # the dataset's own negatives first, then the mined ones
    instruction: Optional[str]  # the task's query instruction; applied to the query only at export
    task: str  # the dataset-level unit: shares a mining corpus, an instruction and an export file
    source: str  # registered source name, e.g. "t2ranking"
    file: str  # provenance of the record's first judgment ...
    position: str  # ... and where in that file
    origin_id: Optional[str] = None  # the query id in the source, or the premise's id
    mined: int = 0  # how many of `neg`, at its end, were mined
    mined_ranks: list[int] = []  # each mined negative's rank among the query's nearest corpus passages
    mined_scores: list[float] = []  # ... and its cosine to the query


def record_id(task: str, source: str, group: str, query: str, pos: list[str]) -> str:
    """A 16-hex-digit hash of the record's task, source, query group, query and positives."""
    digest = hashlib.blake2b(digest_size=8)
    for part in (task, source, group, query, *pos):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x1f")
    return digest.hexdigest()


LABELED_SCHEMA = arrow_schema(LabeledRecord)
register_row_coder(LabeledRecord)
