"""Regions of interest from QGIS objects (layers, extents, drawn geometries) as the engine takes them."""

from typing import Tuple

from qgis.core import QgsCoordinateReferenceSystem, QgsFeatureRequest, QgsGeometry, QgsRectangle, QgsVectorLayer

from ..core.errors import QueryError
from ..core.polygons import finite_coordinates, polygonal_part, why_no_area
from ..qgis_compat import POLYGON_GEOMETRY


def crs_text(crs: QgsCoordinateReferenceSystem, what: str = "the region") -> str:
    """The CRS as the engine takes it; a missing or undefined CRS is an error naming ``what``.

    GeoPackages without a CRS load with a valid-looking "Undefined geographic/Cartesian SRS":
    coordinates in it could be anything, so it counts as missing.
    """
    undefined = crs.isValid() and not crs.authid() and "undefined" in crs.toWkt()[:80].lower()
    if not crs.isValid() or undefined:
        raise QueryError(f"{what} has no coordinate reference system: set the layer's CRS (Layer Properties > Source)")
    return crs.authid() or crs.toWkt()


def roi_from_geometry(geometry: QgsGeometry, crs: QgsCoordinateReferenceSystem) -> Tuple[object, str]:
    """(shapely polygon, CRS) for a drawn or computed polygon; the engine reprojects and densifies."""
    import shapely

    if geometry is None or geometry.isNull() or geometry.isEmpty():
        raise QueryError("the region of interest is empty")
    if geometry.type() != POLYGON_GEOMETRY:
        raise QueryError("the region of interest must be a polygon")
    return shapely.from_wkb(bytes(geometry.asWkb())), crs_text(crs)  # the engine repairs an invalid ring


def roi_from_rectangle(rectangle: QgsRectangle, crs: QgsCoordinateReferenceSystem) -> Tuple[object, str]:
    if rectangle is None or rectangle.isEmpty():
        raise QueryError("the region of interest is an empty extent")
    if crs.isValid() and crs.authid() == "EPSG:4326":
        return (rectangle.xMinimum(), rectangle.yMinimum(), rectangle.xMaximum(), rectangle.yMaximum()), "EPSG:4326"
    return roi_from_geometry(QgsGeometry.fromRect(rectangle), crs)


def roi_from_layer(layer: QgsVectorLayer, selected_only: bool = False) -> Tuple[object, str]:
    """The union of a polygon layer's features (or its selection) with the layer's CRS."""
    if layer is None or not layer.isValid():
        raise QueryError("the region layer is missing or cannot be read")
    if layer.geometryType() != POLYGON_GEOMETRY:
        raise QueryError(f"layer '{layer.name()}' has no polygons: the region of interest must be a polygon layer")
    request = QgsFeatureRequest().setNoAttributes()
    features = layer.getSelectedFeatures(request) if selected_only else layer.getFeatures(request)
    which = "selected features" if selected_only else "features"
    return roi_from_features(features, layer.crs(), f"layer '{layer.name()}' has no {which} with a geometry to use as the region",
                             source=f"layer '{layer.name()}'")


def roi_from_features(features, crs: QgsCoordinateReferenceSystem, empty_message: str, source: str = "the layer") -> Tuple[object, str]:
    """The union of features' polygons (any iterable of QgsFeature) with their CRS.

    Invalid rings are repaired (a union of invalid polygons would fail); features left
    with no area add nothing, and when every one is so the error says why."""
    import shapely

    parts, why = [], None
    for feature in features:
        geometry = feature.geometry()
        if geometry.isNull() or geometry.isEmpty():
            continue
        geometry = shapely.from_wkb(bytes(geometry.asWkb()))
        finite_coordinates(geometry, f"feature {feature.id()} of {source}")
        part, _ = polygonal_part(geometry)
        if part.is_empty:
            why = why or f"feature {feature.id()} has no area: it is {why_no_area(geometry)}"
        else:
            parts.append(part)
    if not parts:
        raise QueryError(f"{empty_message} ({why})" if why else empty_message)
    return shapely.union_all(parts), crs_text(crs)
