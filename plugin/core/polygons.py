"""The area of a user's polygon: invalid rings repaired, what has no area dropped.

Regions of interest, NDVI boundaries and districts all come from layers people draw by
hand, and hand-drawn rings self-intersect. A bow-tie is repaired into its two lobes; a
ring that folds back on itself has no area and repairs into lines, which no operation
can use, so the caller can say so instead of failing on a line later.
"""

from typing import Optional, Tuple

from .errors import QueryError

POLYGONAL = ("Polygon", "MultiPolygon")


def polygonal_part(geometry) -> Tuple[object, Optional[str]]:
    """(the valid Polygon or MultiPolygon area of ``geometry``, why it needed repair or None).

    The area is empty when nothing with an area is left (an empty input, or a ring that
    repairs into lines or points)."""
    import shapely

    reason = None
    if not geometry.is_empty and not geometry.is_valid:
        reason = shapely.is_valid_reason(geometry)
        geometry = shapely.make_valid(geometry)
    if geometry.geom_type in POLYGONAL:
        return geometry, reason
    polygons = [p for p in _polygons(geometry) if not p.is_empty]
    if not polygons:
        return shapely.MultiPolygon(), reason
    # make_valid's parts do not overlap, but a collection's polygons may share edges: union, not collect
    return (polygons[0] if len(polygons) == 1 else shapely.union_all(polygons)), reason


def _polygons(geometry):
    if geometry.geom_type == "Polygon":
        yield geometry
    elif geometry.geom_type in ("MultiPolygon", "GeometryCollection"):
        for part in geometry.geoms:
            yield from _polygons(part)


def finite_coordinates(geometry, what: str) -> None:
    """A QueryError naming ``what`` when a vertex is NaN or infinite (GEOS would stop on it with
    'IllegalArgumentException: ... encountered NaN/Inf numbers')."""
    import numpy as np
    import shapely

    xy = shapely.get_coordinates(geometry)
    if len(xy) and not np.isfinite(xy).all():
        bad = xy[~np.isfinite(xy).all(axis=1)][0]
        raise QueryError(f"{what} has a vertex whose coordinates are not numbers ({bad[0]}, {bad[1]}): "
                         "every vertex needs finite coordinates")


def why_no_area(geometry) -> str:
    """What ``geometry`` is, when ``polygonal_part`` found no area in it: "... has no area: it is <this>"."""
    import shapely

    if geometry is None or geometry.is_empty:
        return "empty"
    if not geometry.is_valid:
        return f"an invalid polygon ({shapely.is_valid_reason(geometry)}) that collapses to lines when repaired"
    return f"a {geometry.geom_type} without polygons"


def area_of(geometry, what: str):
    """The valid (multi)polygon area of ``geometry`` (``polygonal_part``), or a QueryError naming
    ``what`` ("the boundary") when it is not a polygon or has no area."""
    if geometry.geom_type not in POLYGONAL + ("GeometryCollection",):
        raise QueryError(f"{what} must be a polygon or multipolygon, not a {geometry.geom_type}")
    area, _ = polygonal_part(geometry)
    if area.is_empty or area.area <= 0:
        raise QueryError(f"{what} has no area: it is {why_no_area(geometry)}")
    return area
