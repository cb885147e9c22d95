"""Raster values at segment points: any rasters, or the NDVI composite of each segment's year, added as fields.

    request = SampleRequest.create("atl08_h_canopy.gpkg", "atl08_with_ndvi.gpkg",
                                   rasters=[("canopy_cover", "cover.tif"), ("dem", "dem.tif", 1)])
    request = SampleRequest.create("atl08_h_canopy.gpkg", "atl08_with_ndvi.gpkg",
                                   composites={2019: "ndvi_composite_2019.tif", 2021: "ndvi_composite_2021.tif"})
    result = sample_rasters_at_points(request)      # result.path, result.rows, result.fields

The value of a raster at a point is the value of the pixel that contains the point (no
interpolation: what QGIS's Identify tool and ``gdallocationinfo`` show), read from the
chosen band (band 1 by default) after the point is transformed into the raster's CRS
(pyproj, ``always_xy``). A point outside the raster, on a nodata pixel (the declared
nodata value or the GDAL mask) or on NaN gets NULL.

With ``composites`` (``{year: path}``; ``districts.statistics.rasters_by_year`` makes it
from names such as ``ndvi_composite_2021.tif``) one field, ``ndvi``, holds for each
segment the value of the composite of its acquisition year (the UTC year of its ``time``
field): a segment of 2021 gets the 2021 composite's value, a segment of a year without a
composite gets NULL.

The output is a copy of the point layer (every field and the geometry as they were) with
the new fields (double precision) after the others, written under a temporary name
beside the target and renamed when complete; its format follows the output's extension
(``segment_files.FORMATS``).
"""

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..callbacks import CheckCancel, Log, Progress
from ..errors import ConfigurationError, OutputError, StorageError
from ..segment_files import check_output_folder, copy_to_format, format_for_path, remove_quietly, temporary_sibling

NDVI_FIELD = "ndvi"
TIME_FIELD = "time"
READ_WINDOW = 1024  # pixels a side of the windows read around the points: one read per window that holds points


@dataclass(frozen=True)
class SampledRaster:
    """One field of the output: its name, the raster it is read from and the band."""

    field: str
    path: Path
    band: int = 1


@dataclass(frozen=True)
class SampleRequest:
    """Which points, which rasters (``rasters``) or which yearly composites (``composites``), written where;
    validated when it is built."""

    points: Path
    output: Path
    rasters: Tuple[SampledRaster, ...] = ()
    composites: Tuple[Tuple[int, Path], ...] = ()  # (year, composite): the ``ndvi`` field by the segment's year
    layer: Optional[str] = None  # the points' layer in a file of several layers
    time_field: str = TIME_FIELD

    @property
    def fields(self) -> Tuple[str, ...]:
        return (NDVI_FIELD,) if self.composites else tuple(r.field for r in self.rasters)

    @classmethod
    def create(cls, points, output, rasters: Optional[Sequence] = None, composites: Optional[Mapping] = None,
               layer: Optional[str] = None, time_field: str = TIME_FIELD) -> "SampleRequest":
        """``rasters``: ``(field, path)`` or ``(field, path, band)`` tuples, or ``SampledRaster``; ``composites``:
        ``{year: path}``. Exactly one of the two."""
        points = _path(points, "the point layer")
        output = _path(output, "the output file")
        if not points.exists():
            raise ConfigurationError(f"the point layer {points} does not exist")
        format_for_path(output)  # an unsupported extension is refused before any work
        if output.resolve() == points.resolve():
            raise ConfigurationError(f"the output {output.name} is the point layer itself: choose another file name")
        if bool(rasters) == bool(composites):
            raise ConfigurationError("choose either rasters to sample or the NDVI composites by year, not both or neither")
        chosen: List[SampledRaster] = []
        for item in rasters or ():
            if not isinstance(item, SampledRaster):
                if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
                    raise ConfigurationError(f"a raster to sample is (field name, path) or (field name, path, band), not {item!r}")
                item = SampledRaster(str(item[0]), _path(item[1], f"the raster of field {item[0]!r}"),
                                     item[2] if len(item) == 3 else 1)
            if not item.field.strip() or "\x00" in item.field:
                raise ConfigurationError(f"the field name {item.field!r} of {item.path.name} cannot be used: give it a name")
            if not isinstance(item.band, int) or isinstance(item.band, bool) or item.band < 1:
                raise ConfigurationError(f"the band of {item.path.name} must be a number from 1, not {item.band!r}")
            chosen.append(item)
        names = {}
        for item in chosen:
            if item.field.lower() in names:
                raise ConfigurationError(f"two rasters would write the field {item.field!r} ({names[item.field.lower()]} and "
                                         f"{item.path.name}): give them different names")
            names[item.field.lower()] = item.path.name
        by_year = []
        for year, path in sorted((composites or {}).items()):
            if isinstance(year, bool) or not isinstance(year, (int, np.integer)):
                raise ConfigurationError(f"the composites are keyed by year (an integer), not {year!r}")
            by_year.append((int(year), _path(path, f"the composite of {year}")))
        for path in [r.path for r in chosen] + [p for _, p in by_year]:
            if not path.exists():
                raise ConfigurationError(f"the raster {path} does not exist")
        if not isinstance(time_field, str) or not time_field.strip():
            raise ConfigurationError("the segments' time field has no name")
        return cls(points, output, tuple(chosen), tuple(by_year), layer, time_field)


