"""District zonal statistics computed locally (rasterio + numpy), written to a GeoPackage: no server needed.

    result = district_stats_embedded(DistrictStatsRequest.create(districts, ["ndvi_composite_2019.tif", "ndvi_composite_2024.tif"],
                                                                 "district_stats.gpkg", classes=5))
    result.layer("ndvi_stats_latest").breaks      # natural breaks on mean_ndvi

The statistics are PostGIS's ``ST_SummaryStatsAgg(ST_Clip(rast, geom, true), 1, true)``:
a pixel belongs to a district when its centre is inside the polygon, decided by the
same GDAL rasterizer ``ST_Clip`` uses (so pixel centres lying exactly on an edge go
the same way as in PostGIS); nodata pixels (and NaN, whatever the declared nodata)
are left out; ``stddev`` is the population standard deviation. Each district's window
is read in strips of bounded size and combined with Chan's pairwise update. The median and
the 10th and 90th percentiles are exact: numpy's default (linear) interpolation between the
two nearest ranks, which is PostgreSQL's ``percentile_cont``; they need the district's valid
values, kept in the raster's own type (4 bytes a pixel for a float32 composite) until the
district is done.

Tables and the latest/change rules: see ``statistics``; writing: ``geopackage``.
"""

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..callbacks import CheckCancel, Log, Progress
from ..errors import ConfigurationError, StorageError
from .geopackage import BeforePublish, export_latest, publish_statistics
from .statistics import DistrictStatsRequest, StatsLayout, StatsResult, rasters_by_year, same_crs, say, stats_rows

STRIP_PIXELS = 4_000_000  # pixels of one district read and rasterized at once
WHOLE_BAND_BYTES = 256 * 2**20  # bands up to this size are read once rather than window by window


@dataclass(frozen=True)
class RasterInfo:
    path: Path
    year: int
    crs: str
    width: int
    height: int
    transform: Tuple[float, ...]
    nodata: Optional[float]


def raster_info(path, year: int) -> RasterInfo:
    """The raster's grid and CRS, with clear errors for what the statistics cannot use."""
    import rasterio
    from rasterio.errors import RasterioIOError

    from .statistics import _crs_text

    path = Path(path)
    try:
        with rasterio.open(path) as dataset:
            if dataset.crs is None:
                raise ConfigurationError(f"{path.name} has no coordinate reference system: assign one (e.g. with "
                                         "QGIS's Assign Projection) before computing district statistics")
            if dataset.count < 1:
                raise ConfigurationError(f"{path.name} has no band")
            return RasterInfo(path, year, _crs_text(dataset.crs.to_wkt(), f"raster {path.name}"), dataset.width,
                              dataset.height, tuple(dataset.transform)[:6], dataset.nodatavals[0])
    except RasterioIOError as error:
        raise StorageError(f"cannot open the raster {path}: {error}") from None


def check_rasters(rasters) -> Tuple[Dict[int, RasterInfo], str]:
    """Rasters by year and their common CRS (the CRS of every table)."""
    infos = {year: raster_info(path, year) for year, path in rasters_by_year(rasters).items()}
    first = next(iter(infos.values()))
    for info in infos.values():
        if not same_crs(info.crs, first.crs):
            raise ConfigurationError(
                f"the composites are in different coordinate reference systems ({first.path.name}: {first.crs[:40]}, "
                f"{info.path.name}: {info.crs[:40]}): reproject them to one CRS first")
    return infos, first.crs


QUANTILES = {"median": 50.0, "p10": 10.0, "p90": 90.0}  # statistic name: percentile


def quantiles(values: np.ndarray) -> Dict[str, float]:
    """Median, 10th and 90th percentile of ``values`` (NaN when empty; reordered in place): numpy's linear
    interpolation, computed in float64 as PostgreSQL's ``percentile_cont`` over double precision values is."""
    if not values.size:
        return {name: math.nan for name in QUANTILES}
    # the values are the caller's own copy: partitioning them in place saves a second copy of a large district
    found = np.percentile(values.astype(np.float64, copy=False), list(QUANTILES.values()), overwrite_input=True)
    return {name: float(value) for name, value in zip(QUANTILES, found)}


