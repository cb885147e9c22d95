"""Baseline and change of an ATL08 variable per equal-area cell, at any extent.

    request = GridChangeRequest.create(config, roi=(-179.9, -60, 179.9, 80), variable="h_canopy",
                                       periods=(("2018-10-01", "2021-12-31"), ("2022-01-01", "2025-12-31")),
                                       cell_size_km=100, min_shots=100, filters=GOOD_CANOPY)
    result = grid_change(request)
    write_cells_geopackage(result, "change.gpkg")     # hexagons, in the grid's CRS
    write_cells_raster(result, "change.tif")         # with cells="square": one pixel per cell

Each period is streamed through ``Atl08Database.iter_batches``: every batch is
projected, assigned to its cells (vectorised) and folded into per-cell counts, sums and
a value histogram (``cell_statistics``), then dropped. Memory therefore depends on the
batch size and the number of cells, never on the number of segments, so a whole-globe
query runs on a machine with a few GB. Only cells where both periods have at least
``min_shots`` segments are kept; ``change`` is period 2 minus period 1 of the medians.

With a Dask scheduler (``GridChangeRequest.create(..., scheduler="tcp://host:8786")``) the
workers read the database, each its own part of the region, and only their per-cell
statistics come back to be merged (``cluster_statistics``): the same result, computed by
the cluster.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np

from ..callbacks import CheckCancel, Log, Progress
from ..errors import ConfigurationError, OutputError, QueryError
from ..lidar.empty_result import explain_empty
from ..lidar.filters import ParsedFilters
from ..lidar.query import Column, SegmentQuery, resolve_columns
from ..segment_files import check_output_folder, remove_quietly, temporary_sibling
from ..values import whole_number
from .cell_statistics import DEFAULT_RESOLUTION, CellStatistics, CellTable, PeriodStatistics
from .equal_area_grid import EQUAL_EARTH, Grid, HexGrid, SquareGrid

FIELDS = ("count_p1", "median_p1", "mean_p1", "count_p2", "median_p2", "mean_p2", "change")
CELL_ID = "cell_id"
LAYER_NAME = "grid_change"
DEFAULT_PERIODS = (("2018-10-01", "2021-12-31"), ("2022-01-01", "2025-12-31"))
DEFAULT_CELL_SIZE_KM = 100.0
DEFAULT_MIN_SHOTS = 100
DEFAULT_BATCH_ROWS = 250_000
MAX_RASTER_PIXELS = 200_000_000


@dataclass
class GridChange:
    grid: Grid
    variable: str  # the output column, e.g. h_canopy or canopy_h_metrics_p95
    catalogue_variable: str  # its variable in the catalogue, e.g. canopy_h_metrics
    periods: Tuple[Tuple[str, str], Tuple[str, str]]
    min_shots: int
    cell: np.ndarray  # int64 keys of the kept cells
    columns: dict  # FIELDS -> arrays aligned with ``cell``
    segments: Tuple[int, int] = (0, 0)  # segments with a value, per period
    cells_seen: Tuple[int, int] = (0, 0)  # cells with any segment, per period
    histogram_rows: int = 0  # the largest per-period histogram: what memory scaled with
    batches: int = 0
    empty_reasons: Tuple[str, str] = ("", "")  # for a period without segments: why (core.empty_result)

    def __len__(self) -> int:
        return len(self.cell)


def period_statistics(database, spec: SegmentQuery, column: str, grid: Grid, resolution: float, batch_rows: int,
                      progress: Optional[Progress] = None, check_cancel: Optional[CheckCancel] = None):
    """One period's (or one part's) per-cell statistics, streamed from ``database``; and the number of batches."""
    statistics = CellStatistics(resolution)
    batches = 0
    for frame in database.iter_batches(spec, rows=batch_rows, progress=progress):
        if check_cancel:
            check_cancel()
        keys = grid.cell_keys(frame["longitude"].to_numpy(), frame["latitude"].to_numpy())
        statistics.add(keys, frame[column].to_numpy())
        batches += 1
        del frame, keys
    return statistics, batches


CELL_SHAPES = ("hexagon", "square")
DEFAULT_PERIOD_LABELS = (("period 1", "period 1"), ("period 2", "period 2"))


@dataclass(frozen=True)
class GridChangeRequest:
    """Where, what and how finely: one grid change, validated when it is built.

        request = GridChangeRequest.create(config, "change.gpkg", roi=(-179.9, -60, 179.9, 80), cell_size_km=100,
                                           periods=(("2018-10-01", "2021-12-31"), ("2022-01-01", "2025-12-31")),
                                           min_shots=100, filters=GOOD_CANOPY)
        result = grid_change(request, progress=print)

    The cells are hexagons in a GeoPackage, squares in a GeoTIFF (by the output's suffix);
    without an output, hexagons unless ``cells="square"``."""

    database: object  # a DatabaseConfig (opened and closed by the run) or an open Atl08Database (left open)
    specs: Tuple[SegmentQuery, SegmentQuery]  # per period: the region, its times, the variable and the filters
    periods: Tuple[Tuple[str, str], Tuple[str, str]]  # as given, as text
    variable: str  # as given: h_canopy, canopy_h_metrics:95
    column: Column  # its output column and catalogue variable
    grid: Grid
    min_shots: int = DEFAULT_MIN_SHOTS
    output: Optional[Path] = None  # .gpkg (hexagons) or .tif (squares); None: computed, not written
    batch_rows: int = DEFAULT_BATCH_ROWS
    resolution: float = DEFAULT_RESOLUTION  # of the per-cell median, in the variable's units
    scheduler: Optional[str] = None  # a Dask scheduler address (tcp://host:8786): its workers read the database
    scheduler_label: str = "the scheduler"  # names the setting in messages (SCHEDULER)

    @property
    def raster(self) -> bool:
        return self.output is not None and self.output.suffix.lower() in RASTER_SUFFIXES

    @classmethod
    def create(
        cls,
        database,
        output=None,
        roi=None,
        roi_crs: str = "EPSG:4326",
        variable: str = "h_canopy",
        periods: Sequence[Tuple[object, object]] = DEFAULT_PERIODS,
        cell_size_km: float = DEFAULT_CELL_SIZE_KM,
        min_shots: int = DEFAULT_MIN_SHOTS,
        filters: Union[str, Sequence[str], ParsedFilters, None] = None,
        grid_crs: str = EQUAL_EARTH,
        cells: Optional[str] = None,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        resolution: float = DEFAULT_RESOLUTION,
        period_labels: Sequence[Tuple[str, str]] = DEFAULT_PERIOD_LABELS,
        scheduler: Optional[str] = None,
        scheduler_label: str = "the scheduler",
    ) -> "GridChangeRequest":
        """``period_labels`` name each period's start and end in messages (``("PERIOD1_START", "PERIOD1_END")``);
        ``scheduler``: a Dask scheduler address whose workers compute the statistics (None or empty: here),
        named ``scheduler_label`` in messages (``"SCHEDULER"``)."""
        from ..lidar.config import DatabaseConfig

        if not isinstance(database, DatabaseConfig) and not hasattr(database, "iter_batches"):
            raise ConfigurationError(f"{str(database)[:80]!r} is not an ATL08 database or its configuration")
        output = _grid_output(output)
        shape = _cell_shape(cells, output)
        if isinstance(cell_size_km, bool) or not isinstance(cell_size_km, (int, float, np.number)):
            raise QueryError(f"the cell size must be a positive number of kilometres, not {cell_size_km!r}")
        grid = (SquareGrid if shape == "square" else HexGrid)(float(cell_size_km), grid_crs)
        periods = tuple(periods) if isinstance(periods, (list, tuple)) else ()
        if len(periods) != 2 or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in periods):
            raise QueryError(f"give exactly two periods, each as (start, end), not {_shown(periods)}")
        labels = tuple(period_labels)
        if len(labels) != 2:
            raise QueryError(f"give a (start, end) label for each of the two periods, not {_shown(labels)}")
        if not whole_number(min_shots) or min_shots < 1:
            raise QueryError(f"the minimum number of segments per cell must be at least 1, not {min_shots!r}")
        if not whole_number(batch_rows) or batch_rows < 1:
            raise QueryError(f"the batch size must be at least 1 row, not {batch_rows!r}")
        if isinstance(resolution, bool) or not isinstance(resolution, (int, float, np.number)) or not resolution > 0:
            raise QueryError(f"the median resolution must be a positive number, not {resolution!r}")
        product = (database if isinstance(database, DatabaseConfig) else database.config).product
        columns = resolve_columns([variable], product)
        if len(columns) != 1:
            raise QueryError(f"{variable!r} has {len(columns)} columns: name one with a label, as in canopy_h_metrics:50")
        parsed = ParsedFilters.parse(filters, product)  # once, for both periods
        specs = tuple(SegmentQuery.create(roi=roi, start=start, end=end, variables=[variable], filters=parsed, roi_crs=roi_crs,
                                          time_labels=tuple(label), product=product)
                      for (start, end), label in zip(periods, labels))  # validates both periods before any read
        normalised = tuple((str(start), str(end)) for start, end in periods)
        return cls(database, specs, normalised, variable, columns[0], grid, int(min_shots), output, int(batch_rows),
                   float(resolution), _scheduler(scheduler, scheduler_label), scheduler_label)


RASTER_SUFFIXES = (".tif", ".tiff")


def _grid_output(output) -> Optional[Path]:
    if output is None:
        return None
    if not isinstance(output, (str, os.PathLike)) or not str(output).strip():
        raise OutputError(f"the grid output must be a file name ending in .gpkg or .tif, not {output!r}")
    path = Path(output)
    if path.suffix.lower() not in (".gpkg",) + RASTER_SUFFIXES:
        raise OutputError(f"the grid output must be a GeoPackage (.gpkg) or a GeoTIFF (.tif), not {path.name}")
    return path


def _cell_shape(cells: Optional[str], output: Optional[Path]) -> str:
    if cells is not None and cells not in CELL_SHAPES:
        raise QueryError(f"the cells must be {' or '.join(CELL_SHAPES)}, not {cells!r}")
    if output is None:
        return cells or "hexagon"
    shape = "square" if output.suffix.lower() in RASTER_SUFFIXES else "hexagon"
    if cells is not None and cells != shape:
        raise OutputError(f"{output.name} holds {shape}s, not {cells}s: write hexagons to a GeoPackage (.gpkg), "
                          "squares to a GeoTIFF (.tif)")
    return shape


def _scheduler(address, label: str) -> Optional[str]:
    if address is None:
        return None
    if not isinstance(address, str):
        raise ConfigurationError(f"{label} must be a Dask scheduler address such as tcp://host:8786, not {_shown(address)}")
    address = address.strip()
    if address and ("://" not in address and ":" not in address):
        raise ConfigurationError(f"{label} {address!r} is not an address: write it as tcp://host:8786")
    return address or None


def _shown(value) -> str:
    return repr(value)[:120]


def grid_change(request: GridChangeRequest, progress: Optional[Progress] = None, check_cancel: Optional[CheckCancel] = None,
                log: Optional[Log] = None) -> GridChange:
    """Per-cell count, median and mean of the request's variable in its two periods, and the change of the median.

    With ``request.scheduler``, the workers of that Dask cluster read the database and the
    statistics are merged here (``cluster_statistics``); the result is the same."""
    from ..lidar.config import DatabaseConfig
    from ..lidar.database import Atl08Database

    opened = []

    def database():  # on a cluster, opened here only to explain an empty period
        if not isinstance(request.database, DatabaseConfig):
            return request.database
        if not opened:
            opened.append(Atl08Database(request.database))
        return opened[0]

    try:
        return _grid_change(database, request, progress, check_cancel, log)
    finally:
        for each in opened:
            each.close()


def _grid_change(database: Callable, request: GridChangeRequest, progress: Optional[Progress], check_cancel: Optional[CheckCancel],
                 log: Optional[Log]) -> GridChange:
    column = request.column
    if request.scheduler:
        from .cluster_statistics import cluster_statistics

        if log:
            log(f"computing on the Dask cluster at {request.scheduler}")
        periods = cluster_statistics(request, progress, check_cancel)
    else:
        periods = []
        for index, spec in enumerate(request.specs):
            share = (lambda f, i=index: progress((i + f) / 2)) if progress else None
            statistics, batches = period_statistics(database(), spec, column.name, request.grid, request.resolution,
                                                    request.batch_rows, share, check_cancel)
            table = statistics.result()
            periods.append(PeriodStatistics(table, statistics.values_added, batches, statistics.histogram_rows))
    tables = [period.table for period in periods]
    segments = [period.values_added for period in periods]
    if log:
        for index, period in enumerate(periods):
            (start, end) = request.periods[index]
            log(f"period {index + 1} ({start} to {end}): {period.values_added:,} segments with a value in {len(period.table):,} cells")
    cells, data = _combine(tables[0], tables[1], request.min_shots)
    reasons = tuple(explain_empty(database(), spec, value_column=column.attribute) if not count else ""
                    for spec, count in zip(request.specs, segments))
    if progress:
        progress(1.0)
    return GridChange(request.grid, column.name, column.variable, request.periods, request.min_shots, cells, data, tuple(segments),
                      tuple(len(table) for table in tables), max(period.histogram_rows for period in periods),
                      sum(period.batches for period in periods), reasons)


def _combine(first: CellTable, second: CellTable, min_shots: int):
    keep_first = first.count >= min_shots
    keep_second = second.count >= min_shots
    cells, a, b = np.intersect1d(first.cell[keep_first], second.cell[keep_second], assume_unique=True, return_indices=True)
    p1 = {name: values[keep_first][a] for name, values in (("count", first.count), ("median", first.median), ("mean", first.mean))}
    p2 = {name: values[keep_second][b] for name, values in (("count", second.count), ("median", second.median), ("mean", second.mean))}
    data = {
        "count_p1": p1["count"], "median_p1": p1["median"], "mean_p1": p1["mean"],
        "count_p2": p2["count"], "median_p2": p2["median"], "mean_p2": p2["mean"],
        "change": p2["median"] - p1["median"],
    }
    return cells, data


# --------------------------------------------------------------------------- outputs


def _writable_target(path: Path, suffixes: Sequence[str]) -> Path:
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise OutputError(f"the output must end in {' or '.join(suffixes)}, not {path.name}")
    check_output_folder(path)
    return path


def write_cells_geopackage(result: GridChange, path, before_publish: Optional[Callable[[Path], None]] = None) -> Path:
    """The kept cells as polygons in the grid's CRS (layer ``grid_change``), written atomically.

    ``before_publish(temporary_path)`` runs on the complete file before the rename (the
    QGIS side stores the layer styles there)."""
    from osgeo import gdal, ogr, osr

    ogr.UseExceptions()
    gdal.UseExceptions()
    path = _writable_target(path, (".gpkg",))
    temporary = temporary_sibling(path)
    try:
        dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(temporary))
        srs = osr.SpatialReference()
        srs.ImportFromWkt(result.grid.crs_wkt)
        description = (f"{result.variable} per {result.grid.kind} of {result.grid.cell_size_km:g} km, "
                       f"{result.periods[0][0]}..{result.periods[0][1]} and {result.periods[1][0]}..{result.periods[1][1]}, "
                       f"at least {result.min_shots} segments in both")
        layer = dataset.CreateLayer(LAYER_NAME, srs, ogr.wkbMultiPolygon, options=[
            "GEOMETRY_NAME=geometry", "FID=fid", "SPATIAL_INDEX=YES", f"DESCRIPTION={description}"])
        layer.CreateField(ogr.FieldDefn(CELL_ID, ogr.OFTInteger64))
        for name in FIELDS:
            layer.CreateField(ogr.FieldDefn(name, ogr.OFTInteger64 if name.startswith("count") else ogr.OFTReal))
        geometries = _as_multipolygons(result.grid.polygons(result.cell))
        definition = layer.GetLayerDefn()
        layer.StartTransaction()
        for index, key in enumerate(result.cell):
            feature = ogr.Feature(definition)
            feature.SetField(CELL_ID, int(key))
            for name in FIELDS:
                value = result.columns[name][index]
                feature.SetField(name, int(value) if name.startswith("count") else float(value))
            feature.SetGeometry(ogr.CreateGeometryFromWkb(geometries[index]))
            layer.CreateFeature(feature)
        layer.CommitTransaction()
        dataset = None
        if before_publish:
            before_publish(temporary)
        os.replace(temporary, path)
    except BaseException as error:
        dataset = None
        remove_quietly(temporary)
        if isinstance(error, (OSError, RuntimeError)):
            raise OutputError(f"cannot write {path}: {getattr(error, 'strerror', None) or error}") from error
        raise
    return path


def _as_multipolygons(geometries: np.ndarray) -> np.ndarray:
    import shapely

    out = []
    for geometry in geometries:  # one per kept cell, thousands at most
        parts = [g for g in shapely.get_parts(geometry) if isinstance(g, shapely.Polygon) and not g.is_empty]
        out.append(shapely.to_wkb(shapely.MultiPolygon(parts)))
    return np.array(out, dtype=object)


def write_cells_raster(result: GridChange, path) -> Path:
    """The kept cells of a square grid as a GeoTIFF, one band per field (float32, NaN elsewhere), written atomically."""
    import rasterio
    from rasterio.transform import from_origin

    if not isinstance(result.grid, SquareGrid):
        raise OutputError("a raster needs a square grid (hexagons are written as polygons)")
    path = _writable_target(path, (".tif", ".tiff"))
    if not len(result):
        raise OutputError("no cell has enough segments in both periods: nothing to write")
    columns, rows = result.grid.columns_rows(result.cell)
    size = result.grid.size_m
    width, height = int(columns.max() - columns.min() + 1), int(rows.max() - rows.min() + 1)
    if width * height > MAX_RASTER_PIXELS:
        raise OutputError(f"a {width} x {height} raster is too large: choose larger cells or a smaller region")
    x, y = width - 1 - (columns.max() - columns), rows.max() - rows  # pixel column, row (north up)
    transform = from_origin(columns.min() * size, (rows.max() + 1) * size, size, size)
    temporary = temporary_sibling(path)
    try:
        with rasterio.open(temporary, "w", driver="GTiff", width=width, height=height, count=len(FIELDS), dtype="float32",
                           crs=result.grid.crs_wkt, transform=transform, nodata=np.nan, compress="deflate", tiled=True,
                           blockxsize=256, blockysize=256) as raster:
            for band, name in enumerate(FIELDS, start=1):
                pixels = np.full((height, width), np.nan, dtype=np.float32)
                pixels[y, x] = result.columns[name]
                raster.write(pixels, band)
                raster.set_band_description(band, name)
            raster.update_tags(variable=result.variable, min_shots=str(result.min_shots),
                               period1="/".join(result.periods[0]), period2="/".join(result.periods[1]))
        os.replace(temporary, path)
    except BaseException as error:
        remove_quietly(temporary)
        if isinstance(error, (OSError, rasterio.errors.RasterioError)):
            raise OutputError(f"cannot write {path}: {getattr(error, 'strerror', None) or error}") from error
        raise
    return path
