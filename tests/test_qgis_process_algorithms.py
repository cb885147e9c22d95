"""Every Processing algorithm of the plugin run by the real C++ host, ``qgis_process.bin run``.

The other Processing tests host QGIS in Python, where QGIS's GEOS, GDAL and PROJ are not in the
global symbol namespace; here the plugin runs as on a user's command line (``qgis_process_runner``
says how), so a Python package that clashes with the libraries QGIS loaded fails or crashes here.
Inputs are files a user would have (granules, GeoPackages in a projected CRS, GeoTIFFs, a STAC API,
a saved PostgreSQL connection); outputs are checked against values computed in this process,
independently of the algorithm: brute force over the database or the granules with numpy and
shapely, pixel values from the scenes' reflectance functions, and the engine called directly.
"""

import math
import os
import re
import sqlite3
import warnings
from pathlib import Path

import numpy as np
import pytest
import shapely

import granule_truth
from postgis_fixtures import *  # noqa: F401,F403  (postgis_server)
from qgis_process_runner import QgisProcessProfile, venv_site_packages
from stac_fixtures import BOUNDARY, BOUNDARY_CRS, COLLECTION, SPECS, expected_stack, grid_centres
from sampling_fixtures import (composite_value, in_pixel, pixel_values, read_points, write_composite, write_points,
                               write_utm_raster)
from zonal_fixtures import district_shapes, expected_quantiles, expected_stats, write_composites

UTM = "EPSG:32632"  # the sample granules (45.0..45.3 N, 7.0..7.3 E) and the NDVI scenes are in UTM 32N
START, END = "2020-03-01", "2021-06-30"  # two of the four granules (2020-08-30 and 2021-03-28)
FILTERS = "h_canopy between 5 60\nn_te_photons >= 10"
EPOCH_DAY = np.datetime64("1970-01-01", "D")

pytestmark = pytest.mark.slow  # about 30 s: a dozen qgis_process runs of 1.5-3 s each


# --------------------------------------------------------------------------- inputs a user would have


def to_utm(lon, lat):
    from pyproj import Transformer

    return Transformer.from_crs(4326, 32632, always_xy=True).transform(lon, lat)


def utm_polygon(ring_degrees, holes=()):
    """A polygon whose vertices are given in degrees and stored in UTM: its straight UTM edges are the truth."""
    def ring(points):
        x, y = to_utm(np.array([p[0] for p in points]), np.array([p[1] for p in points]))
        return list(zip(x.tolist(), y.tolist()))

    return shapely.Polygon(ring(ring_degrees), [ring(h) for h in holes])


# A concave forest with a clearing, and a separate stand: the ROI is the union of a layer's features.
FOREST = [
    utm_polygon([(7.04, 45.05), (7.26, 45.06), (7.25, 45.25), (7.15, 45.16), (7.05, 45.24)],
                holes=[[(7.12, 45.08), (7.18, 45.08), (7.18, 45.12), (7.12, 45.12)]]),
    utm_polygon([(7.2, 45.26), (7.29, 45.265), (7.28, 45.295)]),
]
# Districts for the ATL08 statistics: a simple one, one with a hole, a multipolygon, one without segments.
ATL08_DISTRICTS = [
    ("north-west", utm_polygon([(7.01, 45.16), (7.14, 45.15), (7.15, 45.29), (7.02, 45.28)])),
    ("east with lake", utm_polygon([(7.16, 45.02), (7.29, 45.03), (7.28, 45.28), (7.17, 45.27)],
                                   holes=[[(7.2, 45.1), (7.25, 45.1), (7.25, 45.15), (7.2, 45.15)]])),
    ("south pair", shapely.MultiPolygon([utm_polygon([(7.01, 45.01), (7.07, 45.01), (7.07, 45.07), (7.01, 45.07)]),
                                         utm_polygon([(7.09, 45.02), (7.14, 45.02), (7.12, 45.1)])])),
    ("far away", utm_polygon([(8.0, 46.0), (8.01, 46.0), (8.01, 46.01), (8.0, 46.01)])),
]


def write_polygons(path: Path, features, crs_epsg=32632, id_field="name", multi=False):
    """A GeoPackage layer of (id, shapely polygon) pairs, written with OGR as any GIS would."""
    from osgeo import ogr, osr

    path.parent.mkdir(parents=True, exist_ok=True)
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(crs_epsg)
    layer = dataset.CreateLayer(path.stem, srs, ogr.wkbMultiPolygon if multi else ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn(id_field, ogr.OFTString))
    for identifier, geometry in features:
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField(id_field, identifier)
        ogr_geometry = ogr.CreateGeometryFromWkb(shapely.to_wkb(geometry))
        feature.SetGeometry(ogr.ForceToMultiPolygon(ogr_geometry) if multi else ogr_geometry)
        layer.CreateFeature(feature)
    dataset = None
    return path


