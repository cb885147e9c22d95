"""District statistics shared by every mode: the districts input, years, table layout, "latest" and change rules.

    districts = Districts.from_file("districts.gpkg", id_field="district_code")    # or Districts.create(ids, geometries, crs)
    rasters = rasters_by_year(["ndvi_composite_2019.tif", "ndvi_composite_2024.tif"])   # {2019: path, 2024: path}
    result = district_stats(DistrictStatsRequest.create(districts, rasters, "district_stats.gpkg"))

The embedded mode (``embedded.district_stats_embedded``), the PostGIS mode
(``postgis.district_stats_postgis``; ``district_stats`` picks one from the request) and the ATL08
mode (``canopy.district_stats_atl08``) compute per-district statistics for each year and
publish the same tables:

* ``<base>_<year>``: one row per district: the id field under its own name and type, the
  districts' other attributes (names and types kept), ``year``, the count (``pixel_count``
  or ``segment_count``), the statistics (NULL when the count is 0), the geometry.
* ``<base>_latest``: one row per district keyed on the id field: the newest year with data
  wins, an older year never replaces a newer one, a year re-computed replaces itself;
  districts without data in any year are kept with ``year`` NULL and count 0. The table
  is updated, not rebuilt: years computed in earlier runs stay in it.
* ``<base>_change``: per district of the latest table, the earliest and newest years
  with data among all year tables present, the chosen statistic in both, and every
  statistic's change (newest minus earliest; NULL with fewer than two years of data).

The rules are written once here in Python (``merge_latest``, ``change_rows``) and once
in SQL in ``postgis``; the tests hold both to the same results.

A district field (the id field or another attribute) named like a column the tables add
(``geom``, ``year``, the count, the statistics, the change table's fields; compared
ignoring case) is refused with an error naming the field and the column
(``check_field_names``): rename it in the layer (QGIS's Refactor fields). The GeoPackage
tables' feature id column is ``fid``, or ``fid_1``, ``fid_2``... when a district field is
named ``fid``.
"""

import math
import os
import re
import datetime
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..callbacks import CheckCancel, Log, Progress
from ..errors import ConfigurationError, QueryError
from ..natural_breaks import fisher_jenks, sample_for_breaks
from ..polygons import polygonal_part, why_no_area
from ..values import whole_number


ID = "id"
YEAR = "year"
GEOMETRY = "geom"
FID = "fid"  # the GeoPackage tables' feature id column, unless a district field has that name
ATTRIBUTE_TYPES = ("integer", "real", "text", "date")
_YEAR_IN_NAME = re.compile(r"(?<!\d)(\d{4})(?!\d)")


# --------------------------------------------------------------------------- years


def year_of(path) -> int:
    """The 4-digit year in a raster's file name, as in ``ndvi_composite_2019.tif``."""
    name = Path(str(path)).name
    stem = name.rsplit(".", 1)[0] if "." in name else name
    years = sorted({int(y) for y in _YEAR_IN_NAME.findall(stem) if 1900 <= int(y) <= 2200})
    if not years:
        raise ConfigurationError(f"no year in the raster name '{name}': name each composite with its 4-digit year, "
                                 "as in ndvi_composite_2019.tif")
    if len(years) > 1:
        raise ConfigurationError(f"the raster name '{name}' holds several years ({', '.join(map(str, years))}): "
                                 "keep only one 4-digit year in it")
    return years[0]


def rasters_by_year(rasters) -> Dict[int, Path]:
    """``{year: path}`` from a list of paths (years from their names) or a mapping already keyed by year."""
    if isinstance(rasters, Mapping):
        pairs = [(int(year), Path(path)) for year, path in rasters.items()]
    else:
        pairs = [(year_of(path), Path(path)) for path in rasters]
    if not pairs:
        raise ConfigurationError("no raster given: pick at least one yearly composite")
    by_year: Dict[int, Path] = {}
    for year, path in pairs:
        if year in by_year and by_year[year] != path:
            raise ConfigurationError(f"two rasters for {year}: {by_year[year].name} and {path.name}")
        by_year[year] = path
    return dict(sorted(by_year.items()))


