"""`make demo` end to end: the script run as `make demo` runs it (twice, into temporary folders), its
GeoPackage, QGIS project and PNG opened with GDAL and QGIS, and the segments checked against the
engine and against values read straight from the granules; the district workflow's tables (embedded
and PostGIS agreeing, checked against numpy), and the maps: shared classes for maps of one quantity,
change classes symmetric around 0, pages without large empty bands."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely

import granule_truth

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

# The demo's query, written out here rather than imported, so a change to the demo shows up as a failure.
POLYGON = shapely.Polygon([(9.6, 50.6), (10.3, 50.65), (10.35, 51.2), (9.9, 51.4), (9.55, 51.1)])
FOREST = [111, 112, 113, 114, 115, 116, 121, 122, 123, 124, 125, 126]
SEGMENT_LAYER = "ATL08 h_canopy and 2 more, 2019-2023"
NDVI_FILES = ("ndvi_composite_2019.tif", "ndvi_composite_2019.qml", "ndvi_composite_2024.tif", "ndvi_composite_2024.qml")
DISTRICT_FILES = ("districts.gpkg", "ndvi_stats.gpkg", "ndvi_stats_latest.geojson", "ndvi_stats_postgis.gpkg", "canopy_stats.gpkg")
PNGS = ("canopy_explorer_demo.png", "canopy_explorer_ndvi.png", "canopy_explorer_change.png", "canopy_explorer_districts.png")
OUTPUTS = ("atl08_canopy.gpkg", "basemap.tif", *NDVI_FILES, "atl08_change.gpkg", *DISTRICT_FILES, "canopy_explorer_demo.qgz", *PNGS)
DISTRICT_LAYERS = ("Sample districts", "District mean NDVI 2019", "District mean NDVI 2024",
                   "District NDVI change 2024 minus 2019", "District ATL08 canopy height, latest year")
NDVI_FIELDS = ["district_code", "name", "area_km2", "year", "pixel_count", "min_ndvi", "max_ndvi", "mean_ndvi", "stddev_ndvi",
               "median_ndvi", "p10_ndvi", "p90_ndvi"]
CANOPY_FIELDS = ["district_code", "name", "area_km2", "year", "segment_count", "median_h_canopy", "mean_h_canopy", "p95_h_canopy"]
# The sample landscape's dieback disc (sample_granules.DIEBACK_AREA), written out for the same reason.
DIEBACK = (10.22, 51.22, 0.14)  # lon, lat, radius in degrees of latitude


def run_demo(output: Path, data: Path) -> str:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--output", str(output), "--data", str(data), "--no-docs-image"],
        capture_output=True, text=True, timeout=300, env=env, cwd=str(ROOT),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo run twice into the same folder, as someone re-running `make demo` would."""
    base = tmp_path_factory.mktemp("demo")
    output, data = base / "demo_output", base / "sample_data"
    first_log = run_demo(output, data)
    first = {name: (output / name).stat().st_mtime_ns for name in OUTPUTS}
    first_rows = _segment_ids(output / "atl08_canopy.gpkg")
    log = run_demo(output, data)
    return {"output": output, "data": data, "log": log, "first_log": first_log, "first_mtimes": first, "first_rows": first_rows}


def _segment_ids(path: Path) -> np.ndarray:
    from osgeo import ogr

    dataset = ogr.Open(str(path))
    layer = dataset.GetLayerByName(SEGMENT_LAYER)
    assert layer is not None, f"no layer {SEGMENT_LAYER!r} in {path}"
    ids = np.array([feature.GetFieldAsInteger64("segment_id") for feature in layer], dtype=np.int64)
    assert layer.GetFeatureCount() == len(ids)
    return np.sort(ids)


