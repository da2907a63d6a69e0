"""Labeled rows -> relevance judgments -> one record per query.

- `JudgeRows`: each parsed row (with its role) -> inline judgments (`Pair`s of kind positive/negative),
  id links, or lookup texts; a row that gives none is a reject (stage `extract`).
- `ResolveLinks`: links joined with the queries and the corpus by id (two shuffles keyed by id, so no
  worker holds a table); an id missing from its table is a reject (stage `resolve`), never a crash
  and never an empty text.
- `AssembleRecords`: a query's judgments (same source and group) -> a `LabeledRecord` with its task
  and instruction. Repeated judgments, negatives equal to a positive, and negatives of a query left
  with no positive are rejects (stage `assemble`), so every judgment is accounted for.
"""
from __future__ import annotations

from typing import Mapping, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from cmtp.schemas import LabeledRecord, Pair, Reject, pair_id, record_id
from cmtp.transforms.extract import extract_reject
from cmtp.transforms.report import STATS, CountingDoFn
from cmtp.transforms.sources import ExtractError, SourceRecord
from cmtp.transforms.sources.judgments import NEGATIVE, POSITIVE, LabeledSource, Link, Text

REJECTS = "rejects"
LINKS, TEXTS = "links", "texts"


class _Judge(CountingDoFn):
    def __init__(self, sources: Mapping[str, LabeledSource]):
        self._sources = dict(sources)

    def process(self, element: tuple[str, SourceRecord]):
        role, record = element
        try:
            judged = self._sources[record.source].judge(role, record)
        except ExtractError as error:
            yield extract_reject(record, error)
            return
        if judged and isinstance(judged[0], Text):
            self.count(record.source, "texts_parsed", len(judged))
        else:
            self.count(record.source, "rows_with_judgments")
            self.count(record.source, "judgments_made", len(judged))
        for item in judged:
            if isinstance(item, Pair):
                yield item
            else:
                yield beam.pvalue.TaggedOutput(LINKS if isinstance(item, Link) else TEXTS, item)


class JudgeRows(beam.PTransform):
    """(role, record) -> inline judgments (main), `links`, lookup `texts`, `rejects` and `stats`."""

    def __init__(self, sources: Mapping[str, LabeledSource]):
        super().__init__()
        self._sources = sources

    def expand(self, records):
        return records | beam.ParDo(_Judge(self._sources)).with_outputs(LINKS, TEXTS, REJECTS, STATS,
                                                                       main="judgments")


def _link_reject(link: Link, reason: str, detail: str) -> Reject:
    return Reject(id=pair_id(link.source, link.kind, link.qid, link.pid), source=link.source, stage="resolve",
                  reason=reason, detail=detail, file=link.file, position=link.position, kind=link.kind,
                  text=f"qid {link.qid}, pid {link.pid}")


def _first(texts) -> Optional[Text]:
    """The table's text for an id; an id listed twice takes its first row (by file and position)."""
    return min(texts, key=lambda t: (t.file, t.position), default=None)


class _WithQuery(beam.DoFn):
    def process(self, element):
        (source, qid), grouped = element
        query = _first(grouped["texts"])
        for link in grouped["links"]:
            if query is None:
                yield beam.pvalue.TaggedOutput(REJECTS, _link_reject(
                    link, "query_not_found", f"query id {qid} is not in the queries files"))
            else:
                yield (source, link.pid), (link, query.text)


class _WithPassage(beam.DoFn):
    def process(self, element):
        (source, pid), grouped = element
        passage = _first(grouped["texts"])
        for link, query in grouped["links"]:
            if passage is None:
                yield beam.pvalue.TaggedOutput(REJECTS, _link_reject(
                    link, "passage_not_in_corpus", f"passage id {pid} is not in the corpus files"))
            else:
                yield Pair(id=pair_id(source, link.kind, query, passage.text), query=query, passage=passage.text,
                           source=source, kind=link.kind, file=link.file, position=link.position,
                           origin_id=link.qid)


