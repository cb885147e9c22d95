"""Natural breaks (Fisher-Jenks): the exact optimal classification, on a sample for large inputs.

QGIS 3.22's Jenks classification is quadratic on up to a tenth of the values and
runs on the main thread; here the breaks come from an exact dynamic programme
(the one mapclassify's ``FisherJenks`` implements) on at most ``SAMPLE_SIZE``
values, computed in the background. Breaks are class upper bounds, the last one
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

    def ssd(first: np.ndarray, last: int) -> np.ndarray:
        # sum of squared deviations of x[first..last] (inclusive, 0-based), for many firsts at once
        count = last - first + 1
        total = s1[last + 1] - s1[first]
        return (s2[last + 1] - s2[first]) - total * total / count

    # cost[c, j]: best cost of splitting x[0..j] into c + 1 classes; start[c, j]: first index of the last class
    cost = np.full((k, n), np.inf)
    start = np.zeros((k, n), dtype=np.int64)
    cost[0] = s2[1:] - s1[1:] ** 2 / np.arange(1, n + 1)
    for c in range(1, k):
        for j in range(c, n):
            firsts = np.arange(c, j + 1)
            candidates = cost[c - 1, firsts - 1] + ssd(firsts, j)
            best = int(np.argmin(candidates))  # first minimum: the earliest split wins ties
            cost[c, j] = candidates[best]
            start[c, j] = firsts[best]
    bounds = [x[-1]]
    last = n - 1
    for c in range(k - 1, 0, -1):
        first = start[c, last]
        bounds.append(x[first - 1])
        last = first - 1
    return [float(b) for b in reversed(bounds)]


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


def raster_breaks(path, k: int = 5, band: int = 1, size: int = SAMPLE_SIZE) -> Tuple[Optional[float], List[float]]:
    """(minimum, natural breaks) of a raster band's valid values, from a decimated read
    (GDAL serves it from an overview when the file has them)."""
    import rasterio

    with rasterio.open(path) as dataset:
        scale = max(1.0, (dataset.width * dataset.height / (size * 16)) ** 0.5)
        shape = (max(1, int(dataset.height / scale)), max(1, int(dataset.width / scale)))
        values = dataset.read(band, out_shape=shape, masked=True).astype(np.float64).filled(np.nan)
    values = values[np.isfinite(values)]
    if not len(values):
        return None, []
    return float(values.min()), fisher_jenks(sample_for_breaks(values, size), k)
