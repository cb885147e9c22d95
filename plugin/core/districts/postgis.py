"""District zonal statistics in PostGIS: districts and composites loaded into the database, statistics by SQL.

    request = DistrictStatsRequest.create(districts, ["ndvi_composite_2019.tif", "ndvi_composite_2024.tif"],
                                          "district_stats.gpkg", connection="service=gis", schema="ndvi", prefix="enschede_")
    result = district_stats_postgis(request)

In the chosen schema, every table name starting with ``prefix``:

* ``districts``: the id field under its own name and type (primary key), the other attributes
  (``bigint``, ``double precision``, ``text``, ``date``), ``geom`` MultiPolygon in the rasters' CRS, GiST index;
  rebuilt on every run from the districts given.
* ``ndvi_<year>``: band 1 of the composite as an in-database raster in 256 x 256 tiles with
  the standard constraints (``AddRasterConstraints``) and a GiST index on
  ``ST_ConvexHull(rast)``: what ``raster2pgsql -I -C -M -t 256x256`` makes (``ANALYZE``
  rather than ``VACUUM ANALYZE``: a new table has nothing to vacuum, and VACUUM cannot run
  in the load's transaction). Tiles are encoded here in Python (``loader="python"``, the
  default: it needs no PostGIS client tools, which QGIS on Windows or macOS lacks, and
  loaded a 4000 x 4000 composite a fifth faster in the benchmark) or by ``raster2pgsql``
  (``loader="raster2pgsql"``); either way the rows go through this connection with COPY,
  so identifiers never pass through a command line and the load is one transaction.
  All-nodata tiles are skipped, as ``raster2pgsql`` does. Band 1 (the statistic) only.
* ``ndvi_stats_<year>``: per district ``ST_SummaryStatsAgg(ST_Clip(rast, geom, true), 1, true)``
  over the tiles whose convex hull meets the district: ``pixel_count`` (0 when none) and
  ``min_ndvi``, ``max_ndvi``, ``mean_ndvi``, ``stddev_ndvi``; ``median_ndvi``, ``p10_ndvi``, ``p90_ndvi`` by
  ``percentile_cont`` over the same clipped pixels (``ST_DumpValues``), which interpolates linearly between the two
  nearest ranks as numpy's default percentile does (all NULL when the count is 0).
* ``ndvi_stats_latest``: upserted (``INSERT ... ON CONFLICT (<id field>) DO UPDATE ... WHERE
  latest.year <= excluded.year``): the newest year with data wins and is never replaced by
  an older one; districts with no data in any year are kept with ``year`` NULL.
* ``ndvi_stats_change``: newest minus earliest year with data, over all ``ndvi_stats_<year>``
  tables of the prefix.

The rules are those of ``statistics`` (which the embedded mode implements in Python).
Every identifier goes through ``psycopg.sql.Identifier`` and every value is a query
parameter; the whole run is one transaction (each step a savepoint), so a failure, a lost
server or a cancel leaves every table as it was before the run; re-running replaces tables
rather than adding rows. A session advisory lock keeps two runs on the same schema and prefix
apart. With ``output_gpkg`` the tables of this run are also copied into a GeoPackage (the
same file the embedded mode writes), which is what QGIS loads and styles in both modes.

The connection is a libpq conninfo string (``"service=name"`` or ``"host=... dbname=..."``),
a mapping of connection keywords, or a function returning an open psycopg connection.
Messages name the server, database and user, never the password.
"""

import re
import shutil
# B404: runs fixed programs with argument lists, never a shell
import subprocess  # nosec B404
import threading
import time
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Union

import numpy as np

from ..callbacks import CheckCancel, Log, Progress
from ..errors import Cancelled, ConfigurationError, MissingDependencyError, StorageError
from .embedded import RasterInfo, check_rasters
from .geopackage import BeforePublish, export_latest, publish_statistics
from .statistics import (GEOMETRY, YEAR, DistrictStatsRequest, Districts, Row, StatsLayout, StatsResult, describe_layers,
                         say)

TILE_SIZE = 256
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL silently truncates longer names
DISTRICTS_TABLE = "districts"
RASTER_TABLE = "ndvi_{year}"
LOADERS = ("python", "raster2pgsql")
# PostGIS raster pixel types (WKB codes) of the numpy types rasterio returns
PIXEL_TYPES = {"int8": 3, "uint8": 4, "int16": 5, "uint16": 6, "int32": 7, "uint32": 8, "float32": 10, "float64": 11}
_SECRET = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_URI_SECRET = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")