# --------------------------------------------------------------------------- districts


@dataclass(frozen=True)
class Attribute:
    """One of the districts' other fields: its name, type (``integer``, ``real``, ``text`` or ``date``) and a value
    per district (None is NULL). ``Attribute(name, None, values)`` infers the type from the values."""

    name: str
    type: Optional[str]
    values: Tuple


@dataclass(frozen=True)
class Districts:
    """Polygons with a unique id each, in one CRS (any text pyproj accepts: ``EPSG:28992``, WKT), and the
    districts' other attributes, carried into every statistics table under their own names and types."""

    ids: Tuple
    geometries: Tuple
    crs: str
    id_field: str = ID  # the source layer's id field: the id column of every table
    attributes: Tuple[Attribute, ...] = field(default=())

    @classmethod
    def create(cls, ids: Sequence, geometries: Sequence, crs, id_field: str = ID, attributes=None) -> "Districts":
        """``attributes``: ``{name: values}``, or ``Attribute`` objects (to give a type), in the order of the ids;
        an attribute named like the id field is left out (it is the id)."""
        import shapely

        ids, geometries = list(ids), list(geometries)
        if len(ids) != len(geometries):
            raise ConfigurationError(f"{len(ids)} district ids for {len(geometries)} geometries")
        if not ids:
            raise ConfigurationError("the districts layer has no features")
        if crs is None or not str(crs).strip():
            raise ConfigurationError("the districts layer has no coordinate reference system: set one on the layer")
        if not isinstance(id_field, str) or not id_field.strip():
            raise ConfigurationError("the districts' id field has no name")
        crs = _crs_text(crs, "districts layer")
        ids = _normalise_ids(ids, id_field)
        checked = []
        for identifier, geometry in zip(ids, geometries):
            if geometry is not None and not isinstance(geometry, shapely.Geometry):
                try:
                    geometry = shapely.from_wkb(geometry) if isinstance(geometry, (bytes, bytearray)) else shapely.from_wkt(geometry)
                except Exception:
                    raise ConfigurationError(f"district {identifier!r}: the geometry cannot be read") from None
            if geometry is not None and not geometry.is_empty and geometry.geom_type not in (
                    "Polygon", "MultiPolygon", "GeometryCollection"):
                raise ConfigurationError(f"district {identifier!r} is a {geometry.geom_type}: districts must be polygons")
            checked.append(geometry)
        return cls(tuple(ids), tuple(checked), crs, id_field, _normalise_attributes(attributes, len(ids), id_field))

    @classmethod
    def from_file(cls, path, id_field: str, layer: Optional[str] = None) -> "Districts":
        """The polygons of an OGR-readable file (GeoPackage, Shapefile, GeoJSON, ...), ids from ``id_field``,
        the other fields as attributes."""
        import shapely
        from osgeo import ogr

        ogr.UseExceptions()
        try:
            dataset = ogr.Open(str(path))
        except RuntimeError as error:
            raise ConfigurationError(f"cannot open the districts file {path}: {error}") from None
        source = dataset.GetLayerByName(layer) if layer else dataset.GetLayer(0)
        if source is None:
            raise ConfigurationError(f"no layer {layer!r} in {path}")
        definition = source.GetLayerDefn()
        names = [definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())]
        use_fid = id_field not in names and id_field == (source.GetFIDColumn() or "fid")
        if id_field not in names and not use_fid:
            raise ConfigurationError(f"the districts layer has no field {id_field!r}; its fields are: {', '.join(names) or 'none'}")
        srs = source.GetSpatialRef()
        crs = None
        if srs is not None:
            authority = srs.GetAuthorityName(None), srs.GetAuthorityCode(None)
            crs = f"{authority[0]}:{authority[1]}" if all(authority) else srs.ExportToWkt()
        kinds = {ogr.OFTInteger: "integer", ogr.OFTInteger64: "integer", ogr.OFTReal: "real", ogr.OFTDate: "date"}
        others = [(i, definition.GetFieldDefn(i)) for i in range(definition.GetFieldCount()) if names[i] != id_field]
        types = {d.GetName(): ("text" if d.GetSubType() == ogr.OFSTBoolean else kinds.get(d.GetType(), "text")) for _, d in others}
        ids, geometries = [], []
        values: Dict[str, List] = {d.GetName(): [] for _, d in others}
        for feature in source:
            ids.append(feature.GetFID() if use_fid else feature.GetField(id_field))
            geometry = feature.GetGeometryRef()
            geometries.append(None if geometry is None else shapely.from_wkb(bytes(geometry.ExportToIsoWkb())))
            for index, definition_i in others:
                values[definition_i.GetName()].append(ogr_value(feature, index, types[definition_i.GetName()]))
        dataset = None
        attributes = [Attribute(name, types[name], tuple(column)) for name, column in values.items()]
        return cls.create(ids, geometries, crs, id_field, attributes)

    @property
    def id_type(self) -> str:
        """``integer`` or ``text``: how the ids are stored."""
        return "integer" if isinstance(self.ids[0], int) else "text"

    @property
    def field_names(self) -> Tuple[str, ...]:
        """The id field, then the other attributes: the districts' columns of every table."""
        return (self.id_field,) + tuple(a.name for a in self.attributes)

    def attribute_row(self, index: int) -> Dict[str, object]:
        return {a.name: a.values[index] for a in self.attributes}

    def attributes_by_id(self) -> Dict[object, Dict[str, object]]:
        return {identifier: self.attribute_row(index) for index, identifier in enumerate(self.ids)}

    @property
    def fid_column(self) -> str:
        """The GeoPackage tables' feature id column: ``fid``, or ``fid_<n>`` when a district field takes that name."""
        taken = {name.lower() for name in self.field_names}
        candidate, number = FID, 0
        while candidate.lower() in taken:
            number += 1
            candidate = f"{FID}_{number}"
        return candidate

    def prepared(self, target_crs) -> Tuple["Districts", Tuple[Tuple[object, str], ...]]:
        """(districts in ``target_crs`` as valid multipolygons, repairs made as ``(id, reason)``).

        Invalid geometries are repaired with ``make_valid`` (only their polygonal parts
        are kept); empty ones, and those a repair collapses to lines, stay empty and get no
        data. A QueryError when no district has an area: there is nothing to compute.
        """
        import shapely

        target = _crs_text(target_crs, "raster")
        project = _projection(self.crs, target)
        geometries, repairs, no_area = [], [], []
        for identifier, given in zip(self.ids, self.geometries):
            given = shapely.MultiPolygon() if given is None else given
            geometry, reason = polygonal_part(given)
            if project is not None and not geometry.is_empty:
                given = project(geometry)
                geometry, folded = polygonal_part(given)  # a projection can fold a thin shape
                reason = reason or folded
            if geometry.is_empty:
                no_area.append((identifier, why_no_area(given)))
                repairs.append((identifier, f"no statistics: the geometry is {no_area[-1][1]}"))
                geometry = shapely.MultiPolygon()
            elif reason:
                repairs.append((identifier, f"invalid geometry repaired ({reason})"))
            geometries.append(shapely.MultiPolygon([geometry]) if geometry.geom_type == "Polygon" else geometry)
        if no_area and len(no_area) == len(geometries):
            identifier, why = no_area[0]
            others = f"; {len(no_area) - 1} more like it" if len(no_area) > 1 else ""
            raise QueryError(f"no district has an area (district {identifier!r} is {why}{others})")
        return replace(self, geometries=tuple(geometries), crs=target), tuple(repairs)


