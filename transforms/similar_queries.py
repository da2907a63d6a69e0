"""(question, similar question) pairs: questions of one source that share an answer.

Answers are keyed after normalization with punctuation, spaces and case removed, so a copied answer
matches its copy. Each group of distinct questions gives a chain of pairs (q1, q2), (q2, q3), ...
in sorted order. A group with more distinct questions than the source's `max_similar_group` is
boilerplate ("谢谢邀请") and gives none; only that many questions are ever held per group.
"""
from __future__ import annotations

import hashlib
import re
from typing import Mapping

import apache_beam as beam

from cmtp.schemas import Pair, pair_id
from cmtp.transforms.report import STATS, stat

_NOT_WORD = re.compile(r"[\W_]+")
KIND = "similar_question"


def answer_key(answer: str) -> bytes:
    return hashlib.blake2b(_NOT_WORD.sub("", answer.lower()).encode("utf-8"), digest_size=16).digest()


class _Chain(beam.DoFn):
    def __init__(self, max_group: Mapping[str, int]):
        self._max_group = dict(max_group)

    def process(self, element):
        (source, _), pairs = element
        limit = self._max_group[source]
        questions: dict[str, Pair] = {}
        for pair in pairs:
            known = questions.get(pair.query)
            if known is None or pair.id < known.id:  # the same question twice: keep one, deterministically
                questions[pair.query] = pair
            if len(questions) > limit:
                return
        ordered = [questions[query] for query in sorted(questions)]
        for first, second in zip(ordered, ordered[1:]):
            yield Pair(id=pair_id(source, KIND, first.query, second.query), query=first.query, passage=second.query,
                       source=source, kind=KIND, file=second.file, position=second.position,
                       origin_id=f"{first.id},{second.id}")
        if len(ordered) > 1:
            yield stat(source, "pairs_made", len(ordered) - 1)


class DeriveSimilarQuestions(beam.PTransform):
    """question_answer pairs -> similar_question pairs (main) and their count (`stats`), for the given sources
    (source name -> max_similar_group)."""

    def __init__(self, max_group: Mapping[str, int]):
        super().__init__()
        self._max_group = dict(max_group)

    def expand(self, pairs):
        sources = self._max_group
        return (
            pairs
            | "QuestionAnswers" >> beam.Filter(lambda p: p.kind == "question_answer" and p.source in sources)
            | "ByAnswer" >> beam.Map(lambda p: ((p.source, answer_key(p.passage)), p))
            | "Group" >> beam.GroupByKey()
            | "Chain" >> beam.ParDo(_Chain(sources)).with_outputs(STATS, main="pairs")
        )