Connection = Union[str, Mapping[str, object], Callable[[], object]]


# --------------------------------------------------------------------------- connection


def hide_password(text: str) -> str:
    return _URI_SECRET.sub(r"\1***@", _SECRET.sub(r"\1***", str(text)))


def describe_connection(connection: Connection) -> str:
    """``user@host:port/dbname`` (or the service name), for messages; never the password."""
    if callable(connection):  # a function returning a connection; it may say where it connects (describe())
        describe = getattr(connection, "describe", None)
        return describe() if callable(describe) else "the chosen PostgreSQL connection"
    try:
        from psycopg.conninfo import conninfo_to_dict

        values = dict(connection) if isinstance(connection, Mapping) else conninfo_to_dict(connection)
    except Exception:
        return "the PostgreSQL connection"
    if values.get("service") and not values.get("host"):
        return f"service '{values['service']}'"
    host = values.get("host") or "localhost"
    port = values.get("port") or "5432"
    user = values.get("user")
    return f"{user + '@' if user else ''}{host}:{port}/{values.get('dbname') or values.get('user') or ''}"


def connect(connection: Connection, timeout_s: int = 10):
    """An autocommit psycopg connection (the run opens one transaction), with clear errors."""
    try:
        import psycopg
    except ImportError:
        raise MissingDependencyError("the PostGIS mode needs the Python package psycopg (3.x): on Debian/Ubuntu "
                                     "apt install python3-psycopg, elsewhere python -m pip install psycopg") from None

    where = describe_connection(connection)
    try:
        if callable(connection):
            conn = connection()
        else:
            keywords = dict(connection) if isinstance(connection, Mapping) else {"conninfo": connection}
            conninfo = keywords.get("conninfo", "")
            if "connect_timeout" not in keywords and "connect_timeout" not in str(conninfo):
                keywords["connect_timeout"] = timeout_s
            keywords.setdefault("application_name", "canopy_explorer")
            conn = psycopg.connect(**keywords)
        conn.autocommit = True
    except psycopg.OperationalError as error:
        reason = hide_password(str(error)).strip()
        if "password authentication failed" in reason or "no password supplied" in reason:
            raise StorageError(f"PostgreSQL at {where} refused the user name or password: {reason}") from None
        raise StorageError(f"cannot connect to PostgreSQL at {where}: {reason}") from None
    except psycopg.ProgrammingError as error:  # malformed conninfo
        raise ConfigurationError(f"invalid PostgreSQL connection settings: {hide_password(str(error))}") from None
    try:
        conn.execute("SELECT postgis_lib_version(), postgis_raster_lib_version()")
    except psycopg.Error:
        database = conn.info.dbname
        conn.close()
        raise StorageError(f"the database '{database}' at {where} has no PostGIS raster support: its owner must run "
                           "CREATE EXTENSION postgis; CREATE EXTENSION postgis_raster;") from None
    return conn


# --------------------------------------------------------------------------- names


class TableNames:
    """Quoted identifiers for every table of one schema and prefix."""

    def __init__(self, schema: str, prefix: str, layout: StatsLayout):
        if not schema or not str(schema).strip():
            raise ConfigurationError("the PostgreSQL schema name is empty")
        self.schema, self.prefix, self.layout = str(schema), str(prefix or ""), layout
        for name in [self.schema, self.table(layout.latest_table), self.table(layout.change_table),
                     self.table(layout.year_table(2000)), self.table(RASTER_TABLE.format(year=2000)),
                     self.table(DISTRICTS_TABLE)]:
            if "\x00" in name:
                raise ConfigurationError("PostgreSQL names cannot contain the NUL character")
            if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
                raise ConfigurationError(f"the PostgreSQL name {name!r} is longer than {MAX_IDENTIFIER_BYTES} bytes: "
                                         "use a shorter schema or table prefix")

    def table(self, name: str) -> str:
        return self.prefix + name

    def identifier(self, name: str):
        from psycopg import sql

        return sql.Identifier(self.schema, self.table(name))

    def qualified(self, name: str) -> str:
        """``"schema"."table"`` quoted as PostgreSQL reads it (for messages and QGIS data sources)."""
        return ".".join('"' + part.replace('"', '""') + '"' for part in (self.schema, self.table(name)))


# --------------------------------------------------------------------------- raster tiles


