"""Regions of interest: bounding boxes or (multi)polygons in any CRS, to EPSG:4326 reads.

A region becomes an exact polygon in longitude/latitude (for point membership: no convex
hull, no vertex limit) and a few disjoint boxes to read, so no segment is read twice.

* EPSG:4326 coordinates are taken as drawn: an edge is a straight line in longitude and
  latitude, so a polygon from -100 to 100 degrees covers those 200 degrees. Longitudes past
  +-180 (a polygon drawn across the antimeridian on a 4326 map) are split there.
* Other CRSs are clipped to where the CRS has a place on the Earth (its area of use when the
  region reaches beyond), densified, reprojected, and each ring is followed vertex by vertex:
  only a ring that crosses the antimeridian is cut there, and a ring around a pole (a polar
  stereographic extent) is closed over that pole.

``region_on_earth`` checks a region when the user sets it (drawn, canvas extent, layer), so a
region off the Earth is refused at once rather than at Run.
"""

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from ..errors import QueryError
from ..polygons import area_of, finite_coordinates, polygonal_part

WORLD = (-180.0, -90.0, 180.0, 90.0)
GEOGRAPHIC_NAMES = ("EPSG:4326", "OGC:CRS84", "WGS84")
DENSIFY_STEPS = 512  # vertices across the region's width (every 16 km across an 8,000 km polar extent)
MAX_READ_BOXES = 16  # each box is one TileDB read; more distant parts are grouped (their polygon still decides)
POLE_TOLERANCE_DEG = 1e-9

Box = Tuple[float, float, float, float]


def _is_wgs84(crs) -> bool:
    return str(crs).upper() in GEOGRAPHIC_NAMES


def _is_box(roi) -> bool:
    return isinstance(roi, (tuple, list)) and len(roi) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in roi)


def _pyproj_crs(crs):
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        return CRS.from_user_input(crs)
    except CRSError as error:
        raise QueryError(f"unknown coordinate reference system {crs!r}: {error}") from None


def _densified(geometry, steps: int = 64):
    """Long straight edges get vertices so they follow the projection's curvature once reprojected."""
    import shapely

    minx, miny, maxx, maxy = geometry.bounds
    return shapely.segmentize(geometry, max(maxx - minx, maxy - miny) / steps or 1.0)


def _wrap(delta):
    """Longitude differences brought into -180..180 (the shorter way round)."""
    import numpy as np

    return (np.asarray(delta) + 180.0) % 360.0 - 180.0


# --------------------------------------------------------------------------- to longitude/latitude


def _to_lonlat(geometry, crs, what: str, advice: Optional[str] = None):
    """The region in longitude/latitude: as drawn for EPSG:4326, otherwise clipped, densified and
    reprojected ring by ring. Longitudes may pass +-180; ``_split_at_antimeridian`` brings them back."""
    if _is_wgs84(crs):
        _, south, _, north = geometry.bounds
        if south < -90 or north > 90:
            raise QueryError(f"{what} reaches latitude {south if south < -90 else north}, outside -90..90")
        return geometry
    import shapely
    from pyproj import CRS, Transformer

    source = _pyproj_crs(crs)
    if not source.is_geographic:
        usable, _ = _projected_part(geometry, crs, what, advice)
        if usable.is_empty or usable.area <= 0:
            raise QueryError(f"{what} lies outside the Earth ({_where(*geometry.bounds, crs, False)}){_then(advice)}")
        geometry = usable
    to_wgs84 = Transformer.from_crs(source, CRS.from_epsg(4326), always_xy=True)
    poles = _poles_in(source)
    dense = _densified(geometry, DENSIFY_STEPS)
    pieces = []
    for polygon in shapely.get_parts(dense):
        piece = _polygon_lonlat(polygon, to_wgs84, poles)
        if not piece.is_empty:
            pieces.append(piece)
    return shapely.union_all(pieces) if pieces else shapely.Polygon()


