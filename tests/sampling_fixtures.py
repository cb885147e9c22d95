"""Small rasters and ATL08-like point files for the raster sampling tests, with the value each point must get
known by construction (the pixel a point is placed in), not read back through the code under test.

A 12 x 8 raster of 10 m pixels in UTM 32N holds ``100 * row + column`` in band 1 (band 2: minus that), with a
nodata pixel (-9999) and a NaN pixel; the yearly NDVI composites cover the same area in EPSG:4326 with a value per
year. Points are given in EPSG:4326 (as the query writes them), so every sample crosses a CRS transform.
"""

import numpy as np
import pandas as pd

UTM = "EPSG:32632"
X0, Y0, RES = 500000.0, 5700000.0, 10.0
ROWS, COLUMNS = 8, 12
NODATA = -9999.0
NODATA_PIXEL = (2, 3)
NAN_PIXEL = (5, 7)


def pixel_values() -> np.ndarray:
    rows, columns = np.mgrid[0:ROWS, 0:COLUMNS]
    values = (100.0 * rows + columns).astype(np.float32)
    values[NODATA_PIXEL] = NODATA
    values[NAN_PIXEL] = np.nan
    return values


def write_utm_raster(path):
    import rasterio
    from rasterio.transform import from_origin

    values = pixel_values()
    with rasterio.open(path, "w", driver="GTiff", width=COLUMNS, height=ROWS, count=2, dtype="float32", crs=UTM,
                       transform=from_origin(X0, Y0, RES, RES), nodata=NODATA) as dataset:
        dataset.write(values, 1)
        dataset.write(-values, 2)
    return path


def lonlat(x, y):
    from pyproj import Transformer

    return Transformer.from_crs(UTM, "EPSG:4326", always_xy=True).transform(x, y)


def in_pixel(row: float, column: float):
    """(lon, lat) of the point ``row``, ``column`` pixels from the UTM raster's top-left corner (fractions inside)."""
    return lonlat(X0 + column * RES, Y0 - row * RES)


def composite_bounds():
    """The UTM raster's area in EPSG:4326, with a margin: where the yearly composites are."""
    west, north = in_pixel(-2, -2)
    east, south = in_pixel(ROWS + 2, COLUMNS + 2)
    return west, south, east, north


def composite_value(year: int) -> float:
    return round(0.1 * (year - 2015), 3)


def write_composite(folder, year: int, size: int = 16):
    """``ndvi_composite_<year>.tif`` in EPSG:4326, every pixel ``composite_value(year)`` except the top-left one
    (NaN, the composites' nodata)."""
    import rasterio
    from rasterio.transform import from_bounds

    west, south, east, north = composite_bounds()
    values = np.full((size, size), composite_value(year), dtype=np.float32)
    values[0, 0] = np.nan
    path = folder / f"ndvi_composite_{year}.tif"
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1, dtype="float32", crs="EPSG:4326",
                       transform=from_bounds(west, south, east, north, size, size), nodata=float("nan")) as dataset:
        dataset.write(values, 1)
    return path


def write_points(path, places, times=None, layer_name="segments"):
    """Points at ``places`` ((lon, lat) pairs) written as the query writes segments: ``time`` (UTC), ``segment_id``,
    ``h_canopy`` (10 + the point's number)."""
    from canopy_explorer.plugin.core.segment_files import write_segments

    count = len(places)
    times = times or ["2021-06-01T10:00:00"] * count
    frame = pd.DataFrame({
        "longitude": [p[0] for p in places], "latitude": [p[1] for p in places],
        "time": pd.DatetimeIndex(pd.to_datetime(times)).tz_localize("UTC"),
        "segment_id": np.arange(1000, 1000 + count, dtype=np.int64),
        "h_canopy": 10.0 + np.arange(count, dtype=np.float32),
    })
    write_segments([frame], path, layer_name)
    return path


def read_points(path):
    """{segment_id: {field: value}} of the first layer of a vector file, read with OGR."""
    from osgeo import ogr

    dataset = ogr.Open(str(path))
    layer = dataset.GetLayer(0)
    definition = layer.GetLayerDefn()
    names = [definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())]
    rows = {}
    for feature in layer:
        row = {name: feature.GetField(name) if feature.IsFieldSetAndNotNull(name) else None for name in names}
        geometry = feature.GetGeometryRef()
        row["xy"] = (geometry.GetX(), geometry.GetY()) if geometry is not None else None
        rows[row["segment_id"]] = row
    return rows