def _srid(crs: str) -> int:
    match = re.fullmatch(r"EPSG:(\d+)", crs)
    if not match:
        raise ConfigurationError("the composites' coordinate reference system has no EPSG code, which PostGIS needs: "
                                 "use the embedded mode or reproject the composites to an EPSG CRS")
    return int(match.group(1))


def tile_wkb(values: np.ndarray, transform: Sequence[float], row0: int, col0: int, srid: int,
             nodata: Optional[float]) -> bytes:
    """One single-band tile in PostGIS raster WKB (little-endian, version 0)."""
    import struct

    dtype = values.dtype.newbyteorder("<")
    pixel_type = PIXEL_TYPES[values.dtype.name]
    a, b, c, d, e, f = transform[:6]
    height, width = values.shape
    header = struct.pack("<BHHddddddiHH", 1, 0, 1, a, e, c + a * col0 + b * row0, f + d * col0 + e * row0, b, d,
                         srid, width, height)
    flags = pixel_type | (0x40 if nodata is not None else 0)
    nodata_bytes = np.array([0 if nodata is None else nodata], dtype=dtype).tobytes()
    return header + bytes([flags]) + nodata_bytes + np.ascontiguousarray(values, dtype=dtype).tobytes()


def python_tiles(info: RasterInfo, srid: int, check_cancel: Optional[CheckCancel] = None) -> Iterator[str]:
    """Hex WKB tiles of band 1, row of tiles by row of tiles; all-nodata tiles are skipped."""
    import binascii

    import rasterio
    from rasterio.windows import Window

    with rasterio.open(info.path) as dataset:
        dtype = dataset.dtypes[0]
        if dtype not in PIXEL_TYPES:
            raise ConfigurationError(f"{info.path.name}: pixel type {dtype} cannot be stored in PostGIS")
        nodata = info.nodata
        for row0 in range(0, info.height, TILE_SIZE):
            if check_cancel:
                check_cancel()
            rows = min(TILE_SIZE, info.height - row0)
            strip = dataset.read(1, window=Window(0, row0, info.width, rows))
            for col0 in range(0, info.width, TILE_SIZE):
                tile = strip[:, col0:col0 + TILE_SIZE]
                if nodata is not None and (np.isnan(tile).all() if np.isnan(nodata) else (tile == nodata).all()):
                    continue
                yield binascii.hexlify(tile_wkb(tile, info.transform, row0, col0, srid, nodata)).decode("ascii").upper()


