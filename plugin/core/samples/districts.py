"""Sample districts over the sample city, for ``make demo``'s district workflow.

The city's boundary (``scenes.sample_boundary``, UTM 32N, the area the sample NDVI composites
cover) is cut into districts by the Voronoi cells of jittered grid points, drawn from a
fixed seed, so every run gives the same districts. Each district has a text code
(``district_code``, as in the seed's tables), a name and its area, the kind of attributes a
user's districts layer brings and the statistics tables must keep.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from .scenes import UTM_32N, sample_boundary

ID_FIELD = "district_code"
LAYER_NAME = "districts"
CRS = f"EPSG:{UTM_32N}"
NAMES = ("Altstadt", "Nordheim", "Seeufer", "Waldrand", "Am Markt", "Lindenhof", "Sudfeld", "Bergblick", "Eichwald",
         "Muhlbach", "Kirchberg", "Talgrund")


@dataclass(frozen=True)
class SampleDistrict:
    code: str
    name: str
    geometry: object  # a shapely polygon in EPSG:32632

    @property
    def area_km2(self) -> float:
        return round(self.geometry.area / 1e6, 3)


def sample_districts(rows: int = 3, columns: int = 3, seed: int = 42, boundary=None) -> List[SampleDistrict]:
    """About ``rows`` x ``columns`` districts tiling ``boundary`` (default: the sample city), coded from the north-west
    (``D01``, ``D02``...)."""
    import shapely

    boundary = boundary if boundary is not None else sample_boundary()
    west, south, east, north = boundary.bounds
    rng = np.random.default_rng([seed, 0xD157])
    xs = west + (np.arange(columns) + 0.5 + rng.uniform(-0.3, 0.3, (rows, columns))) * (east - west) / columns
    ys = north - (np.arange(rows)[:, None] + 0.5 + rng.uniform(-0.3, 0.3, (rows, columns))) * (north - south) / rows
    seeds = shapely.points(xs.ravel(), ys.ravel())
    cells = shapely.voronoi_polygons(shapely.MultiPoint(list(seeds)), extend_to=boundary)
    pieces = [cell.intersection(boundary) for cell in shapely.get_parts(cells)]
    pieces = [piece for piece in pieces if piece.geom_type == "Polygon" and piece.area > 0.01 * boundary.area]
    # north to south in bands of a row's height, then west to east
    band = (north - south) / rows
    pieces.sort(key=lambda p: (round((north - p.centroid.y) / band), p.centroid.x))
    return [SampleDistrict(f"D{i + 1:02d}", NAMES[i % len(NAMES)], shapely.normalize(piece)) for i, piece in enumerate(pieces)]


def write_sample_districts(path, districts: Optional[List[SampleDistrict]] = None) -> Tuple[Path, int]:
    """Write the districts to a GeoPackage layer ``districts`` (``district_code``, ``name``, ``area_km2``, EPSG:32632);
    returns (path, number of districts). The file is replaced."""
    import shapely
    from osgeo import ogr, osr

    districts = districts if districts is not None else sample_districts()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".partial-{path.name}")  # keeps the .gpkg extension GDAL expects
    ogr.UseExceptions()
    driver = ogr.GetDriverByName("GPKG")
    if temporary.exists():
        driver.DeleteDataSource(str(temporary))
    dataset = driver.CreateDataSource(str(temporary))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(UTM_32N)
    layer = dataset.CreateLayer(LAYER_NAME, srs, ogr.wkbPolygon, options=["GEOMETRY_NAME=geom"])
    for name, kind in ((ID_FIELD, ogr.OFTString), ("name", ogr.OFTString), ("area_km2", ogr.OFTReal)):
        layer.CreateField(ogr.FieldDefn(name, kind))
    for district in districts:
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField(ID_FIELD, district.code)
        feature.SetField("name", district.name)
        feature.SetField("area_km2", district.area_km2)
        feature.SetGeometry(ogr.CreateGeometryFromWkb(shapely.to_wkb(district.geometry)))
        layer.CreateFeature(feature)
    feature = layer = dataset = None
    temporary.replace(path)
    return path, len(districts)
