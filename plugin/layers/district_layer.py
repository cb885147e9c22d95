"""District statistics as styled GeoPackage layers: the one implementation behind the dialog and Processing.

Districts come from any polygon layer; the statistics are computed by the engine
(embedded, or in PostGIS through a saved QGIS connection whose credentials QGIS
expands, so none is stored by the plugin); each table's natural-breaks style is
stored as its default style in the GeoPackage before the file is published.
"""

from pathlib import Path
from typing import Callable, List, Optional

from qgis.core import QgsDataSourceUri, QgsFeatureRequest, QgsProviderRegistry, QgsVectorLayer

from ..core.districts.canopy import CanopyStatsRequest, district_stats_atl08
from ..core.districts.statistics import Districts, DistrictStatsRequest, StatsResult, district_stats
from ..core.errors import ConfigurationError, QueryError
from .roi_source import crs_text
from .segment_layer import save_default_style
from .symbology import graduated_renderer


def _field_type(field) -> str:
    """``integer``, ``real``, ``date`` or ``text``: how a QGIS field is carried into the statistics tables."""
    from ..qgis_compat import field_kind

    kind = field_kind(field)
    if kind in ("integer", "integer64") or field.typeName().lower() in ("uint", "ulonglong"):
        return "integer"
    return {"real": "real", "date": "date"}.get(kind, "text")


def _python_value(value):
    """A QGIS attribute value as plain Python: None for NULL, ``datetime.date`` for a QDate, ISO text for date-times."""
    from qgis.PyQt.QtCore import QDate, QDateTime, QTime, QVariant

    if value is None or (isinstance(value, QVariant) and value.isNull()):
        return None
    if isinstance(value, QDate):
        return value.toPyDate() if value.isValid() else None
    if isinstance(value, QDateTime):
        return value.toString("yyyy-MM-ddTHH:mm:ss") if value.isValid() else None
    if isinstance(value, QTime):
        return value.toString("HH:mm:ss") if value.isValid() else None
    if isinstance(value, QVariant):
        return value.value()
    return value


def districts_from_features(features, crs, id_field: str) -> Districts:
    """Districts from QGIS features (a layer's or a Processing source's): ids from the id field, every other field
    as an attribute (names and types kept), but a GeoPackage's ``fid`` (the tables have their own)."""
    import shapely

    from ..core.districts.statistics import Attribute

    ids, geometries = [], []
    columns, values = None, None
    for feature in features:
        if columns is None:
            fields = feature.fields()
            if id_field not in fields.names():
                raise QueryError(f"the districts have no field '{id_field}'")
            columns = [(index, field.name(), _field_type(field)) for index, field in enumerate(fields)
                       if field.name() != id_field and field.name().lower() != "fid"]
            values = {name: [] for _, name, _ in columns}
        ids.append(_python_value(feature[id_field]))
        for index, name, _ in columns:
            values[name].append(_python_value(feature.attribute(index)))
        geometry = feature.geometry()
        geometries.append(None if geometry.isNull() else shapely.from_wkb(bytes(geometry.asWkb())))
    if not ids:
        raise QueryError("the districts layer has no features")
    attributes = [Attribute(name, kind, tuple(values[name])) for _, name, kind in columns]
    return Districts.create(ids, geometries, crs_text(crs, "the districts layer"), id_field=id_field, attributes=attributes)


def districts_from_layer(layer: QgsVectorLayer, id_field: str, selected_only: bool = False) -> Districts:
    if layer is None or not layer.isValid():
        raise QueryError("choose a districts layer")
    request = QgsFeatureRequest()
    features = layer.getSelectedFeatures(request) if selected_only else layer.getFeatures(request)
    return districts_from_features(features, layer.crs(), id_field)


def postgres_conninfo(connection_name: str) -> str:
    """libpq connection string of a saved QGIS PostgreSQL connection, credentials expanded from its
    auth configuration by QGIS (never logged, never stored by the plugin)."""
    return QgsDataSourceUri(_saved_connection(connection_name).uri()).connectionInfo(True)