def raster2pgsql_tiles(info: RasterInfo, srid: int, check_cancel: Optional[CheckCancel] = None) -> Iterator[str]:
    """Hex WKB tiles of band 1 as ``raster2pgsql -t 256x256 -b 1 -Y`` encodes them (its COPY data lines)."""
    program = shutil.which("raster2pgsql")
    if program is None:
        raise ConfigurationError("raster2pgsql is not installed (Debian: apt install postgis): use the Python loader")
    command = [program, "-t", f"{TILE_SIZE}x{TILE_SIZE}", "-b", "1", "-s", str(srid), "-Y", str(info.path), "tiles"]
    # B603: raster2pgsql found on PATH, with an argument list of numbers and the composite's path
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1 << 20)  # nosec B603
    try:
        for count, line in enumerate(process.stdout):
            if check_cancel and count % 16 == 0:
                check_cancel()
            line = line.strip()
            if line and all(ch in "0123456789ABCDEF" for ch in line[:64]) and len(line) > 100:
                yield line
        if process.wait() != 0:
            raise StorageError(f"raster2pgsql could not read {info.path.name}: {process.stderr.read().strip()}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


# --------------------------------------------------------------------------- steps


@contextmanager
def _step(conn, what: str, check_cancel: Optional[CheckCancel] = None):
    """One step (a savepoint inside the run's transaction); database errors become StorageError naming
    the step; a cancel cancels the running query."""
    import psycopg

    stop = threading.Event()
    cancelled = threading.Event()

    def watch():
        while not stop.wait(0.2):
            try:
                check_cancel()
            except Cancelled:
                cancelled.set()
                conn.cancel()
                return
            except Exception:
                return

    watcher = threading.Thread(target=watch, daemon=True) if check_cancel else None
    try:
        if watcher:
            watcher.start()
        with conn.transaction():
            yield
    except psycopg.errors.QueryCanceled:
        if cancelled.is_set():
            raise Cancelled("cancelled") from None
        raise StorageError(f"PostGIS: {what} was cancelled by the server (statement timeout?)") from None
    except psycopg.errors.InsufficientPrivilege as error:
        raise StorageError(f"PostGIS: {what}: the role '{conn.info.user}' lacks a privilege: "
                           f"{error.diag.message_primary}") from None
    except psycopg.Error as error:
        raise StorageError(f"PostGIS: {what} failed: {hide_password(error.diag.message_primary or error)}") from None
    finally:
        stop.set()
        if watcher:
            watcher.join()


PG_TYPES = {"integer": "bigint", "real": "double precision", "text": "text", "date": "date"}


def _id_type(districts: Districts) -> str:
    return "bigint" if districts.id_type == "integer" else "text"


def check_column_names(districts: Districts) -> None:
    """PostgreSQL truncates longer names: a district field whose name is too long is refused, naming it."""
    for name in districts.field_names:
        if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
            raise ConfigurationError(f"the districts field {name!r} has a name longer than {MAX_IDENTIFIER_BYTES} bytes, "
                                     "which PostgreSQL cannot hold: rename it in the districts layer")


def _district_columns(districts: Districts):
    """(name, PostgreSQL type) of the districts' columns: the id field, then the other attributes."""
    return [(districts.id_field, _id_type(districts))] + [(a.name, PG_TYPES[a.type]) for a in districts.attributes]


def _district_definitions(districts: Districts, primary_key: bool = True):
    """``"id" type PRIMARY KEY, "attribute" type, ...`` for CREATE TABLE, every name an Identifier."""
    from psycopg import sql

    columns = _district_columns(districts)
    parts = [sql.SQL("{} {}{}").format(sql.Identifier(name), sql.SQL(kind), sql.SQL(" PRIMARY KEY" if primary_key and i == 0 else ""))
             for i, (name, kind) in enumerate(columns)]
    return sql.SQL(", ").join(parts)


def _district_list(districts: Districts, alias: Optional[str] = None):
    """The districts' column names as Identifiers, ``alias.name`` when an alias is given."""
    from psycopg import sql

    names = [name for name, _ in _district_columns(districts)]
    return sql.SQL(", ").join(sql.Identifier(alias, n) if alias else sql.Identifier(n) for n in names)


def _existing_columns(conn, names: TableNames, table: str) -> Dict[str, str]:
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped",
        (names.schema, names.table(table))).fetchall()
    return dict(rows)


def load_districts(conn, names: TableNames, districts: Districts, srid: int, check_cancel: Optional[CheckCancel] = None) -> None:
    import shapely
    from psycopg import sql

    table = names.identifier(DISTRICTS_TABLE)
    with _step(conn, f"loading the districts into {names.qualified(DISTRICTS_TABLE)}", check_cancel):
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(names.schema)))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        conn.execute(sql.SQL("CREATE TABLE {} ({}, geom geometry(MultiPolygon, {}) NOT NULL)").format(
            table, _district_definitions(districts), sql.Literal(srid)))
        with conn.cursor().copy(sql.SQL("COPY {} ({}, geom) FROM STDIN").format(table, _district_list(districts))) as copy:
            for index, (identifier, geometry) in enumerate(zip(districts.ids, districts.geometries)):
                attributes = [a.values[index] for a in districts.attributes]
                copy.write_row((identifier, *attributes,
                                shapely.to_wkb(shapely.set_srid(geometry, srid), hex=True, include_srid=True)))
        conn.execute(sql.SQL("CREATE INDEX ON {} USING gist (geom)").format(table))
        conn.execute(sql.SQL("ANALYZE {}").format(table))


def load_raster(conn, names: TableNames, info: RasterInfo, srid: int, loader: str,
                check_cancel: Optional[CheckCancel] = None) -> int:
    """Band 1 of a composite as ``ndvi_<year>``: tiles, constraints, GiST index on the convex hulls. Returns tiles."""
    from psycopg import sql

    name = RASTER_TABLE.format(year=info.year)
    table = names.identifier(name)
    tiles = (raster2pgsql_tiles if loader == "raster2pgsql" else python_tiles)(info, srid, check_cancel)
    count = 0
    with _step(conn, f"loading {info.path.name} into {names.qualified(name)}"):
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        conn.execute(sql.SQL("CREATE TABLE {} (rid serial PRIMARY KEY, rast raster)").format(table))
        with conn.cursor().copy(sql.SQL("COPY {} (rast) FROM STDIN").format(table)) as copy:
            for tile in tiles:
                copy.write_row((tile,))
                count += 1
        conn.execute(sql.SQL("CREATE INDEX ON {} USING gist (ST_ConvexHull(rast))").format(table))
        conn.execute("SELECT AddRasterConstraints(%s::name, %s::name, 'rast'::name)", (names.schema, names.table(name)))
        conn.execute(sql.SQL("ANALYZE {}").format(table))
    return count