def _poles_in(source):
    """{+90: (x, y), -90: (x, y)} for the poles this CRS can place (Web Mercator cannot)."""
    import numpy as np
    from pyproj import CRS, Transformer

    forward = Transformer.from_crs(CRS.from_epsg(4326), source, always_xy=True)
    back = Transformer.from_crs(source, CRS.from_epsg(4326), always_xy=True)
    poles = {}
    for latitude in (90.0, -90.0):
        with np.errstate(all="ignore"):
            x, y = forward.transform(0.0, latitude)
            if not (np.isfinite(x) and np.isfinite(y)):
                continue
            _, lat = back.transform(x, y)
        if np.isfinite(lat) and abs(lat - latitude) < 1e-6:
            poles[latitude] = (float(x), float(y))
    return poles


def _polygon_lonlat(polygon, to_wgs84, poles):
    """One polygon of the source CRS in longitude/latitude: each ring followed without jumps,
    holes cut out wherever (in which turn) their longitudes landed."""
    import shapely
    from shapely.affinity import translate

    shell = _ring_lonlat(polygon.exterior, to_wgs84, poles)
    holes = [_ring_lonlat(ring, to_wgs84, poles) for ring in polygon.interiors]
    holes = [h for h in holes if not h.is_empty]
    if shell.is_empty or not holes:
        return shell
    cut = shapely.union_all([translate(hole, xoff=360.0 * turn) for hole in holes for turn in range(-2, 3)])
    return polygonal_part(shell.difference(cut))[0]


def _ring_lonlat(ring, to_wgs84, poles):
    """A ring of the source CRS as a longitude/latitude polygon.

    Consecutive vertices are joined the shorter way round, so a ring that crosses the antimeridian
    stays one shape (with longitudes past 180) and one that does not is never moved. A ring that
    goes once round a pole (its longitudes add up to a whole turn) encloses that pole: it starts and
    ends on the antimeridian and is closed along the pole's latitude. A vertex on a pole joins its
    neighbours along the pole."""
    import numpy as np
    import shapely

    xy = shapely.get_coordinates(ring)[:-1]
    if len(xy) < 3:
        return shapely.Polygon()
    with np.errstate(all="ignore"):
        lon, lat = (np.asarray(v, dtype=float) for v in to_wgs84.transform(xy[:, 0], xy[:, 1]))
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise QueryError("part of the region cannot be placed on the Earth in its coordinate reference system")
    count = len(lon)
    at_pole = np.abs(lat) >= 90.0 - POLE_TOLERANCE_DEG
    kept = np.flatnonzero(~at_pole)
    if len(kept) < 2:
        return shapely.Polygon()
    following = np.roll(kept, -1)
    step = _wrap(lon[following] - lon[kept])
    through_pole = (following - kept) % count != 1
    turns, inside = 0, []
    if through_pole.any():
        # a vertex on the pole: the pole is on the ring, not inside it, so the ring closes without a turn
        first = np.flatnonzero(through_pole)[0]
        step[first] -= step.sum()
    else:
        turns = int(round(step.sum() / 360.0))
        inside = _poles_inside(xy, poles)
        expected = 1 if inside else 0
        ambiguous = np.flatnonzero(np.abs(step) > 180.0 - 1e-6)  # a step over the pole itself: either way round
        if abs(turns) != expected and len(ambiguous):
            index = ambiguous[0]
            step[index] -= 360.0 * np.sign(step[index])
            turns = int(round(step.sum() / 360.0))
    if abs(turns) > 1:
        raise QueryError("the region winds more than once round a pole: draw it as a simple polygon")
    path_lon = lon[kept[0]] + np.concatenate([[0.0], np.cumsum(step)])  # one more than kept: back at the start
    path_lat = np.concatenate([lat[kept], [lat[kept[0]]]])
    if turns == 0 and not through_pole.any():
        return polygonal_part(shapely.Polygon(np.column_stack([path_lon[:-1], path_lat[:-1]])))[0]
    if turns == 0:
        points = []
        for index in range(len(kept)):
            points.append((path_lon[index], path_lat[index]))
            if through_pole[index]:
                pole = 90.0 if lat[(kept[index] + 1) % count] > 0 else -90.0
                points.extend([(path_lon[index], pole), (path_lon[index + 1], pole)])
        return polygonal_part(shapely.Polygon(points))[0]
    if 90.0 in poles and -90.0 in poles and len(inside) == 1:
        pole = inside[0]
    else:
        pole = 90.0 if (inside == [90.0] or (not inside and path_lat.mean() >= 0)) else -90.0
    return _closed_over_pole(path_lon, path_lat, pole)