def ogr_value(feature, index: int, kind: str):
    """A field's value from an OGR feature as the attribute type says (dates as ``datetime.date``); None for NULL."""
    if not feature.IsFieldSetAndNotNull(index):
        return None
    if kind == "date":
        year, month, day = feature.GetFieldAsDateTime(index)[:3]
        return datetime.date(year, month, day)
    return feature.GetField(index)


def _attribute_type(values: Sequence) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "integer"
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "real"
    if present and all(isinstance(v, datetime.date) and not isinstance(v, datetime.datetime) for v in present):
        return "date"
    return "text"


def _attribute_value(value, kind: str, name: str):
    if isinstance(value, (np.integer, np.floating, np.str_, np.bool_)):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        if kind == "integer":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind == "real":
            return float(value)
        if kind == "date":
            if isinstance(value, datetime.datetime):
                return value.date()
            if isinstance(value, datetime.date):
                return value
            return datetime.date.fromisoformat(str(value).replace("/", "-")[:10])
    except (TypeError, ValueError):
        raise ConfigurationError(f"the districts' {kind} field {name!r} holds {value!r}, which is not {'an' if kind == 'integer' else 'a'} "
                                 f"{kind}") from None
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return value if isinstance(value, str) else str(value)


def _normalise_attributes(attributes, count: int, id_field: str) -> Tuple[Attribute, ...]:
    if attributes is None:
        return ()
    if isinstance(attributes, Mapping):
        attributes = [Attribute(name, None, tuple(values)) for name, values in attributes.items()]
    result, seen = [], {id_field.lower(): id_field}
    for attribute in attributes:
        if not isinstance(attribute, Attribute):
            raise ConfigurationError(f"district attributes must be a mapping of names to values or Attribute objects, "
                                     f"not {type(attribute).__name__}")
        name = attribute.name
        if name == id_field:
            continue
        if not isinstance(name, str) or not name.strip() or "\x00" in name:
            raise ConfigurationError(f"a districts field has an unusable name: {name!r}")
        if name.lower() in seen:
            raise ConfigurationError(f"the districts fields {seen[name.lower()]!r} and {name!r} differ only in case: "
                                     "the statistics tables (GeoPackage) cannot hold both, rename one")
        seen[name.lower()] = name
        values = list(attribute.values)
        if len(values) != count:
            raise ConfigurationError(f"{len(values)} values of the districts field {name!r} for {count} districts")
        values = [v.item() if isinstance(v, (np.integer, np.floating, np.str_, np.bool_)) else v for v in values]
        kind = attribute.type or _attribute_type(values)
        if kind not in ATTRIBUTE_TYPES:
            raise ConfigurationError(f"unknown type {kind!r} of the districts field {name!r}: use one of {', '.join(ATTRIBUTE_TYPES)}")
        result.append(Attribute(name, kind, tuple(_attribute_value(v, kind, name) for v in values)))
    return tuple(result)