def _stat_columns(layout: StatsLayout):
    from psycopg import sql

    return sql.SQL(", ").join(sql.SQL("{} double precision").format(sql.Identifier(f)) for f in layout.stat_fields)


def _create_stats_table(conn, table, layout: StatsLayout, districts: Districts, srid: int, nullable_year: bool) -> None:
    from psycopg import sql

    conn.execute(sql.SQL(
        "CREATE TABLE {} ({}, geom geometry(MultiPolygon, {}), year integer{}, {} bigint NOT NULL DEFAULT 0, {})"
    ).format(table, _district_definitions(districts), sql.Literal(srid), sql.SQL("" if nullable_year else " NOT NULL"),
             sql.Identifier(layout.count_field), _stat_columns(layout)))


def compute_year(conn, names: TableNames, layout: StatsLayout, year: int, districts_given: Districts, srid: int,
                 check_cancel: Optional[CheckCancel] = None) -> None:
    from psycopg import sql

    table = names.identifier(layout.year_table(year))
    tiles = names.identifier(RASTER_TABLE.format(year=year))
    districts = names.identifier(DISTRICTS_TABLE)
    summary = {"min_ndvi": "min", "max_ndvi": "max", "mean_ndvi": "mean", "stddev_ndvi": "stddev"}
    quantile = {"median_ndvi": 1, "p10_ndvi": 2, "p90_ndvi": 3}  # element of j.quantiles (percentile_cont's array)
    values = sql.SQL(", ").join(
        sql.SQL("CASE WHEN (j.stats).count > 0 THEN (j.stats).{} END").format(sql.Identifier(summary[f])) if f in summary
        else sql.SQL("CASE WHEN (j.stats).count > 0 THEN j.quantiles[{}] END").format(sql.Literal(quantile[f]))
        for f in layout.stat_fields)
    with _step(conn, f"statistics for {year} into {names.qualified(layout.year_table(year))}", check_cancel):
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        _create_stats_table(conn, table, layout, districts_given, srid, nullable_year=False)
        # Each district's tiles are clipped once (ST_Clip keeps pixels whose centre is inside); the summary comes from
        # ST_SummaryStatsAgg, the median and percentiles from percentile_cont over the same clipped pixels
        # (ST_DumpValues gives NULL for nodata; NaN is left out as ST_SummaryStatsAgg leaves it out): exact, and the
        # same linear interpolation as numpy's default percentile.
        conn.execute(sql.SQL(
            "INSERT INTO {table} ({columns}, geom, year, {count}, {fields}) "
            "SELECT {selected}, d.geom, %s, COALESCE((j.stats).count, 0), {values} FROM {districts} AS d "
            "LEFT JOIN LATERAL ("
            "  WITH clipped AS MATERIALIZED ("
            "    SELECT ST_Clip(t.rast, d.geom, true) AS rast FROM {tiles} AS t"
            "    WHERE ST_ConvexHull(t.rast) && d.geom AND ST_Intersects(ST_ConvexHull(t.rast), d.geom))"
            "  SELECT (SELECT ST_SummaryStatsAgg(c.rast, 1, true) FROM clipped AS c) AS stats,"
            "         (SELECT percentile_cont(ARRAY[0.5, 0.1, 0.9]::double precision[]) WITHIN GROUP (ORDER BY p.value)"
            "          FROM clipped AS c CROSS JOIN LATERAL unnest(ST_DumpValues(c.rast, 1, true)) AS p(value)"
            "          WHERE p.value IS NOT NULL AND p.value <> 'NaN'::double precision) AS quantiles"
            ") AS j ON true"
        ).format(table=table, columns=_district_list(districts_given), selected=_district_list(districts_given, "d"),
                 count=sql.Identifier(layout.count_field),
                 fields=sql.SQL(", ").join(map(sql.Identifier, layout.stat_fields)), values=values,
                 districts=districts, tiles=tiles), (year,))
        conn.execute(sql.SQL("CREATE INDEX ON {} USING gist (geom)").format(table))


