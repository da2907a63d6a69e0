"""Real (query, passage) pairs from ../shared/data for the benchmarks, read in place: CSL (title, abstract) and
CMRC 2018 (question, context)."""
from __future__ import annotations

import json
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