class _Accumulator:
    """Count, min, max, mean and sum of squared deviations, combined batch by batch (Chan et al.)."""

    __slots__ = ("count", "mean", "m2", "minimum", "maximum")

    def __init__(self):
        self.count, self.mean, self.m2 = 0, 0.0, 0.0
        self.minimum, self.maximum = math.inf, -math.inf

    def add(self, values: np.ndarray) -> None:
        n = values.size
        if not n:
            return
        mean = float(values.mean())
        m2 = float(np.square(values - mean).sum())
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total
        self.minimum = min(self.minimum, float(values.min()))
        self.maximum = max(self.maximum, float(values.max()))

    def values(self) -> Tuple[int, float, float, float, float]:
        if not self.count:
            return 0, math.nan, math.nan, math.nan, math.nan
        return self.count, self.minimum, self.maximum, self.mean, math.sqrt(max(self.m2, 0.0) / self.count)


def _pixel_window(geometry, inverse, width: int, height: int) -> Optional[Tuple[int, int, int, int]]:
    """(row0, row1, col0, col1), end exclusive: pixels whose centres may fall inside the geometry's bounds."""
    minx, miny, maxx, maxy = geometry.bounds
    corners = [inverse * (x, y) for x in (minx, maxx) for y in (miny, maxy)]
    cols = [c for c, _ in corners]
    rows = [r for _, r in corners]
    # one pixel of margin on each side: the rasterizer, not this rounding, decides
    col0, col1 = max(0, math.floor(min(cols) - 0.5)), min(width, math.ceil(max(cols) - 0.5) + 1)
    row0, row1 = max(0, math.floor(min(rows) - 0.5)), min(height, math.ceil(max(rows) - 0.5) + 1)
    if col0 >= col1 or row0 >= row1:
        return None
    return row0, row1, col0, col1


