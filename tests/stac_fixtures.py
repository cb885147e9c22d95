"""Shared fixtures for the STAC and NDVI tests: one synthetic catalogue served over loopback HTTP.

Test modules use them with ``from stac_fixtures import *`` (tests/ is on sys.path).
Every scene covers the same 4 x 4 km in UTM 32N (400 x 400 pixels at 10 m), except
one placed far away; years keep the scenarios apart:

* 2023: A (baseline 05.00), B (02.14, a cloud, a cloud shadow and cirrus), C (partial
  footprint: west of x = X0 + 1500 only), D (80 % cloud cover), E (another
  collection), F (60 km east, does not touch the boundary);
* 2022: G, a single scene;
* 2021: OLD (baseline 02.14) and NEW (05.00) with the same reflectance, MISLABELLED
  (05.00 digital numbers, but ``raster:bands`` lists offset 0);
* 2020: NONIR (no nir asset), OK, BROKEN (for asset failures);
* 2019: five scenes P1..P5 with cloud cover 1..5 %, for paging.

Reflectances are exact multiples of 0.0001, so digital numbers are exact and the
expected NDVI is computed here from the same reflectance functions, independently
of the engine (``expected_stack``).
"""

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon, box

sys.path.insert(0, str(Path(__file__).resolve().parent))

from canopy_explorer.plugin.core.samples.scenes import (  # noqa: E402
    CLOUD_NIR, CLOUD_RED, SCL_CIRRUS, SCL_CLOUD_HIGH, SCL_CLOUD_SHADOW, SCL_NO_DATA, SCL_VEGETATION, SceneSpec, pattern,
    write_catalogue,
)
from canopy_explorer.plugin.core.samples.stac_server import SampleStacServer  # noqa: E402
from canopy_explorer.plugin.core.sentinel2.stac_search import StacSource  # noqa: E402

__all__ = [
    "X0", "Y0", "EXTENT", "BOUNDARY", "BOUNDARY_CRS", "COLLECTION", "SPECS", "spec", "boundary_wgs84", "expected_stack",
    "grid_centres", "make_source", "stac_catalogue", "stac_server", "read_composite",
]

X0, Y0 = 500_000.0, 5_650_000.0  # UTM 32N, about 51.0 N 9.0 E
EXTENT = (X0, Y0, X0 + 4000, Y0 + 4000)
BOUNDARY_CRS = "EPSG:32632"
# An irregular "city" of about 200 x 200 pixels. Vertices are off the 5 m lattice so that no
# edge runs exactly through pixel centres (inside-or-not would then be a matter of rounding).
BOUNDARY = Polygon([(X0 + 403.1, Y0 + 2003.7), (X0 + 1303.3, Y0 + 1603.9), (X0 + 2403.7, Y0 + 2101.3), (X0 + 2203.9, Y0 + 3601.1),
                    (X0 + 1201.7, Y0 + 3303.3), (X0 + 501.3, Y0 + 3503.7)])
COLLECTION = "sentinel-2-c1-l2a"
# Pseudo-random patterns: the COGs hardly compress, so the bytes a windowed read fetches show.
RED = pattern(0.03, 7919, 6271, 997, mix=13)
NIR = pattern(0.25, 4493, 9973, 2999, mix=7)


def nir_plus(shift):
    return pattern(0.25, 4493, 9973, 2999, shift=shift, mix=7)


def _when(year, month, day):
    return dt.datetime(year, month, day, 10, 30, tzinfo=dt.timezone.utc)


def _specs():
    cloud = (box(X0 + 1500, Y0 + 2500, X0 + 2000, Y0 + 3000), SCL_CLOUD_HIGH)
    shadow = (box(X0 + 600, Y0 + 2200, X0 + 1000, Y0 + 2600), SCL_CLOUD_SHADOW)
    cirrus = (box(X0 + 1000, Y0 + 3000, X0 + 1400, Y0 + 3400), SCL_CIRRUS)
    west = box(X0, Y0, X0 + 1500, Y0 + 4000)
    far = (X0 + 60_000, Y0, X0 + 64_000, Y0 + 4000)
    specs = [
        SceneSpec("A_2023", _when(2023, 5, 4), EXTENT, RED, NIR, baseline="05.00", cloud_cover=5.0),
        SceneSpec("B_2023", _when(2023, 6, 13), EXTENT, RED, nir_plus(0.03), baseline="02.14",
                  clouds=(cloud, shadow, cirrus), cloud_cover=12.0),
        SceneSpec("C_2023", _when(2023, 7, 23), EXTENT, RED, nir_plus(0.06), baseline="05.00",
                  footprint=west, cloud_cover=8.0),
        SceneSpec("D_2023", _when(2023, 8, 2), EXTENT, RED, nir_plus(0.3), cloud_cover=80.0),
        SceneSpec("E_2023", _when(2023, 8, 12), EXTENT, RED, NIR, cloud_cover=1.0, collection="other-collection"),
        SceneSpec("F_2023", _when(2023, 8, 22), far, RED, NIR, cloud_cover=2.0),
        SceneSpec("G_2022", _when(2022, 6, 1), EXTENT, RED, NIR, cloud_cover=3.0),
        SceneSpec("OLD_2021", _when(2021, 6, 1), EXTENT, RED, NIR, baseline="02.14", cloud_cover=1.0),
        SceneSpec("NEW_2021", _when(2021, 6, 11), EXTENT, RED, NIR, baseline="05.00", cloud_cover=1.0),
        SceneSpec("MISLABELLED_2021", _when(2021, 6, 21), EXTENT, RED, NIR, baseline="05.00", listed_offset=0.0, cloud_cover=1.0),
        SceneSpec("NONIR_2020", _when(2020, 6, 1), EXTENT, RED, NIR, omit_assets=("nir",), cloud_cover=1.0),
        SceneSpec("OK_2020", _when(2020, 6, 11), EXTENT, RED, nir_plus(0.01), cloud_cover=1.0),
        SceneSpec("BROKEN_2020", _when(2020, 6, 21), EXTENT, RED, nir_plus(0.02), cloud_cover=1.0),
    ]
    for i in range(1, 6):
        specs.append(SceneSpec(f"P{i}_2019", _when(2019, 4 + i, 1), EXTENT, RED, NIR, cloud_cover=float(i)))
    return [replace_block(s) for s in specs]