def _check_compatible(conn, names: TableNames, table: str, districts: Districts, srid: int) -> None:
    columns = _existing_columns(conn, names, table)
    if not columns:
        return
    id_type = _id_type(districts)
    if columns.get(districts.id_field) != id_type:
        had = f"{columns[districts.id_field]} district ids" if districts.id_field in columns else f"no id field {districts.id_field!r}"
        raise ConfigurationError(
            f"{names.qualified(table)} already has {had} and these districts have "
            f"{id_type} ids in {districts.id_field!r}: use another schema or table prefix")
    geometry = columns.get(GEOMETRY, "")
    if f",{srid})" not in geometry.replace(" ", ""):
        raise ConfigurationError(f"{names.qualified(table)} holds geometries of another CRS ({geometry}): "
                                 "use another schema or table prefix")


def _match_attribute_columns(conn, names: TableNames, table: str, layout: StatsLayout, districts: Districts) -> None:
    """The existing latest table gets the districts' attribute columns of this run (their values follow):
    columns of other attributes are dropped, missing ones added, retyped ones replaced."""
    from psycopg import sql

    identifier = names.identifier(table)
    existing = _existing_columns(conn, names, table)
    wanted = dict(_district_columns(districts)[1:])
    ours = {districts.id_field, GEOMETRY, YEAR, layout.count_field, *layout.stat_fields}
    for column, kind in existing.items():
        if column not in ours and wanted.get(column) != kind:
            conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(identifier, sql.Identifier(column)))
    for column, kind in wanted.items():
        if existing.get(column) != kind:
            conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(identifier, sql.Identifier(column), sql.SQL(kind)))
    for column in layout.stat_fields:  # a table of an earlier release lacks the statistics added since (the percentiles)
        if column not in existing:
            conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} double precision").format(identifier, sql.Identifier(column)))


def update_latest(conn, names: TableNames, layout: StatsLayout, years: Sequence[int], districts_given: Districts, srid: int,
                  replace_latest: bool, check_cancel: Optional[CheckCancel] = None) -> None:
    from psycopg import sql

    latest = names.identifier(layout.latest_table)
    key = sql.Identifier(districts_given.id_field)
    attributes = [a.name for a in districts_given.attributes]
    fields = [layout.count_field] + list(layout.stat_fields)
    columns = sql.SQL(", ").join(map(sql.Identifier, [districts_given.id_field] + attributes + [GEOMETRY, YEAR] + fields))
    updates = sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(f))
                                 for f in attributes + [GEOMETRY, YEAR] + fields)
    with _step(conn, f"updating {names.qualified(layout.latest_table)}", check_cancel):
        if replace_latest:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(latest))
        else:
            _check_compatible(conn, names, layout.latest_table, districts_given, srid)
        if not _existing_columns(conn, names, layout.latest_table):
            _create_stats_table(conn, latest, layout, districts_given, srid, nullable_year=True)
            conn.execute(sql.SQL("CREATE INDEX ON {} USING gist (geom)").format(latest))
        else:
            _match_attribute_columns(conn, names, layout.latest_table, layout, districts_given)
        for year in sorted(years):
            conn.execute(sql.SQL(
                "INSERT INTO {latest} AS latest ({columns}) SELECT {columns} FROM {year_table} WHERE {count} > 0 "
                "ON CONFLICT ({key}) DO UPDATE SET {updates} WHERE latest.year IS NULL OR latest.year <= EXCLUDED.year"
            ).format(latest=latest, columns=columns, year_table=names.identifier(layout.year_table(year)),
                     count=sql.Identifier(layout.count_field), updates=updates, key=key))
        districts = names.identifier(DISTRICTS_TABLE)
        conn.execute(sql.SQL("INSERT INTO {} ({}, geom, year, {}) SELECT {}, geom, NULL, 0 FROM {} "
                             "ON CONFLICT ({}) DO NOTHING").format(latest, _district_list(districts_given),
                                                                  sql.Identifier(layout.count_field),
                                                                  _district_list(districts_given), districts, key))
        # the districts given now: their geometry and attributes as given now
        refreshed = sql.SQL(", ").join(sql.SQL("{0} = d.{0}").format(sql.Identifier(f)) for f in [GEOMETRY] + attributes)
        conn.execute(sql.SQL("UPDATE {} AS latest SET {} FROM {} AS d WHERE latest.{} = d.{}").format(
            latest, refreshed, districts, key, key))


