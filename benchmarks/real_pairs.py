"""Real texts from ../shared/data for the benchmarks and the filter audit, read in place: CSL (title, abstract),
CMRC 2018 (question, context), DuReader web paragraphs by location, and English sentences."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def csl_pairs() -> list[tuple[str, str]]:
    """(title, abstract) for each line of the CSL title-generation dev set."""
    pairs = []
    for line in (SHARED / "csl" / "ts_dev.tsv").read_text("utf-8").splitlines():
        _, abstract, title = line.split("\t")
        pairs.append((title, abstract))
    return pairs


def cmrc_pairs(every_question: bool = False) -> list[tuple[str, str]]:
    """(question, context) for the first question of each CMRC paragraph, or for every question."""
    squad = json.loads((SHARED / "cmrc2018" / "squad-style" / "cmrc2018_trial.json").read_text("utf-8"))
    return [(qa["question"], paragraph["context"]) for article in squad["data"] for paragraph in article["paragraphs"]
            for qa in (paragraph["qas"] if every_question else paragraph["qas"][:1])]


@lru_cache(maxsize=4)
def _json_lines(path: Path) -> tuple[str, ...]:
    """A JSON-lines file's lines, read once: the DuReader dev set is read for many paragraphs."""
    return tuple(path.read_text("utf-8").splitlines())


def dureader_paragraph(line: int, document: int, paragraph: int, shared: Path = SHARED) -> str:
    """`documents[document].paragraphs[paragraph]` of JSON line `line` (1-based) of dureader/search.dev.json: web
    page paragraphs as Baidu Search found them, ads and page furniture included."""
    record = json.loads(_json_lines(shared / "dureader" / "search.dev.json")[line - 1])
    return record["documents"][document]["paragraphs"][paragraph]


def english_sentences(shared: Path = SHARED) -> list[str]:
    """The English sentences of FlagEmbedding's toy fine-tuning set (queries, positives, negatives), in file order."""
    sentences = []
    for line in _json_lines(shared / "flagembedding" / "toy_finetune_data.jsonl"):
        record = json.loads(line)
        sentences += [record["query"], *record["pos"], *record["neg"]]
    return [sentence.strip() for sentence in sentences if sentence.strip()]