def read_layer(path, layer=None):
    """(rows as dicts with a shapely ``geometry``, field types by name, CRS authority code) of a vector file."""
    from osgeo import ogr

    dataset = ogr.Open(str(path))
    assert dataset is not None, f"OGR cannot open {path}"
    source = dataset.GetLayerByName(layer) if layer else dataset.GetLayer(0)
    assert source is not None, f"no layer {layer!r} in {path}"
    definition = source.GetLayerDefn()
    fields = [definition.GetFieldDefn(i) for i in range(definition.GetFieldCount())]
    types = {field.GetName(): field.GetTypeName() for field in fields}
    rows = []
    for feature in source:
        row = {name: (feature.GetField(name) if feature.IsFieldSetAndNotNull(name) else None) for name in types}
        geometry = feature.GetGeometryRef()
        row["geometry"] = shapely.from_wkb(bytes(geometry.ExportToIsoWkb())) if geometry is not None else None
        rows.append(row)
    srs = source.GetSpatialRef()
    authority = f"{srs.GetAuthorityName(None)}:{srs.GetAuthorityCode(None)}" if srs is not None else None
    return rows, types, authority


def layer_names(path):
    """The data layers of a GeoPackage (not QGIS's ``layer_styles`` table, which OGR lists too)."""
    from osgeo import ogr

    dataset = ogr.Open(str(path))
    names = (dataset.GetLayer(i).GetName() for i in range(dataset.GetLayerCount()))
    return sorted(name for name in names if name != "layer_styles")


def default_styles(gpkg):
    with sqlite3.connect(str(gpkg)) as connection:
        return {table: qml for table, default, qml in
                connection.execute("SELECT f_table_name, useAsDefault, styleQML FROM layer_styles") if default}


# --------------------------------------------------------------------------- shared, expensive set-up


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    """A private QGIS profile with the plugin linked and enabled, shared by every run in this file."""
    return QgisProcessProfile(tmp_path_factory.mktemp("qgis_process"))


