"""Describe an ATL08 segment query once, validated when it is built.

    spec = SegmentQuery.create(roi=polygon, start="2019-01-01", end="2023-12-31",
                               variables=["h_canopy", "canopy_h_metrics:95"],
                               filters="h_canopy between 5 60\\nnight_flag == 1")
    nearest = NearestRequest.create((7.15, 45.15), num_shots=50, radius_m=500)   # for Atl08Database.nearest
"""

import datetime as dt
from dataclasses import dataclass, replace
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import QueryError, UnknownVariableError
from ..values import whole_number
from .filters import Filter, FilterLine, ParsedFilters, check_size, keyword_filter_lines, parse_filter_lines, to_condition
from .products import DEFAULT_PRODUCT, product
from .variables import SCALAR

Bounds = Tuple[float, float, float, float]  # lon_min, lat_min, lon_max, lat_max
ALWAYS = ("latitude", "longitude", "time", "segment_id", "beam_id")
NS_PER_DAY = 86_400 * 1_000_000_000
# Times are nanoseconds since 1970 in an int64 (TileDB's timestamp_ns, numpy, pandas): whole days
# from 1677-09-22 to 2262-04-10 fit, anything beyond would wrap round or overflow.
FIRST_DAY, LAST_DAY = dt.date(1677, 9, 22), dt.date(2262, 4, 10)
_NS_MIN, _NS_MAX = -(2**63) + 1, 2**63 - 1  # int64 minimum is NaT in numpy


@dataclass(frozen=True)
class Column:
    """One output column and the TileDB attribute it comes from."""

    attribute: str
    name: str
    variable: str


def resolve_columns(variables: Iterable[str], product_name: str = DEFAULT_PRODUCT) -> Tuple[Column, ...]:
    """Output columns for the requested variables of the product: ``var``, ``var:label``, whole profiles."""
    get_variable = product(product_name).variable
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


def _named(end: bool, label: str) -> str:
    """'end time' or 'end time (END)': the parameter as the user set it."""
    return f"{'end' if end else 'start'} time" + (f" ({label})" if label else "")


def _instant(value, end: bool, label: str = "") -> Tuple[int, bool]:
    """Nanoseconds since 1970 (UTC) and whether the value is finer than a whole day.

    A date (or a date-only string) means the whole day: from its first instant as a start,
    up to its last nanosecond as an end. ``label`` names the parameter in messages (``END``).
    """
    if value is None:  # open: the extremes of int64 (the minimum is also numpy's NaT; others test for them)
        return (np.iinfo(np.int64).max if end else np.iinfo(np.int64).min), False
    shown = value
    if isinstance(value, str):
        text = shown = value.strip()
        try:
            value = dt.date.fromisoformat(text) if len(text) <= 10 else dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise QueryError(f"{_named(end, label)} {text[:60]!r} is not an ISO date or date-time (e.g. 2020-06-30 or "
                             "2020-06-30T12:00:00Z)") from None
    if hasattr(value, "to_datetime64"):  # pandas Timestamps (their unit may be coarser than ns)
        value = value.to_datetime64()
    if isinstance(value, np.datetime64):  # UTC, kept at nanosecond precision
        if np.isnat(value):
            raise QueryError(f"{_named(end, label)} is not a time (NaT)")
        seconds = int(value.astype("datetime64[s]").astype(np.int64))
        if not _NS_MIN // 10**9 < seconds < _NS_MAX // 10**9:
            _out_of_range(shown, end, label)
        return int(value.astype("datetime64[ns]").astype(np.int64)), True
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        ns = (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
        if not _NS_MIN <= ns <= _NS_MAX:
            _out_of_range(shown, end, label)
        return ns, True
    if isinstance(value, dt.date):
        if not FIRST_DAY <= value <= LAST_DAY:
            _out_of_range(shown, end, label)
        day = (value - dt.date(1970, 1, 1)).days
        return ((day + 1) * NS_PER_DAY - 1 if end else day * NS_PER_DAY), False
    raise QueryError(f"{_named(end, label)} {str(value)[:60]!r} is not a date or time")


def _out_of_range(value, end: bool, label: str):
    raise QueryError(f"{_named(end, label)} {str(value)[:60]} is outside the times Canopy Explorer can represent "
                     f"({FIRST_DAY} to {LAST_DAY}; ICESat-2 data begin in 2018)")


def _shown_time(value) -> str:
    return "(open)" if value is None else str(value).strip()[:60]


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
    # The filters line by line, as the user wrote them ("line 2 'night_flag == 1'"): an empty
    # result says which of them removed the last segments. Together they make ``filter``.
    filter_lines: Tuple[FilterLine, ...] = ()
    product: str = DEFAULT_PRODUCT  # whose variables ``columns`` and ``filter`` name (lidar/products.py)

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
        filters: Union[str, Sequence[str], ParsedFilters, Filter, None] = None,
        roi_crs: str = "EPSG:4326",
        exact_times: bool = False,
        time_labels: Tuple[str, str] = ("", ""),
        product: str = DEFAULT_PRODUCT,
        **keyword_filters,
    ) -> "SegmentQuery":
        """``time_labels`` name the start and end parameters in messages (``("START", "END")``);
        ``product``: the lidar product whose variables are named (the database's ``config.product``)."""
        from .filters import combine
        from .regions import prepare_roi

        if isinstance(variables, str):
            variables = [v for v in variables.split(",")]
        columns = resolve_columns(variables, product)
        start_ns, fine_start = _instant(start, end=False, label=time_labels[0])
        end_ns, fine_end = _instant(end, end=True, label=time_labels[1])
        if end_ns < start_ns:
            raise QueryError(f"{_named(True, time_labels[1])} {_shown_time(end)} is before "
                             f"{_named(False, time_labels[0])} {_shown_time(start)}")
        if isinstance(filters, ParsedFilters):  # parsed once already (the dialog checks what is typed)
            lines = ParsedFilters.parse(filters, product).lines
        elif filters is None or isinstance(filters, (str, list, tuple)):
            lines = parse_filter_lines(filters, product)
        else:  # a filter built in Python: one "line"
            check_size(filters)
            lines = (FilterLine(f"the filter {to_condition(filters)[:80]!r}", filters),)
        if keyword_filters:
            lines = lines + keyword_filter_lines(keyword_filters, product)
        node = combine([line.node for line in lines])
        check_size(node)
        parts, polygon = prepare_roi(roi, roi_crs)
        sub_day = fine_start or fine_end
        return cls(parts, polygon, start_ns, end_ns, sub_day, columns, node, exact_times or sub_day, lines, product)

    def over(self, roi, roi_crs: str = "EPSG:4326") -> "SegmentQuery":
        """The same times, variables and filters over another region (checked as ``create`` checks it)."""
        from .regions import prepare_roi

        parts, polygon = prepare_roi(roi, roi_crs)
        return replace(self, parts=parts, polygon=polygon)


