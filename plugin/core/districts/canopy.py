"""ATL08 segments per district and year: count, median, mean and 95th percentile of one variable.

    request = CanopyStatsRequest.create(districts, load_config("configs/sample_local.yaml"), "canopy_stats.gpkg",
                                        variable="h_canopy", filters="h_canopy between 5 60\\nnight_flag == 1",
                                        start="2019-01-01")
    result = district_stats_atl08(request)

The segments inside the districts are read in batches (``Atl08Database.iter_batches``
with the quality filters applied in TileDB), projected into the districts' CRS and
assigned to districts with a shapely ``STRtree`` (a segment strictly inside the polygon,
as the raster modes take pixel centres; a segment in two overlapping districts counts in
both). The year is the UTC year of the segment's ``time``. Segments whose value is NaN
or a fill value are not counted.

Tables follow the layout of the NDVI statistics (``statistics``: the districts' id field
and other attributes under their own names and types), named after the
variable's column: ``<column>_stats_<year>`` with ``segment_count``,
``median_<column>``, ``mean_<column>``, ``p95_<column>`` (numpy's linear-interpolation
percentile, like PostgreSQL's ``percentile_cont``), plus ``<column>_stats_latest`` and
``<column>_stats_change``, geometries in the districts' CRS. Maps are classified on the
median by default (robust to the odd tall outlier that survives the filters).
"""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..callbacks import CheckCancel, Log, Progress
from ..errors import ConfigurationError, QueryError
from ..lidar.filters import ParsedFilters
from ..lidar.query import SegmentQuery
from ..values import whole_number
from .geopackage import BeforePublish, publish_statistics
from .statistics import Districts, StatsLayout, StatsResult, check_classes, check_field_names, optional_path, say, stats_rows

FILL_THRESHOLD = 3.0e38  # ATL08 float fill value is 3.4028235e+38


def atl08_layout(column: str, statistic: Optional[str] = None) -> StatsLayout:
    layout = StatsLayout(f"{column}_stats", "segment_count", (f"median_{column}", f"mean_{column}", f"p95_{column}"),
                         f"median_{column}")
    return layout.with_primary(statistic)


def _column_for(variable: str) -> str:
    from ..lidar.query import resolve_columns
    from ..lidar.atl08.catalogue import get_variable

    columns = resolve_columns([variable])
    if len(columns) != 1:
        labels = get_variable(variable.split(":")[0].strip()).labels
        example = f", for example '{variable}:{labels[-1]}'" if labels else ""
        raise QueryError(f"'{variable}' has {len(columns)} values per segment: pick one label{example}")
    return columns[0].name


@dataclass(frozen=True)
class CanopyStatsRequest:
    """ATL08 statistics per district and year: which districts, database, variable, times and filters, published
    where, validated when it is built.

    ``database``: a ``DatabaseConfig`` (opened for the run) or an open ``Atl08Database``. ``filters``, ``start``,
    ``end``: as in ``SegmentQuery.create``; ``spec`` holds them (over the whole database until the run narrows it to
    the districts). The latest and change tables follow the rules of ``statistics`` (an existing file keeps earlier
    years; ``replace_latest`` starts the latest table afresh)."""

    districts: Districts
    database: object
    output_gpkg: Path
    variable: str  # as given: h_canopy, canopy_h_metrics:95
    column: str  # its output column
    spec: SegmentQuery
    classes: int = 5
    statistic: Optional[str] = None  # the field the maps are classified on (default median_<column>)
    replace_latest: bool = False
    batch_rows: int = 500_000

    @property
    def layout(self) -> StatsLayout:
        return atl08_layout(self.column, self.statistic)

    @classmethod
    def create(cls, districts: Districts, database, output_gpkg, variable: str = "h_canopy",
               filters: Union[str, Sequence[str], ParsedFilters, None] = None, start=None, end=None, classes: int = 5,
               statistic: Optional[str] = None, replace_latest: bool = False, batch_rows: int = 500_000) -> "CanopyStatsRequest":
        from ..lidar.config import DatabaseConfig

        if not isinstance(districts, Districts):
            raise ConfigurationError(f"the districts must be Districts (Districts.create or Districts.from_file), not {type(districts).__name__}")
        if not isinstance(database, DatabaseConfig) and not hasattr(database, "iter_batches"):
            raise ConfigurationError(f"{str(database)[:80]!r} is not an ATL08 database or its configuration")
        output = optional_path(output_gpkg, "the statistics GeoPackage")
        if output is None:
            raise ConfigurationError("no GeoPackage for the statistics: give output_gpkg")
        column = _column_for(variable)
        check_field_names(atl08_layout(column, statistic), districts)  # an unknown statistic is refused here, and a clash
        check_classes(classes)
        if not whole_number(batch_rows) or batch_rows < 1:
            raise QueryError(f"the batch size must be at least 1 row, not {batch_rows!r}")
        product = (database if isinstance(database, DatabaseConfig) else database.config).product
        spec = SegmentQuery.create(start=start, end=end, variables=[variable], filters=ParsedFilters.parse(filters, product),
                                   product=product)
        return cls(districts, database, output, variable, column, spec, int(classes), statistic, bool(replace_latest),
                   int(batch_rows))


