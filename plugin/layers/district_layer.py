"""District statistics as styled GeoPackage layers: the one implementation behind the dialog and Processing.

Districts come from any polygon layer; the statistics are computed by the engine
(embedded, or in PostGIS through a saved QGIS connection whose credentials QGIS
expands, so none is stored by the plugin); each table's natural-breaks style is
stored as its default style in the GeoPackage before the file is published.
"""

from pathlib import Path
from typing import Callable, List, Optional, Sequence

from qgis.core import QgsDataSourceUri, QgsFeatureRequest, QgsProviderRegistry, QgsVectorLayer

from ..core.districts.statistics import Districts, StatsResult
from ..core.errors import ConfigurationError, QueryError
from .roi_source import crs_text
from .segment_layer import save_default_style
from .symbology import graduated_renderer


def districts_from_features(features, crs, id_field: str) -> Districts:
    """Districts from QGIS features (a layer's or a Processing source's) and the id field's values."""
    import shapely

    ids, geometries = [], []
    for feature in features:
        if id_field not in feature.fields().names():
            raise QueryError(f"the districts have no field '{id_field}'")
        ids.append(feature[id_field])
        geometry = feature.geometry()
        geometries.append(None if geometry.isNull() else shapely.from_wkb(bytes(geometry.asWkb())))
    if not ids:
        raise QueryError("the districts layer has no features")
    return Districts.create(ids, geometries, crs_text(crs, "the districts layer"), id_field=id_field)


def districts_from_layer(layer: QgsVectorLayer, id_field: str, selected_only: bool = False) -> Districts:
    if layer is None or not layer.isValid():
        raise QueryError("choose a districts layer")
    request = QgsFeatureRequest()
    features = layer.getSelectedFeatures(request) if selected_only else layer.getFeatures(request)
    return districts_from_features(features, layer.crs(), id_field)


def postgres_conninfo(connection_name: str) -> str:
    """libpq connection string of a saved QGIS PostgreSQL connection, credentials expanded from its
    auth configuration by QGIS (never logged, never stored by the plugin)."""
    metadata = QgsProviderRegistry.instance().providerMetadata("postgres")
    # look the name up first: 3.22's findConnection on an unknown name corrupts memory at exit
    connection = metadata.connections().get(connection_name) if metadata else None
    if connection is None:
        raise ConfigurationError(f"there is no saved PostgreSQL connection named '{connection_name}'")
    return QgsDataSourceUri(connection.uri()).connectionInfo(True)


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
    districts: Districts, rasters: Sequence[str], output_gpkg: str, connection_name: str = "", classes: int = 5,
    progress: Optional[Callable[[float], None]] = None, check_cancel: Optional[Callable[[], None]] = None,
    log: Optional[Callable[[str], None]] = None,
) -> StatsResult:
    """Per-district NDVI statistics per year, latest and change tables, styled, in ``output_gpkg``;
    in PostGIS too when ``connection_name`` names a saved connection."""
    if not rasters:
        raise QueryError("choose at least one NDVI composite (ndvi_composite_<year>.tif)")
    if connection_name:
        from ..core.districts.postgis import district_stats_postgis

        return district_stats_postgis(postgres_conninfo(connection_name), districts, list(rasters), output_gpkg=output_gpkg,
                                      classes=classes, progress=progress, check_cancel=check_cancel, log=log,
                                      before_publish=style_statistics)
    from ..core.districts.embedded import district_stats_embedded

    return district_stats_embedded(districts, list(rasters), output_gpkg, classes=classes, progress=progress,
                                   check_cancel=check_cancel, log=log, before_publish=style_statistics)


def load_statistics_layers(result: StatsResult) -> List[QgsVectorLayer]:
    layers = []
    for table in result.layers:
        layer = QgsVectorLayer(f"{result.output}|layername={table.name}", table.name, "ogr")
        if not layer.isValid():
            raise QueryError(f"QGIS cannot open {table.name} in {result.output}")
        layers.append(layer)
    return layers


def write_atl08_district_stats(
    districts: Districts, config, output_gpkg: str, variable: str = "h_canopy", filters: str = "", start=None, end=None,
    classes: int = 5, progress=None, check_cancel=None, log=None,
) -> StatsResult:
    """Per district and year: segment count, median, mean and 95th percentile of an ATL08 variable, styled."""
    from ..core.districts.canopy import district_stats_atl08

    return district_stats_atl08(districts, config, output_gpkg, variable=variable, filters=filters or None, start=start,
                                end=end, classes=classes, progress=progress, check_cancel=check_cancel, log=log,
                                before_publish=style_statistics)
