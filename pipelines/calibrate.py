"""`cmtp calibrate`: how well a scorer separates labeled pairs, and which threshold meets a target.

Reads NLI-zh-style labeled pairs (tsv `s1, s2, label`, or columns named by a header row, or JSON lines with
sentence1/sentence2 or text1/text2 and label), scores them with a backend, and reports ROC-AUC, average
precision, and accuracy / precision / recall / F1 / retention at candidate thresholds. Labels: 1 is a
match, 0 not; an STS-B score 0-5 is a match from 4 up; entailment/neutral/contradiction map to 1/0/0.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from cmtp.transforms.embedders import load_embedder
from cmtp.transforms.normalize import normalize_text
from cmtp.transforms.scoring import cosine_scores

_NLI = {"entailment": 1, "neutral": 0, "contradiction": 0}


def _label(raw: object, graded: bool) -> Optional[int]:
    text = str(raw).strip().lower()
    if text in _NLI:
        return _NLI[text]
    try:
        value = float(text)
    except ValueError:
        return None  # a header row, or "-" (no gold label)
    return int(value >= 4) if graded else int(value >= 1)


def read_labeled(path: str | Path, limit: Optional[int] = None) -> tuple[list[str], list[str], np.ndarray]:
    """(first sentences, second sentences, 0/1 labels) of a labeled file; unlabeled rows are skipped."""
    path = Path(path)
    lines = path.read_text("utf-8").splitlines()
    rows = []
    if path.suffix in (".jsonl", ".json"):
        for line in lines:
            record = json.loads(line)
            rows.append((record.get("sentence1", record.get("text1", "")), record.get("sentence2", record.get("text2", "")),
                         record.get("label")))
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
        if label is not None and s1 and s2:
            a.append(normalize_text(s1))
            b.append(normalize_text(s2))
            labels.append(label)
    if limit:
        a, b, labels = a[:limit], b[:limit], labels[:limit]
    return a, b, np.array(labels, dtype=np.int8)


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


def at_threshold(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    kept = scores >= threshold
    tp = int((kept & (labels == 1)).sum())
    fp = int((kept & (labels == 0)).sum())
    fn = int((~kept & (labels == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {"threshold": round(float(threshold), 4), "accuracy": round(float((kept == (labels == 1)).mean()), 4),
            "precision": round(precision, 4), "recall": round(recall, 4),
            "f1": round(2 * precision * recall / (precision + recall) if precision + recall else 0.0, 4),
            "retention": round(float(kept.mean()), 4)}


def calibrate(paths: Sequence[str], backend: str, settings: dict, target_precision: Optional[float] = None,
              limit: Optional[int] = None, slice_size: int = 64) -> dict:
    a, b, labels = [], [], []
    for path in paths:
        x, y, z = read_labeled(path, limit)
        a, b, labels = a + x, b + y, labels + list(z)
    labels = np.array(labels, dtype=np.int8)
    embedder = load_embedder(backend, **settings)
    scores = cosine_scores(embedder, a, b, slice_size)
    candidates = np.round(np.quantile(scores, np.linspace(0.05, 0.95, 19)), 4)
    report = {
        "scorer": embedder.name, "pairs": len(labels), "matches": int(labels.sum()),
        "roc_auc": round(roc_auc(scores, labels), 4), "average_precision": round(average_precision(scores, labels), 4),
        "score_quantiles": {f"p{q}": round(float(np.quantile(scores, q / 100)), 4) for q in (5, 25, 50, 75, 95)},
        "thresholds": [at_threshold(scores, labels, t) for t in sorted(set(candidates))],
    }
    if target_precision is not None:
        meeting = [t for t in np.unique(scores) if at_threshold(scores, labels, t)["precision"] >= target_precision]
        best = min(meeting) if meeting else None
        report["suggested"] = at_threshold(scores, labels, best) if best is not None else None
        report["target_precision"] = target_precision
    return report


def table(report: dict) -> str:
    lines = [f"{report['scorer']}: {report['pairs']} pairs ({report['matches']} matches), ROC-AUC {report['roc_auc']}, "
             f"average precision {report['average_precision']}",
             "threshold  accuracy  precision  recall     f1  retention"]
    for row in report["thresholds"]:
        lines.append(f"{row['threshold']:9.4f}  {row['accuracy']:8.4f}  {row['precision']:9.4f}  {row['recall']:6.4f}  "
                     f"{row['f1']:5.4f}  {row['retention']:9.4f}")
    if "suggested" in report:
        s = report["suggested"]
        lines.append(f"suggested threshold for precision >= {report['target_precision']}: "
                     + (f"{s['threshold']} (recall {s['recall']}, retention {s['retention']})" if s else "none reaches it"))
    return "\n".join(lines)
