"""The plugin in desktop QGIS, installed the way the README says, used the way a user uses it.

A fresh profile; the plugin installed from the built zip with QGIS's own "Install from ZIP"; its
missing packages installed by the plugin's own installer from the package index (the load-time
warning's button); then every workflow driven through the dialog's widgets on the real application
under Xvfb (tests/desktop/driver.py). QGIS runs as users run it: Debian's ``qgis`` with its own
Python, nothing of the test's virtualenv visible. The results are checked here against numbers
computed from the inputs, independently of the plugin.
"""

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import Geod, Transformer
from shapely.geometry import box

from conftest import ROOT
from postgis_fixtures import running_postgis

LAUNCHER = ROOT / "tests" / "desktop" / "launch.py"
SESSION_TIMEOUT = 1500  # seconds for the whole QGIS session (a cold pip cache included)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(SESSION_TIMEOUT + 300)]
REGION = (50.60, 50.90, 9.60, 9.90)  # lat min, lat max, lon min, lon max of the sample granules
START, END = "2019-01-01", "2024-12-31"
FILTERS = "h_canopy between 5 60"
NEAREST = {"point": [9.75, 50.75], "count": 7, "radius_m": 1500}
SCREENSHOTS = Path(os.environ.get("CANOPY_SCREENSHOT_DIR", ROOT / "build" / "desktop" / "screenshots")).resolve()


