"""Count, mean and median per cell, from batches, in memory that does not grow with the data.

    stats = CellStatistics(resolution=0.05)
    for keys, values in batches:
        stats.add(keys, values)
    table = stats.result()        # cell, count, mean, median (numpy arrays, sorted by cell)

Counts and means are exact. For the median, each value is rounded to the nearest
multiple of ``resolution`` and only the number of values per (cell, rounded value)
is kept, so the median is within ``resolution / 2`` of the exact one (0.025 m for
heights at the default) and memory is bounded by the number of distinct
(cell, rounded value) pairs, whatever the number of segments.

Sums are kept as exact integers (each value's binary mantissa, added per cell and
binary exponent), not as floats: a float sum depends on the order of the additions,
so the means would change with the batch size and with how a region is split between
Dask workers. With exact sums, statistics gathered in parts and merged
(``partial`` then ``merge``) are identical, bit for bit, to one pass over everything,
and the mean is the exact mean rounded once.

    parts = [...]                  # CellStatistics, one per worker, each fed its own segments
    total = CellStatistics()
    for part in parts:
        total.merge(part.partial())
"""

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

DEFAULT_RESOLUTION = 0.05
COMPACT_EVERY_ROWS = 500_000  # pending histogram rows before they are merged (or half the merged rows, if more)
EXPONENT_BIAS = 1075  # float64: value = mantissa * 2 ** (biased exponent - 1075), the mantissa a 53-bit integer
LOW_BITS = 26  # the mantissa is added as two int64 halves: 2 ** 36 values per cell and exponent before overflow
MAX_DENSE_ROWS = 2**26  # values one float64 count may sum exactly: halves below 2 ** 27, sums below 2 ** 53


@dataclass
class CellTable:
    cell: np.ndarray  # int64 keys, sorted
    count: np.ndarray  # int64
    mean: np.ndarray  # float64
    median: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.cell)


@dataclass
class PeriodStatistics:
    """One period's statistics per cell, with what it took."""

    table: CellTable
    values_added: int  # segments with a value
    batches: int
    histogram_rows: int  # the largest histogram one process held (the merged one, or a worker's)


