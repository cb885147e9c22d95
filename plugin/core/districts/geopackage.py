"""District statistics tables in a GeoPackage, published atomically; GeoJSON export in EPSG:4326.

The GeoPackage is the "database" of the embedded and ATL08 modes, and the copy QGIS
loads in the PostGIS mode: the year tables computed in a run are replaced, the others
are kept, and the latest table is updated from what the file already holds. All work
happens in a private copy beside the target (``.<name>.partial-xxxx.gpkg``), which is
renamed over the target only when complete, so a failure or a cancel leaves the
previous file as it was.
"""

import datetime
import os
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..callbacks import CheckCancel
from ..errors import ConfigurationError, OutputError
from ..segment_files import check_output_folder, gdal_failure_reason, remove_quietly, temporary_sibling
from .statistics import (GEOMETRY, Districts, Row, StatsLayer, StatsLayout, StatsResult, change_rows, describe_layers, merge_latest,
                         ogr_value, same_crs)

FIELD_TYPES = {"integer": "OFTInteger64", "real": "OFTReal", "text": "OFTString", "date": "OFTDate"}


class StatsGeoPackage:
    """Edit a copy of ``path`` (or a new file), then ``publish()`` or ``abort()``."""

    def __init__(self, path, layout: StatsLayout, districts: Districts):
        from osgeo import gdal, ogr

        ogr.UseExceptions()
        gdal.UseExceptions()
        self.path = Path(path)
        self.layout = layout
        self.crs = districts.crs
        self.id_field = districts.id_field
        self.id_type = districts.id_type
        # the districts' columns and their types, the id first
        self.columns = ((districts.id_field, districts.id_type),) + tuple((a.name, a.type) for a in districts.attributes)
        self.fid_column = districts.fid_column
        self._rewritten: List[str] = []
        if self.path.suffix.lower() != ".gpkg":
            raise OutputError(f"the statistics output must be a GeoPackage (.gpkg), not {self.path.name}")
        check_output_folder(self.path)
        self.temporary = temporary_sibling(self.path)
        try:
            if self.path.exists():
                shutil.copyfile(self.path, self.temporary)
                self.dataset = ogr.Open(str(self.temporary), update=1)
                if self.dataset is None or self.dataset.GetDriver().GetName() != "GPKG":
                    raise RuntimeError("not a GeoPackage")
            else:
                self.dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(self.temporary))
        except (RuntimeError, OSError) as error:
            self.dataset = None
            remove_quietly(self.temporary)
            if isinstance(error, OSError):
                raise OutputError(f"cannot write beside {self.path}: {error.strerror or error}") from error
            if not self.path.exists():
                raise OutputError(f"cannot create {self.path}: {gdal_failure_reason(error, self.path)}") from None
            raise OutputError(f"{self.path} exists and is not a GeoPackage ({error}): choose another output") from None
        self._check_existing()

    # ------------------------------------------------------------------ reading

    def table_names(self) -> List[str]:
        return [self.dataset.GetLayer(i).GetName() for i in range(self.dataset.GetLayerCount())]

    def _check_existing(self) -> None:
        """Tables of an earlier run must use the same CRS, id field and id type, or the latest table would mix them."""
        from osgeo import ogr

        ours = [n for n in self.table_names()
                if n in (self.layout.latest_table, self.layout.change_table) or self.layout.table_year(n) is not None]
        for name in ours:
            layer = self.dataset.GetLayerByName(name)
            srs = layer.GetSpatialRef()
            if srs is not None and not same_crs(srs.ExportToWkt(), self.crs):
                self.abort()
                raise ConfigurationError(
                    f"{self.path.name} already holds {name} in another coordinate reference system "
                    f"({srs.GetName()}): write these districts to a new GeoPackage")
            definition = layer.GetLayerDefn()
            index = definition.GetFieldIndex(self.id_field)
            if index < 0 or definition.GetFieldDefn(index).GetName() != self.id_field:
                self.abort()
                raise ConfigurationError(
                    f"{self.path.name} already holds {name} without the id field {self.id_field!r} (districts with another "
                    "id field): write them to a new GeoPackage")
            else:
                stored = "integer" if definition.GetFieldDefn(index).GetType() in (ogr.OFTInteger, ogr.OFTInteger64) else "text"
                if stored != self.id_type:
                    self.abort()
                    raise ConfigurationError(
                        f"{self.path.name} already holds {name} with {stored} district ids, and these districts have "
                        f"{self.id_type} ids: write them to a new GeoPackage")

    def read(self, name: str) -> Optional[List[Row]]:
        """The rows of a table of this layout, None if the file has no such table."""
        import shapely
        from osgeo import ogr

        layer = self.dataset.GetLayerByName(name)
        if layer is None:
            return None
        definition = layer.GetLayerDefn()
        names = [definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())]
        kinds = ["date" if definition.GetFieldDefn(i).GetType() == ogr.OFTDate else "" for i in range(len(names))]
        rows = []
        layer.ResetReading()
        for feature in layer:
            row: Row = {key: ogr_value(feature, index, kinds[index]) for index, key in enumerate(names)}
            geometry = feature.GetGeometryRef()
            row[GEOMETRY] = shapely.from_wkb(bytes(geometry.ExportToIsoWkb())) if geometry is not None else shapely.MultiPolygon()
            rows.append(row)
        return sorted(rows, key=lambda r: r[self.id_field])

    def year_tables(self) -> Dict[int, List[Row]]:
        tables = {}
        for name in self.table_names():
            year = self.layout.table_year(name)
            if year is not None:
                tables[year] = self.read(name)
        return dict(sorted(tables.items()))

    # ------------------------------------------------------------------ writing

    def write(self, name: str, rows: Sequence[Row], fields: Sequence[str], description: str = "") -> None:
        """Replace table ``name`` with ``rows`` (the districts' columns, ``geom`` and ``fields``)."""
        import shapely
        from osgeo import ogr, osr

        for index in range(self.dataset.GetLayerCount()):
            if self.dataset.GetLayer(index).GetName() == name:
                self.dataset.DeleteLayer(index)
                break
        srs = osr.SpatialReference()
        srs.SetFromUserInput(self.crs)
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        layer = self.dataset.CreateLayer(name, srs, ogr.wkbMultiPolygon, options=[
            f"GEOMETRY_NAME={GEOMETRY}", f"FID={self.fid_column}", "SPATIAL_INDEX=YES", f"DESCRIPTION={description}"])
        integers = set(self.layout.integer_fields())
        for column, kind in self.columns:
            layer.CreateField(ogr.FieldDefn(column, getattr(ogr, FIELD_TYPES[kind])))
        for field_name in fields:
            kind = ogr.OFTInteger64 if field_name == self.layout.count_field else (
                ogr.OFTInteger if field_name in integers else ogr.OFTReal)
            layer.CreateField(ogr.FieldDefn(field_name, kind))
        written = [column for column, _ in self.columns] + list(fields)
        layer.StartTransaction()
        definition = layer.GetLayerDefn()
        for row in rows:
            feature = ogr.Feature(definition)
            # by index: OGR looks names up ignoring case, and a name is never pasted into SQL
            for index, field_name in enumerate(written):
                value = row.get(field_name)
                if value is None:
                    feature.SetFieldNull(index)
                elif isinstance(value, datetime.date):
                    feature.SetField(index, value.year, value.month, value.day, 0, 0, 0, 0)
                else:
                    feature.SetField(index, value)
            geometry = row.get(GEOMETRY)
            if geometry is not None and not geometry.is_empty:
                feature.SetGeometry(ogr.CreateGeometryFromWkb(shapely.to_wkb(geometry)))
            layer.CreateFeature(feature)
        layer.CommitTransaction()
        self._rewritten.append(name)

    # ------------------------------------------------------------------ finishing

    def publish(self, before_publish: Optional[Callable[[Path], None]] = None) -> Path:
        """Close the copy, drop stored styles of the rewritten tables (their classes changed), let
        ``before_publish(temporary_path)`` store new ones, then rename the copy over the target."""
        self.dataset = None
        try:
            self._drop_stale_styles()
            if before_publish:
                before_publish(self.temporary)
            os.replace(self.temporary, self.path)
        except BaseException as error:
            remove_quietly(self.temporary)
            if isinstance(error, OSError):
                raise OutputError(f"cannot write {self.path}: {error.strerror or error}") from error
            raise
        return self.path

    def _drop_stale_styles(self) -> None:
        connection = sqlite3.connect(str(self.temporary))
        try:
            if connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'layer_styles'").fetchone():
                connection.executemany("DELETE FROM layer_styles WHERE f_table_name = ?", [(n,) for n in self._rewritten])
                connection.commit()
        finally:
            connection.close()

    def abort(self) -> None:
        self.dataset = None
        remove_quietly(self.temporary)


