"""A labeled near-duplicate set built at test time from real passages in ../shared/data (read in place).

Positives: a real passage and an edited copy, the edits people and pipelines make:
  - punctuation and whitespace changed (full/half width, spaces inserted, a comma for a full stop),
  - written in Traditional characters (OpenCC s2t),
  - web boilerplate appended ("本文来源于网络..."),
  - one sentence replaced by a sentence of another passage (only for passages of 5+ sentences,
    so the copy still shares most of its text).
Negatives: two different passages on the same topic: paragraphs of the same CMRC article, documents
retrieved for the same DuReader question, CSL abstracts on adjacent lines of the same file.
Every item is (a, b, is_duplicate, how); the set is the same on every run (seeded).
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

import opencc

BOILERPLATE = ("本文来源于网络，如有侵权请联系删除。", "更多精彩内容请关注我们的公众号。", "（完）", "责任编辑：王明",
               "欢迎转发分享，转载请注明出处。")
_SENTENCE = re.compile(r"(?<=[。！？!?])")


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text) if s.strip()]


def real_passages(shared: Path) -> dict[str, list]:
    csl = [line.split("\t")[1] for line in (shared / "csl" / "ts_dev.tsv").read_text("utf-8").splitlines()]
    squad = json.loads((shared / "cmrc2018" / "squad-style" / "cmrc2018_trial.json").read_text("utf-8"))
    articles = [[p["context"] for p in article["paragraphs"]] for article in squad["data"]]
    dureader = []
    for line in (shared / "dureader" / "search.dev.json").read_text("utf-8").splitlines():
        docs = json.loads(line)["documents"]
        dureader.append([" ".join(d["paragraphs"])[:600] for d in docs if len(" ".join(d["paragraphs"])) >= 80])
    return {"csl": csl, "cmrc": articles, "dureader": dureader}


def edit(text: str, how: str, rng: random.Random, other: str, s2t) -> str:
    if how == "punctuation":
        out = text.replace("，", ",").replace("。", "。 ").replace("、", ",")
        out = out.replace(",", "，", 1) if "," in out else out + " "
        return "  " + out.replace("；", ";")
    if how == "traditional":
        return s2t.convert(text)
    if how == "boilerplate":
        return text + rng.choice(BOILERPLATE)
    parts, replacement = sentences(text), sentences(other)
    parts[rng.randrange(len(parts))] = rng.choice(replacement)
    return "".join(parts)


def build(shared: Path, seed: int = 7) -> list[tuple[str, str, bool, str]]:
    rng = random.Random(seed)
    s2t = opencc.OpenCC("s2t")
    data = real_passages(shared)
    singles = data["csl"] + [p for a in data["cmrc"] for p in a] + [d for q in data["dureader"] for d in q]
    singles = [p for p in singles if len(p) >= 60]
    items = []
    for i, text in enumerate(singles):
        hows = ["punctuation", "traditional", "boilerplate"]
        if len(sentences(text)) >= 5:
            hows.append("sentence")
        for how in (hows[i % len(hows)], hows[(i + 1) % len(hows)]):  # two different edits of each passage
            items.append((text, edit(text, how, rng, singles[(i * 7 + 3) % len(singles)], s2t), True, how))
    for article in data["cmrc"]:
        items += [(a, b, False, "same_article") for a, b in zip(article, article[1:])]
    for documents in data["dureader"]:
        items += [(a, b, False, "same_question") for a, b in zip(documents, documents[1:]) if a != b]
    items += [(a, b, False, "adjacent_abstract") for a, b in zip(data["csl"][::2], data["csl"][1::2])]
    return items
