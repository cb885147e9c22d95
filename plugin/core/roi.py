"""Regions of interest: bounding boxes or (multi)polygons in any CRS, to EPSG:4326 reads.

Extents that cross the antimeridian become two reads, one each side; polygons
keep their exact shape for point membership (no convex hull, no vertex limit).
``region_on_earth`` checks a region when the user sets it (drawn, canvas extent,
layer), so a region off the Earth is refused at once rather than at Run.
"""

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from .errors import QueryError
from .polygons import area_of, polygonal_part

WORLD = (-180.0, -90.0, 180.0, 90.0)
GEOGRAPHIC_NAMES = ("EPSG:4326", "OGC:CRS84", "WGS84")


def _is_wgs84(crs) -> bool:
    return str(crs).upper() in GEOGRAPHIC_NAMES


def _pyproj_crs(crs):
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        return CRS.from_user_input(crs)
    except CRSError as error:
        raise QueryError(f"unknown coordinate reference system {crs!r}: {error}") from None


def _densified(geometry):
    """Long straight edges get vertices so they follow the projection's curvature once reprojected."""
    import shapely

    minx, miny, maxx, maxy = geometry.bounds
    return shapely.segmentize(geometry, max(maxx - minx, maxy - miny) / 64 or 1.0)


def _transform(geometry, crs: str):
    if _is_wgs84(crs):
        return geometry
    import shapely
    from pyproj import CRS, Transformer

    transformer = Transformer.from_crs(_pyproj_crs(crs), CRS.from_epsg(4326), always_xy=True)
    return shapely.transform(_densified(geometry), lambda xy: _stack(transformer.transform(xy[:, 0], xy[:, 1])))


def _stack(pair):
    import numpy as np

    return np.column_stack(pair)


def _unwrap(geometry):
    """Longitudes that jump across the antimeridian (a Pacific polygon from a projected CRS)
    are moved to 0..360 so the shape stays small rather than wrapping around the globe.

    Only when that gives a valid shape at most half a turn wide, or a narrower one where an edge
    jumps by more than half a turn: a region that is simply wide (a zoomed-out Web Mercator
    canvas, densified before reprojection so its edges never jump) would fold onto itself."""
    import numpy as np
    import shapely

    minx, _, maxx, _ = geometry.bounds
    if maxx - minx <= 180:
        return geometry
    moved = shapely.transform(geometry, lambda xy: np.column_stack([np.where(xy[:, 0] < 0, xy[:, 0] + 360, xy[:, 0]), xy[:, 1]]))
    moved_minx, _, moved_maxx, _ = moved.bounds
    width = moved_maxx - moved_minx
    if not (width <= 180 or (width < maxx - minx and _jumps_across(geometry))):
        return geometry
    moved, _ = polygonal_part(moved)  # parts that meet at 180 degrees touch once moved: one valid polygon
    return moved if not moved.is_empty and moved.area > 0 else geometry


def _jumps_across(geometry) -> bool:
    """True when a ring goes more than half a turn of longitude from one vertex to the next."""
    import numpy as np
    import shapely

    for ring in shapely.get_rings(shapely.get_parts(geometry)):
        x = shapely.get_coordinates(ring)[:, 0]
        if len(x) > 1 and (np.abs(np.diff(x)) > 180).any():
            return True
    return False


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


# --------------------------------------------------------------------------- checked when set


@dataclass(frozen=True)
class CheckedRegion:
    """A region accepted when the user set it.

    ``roi`` and ``crs`` are what the engine takes (``prepare_roi``): the region as given, or,
    when part of it was off the Earth, the part on it, still in ``crs``. ``bounds`` are its
    longitudes and latitudes (west, south, east, north; east may pass 180 across the antimeridian)."""

    roi: object
    crs: str
    bounds: Tuple[float, float, float, float]
    clipped: bool = False