BeforePublish = Optional[Callable[[Path, Tuple[StatsLayer, ...]], None]]


def publish_statistics(path, layout: StatsLayout, districts: Districts, years: Mapping[int, Sequence[Row]], classes: int,
                       latest: Optional[Sequence[Row]] = None, change: Optional[Sequence[Row]] = None,
                       replace_latest: bool = False, before_publish: BeforePublish = None,
                       check_cancel: Optional[CheckCancel] = None) -> Tuple[StatsLayer, ...]:
    """Write the year tables, the latest and the change table to the GeoPackage ``path``, atomically.

    Without ``latest``/``change`` (embedded and ATL08 modes) they are derived from what the
    file holds: ``years`` are upserted into its latest table and the change table is
    computed from all its year tables (``replace_latest``: the latest table starts afresh from
    ``years``; the other tables in the file are kept). The PostGIS mode passes the server's tables.
    ``before_publish(temporary_path, layers)`` runs on the complete copy (the QGIS side
    stores each layer's default style there) before it is renamed into place.
    """
    store = StatsGeoPackage(path, layout, districts)
    try:
        description = "Canopy Explorer district statistics"
        for year, rows in sorted(years.items()):
            if check_cancel:
                check_cancel()
            store.write(layout.year_table(year), rows, layout.fields, f"{description}, {year}")
        if latest is None:
            existing = None if replace_latest else store.read(layout.latest_table)
            latest = merge_latest(layout, existing, years, districts)
        store.write(layout.latest_table, latest, layout.fields, f"{description}: newest year with data per district")
        if change is None:
            change = change_rows(layout, store.year_tables(), latest, districts)
        store.write(layout.change_table, change, layout.change_fields,
                    f"{description}: newest minus earliest year with data")
        tables = {layout.year_table(year): rows for year, rows in sorted(years.items())}
        tables[layout.latest_table] = latest
        tables[layout.change_table] = change
        layers = describe_layers(layout, tables, classes)
        if check_cancel:
            check_cancel()
    except BaseException:
        store.abort()
        raise
    store.publish((lambda temporary: before_publish(temporary, layers)) if before_publish else None)
    return layers