def _utm(geometry, inverse=False):
    transformer = Transformer.from_crs("EPSG:4326", "EPSG:32632", always_xy=True)
    if inverse:
        transformer = Transformer.from_crs("EPSG:32632", "EPSG:4326", always_xy=True)
    return shapely.transform(shapely.segmentize(geometry, 10.0 if not inverse else 10.0),
                             lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def _write_polygons(path, polygons, crs="EPSG:32632", fields=None):
    from osgeo import ogr, osr

    driver = ogr.GetDriverByName("GPKG")
    source = driver.CreateDataSource(str(path))
    reference = osr.SpatialReference()
    reference.SetFromUserInput(crs)
    layer = source.CreateLayer(path.stem, reference, ogr.wkbMultiPolygon)
    for name in (fields or {}):
        layer.CreateField(ogr.FieldDefn(name, ogr.OFTString))
    for index, polygon in enumerate(polygons):
        feature = ogr.Feature(layer.GetLayerDefn())
        for name, values in (fields or {}).items():
            feature.SetField(name, values[index])
        feature.SetGeometry(ogr.CreateGeometryFromWkb(shapely.to_wkb(shapely.MultiPolygon([polygon]))))
        layer.CreateFeature(feature)
    source = None


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Granules and their database, a STAC catalogue over a city in the same landscape, districts."""
    from canopy_explorer.plugin.core.lidar.config import local_config
    from canopy_explorer.plugin.core.lidar.ingest import ingest_granules
    from canopy_explorer.plugin.core.samples.granules import generate_granules
    from canopy_explorer.plugin.core.samples.scenes import generate_sample_catalogue

    folder = tmp_path_factory.mktemp("desktop")
    granules = generate_granules(folder / "granules", region=REGION, start=dt.date(2019, 3, 1), end=dt.date(2023, 11, 30),
                                 n_tracks=6, seed=11)
    config = local_config(folder / "db")
    ingest_granules(config, granules, workers=1)
    catalogue = generate_sample_catalogue(folder / "stac", region=REGION, years=(2019, 2024), scenes_per_year=2,
                                          size_km=3.0, boundary_km=2.0, seed=5)
    city = catalogue.boundary  # in catalogue.boundary_crs (UTM 32N)
    _write_polygons(folder / "city.gpkg", [city], catalogue.boundary_crs)
    west, south, east, north = city.bounds
    thirds = [box(west + i * (east - west) / 3, south, west + (i + 1) * (east - west) / 3, north).intersection(city)
              for i in range(3)]
    _write_polygons(folder / "districts.gpkg", thirds, catalogue.boundary_crs,
                    {"district_code": ["D-01", "D-02", "D-03"], "name": ["Altstadt", "Nordend", "Südhang"]})
    stands = [_utm(box(9.66, 50.64, 9.74, 50.70)), _utm(shapely.Point(9.82, 50.80).buffer(0.03, 16))]
    _write_polygons(folder / "stands.gpkg", stands)
    return {"folder": folder, "database": str(folder / "db"), "array": config.array_uri, "catalogue": catalogue,
            "city": str(folder / "city.gpkg"), "districts": str(folder / "districts.gpkg"), "stands": str(folder / "stands.gpkg"),
            "stands_wgs84": shapely.union_all([_utm(s, inverse=True) for s in stands])}


def _plugin_zip(folder: Path) -> Path:
    target = folder / "canopy_explorer.zip"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "package_plugin.py"), "zip", str(target)], check=True)
    return target


def _user_environment() -> dict:
    """The environment a user's QGIS starts with: nothing of this test's virtualenv; the package index settings kept."""
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "QT_QPA_PLATFORM")}
    venv_bin = str(ROOT / ".venv" / "bin")
    environment["PATH"] = os.pathsep.join(p for p in environment.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return environment


@pytest.fixture(scope="module")
def session(world, tmp_path_factory):
    """One desktop QGIS session through every workflow; its results, exit status and output folder."""
    from canopy_explorer.plugin.core.samples.stac_server import SampleStacServer

    folder = tmp_path_factory.mktemp("session")
    out = folder / "out"
    out.mkdir()
    with running_postgis() as server, SampleStacServer(world["catalogue"].folder) as stac:
        plan = {
            "zip": str(_plugin_zip(folder)), "results": str(folder / "results.json"), "screenshots": str(SCREENSHOTS),
            "output": str(out), "database": world["database"], "variables": ["h_canopy", "canopy_h_metrics:95"],
            "start": START, "end": END, "filters": FILTERS,
            "view_wgs84": [9.55, 50.58, 9.95, 50.92],
            "rectangle_wgs84": [9.64, 50.66, 9.78, 50.76],
            "polygon_wgs84": [[9.65, 50.70], [9.80, 50.64], [9.86, 50.78], [9.74, 50.86], [9.63, 50.80]],
            "extent_view_wgs84": [9.70, 50.70, 9.80, 50.80],
            "roi_layer": world["stands"], "nearest": NEAREST,
            "ndvi_boundary": world["city"], "stac_url": stac.url, "collection": world["catalogue"].collection,
            "ndvi_years": ",".join(str(y) for y in world["catalogue"].years), "max_cloud": 30.0,
            "districts": world["districts"], "district_id_field": "district_code",
            "postgres": {"name": "canopy desktop test", "host": server.host, "port": server.port, "dbname": server.dbname,
                         "user": server.user, "password": server.password, "master_password": "desktop-test-master"},
            "answers": {"save the changes": "Discard", "temporary layers": "Yes", "sample database is not on this computer": "Yes"},
            "sample_view_wgs84": [9.9, 50.9, 10.1, 51.1],
            "periods": [["2019-01-01", "2020-12-31"], ["2021-01-01", "2023-12-31"]], "cell_size_km": 5.0,
        }
        plan_path = folder / "plan.json"
        plan_path.write_text(json.dumps(plan, indent=1))
        environment = dict(_user_environment(), CANOPY_DESKTOP_PLAN=str(plan_path), CANOPY_DESKTOP_TESTS=str(ROOT / "tests"))
        command = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "/usr/bin/qgis", "--profiles-path", str(folder / "profiles"),
                   "--noversioncheck", "--nologo", "--code", str(LAUNCHER)]
        returncode = _run_session(command, environment, folder)
        results = json.loads((folder / "results.json").read_text()) if (folder / "results.json").exists() else {}
        launch_error = folder / "launch_error.txt"
        if launch_error.exists():
            results["driver_error"] = launch_error.read_text()
        yield {"returncode": returncode, "results": results, "plan": plan, "folder": folder,
               "log": (folder / "qgis.log").read_text(errors="replace"), "postgres": server}


def _run_session(command, environment, folder) -> int:
    """Run QGIS under Xvfb; past SESSION_TIMEOUT the whole process group (xvfb-run, Xvfb, QGIS) is killed."""
    import signal

    with open(folder / "qgis.log", "w") as log:
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT, cwd=folder,
                                   start_new_session=True)
        try:
            return process.wait(SESSION_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return -signal.SIGKILL


def step(session, name):
    found = session["results"].get("steps", {}).get(name)
    assert found is not None, f"the driver never reached {name}: {session['results'].get('driver_error')}\n{session['log'][-3000:]}"
    assert found["ok"], f"{name} failed in QGIS: {found['error']}\n{found['traceback']}"
    return found["result"]


def _segments(array_uri):
    """Every segment in the database: read with TileDB directly, not through the plugin."""
    import tiledb

    with tiledb.open(array_uri) as array:
        data = array.query(attrs=["segment_id", "h_canopy"], dims=["latitude", "longitude", "time"])[:]
    return data


def _expected_ids(world, region_wgs84):
    data = _segments(world["array"])
    start = (np.datetime64(START) - np.datetime64("1970-01-01")).astype(int)
    end = (np.datetime64(END) - np.datetime64("1970-01-01")).astype(int)
    keep = (data["time"] >= start) & (data["time"] <= end) & (data["h_canopy"] >= 5) & (data["h_canopy"] <= 60)
    inside = shapely.contains_xy(region_wgs84, data["longitude"], data["latitude"])
    return set(data["segment_id"][keep & inside].tolist())


def _region_wgs84(roi):
    if "bbox" in roi:
        geometry = box(*roi["bbox"])
    else:
        geometry = shapely.from_wkt(roi["wkt"])
    if roi["crs"] == "EPSG:4326":
        return geometry
    return _utm(geometry, inverse=True) if roi["crs"] == "EPSG:32632" else pytest.fail(f"unexpected CRS {roi['crs']}")


# 1366 x 768 less what a desktop takes (Xvfb has no window manager, so no frame is measured): a window frame
# (2 x 8 px), a title bar (30 px) and a panel or task bar (40 px).
SCREEN_LEFT = (1366 - 16, 768 - 30 - 40 - 8)


def test_every_panel_fits_a_1366_by_768_screen_with_the_desktop_fonts_and_no_tab_bar_scrolls(session):
    layout = step(session, "layout")
    assert set(layout["panels"]) == {"ATL08 query", "Nearest shots", "Grid change", "NDVI composites", "District statistics",
                                     "Sample rasters"}
    for title, panel in layout["panels"].items():
        for size in (panel["hint"], panel["minimum"]):
            assert size[0] <= SCREEN_LEFT[0] and size[1] <= SCREEN_LEFT[1], (title, panel)
        for bar in panel["tab_bars"]:
            assert len(bar["tabs"]) <= 5 and bar["needs"] <= bar["has"], (title, bar)
    opened = layout["opened"]
    assert opened["width"] <= SCREEN_LEFT[0] and opened["height"] <= SCREEN_LEFT[1], opened


def test_qgis_ran_every_workflow_and_quit_without_a_crash(session):
    assert session["results"].get("done"), session["results"].get("driver_error") or session["log"][-3000:]
    assert session["returncode"] == 0, f"QGIS exited with {session['returncode']}\n{session['log'][-3000:]}"


def test_the_plugin_installs_from_the_zip_and_its_packages_from_its_own_installer(session):
    assert "canopy_explorer" in step(session, "install_plugin_from_zip")["plugins"]
    warning = step(session, "load_time_warning")
    assert warning is not None, "no load-time warning although the fresh profile has none of the pip packages"
    assert "missing Python packages: tiledb, shapely, pystac-client" in warning["text"]
    assert set(warning["buttons"]) == {"CanopyExplorerInstallPackages", "CanopyExplorerDependencyDetails"}
    installed = step(session, "install_missing_packages")
    assert installed["ok"], installed["message"] + "\n" + installed["log_tail"]
    assert "Canopy Explorer is ready" in installed["summary"]
    assert not any("cannot run yet" in text for text in installed["message_bar"])  # the warning is gone
    folder = installed["folder"]
    assert folder.startswith(str(session["folder"] / "profiles" / "profiles" / "default"))
    for name in ("tiledb", "shapely", "pystac-client"):
        assert installed["locations"][name] == folder, name
    from environment_fixtures import expected_shapely

    assert installed["versions"]["shapely"] == expected_shapely()  # the wheel whose GEOS is QGIS's (2.0.7 for 3.22)
    for name in ("numpy", "h5py", "rasterio", "pyproj", "pandas"):
        assert installed["locations"][name].startswith("/usr/lib/python3/"), name


@pytest.mark.parametrize("name", ["rectangle_region", "polygon_region", "canvas_extent_utm", "layer_region"])
def test_each_kind_of_region_returns_exactly_the_segments_inside_it(session, world, name):
    result = step(session, name)
    [layer] = result["layers"]
    region = _region_wgs84(result["roi"])
    if name == "layer_region":
        assert region.symmetric_difference(world["stands_wgs84"]).area < 1e-6 * region.area
    expected = _expected_ids(world, region)
    assert expected, "the region was meant to hold segments"
    assert set(layer["segment_ids"]) == expected
    assert layer["features"] == len(expected)
    if result["output"]:  # written to the file the user chose, and loaded from it
        from osgeo import ogr

        source = ogr.Open(result["output"])
        assert {feature.GetField("segment_id") for feature in source.GetLayer(0)} == expected
        source = None


def test_the_canvas_extent_region_is_the_utm_view_and_not_its_bounding_box_in_degrees(session):
    roi = step(session, "canvas_extent_utm")["roi"]
    assert roi["crs"] == "EPSG:32632"


def test_nearest_shots_are_the_closest_segments_by_geodesic_distance_and_are_exported(session, world):
    result = step(session, "nearest_shots")
    data = _segments(world["array"])
    start = (np.datetime64(START) - np.datetime64("1970-01-01")).astype(int)
    end = (np.datetime64(END) - np.datetime64("1970-01-01")).astype(int)
    keep = (data["time"] >= start) & (data["time"] <= end) & (data["h_canopy"] >= 5) & (data["h_canopy"] <= 60)
    lon, lat = NEAREST["point"]
    _, _, distance = Geod(ellps="WGS84").inv(np.full(keep.sum(), lon), np.full(keep.sum(), lat),
                                             data["longitude"][keep], data["latitude"][keep])
    order = np.argsort(distance)[: NEAREST["count"]]
    order = order[distance[order] <= NEAREST["radius_m"]]
    expected = data["segment_id"][keep][order].tolist()
    rows = result["rows"]
    assert [segment for segment, _ in sorted(rows, key=lambda r: r[1])] == expected
    np.testing.assert_allclose(sorted(d for _, d in rows), distance[order], atol=0.5)
    exported = json.loads(Path(result["export"]).read_text())
    assert len(exported["features"]) == len(rows)
    assert result["status"].startswith(f"Loaded {len(rows)} segments") and result["query_status"] != result["status"]


def test_ndvi_composites_come_from_the_loopback_stac_api_and_load_as_layers(session, world):
    import rasterio

    result = step(session, "ndvi_composites")
    years = world["catalogue"].years
    assert sorted(Path(p).name for p in result["rasters"]) == [f"ndvi_composite_{y}.tif" for y in years]
    assert "ndvi_composite_" in result["status"] and "ndvi" not in result["query_status"].lower()  # each on its own panel
    for path in result["rasters"]:
        with rasterio.open(path) as composite:
            values = composite.read(1)
            assert composite.count == 2 and np.isnan(composite.nodata)
            finite = values[np.isfinite(values)]
            assert finite.size and finite.min() >= -1 and finite.max() <= 1


def _table(path, name, id_field="district_code"):
    from osgeo import ogr

    source = ogr.Open(str(path))
    layer = source.GetLayerByName(name)
    rows = {feature.GetField(id_field): {key: feature.GetField(key) for key in feature.keys()} for feature in layer}
    source = None
    return rows


def test_district_statistics_embedded_and_in_postgis_agree(session, world):
    embedded = step(session, "district_statistics_embedded")
    postgis = step(session, "district_statistics_postgis")
    assert postgis["connection"] == "canopy desktop test"
    for result in (embedded, postgis):
        assert "ndvi_stats_latest" in result["layers"], result
    for year in world["catalogue"].years:
        here = _table(embedded["output"], f"ndvi_stats_{year}")
        there = _table(postgis["output"], f"ndvi_stats_{year}")
        assert set(here) == {"D-01", "D-02", "D-03"} == set(there)
        for code in here:
            assert here[code]["mean_ndvi"] == pytest.approx(there[code]["mean_ndvi"], abs=1e-6)


def test_the_sample_database_is_offered_built_in_the_profile_and_then_queried(session):
    result = step(session, "sample_database")
    assert result["database"].startswith(str(session["folder"] / "profiles" / "profiles" / "default" / "canopy_explorer"))
    assert result["connection"].startswith("90 variables, segments from 2019"), result["connection"]
    assert "sample database is not on this computer" in " ".join(session["results"]["dialogs"])
    [layer] = result["query"]["layers"]
    assert layer["features"] > 100


def test_grid_change_writes_hexagons_and_loads_them(session):
    result = step(session, "grid_change")
    assert Path(result["output"]).is_file() and result["layers"], result


def test_no_python_error_reached_the_log(session):
    errors = [entry for entry in session["results"].get("log", [])
              if entry["tag"] == "Python error" or (entry["tag"] == "Canopy Explorer" and entry["level"] == 2)]  # Qgis.MessageLevel.Critical
    assert errors == [], json.dumps(errors, indent=1)[:5000]
    assert "Traceback" not in "\n".join(e["text"] for e in session["results"].get("log", []) if e["tag"] == "Canopy Explorer")


def test_screenshots_of_the_dialogs_and_the_map_are_written(session):
    step(session, "map_screenshot")
    for name in ("dependencies_dialog.png", "query_dialog.png", "query_filters.png", "nearest_panel.png", "grid_change_panel.png",
                 "ndvi_panel.png", "district_panel.png", "desktop_map.png"):
        assert (SCREENSHOTS / name).stat().st_size > 10_000, name

