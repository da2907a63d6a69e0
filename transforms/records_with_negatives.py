"""Labeled records -> the same records with mined hard negatives appended, from their task's own corpus.

The corpus of a task is every distinct passage of its records (positives and given negatives) plus the
texts of its sources' `corpus` files (T2Ranking's collection, dureader.para). Passages and queries are
embedded in batches by the configured backend (loaded once per worker), `MineNegatives`
(transforms/negative_search.py) picks each record's negatives by exact blocked top-k, and the picks are joined
back to their texts and records by id. A record never gets one of its positives, its own query, a
negative it already has, or a near-copy of a positive.
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Iterable, Mapping

import apache_beam as beam
import numpy as np
from apache_beam.utils import shared

from cmtp.schemas import LabeledRecord
from cmtp.transforms.embedders import Embedder, load_embedder
from cmtp.transforms.negative_search import CorpusItem, Mined, MineNegatives, MiningQuery
from cmtp.transforms.report import STATS
from cmtp.transforms.scoring import encode_sorted

if TYPE_CHECKING:
    from cmtp.pipelines.config import MiningConfig


def text_id(text: str) -> str:
    """A passage's corpus id within its task: a hash of its (normalized) text."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


class _Embed(beam.DoFn):
    """Batches of (key, role, text) -> (key, role, vector): each role's texts encoded together, shortest first."""

    def __init__(self, backend: str, settings: Mapping[str, object], slice_size: int):
        self._backend, self._settings, self._slice_size = backend, dict(settings), slice_size
        self._handle = shared.Shared()
        self._embedder: Embedder | None = None

    def setup(self):
        self._embedder = self._handle.acquire(lambda: load_embedder(self._backend, **self._settings))

    def process(self, batch: list[tuple[object, str, str]]):
        for role in ("query", "passage"):
            items = [item for item in batch if item[1] == role]
            if items:
                vectors, self._slice_size = encode_sorted(self._embedder, [text for _, _, text in items], role,
                                                          self._slice_size)
                for (key, _, _), vector in zip(items, vectors):
                    yield key, role, vector


def _query_parts(record: LabeledRecord) -> Iterable[tuple[object, str, str]]:
    yield (record.id, -1), "query", record.query
    for i, passage in enumerate(record.pos):
        yield (record.id, i), "passage", passage


class _ToMiningQuery(beam.DoFn):
    def process(self, element):
        qid, grouped = element
        (record,) = grouped["record"]
        vectors = dict(grouped["vectors"])
        dim = vectors[-1].shape[0]
        positives = np.stack([vectors[i] for i in range(len(record.pos))]) if record.pos \
            else np.zeros((0, dim), np.float32)
        exclude = tuple(sorted({text_id(t) for t in (record.query, *record.pos, *record.neg)}))
        yield MiningQuery(record.task, qid, vectors[-1], positives, exclude)


class _Attach(beam.DoFn):
    def __init__(self, per_record: int):
        self._per_record = per_record

    def process(self, element):
        _, grouped = element
        (record,) = grouped["record"]
        picks = sorted(grouped["picks"])  # (rank, score, text)
        if len(picks) < self._per_record:
            yield beam.pvalue.TaggedOutput(STATS, (("negatives_short", record.source, "", ""), 1))
        yield beam.pvalue.TaggedOutput(STATS, (("negatives_mined", record.source, "", ""), len(picks)))
        yield record._replace(neg=[*record.neg, *(text for _, _, text in picks)], mined=len(picks),
                              mined_ranks=[rank for rank, _, _ in picks],
                              mined_scores=[round(score, 6) for _, score, _ in picks])


class MineHardNegatives(beam.PTransform):
    """{"records": LabeledRecords, "corpus": (task, text) extra passages} -> records with mined negatives (main) and
    counts (`stats`). Records of tasks not in `tasks` pass through unchanged. `mining` is the config's `negatives`
    section: the backend and its settings, batch sizes, per_record, rank_range, the ceiling on similarity to a
    positive, seed and block sizes."""

    def __init__(self, mining: "MiningConfig", tasks: Iterable[str]):
        super().__init__()
        self._tasks = frozenset(tasks)
        self._embed = _Embed(mining.backend, mining.settings(), mining.slice_size)
        self._batch = dict(min_batch_size=mining.min_batch_size, max_batch_size=mining.max_batch_size)
        low, high = mining.rank_range
        self._mine = MineNegatives(low, high, mining.per_record, mining.max_similarity_to_positive, mining.seed,
                                   mining.query_block, mining.corpus_block)
        self._per_record = mining.per_record

    def expand(self, inputs):
        tasks = self._tasks
        records = inputs["records"]
        mined_records = records | "ToMine" >> beam.Filter(lambda r: r.task in tasks)
        passed = records | "NotMined" >> beam.Filter(lambda r: r.task not in tasks)

        def record_passages(record: LabeledRecord):
            for text in (*record.pos, *record.neg):
                yield record.task, text

        corpus_texts = (
            (mined_records | "Passages" >> beam.FlatMap(record_passages),
             inputs["corpus"] | "OfMinedTasks" >> beam.Filter(lambda item: item[0] in tasks))
            | "AllPassages" >> beam.Flatten()
            | "ById" >> beam.Map(lambda item: ((item[0], text_id(item[1])), item[1]))
            | "Distinct" >> beam.CombinePerKey(min)
        )
        corpus = (
            corpus_texts
            | "PassageItems" >> beam.Map(lambda kv: (kv[0], "passage", kv[1]))
            | "BatchPassages" >> beam.BatchElements(**self._batch)
            | "EmbedPassages" >> beam.ParDo(self._embed)
            | "CorpusItems" >> beam.Map(lambda kv: CorpusItem(kv[0][0], kv[0][1], kv[2]))
        )
        query_vectors = (
            mined_records
            | "QueryParts" >> beam.FlatMap(_query_parts)
            | "BatchQueries" >> beam.BatchElements(**self._batch)
            | "EmbedQueries" >> beam.ParDo(self._embed)
            | "ByRecord" >> beam.Map(lambda kv: (kv[0][0], (kv[0][1], kv[2])))
        )
        by_id = mined_records | "RecordById" >> beam.Map(lambda r: (r.id, r))
        queries = (
            {"record": by_id, "vectors": query_vectors}
            | "JoinVectors" >> beam.CoGroupByKey()
            | "MiningQueries" >> beam.ParDo(_ToMiningQuery())
        )
        mined = {"queries": queries, "corpus": corpus} | "Mine" >> self._mine

        def picks(result: Mined):
            for rank, score, cid in result.negatives:
                yield (result.task, cid), (result.qid, rank, score)

        def with_text(element):
            _, grouped = element
            (text,) = grouped["text"]
            for qid, rank, score in grouped["picks"]:
                yield qid, (rank, score, text)

        texts = (
            {"picks": mined | "Picks" >> beam.FlatMap(picks), "text": corpus_texts}
            | "JoinTexts" >> beam.CoGroupByKey()
            | "PickTexts" >> beam.FlatMap(with_text)
        )
        attached = (
            {"record": by_id, "picks": texts}
            | "JoinPicks" >> beam.CoGroupByKey()
            | "Attach" >> beam.ParDo(_Attach(self._per_record)).with_outputs(STATS, main="records")
        )
        records_out = (attached.records, passed) | "AllRecords" >> beam.Flatten()
        return {"records": records_out, "stats": attached[STATS]}