def _normalise_ids(ids: List, id_field: str) -> List:
    missing = [i for i, value in enumerate(ids) if value is None or (isinstance(value, float) and math.isnan(value))]
    if missing:
        raise ConfigurationError(f"{len(missing)} district(s) have no value in the id field {id_field!r}: "
                                 "every district needs a unique id")
    converted = []
    for value in ids:
        if isinstance(value, (np.integer, np.floating, np.str_)):
            value = value.item()
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        converted.append(value)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in converted):
        converted = [str(v) for v in converted]
    seen, duplicates = set(), []
    for value in converted:
        if value in seen:
            duplicates.append(value)
        seen.add(value)
    if duplicates:
        shown = ", ".join(repr(v) for v in sorted(set(duplicates))[:5])
        raise ConfigurationError(f"the id field {id_field!r} is not unique ({shown}): pick a field with one value per district")
    return converted


def _crs_text(crs, what: str) -> str:
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    if crs is None or not str(crs).strip():
        raise ConfigurationError(f"the {what} has no coordinate reference system")
    text = crs.to_wkt() if hasattr(crs, "to_wkt") else str(crs)
    try:
        parsed = CRS.from_user_input(text)
    except CRSError as error:
        raise ConfigurationError(f"the {what} has an unknown coordinate reference system: {error}") from None
    code = parsed.to_epsg(min_confidence=90)
    return f"EPSG:{code}" if code else parsed.to_wkt()