def _rgb(path: Path):
    from qgis.PyQt.QtGui import QImage

    image = QImage(str(path))
    assert not image.isNull(), f"{path} is not an image"
    image = image.convertToFormat(QImage.Format.Format_RGB32)
    bits = image.constBits()
    bits.setsize(image.sizeInBytes())
    pixels = np.frombuffer(bits, dtype=np.uint8).reshape(image.height(), image.bytesPerLine() // 4, 4)[:, : image.width()]
    return image.width(), image.height(), pixels[..., 2::-1][..., :3].astype(int)  # BGRA in memory -> RGB


def test_rerun_replaces_every_output_and_leaves_nothing_half_written(demo):
    output = demo["output"]
    assert sorted(p.name for p in output.iterdir()) == sorted(OUTPUTS)  # no staging folder or partial files
    for name in OUTPUTS:
        assert (output / name).stat().st_mtime_ns > demo["first_mtimes"][name], f"{name} was not rewritten"
    np.testing.assert_array_equal(_segment_ids(output / "atl08_canopy.gpkg"), demo["first_rows"])
    assert "16 already in the database" in demo["log"]  # the second run reuses the database
    for name in OUTPUTS:
        assert f"wrote {output / name}" in demo["log"]


def test_geopackage_holds_the_query_the_engine_returns_for_the_same_spec(demo):
    from canopy_explorer.plugin.core.lidar.config import load_config
    from canopy_explorer.plugin.core.lidar.database import Atl08Database
    from canopy_explorer.plugin.core.lidar.atl08.presets import GOOD_CANOPY
    from canopy_explorer.plugin.core.lidar.query import SegmentQuery

    config = load_config(ROOT / "configs" / "sample_local.yaml").with_changes(local_path=str(demo["data"] / "atl08_db"))
    spec = SegmentQuery.create(
        roi=POLYGON, start="2019-01-01", end="2023-12-31",
        variables=["h_canopy", "canopy_h_metrics:95", "h_te_best_fit"], filters=GOOD_CANOPY,
    )
    frame = Atl08Database(config).query(spec)
    ids = _segment_ids(demo["output"] / "atl08_canopy.gpkg")
    assert len(frame) > 1000
    assert len(ids) == len(frame)
    np.testing.assert_array_equal(ids, np.sort(frame["segment_id"].to_numpy()))
    assert f"{len(frame)} segments in atl08_canopy.gpkg" in demo["log"]


def test_geopackage_matches_the_granules_filtered_independently(demo):
    """Segments in the polygon with forest land cover, h_canopy 5-60 m, 2-140 canopy and >= 10 terrain photons."""
    paths = sorted((demo["data"] / "atl08").glob("ATL08_*.h5"))
    assert len(paths) == 16
    truth = granule_truth.segments(
        paths, datasets=("canopy/h_canopy", "canopy/n_ca_photons", "terrain/n_te_photons", "segment_landcover")
    )
    inside = shapely.contains_xy(POLYGON, truth["lon"], truth["lat"])
    with np.errstate(invalid="ignore"):
        keep = (
            inside
            & np.isin(truth["segment_landcover"], FOREST)
            & (truth["canopy/h_canopy"] >= 5) & (truth["canopy/h_canopy"] <= 60)
            & (truth["canopy/n_ca_photons"] >= 2) & (truth["canopy/n_ca_photons"] <= 140)
            & (truth["terrain/n_te_photons"] >= 10)
            & (truth["time"] >= granule_truth.day("2019-01-01")) & (truth["time"] < granule_truth.day("2024-01-01"))
        )
    expected = np.sort(truth["segment_id"][keep])
    np.testing.assert_array_equal(_segment_ids(demo["output"] / "atl08_canopy.gpkg"), expected)

    from osgeo import ogr

    dataset = ogr.Open(str(demo["output"] / "atl08_canopy.gpkg"))
    roi = dataset.GetLayerByName("region_of_interest")
    assert roi.GetFeatureCount() == 1
    feature = roi.GetNextFeature()  # keep the feature alive: its geometry reference points into it
    geometry = shapely.from_wkb(bytes(feature.GetGeometryRef().ExportToWkb()))
    assert geometry.equals(POLYGON)


def test_project_holds_the_styled_segment_layer_over_the_base_layer(demo, qgis_app):
    from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer

    project_path = demo["output"] / "canopy_explorer_demo.qgz"
    project = QgsProject()
    assert project.read(str(project_path)), project.error()
    layers = {layer.name(): layer for layer in project.mapLayers().values()}
    assert set(layers) == {SEGMENT_LAYER, "Region of interest", "Sample landscape (shaded land cover)", "NDVI median 2019",
                           "NDVI median 2024", "h_canopy median 2018-2021", "h_canopy change 2022-2025 vs 2018-2021",
                           *DISTRICT_LAYERS}
    assert all(layer.isValid() for layer in layers.values())

    segments = layers[SEGMENT_LAYER]
    assert isinstance(segments, QgsVectorLayer)
    assert Path(segments.source().split("|")[0]) == demo["output"] / "atl08_canopy.gpkg"
    assert segments.featureCount() == len(demo["first_rows"])
    renderer = segments.renderer()
    assert renderer.type() == "graduatedSymbol"
    assert renderer.classAttribute() == "h_canopy"
    assert len(renderer.ranges()) == 5
    heights = np.array([f["h_canopy"] for f in segments.getFeatures()], dtype=float)
    assert renderer.ranges()[0].lowerValue() == pytest.approx(heights.min(), abs=1e-3)
    assert renderer.ranges()[-1].upperValue() == pytest.approx(heights.max(), abs=1e-3)

    base = layers["Sample landscape (shaded land cover)"]
    assert isinstance(base, QgsRasterLayer)
    assert base.renderer().type() == "multibandcolor"
    assert base.extent().contains(segments.extent())
    order = [layer.name() for layer in project.layerTreeRoot().layerOrder()]  # first is drawn on top
    assert order.index(SEGMENT_LAYER) < order.index("Sample landscape (shaded land cover)")

    # paths are stored relative to the project, so the folder can be moved or shared
    import zipfile

    with zipfile.ZipFile(project_path) as archive:
        xml = archive.read(next(n for n in archive.namelist() if n.endswith(".qgs"))).decode()
    assert "<datasource>./atl08_canopy.gpkg|layername=" in xml
    assert "<datasource>./basemap.tif</datasource>" in xml
    assert str(demo["output"]) not in xml
    assert [layout.name() for layout in project.layoutManager().layouts()] == ["Canopy Explorer demo", "NDVI composites",
                                                                               "Canopy height change", "District NDVI and canopy"]
    for year in (2019, 2024):
        composite = layers[f"NDVI median {year}"]
        assert composite.renderer().type() == "singlebandpseudocolor"
        assert f"<datasource>./ndvi_composite_{year}.tif</datasource>" in xml


def test_ndvi_composites_hold_median_and_count_and_are_drawn_in_their_own_png(demo, qgis_app):
    import rasterio

    for year in (2019, 2024):
        with rasterio.open(demo["output"] / f"ndvi_composite_{year}.tif") as dataset:
            median, count = dataset.read(1), dataset.read(2)
            assert dataset.crs.to_epsg() == 32632 and dataset.res == (10.0, 10.0)
            assert dataset.overviews(1), "a COG with overviews"
        valid = np.isfinite(median)
        assert valid.sum() > 10_000 and np.all((median[valid] >= -1) & (median[valid] <= 1))
        assert np.all(count[valid] >= 1) and np.all(np.isnan(count[~valid]) | (count[~valid] == 0))
    width, height, rgb = _rgb(demo["output"] / "canopy_explorer_ndvi.png")
    assert width == 1600
    assert len(np.unique(rgb.reshape(-1, 3) @ np.array([65536, 256, 1]))) > 500


def test_png_is_a_1600_by_1200_map_rendered_with_the_segment_colours(demo, qgis_app):
    width, height, rgb = _rgb(demo["output"] / "canopy_explorer_demo.png")
    assert (width, height) == (1600, 1200)
    colours = np.unique(rgb.reshape(-1, 3) @ np.array([65536, 256, 1]))
    assert len(colours) > 2000, "the picture is (nearly) blank"
    # the darkest class of ColorBrewer Greens (segments) and the dashed dark-red outline (region)
    # were drawn over the base map's land-cover colours
    def pixels_near(colour, tolerance=12):
        return int((np.abs(rgb - np.array(colour)).max(axis=-1) <= tolerance).sum())

    assert pixels_near((0x00, 0x44, 0x1B)) > 500
    assert pixels_near((0xB2, 0x18, 0x2B)) > 500
    assert pixels_near((150, 190, 222), tolerance=4) > 5000  # water on the base map


def test_change_map_shows_the_dieback_of_the_sample_landscape(demo, qgis_app):
    from osgeo import ogr
    from pyproj import Transformer

    dataset = ogr.Open(str(demo["output"] / "atl08_change.gpkg"))
    layer = dataset.GetLayerByName("grid_change")
    to_degrees = Transformer.from_crs("EPSG:8857", "EPSG:4326", always_xy=True)
    inside, outside = [], []
    for feature in layer:
        assert feature["count_p1"] >= 20 and feature["count_p2"] >= 20
        assert feature["change"] == pytest.approx(feature["median_p2"] - feature["median_p1"])
        centre = feature.GetGeometryRef().Centroid()
        lon, lat = to_degrees.transform(centre.GetX(), centre.GetY())
        distance = np.hypot(lat - DIEBACK[1], (lon - DIEBACK[0]) * np.cos(np.radians(DIEBACK[1])))
        (inside if distance < DIEBACK[2] - 0.05 else outside if distance > DIEBACK[2] + 0.05 else []).append(feature["change"])
    assert len(inside) >= 5 and len(outside) >= 50
    assert np.median(inside) < -8 and abs(np.median(outside)) < 2.5
    width, height, rgb = _rgb(demo["output"] / "canopy_explorer_change.png")
    assert width == 1600
    assert len(np.unique(rgb.reshape(-1, 3) @ np.array([65536, 256, 1]))) > 15



# --------------------------------------------------------------------------- the district workflow


def _fields(path: Path, layer: str):
    from osgeo import ogr

    dataset = ogr.Open(str(path))
    source = dataset.GetLayerByName(layer)
    assert source is not None, f"no layer {layer} in {path.name}"
    definition = source.GetLayerDefn()
    return [definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())]


