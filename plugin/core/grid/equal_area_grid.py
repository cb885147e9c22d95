"""Cells on a projected grid: flat-topped hexagons (equal area on Equal Earth) or squares.

    grid = HexGrid(cell_size_km=100)              # EPSG:8857, the seed's ~100 km hexagons
    keys = grid.cell_keys(longitude, latitude)    # one int64 per segment, vectorised
    polygons = grid.polygons(np.unique(keys))     # shapely hexagons, clipped at the antimeridian

A cell is named by an int64 key packing two signed 32-bit integers: axial (q, r)
coordinates for hexagons, (column, row) for squares. Hexagons are flat-topped and
``cell_size_km`` is their diameter (vertex to vertex), as in the seed's figure; the
grid is anchored at the projection's origin, so the same cell always has the same key.

The antimeridian is the map's left and right edge. A hexagon centred near it would
reach past the edge; it is clipped to the map outline, so the segments east and west
of 180 degrees fall into two cells, one on each edge, each with its own statistics
and a polygon that never wraps around the map.
"""

from dataclasses import dataclass, field
from typing import Tuple

import numpy as np

from ..errors import QueryError

EQUAL_EARTH = "EPSG:8857"
SQRT3 = np.sqrt(3.0)


def pack(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (np.asarray(a, dtype=np.int64) << 32) | (np.asarray(b, dtype=np.int64) & 0xFFFFFFFF)


def unpack(keys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    keys = np.asarray(keys, dtype=np.int64)
    low = (keys & 0xFFFFFFFF).astype(np.int64)
    return keys >> 32, np.where(low >= 2**31, low - 2**32, low)


@dataclass
class Grid:
    """A grid of cells ``cell_size_km`` across on the projected CRS ``crs`` (subclasses name the shape)."""

    cell_size_km: float
    crs: str = EQUAL_EARTH
    _transformer: object = field(default=None, init=False, repr=False)
    _outline: object = field(default=None, init=False, repr=False)

    def __post_init__(self):
        from pyproj import CRS, Transformer

        if not self.cell_size_km > 0:
            raise QueryError(f"the cell size must be positive, not {self.cell_size_km} km")
        try:
            crs = CRS.from_user_input(self.crs)
        except Exception as error:  # pyproj.exceptions.CRSError
            raise QueryError(f"unknown grid CRS {self.crs!r}: {error}") from None
        units = {axis.unit_name for axis in crs.axis_info}
        if not crs.is_projected or not units <= {"metre", "meter"}:
            raise QueryError(f"the grid CRS must be projected in metres (for example {EQUAL_EARTH}, Equal Earth), not {crs.name}")
        if crs.to_epsg() == 8857:
            self.crs = EQUAL_EARTH
        self._crs = crs
        self._transformer = Transformer.from_crs("EPSG:4326", crs, always_xy=True)

    @property
    def size_m(self) -> float:
        return self.cell_size_km * 1000.0

    @property
    def crs_wkt(self) -> str:
        return self._crs.to_wkt()

    def project(self, longitude: np.ndarray, latitude: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        return self._transformer.transform(np.asarray(longitude, dtype=np.float64), np.asarray(latitude, dtype=np.float64))

    def cell_keys(self, longitude: np.ndarray, latitude: np.ndarray) -> np.ndarray:
        x, y = self.project(longitude, latitude)
        return self.keys_at(x, y)

    def outline(self):
        """The map's outline (the whole globe, meridians +-180 densified) in the grid CRS."""
        if self._outline is None:
            import shapely

            # The edge is curved: chords every 0.01 degree stay within a few centimetres of it.
            lat = np.linspace(-90.0, 90.0, 18_001)
            lon = np.concatenate([np.full(lat.size, -180.0), np.full(lat.size, 180.0)])
            x, y = self.project(lon, np.concatenate([lat, lat[::-1]]))
            outline = shapely.make_valid(shapely.Polygon(np.column_stack([x, y])))
            shapely.prepare(outline)
            self._outline = outline
        return self._outline

    def polygons(self, keys: np.ndarray) -> np.ndarray:
        """Cell polygons for ``keys`` (an array of shapely geometries), clipped to the map outline."""
        import shapely

        vertices = self.vertices(np.asarray(keys, dtype=np.int64))
        rings = shapely.polygons(vertices)
        outline = self.outline()
        inside = shapely.contains_xy(outline, vertices[..., 0], vertices[..., 1]).all(axis=1)
        if not inside.all():
            rings[~inside] = shapely.intersection(rings[~inside], outline)
        return rings


class HexGrid(Grid):
    """Flat-topped hexagons of diameter ``cell_size_km``; equal-area in an equal-area CRS."""

    kind = "hexagon"

    @property
    def radius_m(self) -> float:
        return self.size_m / 2.0

    def keys_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Axial coordinates of the hexagon containing each point (cube rounding, vectorised)."""
        size = self.radius_m
        q = (2.0 / 3.0) * np.asarray(x) / size
        r = (-1.0 / 3.0) * np.asarray(x) / size + (SQRT3 / 3.0) * np.asarray(y) / size
        s = -q - r
        rq, rr, rs = np.rint(q), np.rint(r), np.rint(s)
        dq, dr, ds = np.abs(rq - q), np.abs(rr - r), np.abs(rs - s)
        fix_q = (dq > dr) & (dq > ds)
        fix_r = ~fix_q & (dr > ds)
        rq = np.where(fix_q, -rr - rs, rq)
        rr = np.where(fix_r, -rq - rs, rr)
        return pack(rq.astype(np.int64), rr.astype(np.int64))

    def centres(self, keys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        q, r = unpack(keys)
        size = self.radius_m
        return size * 1.5 * q, size * SQRT3 * (r + q / 2.0)

    def vertices(self, keys: np.ndarray) -> np.ndarray:
        cx, cy = self.centres(keys)
        angles = np.radians(np.arange(0, 360, 60))
        return np.stack([cx[:, None] + self.radius_m * np.cos(angles), cy[:, None] + self.radius_m * np.sin(angles)], axis=-1)

    @property
    def cell_area_m2(self) -> float:
        return 1.5 * SQRT3 * self.radius_m**2


class SquareGrid(Grid):
    """Square cells ``cell_size_km`` wide, aligned on the CRS origin: the pixels of a raster."""

    kind = "square"

    def keys_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return pack(np.floor(np.asarray(x) / self.size_m), np.floor(np.asarray(y) / self.size_m))

    def columns_rows(self, keys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        return unpack(keys)

    def vertices(self, keys: np.ndarray) -> np.ndarray:
        column, row = unpack(keys)
        x0, y0 = column * self.size_m, row * self.size_m
        s = self.size_m
        return np.stack([np.stack([x0, x0 + s, x0 + s, x0], axis=-1), np.stack([y0, y0, y0 + s, y0 + s], axis=-1)], axis=-1)

    @property
    def cell_area_m2(self) -> float:
        return self.size_m**2