def same_crs(a: str, b: str) -> bool:
    from pyproj import CRS

    return a == b or CRS.from_user_input(a) == CRS.from_user_input(b)


def _projection(source: str, target: str):
    """A function projecting shapely geometries from ``source`` to ``target`` (densified so long edges
    follow the projection), or None when the two CRSs are the same."""
    if same_crs(source, target):
        return None
    import shapely
    from pyproj import CRS, Transformer

    transformer = Transformer.from_crs(CRS.from_user_input(source), CRS.from_user_input(target), always_xy=True)

    def project(geometry):
        minx, miny, maxx, maxy = geometry.bounds
        geometry = shapely.segmentize(geometry, max(maxx - minx, maxy - miny) / 64 or 1.0)
        return shapely.transform(geometry, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))
    return project


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class StatsLayout:
    """Names of the tables and fields of one kind of district statistics."""

    base: str  # "ndvi_stats": tables <base>_<year>, <base>_latest, <base>_change
    count_field: str  # "pixel_count"
    stat_fields: Tuple[str, ...]  # ("min_ndvi", "max_ndvi", "mean_ndvi", "stddev_ndvi", "median_ndvi", ...)
    primary: str  # the statistic maps are classified on

    def __post_init__(self):
        if self.primary not in self.stat_fields:
            raise ConfigurationError(f"unknown statistic {self.primary!r}: choose one of {', '.join(self.stat_fields)}")

    def with_primary(self, statistic: Optional[str]) -> "StatsLayout":
        return self if not statistic else replace(self, primary=statistic)

    def year_table(self, year: int) -> str:
        return f"{self.base}_{year}"

    @property
    def latest_table(self) -> str:
        return f"{self.base}_latest"

    @property
    def change_table(self) -> str:
        return f"{self.base}_change"

    def table_year(self, name: str) -> Optional[int]:
        """The year of a year table's name, None for any other name."""
        match = re.fullmatch(re.escape(self.base) + r"_(\d{4})", name)
        return int(match.group(1)) if match else None

    @property
    def fields(self) -> Tuple[str, ...]:
        """Fields of the year and latest tables, after the districts' fields (types: year integer, count integer, stats real)."""
        return (YEAR, self.count_field) + self.stat_fields

    @property
    def change_fields(self) -> Tuple[str, ...]:
        return ("first_year", "last_year", f"first_{self.primary}", f"last_{self.primary}") + tuple(
            f"{name}_change" for name in self.stat_fields)

    @property
    def change_primary(self) -> str:
        return f"{self.primary}_change"

    def integer_fields(self) -> Tuple[str, ...]:
        return (YEAR, self.count_field, "first_year", "last_year")


# the percentiles come after the statistics of earlier releases, so their columns keep their places
NDVI_LAYOUT = StatsLayout("ndvi_stats", "pixel_count", ("min_ndvi", "max_ndvi", "mean_ndvi", "stddev_ndvi", "median_ndvi",
                                                        "p10_ndvi", "p90_ndvi"), "mean_ndvi")


# --------------------------------------------------------------------------- rows and rules

Row = Dict[str, object]  # the id field, the attributes, geom (shapely), then the layout's fields; None is NULL


def reserved_columns(layout: StatsLayout) -> Dict[str, str]:
    """{lower-case column name: what it holds}: the columns the statistics tables add to the districts' fields."""
    reserved = {GEOMETRY: "the geometry", YEAR: "the year of the statistics",
                layout.count_field: "the count of the statistics"}
    reserved.update({name: "a statistic" for name in layout.stat_fields})
    reserved.update({name: "a field of the change table" for name in layout.change_fields})
    return {name.lower(): what for name, what in reserved.items()}