def _poles_inside(xy, poles) -> List[float]:
    """The poles strictly inside a ring of the source CRS."""
    import shapely

    ring = shapely.Polygon(xy)
    inside = []
    for pole, point in poles.items():
        try:
            if ring.contains(shapely.Point(point)):
                inside.append(pole)
        except shapely.errors.GEOSException:  # a self-touching ring: its longitudes alone decide
            pass
    return inside


def _closed_over_pole(path_lon, path_lat, pole: float):
    """A path that goes once round the Earth (its end 360 degrees from its start), started where it
    first crosses the antimeridian and closed along ``pole``'s latitude: the seam lies exactly on
    +-180, so the two sides of the cap meet there without a gap."""
    import numpy as np
    import shapely

    band = np.floor((path_lon + 180.0) / 360.0)
    crossing = int(np.flatnonzero(band[1:] != band[:-1])[0])
    a, b = path_lon[crossing], path_lon[crossing + 1]
    edge = -180.0 + 360.0 * max(band[crossing], band[crossing + 1])
    t = (edge - a) / (b - a)
    edge_lat = path_lat[crossing] + t * (path_lat[crossing + 1] - path_lat[crossing])
    total = 360.0 * round((path_lon[-1] - path_lon[0]) / 360.0)  # exactly a turn: the seam's two sides coincide
    lon = np.concatenate([[edge], path_lon[crossing + 1:-1], path_lon[:crossing + 1] + total, [edge + total]])
    lat = np.concatenate([[edge_lat], path_lat[crossing + 1:-1], path_lat[:crossing + 1], [edge_lat]])
    lon = lon - (edge + 180.0)  # the seam at -180 (and +180 where the path ends)
    end = lon[-1]
    points = list(zip(lon, lat)) + [(end, pole), (lon[0], pole)]
    return polygonal_part(shapely.Polygon(points))[0]


def _split_at_antimeridian(geometry) -> List:
    """Pieces within -180..180 of a longitude/latitude geometry that may extend past +-180."""
    from shapely.affinity import translate
    from shapely.geometry import box

    minx, _, maxx, _ = geometry.bounds
    if -180.0 <= minx and maxx <= 180.0:
        return [geometry]
    pieces = []
    for turn in range(math.floor((minx + 180.0) / 360.0), math.floor((maxx + 180.0) / 360.0) + 1):
        shift = 360.0 * turn
        piece, _ = polygonal_part(geometry.intersection(box(-180.0 + shift, -90.0, 180.0 + shift, 90.0)))
        if not piece.is_empty and piece.area > 0:
            pieces.append(translate(piece, xoff=-shift))
    return pieces


# --------------------------------------------------------------------------- boxes to read


def read_boxes(geometry, limit: int = MAX_READ_BOXES) -> Tuple[Box, ...]:
    """Disjoint bounding boxes covering ``geometry``'s parts (at most ``limit``): parts far apart are
    read apart, overlapping or touching boxes become one, so no segment lies in two of them."""
    import shapely
    from shapely.geometry import box

    boxes = [tuple(float(v) for v in part.bounds) for part in shapely.get_parts(geometry) if not part.is_empty]
    while len(boxes) > limit:  # many scattered parts (a layer of districts): merge overlaps, then group neighbours
        merged = [tuple(float(v) for v in part.bounds) for part in shapely.get_parts(shapely.union_all([box(*b) for b in boxes]))]
        if len(merged) <= limit:
            boxes = merged
            break
        merged.sort(key=lambda b: (b[0] + b[2], b[1] + b[3]))
        size = math.ceil(len(merged) / limit)
        boxes = [_bounds_of(merged[i:i + size]) for i in range(0, len(merged), size)]
    changed = True
    while changed:  # closed boxes: touching ones would both read a segment on the shared edge
        changed = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                if _touch(boxes[i], boxes[j]):
                    boxes[i] = _bounds_of([boxes[i], boxes[j]])
                    del boxes[j]
                    changed = True
                    break
            if changed:
                break
    west, _ = longitude_span(boxes)
    return tuple(sorted(boxes, key=lambda b: ((b[0] - west) % 360.0, b[1])))  # west to east, as a map shows them