def replace_block(scene_spec):
    from dataclasses import replace

    return replace(scene_spec, block_size=128)  # the smallest COG tile: windowed reads are visible in bytes


SPECS = {s.scene_id: s for s in _specs()}


def spec(scene_id) -> SceneSpec:
    return SPECS[scene_id]


def boundary_wgs84(geometry=BOUNDARY):
    from pyproj import Transformer

    transformer = Transformer.from_crs(32632, 4326, always_xy=True)
    return shapely.transform(geometry, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def grid_centres(transform, shape):
    """Pixel-centre coordinates (x, y) of a grid, as 2-D arrays."""
    rows, cols = shape
    x = transform[2] + (np.arange(cols) + 0.5) * transform[0]
    y = transform[5] + (np.arange(rows) + 0.5) * transform[4]
    return np.meshgrid(x, y)


def expected_stack(scene_ids, x, y, mask_classes=(0, 1, 3, 8, 9, 10), boundary=BOUNDARY):
    """NDVI (float64) of each scene at points (x, y), NaN where the scene has no clear pixel
    or the point is outside the boundary; computed from the specs alone."""
    layers = []
    for scene_id in scene_ids:
        scene = SPECS[scene_id]
        west, south, east, north = scene.bounds
        inside_extent = (x > west) & (x < east) & (y > south) & (y < north)
        # SCL: the 20 m pixel that holds the point, classified by its own centre
        cx = west + (np.floor((x - west) / 20.0) + 0.5) * 20.0
        cy = north - (np.floor((north - y) / 20.0) + 0.5) * 20.0
        footprint = scene.footprint if scene.footprint is not None else box(*scene.bounds)
        scl = np.where(shapely.contains_xy(footprint, cx, cy), SCL_VEGETATION, SCL_NO_DATA)
        for polygon, scl_class in scene.clouds:
            scl = np.where(shapely.contains_xy(polygon, cx, cy) & (scl != SCL_NO_DATA), scl_class, scl)
        red = np.asarray(scene.red(x, y), dtype=np.float64)
        nir = np.asarray(scene.nir(x, y), dtype=np.float64)
        bright = np.isin(scl, (8, 9, 10))
        red = np.where(bright, CLOUD_RED, red)
        nir = np.where(bright, CLOUD_NIR, nir)
        value = (nir - red) / (nir + red)
        valid = inside_extent & shapely.contains_xy(footprint, x, y) & ~np.isin(scl, mask_classes)
        layers.append(np.where(valid, value, np.nan))
    stack = np.array(layers)
    stack[:, ~shapely.contains_xy(boundary, x, y)] = np.nan
    return stack


def year_request(source, year: int, folder, boundary=BOUNDARY, boundary_crs=BOUNDARY_CRS, max_cloud: float = 50, **options):
    """The request of one year's composite over the city (for ``build_composite``, given the scenes)."""
    from canopy_explorer.plugin.core.sentinel2.composites import CompositeRequest

    return CompositeRequest.create(source, boundary, boundary_crs, [year], max_cloud, folder, **options)


def make_source(url, **changes) -> StacSource:
    """A source for the loopback server: quick retries, GDAL settings as in the shipped config."""
    values = dict(
        url=url, collection=COLLECTION, retries=1, retry_delay_s=0.05, timeout_s=10.0,
        gdal_options={"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif",
                      "GDAL_HTTP_MAX_RETRY": "1", "GDAL_HTTP_RETRY_DELAY": "0", "VSI_CACHE": "TRUE"},
        source="test",
    )
    values.update(changes)
    source = StacSource(**values)
    source.validate()
    return source


@pytest.fixture(scope="module")
def stac_catalogue(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stac_catalogue")
    write_catalogue(folder, list(SPECS.values()))
    return folder


@pytest.fixture
def stac_server(stac_catalogue, tmp_path):
    """The catalogue served by the sample STAC API in its own process, with a request log."""
    with SampleStacServer(stac_catalogue, log=tmp_path / "server" / "requests.jsonl") as server:
        yield server


def read_composite(path):
    import rasterio

    with rasterio.open(path) as dataset:
        return dataset.read(1), dataset.read(2), dataset.profile, dataset
