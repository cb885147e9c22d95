"""The ATL08 Processing algorithms: run through processing.run as the toolbox, modeller and Python do."""

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from qgis.core import (
    QgsFeature,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsVectorLayer,
)

from canopy_explorer.plugin.core.lidar.database import Atl08Database
from canopy_explorer.plugin.core.lidar.query import SegmentQuery
from canopy_explorer.plugin.qgis_compat import field_kind

REGION = "7.05,7.25,45.05,45.25 [EPSG:4326]"  # xmin,xmax,ymin,ymax
BOX = (7.05, 45.05, 7.25, 45.25)


@pytest.fixture
def run(loaded_plugin):
    from qgis import processing

    def run_algorithm(name, parameters, feedback=None):
        return processing.run(f"canopyexplorer:{name}", parameters, feedback=feedback or QgsProcessingFeedback())

    return run_algorithm


def query_parameters(database, output, **changes):
    parameters = {
        "CONFIG": database.local_path,
        "ROI": REGION,
        "START": "2020-01-01",
        "END": "2021-12-31",
        "VARIABLES": "h_canopy, canopy_h_metrics:95, segment_landcover",
        "FILTERS": "h_canopy between 5 60\nn_te_photons >= 10",
        "OUTPUT": str(output),
    }
    parameters.update(changes)
    return parameters


def engine_frame(database, roi=BOX, roi_crs="EPSG:4326"):
    spec = SegmentQuery.create(roi=roi, start="2020-01-01", end="2021-12-31", roi_crs=roi_crs,
                               variables=["h_canopy", "canopy_h_metrics:95", "segment_landcover"],
                               filters="h_canopy between 5 60\nn_te_photons >= 10")
    return Atl08Database(database).query(spec)


def test_the_provider_offers_the_three_atl08_algorithms(loaded_plugin):
    ids = {a.id() for a in loaded_plugin.provider.algorithms()}
    assert {"canopyexplorer:atl08_ingest", "canopyexplorer:atl08_query", "canopyexplorer:atl08_nearest"} <= ids
    for algorithm in loaded_plugin.provider.algorithms():
        assert algorithm.shortHelpString(), algorithm.id()