@dataclass(frozen=True)
class NearestRequest:
    """The segments nearest to a point: how many, within which radius, with which variables, filters and times.

        request = NearestRequest.create((7.15, 45.15), num_shots=50, radius_m=500, filters="night_flag == 1")
        database.nearest(request)          # sorted by geodesic distance, with distance_m

    ``spec`` reads the box round the point (whole latitude bands near the poles or for radii
    over 2,000 km); ``within`` keeps what lies inside the circle."""

    point: Tuple[float, float]  # longitude, latitude (EPSG:4326)
    num_shots: int
    radius_m: float
    spec: SegmentQuery
    variables: Tuple[str, ...]  # as given, for layer names and metadata
    filters_text: str = ""
    start: Optional[object] = None  # as given (open when None), for metadata
    end: Optional[object] = None

    @classmethod
    def create(
        cls,
        point,
        num_shots: int = 50,
        radius_m: float = 1000.0,
        variables: Union[str, Sequence[str]] = ("h_canopy",),
        filters: Union[str, Sequence[str], ParsedFilters, None] = None,
        start=None,
        end=None,
        time_labels: Tuple[str, str] = ("", ""),
        product: str = DEFAULT_PRODUCT,
    ) -> "NearestRequest":
        """``product``: the lidar product whose variables are named (the database's ``config.product``)."""
        try:
            lon, lat = float(point[0]), float(point[1])
            if len(point) != 2:
                raise ValueError
        except (TypeError, ValueError, IndexError):
            raise QueryError(f"the point {str(point)[:60]} is not a (longitude, latitude) pair") from None
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise QueryError(f"point ({lon}, {lat}) is not a longitude/latitude pair")
        if not whole_number(num_shots) or num_shots < 1:
            raise QueryError(f"the number of shots must be a whole number of at least 1, not {num_shots!r}")
        if isinstance(radius_m, bool) or not isinstance(radius_m, (int, float, np.number)) or not radius_m > 0:
            raise QueryError(f"the search radius must be a positive number of metres, not {radius_m!r}")
        if isinstance(variables, str):
            variables = variables.split(",")
        variables = tuple(v.strip() for v in variables if v.strip())
        if not variables:
            raise QueryError("no variables given: list at least one, e.g. h_canopy")
        parsed = ParsedFilters.parse(filters, product)
        spec = SegmentQuery.create(roi=_nearest_box(lon, lat, float(radius_m)), start=start, end=end, variables=variables,
                                   filters=parsed, exact_times=True, time_labels=time_labels, product=product)
        # a handful of segments: the exact acquisition instants cost nothing here
        return cls((lon, lat), int(num_shots), float(radius_m), spec, variables, parsed.text, start, end)

    def within(self, longitude, latitude) -> np.ndarray:
        """Which of these positions lie within the radius (geodesic distance on the WGS84 ellipsoid)."""
        return self.distances(longitude, latitude) <= self.radius_m

    def distances(self, longitude, latitude) -> np.ndarray:
        from pyproj import Geod

        longitude, latitude = np.asarray(longitude, dtype=np.float64), np.asarray(latitude, dtype=np.float64)
        lon, lat = self.point
        _, _, distance = Geod(ellps="WGS84").inv(np.full(len(longitude), lon), np.full(len(latitude), lat), longitude, latitude)
        return np.asarray(distance)


def _nearest_box(lon: float, lat: float, radius_m: float) -> Bounds:
    """A box holding the circle of ``radius_m`` round (lon, lat); it may cross the antimeridian (west > east)."""
    dlat = radius_m / 110_574.0 * 1.01
    lat_min, lat_max = max(-90.0, lat - dlat), min(90.0, lat + dlat)
    widest = max(abs(lat_min), abs(lat_max))
    if widest >= 89.9 or radius_m > 2_000_000:
        return (-180.0, lat_min, 180.0, lat_max)
    dlon = min(180.0, radius_m / (111_320.0 * np.cos(np.radians(widest))) * 1.01)
    west = lon - dlon if lon - dlon >= -180 else lon - dlon + 360
    east = lon + dlon if lon + dlon <= 180 else lon + dlon - 360
    return (west, lat_min, east, lat_max) if dlon < 180 else (-180.0, lat_min, 180.0, lat_max)
