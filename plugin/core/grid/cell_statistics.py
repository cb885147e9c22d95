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
"""

from dataclasses import dataclass
from typing import List

import numpy as np

DEFAULT_RESOLUTION = 0.05
COMPACT_EVERY_ROWS = 500_000  # pending histogram rows before they are merged (or half the merged rows, if more)


@dataclass
class CellTable:
    cell: np.ndarray  # int64 keys, sorted
    count: np.ndarray  # int64
    mean: np.ndarray  # float64
    median: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.cell)


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


class CellStatistics:
    def __init__(self, resolution: float = DEFAULT_RESOLUTION, compact_every_rows: int = COMPACT_EVERY_ROWS):
        if not resolution > 0:
            raise ValueError("the median resolution must be positive")
        self.resolution = float(resolution)
        self.compact_every_rows = compact_every_rows
        self._histogram: List[tuple] = []  # (cell, bin, count) arrays, each sorted and merged within itself
        self._sums: List[tuple] = []  # (cell, count, sum) arrays
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
        cell_starts = _runs(cells)
        self._sums.append((cells[cell_starts], np.diff(np.append(cell_starts, len(cells))), np.add.reduceat(values, cell_starts)))
        self._pending += len(starts)
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
            cells, counts, sums = (np.concatenate(parts) for parts in zip(*self._sums))
            order = np.argsort(cells, kind="stable")
            cells, counts, sums = cells[order], counts[order], sums[order]
            starts = _runs(cells)
            self._sums = [(cells[starts], np.add.reduceat(counts, starts), np.add.reduceat(sums, starts))]
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
        sum_cells, sum_counts, sums = self._sums[0]
        starts = _runs(cells)
        totals = np.add.reduceat(counts.astype(np.int64), starts)
        cumulative = np.cumsum(counts, dtype=np.int64)
        before = np.concatenate([[0], cumulative[:-1]])[starts]  # values in earlier cells
        # 0-based ranks of the two middle values (the same one when the count is odd)
        low = np.searchsorted(cumulative, before + (totals - 1) // 2, side="right")
        high = np.searchsorted(cumulative, before + totals // 2, side="right")
        median = (bins[low].astype(np.float64) + bins[high]) * (self.resolution / 2.0)
        if not (np.array_equal(sum_cells, cells[starts]) and np.array_equal(sum_counts, totals)):
            raise RuntimeError("cell statistics: the sums and the histogram disagree on the cells or their counts")
        return CellTable(cells[starts], totals, sums / totals, median)
