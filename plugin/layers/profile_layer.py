"""ATL08 result layers as elevation profiles: the segments of one track read from a layer for the plugin's
profile plot, and the layer's elevation properties for QGIS's own Elevation Profile tool (QGIS 3.26+).

QGIS's tool places a 2D point at the height its elevation properties give: here the terrain
(``h_te_best_fit``) as the point's height, extruded upwards by ``h_canopy`` so each segment shows as a
bar from the ground to the canopy top. QGIS 3.22 has no such tool; the plugin's plot (``gui/profile_dialog``)
draws the same profile there, with the canopy percentile band, from ``track_segments``.
"""

from typing import Dict, List, Optional

import numpy as np
from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsFeatureRequest, QgsProject

from ..core.errors import QueryError
from ..core.lidar.atl08.profiles import CANOPY, TERRAIN, Track, percentile_columns, segment_id_range, track_of, tracks_of
from ..qgis_compat import HAS_ELEVATION_PROFILES

SEGMENT_ID = "segment_id"


def is_segment_layer(layer) -> bool:
    """A point layer of ATL08 segments with terrain heights: one a profile can be drawn from."""
    fields = getattr(layer, "fields", None)
    if fields is None:
        return False
    names = set(layer.fields().names())
    return SEGMENT_ID in names and TERRAIN in names


def layer_tracks(layer) -> List[Track]:
    """The tracks of the layer's segments, the one with the most segments first."""
    _check(layer)
    request = QgsFeatureRequest().setSubsetOfAttributes([SEGMENT_ID], layer.fields())
    request.setFlags(QgsFeatureRequest.Flag.NoGeometry)
    ids = np.fromiter((f[SEGMENT_ID] for f in layer.getFeatures(request) if not _is_null(f[SEGMENT_ID])), dtype=np.int64)
    return tracks_of({SEGMENT_ID: ids})


def selected_track(layer) -> Optional[Track]:
    """The track of the first selected segment, if any is selected."""
    for feature in layer.getSelectedFeatures():
        if not _is_null(feature[SEGMENT_ID]):
            return track_of(int(feature[SEGMENT_ID]))
    return None


def track_segments(layer, track: Track) -> Dict[str, np.ndarray]:
    """The columns a profile needs, as plain arrays, for the segments of ``track`` (longitude and latitude in
    WGS84 from the geometry)."""
    _check(layer)
    names = layer.fields().names()
    wanted = [SEGMENT_ID, TERRAIN] + [n for n in (CANOPY,) if n in names] + [name for _, name in percentile_columns(names)]
    first, end = segment_id_range(track)
    # whole numbers built here, not user text; the range uses the provider's index on segment_id where it has one
    request = QgsFeatureRequest().setFilterExpression(f'"{SEGMENT_ID}" >= {first} AND "{SEGMENT_ID}" < {end}')
    request.setSubsetOfAttributes(wanted, layer.fields())
    to_wgs84 = None
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    if layer.crs() != wgs84:
        to_wgs84 = QgsCoordinateTransform(layer.crs(), wgs84, QgsProject.instance())
    columns: Dict[str, list] = {name: [] for name in wanted + ["longitude", "latitude"]}
    for feature in layer.getFeatures(request):
        geometry = feature.geometry()
        if geometry is None or geometry.isEmpty() or _is_null(feature[SEGMENT_ID]):
            continue
        point = geometry.asPoint() if to_wgs84 is None else to_wgs84.transform(geometry.asPoint())
        columns["longitude"].append(point.x())
        columns["latitude"].append(point.y())
        for name in wanted:
            columns[name].append(feature[name])
    arrays = {name: np.array([np.nan if _is_null(v) else v for v in values], dtype=np.float64) for name, values in columns.items()
              if name != SEGMENT_ID}
    arrays[SEGMENT_ID] = np.array(columns[SEGMENT_ID], dtype=np.int64)
    return arrays


def set_segment_elevation(layer) -> bool:
    """Make QGIS's Elevation Profile tool show the segments: height from the terrain, extruded by the canopy
    height when the layer has it. False (and nothing changed) before QGIS 3.26, which has no such tool."""
    if not HAS_ELEVATION_PROFILES or not is_segment_layer(layer):
        return False
    from qgis.core import Qgis, QgsMapLayerElevationProperties, QgsProperty

    properties = layer.elevationProperties()
    properties.setClamping(Qgis.AltitudeClamping.Absolute)
    properties.setBinding(Qgis.AltitudeBinding.Vertex)
    properties.setZOffset(0.0)
    defined = properties.dataDefinedProperties()
    defined.setProperty(QgsMapLayerElevationProperties.Property.ZOffset, QgsProperty.fromField(TERRAIN))
    if CANOPY in layer.fields().names():
        defined.setProperty(QgsMapLayerElevationProperties.Property.ExtrusionHeight, QgsProperty.fromExpression(f'coalesce("{CANOPY}", 0)'))
        properties.setExtrusionEnabled(True)
    properties.setDataDefinedProperties(defined)
    return True


def _is_null(value) -> bool:
    """A NULL attribute: None, or a null QVariant (what QGIS 3.22's Python gives for NULL)."""
    return value is None or (hasattr(value, "isNull") and value.isNull())


def _check(layer) -> None:
    if not is_segment_layer(layer):
        raise QueryError(f"layer '{layer.name()}' has no ATL08 segments with terrain heights: an elevation profile needs "
                         f"the fields '{SEGMENT_ID}' and '{TERRAIN}' (query h_te_best_fit too)")