def _bounds_of(boxes) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _touch(a: Box, b: Box) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


# --------------------------------------------------------------------------- the engine's entry


def prepare_roi(roi, crs: str = "EPSG:4326", what: str = "the region of interest",
                advice: Optional[str] = None) -> Tuple[Tuple[Box, ...], Optional[object]]:
    """(disjoint bounding boxes to read, exact polygon or None) in EPSG:4326 for any accepted ROI.

    An invalid polygon is repaired (a bow-tie keeps both lobes); one with no area is refused.
    The polygon is None when the boxes are the region exactly."""
    import shapely
    from shapely.geometry import box

    if roi is None:
        return (WORLD,), None
    if _is_box(roi):
        xmin, ymin, xmax, ymax = (float(v) for v in roi)
        if not all(math.isfinite(v) for v in (xmin, ymin, xmax, ymax)):
            raise QueryError(f"{what} has coordinates that are not numbers ({xmin}, {ymin}, {xmax}, {ymax})")
        if ymin >= ymax:
            raise QueryError(f"empty region of interest: south {ymin} is not below north {ymax}")
        if _is_wgs84(crs):
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
            raise QueryError(f"{what} is not valid WKT: {error}") from None
    if not isinstance(roi, shapely.Geometry):
        raise QueryError(f"unsupported region of interest {type(roi).__name__}: give a bounding box or a polygon")
    if roi.is_empty:
        raise QueryError(f"{what} is empty")
    finite_coordinates(roi, what)
    try:
        roi = area_of(roi, what)
        pieces = _split_at_antimeridian(_to_lonlat(roi, crs, what, advice))
        exact = polygonal_part(shapely.union_all(pieces))[0] if pieces else shapely.Polygon()
    except shapely.errors.GEOSException as error:  # a safety net: the steps above keep GEOS's input valid
        raise QueryError(f"{what} cannot be turned into longitudes and latitudes ({error}): check its coordinates "
                         "and coordinate reference system") from None
    if exact.is_empty or exact.area <= 0:
        raise QueryError(f"{what} has no area")
    parts = read_boxes(exact)
    covered = parts_area(parts)
    return parts, (None if covered - exact.area <= 1e-9 * covered else exact)


def parts_area(parts: Sequence[Box]) -> float:
    return sum((p[2] - p[0]) * (p[3] - p[1]) for p in parts)


def longitude_span(parts: Sequence[Box]) -> Tuple[float, float]:
    """(west, east) of the narrowest band of longitudes holding every part: east passes 180 when
    the band crosses the antimeridian (islands either side of it are 1 degree wide, not 360)."""
    intervals = sorted((p[0], p[2]) for p in parts)
    merged = [list(intervals[0])]
    for west, east in intervals[1:]:
        if west <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], east)
        else:
            merged.append([west, east])
    gaps = [(merged[0][0] + 360.0 - merged[-1][1], len(merged) - 1)]  # the gap across the antimeridian
    gaps += [(merged[i + 1][0] - merged[i][1], i) for i in range(len(merged) - 1)]
    width, after = max(gaps)
    if after == len(merged) - 1 or width <= 0:
        return merged[0][0], merged[-1][1]
    return merged[after + 1][0], merged[after][1] + 360.0


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

    if _is_box(roi):
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
        try:
            finite_coordinates(roi, what)
        except QueryError as error:
            raise QueryError(f"{error}: {advice}") from None
        geometry = area_of(roi, what)
        geographic = _is_geographic(crs)
    else:
        raise QueryError(f"unsupported region of interest {type(roi).__name__}: give a bounding box or a polygon")

    try:
        if geographic:
            on_earth, moved = _geographic_part(geometry)
        else:
            on_earth, moved = _projected_part(geometry, crs, what, advice)
    except shapely.errors.GEOSException as error:
        raise QueryError(f"{what} cannot be used ({error}): {advice}") from None
    if on_earth.is_empty or on_earth.area <= 0:
        raise QueryError(f"{what} lies outside the Earth ({_where(*geometry.bounds, crs, geographic)}): {advice}")
    clipped = moved or abs(on_earth.area - geometry.area) > 1e-9 * geometry.area
    if not clipped:
        checked = roi
    elif isinstance(roi, shapely.Geometry):
        checked = on_earth
    else:
        checked = _as_box(on_earth.bounds)
    parts, exact = prepare_roi(checked, crs, what, advice)  # what is accepted here must run: the engine's own checks, now
    west, east = longitude_span(parts)
    south, north = min(p[1] for p in parts), max(p[3] for p in parts)
    return CheckedRegion(roi=checked, crs=crs, bounds=(west, south, east, north), clipped=clipped)


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