def test_district_outputs_hold_every_table_with_the_districts_fields_kept(demo):
    from zonal_fixtures import layer_names, read_table

    output = demo["output"]
    assert layer_names(output / "districts.gpkg") == ["districts"]
    districts = read_table(output / "districts.gpkg", "districts", "district_code")
    assert len(districts) >= 6
    for name in ("ndvi_stats.gpkg", "ndvi_stats_postgis.gpkg"):
        tables = [table for table in layer_names(output / name) if table != "layer_styles"]  # the maps' default styles
        assert tables == ["ndvi_stats_2019", "ndvi_stats_2024", "ndvi_stats_change", "ndvi_stats_latest"]
        for table in ("ndvi_stats_2019", "ndvi_stats_2024", "ndvi_stats_latest"):
            assert _fields(output / name, table) == NDVI_FIELDS
    latest = read_table(output / "ndvi_stats.gpkg", "ndvi_stats_latest", "district_code")
    assert latest.keys() == districts.keys()
    assert all(row["year"] == 2024 and row["pixel_count"] > 1000 for row in latest.values())
    assert all(latest[key]["name"] == districts[key]["name"] for key in districts)
    import json

    geojson = json.loads((output / "ndvi_stats_latest.geojson").read_text())
    assert sorted(f["properties"]["district_code"] for f in geojson["features"]) == sorted(districts)
    assert [t for t in layer_names(output / "canopy_stats.gpkg") if t != "layer_styles"][-2:] == ["h_canopy_stats_change",
                                                                                                 "h_canopy_stats_latest"]
    assert _fields(output / "canopy_stats.gpkg", "h_canopy_stats_latest") == CANOPY_FIELDS
    canopy = read_table(output / "canopy_stats.gpkg", "h_canopy_stats_latest", "district_code")
    assert canopy.keys() == districts.keys()
    assert all(row["segment_count"] > 0 and 5 <= row["median_h_canopy"] <= 60 for row in canopy.values())
    assert "ndvi_stats_latest: district_code, name, year, pixel_count, mean_ndvi" in demo["log"]