def test_query_writes_every_matching_segment_with_typed_fields(run, local_database, tmp_path):
    result = run("atl08_query", query_parameters(local_database, tmp_path / "canopy.gpkg"))
    expected = engine_frame(local_database)
    layer = QgsVectorLayer(result["OUTPUT"], "result", "ogr")
    assert layer.isValid() and result["SEGMENTS"] == len(expected) > 100
    assert layer.featureCount() == len(expected)
    assert layer.crs().authid() == "EPSG:4326"
    fields = {f.name(): field_kind(f) for f in layer.fields()}
    assert fields["time"] == "datetime" and fields["segment_id"] == "integer64" and fields["beam_id"] == "string"
    assert fields["h_canopy"] == "real" and fields["segment_landcover"] == "integer"
    by_id = {f["segment_id"]: f for f in layer.getFeatures()}
    assert set(by_id) == set(expected["segment_id"])
    row = expected.iloc[len(expected) // 2]
    feature = by_id[row["segment_id"]]
    assert feature["h_canopy"] == pytest.approx(float(row["h_canopy"]), rel=1e-6)
    assert feature["canopy_h_metrics_p95"] == pytest.approx(float(row["canopy_h_metrics_p95"]), rel=1e-6)
    point = feature.geometry().asPoint()
    assert (point.x(), point.y()) == pytest.approx((row["longitude"], row["latitude"]), abs=1e-9)
    assert feature["time"].toMSecsSinceEpoch() == row["time"].value // 1_000_000


def test_geopackage_output_carries_its_natural_breaks_style(run, local_database, tmp_path):
    result = run("atl08_query", query_parameters(local_database, tmp_path / "styled.gpkg", CLASSES=4))
    with sqlite3.connect(result["OUTPUT"]) as connection:
        styles = connection.execute("SELECT useAsDefault, styleQML FROM layer_styles").fetchall()
    assert len(styles) == 1 and styles[0][0] == 1 and "graduatedSymbol" in styles[0][1]
    reopened = QgsVectorLayer(result["OUTPUT"], "reopened", "ogr")  # the default style loads by itself
    renderer = reopened.renderer()
    assert renderer.type() == "graduatedSymbol" and renderer.classAttribute() == "h_canopy"
    assert len(renderer.ranges()) == 4
    heights = engine_frame(local_database)["h_canopy"]
    assert renderer.ranges()[0].lowerValue() == pytest.approx(heights.min(), rel=1e-6)
    assert renderer.ranges()[-1].upperValue() == pytest.approx(heights.max(), rel=1e-6)
    assert renderer.ranges()[0].label().endswith(" m")


@pytest.mark.parametrize("suffix", [".fgb", ".geojson", ".csv"])
def test_other_formats_hold_the_same_segments(run, local_database, tmp_path, suffix):
    result = run("atl08_query", query_parameters(local_database, tmp_path / f"canopy{suffix}"))
    assert Path(result["OUTPUT"]).exists() and result["SEGMENTS"] == len(engine_frame(local_database))
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_polygon_layer_roi_in_a_projected_crs_selects_segments_inside_it(run, local_database, tmp_path):
    import shapely
    from pyproj import Transformer

    to_mercator = Transformer.from_crs(4326, 3857, always_xy=True)
    ring = [(7.06, 45.06), (7.24, 45.08), (7.2, 45.24), (7.08, 45.2)]
    mercator_ring = [to_mercator.transform(x, y) for x, y in ring]
    layer = QgsVectorLayer("Polygon?crs=EPSG:3857", "district", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromPolygonXY([[QgsPointXY(x, y) for x, y in mercator_ring]]))
    layer.dataProvider().addFeatures([feature])
    result = run("atl08_query", query_parameters(local_database, tmp_path / "polygon.gpkg", ROI=layer))
    written = QgsVectorLayer(result["OUTPUT"], "result", "ogr")
    inside = engine_frame(local_database)
    polygon = shapely.Polygon(mercator_ring)
    x, y = to_mercator.transform(inside["longitude"].to_numpy(), inside["latitude"].to_numpy())
    expected = set(inside["segment_id"][shapely.contains_xy(polygon, x, y)])
    assert 0 < len(expected) < len(inside)
    assert {f["segment_id"] for f in written.getFeatures()} == expected


def test_nearest_returns_the_closest_segments_sorted_with_distances(run, local_database, tmp_path):
    from pyproj import Geod

    result = run("atl08_nearest", {
        "CONFIG": local_database.local_path, "POINT": "7.15,45.15 [EPSG:4326]", "NUM_SHOTS": 25, "RADIUS_M": 2000,
        "VARIABLES": "h_canopy", "FILTERS": "", "START": "", "END": "", "OUTPUT": str(tmp_path / "near.gpkg"),
    })
    layer = QgsVectorLayer(result["OUTPUT"], "near", "ogr")
    distances = [f["distance_m"] for f in layer.getFeatures()]
    assert len(distances) == 25 and distances == sorted(distances) and distances[-1] <= 2000
    everything = Atl08Database(local_database).query(SegmentQuery.create(roi=(7.1, 45.1, 7.2, 45.2), variables=["h_canopy"]))
    _, _, truth = Geod(ellps="WGS84").inv(np.full(len(everything), 7.15), np.full(len(everything), 45.15),
                                          everything["longitude"].to_numpy(), everything["latitude"].to_numpy())
    assert distances == pytest.approx(np.sort(truth)[:25], abs=1e-6)


def test_nearest_accepts_a_point_in_another_crs(run, local_database, tmp_path):
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, 3857, always_xy=True).transform(7.15, 45.15)
    result = run("atl08_nearest", {
        "CONFIG": local_database.local_path, "POINT": f"{x},{y} [EPSG:3857]", "NUM_SHOTS": 5, "RADIUS_M": 2000,
        "VARIABLES": "h_canopy", "OUTPUT": str(tmp_path / "near.gpkg"),
    })
    layer = QgsVectorLayer(result["OUTPUT"], "near", "ogr")
    assert max(f["distance_m"] for f in layer.getFeatures()) < 2000