def region_on_earth(roi, crs: str = "EPSG:4326", what: str = "the region of interest",
                    advice: str = "choose the region again") -> CheckedRegion:
    """Check a region (a box ``(west, south, east, north)`` or a shapely polygon in ``crs``) when it is set.

    Reprojected to EPSG:4326 it must have an area within -180..180 / -90..90. What lies beyond is
    clipped rather than refused while some area is left: latitudes past the poles, longitudes of a
    canvas zoomed out past a whole turn, the corners of a projected extent beyond where its CRS is
    defined (Web Mercator past 180 degrees, a UTM extent zoomed out to the whole planet). A region
    with nothing on the Earth, or no area, is a QueryError naming ``what`` ("the rectangle you
    drew") and ending with ``advice`` (what to do)."""
    import shapely
    from shapely.geometry import box

    if isinstance(roi, (tuple, list)) and len(roi) == 4 and all(isinstance(v, (int, float)) for v in roi):
        xmin, ymin, xmax, ymax = (float(v) for v in roi)
        if not all(math.isfinite(v) for v in (xmin, ymin, xmax, ymax)):
            raise QueryError(f"{what} has no usable coordinates ({xmin}, {ymin}, {xmax}, {ymax}): {advice}")
        geographic = _is_geographic(crs)
        if geographic and xmin > xmax:  # a box across the antimeridian, as prepare_roi takes it
            xmax += 360.0
        if xmin >= xmax or ymin >= ymax:
            raise QueryError(f"{what} is empty: it has no area ({_where(xmin, ymin, xmax, ymax, crs, geographic)}): {advice}")
        geometry = box(xmin, ymin, xmax, ymax)
    elif isinstance(roi, shapely.Geometry):
        if roi.is_empty:
            raise QueryError(f"{what} is empty: {advice}")
        geometry = area_of(roi, what)
        if not all(math.isfinite(v) for v in geometry.bounds):
            raise QueryError(f"{what} has no usable coordinates: {advice}")
        geographic = _is_geographic(crs)
    else:
        raise QueryError(f"unsupported region of interest {type(roi).__name__}: give a bounding box or a polygon")

    if geographic:
        on_earth, moved = _geographic_part(geometry)
    else:
        on_earth, moved = _projected_part(geometry, crs, what, advice)
    if on_earth.is_empty or on_earth.area <= 0:
        raise QueryError(f"{what} lies outside the Earth ({_where(*geometry.bounds, crs, geographic)}): {advice}")
    clipped = moved or abs(on_earth.area - geometry.area) > 1e-9 * geometry.area
    if not clipped:
        checked = roi
    elif isinstance(roi, shapely.Geometry):
        checked = on_earth
    else:
        checked = _as_box(on_earth.bounds)
    wgs84 = _unwrap(_transform(on_earth, crs))
    prepare_roi(checked, crs)  # what is accepted here must run: the engine's own checks, now
    return CheckedRegion(roi=checked, crs=crs, bounds=tuple(float(v) for v in wgs84.bounds), clipped=clipped)


def _is_geographic(crs) -> bool:
    return _is_wgs84(crs) or _pyproj_crs(crs).is_geographic


def _geographic_part(geometry):
    """(the part of a longitude/latitude region on the Earth, whether it moved or shrank).

    Latitudes are clipped to -90..90. A region at least a whole turn wide keeps every longitude
    once; a narrower one is moved by whole turns so its middle is within -180..180 (a canvas
    panned past the antimeridian), and prepare_roi splits what still passes 180."""
    import shapely
    from shapely.affinity import translate
    from shapely.geometry import box

    minx, miny, maxx, maxy = geometry.bounds
    if maxx - minx >= 360.0:
        turns = range(math.floor((minx + 180.0) / 360.0), math.floor((maxx + 180.0) / 360.0) + 1)
        pieces = [translate(geometry.intersection(box(-180.0 + 360.0 * k, -90.0, 180.0 + 360.0 * k, 90.0)), xoff=-360.0 * k)
                  for k in turns]
        part = polygonal_part(shapely.union_all(pieces))[0]
        return part, abs(part.area - geometry.area) > 1e-9 * geometry.area  # islands on both sides of 180: as they were
    middle = (minx + maxx) / 2.0
    shift = 0.0 if -180.0 <= middle <= 180.0 else -360.0 * math.floor((middle + 180.0) / 360.0)
    if shift:
        geometry = translate(geometry, xoff=shift)
    if -90.0 <= miny and maxy <= 90.0:
        return geometry, bool(shift)
    part = geometry.intersection(box(minx + shift - 1.0, -90.0, maxx + shift + 1.0, 90.0))
    return polygonal_part(part)[0], True