@dataclass(frozen=True)
class SampledPoints:
    path: Path
    rows: int
    fields: Tuple[str, ...]
    valued: Dict[str, int]  # per new field, the number of points that got a value (the others are NULL)


def _path(value, what: str) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ConfigurationError(f"{what} must be a file name, not {value!r}")
    return Path(value)


# --------------------------------------------------------------------------- sampling


def raster_values(path, xs: np.ndarray, ys: np.ndarray, points_crs: str, band: int = 1,
                  check_cancel: Optional[CheckCancel] = None) -> np.ndarray:
    """The value of band ``band`` of the raster at each point (given in ``points_crs``): the pixel containing the
    point; NaN outside the raster, on nodata, masked or NaN pixels."""
    import rasterio
    from rasterio.errors import RasterioIOError
    from rasterio.windows import Window

    path = Path(path)
    values = np.full(len(xs), np.nan)
    try:
        dataset = rasterio.open(path)
    except RasterioIOError as error:
        raise StorageError(f"cannot open the raster {path}: {error}") from None
    with dataset:
        if dataset.crs is None:
            raise ConfigurationError(f"{path.name} has no coordinate reference system: assign one (e.g. with QGIS's "
                                     "Assign Projection) before sampling it")
        if band > dataset.count:
            raise ConfigurationError(f"{path.name} has {dataset.count} band(s), so it has no band {band}")
        x, y = _transformed(np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64), points_crs,
                            dataset.crs.to_wkt())
        columns, rows = ~dataset.transform * (x, y)
        with np.errstate(invalid="ignore"):
            columns, rows = np.floor(columns), np.floor(rows)
            inside = np.isfinite(columns) & np.isfinite(rows) & (columns >= 0) & (columns < dataset.width) & \
                (rows >= 0) & (rows < dataset.height)
        picked = np.flatnonzero(inside)
        if not picked.size:
            return values
        row = rows[picked].astype(np.int64)
        column = columns[picked].astype(np.int64)
        windows = (row // READ_WINDOW) * (dataset.width // READ_WINDOW + 1) + column // READ_WINDOW
        order = np.argsort(windows, kind="stable")
        keys, starts = np.unique(windows[order], return_index=True)
        for number, start in enumerate(starts):
            if check_cancel:
                check_cancel()
            members = order[start:starts[number + 1] if number + 1 < len(starts) else len(order)]
            top, left = int(row[members[0]] // READ_WINDOW * READ_WINDOW), int(column[members[0]] // READ_WINDOW * READ_WINDOW)
            window = Window(left, top, min(READ_WINDOW, dataset.width - left), min(READ_WINDOW, dataset.height - top))
            block = dataset.read(band, window=window, masked=True)
            found = block[row[members] - top, column[members] - left]
            data = np.ma.getdata(found).astype(np.float64)
            data[np.ma.getmaskarray(found)] = np.nan
            values[picked[members]] = data
    return values


def _transformed(xs: np.ndarray, ys: np.ndarray, source: str, target: str) -> Tuple[np.ndarray, np.ndarray]:
    from pyproj import CRS, Transformer

    source_crs, target_crs = CRS.from_user_input(source), CRS.from_user_input(target)
    if source_crs == target_crs:
        return xs, ys
    transformer = Transformer.from_crs(source_crs, target_crs, always_xy=True)
    x, y = transformer.transform(xs, ys, errcheck=False)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    bad = ~(np.isfinite(x) & np.isfinite(y))  # PROJ marks points it cannot transform with inf
    x[bad], y[bad] = np.nan, np.nan
    return x, y


# --------------------------------------------------------------------------- points


@dataclass
class _Points:
    fids: np.ndarray
    xs: np.ndarray
    ys: np.ndarray
    years: Optional[np.ndarray]  # the UTC year of each segment, 0 when unknown
    crs: str
    layer: str
    fields: Tuple[str, ...]


def _open_vector(path: Path):
    from osgeo import gdal

    gdal.UseExceptions()
    options = []
    if path.suffix.lower() == ".csv":  # the query's CSV: points from its longitude and latitude columns, in EPSG:4326
        options = ["X_POSSIBLE_NAMES=longitude", "Y_POSSIBLE_NAMES=latitude", "AUTODETECT_TYPE=YES", "KEEP_GEOM_COLUMNS=NO"]
    try:
        return gdal.OpenEx(str(path), gdal.OF_VECTOR, open_options=options)
    except RuntimeError as error:
        raise ConfigurationError(f"cannot open the point layer {path.name}: {error}") from None


def _layer_of(dataset, path: Path, name: Optional[str]):
    layer = dataset.GetLayerByName(name) if name else dataset.GetLayer(0)
    if layer is None:
        raise ConfigurationError(f"{path.name} has no layer {name!r}" if name else f"{path.name} has no layer")
    return layer


def read_points(path: Path, layer_name: Optional[str] = None, time_field: Optional[str] = None,
                shown: Optional[str] = None) -> _Points:
    """Feature ids, coordinates and (with ``time_field``) acquisition years of a point layer; errors name ``shown``
    (the user's file) rather than ``path``."""
    from osgeo import ogr

    dataset = _open_vector(path)
    layer = _layer_of(dataset, path, layer_name)
    shown = shown or path.name
    definition = layer.GetLayerDefn()
    names = tuple(definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount()))
    srs = layer.GetSpatialRef()
    if srs is None:
        raise ConfigurationError(f"the point layer {shown} has no coordinate reference system: set one on the layer")
    crs = srs.ExportToWkt()
    time_index = -1
    if time_field is not None:
        time_index = definition.GetFieldIndex(time_field)
        if time_index < 0:
            raise ConfigurationError(f"the point layer {shown} has no field {time_field!r} with the segments' acquisition "
                                     f"time, which picks each segment's composite; its fields are: {', '.join(names) or 'none'}")
        kind = definition.GetFieldDefn(time_index).GetType()
    fids, xs, ys, years = [], [], [], []
    layer.SetIgnoredFields([name for name in names if name != time_field])  # only the geometry and the time are read
    layer.ResetReading()
    for feature in layer:
        geometry = feature.GetGeometryRef()
        fids.append(feature.GetFID())
        if geometry is None or geometry.IsEmpty():
            xs.append(math.nan)
            ys.append(math.nan)
        else:
            if ogr.GT_Flatten(geometry.GetGeometryType()) != ogr.wkbPoint:
                raise ConfigurationError(f"{shown} holds {geometry.GetGeometryName().lower()} geometries: choose a point layer")
            xs.append(geometry.GetX())
            ys.append(geometry.GetY())
        if time_index >= 0:
            years.append(_year(feature, time_index, kind))
    return _Points(np.asarray(fids, dtype=np.int64), np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64),
                   np.asarray(years, dtype=np.int64) if time_index >= 0 else None, crs, layer.GetName(), names)


