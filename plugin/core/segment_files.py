"""Write query results (segments) to GeoPackage, FlatGeobuf, GeoJSON or CSV, fast and atomically.

Building features one by one, as QGIS's memory provider or OGR's Python API
does, runs at about 70k features/s. Here the GeoPackage is created by OGR
(metadata tables, SRS, field types: the standard parts), the rows are then
inserted in bulk through SQLite with point geometries encoded as GeoPackage
blobs by numpy, and OGR builds the R-tree in one pass at the end. Other formats
are converted from that GeoPackage by GDAL in C.

Every file is written under a temporary name next to the target and renamed
when complete, so a failure or a cancel never leaves a half-written output.
"""

import os
import shutil
import sqlite3
import uuid
from itertools import chain
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, List, Optional

import numpy as np

from .errors import CanopyExplorerError, OutputError

FORMATS = {  # format name: (GDAL driver, extension)
    "GPKG": ("GPKG", ".gpkg"),
    "FlatGeobuf": ("FlatGeobuf", ".fgb"),
    "GeoJSON": ("GeoJSON", ".geojson"),
    "CSV": ("CSV", ".csv"),
}
GEOMETRY_COLUMN = "geom"
ROWS_PER_INSERT = 64  # well under SQLite's 32,766 parameters per statement for any query's columns
WGS84 = 4326
# GeoPackage binary header (magic "GP", version 0, flags: little-endian, no envelope, srs id)
# followed by a little-endian WKB point.
_POINT_BLOB = np.dtype(
    [("magic", "S2"), ("version", "u1"), ("flags", "u1"), ("srs", "<i4"),
     ("order", "u1"), ("wkb_type", "<u4"), ("x", "<f8"), ("y", "<f8")]
)


def format_for_path(path) -> str:
    suffix = Path(path).suffix.lower()
    for name, (_, extension) in FORMATS.items():
        if suffix == extension or (name == "GeoJSON" and suffix == ".json"):
            return name
    raise OutputError(
        f"unsupported output file type '{suffix or path}': use one of "
        + ", ".join(extension for _, extension in FORMATS.values())
    )


def temporary_sibling(path: Path, suffix: Optional[str] = None) -> Path:
    """A hidden name in the target's folder, so the final rename stays on one filesystem.

    Short whatever the target's name (a legal 250-character name plus a marker would pass the
    filesystem's 255), so a long name fails, if at all, in ``check_output_folder`` with the user's name."""
    return Path(path).with_name(f".canopy-partial-{uuid.uuid4().hex[:12]}{suffix or Path(path).suffix}")