def test_embedded_and_postgis_statistics_agree_and_match_numpy(demo):
    from zonal_fixtures import expected_stats, read_table

    output = demo["output"]
    largest = 0.0
    for year in (2019, 2024):
        embedded = read_table(output / "ndvi_stats.gpkg", f"ndvi_stats_{year}", "district_code")
        postgis = read_table(output / "ndvi_stats_postgis.gpkg", f"ndvi_stats_{year}", "district_code")
        assert embedded.keys() == postgis.keys()
        for key, row in embedded.items():
            assert row["pixel_count"] == postgis[key]["pixel_count"]
            for name in ("min_ndvi", "max_ndvi", "mean_ndvi", "stddev_ndvi"):
                largest = max(largest, abs(row[name] - postgis[key][name]))
            count, low, high, mean, std = expected_stats(output / f"ndvi_composite_{year}.tif", row["geom"])
            assert row["pixel_count"] == count
            assert (row["min_ndvi"], row["max_ndvi"], row["mean_ndvi"], row["stddev_ndvi"]) == pytest.approx((low, high, mean, std), abs=1e-6)
    assert largest < 1e-6
    assert "embedded and PostGIS agree: largest difference" in demo["log"]


def _ranges(layer):
    return [(r.lowerValue(), r.upperValue()) for r in layer.renderer().ranges()]