def _year(feature, index: int, kind) -> int:
    """The year of a date, date-time (stored in UTC by the query) or ISO text field; 0 when NULL or unreadable."""
    from osgeo import ogr

    if not feature.IsFieldSetAndNotNull(index):
        return 0
    if kind in (ogr.OFTDate, ogr.OFTDateTime):
        return int(feature.GetFieldAsDateTime(index)[0])
    text = feature.GetFieldAsString(index).strip()
    return int(text[:4]) if len(text) >= 4 and text[:4].isdigit() else 0


# --------------------------------------------------------------------------- the operation


def sample_rasters_at_points(request: SampleRequest, progress: Optional[Progress] = None,
                             check_cancel: Optional[CheckCancel] = None, log: Optional[Log] = None) -> SampledPoints:
    """The request's point layer copied to ``request.output`` with one field per raster (or ``ndvi`` by year)."""
    import sqlite3

    output = request.output
    check_output_folder(output)
    output_format = format_for_path(output)
    # The points are copied first, into a GeoPackage beside the output, and read from that copy: the values go back
    # to the copy's own feature ids, whatever ids the source format gives (GeoJSON and FlatGeobuf count from 0).
    staging = temporary_sibling(output, ".gpkg")
    try:
        layer_name = _copy_points(request, staging)
        points = read_points(staging, layer_name, request.time_field if request.composites else None,
                             shown=request.points.name)
        columns = _sampled_columns(request, points, progress, check_cancel, log)
        if check_cancel:
            check_cancel()
        _add_columns(staging, layer_name, points.fids, columns)
        if output_format == "GPKG":
            os.replace(staging, output)
        else:
            copy_to_format(staging, output, output_format)
    except (RuntimeError, OSError, sqlite3.Error) as error:
        raise OutputError(f"cannot write {output}: {error}") from error
    finally:
        remove_quietly(staging)
    _report(progress, 1.0)
    valued = {name: int(np.isfinite(values).sum()) for name, values in columns.items()}
    if log:
        log(f"{len(points.fids)} point(s) written to {output.name}; "
            + ", ".join(f"{name}: {count} with a value" for name, count in valued.items()))
    return SampledPoints(output, len(points.fids), tuple(columns), valued)