def check_output_folder(path: Path) -> None:
    """The folder that will hold ``path`` exists and can be written, and ``path`` can be a file name
    there (not a folder, not longer than the filesystem allows), or an OutputError says which."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"output folder {folder} is not writable")
    longest = _longest_name(folder)
    # a style file (name.qml) is written beside the output: its name must fit too
    longest_name = max(len(os.fsencode(path.name)), len(os.fsencode(path.stem + ".qml")))
    if longest_name > longest:
        raise OutputError(f"the output name {path.name[:40]}... is {longest_name} bytes long; files in {folder} may have "
                          f"at most {longest}: choose a shorter name")
    if path.is_dir():
        raise OutputError(f"{path} is a folder: choose a file name for the output")


def _longest_name(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, ValueError, OSError):  # not POSIX: the common limit
        return 255


def remove_quietly(path: Path) -> None:
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        try:
            candidate.unlink()
        except FileNotFoundError:
            pass


def _ogr_field_type(dtype):
    from osgeo import ogr

    kind = np.dtype(dtype).kind if not hasattr(dtype, "tz") else "M"
    if kind == "f":
        return ogr.OFTReal, ogr.OFSTFloat32 if np.dtype(dtype).itemsize == 4 else ogr.OFSTNone
    if kind in "iu":
        size = np.dtype(dtype).itemsize
        if size >= 8 or (kind == "u" and size >= 4):
            return ogr.OFTInteger64, ogr.OFSTNone
        return ogr.OFTInteger, ogr.OFSTInt16 if size <= 2 and kind == "i" else ogr.OFSTNone
    if kind == "b":
        return ogr.OFTInteger, ogr.OFSTBoolean
    if kind == "M":
        return ogr.OFTDateTime, ogr.OFSTNone
    return ogr.OFTString, ogr.OFSTNone


def point_blobs(longitude: np.ndarray, latitude: np.ndarray, srs_id: int = WGS84) -> List[bytes]:
    """GeoPackage geometry blobs for points, built in one numpy pass."""
    blobs = np.zeros(len(longitude), dtype=_POINT_BLOB)
    blobs["magic"] = b"GP"
    blobs["flags"] = 1  # little-endian, no envelope (points need none)
    blobs["srs"] = srs_id
    blobs["order"] = 1
    blobs["wkb_type"] = 1
    blobs["x"] = longitude
    blobs["y"] = latitude
    return blobs.view(f"V{_POINT_BLOB.itemsize}").tolist()  # one bytes object per point, made in C


def _column_values(series) -> list:
    """Python values SQLite binds directly; NaN binds as NULL, datetimes as GeoPackage text."""
    if hasattr(series.dtype, "tz") or series.dtype.kind == "M":
        # tz-aware columns would become an object array of Timestamps: go through int64 instead
        stamps = series.array.asi8.view("datetime64[ns]").astype("datetime64[ms]")
        text = np.datetime_as_string(stamps, unit="ms", timezone="UTC").astype(object)
        text[np.isnat(stamps)] = None
        return text.tolist()
    values = series.to_numpy()
    if values.dtype.kind == "f":
        return values.astype(np.float64).tolist()
    return values.tolist()


class GeoPackagePointWriter:
    """Streams DataFrames with ``longitude``/``latitude`` into one GeoPackage point table."""

    def __init__(self, path: Path, layer_name: str, description: str = "", spatial_index: bool = False):
        self.path = Path(path)
        self.spatial_index = spatial_index
        self.layer_name = layer_name
        self.description = description
        self.rows = 0
        self.bounds = [np.inf, np.inf, -np.inf, -np.inf]
        self._fields: Optional[List[str]] = None
        self._connection: Optional[sqlite3.Connection] = None

    def _create(self, frame) -> None:
        from osgeo import ogr, osr

        ogr.UseExceptions()
        driver = ogr.GetDriverByName("GPKG")
        dataset = driver.CreateDataSource(str(self.path))
        if dataset is None:
            raise OutputError(f"cannot create {self.path}")
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(WGS84)
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        layer = dataset.CreateLayer(
            self.layer_name, srs, ogr.wkbPoint,
            options=["SPATIAL_INDEX=NO", f"GEOMETRY_NAME={GEOMETRY_COLUMN}", f"DESCRIPTION={self.description}"],
        )
        # The geometry holds the position; repeating it as two REAL fields would cost a fifth of the write.
        self._fields = [name for name in frame.columns if name not in ("longitude", "latitude")]
        for name in self._fields:
            field_type, subtype = _ogr_field_type(frame[name].dtype)
            definition = ogr.FieldDefn(name, field_type)
            definition.SetSubType(subtype)
            layer.CreateField(definition)
        dataset = None  # closes and flushes the metadata tables
        self._connection = sqlite3.connect(str(self.path), isolation_level=None)
        # The file is private until renamed, so durability settings can wait for the end.
        self._connection.execute("PRAGMA synchronous=OFF")
        self._connection.execute("PRAGMA journal_mode=OFF")
        self._connection.execute("BEGIN")
        self._recreate_without_autoincrement()

    def _recreate_without_autoincrement(self) -> None:
        """Re-declare OGR's empty table with a plain INTEGER PRIMARY KEY.

        AUTOINCREMENT makes SQLite update ``sqlite_sequence`` on every insert, and
        OGR's per-row feature-count triggers add an UPDATE each: together they
        cost more than the inserts themselves. The GeoPackage standard only asks
        for an integer primary key; the count is set once in close() and OGR
        recreates its triggers when it next edits the table.
        """
        (ddl,) = self._connection.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (self.layer_name,)
        ).fetchone()
        self._connection.execute(f"DROP TABLE {_quote(self.layer_name)}")  # drops its triggers too
        self._connection.execute(ddl.replace(" AUTOINCREMENT", "", 1))

    def append(self, frame) -> None:
        if not len(frame):
            return
        if self._connection is None:
            self._create(frame)
        longitude = frame["longitude"].to_numpy(dtype=np.float64)
        latitude = frame["latitude"].to_numpy(dtype=np.float64)
        columns = [point_blobs(longitude, latitude)] + [_column_values(frame[name]) for name in self._fields]
        rows = list(zip(*columns))
        # Python's sqlite3 pays per statement (step, reset, unpack the parameters), so rows go
        # ROWS_PER_INSERT at a time in one multi-row INSERT; the rest in single-row statements.
        whole = len(rows) - len(rows) % ROWS_PER_INSERT
        chunks = (tuple(chain.from_iterable(rows[i:i + ROWS_PER_INSERT])) for i in range(0, whole, ROWS_PER_INSERT))
        self._connection.executemany(self._insert_sql(ROWS_PER_INSERT), chunks)
        self._connection.executemany(self._insert_sql(1), rows[whole:])
        self.rows += len(frame)
        self.bounds = [
            min(self.bounds[0], float(longitude.min())), min(self.bounds[1], float(latitude.min())),
            max(self.bounds[2], float(longitude.max())), max(self.bounds[3], float(latitude.max())),
        ]

    def _insert_sql(self, rows: int) -> str:
        quoted = ", ".join(_quote(name) for name in [GEOMETRY_COLUMN] + self._fields)
        one_row = "(" + ", ".join("?" * (len(self._fields) + 1)) + ")"
        # B608: the table and column names are our schema's, quoted by _quote(); the values are bound parameters
        return f"INSERT INTO {_quote(self.layer_name)} ({quoted}) VALUES " + ", ".join([one_row] * rows)  # nosec B608

    def close(self) -> None:
        if self._connection is None:
            return
        connection, self._connection = self._connection, None
        try:
            connection.execute(
                "UPDATE gpkg_contents SET min_x = ?, min_y = ?, max_x = ?, max_y = ? WHERE table_name = ?",
                (*self.bounds, self.layer_name),
            )
            connection.execute(
                # B608: name quoted by _quote()
                "UPDATE gpkg_ogr_contents SET feature_count = (SELECT count(*) FROM "  # nosec B608
                f"{_quote(self.layer_name)}) WHERE table_name = ?",
                (self.layer_name,),
            )
            connection.execute("COMMIT")
        finally:
            connection.close()
        if self.spatial_index:
            # SQLite's R-tree takes points at about 60k/s, slower than everything else here,
            # so it is optional; QGIS draws point layers of a few million rows without one.
            from osgeo import ogr

            dataset = ogr.Open(str(self.path), update=1)
            dataset.ExecuteSQL(f"SELECT CreateSpatialIndex('{self.layer_name}', '{GEOMETRY_COLUMN}')")
            dataset = None

    def abort(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


@dataclass
class WrittenSegments:
    path: Path
    format: str
    layer_name: str
    rows: int
    bounds: tuple


def write_segments(
    frames: Iterable,
    path,
    layer_name: str,
    description: str = "",
    output_format: Optional[str] = None,
    before_publish: Optional[Callable[[Path, str], None]] = None,
    check_cancel: Optional[Callable[[], None]] = None,
) -> WrittenSegments:
    """Write DataFrames of segments to ``path``; nothing appears there unless everything succeeded.

    ``before_publish(temporary_path, format)`` runs on the complete file before it
    is renamed into place (the QGIS side stores the layer style there). With no
    rows at all nothing is written and the result has ``rows == 0``.
    """
    path = Path(path)
    output_format = output_format or format_for_path(path)
    if output_format not in FORMATS:
        raise OutputError(f"unknown output format {output_format!r}: use one of {', '.join(FORMATS)}")
    check_output_folder(path)
    if output_format == "CSV":
        return _write_csv(frames, path, layer_name, before_publish, check_cancel)
    staging = temporary_sibling(path, ".gpkg")
    final_temporary = staging if output_format == "GPKG" else temporary_sibling(path)
    writer = GeoPackagePointWriter(staging, layer_name, description)
    try:
        for frame in frames:
            if check_cancel:
                check_cancel()
            writer.append(frame)
        if check_cancel:
            check_cancel()
        writer.close()
        if writer.rows == 0:
            remove_quietly(staging)
            return WrittenSegments(path, output_format, layer_name, 0, ())
        if output_format != "GPKG":
            _convert(staging, final_temporary, output_format, layer_name, shown=path.name)
            remove_quietly(staging)
        _publish(final_temporary, path, output_format, before_publish, check_cancel)
    except BaseException as error:
        writer.abort()
        remove_quietly(staging)
        _discard(final_temporary)
        _raise_output_error(error, path)
    return WrittenSegments(path, output_format, layer_name, writer.rows, tuple(writer.bounds))


def _write_csv(frames, path: Path, layer_name: str, before_publish, check_cancel) -> WrittenSegments:
    """CSV keeps latitude and longitude as columns, which is what spreadsheet users expect."""
    temporary = temporary_sibling(path)
    rows = 0
    bounds = [np.inf, np.inf, -np.inf, -np.inf]
    try:
        for frame in frames:
            if check_cancel:
                check_cancel()
            if not len(frame):
                continue
            frame.to_csv(temporary, mode="a", header=rows == 0, index=False,
                         date_format="%Y-%m-%dT%H:%M:%S.%fZ", float_format="%.9g")
            rows += len(frame)
            bounds = [min(bounds[0], frame["longitude"].min()), min(bounds[1], frame["latitude"].min()),
                      max(bounds[2], frame["longitude"].max()), max(bounds[3], frame["latitude"].max())]
        if rows == 0:
            return WrittenSegments(path, "CSV", layer_name, 0, ())
        _publish(temporary, path, "CSV", before_publish, check_cancel)
    except BaseException as error:
        _discard(temporary)
        _raise_output_error(error, path)
    return WrittenSegments(path, "CSV", layer_name, rows, tuple(float(b) for b in bounds))


def _publish(temporary: Path, path: Path, output_format: str, before_publish, check_cancel) -> None:
    """Rename the complete file into place, then its side files (a .qml style written by
    ``before_publish``): a data rename that fails leaves no style beside the user's name, and a
    side file that cannot follow takes the data back out."""
    if before_publish:
        before_publish(temporary, output_format)
    if check_cancel:
        check_cancel()
    sidecars = _sidecars(temporary)
    if path.is_dir():  # checked before writing; a folder may have appeared since
        raise OutputError(f"{path} is a folder: choose a file name for the output")
    os.replace(temporary, path)
    try:
        for sidecar in sidecars:
            os.replace(sidecar, path.with_name(path.stem + sidecar.name[len(temporary.stem):]))
    except OSError:
        remove_quietly(path)
        raise


def _sidecars(temporary: Path) -> List[Path]:
    return [p for p in temporary.parent.glob(temporary.stem + ".*") if p != temporary and not p.name.endswith(("-wal", "-shm", "-journal"))]


def _discard(temporary: Path) -> None:
    for sidecar in _sidecars(temporary):
        remove_quietly(sidecar)
    remove_quietly(temporary)


def _raise_output_error(error: BaseException, path: Path):
    if isinstance(error, OSError):
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from error
    if isinstance(error, (RuntimeError, sqlite3.Error)) and not isinstance(error, CanopyExplorerError):  # GDAL/OGR, SQLite
        raise OutputError(f"cannot write {path}: {gdal_failure_reason(error, path)}") from error
    raise error


def gdal_failure_reason(error: BaseException, path: Path) -> str:
    """GDAL often raises an empty RuntimeError; say what the folder's state suggests."""
    text = str(error).strip()
    if text:
        return text
    try:
        usage = shutil.disk_usage(path.parent)
    except OSError:
        return "the folder cannot be written"
    if usage.free < 1_000_000:
        return f"no space left on the device ({usage.free} bytes free)"
    return "the folder is read-only or cannot be written"


