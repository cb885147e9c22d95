"""Describe an ATL08 segment query once, validated when it is built.

    spec = SegmentQuery.create(roi=polygon, start="2019-01-01", end="2023-12-31",
                               variables=["h_canopy", "canopy_h_metrics:95"],
                               filters="h_canopy between 5 60\\nnight_flag == 1")
"""

import datetime as dt
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import QueryError, UnknownVariableError
from .filters import Filter, filters_from_keywords, parse_filters
from .variables import SCALAR, get_variable

Bounds = Tuple[float, float, float, float]  # lon_min, lat_min, lon_max, lat_max
ALWAYS = ("latitude", "longitude", "time", "segment_id", "beam_id")
NS_PER_DAY = 86_400 * 1_000_000_000


@dataclass(frozen=True)
class Column:
    """One output column and the TileDB attribute it comes from."""

    attribute: str
    name: str
    variable: str


def resolve_columns(variables: Iterable[str]) -> Tuple[Column, ...]:
    """Output columns for the requested variables: ``var``, ``var:label``, whole profiles."""
    columns: List[Column] = []
    for item in variables:
        item = item.strip()
        if not item or item in ALWAYS:
            continue
        if ":" in item:
            base, label = item.split(":", 1)
            variable = get_variable(base.strip())
            try:
                label_value = int(label)
            except ValueError:
                valid = ", ".join(str(v) for v in variable.labels)
                raise UnknownVariableError(f"label {label!r} of '{base}' is not a number; valid labels are: {valid}") from None
            attribute, name = variable.label_column(label_value)
            columns.append(Column(attribute, name, variable.name))
            continue
        variable = get_variable(item)
        if variable.kind == SCALAR:
            columns.append(Column(item, item, item))
        elif variable.labels:
            for label in variable.labels:
                attribute, name = variable.label_column(label)
                columns.append(Column(attribute, name, variable.name))
        else:
            columns.extend(Column(a, a, variable.name) for a in variable.attribute_names)
    unique = {c.name: c for c in columns}
    return tuple(unique.values())


def _instant(value, end: bool) -> Tuple[int, bool]:
    """Nanoseconds since 1970 (UTC) and whether the value is finer than a whole day.

    A date (or a date-only string) means the whole day: from its first instant as a start,
    up to its last nanosecond as an end.
    """
    if value is None:
        return (np.iinfo(np.int64).max if end else np.iinfo(np.int64).min), False
    if isinstance(value, str):
        text = value.strip()
        try:
            value = dt.date.fromisoformat(text) if len(text) <= 10 else dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise QueryError(f"{'end' if end else 'start'} time {text!r} is not an ISO date or date-time (e.g. 2020-06-30 or 2020-06-30T12:00:00Z)") from None
    if isinstance(value, np.datetime64):  # nanosecond precision, UTC (also pandas Timestamps via .to_datetime64())
        return int(value.astype("datetime64[ns]").astype(np.int64)), True
    if hasattr(value, "to_datetime64"):
        return int(value.to_datetime64().astype("datetime64[ns]").astype(np.int64)), True
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        seconds = value.timestamp()
        ns = int(round(seconds)) * 1_000_000_000 if seconds.is_integer() else int(seconds * 1e6) * 1000
        return ns, True
    if isinstance(value, dt.date):
        day = (value - dt.date(1970, 1, 1)).days
        return ((day + 1) * NS_PER_DAY - 1 if end else day * NS_PER_DAY), False
    raise QueryError(f"unsupported time value {value!r}")


@dataclass(frozen=True)
class SegmentQuery:
    """What area, which times, which variables, which filters."""

    parts: Tuple[Bounds, ...]  # bounding boxes in EPSG:4326, already split at the antimeridian
    polygon: Optional[object]  # shapely geometry in EPSG:4326 for exact membership, None for boxes
    start_ns: int
    end_ns: int
    sub_day: bool  # bounds finer than whole days (needs timestamp_ns)
    columns: Tuple[Column, ...]
    filter: Optional[Filter]
    # True: the ``time`` column holds acquisition instants (timestamp_ns). False: the
    # acquisition day, as the reference package returns, which reads far fewer bytes.
    # Sub-day bounds imply True.
    exact_times: bool = False

    @property
    def day_range(self) -> Tuple[int, int]:
        return self.start_ns // NS_PER_DAY, self.end_ns // NS_PER_DAY

    @classmethod
    def create(
        cls,
        roi=None,
        start=None,
        end=None,
        variables: Sequence[str] = ("h_canopy",),
        filters: Union[str, Sequence[str], Filter, None] = None,
        roi_crs: str = "EPSG:4326",
        exact_times: bool = False,
        **keyword_filters,
    ) -> "SegmentQuery":
        from .roi import prepare_roi

        if isinstance(variables, str):
            variables = [v for v in variables.split(",")]
        columns = resolve_columns(variables)
        start_ns, fine_start = _instant(start, end=False)
        end_ns, fine_end = _instant(end, end=True)
        if end_ns < start_ns:
            raise QueryError(f"end time {end} is before start time {start}")
        node = filters if (filters is None or not isinstance(filters, (str, list, tuple))) else parse_filters(filters)
        if keyword_filters:
            from .filters import combine

            node = combine([node, filters_from_keywords(keyword_filters)])
        parts, polygon = prepare_roi(roi, roi_crs)
        sub_day = fine_start or fine_end
        return cls(parts, polygon, start_ns, end_ns, sub_day, columns, node, exact_times or sub_day)