def test_ingest_builds_a_database_and_a_rerun_writes_nothing(run, sample_granules, tmp_path):
    config = tmp_path / "db.yaml"
    config.write_text(f"tiledb:\n  storage_type: local\n  local_path: {tmp_path / 'db'}\n")
    folder = Path(sample_granules[0]).parent
    first = run("atl08_ingest", {"INPUT": str(folder), "CONFIG": str(config)})
    assert first["GRANULES_WRITTEN"] == len(sample_granules) and first["SEGMENTS"] > 0
    assert first["DATABASE"].endswith("array_uri")
    again = run("atl08_ingest", {"INPUT": str(folder), "CONFIG": str(config)})
    assert again["GRANULES_WRITTEN"] == 0 and again["SEGMENTS"] == 0


def test_ingest_reports_unreadable_granules_and_continues(run, sample_granules, tmp_path):
    import shutil

    folder = tmp_path / "granules"
    folder.mkdir()
    shutil.copy(sample_granules[0], folder)
    (folder / "ATL08_20200101000000_00010101_007_01.h5").write_bytes(b"not an hdf5 file")
    config = tmp_path / "db.yaml"
    config.write_text(f"tiledb:\n  storage_type: local\n  local_path: {tmp_path / 'db'}\n")
    feedback = QgsProcessingFeedback()
    errors = []
    feedback.reportError = lambda text, fatal=False: errors.append(text)
    result = run("atl08_ingest", {"INPUT": str(folder), "CONFIG": str(config)}, feedback)
    assert result["GRANULES_WRITTEN"] == 1 and result["GRANULES_SKIPPED"] == 1
    assert any("ATL08_20200101000000_00010101_007_01.h5" in e for e in errors)


def test_ingest_counts_copies_and_dropped_segments_in_its_outputs(run, sample_granules, tmp_path):
    from bad_granules import FILL, copy_as, set_values

    folder = tmp_path / "granules"
    first = copy_as(sample_granules[0], folder / sample_granules[0].name)
    copy_as(first, folder / "copy_of_first.h5")
    set_values(copy_as(sample_granules[1], folder / sample_granules[1].name), "gt1l", "latitude", slice(0, 10), FILL)
    config = tmp_path / "db.yaml"
    config.write_text(f"tiledb:\n  storage_type: local\n  local_path: {tmp_path / 'db'}\n")
    result = run("atl08_ingest", {"INPUT": str(folder), "CONFIG": str(config), "LOCK_WAIT": 5})
    assert (result["GRANULES_WRITTEN"], result["GRANULES_DUPLICATE"], result["GRANULES_SKIPPED"], result["SEGMENTS_DROPPED"]) == (2, 1, 0, 10)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"VARIABLES": "h_canopi"}, "did you mean 'h_canopy'"),
        ({"VARIABLES": "canopy_h_metrics:97"}, "valid percentile labels are: 10, 15"),
        ({"FILTERS": "h_canopy >> 5"}, "h_canopy >> 5"),
        ({"START": "2021-06-01", "END": "2020-01-01"}, "before start"),
        ({"START": "last tuesday"}, "last tuesday"),
        ({"CONFIG": "/nonexistent/folder"}, "does not exist"),
        ({"ROI": "170,171,-80,-79 [EPSG:4326]"}, "no segments"),
        ({"OUTPUT": "/nonexistent/dir/out.gpkg"}, "does not exist"),
    ],
)
def test_bad_input_gives_a_clear_processing_error_and_writes_nothing(run, local_database, tmp_path, changes, message):
    output = tmp_path / "out.gpkg"
    parameters = query_parameters(local_database, output)
    parameters.update(changes)
    with pytest.raises(QgsProcessingException) as raised:
        run("atl08_query", parameters)
    assert message in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_a_cancelled_query_leaves_no_file(run, local_database, tmp_path):
    feedback = QgsProcessingFeedback()
    feedback.cancel()
    output = tmp_path / "cancelled.gpkg"
    run("atl08_query", query_parameters(local_database, output), feedback)
    assert list(tmp_path.iterdir()) == []


