"""Small synthetic composites and districts for the district statistics tests, and statistics computed
independently of the engine (numpy over every pixel centre, shapely ``contains_xy``).

The grid is 300 x 280 pixels of 10 m in UTM 32N, so PostGIS cuts it into four 256 x 256
tiles (two of them partial) and districts E and I cross tile edges. District vertices
sit at decimals that no pixel centre (multiples of 10 plus 5) falls on, so the pixel-centre
rule has a single answer.
"""

from functools import lru_cache

import numpy as np
import shapely
from shapely.geometry import Polygon, box

CRS = "EPSG:32632"
WIDTH, HEIGHT, RES = 300, 280, 10.0
X0, Y0 = 500000.0, 5700000.0
YEARS = (2019, 2020, 2021)
ID_FIELD = "district code"  # the districts' id field: the id column of every table, under this name


def at(x: float, y: float):
    """A point given as metres right of and below the raster's top-left corner."""
    return (X0 + x, Y0 - y)


def rect(x0, y0, x1, y1):
    return box(X0 + x0, Y0 - y1, X0 + x1, Y0 - y0)


def district_shapes():
    """(id, geometry) pairs: ids with quotes, spaces and SQL on purpose."""
    hole = Polygon([at(1003.3, 1003.3), at(1806.7, 1003.3), at(1806.7, 1806.7), at(1003.3, 1806.7)],
                   [[at(1203.3, 1303.3), at(1506.7, 1303.3), at(1506.7, 1556.7), at(1203.3, 1556.7)]])
    triangle = Polygon([at(203.3, 2203.3), at(703.9, 2251.1), at(411.7, 2711.3)])
    return [
        ('A "simple"', Polygon([at(123.3, 101.7), at(803.1, 133.9), at(911.7, 612.2), at(402.2, 807.4), at(95.6, 540.3)])),
        ("B partial's", rect(2703.3, 1203.3, 3350.7, 1606.9)),  # beyond the right edge (x = 3000)
        ("C; DROP TABLE districts; --", rect(5000.3, 100.3, 5600.7, 600.1)),  # outside the raster
        ("D hole", hole),
        ("E multi", shapely.MultiPolygon([rect(2403.3, 2303.3, 2703.1, 2703.7), triangle])),  # crosses column 256
        ("F nan", rect(303.3, 903.3, 803.7, 1303.3)),  # half over the NaN patch
        ("G old only", rect(2003.3, 203.3, 2403.3, 503.3)),  # NaN from 2020 on
        ("H tiny", rect(1501.0, 1501.0, 1504.0, 1504.0)),  # inside the raster, no pixel centre
        ("I big", rect(2203.3, 2003.3, 2903.3, 2753.3)),  # overlaps E, crosses row and column 256
        ("J bowtie", Polygon([at(603.3, 2003.3), at(1203.3, 2603.3), at(1203.3, 2003.3), at(603.3, 2603.3)])),  # invalid
    ]


def districts():
    from canopy_explorer.plugin.core.districts.statistics import Districts

    pairs = district_shapes()
    return Districts.create([i for i, _ in pairs], [g for _, g in pairs], CRS, id_field=ID_FIELD)


def composite_values(year: int) -> np.ndarray:
    rng = np.random.default_rng(year)
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = 0.35 + 0.3 * np.sin(rows / 37.0) * np.cos(cols / 53.0)
    values = (base + rng.normal(0, 0.08, size=base.shape) + 0.04 * (year - 2019)).astype(np.float32)
    values[100:120, 40:70] = np.nan  # NaN patch under district F
    if year >= 2020:
        values[15:55, 195:245] = np.nan  # district G has data in 2019 only
    return values


def write_composite(path, values, crs=CRS, nodata=float("nan"), second_band=True):
    import rasterio
    from rasterio.transform import from_origin

    count = 2 if second_band else 1
    with rasterio.open(path, "w", driver="GTiff", width=values.shape[1], height=values.shape[0], count=count,
                       dtype="float32", crs=crs, transform=from_origin(X0, Y0, RES, RES), nodata=nodata,
                       tiled=True, blockxsize=128, blockysize=128) as dataset:
        dataset.write(values, 1)
        if second_band:
            dataset.write(np.where(np.isnan(values), 0, 3).astype(np.float32), 2)
    return path


def write_composites(folder, years=YEARS):
    folder.mkdir(parents=True, exist_ok=True)
    return {year: write_composite(folder / f"ndvi_composite_{year}.tif", composite_values(year)) for year in years}


@lru_cache(maxsize=64)
def _picked(path, geometry_wkb: bytes) -> np.ndarray:
    """The valid values (float64) of band 1 whose pixel centre is inside the geometry (made valid)."""
    import rasterio

    geometry = shapely.from_wkb(geometry_wkb)
    with rasterio.open(path) as dataset:
        values = dataset.read(1).astype(np.float64)
        transform = dataset.transform
    rows, cols = np.mgrid[0:values.shape[0], 0:values.shape[1]]
    xs, ys = transform * (cols + 0.5, rows + 0.5)
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    return values[shapely.contains_xy(geometry, xs, ys) & np.isfinite(values)]


def expected_stats(path, geometry):
    """(count, min, max, mean, population stddev) over the valid pixels whose centre is inside ``geometry``."""
    picked = _picked(str(path), geometry.wkb)
    if not len(picked):
        return 0, None, None, None, None
    return len(picked), picked.min(), picked.max(), picked.mean(), picked.std()


def expected_quantiles(path, geometry):
    """(median, 10th, 90th percentile) over the same pixels as ``expected_stats``: numpy's default (linear)
    percentile, None when no pixel counts."""
    picked = _picked(str(path), geometry.wkb)
    if not len(picked):
        return None, None, None
    return tuple(float(np.percentile(picked, q)) for q in (50, 10, 90))


def read_table(gpkg, layer, id_field=ID_FIELD):
    """{id: {field: value}} of a GeoPackage layer, read with OGR."""
    from osgeo import ogr

    dataset = ogr.Open(str(gpkg))
    source = dataset.GetLayerByName(layer)
    assert source is not None, f"no layer {layer} in {gpkg}"
    definition = source.GetLayerDefn()
    names = [definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())]
    rows = {}
    for feature in source:
        row = {name: feature.GetField(name) if feature.IsFieldSetAndNotNull(name) else None for name in names}
        geometry = feature.GetGeometryRef()
        row["geom"] = shapely.from_wkb(bytes(geometry.ExportToIsoWkb())) if geometry else None
        rows[row[id_field]] = row
    return rows


def layer_names(gpkg):
    from osgeo import ogr

    dataset = ogr.Open(str(gpkg))
    return sorted(dataset.GetLayer(i).GetName() for i in range(dataset.GetLayerCount()))