def zonal_statistics(path, geometries: Sequence, band: int = 1, progress: Optional[Progress] = None,
                     check_cancel: Optional[CheckCancel] = None) -> Dict[str, np.ndarray]:
    """``count``, ``min``, ``max``, ``mean``, ``stddev``, ``median``, ``p10``, ``p90`` per geometry (in the raster's CRS)
    over ``band``.

    Statistics are NaN where the count is 0 (outside the raster, only nodata, empty geometry).
    """
    import rasterio
    from rasterio.features import rasterize
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    n = len(geometries)
    result = {name: np.full(n, np.nan) for name in ("min", "max", "mean", "stddev", *QUANTILES)}
    result["count"] = np.zeros(n, dtype=np.int64)
    # GDAL decodes compressed GeoTIFF blocks on several threads when asked (a quarter faster on 2 cores)
    options = {"NUM_THREADS": "ALL_CPUS"} if Path(path).suffix.lower() in (".tif", ".tiff") else {}
    with rasterio.open(path, **options) as dataset:
        transform = dataset.transform
        inverse = ~transform
        nodata = dataset.nodatavals[band - 1]
        whole = None
        if dataset.width * dataset.height * np.dtype(dataset.dtypes[band - 1]).itemsize <= WHOLE_BAND_BYTES:
            whole = dataset.read(band)

        def read(row0, row1, col0, col1):
            if whole is not None:
                return whole[row0:row1, col0:col1]
            return dataset.read(band, window=Window(col0, row0, col1 - col0, row1 - row0))

        for index, geometry in enumerate(geometries):
            if check_cancel and index % 16 == 0:
                check_cancel()
            if progress and index % 16 == 0:
                progress(index / n)
            if geometry is None or geometry.is_empty:
                continue
            window = _pixel_window(geometry, inverse, dataset.width, dataset.height)
            if window is None:
                continue
            row0, row1, col0, col1 = window
            strip_rows = max(1, STRIP_PIXELS // (col1 - col0))
            accumulator = _Accumulator()
            kept = []  # the district's valid values, for its percentiles
            for top in range(row0, row1, strip_rows):
                bottom = min(row1, top + strip_rows)
                values = read(top, bottom, col0, col1)
                inside = rasterize([(geometry, 1)], out_shape=values.shape, fill=0, dtype="uint8", all_touched=False,
                                   transform=window_transform(Window(col0, top, col1 - col0, bottom - top), transform)).view(bool)
                raw = values[inside]
                picked = raw.astype(np.float64)
                valid = np.isfinite(picked)
                if nodata is not None and not math.isnan(nodata):
                    valid &= picked != nodata
                accumulator.add(picked[valid])
                kept.append(raw[valid])
            count, minimum, maximum, mean, stddev = accumulator.values()
            result["count"][index] = count
            result["min"][index], result["max"][index] = minimum, maximum
            result["mean"][index], result["stddev"][index] = mean, stddev
            for name, value in quantiles(np.concatenate(kept) if kept else np.empty(0)).items():
                result[name][index] = value
    if progress:
        progress(1.0)
    return result


def district_stats_embedded(
    request: DistrictStatsRequest,
    progress: Optional[Progress] = None,
    check_cancel: Optional[CheckCancel] = None,
    log: Optional[Log] = None,
    before_publish: BeforePublish = None,
) -> StatsResult:
    """Per district and year: pixel count, min, max, mean, stddev, median, 10th and 90th percentile of band 1 of each
    composite, in ``request.output_gpkg``.

    Writes ``ndvi_stats_<year>`` for each year given, updates ``ndvi_stats_latest`` (an
    existing file keeps the years of earlier runs; ``request.replace_latest`` starts that table
    afresh from these years) and rebuilds ``ndvi_stats_change`` from every year table in
    the file; geometries in the rasters' CRS. ``request.statistic`` picks the field the maps
    are classified on (default ``mean_ndvi``); ``request.geojson``: the latest table exported too.
    """
    if not request.embedded:
        raise ConfigurationError("this request computes the statistics in PostGIS (it has a connection): run it with district_stats")
    layout: StatsLayout = request.layout
    districts, output_gpkg = request.districts, request.output_gpkg
    started = time.perf_counter()
    infos, crs = check_rasters(request.by_year)
    prepared, repairs = districts.prepared(crs)
    for identifier, reason in repairs:
        say(log, f"district {identifier!r}: {reason}")
    years = {}
    share = 0.95 / len(infos)
    for number, (year, info) in enumerate(infos.items()):
        say(log, f"{year}: statistics of {len(prepared.ids)} district(s) over {info.path.name} "
                 f"({info.width} x {info.height} pixels)")

        def part(fraction, number=number):
            if progress:
                progress(number * share + fraction * share)

        values = zonal_statistics(info.path, prepared.geometries, progress=part, check_cancel=check_cancel)
        years[year] = stats_rows(layout, prepared, year, values["count"], {
            "min_ndvi": values["min"], "max_ndvi": values["max"], "mean_ndvi": values["mean"],
            "stddev_ndvi": values["stddev"], "median_ndvi": values["median"], "p10_ndvi": values["p10"],
            "p90_ndvi": values["p90"]})
        empty = int((values["count"] == 0).sum())
        if empty:
            say(log, f"{year}: {empty} district(s) have no valid pixel (outside the raster or only nodata)")
    layers = publish_statistics(output_gpkg, layout, prepared, years, request.classes, replace_latest=request.replace_latest,
                                before_publish=before_publish, check_cancel=check_cancel)
    if progress:
        progress(1.0)
    say(log, f"district statistics written to {output_gpkg.name} in {time.perf_counter() - started:.1f} s")
    return export_latest(request, StatsResult(output_gpkg, layers, tuple(infos), repairs, crs, len(prepared.ids)))