@pytest.fixture(scope="module")
def project(demo, qgis_app):
    from qgis.core import QgsProject

    project = QgsProject()
    assert project.read(str(demo["output"] / "canopy_explorer_demo.qgz")), project.error()
    yield {layer.name(): layer for layer in project.mapLayers().values()}
    project.clear()


def test_maps_of_one_quantity_share_the_classes_of_all_years_together(demo, project):
    from zonal_fixtures import read_table

    first, last = project["District mean NDVI 2019"], project["District mean NDVI 2024"]
    assert first.renderer().classAttribute() == last.renderer().classAttribute() == "mean_ndvi"
    assert _ranges(first) == _ranges(last) and len(_ranges(first)) == 5
    values = [row["mean_ndvi"] for year in (2019, 2024)
              for row in read_table(demo["output"] / "ndvi_stats.gpkg", f"ndvi_stats_{year}", "district_code").values()]
    assert _ranges(first)[0][0] == pytest.approx(min(values)) and _ranges(first)[-1][1] == pytest.approx(max(values))
    # the composites too: one colour table for both years, stored in each file's style
    shaders = [[(item.value, item.color.name()) for item in project[f"NDVI median {year}"].renderer().shader()
                .rasterShaderFunction().colorRampItemList()] for year in (2019, 2024)]
    assert shaders[0] == shaders[1] and len(shaders[0]) == 5


def test_change_map_classes_are_symmetric_around_zero(demo, project):
    from zonal_fixtures import read_table

    change = project["District NDVI change 2024 minus 2019"]
    assert change.renderer().classAttribute() == "mean_ndvi_change"
    ranges = _ranges(change)
    edges = [ranges[0][0]] + [upper for _, upper in ranges]
    np.testing.assert_allclose(edges, -np.array(edges[::-1]), atol=1e-9)
    values = [row["mean_ndvi_change"] for row in read_table(demo["output"] / "ndvi_stats.gpkg", "ndvi_stats_change",
                                                               "district_code").values()]
    assert edges[-1] == pytest.approx(max(abs(v) for v in values))
    colours = [r.symbol().color() for r in change.renderer().ranges()]
    middle = colours[len(colours) // 2]
    assert min(middle.red(), middle.green(), middle.blue()) > 230  # white around no change
    assert colours[0].red() > colours[0].green() and colours[-1].green() > colours[-1].red()  # red loss, green gain
    hexagons = project["h_canopy change 2022-2025 vs 2018-2021"]
    ranges = _ranges(hexagons)
    assert ranges[0][0] == pytest.approx(-ranges[-1][1])


def _empty_bands(rgb):
    """(share of near-white rows, longest run of them / height) and the same for columns."""
    white = (rgb >= 245).all(axis=-1)

    def bands(lines):
        empty = lines.mean(axis=1) > 0.995
        longest = run = 0
        for flag in empty:
            run = run + 1 if flag else 0
            longest = max(longest, run)
        return empty.mean(), longest / len(empty)

    return bands(white), bands(white.T)


@pytest.mark.parametrize("name", PNGS)
def test_every_page_is_filled_by_its_maps_without_a_large_empty_band(demo, qgis_app, name):
    width, height, rgb = _rgb(demo["output"] / name)
    assert width == 1600
    (row_share, row_run), (column_share, column_run) = _empty_bands(rgb)
    # margins and the gaps between title, maps and note leave about a fifth of the rows blank, none over 8 % in one
    # band; the pages sized for a fixed 240 x 180 mm sheet had a blank band of about 40 % under their maps
    assert row_share < 0.25 and row_run < 0.1, f"{name}: {row_share:.0%} of the rows are blank, {row_run:.0%} in one band"
    assert column_share < 0.25 and column_run < 0.1, f"{name}: {column_share:.0%} of the columns are blank, {column_run:.0%} in one band"