def _convert(source: Path, target: Path, output_format: str, layer_name: str, shown: Optional[str] = None) -> None:
    """``source`` copied to ``target`` in ``output_format``; errors name ``shown`` (the user's file, not
    the temporary one GDAL writes)."""
    from osgeo import gdal

    gdal.UseExceptions()
    driver, _ = FORMATS[output_format]
    options = {"FlatGeobuf": ["SPATIAL_INDEX=YES"], "GeoJSON": ["RFC7946=YES", "WRITE_BBOX=YES"],
               "CSV": [], "GPKG": []}[output_format]
    source_dataset = str(source)
    extra = {}
    if Path(source).suffix.lower() == ".csv":  # a CSV written here: points from its longitude/latitude columns
        source_dataset = gdal.OpenEx(str(source), gdal.OF_VECTOR, open_options=[
            "X_POSSIBLE_NAMES=longitude", "Y_POSSIBLE_NAMES=latitude", "AUTODETECT_TYPE=YES", "KEEP_GEOM_COLUMNS=NO"])
        extra["srcSRS"] = "EPSG:4326"
    if output_format == "CSV":
        # CSV readers expect longitude/latitude columns, not a geometry: select them first
        extra["SQLStatement"] = _csv_select(source_dataset, layer_name)
        extra["SQLDialect"] = "SQLITE"
    else:
        extra["layers"] = [layer_name]
    try:
        gdal.VectorTranslate(str(target), source_dataset, format=driver,
                             layerName=layer_name, layerCreationOptions=options, **extra)
    except RuntimeError as error:
        raise OutputError(f"cannot write {output_format} {shown or target.name}: "
                          f"{str(error).replace(str(target), shown or target.name)}") from error
    if not target.exists():
        raise OutputError(f"GDAL wrote no {output_format} file for {shown or target.name}")