def _saved_connection(connection_name: str):
    metadata = QgsProviderRegistry.instance().providerMetadata("postgres")
    # look the name up first: 3.22's findConnection on an unknown name corrupts memory at exit
    connection = metadata.connections().get(connection_name) if metadata else None
    if connection is None:
        raise ConfigurationError(f"there is no saved PostgreSQL connection named '{connection_name}'")
    return connection


class SavedPostgresConnection:
    """A saved QGIS PostgreSQL connection as the engine's connection (a function returning an open connection):
    its credentials are expanded only when it connects, inside the task, and are kept nowhere."""

    def __init__(self, name: str):
        _saved_connection(name)  # an unknown name is refused when the request is built
        self.name = name

    def __call__(self):
        from ..core.districts.postgis import connect

        return connect(postgres_conninfo(self.name))

    def describe(self) -> str:
        """``user@host:port/dbname``, as the engine names a connection in messages; never the password."""
        from ..core.districts.postgis import describe_connection

        return describe_connection(postgres_conninfo(self.name))

    def __repr__(self) -> str:
        return f"SavedPostgresConnection({self.name!r})"


def postgres_connection(connection_name: str) -> Optional[SavedPostgresConnection]:
    """The engine's connection for a saved QGIS connection name; None (embedded) for no name."""
    return SavedPostgresConnection(connection_name) if connection_name else None


def stats_ramp(layer):
    """Diverging for change tables (red loss, green gain), the NDVI ramp for NDVI, greens for canopy."""
    from qgis.core import QgsColorBrewerColorRamp

    if layer.kind == "change":
        return QgsColorBrewerColorRamp("RdYlGn", 9)
    if "ndvi" in layer.field:
        from .ndvi_layer import NDVI_COLOURS
        from .symbology import gradient

        return gradient(NDVI_COLOURS)
    return QgsColorBrewerColorRamp("Greens", 9)


def style_statistics(temporary_gpkg: Path, layers) -> None:
    """Store each table's graduated natural-breaks style as its default style in the GeoPackage."""
    for layer in layers:
        if not layer.breaks:
            continue
        renderer = graduated_renderer(layer.field, None, layer.minimum, list(layer.breaks), ramp=stats_ramp(layer), geometry="polygon")
        save_default_style(temporary_gpkg, "GPKG", renderer, f"Natural breaks on {layer.field}", layer_name=layer.name)


def write_district_stats(
    request: DistrictStatsRequest, progress: Optional[Callable[[float], None]] = None,
    check_cancel: Optional[Callable[[], None]] = None, log: Optional[Callable[[str], None]] = None,
) -> StatsResult:
    """Per-district NDVI statistics per year, latest and change tables, styled, in the request's GeoPackage
    (and its GeoJSON); computed in PostGIS when the request has a connection (``postgres_connection``)."""
    return district_stats(request, progress=progress, check_cancel=check_cancel, log=log, before_publish=style_statistics)


def load_statistics_layers(result: StatsResult) -> List[QgsVectorLayer]:
    layers = []
    for table in result.layers:
        layer = QgsVectorLayer(f"{result.output}|layername={table.name}", table.name, "ogr")
        if not layer.isValid():
            raise QueryError(f"QGIS cannot open {table.name} in {result.output}")
        layers.append(layer)
    return layers


def write_atl08_district_stats(
    request: CanopyStatsRequest, progress: Optional[Callable[[float], None]] = None,
    check_cancel: Optional[Callable[[], None]] = None, log: Optional[Callable[[str], None]] = None,
) -> StatsResult:
    """Per district and year: segment count, median, mean and 95th percentile of an ATL08 variable, styled."""
    return district_stats_atl08(request, progress=progress, check_cancel=check_cancel, log=log, before_publish=style_statistics)