def year_tables(conn, names: TableNames, layout: StatsLayout, districts: Districts, log: Optional[Log] = None) -> List[int]:
    """Years of the ``<prefix><base>_<year>`` tables in the schema that have this layout's columns."""
    rows = conn.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p')", (names.schema,)).fetchall()
    years = []
    # the statistics added in later releases (the percentiles) may be missing: they read as NULL
    wanted = {districts.id_field, YEAR, layout.count_field, layout.primary}
    for (relname,) in rows:
        if not relname.startswith(names.prefix):
            continue
        year = layout.table_year(relname[len(names.prefix):])
        if year is None:
            continue
        columns = _existing_columns(conn, names, layout.year_table(year))
        if wanted <= set(columns) and columns[districts.id_field] == _id_type(districts):
            years.append(year)
        else:
            say(log, f"{names.qualified(layout.year_table(year))} is left out of the change table: other columns or id type")
    return sorted(years)


def build_change(conn, names: TableNames, layout: StatsLayout, districts: Districts, srid: int, log: Optional[Log] = None,
                 check_cancel: Optional[CheckCancel] = None) -> None:
    from psycopg import sql

    change = names.identifier(layout.change_table)
    stats = list(layout.stat_fields)
    key = sql.Identifier(districts.id_field)
    with _step(conn, f"building {names.qualified(layout.change_table)}", check_cancel):
        years = year_tables(conn, names, layout, districts, log)
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(change))
        conn.execute(sql.SQL(
            "CREATE TABLE {} ({}, geom geometry(MultiPolygon, {}), first_year integer, last_year integer, {})"
        ).format(change, _district_definitions(districts), sql.Literal(srid), sql.SQL(", ").join(
            sql.SQL("{} double precision").format(sql.Identifier(f)) for f in layout.change_fields[2:])))
        selected = sql.SQL(", ").join(map(sql.Identifier, [districts.id_field, YEAR] + stats))

        def year_columns(year):
            present = _existing_columns(conn, names, layout.year_table(year))
            return sql.SQL(", ").join([sql.Identifier(districts.id_field), sql.Identifier(YEAR)] + [
                sql.Identifier(s) if s in present else sql.SQL("NULL::double precision AS {}").format(sql.Identifier(s))
                for s in stats])

        union = sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT {} FROM {} WHERE {} > 0").format(year_columns(y), names.identifier(layout.year_table(y)),
                                                             sql.Identifier(layout.count_field)) for y in years)
        if not years:
            union = sql.SQL("SELECT {} FROM {} WHERE false").format(selected, names.identifier(layout.latest_table))
        differences = sql.SQL(", ").join(
            sql.SQL("CASE WHEN z.year > f.year THEN z.{0} - f.{0} END").format(sql.Identifier(s)) for s in stats)
        conn.execute(sql.SQL(
            "INSERT INTO {change} ({columns}, geom, first_year, last_year, {rest}) "
            "SELECT {selected}, l.geom, f.year, z.year, f.{primary}, z.{primary}, {differences} "
            "FROM {latest} AS l "
            "LEFT JOIN (SELECT DISTINCT ON ({key}) * FROM ({union}) AS y ORDER BY {key}, year) AS f ON f.{key} = l.{key} "
            "LEFT JOIN (SELECT DISTINCT ON ({key}) * FROM ({union}) AS y ORDER BY {key}, year DESC) AS z ON z.{key} = l.{key}"
        ).format(change=change, columns=_district_list(districts), selected=_district_list(districts, "l"),
                 rest=sql.SQL(", ").join(map(sql.Identifier, layout.change_fields[2:])),
                 primary=sql.Identifier(layout.primary), differences=differences, key=key,
                 latest=names.identifier(layout.latest_table), union=union))
        conn.execute(sql.SQL("CREATE INDEX ON {} USING gist (geom)").format(change))


def read_rows(conn, names: TableNames, table: str, fields: Sequence[str], districts: Districts) -> List[Row]:
    """A table of this layout as rows (geometries as shapely), ordered by id."""
    import shapely
    from psycopg import sql

    carried = list(districts.field_names)
    selected = sql.SQL(", ").join(map(sql.Identifier, carried + list(fields)))
    cursor = conn.execute(sql.SQL("SELECT ST_AsBinary(geom), {} FROM {} ORDER BY {}").format(
        selected, names.identifier(table), sql.Identifier(districts.id_field)))
    rows = []
    for record in cursor:
        row: Row = {GEOMETRY: shapely.from_wkb(bytes(record[0])) if record[0] is not None else None}
        row.update(zip(carried + list(fields), record[1:]))
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- the operation


