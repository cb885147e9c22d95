"""Regions of interest: bounding boxes or (multi)polygons in any CRS, to EPSG:4326 reads.

Extents that cross the antimeridian become two reads, one each side; polygons
keep their exact shape for point membership (no convex hull, no vertex limit).
"""

from typing import List, Optional, Sequence, Tuple

from .errors import QueryError
from .polygons import area_of

WORLD = (-180.0, -90.0, 180.0, 90.0)


def _transform(geometry, crs: str):
    if str(crs).upper() in ("EPSG:4326", "OGC:CRS84", "WGS84"):
        return geometry
    import shapely
    from pyproj import CRS, Transformer
    from pyproj.exceptions import CRSError

    try:
        transformer = Transformer.from_crs(CRS.from_user_input(crs), CRS.from_epsg(4326), always_xy=True)
    except CRSError as error:
        raise QueryError(f"unknown coordinate reference system {crs!r}: {error}") from None
    # Densify first so long straight edges follow the projection's curvature.
    minx, miny, maxx, maxy = geometry.bounds
    geometry = shapely.segmentize(geometry, max(maxx - minx, maxy - miny) / 64 or 1.0)
    return shapely.transform(geometry, lambda xy: _stack(transformer.transform(xy[:, 0], xy[:, 1])))


def _stack(pair):
    import numpy as np

    return np.column_stack(pair)


def _unwrap(geometry):
    """Longitudes that jump across the antimeridian (a Pacific polygon from a projected CRS)
    are moved to 0..360 so the shape stays small rather than wrapping around the globe."""
    import numpy as np
    import shapely

    minx, _, maxx, _ = geometry.bounds
    if maxx - minx <= 180:
        return geometry
    return shapely.transform(geometry, lambda xy: np.column_stack([np.where(xy[:, 0] < 0, xy[:, 0] + 360, xy[:, 0]), xy[:, 1]]))


def _split_antimeridian(geometry) -> List:
    """Pieces within -180..180 of a geometry that may extend past +-180."""
    import shapely
    from shapely.affinity import translate
    from shapely.geometry import box

    pieces = []
    for shift in (-360.0, 0.0, 360.0):
        window = box(-180.0 + shift, -90.0, 180.0 + shift, 90.0)
        piece = geometry.intersection(window)
        if not piece.is_empty and piece.area > 0:
            pieces.append(translate(piece, xoff=-shift))
    return [p for p in pieces if not shapely.is_empty(p)]


def prepare_roi(roi, crs: str = "EPSG:4326") -> Tuple[Tuple[Tuple[float, float, float, float], ...], Optional[object]]:
    """(bounding boxes to read, exact polygon or None) in EPSG:4326 for any accepted ROI.

    An invalid polygon is repaired (a bow-tie keeps both lobes); one with no area is refused."""
    import shapely
    from shapely.geometry import box

    if roi is None:
        return (WORLD,), None
    geographic = str(crs).upper() in ("EPSG:4326", "OGC:CRS84", "WGS84")
    if isinstance(roi, (tuple, list)) and len(roi) == 4 and all(isinstance(v, (int, float)) for v in roi):
        xmin, ymin, xmax, ymax = (float(v) for v in roi)
        if ymin >= ymax:
            raise QueryError(f"empty region of interest: south {ymin} is not below north {ymax}")
        if geographic:
            if not (-90 <= ymin and ymax <= 90):
                raise QueryError(f"latitudes {ymin}..{ymax} are outside -90..90")
            if not (-180 <= xmin <= 180 and -180 <= xmax <= 180):
                raise QueryError(f"longitudes {xmin}..{xmax} are outside -180..180")
            if xmin == xmax:
                raise QueryError("empty region of interest: west equals east")
            if xmin > xmax:  # crosses the antimeridian
                return ((xmin, ymin, 180.0, ymax), (-180.0, ymin, xmax, ymax)), None
            return ((xmin, ymin, xmax, ymax),), None
        if xmin >= xmax:
            raise QueryError(f"empty region of interest: west {xmin} is not left of east {xmax}")
        roi = box(xmin, ymin, xmax, ymax)
    if isinstance(roi, str):
        try:
            roi = shapely.from_wkt(roi)
        except shapely.errors.GEOSException as error:
            raise QueryError(f"the region of interest is not valid WKT: {error}") from None
    if not isinstance(roi, shapely.Geometry):
        raise QueryError(f"unsupported region of interest {type(roi).__name__}: give a bounding box or a polygon")
    if roi.is_empty:
        raise QueryError("the region of interest is empty")
    roi = area_of(roi, "the region of interest")
    geometry = _unwrap(_transform(roi, crs))
    minx, miny, maxx, maxy = geometry.bounds
    if miny < -90 or maxy > 90:
        raise QueryError(f"the region of interest reaches latitude {miny if miny < -90 else maxy}, outside -90..90")
    pieces = _split_antimeridian(geometry) if (minx < -180 or maxx > 180) else [geometry]
    if not pieces:
        raise QueryError("the region of interest has no area")
    exact = shapely.union_all(pieces)
    parts = tuple(tuple(float(v) for v in p.bounds) for p in pieces)
    is_box = all(abs(p.area - box(*p.bounds).area) <= 1e-12 * max(box(*p.bounds).area, 1e-12) for p in pieces)
    return parts, (None if is_box else exact)


def parts_area(parts: Sequence[Tuple[float, float, float, float]]) -> float:
    return sum((p[2] - p[0]) * (p[3] - p[1]) for p in parts)