def _projected_part(geometry, crs, what: str, advice: str):
    """(the part of a projected region whose points have a place on the Earth, whether it shrank).

    A point is on the Earth when it reprojects to a finite longitude/latitude that projects back
    to it: Web Mercator past +-20,037 km wraps round (and does not come back), a transverse
    Mercator far from its zone becomes infinite. When a vertex is not, the region is clipped to
    the CRS's area of use (a canvas zoomed out beyond it); inside its area a CRS is always usable."""
    import numpy as np
    import shapely
    from pyproj import CRS, Transformer
    from shapely.geometry import box

    source = _pyproj_crs(crs)
    to_wgs84 = Transformer.from_crs(source, CRS.from_epsg(4326), always_xy=True)
    from_wgs84 = Transformer.from_crs(CRS.from_epsg(4326), source, always_xy=True)
    minx, miny, maxx, maxy = geometry.bounds
    tolerance = 1e-4 * max(maxx - minx, maxy - miny) + 1e-3

    def on_earth(part) -> bool:
        xy = shapely.get_coordinates(_densified(part))
        with np.errstate(invalid="ignore"):
            lon, lat = to_wgs84.transform(xy[:, 0], xy[:, 1])
            back_x, back_y = from_wgs84.transform(lon, lat)
            return bool(np.all(np.isfinite(lon) & np.isfinite(lat) & (np.abs(np.asarray(back_x) - xy[:, 0]) <= tolerance)
                               & (np.abs(np.asarray(back_y) - xy[:, 1]) <= tolerance)))

    if on_earth(geometry):
        return geometry, False
    area = source.area_of_use
    if area is None:
        raise QueryError(f"{what} reaches beyond where its coordinate reference system is defined "
                         f"({_where(minx, miny, maxx, maxy, crs, False)}), and that CRS declares no area of use "
                         f"to clip it to: {advice}")
    west, south, east, north = area.bounds
    # a hair inside the area of use: exactly on 180 degrees a longitude may come back as -180
    inset = 1e-7
    usable = box(*from_wgs84.transform_bounds(west + inset, max(south, -90 + inset), east - inset, min(north, 90 - inset),
                                              densify_pts=21))
    part = polygonal_part(geometry.intersection(usable))[0]
    if part.is_empty or not on_earth(part):
        return shapely.Polygon(), True
    return part, True


def _as_box(bounds) -> Tuple[float, float, float, float]:
    """A clipped box as prepare_roi takes it: west > east when it crosses the antimeridian."""
    west, south, east, north = (float(v) for v in bounds)
    if east > 180.0:
        east -= 360.0
    elif west < -180.0:
        west += 360.0
    return west, south, east, north


def _number(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.4f}".rstrip("0").rstrip(".") or "0"


def _where(west, south, east, north, crs, geographic: bool) -> str:
    if geographic and _is_wgs84(crs):
        return f"lon {_number(west)} to {_number(east)}, lat {_number(south)} to {_number(north)}"
    return f"x {_number(west)} to {_number(east)}, y {_number(south)} to {_number(north)} in {_short_crs(crs)}"


def _short_crs(crs) -> str:
    text = str(crs)
    if len(text) <= 40:
        return text
    try:
        return _pyproj_crs(crs).name
    except QueryError:
        return text[:40] + "..."