def check_field_names(layout: StatsLayout, districts: Districts) -> None:
    """A ConfigurationError naming the first district field (id or attribute) that has the name of a statistics
    column (ignoring case, as GeoPackage does)."""
    reserved = reserved_columns(layout)
    for name in districts.field_names:
        what = reserved.get(name.lower())
        if what is not None:
            kind = "id field" if name == districts.id_field else "field"
            raise ConfigurationError(
                f"the districts {kind} {name!r} has the name of a column of the statistics tables ({what}): "
                "rename it in the districts layer (for example with Refactor fields) and run again")


def stats_rows(layout: StatsLayout, districts: Districts, year: int, counts: Sequence[int],
               stats: Mapping[str, Sequence[float]]) -> List[Row]:
    """One year's table: statistics are NULL (None) where the count is 0 or the value is not finite."""
    rows = []
    key = districts.id_field
    for index, (identifier, geometry) in enumerate(zip(districts.ids, districts.geometries)):
        count = int(counts[index])
        row: Row = {key: identifier, **districts.attribute_row(index), GEOMETRY: geometry, YEAR: year,
                    layout.count_field: count}
        for name in layout.stat_fields:
            value = float(stats[name][index]) if count > 0 else None
            row[name] = value if value is not None and math.isfinite(value) else None
        rows.append(row)
    return sorted(rows, key=lambda r: r[key])


def merge_latest(layout: StatsLayout, existing: Optional[Sequence[Row]], years: Mapping[int, Sequence[Row]],
                 districts: Districts) -> List[Row]:
    """The latest table after upserting ``years`` (the years computed in this run) into ``existing``; the
    districts given now have their geometry and attributes as given now."""
    key = districts.id_field
    latest: Dict[object, Row] = {row[key]: dict(row) for row in (existing or [])}
    for year in sorted(years):
        for row in years[year]:
            if not row[layout.count_field]:
                continue
            current = latest.get(row[key])
            if current is None or current[YEAR] is None or current[YEAR] <= year:
                latest[row[key]] = dict(row)
    for index, (identifier, geometry) in enumerate(zip(districts.ids, districts.geometries)):
        if identifier not in latest:
            latest[identifier] = {key: identifier, GEOMETRY: geometry, YEAR: None, layout.count_field: 0,
                                  **{name: None for name in layout.stat_fields}}
        latest[identifier][GEOMETRY] = geometry  # the districts as given now
        latest[identifier].update(districts.attribute_row(index))
    return [latest[k] for k in sorted(latest)]


def change_rows(layout: StatsLayout, all_years: Mapping[int, Sequence[Row]], latest: Sequence[Row],
                districts: Optional[Districts] = None) -> List[Row]:
    """Per district of ``latest``: earliest and newest years with data among ``all_years``, and the changes
    (with the districts' id field and attributes as the latest table has them)."""
    key = districts.id_field if districts is not None else ID
    carried = districts.field_names if districts is not None else (ID,)
    with_data: Dict[object, List[Tuple[int, Row]]] = {}
    for year in sorted(all_years):
        for row in all_years[year]:
            if row[layout.count_field]:
                with_data.setdefault(row[key], []).append((year, row))
    rows = []
    for latest_row in latest:
        found = with_data.get(latest_row[key], [])
        row: Row = {name: latest_row.get(name) for name in carried}
        row[GEOMETRY] = latest_row[GEOMETRY]
        (first_year, first), (last_year, last) = (found[0], found[-1]) if found else ((None, {}), (None, {}))
        row["first_year"], row["last_year"] = first_year, last_year
        row[f"first_{layout.primary}"] = first.get(layout.primary)
        row[f"last_{layout.primary}"] = last.get(layout.primary)
        for name in layout.stat_fields:
            a, b = first.get(name), last.get(name)
            row[f"{name}_change"] = (b - a) if (found and last_year > first_year and a is not None and b is not None) else None
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class StatsLayer:
    """One published table, with the natural breaks of the field its map is classified on."""

    name: str
    kind: str  # "year", "latest" or "change"
    field: str
    minimum: Optional[float]
    breaks: Tuple[float, ...]
    rows: int
    year: Optional[int] = None