def test_qgis_process_runs_the_query_headless(local_database, tmp_path):
    """qgis_process loads the plugin with iface None and runs atl08_query to a file."""
    import json
    import os
    import subprocess

    from test_plugin_lifecycle import ROOT, qgis_process

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "canopy_explorer").symlink_to(ROOT)
    import sysconfig

    # qgis_process runs Debian's Python: give it this environment's packages (tiledb, shapely), as a user's pip would
    env = dict(os.environ, QGIS_PLUGINPATH=str(plugins), QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "config"), QT_QPA_PLATFORM="offscreen",
               PYTHONPATH=sysconfig.get_paths()["purelib"])
    subprocess.run([qgis_process(), "plugins", "enable", "canopy_explorer"], env=env, capture_output=True, text=True, timeout=120)
    output = tmp_path / "headless.gpkg"
    run = subprocess.run(
        [qgis_process(), "--json", "run", "canopyexplorer:atl08_query", "--", f"CONFIG={local_database.local_path}",
         f"ROI={REGION}", "START=2020-01-01", "END=2021-12-31", "VARIABLES=h_canopy,canopy_h_metrics:95,segment_landcover",
         "FILTERS=h_canopy between 5 60", f"OUTPUT={output}"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    results = json.loads(run.stdout[run.stdout.index("{"):])["results"]
    spec = SegmentQuery.create(roi=BOX, start="2020-01-01", end="2021-12-31", variables=["h_canopy"], filters="h_canopy between 5 60")
    assert results["SEGMENTS"] == len(Atl08Database(local_database).query(spec)) > 0
    assert QgsVectorLayer(results["OUTPUT"], "headless", "ogr").featureCount() == results["SEGMENTS"]


def test_the_query_runs_inside_a_graphical_model(loaded_plugin, local_database, tmp_path):
    from qgis import processing
    from qgis.core import QgsProcessingModelAlgorithm, QgsProcessingModelChildAlgorithm, QgsProcessingModelChildParameterSource, QgsProcessingModelOutput

    model = QgsProcessingModelAlgorithm("canopy model", "tests")
    child = QgsProcessingModelChildAlgorithm("canopyexplorer:atl08_query")
    child.setChildId("query")
    static = {"CONFIG": local_database.local_path, "ROI": REGION, "START": "2020-01-01", "END": "2021-12-31",
              "VARIABLES": "h_canopy", "FILTERS": "h_canopy >= 5", "CLASSES": 5}
    for name, value in static.items():
        child.addParameterSources(name, [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
    model_output = QgsProcessingModelOutput("segments")
    model_output.setChildOutputName("OUTPUT")
    child.setModelOutputs({"segments": model_output})
    model.addChildAlgorithm(child)
    model.updateDestinationParameters()
    output = tmp_path / "model.gpkg"
    result = processing.run(model, {"query:segments": str(output)})
    spec = SegmentQuery.create(roi=BOX, start="2020-01-01", end="2021-12-31", variables=["h_canopy"], filters="h_canopy >= 5")
    assert QgsVectorLayer(str(output), "m", "ogr").featureCount() == len(Atl08Database(local_database).query(spec)) > 0
    assert result["query:segments"] == str(output)


def test_an_open_time_range_reads_every_date_and_names_the_layer_so(run, local_database, tmp_path):
    from canopy_explorer.plugin.layers.segment_layer import query_layer_name

    result = run("atl08_query", query_parameters(local_database, tmp_path / "all.gpkg", START="", END=""))
    spec = SegmentQuery.create(roi=BOX, variables=["h_canopy"], filters="h_canopy between 5 60\nn_te_photons >= 10")
    assert result["SEGMENTS"] == len(Atl08Database(local_database).query(spec)) > len(engine_frame(local_database)) * 0.99
    assert query_layer_name(("h_canopy",), spec) == "ATL08 h_canopy, all dates"


def test_places_are_named_with_their_hemispheres():
    from canopy_explorer.plugin.layers.segment_layer import place_text

    assert place_text(45.15, 7.15) == "45.15000 N, 7.15000 E"
    assert place_text(-12.5, -70.25, 2) == "12.50 S, 70.25 W"
