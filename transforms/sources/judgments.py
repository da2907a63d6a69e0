"""What every labeled source provides: readers from its native files, by role, to relevance judgments.

A labeled dataset is either self-contained (NLI and paraphrase sets, RocketQA's DuReader tsv: each
row holds both texts and the label) or split into tables joined by id (T2Ranking, mMARCO, Multi-CPR,
cMedQA-v2: a corpus, the queries, and qrels or candidate lists between them). Each file plays a role:

- `rows`: self-contained rows; each gives judgments as `Pair`s with kind `positive` or `negative`;
- `queries` / `corpus`: lookup tables; each row gives a `Text` keyed by the dataset's id;
- `qrels` (and `triples`, `candidates`): judgments by id; each row gives `Link`s, resolved against
  the lookup tables later (transforms/judgments.py), where an id missing from them becomes a reject.

A judgment's `origin_id` is its group: the query id, or a stable key of the query's text, so the
judgments of one query are assembled into one record. A row that gives no judgment (an NLI
`neutral`, a grade between the cut-offs) raises ExtractError with the reason, and is a reject.
"""
from __future__ import annotations

import hashlib
import os
from typing import IO, Any, ClassVar, Iterator, NamedTuple, Union

from cmtp.schemas import Pair
from cmtp.transforms.sources.base import ExtractError, Source, SourceRecord
from cmtp.transforms.sources.layouts import Item, Parsed, iter_json_lines, iter_tsv
from cmtp.transforms.sources.records import only_objects

POSITIVE, NEGATIVE = "positive", "negative"
LOOKUP_ROLES = ("queries", "corpus")


class Text(NamedTuple):
    """A row of a lookup table: the text of a query or a passage, by the dataset's id."""

    source: str
    role: str  # "queries" or "corpus"
    key: str
    text: str
    file: str
    position: str


class Link(NamedTuple):
    """A judgment by ids: query `qid` is (kind) to passage `pid`."""

    source: str
    qid: str
    pid: str
    kind: str  # positive | negative
    file: str
    position: str


Judged = Union[Pair, Link, Text]


def text_key(text: str) -> str:
    """The group key of a query known only by its text."""
    return "t:" + hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


class LabeledSource(Source):
    """A labeled dataset in its published layouts. Subclasses set `roles` and `task_type`, and implement
    `parse_role` and `judge`."""

    task_type: ClassVar[str]  # "retrieval" or "similarity": picks the default instruction
    roles: ClassVar[dict[str, str]]  # role -> the layout its files are in (said when a file is not)
    kinds = (POSITIVE, NEGATIVE)
    # "directory": ids are unique only within a folder (Multi-CPR numbers each domain's passages from 0), so
    # a folder's qrels resolve against the tables in the same folder
    id_scope: ClassVar[str] = "source"

    @property
    def expected_layout(self) -> str:  # type: ignore[override]
        return "; ".join(f"{role}: {layout}" for role, layout in self.roles.items())

    def parse_role(self, role: str, path: str, stream: IO[bytes]) -> Iterator[Item]:
        raise NotImplementedError

    def judge(self, role: str, record: SourceRecord) -> list[Judged]:
        """The judgments (or the lookup text) the row gives; raises ExtractError when it gives none."""
        raise NotImplementedError

    def view(self, role: str) -> "RoleView":
        return RoleView(self, role)

    def judgment(self, record: SourceRecord, kind: str, query: str, passage: str, group: Any = None) -> Pair:
        """An inline judgment; its group is the given id, or the query's text."""
        group = text_key(query) if group in (None, "") else str(group)
        return self.pair(record, kind, query, passage, group)

    def scoped(self, record: SourceRecord, key: str) -> str:
        return f"{os.path.dirname(record.file)}:{key}" if self.id_scope == "directory" else key

    def link(self, record: SourceRecord, qid: Any, pid: Any, kind: str) -> Link:
        qid, pid = str(qid).strip(), str(pid).strip()
        if not qid or not pid:
            raise ExtractError("missing_id", f"query id {qid!r}, passage id {pid!r}")
        return Link(self.name, self.scoped(record, qid), self.scoped(record, pid), kind, record.file, record.position)

    def lookup(self, record: SourceRecord, role: str, key: Any, text: str) -> Text:
        key = str(key).strip()
        if not key:
            raise ExtractError("missing_id", f"a {role} row without an id")
        if not text:
            raise ExtractError("empty_text", f"{role} row {key!r} has no text")
        return Text(self.name, role, self.scoped(record, key), text, record.file, record.position)


class RoleView:
    """One role of a labeled source, shaped like a Source for the reader and the layout check."""

    def __init__(self, source: LabeledSource, role: str):
        self.source, self.role = source, role
        self.name = source.name
        self.expected_layout = f"{role}: {source.roles[role]}"

    def parse(self, path: str, stream: IO[bytes]) -> Iterator[Item]:
        return self.source.parse_role(self.role, path, stream)

    def extract(self, record: SourceRecord) -> list[Judged]:
        return self.source.judge(self.role, record)

    check = extract


def field_list(fields: Any, count: int, what: str) -> list[str]:
    """A tsv row's fields, exactly `count` of them, stripped; otherwise a `wrong_column_count` ExtractError."""
    if not isinstance(fields, list):
        raise ExtractError("not_a_row", f"expected tab-separated fields, got {type(fields).__name__}")
    if len(fields) != count:
        raise ExtractError("wrong_column_count", f"{len(fields)} fields; {what} has {count}")
    return [field.strip() for field in fields]


HEADER_WORDS = frozenset({"qid", "pid", "id", "query_id", "question_id", "ans_id", "docid", "sentence1", "s1", "text1"})


def iter_table(stream: IO[bytes], whitespace: bool = False) -> Iterator[Item]:
    """Rows of a tsv (or, with `whitespace`, of a TREC-style space-separated file) as field lists; a first
    line that is a header (`qid\\tpid\\trel`, `id\\tsentence1...`) is skipped."""
    for item in iter_tsv(stream):
        if isinstance(item, Parsed):
            fields = item.value[0].split() if whitespace and len(item.value) == 1 else item.value
            if item.position == "line 1" and fields and fields[0].strip().lower() in HEADER_WORDS:
                continue
            item = Parsed(item.position, fields)
        yield item


def iter_rows(stream: IO[bytes]) -> Iterator[Item]:
    """Self-contained rows: JSON lines of objects when the file starts with `{`, else tsv rows."""
    if stream.peek(64).lstrip()[:1] == b"{":
        return only_objects(iter_json_lines(stream))
    return iter_table(stream)


class TableSource(LabeledSource):
    """A dataset of id-keyed tables: tsv lookups `id \\t text` for `queries` and `corpus`, and judgment tables
    whose rows subclasses read in `judge_row`."""

    whitespace_roles: ClassVar[tuple[str, ...]] = ()  # roles whose files may be space-separated (TREC qrels)

    def parse_role(self, role: str, path: str, stream: IO[bytes]) -> Iterator[Item]:
        return iter_table(stream, whitespace=role in self.whitespace_roles)

    def judge(self, role: str, record: SourceRecord) -> list[Judged]:
        if role in LOOKUP_ROLES:
            key, text = field_list(record.fields, 2, f"a {role} row (id, text)")
            return [self.lookup(record, role, key, text)]
        return self.judge_row(role, record)

    def judge_row(self, role: str, record: SourceRecord) -> list[Judged]:
        raise NotImplementedError
