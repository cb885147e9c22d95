"""The textbook Fisher-Jenks programme, searching every first index of the last class for every
last index (O(k n^2)): what the engine's divide and conquer must agree with, and the baseline
of tests/benchmarks/bench_natural_breaks.py."""

import numpy as np


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