def district_stats_atl08(
    request: CanopyStatsRequest,
    progress: Optional[Progress] = None,
    check_cancel: Optional[CheckCancel] = None,
    log: Optional[Log] = None,
    before_publish: BeforePublish = None,
) -> StatsResult:
    """Per district and year: ``segment_count``, median, mean, 95th percentile of the request's variable, in its
    GeoPackage; ``before_publish(temporary_gpkg, layers)`` runs on the complete file before it is renamed into place."""
    import shapely
    from pyproj import CRS, Transformer

    from ..lidar.config import DatabaseConfig
    from ..lidar.database import Atl08Database

    started = time.perf_counter()
    column, layout, output_gpkg = request.column, request.layout, request.output_gpkg
    prepared, repairs = request.districts.prepared(request.districts.crs)
    for identifier, reason in repairs:
        say(log, f"district {identifier!r}: {reason}")
    geometries = list(prepared.geometries)
    database = request.database
    if isinstance(database, DatabaseConfig):
        database = Atl08Database(database)
    region = shapely.union_all([g for g in geometries if not g.is_empty])
    spec = request.spec.over(region, prepared.crs)
    transformer = Transformer.from_crs(CRS.from_epsg(4326), CRS.from_user_input(prepared.crs), always_xy=True)
    tree = shapely.STRtree(geometries)
    groups: Dict[Tuple[int, int], List[np.ndarray]] = {}
    segments = 0

    def part(fraction: float) -> None:
        if progress:
            progress(0.9 * fraction)

    for batch in database.iter_batches(spec, rows=request.batch_rows, progress=part):
        if check_cancel:
            check_cancel()
        values = batch[column].to_numpy(dtype=np.float64)
        keep = np.isfinite(values) & (np.abs(values) < FILL_THRESHOLD)
        if not keep.any():
            continue
        x, y = transformer.transform(batch["longitude"].to_numpy()[keep], batch["latitude"].to_numpy()[keep])
        years = batch["time"].dt.year.to_numpy()[keep]
        values = values[keep]
        point_index, district_index = tree.query(shapely.points(x, y), predicate="within")
        if not len(point_index):
            continue
        segments += len(point_index)
        keys = district_index.astype(np.int64) * 10000 + years[point_index]
        order = np.argsort(keys, kind="stable")
        keys, picked = keys[order], values[point_index][order]
        bounds = np.flatnonzero(np.diff(keys)) + 1
        for key, chunk in zip(keys[np.concatenate([[0], bounds])], np.split(picked, bounds)):
            groups.setdefault((int(key // 10000), int(key % 10000)), []).append(chunk)
    if not groups:
        raise QueryError(f"no ATL08 segment with a valid {column} inside the districts for these dates and filters")
    say(log, f"{segments} segment(s) with a valid {column} inside the districts")
    years_rows = {}
    n = len(geometries)
    for year in sorted({year for _, year in groups}):
        counts = np.zeros(n, dtype=np.int64)
        stats = {name: np.full(n, np.nan) for name in layout.stat_fields}
        for index in range(n):
            chunks = groups.get((index, year))
            if not chunks:
                continue
            values = np.concatenate(chunks)
            counts[index] = len(values)
            stats[f"median_{column}"][index] = np.median(values)
            stats[f"mean_{column}"][index] = values.mean()
            stats[f"p95_{column}"][index] = np.percentile(values, 95)
        years_rows[year] = stats_rows(layout, prepared, year, counts, stats)
    layers = publish_statistics(output_gpkg, layout, prepared, years_rows, request.classes, replace_latest=request.replace_latest,
                                before_publish=before_publish, check_cancel=check_cancel)
    if progress:
        progress(1.0)
    say(log, f"ATL08 district statistics written to {output_gpkg.name} in {time.perf_counter() - started:.1f} s")
    return StatsResult(output_gpkg, layers, tuple(sorted(years_rows)), repairs, prepared.crs, n)
