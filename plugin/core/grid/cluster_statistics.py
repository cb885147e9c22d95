"""The per-cell statistics of a grid change computed on a Dask cluster.

    tables = cluster_statistics(request, progress, check_cancel)   # request.scheduler = "tcp://host:8786"

The region of each period is cut into parts that share no segment (each read box of the
query split into longitude strips whose inclusive bounds never meet), and each part is one
task: a worker opens the database itself from its ``DatabaseConfig`` (local folder, or S3
with its endpoint and keys), streams its part in batches exactly as a single process would,
and sends back its ``PartialStatistics``: per cell a histogram and exact sums, never the
segments. The client merges the parts as they finish. Counts and histograms add up, and
the sums are exact integers (``cell_statistics``), so counts, means, medians and changes are
identical, bit for bit, to the single-process run.

Strips run north-south because ICESat-2 tracks do: every strip crosses the tracks, so the
parts hold similar numbers of segments wherever the tracks are. A few parts per worker let
the faster workers take more of them.

The workers import this package: install the plugin (its folder named ``canopy_explorer``) in
the workers' Python environment, with the engine's dependencies (numpy, pandas, pyproj,
shapely, tiledb).
"""

import time
from dataclasses import dataclass, replace
from typing import List, Optional, Tuple

import numpy as np

from ..callbacks import CheckCancel, Progress
from ..errors import CanopyExplorerError, ConfigurationError, MissingDependencyError
from ..lidar.query import SegmentQuery
from .cell_statistics import CellStatistics, PartialStatistics, PeriodStatistics

PARTS_PER_WORKER = 4  # per worker thread
CONNECT_TIMEOUT_S = 10
WAIT_STEP_S = 0.05  # how often finished parts are collected (and cancel is checked) while the workers run


@dataclass
class PartResult:
    statistics: PartialStatistics
    batches: int
    histogram_rows: int


def split_region(spec: SegmentQuery, parts: int) -> List[SegmentQuery]:
    """``spec`` over pieces of its region that, together, read each of its segments exactly once.

    Each read box of the query is read by the pieces it is cut into (a single-process run reads
    every box in turn, so a segment on the shared edge of two boxes counts in both there as here).
    A box is cut into longitude strips: a strip's inclusive bounds end one float64 step before the
    next strip's begin, so no segment is in two strips."""
    boxes = spec.parts
    if not boxes:
        return []
    if len(boxes) >= parts:  # many small boxes (a detailed polygon): share them out
        return [replace(spec, parts=tuple(boxes[i::parts])) for i in range(parts)]
    widths = np.array([east - west for west, _, east, _ in boxes], dtype=np.float64)
    total = widths.sum()
    strips = (np.maximum(1, np.round(parts * widths / total)).astype(int) if total > 0 else np.ones(len(boxes), dtype=int))
    pieces = []
    for (west, south, east, north), count in zip(boxes, strips):
        for box in _strips(west, south, east, north, int(count)):
            pieces.append(replace(spec, parts=(box,)))
    return pieces


def _strips(west: float, south: float, east: float, north: float, count: int) -> List[Tuple[float, float, float, float]]:
    edges = np.unique(np.linspace(west, east, count + 1))
    if len(edges) < 3:
        return [(west, south, east, north)]
    edges[0], edges[-1] = west, east
    boxes = [(float(edges[i]), south, float(np.nextafter(edges[i + 1], -np.inf)), north) for i in range(len(edges) - 2)]
    boxes.append((float(edges[-2]), south, east, north))
    return boxes


def part_statistics(config, spec: SegmentQuery, column: str, grid_shape: Tuple[type, float, str], resolution: float,
                    batch_rows: int) -> PartResult:
    """On a worker: one part of one period, read from the database the worker opens itself."""
    from ..lidar.database import Atl08Database
    from .change import period_statistics

    grid_class, cell_size_km, crs = grid_shape
    database = Atl08Database(config)
    try:
        statistics, batches = period_statistics(database, spec, column, grid_class(cell_size_km, crs), resolution, batch_rows)
    finally:
        database.close()
    histogram_rows = statistics.histogram_rows
    return PartResult(statistics.partial(), batches, histogram_rows)


def connect(scheduler: str, label: str):
    """A client of the Dask scheduler at ``scheduler``; ``label`` names the setting in messages (SCHEDULER)."""
    try:
        from distributed import Client
    except ImportError:
        raise MissingDependencyError(
            f"{label} {scheduler!r} needs Dask's distributed package, which is not installed here: "
            f"install it (pip install \"dask[distributed]\") or leave {label} empty to compute here") from None
    try:
        return Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as error:
        raise ConfigurationError(f"cannot reach {label} at {scheduler!r}: {error}") from None


def cluster_statistics(request, progress: Optional[Progress] = None, check_cancel: Optional[CheckCancel] = None,
                       ) -> Tuple[PeriodStatistics, PeriodStatistics]:
    """Both periods' per-cell statistics, computed by the workers of ``request.scheduler``."""
    config = getattr(request.database, "config", request.database)  # an open database: its configuration
    grid_shape = (type(request.grid), request.grid.cell_size_km, request.grid.crs)
    client = connect(request.scheduler, request.scheduler_label)
    try:
        threads = max(1, sum(client.nthreads().values()))  # none yet (an autoscaling cluster): parts wait for them
        tasks = [(period, piece) for period, spec in enumerate(request.specs)
                 for piece in split_region(spec, PARTS_PER_WORKER * threads)]
        futures = {client.submit(part_statistics, config, piece, request.column.name, grid_shape, request.resolution,
                                 request.batch_rows, pure=False): period for period, piece in tasks}
        return _gather(client, futures, request.resolution, progress, check_cancel)
    finally:
        client.close()


def _gather(client, futures: dict, resolution: float, progress: Optional[Progress], check_cancel: Optional[CheckCancel]):
    merged = [CellStatistics(resolution), CellStatistics(resolution)]
    batches, largest = [0, 0], [0, 0]
    pending, total = set(futures), len(futures)
    try:
        while pending:
            if check_cancel:
                check_cancel()
            finished = {future for future in pending if future.done()}
            if not finished:
                time.sleep(WAIT_STEP_S)
                continue
            pending -= finished
            for future in finished:
                part = _result(future)
                period = futures.pop(future)  # the worker may now forget it
                merged[period].merge(part.statistics)
                batches[period] += part.batches
                largest[period] = max(largest[period], part.histogram_rows)
                if progress:
                    progress(0.99 * (total - len(pending)) / total)
    except BaseException:
        client.cancel(list(pending))
        raise
    results = []
    for period, statistics in enumerate(merged):
        table = statistics.result()
        results.append(PeriodStatistics(table, statistics.values_added, batches[period],
                                        max(largest[period], statistics.histogram_rows)))
    return tuple(results)


def _result(future) -> PartResult:
    try:
        return future.result()
    except CanopyExplorerError:
        raise
    except ModuleNotFoundError as error:
        raise ConfigurationError(
            f"a Dask worker cannot import {error.name!r}: install the plugin and its dependencies where the workers run") from None
