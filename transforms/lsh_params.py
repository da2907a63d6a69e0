"""The MinHash LSH shape (bands, rows) for a Jaccard threshold, in pure Python.

The same choice as datasketch's `MinHashLSH` (`datasketch.lsh._optimal_param`): the (b, r) with b * r <= num_perm
minimizing the weighted areas of false positives (below the threshold) and false negatives (above it) under the
candidate curve 1 - (1 - s^r)^b. Loading a config derives it, and datasketch's version costs scipy's import.
"""
from __future__ import annotations

import math
from functools import lru_cache

FALSE_POSITIVE_WEIGHT, FALSE_NEGATIVE_WEIGHT = 0.1, 0.9


@lru_cache(maxsize=None)
def _gauss_legendre(n: int) -> tuple[tuple[float, float], ...]:
    """(node, weight) pairs of n-point Gauss-Legendre quadrature on [-1, 1]: exact for polynomials of degree up to
    2n - 1. Nodes by Newton's method on the Legendre recurrence."""
    half: list[tuple[float, float]] = []
    for i in range(n // 2):
        x = math.cos(math.pi * (i + 0.75) / (n + 0.5))
        for _ in range(100):
            value, slope = _legendre(n, x)
            step = value / slope
            x -= step
            if abs(step) <= 1e-16:
                break
        slope = _legendre(n, x)[1]
        half.append((x, 2.0 / ((1.0 - x * x) * slope * slope)))
    middle = [(0.0, 2.0 / _legendre(n, 0.0)[1] ** 2)] if n % 2 else []
    return tuple([(-x, w) for x, w in half] + middle + [(x, w) for x, w in reversed(half)])


def _legendre(n: int, x: float) -> tuple[float, float]:
    """P_n(x) and its derivative."""
    previous, value = 1.0, x
    for k in range(2, n + 1):
        previous, value = value, ((2 * k - 1) * x * value - (k - 1) * previous) / k
    return value, n * (x * value - previous) / (x * x - 1.0)


def _on(low: float, high: float, n: int) -> list[tuple[float, float]]:
    """The n-point rule moved onto [low, high]."""
    middle, half = (low + high) / 2, (high - low) / 2
    return [(middle + half * x, half * w) for x, w in _gauss_legendre(n)]


def lsh_shape(threshold: float, num_perm: int, false_positive_weight: float = FALSE_POSITIVE_WEIGHT,
              false_negative_weight: float = FALSE_NEGATIVE_WEIGHT) -> tuple[int, int]:
    """(bands, rows) minimizing false_positive_weight * (the area under the candidate curve below the threshold)
    + false_negative_weight * (the area above it beyond the threshold); the first minimum in datasketch's order
    (bands, then rows, ascending). Both integrands are polynomials of degree b * r <= num_perm, which a rule of
    num_perm // 2 + 1 points integrates exactly (up to rounding).

    Equal weights (datasketch's default) make only ~44% of pairs exactly at the threshold candidates
    (0.7, 128 permutations -> 14x9); 0.1/0.9 gives 20x6: ~92% at 0.7, ~100% at 0.8, and the extra
    candidates below the threshold are removed by verification.
    """
    points = num_perm // 2 + 1
    below, above = _on(0.0, threshold, points), _on(threshold, 1.0, points)
    best, least = (0, 0), math.inf
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            false_positive = sum(w * (1.0 - (1.0 - s ** rows) ** bands) for s, w in below)
            false_negative = sum(w * (1.0 - s ** rows) ** bands for s, w in above)
            error = false_positive * false_positive_weight + false_negative * false_negative_weight
            if error < least:
                best, least = (bands, rows), error
    return best