class ResolveLinks(beam.PTransform):
    """{"links", "texts"} -> judgments with both texts (main) and unresolvable links (`rejects`)."""

    def expand(self, inputs):
        links, texts = inputs["links"], inputs["texts"]
        queries = (texts | "Queries" >> beam.Filter(lambda t: t.role == "queries")
                   | "ByQid" >> beam.Map(lambda t: ((t.source, t.key), t)))
        corpus = (texts | "Corpus" >> beam.Filter(lambda t: t.role == "corpus")
                  | "ByPid" >> beam.Map(lambda t: ((t.source, t.key), t)))
        with_query = (
            {"links": links | "LinkByQid" >> beam.Map(lambda link: ((link.source, link.qid), link)),
             "texts": queries}
            | "JoinQueries" >> beam.CoGroupByKey()
            | "Query" >> beam.ParDo(_WithQuery()).with_outputs(REJECTS, main="links")
        )
        resolved = (
            {"links": with_query.links, "texts": corpus}
            | "JoinCorpus" >> beam.CoGroupByKey()
            | "Passage" >> beam.ParDo(_WithPassage()).with_outputs(REJECTS, main="judgments")
        )
        rejects = (with_query.rejects, resolved.rejects) | "Rejects" >> beam.Flatten()
        return {"judgments": resolved.judgments, "rejects": rejects}


def _assemble_reject(pair: Pair, reason: str, detail: str) -> beam.pvalue.TaggedOutput:
    Metrics.counter("assemble", reason).inc()
    return beam.pvalue.TaggedOutput(REJECTS, Reject(
        id=pair.id, source=pair.source, stage="assemble", reason=reason, detail=detail, file=pair.file,
        position=pair.position, kind=pair.kind, query=pair.query, passage=pair.passage))


class _Assemble(beam.DoFn):
    def __init__(self, tasks: Mapping[str, str], instructions: Mapping[str, Optional[str]]):
        self._tasks, self._instructions = dict(tasks), dict(instructions)

    def process(self, element):
        (source, group), judgments = element
        judgments = sorted(judgments, key=lambda p: (p.kind != POSITIVE, p.file, p.position, p.id))
        query = judgments[0].query
        pos: list[str] = []
        neg: list[str] = []
        first = judgments[0]
        for pair in judgments:
            if pair.query != query:
                yield _assemble_reject(pair, "query_mismatch", f"group {group} has query {query[:40]!r}")
            elif pair.kind == POSITIVE:
                if pair.passage in pos:
                    yield _assemble_reject(pair, "duplicate_judgment", "the query already has this positive")
                else:
                    pos.append(pair.passage)
            elif not pos:
                yield _assemble_reject(pair, "no_positive", "the query has no positive left to pair with")
            elif pair.passage in pos:
                yield _assemble_reject(pair, "negative_is_positive", "the passage is also judged a positive")
            elif pair.passage in neg:
                yield _assemble_reject(pair, "duplicate_judgment", "the query already has this negative")
            else:
                neg.append(pair.passage)
        if not pos:
            return
        task = self._tasks[source]
        yield LabeledRecord(
            id=record_id(task, source, group, query, pos), query=query, pos=pos, neg=neg,
            instruction=self._instructions.get(task), task=task, source=source, file=first.file,
            position=first.position, origin_id=group)


class AssembleRecords(beam.PTransform):
    """Cleaned judgments -> one `LabeledRecord` per (source, query group) (main) and the judgments that do not
    fit into one (`rejects`). `tasks` maps source -> task, `instructions` task -> instruction."""

    def __init__(self, tasks: Mapping[str, str], instructions: Mapping[str, Optional[str]]):
        super().__init__()
        self._tasks, self._instructions = tasks, instructions

    def expand(self, judgments):
        return (
            judgments
            | "ByQuery" >> beam.Map(lambda pair: ((pair.source, pair.origin_id), pair))
            | "Group" >> beam.GroupByKey()
            | "Assemble" >> beam.ParDo(_Assemble(self._tasks, self._instructions)).with_outputs(
                REJECTS, STATS, main="records")
        )


__all__ = ["AssembleRecords", "JudgeRows", "ResolveLinks", "NEGATIVE", "POSITIVE"]