@pytest.fixture(scope="module")
def database_yaml(tmp_path_factory):
    folder = tmp_path_factory.mktemp("atl08_database")
    path = folder / "database.yaml"
    path.write_text(f"tiledb:\n  storage_type: 'local'\n  local_path: '{folder / 'atl08'}'\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def ingested(profile, sample_granules, database_yaml):
    """The first ingest of the sample granule folder into a new database, by qgis_process."""
    return profile.run("atl08_ingest", {"INPUT": Path(sample_granules[0]).parent, "CONFIG": database_yaml}).check()


@pytest.fixture(scope="module")
def database(ingested, database_yaml):
    from canopy_explorer.plugin.core.lidar.config import load_config

    return load_config(database_yaml)


def read_database(config):
    """Every segment in the database, read with TileDB directly (no engine query code): dimensions and a few attributes."""
    import tiledb

    from canopy_explorer.plugin.core.lidar.storage import make_context

    with tiledb.open(config.array_uri, ctx=make_context(config)) as array:
        data = array.query(attrs=["segment_id", "h_canopy", "n_te_photons", "canopy_h_metrics_18"])[:]
    data = {name: np.asarray(values) for name, values in data.items()}
    data["day"] = EPOCH_DAY + data["time"].astype("timedelta64[D]")
    data["year"] = data["day"].astype("datetime64[Y]").astype(int) + 1970
    return data


@pytest.fixture(scope="module")
def segments(database):
    return read_database(database)


def filtered(segments, start=START, end=END):
    """The segments the FILTERS and dates keep, by numpy on the stored values."""
    h = segments["h_canopy"].astype(np.float64)
    keep = (h >= 5) & (h <= 60) & (segments["n_te_photons"] >= 10)
    if start:
        keep &= segments["day"] >= np.datetime64(start, "D")
    if end:
        keep &= segments["day"] <= np.datetime64(end, "D")
    return keep


def inside_utm(geometry, segments):
    x, y = to_utm(segments["longitude"], segments["latitude"])
    return shapely.contains_xy(geometry, x, y)


# --------------------------------------------------------------------------- atl08_ingest


def test_ingest_writes_every_granule_of_the_folder_and_every_segment_they_hold(ingested, sample_granules, segments):
    truth = granule_truth.segments(sample_granules)
    assert ingested.results["GRANULES_WRITTEN"] == len(sample_granules) == 4, ingested.describe()
    assert ingested.results["GRANULES_SKIPPED"] == 0, ingested.describe()
    assert ingested.results["SEGMENTS"] == len(truth["segment_id"]) == len(segments["segment_id"]), ingested.describe()
    assert Path(ingested.results["DATABASE"]).name == "array_uri"
    assert sorted(segments["segment_id"].tolist()) == sorted(truth["segment_id"].tolist())
    by_id = dict(zip(truth["segment_id"].tolist(), zip(truth["lon"].tolist(), truth["lat"].tolist())))
    stored = np.array([by_id[i] for i in segments["segment_id"].tolist()])
    np.testing.assert_allclose(stored, np.column_stack([segments["longitude"], segments["latitude"]]), atol=1e-6)


def test_rerunning_ingest_skips_the_granules_already_in_the_database(profile, ingested, sample_granules, database_yaml, database):
    again = profile.run("atl08_ingest", {"INPUT": Path(sample_granules[0]).parent, "CONFIG": database_yaml}).check()
    assert again.results["GRANULES_WRITTEN"] == 0 and again.results["SEGMENTS"] == 0, again.describe()
    assert again.results["GRANULES_SKIPPED"] == 0, again.describe()
    assert "4 already in the database" in again.log, again.describe()
    stored = read_database(database)["segment_id"]
    assert len(stored) == ingested.results["SEGMENTS"] and len(np.unique(stored)) == len(stored)


# --------------------------------------------------------------------------- atl08_query


def query_parameters(database_yaml, roi, output, **changes):
    parameters = {"CONFIG": database_yaml, "ROI": roi, "START": START, "END": END,
                  "VARIABLES": "h_canopy, canopy_h_metrics:95, n_te_photons", "FILTERS": FILTERS, "OUTPUT": output}
    parameters.update(changes)
    return parameters


def check_query_output(run, segments, expected_mask):
    rows, types, crs = read_layer(run.results["OUTPUT"])
    expected_ids = segments["segment_id"][expected_mask]
    assert len(expected_ids) > 50, "the test region should hold a fair number of segments"
    assert run.results["SEGMENTS"] == len(rows) == len(expected_ids), run.describe()
    assert sorted(r["segment_id"] for r in rows) == sorted(expected_ids.tolist())
    assert crs == "EPSG:4326"
    assert types["segment_id"] == "Integer64" and types["h_canopy"] == "Real" and types["canopy_h_metrics_p95"] == "Real"
    stored = {i: k for k, i in enumerate(segments["segment_id"].tolist())}
    for row in rows:
        k = stored[row["segment_id"]]
        assert row["h_canopy"] == pytest.approx(float(segments["h_canopy"][k]), rel=1e-6)
        assert row["canopy_h_metrics_p95"] == pytest.approx(float(segments["canopy_h_metrics_18"][k]), rel=1e-6)
        assert row["n_te_photons"] == int(segments["n_te_photons"][k])
        where = (segments["longitude"][k], segments["latitude"][k])
        assert (row["geometry"].x, row["geometry"].y) == pytest.approx(where, abs=1e-9)


def test_query_with_a_projected_polygon_layer_returns_exactly_the_segments_inside(profile, database_yaml, segments, tmp_path):
    roi = write_polygons(tmp_path / "forest.gpkg", [("forest", FOREST[0]), ("stand", FOREST[1])])
    run = profile.run("atl08_query", query_parameters(database_yaml, roi, tmp_path / "canopy.gpkg")).check()
    # Brute force in EPSG:4326: the UTM polygons densified (their straight edges are curves in degrees), then
    # reprojected, and every stored segment tested with shapely.
    from pyproj import Transformer

    to_degrees = Transformer.from_crs(32632, 4326, always_xy=True)
    union = shapely.union_all(FOREST)
    degrees = shapely.transform(shapely.segmentize(union, 10.0),
                                lambda xy: np.column_stack(to_degrees.transform(xy[:, 0], xy[:, 1])))
    inside = shapely.contains_xy(degrees, segments["longitude"], segments["latitude"])
    assert inside.sum() < len(inside) / 2  # the polygons, not their bounding box, select
    in_box = shapely.contains_xy(shapely.box(*degrees.bounds), segments["longitude"], segments["latitude"])
    assert (filtered(segments) & in_box & ~inside).sum() > 10  # segments of the box outside the shapes exist and are left out
    check_query_output(run, segments, filtered(segments) & inside)
    assert "graduatedSymbol" in default_styles(run.results["OUTPUT"]).popitem()[1]



def test_a_shapely_built_for_another_geos_is_refused_with_the_fix_instead_of_crashing(tmp_path, database_yaml, ingested):
    """A shapely wheel for another GEOS in front (the PyPI wheel, GEOS 3.13, under QGIS 3.22, which loads 3.11;
    shapely 2.0.7, GEOS 3.11, under QGIS 3.40, which loads 3.13): the grid change with a polygon layer crashed
    qgis_process with a segmentation fault; now the self-check stops it first, saying why."""
    from environment_fixtures import geos_major_minor, packages_with, qgis_geos, shapely_for_another_geos

    spec, other_geos = shapely_for_another_geos()
    mismatched = QgisProcessProfile(tmp_path / "qgis", extra_env={
        "PYTHONPATH": os.pathsep.join([str(packages_with(spec)), venv_site_packages()])})
    roi = write_polygons(tmp_path / "forest.gpkg", [("forest", FOREST[0])])
    run = mismatched.run("atl08_grid_change", {"CONFIG": database_yaml, "ROI": roi, "VARIABLE": "h_canopy",
                                               "PERIOD1_START": "2020-01-01", "PERIOD1_END": "2020-12-31",
                                               "PERIOD2_START": "2021-01-01", "PERIOD2_END": "2021-12-31",
                                               "OUTPUT": tmp_path / "grid.gpkg"})
    assert not run.crashed and run.returncode != 0, run.describe()
    said = run.stderr + run.stdout
    assert f"shapely {spec.split('==')[1]}" in said and f"built for GEOS {other_geos} but QGIS uses GEOS {geos_major_minor(qgis_geos())}" in said
    assert "Install missing packages" in run.stderr + run.stdout
    assert not (tmp_path / "grid.gpkg").exists()

@pytest.mark.parametrize("crs", ["EPSG:4326", UTM])
def test_query_with_an_extent_string_returns_exactly_the_segments_in_the_rectangle(profile, database_yaml, segments,
                                                                                   tmp_path, crs):
    if crs == "EPSG:4326":
        xmin, xmax, ymin, ymax = 7.08, 7.22, 45.07, 45.21
        inside = ((segments["longitude"] >= xmin) & (segments["longitude"] <= xmax)
                  & (segments["latitude"] >= ymin) & (segments["latitude"] <= ymax))
    else:  # a rectangle in UTM is a polygon on the ground: tested in UTM
        xmin, ymin = (round(v, 1) for v in to_utm(7.08, 45.07))
        xmax, ymax = (round(v, 1) for v in to_utm(7.22, 45.21))
        inside = inside_utm(shapely.box(xmin, ymin, xmax, ymax), segments)
    run = profile.run("atl08_query", query_parameters(database_yaml, f"{xmin},{xmax},{ymin},{ymax} [{crs}]",
                                                      tmp_path / "extent.fgb")).check()
    check_query_output(run, segments, filtered(segments) & inside)


# --------------------------------------------------------------------------- atl08_nearest


@pytest.mark.parametrize("num_shots, radius_m, limited_by", [(25, 5000.0, "NUM_SHOTS"), (1000, 400.0, "RADIUS_M")])
def test_nearest_returns_the_closest_segments_sorted_within_the_radius(profile, database_yaml, segments, tmp_path,
                                                                       num_shots, radius_m, limited_by):
    from pyproj import Geod, Transformer

    # a point 150 m east of the segment nearest the region's centre, given in UTM as a user's map would
    keep = filtered(segments, start=None, end=None)
    centre = np.argmin(np.hypot(segments["longitude"] - 7.15, segments["latitude"] - 45.15) + np.where(keep, 0, 1e9))
    x, y = (float(v) for v in to_utm(segments["longitude"][centre], segments["latitude"][centre]))
    x += 150.0
    lon, lat = Transformer.from_crs(32632, 4326, always_xy=True).transform(x, y)
    run = profile.run("atl08_nearest", {"CONFIG": database_yaml, "POINT": f"{x!r},{y!r} [{UTM}]", "NUM_SHOTS": num_shots,
                                        "RADIUS_M": radius_m, "VARIABLES": "h_canopy", "FILTERS": FILTERS,
                                        "OUTPUT": tmp_path / "nearest.gpkg"}).check()
    rows, types, crs = read_layer(run.results["OUTPUT"])
    distances = np.array([r["distance_m"] for r in rows])
    assert types["distance_m"] == "Real" and crs == "EPSG:4326"
    assert len(rows) == run.results["SEGMENTS"] <= num_shots, run.describe()
    assert np.all(np.diff(distances) >= 0), "distance_m is not sorted"
    assert distances.max() <= radius_m

    _, _, truth = Geod(ellps="WGS84").inv(np.full(keep.sum(), lon), np.full(keep.sum(), lat),
                                          segments["longitude"][keep], segments["latitude"][keep])
    within = truth <= radius_m
    order = np.argsort(truth[within], kind="stable")[:num_shots]
    expected_ids = segments["segment_id"][keep][within][order]
    if limited_by == "NUM_SHOTS":
        assert within.sum() > num_shots  # more segments in the radius than asked for
    else:
        assert 0 < within.sum() < num_shots  # the radius, not the count, limits
    assert [r["segment_id"] for r in rows] == expected_ids.tolist()
    np.testing.assert_allclose(distances, truth[within][order], atol=1e-3)


# --------------------------------------------------------------------------- atl08_grid_change


GRID_PERIODS = (("2020-01-01", "2020-12-31"), ("2021-01-01", "2021-12-31"))


def test_grid_change_with_a_polygon_layer_counts_the_segments_of_each_hexagon_as_the_engine_does(
        profile, database_yaml, database, segments, tmp_path):
    import pandas as pd
    from pyproj import Transformer

    from canopy_explorer.plugin.core.lidar.database import Atl08Database
    from canopy_explorer.plugin.core.grid.equal_area_grid import EQUAL_EARTH
    from canopy_explorer.plugin.core.grid.change import FIELDS, GridChangeRequest, grid_change

    roi = write_polygons(tmp_path / "forest.gpkg", [("forest", FOREST[0]), ("stand", FOREST[1])])
    (p1_start, p1_end), (p2_start, p2_end) = GRID_PERIODS
    run = profile.run("atl08_grid_change", {
        "CONFIG": database_yaml, "ROI": roi, "VARIABLE": "h_canopy", "PERIOD1_START": p1_start, "PERIOD1_END": p1_end,
        "PERIOD2_START": p2_start, "PERIOD2_END": p2_end, "CELL_SIZE_KM": 4, "MIN_SHOTS": 3,
        "FILTERS": "h_canopy between 5 60", "OUTPUT": tmp_path / "change.gpkg"}).check()
    rows, types, crs = read_layer(run.results["OUTPUT"], "grid_change")
    assert crs == "EPSG:8857"
    assert {name: types[name] for name in FIELDS} == {
        "count_p1": "Integer64", "median_p1": "Real", "mean_p1": "Real",
        "count_p2": "Integer64", "median_p2": "Real", "mean_p2": "Real", "change": "Real"}
    assert run.results["CELLS"] == len(rows) >= 3, run.describe()

    # Independently: the segments of each period inside the ROI, projected to Equal Earth, counted per output hexagon.
    h = segments["h_canopy"].astype(np.float64)
    in_roi = inside_utm(shapely.union_all(FOREST), segments) & (h >= 5) & (h <= 60)
    x, y = Transformer.from_crs(4326, 8857, always_xy=True).transform(segments["longitude"], segments["latitude"])
    totals = []
    for period, (start, end) in enumerate(GRID_PERIODS, start=1):
        in_period = in_roi & (segments["day"] >= np.datetime64(start)) & (segments["day"] <= np.datetime64(end))
        totals.append(int(in_period.sum()))
        for row in rows:
            values = h[in_period & shapely.contains_xy(row["geometry"], x, y)]
            assert row[f"count_p{period}"] == len(values) >= 3
            assert row[f"mean_p{period}"] == pytest.approx(values.mean(), abs=1e-4)
            assert abs(row[f"median_p{period}"] - np.median(values)) <= 0.025
    for row in rows:
        assert row["change"] == pytest.approx(row["median_p2"] - row["median_p1"], abs=1e-9)
    counted = [int(n.replace(",", "")) for n in re.search(r"([\d,]+) and ([\d,]+) segments in", run.log).groups()]
    assert counted == totals, run.describe()
    assert sum(r["count_p1"] for r in rows) <= totals[0] and sum(r["count_p2"] for r in rows) <= totals[1]

    # ... and exactly what the engine computes when called in this process.
    engine = grid_change(GridChangeRequest.create(Atl08Database(database), roi=shapely.union_all(FOREST), roi_crs=UTM,
                                                  variable="h_canopy", periods=GRID_PERIODS, cell_size_km=4.0, grid_crs=EQUAL_EARTH,
                                                  min_shots=3, filters="h_canopy between 5 60"))
    expected = pd.DataFrame({"cell_id": engine.cell, **engine.columns}).set_index("cell_id").sort_index()
    written = pd.DataFrame([{k: r[k] for k in ("cell_id",) + FIELDS} for r in rows]).set_index("cell_id").sort_index()
    assert list(written.index) == list(expected.index)
    for name in FIELDS:
        np.testing.assert_allclose(written[name].to_numpy(dtype=float), expected[name].to_numpy(dtype=float), rtol=1e-12,
                                   err_msg=name)
    assert set(default_styles(run.results["OUTPUT"])) == {"grid_change"}


# --------------------------------------------------------------------------- ndvi_composite

NDVI_SCENES = ("G_2022", "A_2023", "B_2023", "C_2023", "D_2023", "F_2023")  # D: 80 % cloud; F: 60 km away


@pytest.fixture(scope="module")
def stac_api(tmp_path_factory):
    """A small catalogue served by the sample STAC API in its own process (a server thread here could deadlock GDAL)."""
    from canopy_explorer.plugin.core.samples.scenes import write_catalogue
    from canopy_explorer.plugin.core.samples.stac_server import SampleStacServer

    folder = tmp_path_factory.mktemp("stac")
    write_catalogue(folder / "catalogue", [SPECS[i] for i in NDVI_SCENES])
    with SampleStacServer(folder / "catalogue", log=folder / "requests.jsonl") as server:
        yield server


@pytest.fixture(scope="module")
def ndvi_run(profile, stac_api, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ndvi")
    boundary = write_polygons(folder / "city.gpkg", [("city", BOUNDARY)])
    run = profile.run("ndvi_composite", {"ROI": boundary, "YEARS": "2022, 2023", "STAC_URL": stac_api.url,
                                         "COLLECTION": COLLECTION, "MAX_CLOUD": 50, "OUTPUT_FOLDER": folder / "composites"})
    return run.check(), folder


def read_bands(path):
    import rasterio

    with rasterio.open(path) as dataset:
        return dataset.read(1), dataset.read(2), dataset.profile, dataset.nodatavals, dataset.transform


def test_ndvi_composite_writes_one_float_geotiff_per_year_with_nan_nodata_and_values_in_range(ndvi_run):
    run, folder = ndvi_run
    paths = sorted(run.results["COMPOSITES"])
    assert [Path(p).name for p in paths] == ["ndvi_composite_2022.tif", "ndvi_composite_2023.tif"], run.describe()
    for path in paths:
        median, count, profile, nodata, _ = read_bands(path)
        assert profile["count"] == 2 and profile["dtype"] == "float32" and profile["crs"].to_epsg() == 32632
        assert len(nodata) == 2 and all(math.isnan(v) for v in nodata)
        valid = np.isfinite(median)
        assert valid.sum() > 20_000 and (~valid).sum() > 1_000  # inside the city, and NaN around it
        assert (median[valid] >= -1).all() and (median[valid] <= 1).all()
        scenes = 1 if path.endswith("2022.tif") else 3
        assert (count[valid] >= 1).all() and (count[valid] <= scenes).all()
        assert np.isnan(median[np.isnan(count)]).all()  # outside the city: no count, no median
        observed = count[np.isfinite(count)]
        assert (observed == np.round(observed)).all()
        assert Path(path).with_suffix(".qml").exists()  # the style beside the file


def test_ndvi_composite_matches_the_engine_in_process_and_the_scene_reflectances(ndvi_run, stac_api):
    from canopy_explorer.plugin.core.sentinel2.composites import CompositeRequest, composite_years
    from canopy_explorer.plugin.core.sentinel2.stac_search import default_stac_source

    run, folder = ndvi_run
    source = default_stac_source(url=stac_api.url, collection=COLLECTION)  # as the algorithm builds it
    reports = composite_years(CompositeRequest.create(source, BOUNDARY, BOUNDARY_CRS, [2022, 2023], 50, folder / "engine"))
    for report, path in zip(reports, sorted(run.results["COMPOSITES"])):
        median, count, _, _, transform = read_bands(path)
        expected_median, expected_count, _, _, expected_transform = read_bands(report.path)
        assert transform == expected_transform
        np.testing.assert_array_equal(median, expected_median)
        np.testing.assert_array_equal(count, expected_count)

        # from the scenes' reflectance functions, not the engine: 2022 is one scene, 2023 the median of three
        x, y = grid_centres(transform, median.shape)
        ids = ["G_2022"] if report.year == 2022 else ["A_2023", "B_2023", "C_2023"]
        stack = expected_stack(ids, x, y)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # nanmedian of the all-NaN pixels outside the city
            truth = np.nanmedian(stack, axis=0)
        np.testing.assert_allclose(median, truth, rtol=2e-6, atol=2e-7, equal_nan=True)
        assert report.scenes_used == tuple(ids)


# --------------------------------------------------------------------------- zonal_stats

ZONAL_YEARS = (2019, 2020, 2021)
STAT_FIELDS = ("min_ndvi", "max_ndvi", "mean_ndvi", "stddev_ndvi", "median_ndvi", "p10_ndvi", "p90_ndvi")


@pytest.fixture(scope="module")
def zonal_inputs(tmp_path_factory):
    """Composites as GeoTIFF files and districts (ids with quotes, spaces and SQL; a hole; a bow-tie) in a GeoPackage."""
    folder = tmp_path_factory.mktemp("zonal")
    composites = write_composites(folder / "composites", ZONAL_YEARS)
    districts = write_polygons(folder / "districts.gpkg", district_shapes(), id_field="district code", multi=True)
    return composites, districts, folder


def zonal_parameters(zonal_inputs, output, database=""):
    composites, districts, _ = zonal_inputs
    return {"DISTRICTS": districts, "ID_FIELD": "district code", "RASTERS": [str(composites[y]) for y in ZONAL_YEARS],
            "DATABASE": database, "CLASSES": 5, "OUTPUT": output}


@pytest.fixture(scope="module")
def embedded_stats(profile, zonal_inputs):
    _, _, folder = zonal_inputs
    parameters = zonal_parameters(zonal_inputs, folder / "embedded.gpkg")
    return profile.run("zonal_stats", dict(parameters, GEOJSON=folder / "latest.geojson")).check()


def rows_by_id(gpkg, table, id_field="district code"):
    rows, _, _ = read_layer(gpkg, table)
    return {row[id_field]: row for row in rows}


def test_zonal_stats_embedded_gives_numpy_statistics_per_district_and_year_in_styled_tables(embedded_stats, zonal_inputs):
    composites, _, _ = zonal_inputs
    output = embedded_stats.results["OUTPUT"]
    tables = [f"ndvi_stats_{y}" for y in ZONAL_YEARS] + ["ndvi_stats_latest", "ndvi_stats_change"]
    assert layer_names(output) == sorted(tables)
    assert sorted(embedded_stats.results["LAYERS"]) == sorted(f"{output}|layername={t}" for t in tables)
    shapes = dict(district_shapes())
    for year in ZONAL_YEARS:
        rows = rows_by_id(output, f"ndvi_stats_{year}")
        assert set(rows) == set(shapes)
        for district, geometry in shapes.items():
            count, low, high, mean, std = expected_stats(composites[year], geometry)
            assert rows[district]["pixel_count"] == count, (year, district)
            assert rows[district]["year"] == year
            quantiles = expected_quantiles(composites[year], geometry)
            for field, value in zip(STAT_FIELDS, (low, high, mean, std) + quantiles):
                if count:
                    assert rows[district][field] == pytest.approx(value, abs=1e-6), (year, district, field)
                else:
                    assert rows[district][field] is None, (year, district, field)
    latest = rows_by_id(output, "ndvi_stats_latest")
    assert latest['G old only']["year"] == 2019 and latest['A "simple"']["year"] == 2021
    styles = default_styles(output)
    assert set(styles) == set(tables) and all("graduatedSymbol" in qml for qml in styles.values())
    geojson, _, crs = read_layer(embedded_stats.results["GEOJSON"])
    assert crs == "EPSG:4326" and len(geojson) == len(shapes)
    assert all(9 < row["geometry"].centroid.x < 10 and 51 < row["geometry"].centroid.y < 52 for row in geojson if row["geometry"])


@pytest.fixture
def fresh_postgis_database(postgis_server):
    """A database of its own on the shared server: zonal_stats writes to the public schema, where other test files'
    runs would otherwise leave years that the latest and change tables take in."""
    name = "qgis_process_zonal"
    with postgis_server.admin_connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name} OWNER {postgis_server.user}")
    with postgis_server.admin_connect(name) as admin:
        admin.execute("CREATE EXTENSION postgis")
        admin.execute("CREATE EXTENSION postgis_raster")
    yield name
    with postgis_server.admin_connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_zonal_stats_in_postgis_through_a_saved_connection_agrees_with_embedded(profile, zonal_inputs, embedded_stats,
                                                                                postgis_server, fresh_postgis_database):
    from qgis.PyQt.QtCore import QSettings

    _, _, folder = zonal_inputs
    # qgis_process reads saved connections from the profile's QGIS3.ini: the connection is saved there, with its
    # password, only for this run (the profile is in the test's temporary folder) and removed straight after.
    settings = QSettings(str(profile.settings_file), QSettings.Format.IniFormat)
    key = "PostgreSQL/connections/canopy test server"
    for name, value in {"host": postgis_server.host, "port": str(postgis_server.port), "database": fresh_postgis_database,
                        "username": postgis_server.user, "password": postgis_server.password, "saveUsername": "true",
                        "savePassword": "true", "sslmode": "SslDisable", "authcfg": "", "service": ""}.items():
        settings.setValue(f"{key}/{name}", value)
    settings.sync()
    try:
        run = profile.run("zonal_stats", zonal_parameters(zonal_inputs, folder / "postgis.gpkg", "canopy test server")).check()
    finally:
        settings.remove(key)
        settings.sync()
    assert postgis_server.password not in profile.settings_file.read_text(encoding="utf-8")
    assert postgis_server.password not in run.stdout + run.stderr
    assert f"PostGIS {postgis_server.user}@{postgis_server.host}:{postgis_server.port}/{fresh_postgis_database}" in run.log, \
        run.describe()

    output = run.results["OUTPUT"]
    with postgis_server.admin_connect(fresh_postgis_database) as connection:  # computed in the database, kept there
        in_table = dict(connection.execute('SELECT "district code", pixel_count FROM public.ndvi_stats_2021').fetchall())
    assert in_table == {district: row["pixel_count"] for district, row in rows_by_id(output, "ndvi_stats_2021").items()}
    assert layer_names(output) == layer_names(embedded_stats.results["OUTPUT"])
    for table in layer_names(output):  # every field of every row, the change table included
        embedded = rows_by_id(embedded_stats.results["OUTPUT"], table)
        in_database = rows_by_id(output, table)
        assert set(embedded) == set(in_database), table
        for district, row in embedded.items():
            other = in_database[district]
            assert set(other) == set(row), table
            for field, value in row.items():
                where = (table, district, field)
                if field == "geometry":
                    assert shapely.symmetric_difference(value, other[field]).area <= 1e-6 * max(value.area, 1.0), where
                elif value is None or isinstance(value, (str, int)):
                    assert other[field] == value, where
                else:
                    assert other[field] == pytest.approx(value, abs=1e-6), where


# --------------------------------------------------------------------------- atl08_district_stats


def test_atl08_district_stats_counts_and_summarises_the_segments_inside_each_district_per_year(
        profile, database_yaml, segments, tmp_path):
    districts = write_polygons(tmp_path / "districts.gpkg", ATL08_DISTRICTS, id_field="district", multi=True)
    run = profile.run("atl08_district_stats", {
        "DISTRICTS": districts, "ID_FIELD": "district", "CONFIG": database_yaml, "VARIABLE": "h_canopy",
        "START": "2020-01-01", "END": "2021-12-31", "FILTERS": FILTERS, "CLASSES": 4,
        "OUTPUT": tmp_path / "canopy_stats.gpkg"}).check()
    output = run.results["OUTPUT"]
    keep = filtered(segments, "2020-01-01", "2021-12-31")
    years = sorted(set(segments["year"][keep].tolist()))
    assert years == [2020, 2021]
    tables = [f"h_canopy_stats_{y}" for y in years] + ["h_canopy_stats_latest", "h_canopy_stats_change"]
    assert layer_names(output) == sorted(tables)
    h = segments["h_canopy"].astype(np.float64)
    for year in years:
        rows = rows_by_id(output, f"h_canopy_stats_{year}", "district")
        assert set(rows) == {name for name, _ in ATL08_DISTRICTS}
        for name, geometry in ATL08_DISTRICTS:
            values = h[keep & (segments["year"] == year) & inside_utm(geometry, segments)]
            row = rows[name]
            assert row["segment_count"] == len(values), (year, name)
            if len(values):
                assert row["median_h_canopy"] == pytest.approx(np.median(values), abs=1e-6), (year, name)
                assert row["mean_h_canopy"] == pytest.approx(values.mean(), abs=1e-6), (year, name)
                assert row["p95_h_canopy"] == pytest.approx(np.percentile(values, 95), abs=1e-6), (year, name)
            else:
                assert row["median_h_canopy"] is None, (year, name)
        assert sum(r["segment_count"] for r in rows.values()) > 100
    assert rows_by_id(output, f"h_canopy_stats_{years[0]}", "district")["far away"]["segment_count"] == 0
    styles = default_styles(output)
    assert set(styles) == set(tables) and all("graduatedSymbol" in qml for qml in styles.values())


# --------------------------------------------------------------------------- atl08_sample_rasters


def test_sample_rasters_adds_each_pixel_value_and_each_segments_yearly_composite(profile, tmp_path):
    places = [in_pixel(0.5, 0.5), in_pixel(3.5, 4.5), in_pixel(400, 400)]  # the last one is outside every raster
    times = ["2020-05-01T10:00:00", "2021-05-01T10:00:00", "2021-05-01T10:00:00"]
    points = write_points(tmp_path / "segments.gpkg", places, times)
    raster = write_utm_raster(tmp_path / "cover.tif")
    run = profile.run("atl08_sample_rasters", {"INPUT": points, "MODE": 0, "RASTERS": [raster], "BAND": 2,
                                               "OUTPUT": tmp_path / "with_cover.gpkg"}).check()
    rows = read_points(run.results["OUTPUT"])
    values = pixel_values()
    assert [rows[i]["cover"] for i in (1000, 1001, 1002)] == [-float(values[0, 0]), -float(values[3, 4]), None]
    composites = [write_composite(tmp_path, year) for year in (2020, 2021)]
    run = profile.run("atl08_sample_rasters", {"INPUT": points, "MODE": 1, "RASTERS": composites,
                                               "OUTPUT": tmp_path / "with_ndvi.fgb"}).check()
    rows = read_points(run.results["OUTPUT"])
    assert [rows[i]["ndvi"] for i in (1000, 1001, 1002)] == [pytest.approx(composite_value(2020)),
                                                             pytest.approx(composite_value(2021)), None]