@contextmanager
def _run_transaction(conn):
    import psycopg

    try:
        with conn.transaction():
            yield
    except psycopg.OperationalError as error:  # the rollback itself failed: the server is gone, and so is the transaction
        raise StorageError(f"PostGIS: the connection was lost ({hide_password(error)}); nothing of this run was kept") from None


def district_stats_postgis(
    request: DistrictStatsRequest,
    progress: Optional[Progress] = None,
    check_cancel: Optional[CheckCancel] = None,
    log: Optional[Log] = None,
    before_publish: BeforePublish = None,
) -> StatsResult:
    """Per district and year, ``ST_SummaryStatsAgg(ST_Clip(...))`` in PostGIS through ``request.connection``; see the
    module documentation.

    ``request.output_gpkg`` (optional): also copy this run's year tables, the latest and the change
    table into that GeoPackage (other tables in it are kept), for QGIS to load and style.
    The natural breaks are in the result either way. ``request.geojson``: the latest table exported too.
    """
    if request.embedded:
        raise ConfigurationError("this request has no PostgreSQL connection: compute it here with district_stats "
                                 "(or district_stats_embedded)")
    layout: StatsLayout = request.layout
    connection, districts, output_gpkg, classes = request.connection, request.districts, request.output_gpkg, request.classes
    names = TableNames(request.schema, request.prefix, layout)
    loader = request.loader
    started = time.perf_counter()
    infos, crs = check_rasters(request.by_year)
    srid = _srid(crs)
    prepared, repairs = districts.prepared(crs)
    for identifier, reason in repairs:
        say(log, f"district {identifier!r}: {reason}")

    def report(fraction: float) -> None:
        if progress:
            progress(min(1.0, fraction))

    conn = connect(connection)
    try:
        lock_key = f"canopy_explorer:{names.schema}:{names.prefix}"
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (lock_key,))
        if not conn.execute("SELECT 1 FROM spatial_ref_sys WHERE srid = %s", (srid,)).fetchone():
            raise ConfigurationError(f"PostGIS does not know SRID {srid} (no row in spatial_ref_sys)")
        say(log, f"PostGIS {describe_connection(connection)}: schema {names.schema!r}, table prefix {names.prefix!r}")
        # One run, one transaction (each step is a savepoint inside it): a failure, a lost server or a
        # cancel leaves every table as it was before the run.
        with _run_transaction(conn):
            load_districts(conn, names, prepared, srid, check_cancel)
            report(0.05)
            share = 0.85 / len(infos)
            for number, (year, info) in enumerate(infos.items()):
                if check_cancel:
                    check_cancel()
                tick = time.perf_counter()
                tiles = load_raster(conn, names, info, srid, loader, check_cancel)
                say(log, f"{year}: {info.path.name} loaded as {tiles} tile(s) with {loader} in {time.perf_counter() - tick:.1f} s")
                report(0.05 + (number + 0.5) * share)
                tick = time.perf_counter()
                compute_year(conn, names, layout, year, prepared, srid, check_cancel)
                say(log, f"{year}: statistics of {len(prepared.ids)} district(s) in {time.perf_counter() - tick:.1f} s")
                report(0.05 + (number + 1) * share)
            update_latest(conn, names, layout, list(infos), prepared, srid, request.replace_latest, check_cancel)
            build_change(conn, names, layout, prepared, srid, log, check_cancel)
            report(0.92)
            year_rows = {year: read_rows(conn, names, layout.year_table(year), layout.fields, prepared) for year in infos}
            latest = read_rows(conn, names, layout.latest_table, layout.fields, prepared)
            change = read_rows(conn, names, layout.change_table, layout.change_fields, prepared)
        conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock_key,))
    finally:
        conn.close()
    if output_gpkg is not None:
        layers = publish_statistics(output_gpkg, layout, prepared, year_rows, classes, latest=latest, change=change,
                                    before_publish=before_publish, check_cancel=check_cancel)
    else:
        tables = {layout.year_table(year): rows for year, rows in year_rows.items()}
        tables[layout.latest_table], tables[layout.change_table] = latest, change
        layers = describe_layers(layout, tables, classes)
    report(1.0)
    say(log, f"district statistics done in PostGIS in {time.perf_counter() - started:.1f} s")
    database_tables = tuple((layer.name, names.qualified(layer.name)) for layer in layers)
    result = StatsResult(output_gpkg, layers, tuple(infos), repairs, crs, len(prepared.ids),
                         database=f"{names.schema}, prefix {names.prefix!r}", database_tables=database_tables)
    return export_latest(request, result)