def _sampled_columns(request: SampleRequest, points: _Points, progress: Optional[Progress], check_cancel: Optional[CheckCancel],
                     log: Optional[Log]) -> Dict[str, np.ndarray]:
    """The new fields' values (NaN for NULL) at the points, by field name."""
    taken = {name.lower(): name for name in points.fields}
    for name in request.fields:
        if name.lower() in taken:
            raise ConfigurationError(f"the point layer already has a field {taken[name.lower()]!r}: name the new field "
                                     f"differently (or rename the layer it comes from)")
    steps = max(1, len(request.rasters) + len(request.composites)) + 1
    columns: Dict[str, np.ndarray] = {}
    done = 0
    for raster in request.rasters:
        columns[raster.field] = raster_values(raster.path, points.xs, points.ys, points.crs, raster.band, check_cancel)
        done += 1
        _report(progress, done / steps)
    if request.composites:
        ndvi = np.full(len(points.fids), np.nan)
        for year, path in request.composites:
            of_year = np.flatnonzero(points.years == year)
            if of_year.size:
                ndvi[of_year] = raster_values(path, points.xs[of_year], points.ys[of_year], points.crs, 1, check_cancel)
            done += 1
            _report(progress, done / steps)
        without = sorted(set(points.years[points.years > 0].tolist()) - {year for year, _ in request.composites})
        if without and log:
            count = int(np.isin(points.years, without).sum())
            log(f"{count} segment(s) of {', '.join(map(str, without))} have no composite of their year: their ndvi is NULL")
        columns[NDVI_FIELD] = ndvi
    return columns


def _report(progress: Optional[Progress], fraction: float) -> None:
    if progress:
        progress(min(1.0, fraction))


def _copy_points(request: SampleRequest, staging: Path) -> str:
    """The points' layer copied into the GeoPackage ``staging``; returns its layer name there. No spatial index, as
    the query's own outputs have none: SQLite's R-tree would take longer than everything else (and its triggers
    need SQL functions only OGR's SQLite has); QGIS draws point layers of millions of rows without one."""
    from osgeo import gdal

    source = _open_vector(request.points)
    layer = _layer_of(source, request.points, request.layer)
    name = layer.GetName()
    options = ["-a_srs", "EPSG:4326"] if request.points.suffix.lower() == ".csv" else []  # the query's CSV: longitude, latitude
    gdal.VectorTranslate(str(staging), source, format="GPKG", layers=[name], layerName=name, options=options,
                         layerCreationOptions=["SPATIAL_INDEX=NO"])
    return name


def _add_columns(staging: Path, layer_name: str, fids: np.ndarray, columns: Mapping[str, np.ndarray]) -> None:
    """The new fields (double precision) added to the copy and filled, NaN as NULL."""
    import sqlite3

    from osgeo import ogr

    dataset = ogr.Open(str(staging), update=1)
    layer = dataset.GetLayerByName(layer_name)
    for name in columns:
        layer.CreateField(ogr.FieldDefn(name, ogr.OFTReal))
    dataset = None
    # one UPDATE per point through SQLite, with bound values: OGR's feature-by-feature rewrite is several times slower
    connection = sqlite3.connect(str(staging))
    try:
        table = _quote(layer_name)
        assignments = ", ".join(f"{_quote(name)} = ?" for name in columns)
        fid = _fid_column(connection, layer_name)
        rows = zip(*[[None if not math.isfinite(v) else float(v) for v in values] for values in columns.values()],
                   fids.tolist())
        # B608: the table and column names are quoted by _quote(); the values are bound parameters
        connection.executemany(f"UPDATE {table} SET {assignments} WHERE {_quote(fid)} = ?", rows)  # nosec B608
        connection.commit()
    finally:
        connection.close()


def _fid_column(connection, table: str) -> str:
    for _, name, _, _, _, primary in connection.execute(f"PRAGMA table_info({_quote(table)})"):
        if primary:
            return name
    return "fid"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'