@dataclass(frozen=True)
class StatsResult:
    output: Optional[Path]  # the GeoPackage, None when only the database was written
    layers: Tuple[StatsLayer, ...]
    years: Tuple[int, ...]
    repairs: Tuple[Tuple[object, str], ...]
    crs: str  # of the tables' geometries
    district_count: int
    database: Optional[str] = None  # "schema, table prefix" in PostGIS mode
    database_tables: Tuple[Tuple[str, str], ...] = ()  # (layer name, quoted schema.table) in PostGIS mode
    geojson: Optional[Path] = None  # the latest table as GeoJSON, when the request asked for it

    def layer(self, name: str) -> StatsLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def summary(self) -> str:
        text = (f"{self.district_count} district(s), years {', '.join(map(str, self.years))}: "
                + ", ".join(layer.name for layer in self.layers))
        if self.output:
            text += f" in {self.output.name}"
        if self.repairs:
            text += f"; {len(self.repairs)} district geometr{'y' if len(self.repairs) == 1 else 'ies'} repaired or empty"
        return text


def layer_breaks(values: Iterable, classes: int) -> Tuple[Optional[float], Tuple[float, ...]]:
    """(minimum, Fisher-Jenks class upper bounds) of the non-NULL values."""
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    x = x[np.isfinite(x)]
    if not len(x):
        return None, ()
    bounds = fisher_jenks(sample_for_breaks(x), classes)
    bounds[-1] = float(x.max())
    return float(x.min()), tuple(bounds)


def describe_layers(layout: StatsLayout, tables: Mapping[str, Sequence[Row]], classes: int) -> Tuple[StatsLayer, ...]:
    """Breaks for each table, in publishing order (years, latest, change)."""
    if classes < 1:
        raise ConfigurationError("the number of classes must be at least 1")
    layers = []
    for name, rows in tables.items():
        year = layout.table_year(name)
        kind = "year" if year is not None else ("change" if name == layout.change_table else "latest")
        field_name = layout.change_primary if kind == "change" else layout.primary
        minimum, breaks = layer_breaks((row[field_name] for row in rows), classes)
        layers.append(StatsLayer(name, kind, field_name, minimum, breaks, len(rows), year))
    return tuple(layers)


def say(log: Optional[Log], message: str) -> None:
    if log:
        log(message)


# --------------------------------------------------------------------------- the NDVI statistics request