def export_geojson(gpkg, layer: str, target) -> Path:
    """One layer of a GeoPackage as GeoJSON in EPSG:4326 (longitude, latitude; 8 decimals, about 1 mm), written
    atomically. Not GDAL's RFC 7946 mode: it writes one-part multipolygons as polygons, and the
    layers keep one geometry type, as the seed's ``ndvi_stats_latest.geojson`` does."""
    from osgeo import gdal

    gdal.UseExceptions()
    target = Path(target)
    if not target.parent.is_dir():
        raise OutputError(f"output folder {target.parent} does not exist")
    try:
        source = gdal.OpenEx(str(gpkg), gdal.OF_VECTOR)
    except RuntimeError as error:
        raise OutputError(f"cannot open {gpkg}: {error}") from None
    if source.GetLayerByName(layer) is None:
        names = [source.GetLayer(i).GetName() for i in range(source.GetLayerCount())]
        raise OutputError(f"{Path(gpkg).name} has no layer {layer!r}; it has: {', '.join(names) or 'none'}")
    temporary = temporary_sibling(target)
    try:
        gdal.VectorTranslate(str(temporary), source, format="GeoJSON", layers=[layer], layerName=layer,
                             dstSRS="EPSG:4326", reproject=True, geometryType="PROMOTE_TO_MULTI",
                             layerCreationOptions=["COORDINATE_PRECISION=8", "WRITE_BBOX=YES"])
        os.replace(temporary, target)
    except (RuntimeError, OSError) as error:
        remove_quietly(temporary)
        raise OutputError(f"cannot write {target}: {error}") from error
    finally:
        source = None
    return target


def export_latest(request, result: StatsResult) -> StatsResult:
    """The result, with the latest table exported as GeoJSON when the request (a ``DistrictStatsRequest``) asks for
    it: the one place that export is made, for both the embedded and the PostGIS mode."""
    if request.geojson is None:
        return result
    if result.output is None:
        raise ConfigurationError("the GeoJSON of the latest table is exported from the statistics GeoPackage, and none was written")
    latest = next(layer.name for layer in result.layers if layer.kind == "latest")
    return replace(result, geojson=export_geojson(result.output, latest, request.geojson))