def _csv_select(source, layer_name: str) -> str:
    from osgeo import gdal

    dataset = source if not isinstance(source, str) else gdal.OpenEx(source, gdal.OF_VECTOR)
    layer = dataset.GetLayerByName(layer_name)
    definition = layer.GetLayerDefn()
    names = [definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())]
    names = [n for n in names if n not in ("latitude", "longitude")]
    geometry = layer.GetGeometryColumn() or "GEOMETRY"
    columns = ", ".join([f"ST_Y({_quote(geometry)}) AS latitude", f"ST_X({_quote(geometry)}) AS longitude"] + [_quote(n) for n in names])
    # B608: identifiers from the file's own schema, quoted
    return f"SELECT {columns} FROM {_quote(layer_name)}"  # nosec B608


def copy_to_format(source, target, output_format: Optional[str] = None,
                   before_publish: Optional[Callable[[Path, str], None]] = None) -> Path:
    """Export an existing vector file (any layer written here) to another format, atomically.

    ``before_publish(temporary_path, format)`` runs on the complete copy before the rename."""
    target = Path(target)
    output_format = output_format or format_for_path(target)
    from osgeo import ogr

    dataset = ogr.Open(str(source))
    if dataset is None:
        raise OutputError(f"cannot open {source}")
    layer_name = dataset.GetLayer(0).GetName()
    dataset = None
    check_output_folder(target)
    temporary = temporary_sibling(target)
    try:
        _convert(Path(source), temporary, output_format, layer_name, shown=target.name)
        _publish(temporary, target, output_format, before_publish, None)
    except BaseException as error:
        _discard(temporary)
        _raise_output_error(error, target)
    return target