@dataclass(frozen=True)
class DistrictStatsRequest:
    """Per-district statistics of yearly NDVI composites: which districts and composites, computed where (here,
    or in PostGIS through ``connection``), published where, validated when it is built.

        request = DistrictStatsRequest.create(districts, ["ndvi_composite_2019.tif", "ndvi_composite_2024.tif"],
                                              "district_stats.gpkg", geojson="ndvi_stats_latest.geojson")
        result = district_stats(request)           # embedded; connection="service=gis" computes in PostGIS

    ``connection``: a libpq conninfo string, a mapping of connection keywords, or a function
    returning an open psycopg connection; None computes here (embedded), which needs ``output_gpkg``.
    ``geojson``: also export the latest table as GeoJSON in EPSG:4326 (from the GeoPackage)."""

    districts: Districts
    rasters: Tuple[Tuple[int, Path], ...]  # (year, composite), by year
    output_gpkg: Optional[Path] = None
    connection: Optional[object] = None
    schema: str = "public"  # PostGIS: the schema of the tables...
    prefix: str = ""  # ...and the prefix of their names
    loader: str = "python"  # PostGIS: how the composites are turned into raster tiles ("python" or "raster2pgsql")
    classes: int = 5  # natural-breaks classes of each table's map
    statistic: Optional[str] = None  # the field the maps are classified on (default mean_ndvi)
    replace_latest: bool = False  # the latest table starts afresh from these years, rather than being updated
    geojson: Optional[Path] = None

    @property
    def embedded(self) -> bool:
        return self.connection is None

    @property
    def by_year(self) -> Dict[int, Path]:
        return dict(self.rasters)

    @property
    def layout(self) -> StatsLayout:
        return NDVI_LAYOUT.with_primary(self.statistic)

    @classmethod
    def create(cls, districts: Districts, rasters, output_gpkg=None, connection=None, schema: str = "public", prefix: str = "",
               loader: str = "python", classes: int = 5, statistic: Optional[str] = None, replace_latest: bool = False,
               geojson=None) -> "DistrictStatsRequest":
        """``rasters``: paths (the year is the 4-digit year in each name) or ``{year: path}``."""
        if not isinstance(districts, Districts):
            raise ConfigurationError(f"the districts must be Districts (Districts.create or Districts.from_file), not {type(districts).__name__}")
        if rasters is not None and not isinstance(rasters, Mapping):
            rasters = list(rasters)
        if not rasters:
            raise QueryError("choose at least one NDVI composite (ndvi_composite_<year>.tif)")
        by_year = rasters_by_year(rasters)
        output_gpkg = optional_path(output_gpkg, "the statistics GeoPackage")
        geojson = optional_path(geojson, "the GeoJSON of the latest table")
        if connection is None:
            if output_gpkg is None:
                raise ConfigurationError("computed here (embedded), the statistics go to a GeoPackage: give output_gpkg")
        elif not (isinstance(connection, (str, Mapping)) or callable(connection)):
            raise ConfigurationError(f"the PostgreSQL connection must be a conninfo string, a mapping of connection keywords or "
                                     f"a function returning a connection, not {type(connection).__name__}")
        if geojson is not None and output_gpkg is None:
            raise ConfigurationError(f"the GeoJSON {geojson.name} is exported from the statistics GeoPackage: give output_gpkg too")
        check_classes(classes)
        layout = NDVI_LAYOUT.with_primary(statistic)
        check_field_names(layout, districts)
        if connection is not None:
            from .postgis import LOADERS, TableNames, check_column_names

            if loader not in LOADERS:
                raise ConfigurationError(f"unknown raster loader {loader!r}: use one of {', '.join(LOADERS)}")
            TableNames(schema, prefix, layout)  # empty or too long names are refused before connecting
            check_column_names(districts)
        return cls(districts, tuple(by_year.items()), output_gpkg, connection, str(schema), str(prefix or ""), loader, int(classes),
                   statistic, bool(replace_latest), geojson)


def optional_path(value, what: str) -> Optional[Path]:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ConfigurationError(f"{what} must be a file name, not {value!r}")
    return Path(value)


def check_classes(classes) -> None:
    if not whole_number(classes) or classes < 1:
        raise ConfigurationError(f"the number of classes must be at least 1, not {classes!r}")


def district_stats(request: DistrictStatsRequest, progress: Optional[Progress] = None, check_cancel: Optional[CheckCancel] = None,
                   log: Optional[Log] = None, before_publish=None) -> StatsResult:
    """The request's statistics, embedded (``district_stats_embedded``) or in PostGIS (``district_stats_postgis``),
    as its ``connection`` says; ``before_publish(temporary_gpkg, layers)`` runs on the complete GeoPackage before it is
    renamed into place (the QGIS side stores the styles there)."""
    if request.embedded:
        from .embedded import district_stats_embedded as run
    else:
        from .postgis import district_stats_postgis as run
    return run(request, progress, check_cancel, log, before_publish)
