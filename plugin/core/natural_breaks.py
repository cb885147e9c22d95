"""Natural breaks (Fisher-Jenks): the exact optimal classification, on a sample for large inputs.

QGIS 3.22's Jenks classification is quadratic on up to a tenth of the values and
runs on the main thread; here the breaks come from an exact dynamic programme
(the one mapclassify's ``FisherJenks`` implements, solved by divide and conquer in
O(k n log n)) on at most ``SAMPLE_SIZE`` values, computed in the background. Breaks are class upper bounds, the last one
being the maximum, as in mapclassify.
"""

from typing import List, Optional, Tuple

import numpy as np

SAMPLE_SIZE = 3000


def fisher_jenks(values, k: int = 5) -> List[float]:
    """Upper bounds of the ``k`` classes minimising the within-class sum of squared deviations.

    Ties between equally good splits go to the earliest split point, as in
    mapclassify. With fewer distinct values than ``k``, each distinct value is a class.
    """
    if k < 1:
        raise ValueError("the number of classes must be at least 1")
    x = np.sort(np.asarray(values, dtype=np.float64)[np.isfinite(values)])
    if len(x) == 0:
        return []
    distinct = np.unique(x)
    if len(distinct) <= k:
        return distinct.tolist()
    n = len(x)
    s1 = np.concatenate([[0.0], np.cumsum(x)])
    s2 = np.concatenate([[0.0], np.cumsum(x * x)])

    # cost[c, j]: best cost of splitting x[0..j] into c + 1 classes; start[c, j]: first index of the last class
    cost = np.full((k, n), np.inf)
    start = np.zeros((k, n), dtype=np.int64)
    cost[0] = s2[1:] - s1[1:] ** 2 / np.arange(1, n + 1)
    for c in range(1, k):
        _best_splits(cost[c - 1], cost[c], start[c], c, s1, s2)
    bounds = [x[-1]]
    last = n - 1
    for c in range(k - 1, 0, -1):
        first = start[c, last]
        bounds.append(x[first - 1])
        last = first - 1
    return [float(b) for b in reversed(bounds)]


def _best_splits(previous: np.ndarray, cost: np.ndarray, start: np.ndarray, c: int, s1: np.ndarray, s2: np.ndarray) -> None:
    """Fill ``cost[j]`` and ``start[j]`` for every last index j >= c, from the previous class count's costs.

    The earliest best first index of the last class never decreases as j grows (the
    within-class cost is a Monge matrix; Groenlund et al. 2017, "Fast exact k-means,
    k-medians and Bregman divergence clustering in 1D"). So j is solved by divide and
    conquer: the middle j of a range first, then each half searching only on its side of
    that split. All ranges of one level are solved in one vectorised step: about log2(n)
    steps of O(n) work instead of n steps of O(n).
    """
    n = len(cost)
    # ranges of last indices [j_low, j_high] whose first index lies in [i_low, i_high]
    j_low, j_high = np.array([c]), np.array([n - 1])
    i_low, i_high = np.array([c]), np.array([n - 1])
    while len(j_low):
        middle = (j_low + j_high) // 2
        lengths = np.minimum(middle, i_high) - i_low + 1
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        owner = np.repeat(np.arange(len(middle)), lengths)
        first = i_low[owner] + np.arange(lengths.sum()) - starts[owner]
        last = middle[owner]
        total = s1[last + 1] - s1[first]
        candidates = previous[first - 1] + ((s2[last + 1] - s2[first]) - total * total / (last - first + 1))
        best_cost = np.minimum.reduceat(candidates, starts)
        # the earliest candidate reaching its range's minimum (the earliest split wins ties)
        at_minimum = np.flatnonzero(candidates == best_cost[owner])
        best = first[at_minimum[np.searchsorted(at_minimum, starts)]]
        cost[middle], start[middle] = best_cost, best
        left, right = j_low <= middle - 1, middle + 1 <= j_high
        j_low, j_high, i_low, i_high = (
            np.concatenate([j_low[left], middle[right] + 1]), np.concatenate([middle[left] - 1, j_high[right]]),
            np.concatenate([i_low[left], best[right]]), np.concatenate([best[left], i_high[right]]),
        )


def sample_for_breaks(values, size: int = SAMPLE_SIZE, seed: int = 0) -> np.ndarray:
    """A reproducible uniform sample of the finite values, always keeping the minimum and maximum."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) <= size:
        return x
    picked = np.random.default_rng(seed).choice(len(x), size=size - 2, replace=False)
    return np.concatenate([x[picked], [x.min(), x.max()]])


class BreaksSample:
    """Keeps a uniform sample of a column across batches (smallest random keys win), for streamed results."""

    def __init__(self, size: int = SAMPLE_SIZE, seed: int = 0):
        self.size = size
        self._rng = np.random.default_rng(seed)
        self._keys = np.zeros(0)
        self._values = np.zeros(0)
        self.minimum: Optional[float] = None
        self.maximum: Optional[float] = None
        self.count = 0

    def add(self, values) -> None:
        x = np.asarray(values, dtype=np.float64)
        x = x[np.isfinite(x)]
        if not len(x):
            return
        self.count += len(x)
        self.minimum = float(x.min()) if self.minimum is None else min(self.minimum, float(x.min()))
        self.maximum = float(x.max()) if self.maximum is None else max(self.maximum, float(x.max()))
        keys = np.concatenate([self._keys, self._rng.random(len(x))])
        values_ = np.concatenate([self._values, x])
        if len(keys) > self.size:
            keep = np.argpartition(keys, self.size)[: self.size]
            keys, values_ = keys[keep], values_[keep]
        self._keys, self._values = keys, values_

    def breaks(self, k: int) -> List[float]:
        if self.minimum is None:
            return []
        bounds = fisher_jenks(np.concatenate([self._values, [self.minimum, self.maximum]]), k)
        bounds[-1] = self.maximum
        return bounds


def raster_sample(path, band: int = 1, size: int = SAMPLE_SIZE) -> np.ndarray:
    """The finite values of a decimated read of a raster band, about ``16 * size`` of them (GDAL serves the
    read from an overview when the file has them)."""
    import rasterio

    with rasterio.open(path) as dataset:
        scale = max(1.0, (dataset.width * dataset.height / (size * 16)) ** 0.5)
        shape = (max(1, int(dataset.height / scale)), max(1, int(dataset.width / scale)))
        values = dataset.read(band, out_shape=shape, masked=True).astype(np.float64).filled(np.nan)
    return values[np.isfinite(values)]


def raster_breaks(path, k: int = 5, band: int = 1, size: int = SAMPLE_SIZE) -> Tuple[Optional[float], List[float]]:
    """(minimum, natural breaks) of a raster band's valid values, from a decimated read (``raster_sample``)."""
    values = raster_sample(path, band, size)
    if not len(values):
        return None, []
    return float(values.min()), fisher_jenks(sample_for_breaks(values, size), k)