def _runs(*sorted_keys: np.ndarray) -> np.ndarray:
    """Indexes where a run of equal keys starts, in arrays sorted by those keys."""
    n = len(sorted_keys[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for key in sorted_keys:
        change[1:] |= key[1:] != key[:-1]
    return np.flatnonzero(change)


@dataclass
class PartialStatistics:
    """What ``CellStatistics`` holds, as plain arrays: a part's statistics on their way to be merged
    (a few arrays per cell, never the segments)."""

    histogram: Tuple[np.ndarray, np.ndarray, np.ndarray]  # cell, bin, count; sorted by (cell, bin)
    sums: Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # cell, exponent, high, low; sorted by (cell, exponent)
    values_added: int
    resolution: float


def _binary_parts(values: np.ndarray):
    """Integers mantissa and exponent with value == mantissa * 2 ** exponent exactly, from the float64 bits."""
    bits = values.view(np.int64)
    biased = (bits >> 52) & 0x7FF
    fraction = bits & ((1 << 52) - 1)
    normal = biased > 0  # subnormals (and zero) have no implicit leading bit and the exponent of biased 1
    mantissa = np.where(normal, fraction | (1 << 52), fraction)
    return np.where(bits < 0, -mantissa, mantissa), np.where(normal, biased, 1) - EXPONENT_BIAS


def _exact_sums(cells: np.ndarray, values: np.ndarray):
    """Per (cell, binary exponent): the sum of the values' mantissas as two int64 halves, exactly.

    ``cells`` is sorted. A batch's values span a few dozen exponents at most, so the sums are
    counted into a dense (cell, exponent) table rather than sorted; the float64 counting is
    exact, because every partial sum is an integer below 2 ** 53 (halves below 2 ** 27, at
    most ``MAX_DENSE_ROWS`` values). The rows come back sorted by (cell, exponent)."""
    mantissa, exponent = _binary_parts(values)
    high, low = mantissa >> LOW_BITS, mantissa & ((1 << LOW_BITS) - 1)
    cell_starts = _runs(cells)
    lowest, span = int(exponent.min()), int(exponent.max() - exponent.min()) + 1
    if len(values) > MAX_DENSE_ROWS or len(cell_starts) * span > 4 * len(values) + 1024:  # values of every magnitude
        order = np.lexsort((exponent, cells))
        return _merged_sums([(cells[order], exponent[order].astype(np.int64), high[order], low[order])])
    run = np.repeat(np.arange(len(cell_starts), dtype=np.int64), np.diff(np.append(cell_starts, len(cells))))
    slot = run * span + (exponent - lowest)
    size = len(cell_starts) * span
    used = np.flatnonzero(np.bincount(slot, minlength=size))
    high_sums = np.bincount(slot, weights=high.astype(np.float64), minlength=size)[used].astype(np.int64)
    low_sums = np.bincount(slot, weights=low.astype(np.float64), minlength=size)[used].astype(np.int64)
    return cells[cell_starts][used // span], used % span + lowest, high_sums, low_sums


def _merged_sums(parts):
    cells, exponents, high, low = (np.concatenate(columns) for columns in zip(*parts))
    order = np.lexsort((exponents, cells))
    cells, exponents, high, low = cells[order], exponents[order], high[order], low[order]
    starts = _runs(cells, exponents)
    high, low = np.add.reduceat(high, starts), np.add.reduceat(low, starts)
    carry = low >> LOW_BITS  # keeps the low half small, so only the high half can grow
    return cells[starts], exponents[starts], high + carry, low - (carry << LOW_BITS)


def _exact_means(cells: np.ndarray, exponents: np.ndarray, high: np.ndarray, low: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each cell's sum / count, computed on Python integers and rounded once."""
    starts = _runs(cells)
    lowest = np.repeat(exponents[starts], np.diff(np.append(starts, len(cells))))
    scaled = (high.astype(object) * (1 << LOW_BITS) + low.astype(object)) << (exponents - lowest).astype(object)
    totals = np.add.reduceat(scaled, starts)
    power = exponents[starts]  # a cell's exact sum is totals * 2 ** power
    numerator = totals << np.maximum(power, 0).astype(object)
    denominator = counts.astype(object) << np.maximum(-power, 0).astype(object)
    return np.array([n / d for n, d in zip(numerator, denominator)], dtype=np.float64)  # int / int: correctly rounded


class CellStatistics:
    def __init__(self, resolution: float = DEFAULT_RESOLUTION, compact_every_rows: int = COMPACT_EVERY_ROWS):
        if not resolution > 0:
            raise ValueError("the median resolution must be positive")
        self.resolution = float(resolution)
        self.compact_every_rows = compact_every_rows
        self._histogram: List[tuple] = []  # (cell, bin, count) arrays, each sorted and merged within itself
        self._sums: List[tuple] = []  # (cell, exponent, high, low) arrays, exact mantissa sums (see _exact_sums)
        self._pending = 0
        self._merged = 0
        self.values_added = 0  # finite values counted so far (NaN and infinities are skipped)

    def add(self, cells: np.ndarray, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        valid = np.isfinite(values)
        cells, values = np.asarray(cells, dtype=np.int64)[valid], values[valid]
        self.values_added += len(values)
        if not len(cells):
            return
        bins = np.rint(values / self.resolution)
        # 32-bit bins and counts keep a histogram row at 16 bytes; wide-ranging variables keep 64-bit bins
        bins = bins.astype(np.int32 if np.abs(bins).max() < 2**31 else np.int64)
        order = np.lexsort((bins, cells))
        cells, bins, values = cells[order], bins[order], values[order]
        starts = _runs(cells, bins)
        counts = np.diff(np.append(starts, len(cells))).astype(np.int32)
        self._histogram.append((cells[starts], bins[starts], counts))
        self._sums.append(_exact_sums(cells, values))
        self._pending += len(starts)
        self._compact_when_due()

    def merge(self, part: PartialStatistics) -> None:
        """Add statistics gathered elsewhere (another batch stream, another worker): the result is the
        same as if this object had been given that part's values itself."""
        if part.resolution != self.resolution:
            raise ValueError(f"cannot merge statistics at a median resolution of {part.resolution} into {self.resolution}")
        self.values_added += part.values_added
        if not len(part.histogram[0]):
            return
        self._histogram.append(part.histogram)
        self._sums.append(part.sums)
        self._pending += len(part.histogram[0])
        self._compact_when_due()

    def partial(self) -> PartialStatistics:
        """Everything held, merged, as plain arrays (for ``merge`` into another ``CellStatistics``)."""
        self._compact()
        if not self._histogram:
            none = np.zeros(0, dtype=np.int64)
            return PartialStatistics((none, none.astype(np.int32), none.astype(np.int32)), (none, none, none, none),
                                     self.values_added, self.resolution)
        return PartialStatistics(self._histogram[0], self._sums[0], self.values_added, self.resolution)

    def _compact_when_due(self) -> None:
        # Merging costs a pass over everything held, so it waits until the pending rows are
        # a fair share of it: memory stays within about 1.5x the merged histogram.
        if self._pending > max(self.compact_every_rows, self._merged // 2):
            self._compact()

    def _compact(self) -> None:
        if len(self._histogram) > 1:
            cells, bins, counts = (np.concatenate(parts) for parts in zip(*self._histogram))
            order = np.lexsort((bins, cells))
            cells, bins, counts = cells[order], bins[order], counts[order]
            starts = _runs(cells, bins)
            merged_counts = np.add.reduceat(counts.astype(np.int64), starts)
            self._histogram = [(cells[starts], bins[starts], merged_counts.astype(np.int32 if merged_counts.max() < 2**31 else np.int64))]
        if len(self._sums) > 1:
            self._sums = [_merged_sums(self._sums)]
        self._merged = len(self._histogram[0][0]) if self._histogram else 0
        self._pending = 0

    @property
    def histogram_rows(self) -> int:
        """Rows held for the medians: what bounds the memory."""
        return sum(len(part[0]) for part in self._histogram)

    def result(self) -> CellTable:
        if not self._histogram:
            empty = np.zeros(0)
            return CellTable(empty.astype(np.int64), empty.astype(np.int64), empty, empty)
        self._compact()
        cells, bins, counts = self._histogram[0]
        sums = self._sums[0]  # cell, exponent, high, low
        starts = _runs(cells)
        totals = np.add.reduceat(counts.astype(np.int64), starts)
        cumulative = np.cumsum(counts, dtype=np.int64)
        before = np.concatenate([[0], cumulative[:-1]])[starts]  # values in earlier cells
        # 0-based ranks of the two middle values (the same one when the count is odd)
        low = np.searchsorted(cumulative, before + (totals - 1) // 2, side="right")
        high = np.searchsorted(cumulative, before + totals // 2, side="right")
        median = (bins[low].astype(np.float64) + bins[high]) * (self.resolution / 2.0)
        if not np.array_equal(np.unique(sums[0]), cells[starts]):
            raise RuntimeError("cell statistics: the sums and the histogram disagree on the cells")
        return CellTable(cells[starts], totals, _exact_means(*sums, totals), median)
