"""Natural breaks the slow, obvious ways, for tests to compare the engine with: every split tried,
and the textbook Fisher-Jenks programme (every first index of the last class searched for every
last index, O(k n^2)), which is also the baseline of tests/benchmarks/bench_natural_breaks.py."""

import itertools
import math

import numpy as np


def brute_force_jenks(values, k):
    """Upper bounds of the k classes with the least within-class squared deviation, trying every split
    (the earliest split wins a tie)."""
    x = np.sort(np.asarray(values, dtype=float))
    best, best_bounds = math.inf, None
    for cuts in itertools.combinations(range(1, len(x)), k - 1):
        parts = np.split(x, cuts)
        cost = sum(((p - p.mean()) ** 2).sum() for p in parts)
        if cost < best - 1e-12:
            best, best_bounds = cost, [float(p[-1]) for p in parts]
    return best_bounds


def textbook_fisher_jenks(values, k):
    """The dynamic programme searching every first index of the last class for every last index: O(k n^2)."""
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    s1, s2 = np.concatenate([[0.0], np.cumsum(x)]), np.concatenate([[0.0], np.cumsum(x * x)])
    cost = np.full((k, n), np.inf)
    start = np.zeros((k, n), dtype=int)
    cost[0] = s2[1:] - s1[1:] ** 2 / np.arange(1, n + 1)
    for c in range(1, k):
        for j in range(c, n):
            firsts = np.arange(c, j + 1)
            total = s1[j + 1] - s1[firsts]
            candidates = cost[c - 1, firsts - 1] + ((s2[j + 1] - s2[firsts]) - total * total / (j - firsts + 1))
            best = int(np.argmin(candidates))
            cost[c, j], start[c, j] = candidates[best], firsts[best]
    bounds, last = [float(x[-1])], n - 1
    for c in range(k - 1, 0, -1):
        bounds.append(float(x[start[c, last] - 1]))
        last = start[c, last] - 1
    return bounds[::-1]
