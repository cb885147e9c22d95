"""Natural breaks: the exact Fisher-Jenks optimum, as the full dynamic programme and a search of every split find it."""

import numpy as np
import pytest

from canopy_explorer.plugin.core.natural_breaks import BreaksSample, fisher_jenks
from natural_breaks_reference import brute_force_jenks, textbook_fisher_jenks


def class_cost(values, bounds):
    x = np.sort(np.asarray(values, dtype=float))
    edges = np.searchsorted(x, bounds, side="right")
    return sum(((p - p.mean()) ** 2).sum() for p in np.split(x, edges[:-1]) if len(p))


@pytest.mark.parametrize("seed", range(12))
def test_breaks_are_the_optimum_found_by_trying_every_split(seed):
    rng = np.random.default_rng(seed)
    values = np.round(rng.gamma(2.0, 5.0, size=int(rng.integers(6, 13))), 1)  # rounding makes ties
    k = int(rng.integers(2, 5))
    if len(np.unique(values)) <= k:
        pytest.skip("fewer distinct values than classes")
    assert fisher_jenks(values, k) == pytest.approx(brute_force_jenks(values, k), abs=1e-12)


@pytest.mark.parametrize("kind", ["gamma, rounded", "six values, many ties", "three clusters", "uniform, 2 decimals"])
def test_divide_and_conquer_gives_the_breaks_of_the_full_search(kind):
    rng = np.random.default_rng(len(kind))
    for _ in range(25):
        n, k = int(rng.integers(20, 600)), int(rng.integers(2, 12))
        values = {"gamma, rounded": lambda: np.round(rng.gamma(2, 8, n), 1),
                  "six values, many ties": lambda: rng.integers(0, 6, n).astype(float),
                  "three clusters": lambda: np.concatenate([rng.normal(m, 1, n) for m in (0, 10, 30)]),
                  "uniform, 2 decimals": lambda: np.round(rng.uniform(-1, 1, n), 2)}[kind]()
        if len(np.unique(values)) > k:
            assert fisher_jenks(values, k) == textbook_fisher_jenks(values, k)


def test_the_breaks_cost_no_more_than_any_nearby_classification():
    values = np.random.default_rng(5).lognormal(2.5, 0.6, 3000)
    bounds = fisher_jenks(values, 5)
    best = class_cost(values, bounds)
    x = np.sort(values)
    rng = np.random.default_rng(6)
    for _ in range(200):
        moved = sorted(x[np.clip(np.searchsorted(x, bounds[:-1]) + rng.integers(-20, 21, 4), 0, len(x) - 2)])
        assert class_cost(values, list(moved) + [bounds[-1]]) >= best - 1e-9


def test_few_distinct_values_are_each_a_class_and_non_finite_values_are_ignored():
    assert fisher_jenks([3, 1, 3, np.nan, 2, np.inf], 5) == [1.0, 2.0, 3.0]
    assert fisher_jenks([], 5) == []
    with pytest.raises(ValueError):
        fisher_jenks([1, 2], 0)


def test_a_streamed_sample_keeps_the_extremes_as_the_last_bound():
    sample = BreaksSample(size=100, seed=1)
    for chunk in np.array_split(np.random.default_rng(2).uniform(0, 50, 10_000), 10):
        sample.add(chunk)
    sample.add([75.0])
    breaks = sample.breaks(5)
    assert breaks[-1] == 75.0 and breaks == sorted(breaks) and sample.count == 10_001