def _projected_part(geometry, crs, what: str, advice: Optional[str]):
    """(the part of a projected region whose points have a place on the Earth, whether it shrank).

    A point is on the Earth when it reprojects to a finite longitude/latitude that projects back
    to it: Web Mercator past +-20,037 km wraps round (and does not come back), a transverse
    Mercator far from its zone becomes infinite. When a vertex is not, the region is clipped to
    the CRS's area of use (a canvas zoomed out beyond it); inside its area a CRS is always usable."""
    import numpy as np
    import shapely
    from pyproj import CRS, Transformer

    source = _pyproj_crs(crs)
    to_wgs84 = Transformer.from_crs(source, CRS.from_epsg(4326), always_xy=True)
    from_wgs84 = Transformer.from_crs(CRS.from_epsg(4326), source, always_xy=True)
    minx, miny, maxx, maxy = geometry.bounds
    tolerance = 1e-4 * max(maxx - minx, maxy - miny) + 1e-3

    def on_earth(part) -> bool:
        xy = shapely.get_coordinates(_densified(part))
        with np.errstate(all="ignore"):
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
                         f"to clip it to{_then(advice)}")
    west, south, east, north = area.bounds
    # a hair inside the area of use: exactly on 180 degrees a longitude may come back as -180
    inset = 1e-7
    usable = _area_in(from_wgs84, west + inset, max(south, -90 + inset), east - inset, min(north, 90 - inset))
    part = polygonal_part(geometry.intersection(usable))[0]
    if part.is_empty or not on_earth(part):
        return shapely.Polygon(), True
    return part, True


def _area_in(from_wgs84, west, south, east, north):
    """A CRS's area of use (degrees) as a polygon in the CRS: its outline densified and projected.
    For a polar CRS the outline is a circle round the pole (its bounding box would reach beyond
    the circle, where the projection folds back onto the other hemisphere)."""
    import numpy as np
    import shapely
    from shapely.geometry import box

    lon = np.linspace(west, east, 361)
    lat = np.linspace(south, north, 181)
    outline = np.concatenate([
        np.column_stack([lon, np.full_like(lon, south)]), np.column_stack([np.full_like(lat, east), lat]),
        np.column_stack([lon[::-1], np.full_like(lon, north)]), np.column_stack([np.full_like(lat, west), lat[::-1]]),
    ])
    with np.errstate(all="ignore"):
        x, y = from_wgs84.transform(outline[:, 0], outline[:, 1])
    x, y = np.asarray(x), np.asarray(y)
    finite = np.isfinite(x) & np.isfinite(y)
    if finite.sum() < 3:
        return box(*from_wgs84.transform_bounds(west, south, east, north, densify_pts=21))
    ring = shapely.Polygon(np.column_stack([x[finite], y[finite]]))
    area, _ = polygonal_part(ring)
    if area.is_empty or area.area <= 0:
        return box(*from_wgs84.transform_bounds(west, south, east, north, densify_pts=21))
    return shapely.convex_hull(area) if _is_polar(south, north) else area


def _is_polar(south: float, north: float) -> bool:
    return north >= 90 - 1e-3 or south <= -90 + 1e-3


def _as_box(bounds) -> Tuple[float, float, float, float]:
    """A clipped box as prepare_roi takes it: west > east when it crosses the antimeridian."""
    west, south, east, north = (float(v) for v in bounds)
    if east > 180.0:
        east -= 360.0
    elif west < -180.0:
        west += 360.0
    return west, south, east, north


def _then(advice: Optional[str]) -> str:
    return f": {advice}" if advice else ""


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
