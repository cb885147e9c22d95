"""The ATL08 query dialog, driven as a user drives it: widgets, canvas drawing, Run, the task, the layer."""


import re
from pathlib import Path

import pytest
import shapely
from qgis.core import (
    Qgis, QgsApplication, QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsGeometry, QgsProject, QgsRectangle,
    QgsSettings, QgsVectorLayer,
)
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtCore import QCoreApplication, QDate, Qt
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import QMessageBox

from canvas_events import RIGHT, click, drag, map_point, press_key
from task_waits import wait_for_tasks, wait_until
from canopy_explorer.plugin.core.lidar.database import Atl08Database
from canopy_explorer.plugin.core.lidar.query import SegmentQuery
from canopy_explorer.plugin.gui.query_dialog import SAMPLE_CONFIG, SETTINGS, QueryDialog
from canopy_explorer.plugin.qgis_compat import field_kind

VARIABLES = ["h_canopy", "canopy_h_metrics:95"]
FILTER = "h_canopy between 5 60"
SAMPLE_EXTENT = QgsRectangle(7.0, 45.0, 7.3, 45.3)


@pytest.fixture
def canvas(iface):
    """The interface's canvas, shown at a known size over the sample granules, in EPSG:4326."""
    from qgis.core import QgsCoordinateReferenceSystem

    canvas = iface.mapCanvas()
    window = canvas.window()  # pytest-qgis's canvas lives, hidden, in its own main window
    window.resize(600, 600)
    window.show()
    canvas.resize(600, 600)
    canvas.show()
    QTest.qWaitForWindowExposed(window)
    # the extent must be set after the resize has landed, or the old scale stretches it
    wait_until(lambda: canvas.viewport().width() > 500)
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    canvas.setExtent(SAMPLE_EXTENT)
    canvas.refresh()
    assert canvas.extent().width() < 0.5
    yield canvas
    window.hide()


@pytest.fixture
def dialog(loaded_plugin, canvas, local_database, tmp_path):
    QgsSettings().remove(SETTINGS.rstrip("/"))
    QgsProject.instance().removeAllMapLayers()
    [action] = [a for a in loaded_plugin.actions if a.objectName() == "CanopyExplorerQuery"]
    action.trigger()
    dialog = loaded_plugin.query_dialog
    dialog.databaseCombo.setCurrentIndex(dialog.databaseCombo.count() - 1)  # "Other"
    dialog.databaseEdit.setText(local_database.local_path)
    dialog.set_variables(VARIABLES)
    dialog.startDateEdit.setDate(QDate(2020, 1, 1))
    dialog.endDateEdit.setDate(QDate(2021, 12, 31))
    dialog.add_filter_row("h_canopy", "between", "5 60")
    yield dialog
    dialog.close()
    QgsProject.instance().removeAllMapLayers()
    QgsSettings().remove(SETTINGS.rstrip("/"))


def engine_rows(database, roi, roi_crs="EPSG:4326", variables=VARIABLES, start="2020-01-01", end="2021-12-31"):
    spec = SegmentQuery.create(roi=roi, start=start, end=end, variables=variables, filters=FILTER, roi_crs=roi_crs)
    return Atl08Database(database).query(spec)


def result_layers():
    return [layer for layer in QgsProject.instance().mapLayers().values() if layer.name().startswith("ATL08")]


def test_canvas_extent_query_adds_a_styled_layer_with_every_matching_segment(dialog, local_database, iface):
    QTest.mouseClick(dialog.canvasExtentButton, Qt.MouseButton.LeftButton)
    dialog.classesSpin.setValue(4)
    QTest.mouseClick(dialog.runButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    [layer] = result_layers()
    extent = dialog.canvas.extent()
    expected = engine_rows(local_database, (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()))
    assert layer.name() == "ATL08 h_canopy +1 2020-2021"
    assert layer.featureCount() == len(expected) > 100
    assert layer.crs().authid() == "EPSG:4326"
    types = {f.name(): field_kind(f) for f in layer.fields()}
    assert types["time"] == "datetime" and types["segment_id"] == "integer64" and types["h_canopy"] == "real"
    assert "canopy_h_metrics_p95" in types and types["beam_id"] == "string"
    renderer = layer.renderer()
    assert renderer.type() == "graduatedSymbol" and renderer.classAttribute() == "h_canopy" and len(renderer.ranges()) == 4
    assert "h_canopy between 5 60" in layer.metadata().abstract()
    assert any("segments loaded" in m for m in iface.messageBar().get_messages(3))  # Qgis.MessageLevel.Success


def test_drawing_a_rectangle_hides_the_dialog_and_queries_exactly_that_box(dialog, canvas, local_database):
    QTest.mouseClick(dialog.drawRectangleButton, Qt.MouseButton.LeftButton)
    assert not dialog.isVisible()
    drag(canvas, (150, 150), (450, 400))
    assert dialog.isVisible()
    corner_a, corner_b = map_point(canvas, 150, 150), map_point(canvas, 450, 400)
    box = (min(corner_a.x(), corner_b.x()), min(corner_a.y(), corner_b.y()), max(corner_a.x(), corner_b.x()), max(corner_a.y(), corner_b.y()))
    assert f"lon {box[0]:.4f} to {box[2]:.4f}" in dialog.roiLabel.text()
    assert dialog.roi_band.numberOfVertices() > 0  # the region stays shown on the map
    QTest.mouseClick(dialog.runButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    [layer] = result_layers()
    expected = engine_rows(local_database, box)
    assert 0 < layer.featureCount() == len(expected)
    assert {f["segment_id"] for f in layer.getFeatures()} == set(expected["segment_id"])


def test_drawing_a_polygon_queries_segments_inside_it_only(dialog, canvas, local_database):
    QTest.mouseClick(dialog.drawPolygonButton, Qt.MouseButton.LeftButton)
    pixels = [(100, 100), (500, 150), (420, 500), (150, 380)]
    for x, y in pixels:
        click(canvas, x, y)
    click(canvas, 300, 300, RIGHT)
    assert dialog.isVisible()
    polygon = shapely.Polygon([(p.x(), p.y()) for p in (map_point(canvas, x, y) for x, y in pixels)])
    QTest.mouseClick(dialog.runButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    [layer] = result_layers()
    in_box = engine_rows(local_database, polygon.bounds)
    inside = in_box[shapely.contains_xy(polygon, in_box["longitude"].to_numpy(), in_box["latitude"].to_numpy())]
    assert 0 < len(inside) < len(in_box)
    assert {f["segment_id"] for f in layer.getFeatures()} == set(inside["segment_id"])


def test_escape_cancels_drawing_and_brings_the_dialog_back_unchanged(dialog, canvas):
    QTest.mouseClick(dialog.drawPolygonButton, Qt.MouseButton.LeftButton)
    click(canvas, 100, 100)
    press_key(canvas, Qt.Key.Key_Escape)
    assert dialog.isVisible() and dialog.roi is None
    QTest.mouseClick(dialog.runButton, Qt.MouseButton.LeftButton)
    assert "region of interest" in dialog.statusLabel.text() and not dialog.tasks


def test_a_polygon_layer_roi_can_use_only_its_selected_features(dialog, local_database):
    from qgis.core import QgsFeature

    layer = QgsVectorLayer("Polygon?crs=EPSG:4326", "districts", "memory")
    west, east = QgsFeature(), QgsFeature()
    west.setGeometry(QgsGeometry.fromWkt("POLYGON((7.0 45.0, 7.12 45.0, 7.12 45.3, 7.0 45.3, 7.0 45.0))"))
    east.setGeometry(QgsGeometry.fromWkt("POLYGON((7.18 45.0, 7.3 45.0, 7.3 45.3, 7.18 45.3, 7.18 45.0))"))
    layer.dataProvider().addFeatures([west, east])
    QgsProject.instance().addMapLayer(layer)
    layer.selectByIds([2])
    dialog.roiLayerCombo.setLayer(layer)
    dialog.selectedOnlyCheck.setChecked(True)
    QTest.mouseClick(dialog.layerRoiButton, Qt.MouseButton.LeftButton)
    assert "selected features of layer 'districts'" in dialog.roiLabel.text()
    QTest.mouseClick(dialog.runButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    [result] = result_layers()
    expected = engine_rows(local_database, (7.18, 45.0, 7.3, 45.3))
    assert result.featureCount() == len(expected) > 0
    assert min(f.geometry().asPoint().x() for f in result.getFeatures()) >= 7.18


def test_clicking_the_map_loads_the_nearest_shots_with_distances(dialog, canvas, loaded_plugin):
    [action] = [a for a in loaded_plugin.actions if a.objectName() == "CanopyExplorerNearest"]
    dialog.nearestCountSpin.setValue(12)
    dialog.nearestRadiusSpin.setValue(3000)
    action.trigger()
    assert not dialog.isVisible()
    click(canvas, 300, 300)
    assert dialog.isVisible()
    wait_for_tasks(dialog)
    [layer] = result_layers()
    distances = [f["distance_m"] for f in layer.getFeatures()]
    assert len(distances) == 12 and distances == sorted(distances) and distances[-1] <= 3000
    clicked = map_point(canvas, 300, 300)
    assert dialog.nearest_marker.center() == clicked


def test_cancelling_a_running_query_leaves_no_layer_and_no_file(dialog, tmp_path):
    dialog.outputFormatCombo.setCurrentIndex(dialog.outputFormatCombo.findData("GPKG"))
    dialog.outputFileWidget.setFilePath(str(tmp_path / "cancelled.gpkg"))
    dialog.use_canvas_extent()
    task = dialog.run_query()
    ends = []
    task.taskCompleted.connect(lambda: ends.append("completed"))
    task.taskTerminated.connect(lambda: ends.append("terminated"))
    # cancel from inside the run, at its first progress report, so the cancel lands mid-query
    task.progressChanged.connect(lambda _: task.cancel(), Qt.ConnectionType.DirectConnection)
    wait_until(lambda: ends)
    wait_for_tasks(dialog)
    assert ends == ["terminated"]
    assert result_layers() == []
    assert list(tmp_path.iterdir()) == []


def test_a_bad_filter_is_flagged_as_you_type_and_blocks_running(dialog, iface):
    dialog.use_canvas_extent()
    dialog.filtersEdit.setPlainText("n_te_photons >> 10")
    assert "n_te_photons >> 10" in dialog.filterStatusLabel.text() or "column" in dialog.filterStatusLabel.text()
    assert "color:#b00020" in dialog.filterStatusLabel.text()
    QTest.mouseClick(dialog.runButton, Qt.MouseButton.LeftButton)
    assert not dialog.tasks
    assert any("quality filters" in m for m in iface.messageBar().get_messages(1))  # Qgis.MessageLevel.Warning


def test_an_empty_result_says_so_and_adds_no_layer(dialog, iface):
    far_away = QgsRectangle(20, 60, 20.1, 60.1)
    dialog.set_roi(((20.0, 60.0, 20.1, 60.1), "EPSG:4326"), QgsGeometry.fromRect(far_away), dialog.canvas.mapSettings().destinationCrs(), "test")
    QTest.mouseClick(dialog.runButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    assert result_layers() == []
    # the message says why: nothing in the region (and where the database's segments are)
    assert any("No segments match" in m and "the region holds no segments in this database (its segments lie within lon 7" in m
               for m in iface.messageBar().get_messages(0))  # Qgis.MessageLevel.Info
    assert "the region holds no segments" in dialog.statusLabel.text()


def test_an_empty_result_names_the_filter_line_that_removed_the_last_segments(dialog, iface):
    dialog.set_roi(((7.05, 45.05, 7.25, 45.25), "EPSG:4326"), QgsGeometry.fromRect(QgsRectangle(7.05, 45.05, 7.25, 45.25)),
                   dialog.canvas.mapSettings().destinationCrs(), "test")
    dialog.filtersEdit.setPlainText("h_canopy > 1000")
    QTest.mouseClick(dialog.runButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    assert result_layers() == []
    assert any(re.search(r"line \d+ 'h_canopy > 1000' removes the remaining [\d,]+", m) for m in iface.messageBar().get_messages(0))


def test_a_large_estimate_asks_before_loading(dialog, monkeypatch):
    answers = []

    def answer(*args, **kwargs):
        answers.append(args[2])
        return QMessageBox.StandardButton.No if len(answers) == 1 else QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    dialog.maxRowsSpin.setValue(1000)
    dialog.use_canvas_extent()
    dialog.run_query()
    wait_for_tasks(dialog)
    assert result_layers() == [] and "narrow" in dialog.statusLabel.text()
    dialog.run_query()
    wait_for_tasks(dialog)
    assert len(answers) == 2 and "more than the 1,000" in answers[0]
    assert len(result_layers()) == 1


def test_several_queries_run_at_once_and_each_adds_its_layer(dialog):
    dialog.use_canvas_extent()
    dialog.run_query()
    dialog.set_variables(["h_te_best_fit"])
    dialog.run_query()
    wait_for_tasks(dialog)
    names = sorted(layer.name() for layer in result_layers())
    assert names == ["ATL08 h_canopy +1 2020-2021", "ATL08 h_te_best_fit 2020-2021"]


def test_test_connection_reports_variables_and_sets_the_time_span(dialog, local_database):
    QTest.mouseClick(dialog.testConnectionButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    start, end = Atl08Database(local_database).time_span()
    assert "variables, segments from" in dialog.connectionLabel.text()
    assert dialog.startDateEdit.date().toString("yyyy-MM-dd") == str(start)
    assert dialog.endDateEdit.date().toString("yyyy-MM-dd") == str(end)


def test_an_unreachable_database_is_reported_in_the_dialog(dialog, tmp_path):
    dialog.databaseEdit.setText(str(tmp_path / "missing"))
    QTest.mouseClick(dialog.testConnectionButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    assert "does not exist" in dialog.connectionLabel.text()


def test_presets_fill_the_filters_and_settings_are_remembered(dialog, loaded_plugin, iface):
    dialog.presetCombo.setCurrentText("Good canopy retrievals")
    QTest.mouseClick(dialog.applyPresetButton, Qt.MouseButton.LeftButton)
    assert "segment_landcover in [111" in dialog.filtersEdit.toPlainText()
    dialog.set_variables(["h_canopy", "canopy_h_metrics:50"])
    dialog.save_settings()
    again = QueryDialog(iface)
    assert again.selected_variables() == ["h_canopy", "canopy_h_metrics:50"]
    assert "n_te_photons >= 10" in again.filtersEdit.toPlainText()
    assert again.databaseEdit.text() == dialog.databaseEdit.text()
    again.clear_canvas_items()
    again.deleteLater()


def test_the_variable_search_hides_what_does_not_match(dialog):
    dialog.variableSearchEdit.setText("photons")
    visible = [item.text(0) for item in dialog._variable_items() if not item.isHidden()]
    assert "n_ca_photons" in visible and "h_canopy" not in visible


@pytest.mark.parametrize("suffix", [".gpkg", ".fgb", ".geojson", ".csv"])
def test_a_result_layer_exports_to_each_format_with_its_style(dialog, loaded_plugin, iface, tmp_path, suffix):
    dialog.use_canvas_extent()
    dialog.run_query()
    wait_for_tasks(dialog)
    [layer] = result_layers()
    iface.setActiveLayer(layer)
    target = tmp_path / f"export{suffix}"
    task = loaded_plugin.export_active_layer(str(target))
    wait_until(lambda: not loaded_plugin.export_tasks)
    QCoreApplication.processEvents()
    assert task is not None and target.exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
    if suffix == ".csv":
        uri = f"file://{target}?type=csv&xField=longitude&yField=latitude&crs=EPSG:4326"
        reopened = QgsVectorLayer(uri, "export", "delimitedtext")
    else:
        reopened = QgsVectorLayer(str(target), "export", "ogr")
        assert reopened.renderer().type() == "graduatedSymbol"  # the style travelled with the file
    assert reopened.featureCount() == layer.featureCount()


def test_a_private_bucket_is_read_with_credentials_from_the_auth_manager(dialog, s3_database, s3_server):
    from qgis.core import QgsAuthMethodConfig

    manager = QgsApplication.authManager()
    manager.setMasterPassword("test master password", True)
    auth = QgsAuthMethodConfig("Basic")
    auth.setName("atl08 bucket")
    auth.setConfig("username", "testing")
    auth.setConfig("password", "testing")
    assert manager.storeAuthenticationConfig(auth)[0]
    dialog.databaseEdit.setText(f"s3://{s3_database.s3_bucket}")
    dialog.endpointEdit.setText(s3_server)
    dialog.authConfigSelect.setConfigId(auth.id())
    config = dialog.database_config()
    assert config.s3_settings["aws_access_key_id"] == "testing" and not config.anonymous
    QTest.mouseClick(dialog.testConnectionButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    assert "variables, segments from" in dialog.connectionLabel.text()
    dialog.save_settings()
    stored = {key: QgsSettings().value(SETTINGS + key) for key in ("database", "endpoint", "auth_config")}
    assert stored["auth_config"] == auth.id()
    assert "testing" not in " ".join(str(v) for v in QgsSettings().allKeys() + [QgsSettings().value(k) for k in QgsSettings().allKeys()])


# --------------------------------------------------------------------------- regions checked when they are set


class EmptyProjectInterface:
    """The interface of a QGIS with a new, empty project: its canvas has no layers, so no extent (and maybe no CRS)."""

    def __init__(self, iface, crs):
        self._iface = iface
        self.canvas = QgsMapCanvas()
        self.canvas.setDestinationCrs(crs)

    def mapCanvas(self):  # noqa: N802
        return self.canvas

    def mainWindow(self):  # noqa: N802
        return self._iface.mainWindow()

    def messageBar(self):  # noqa: N802
        return self._iface.messageBar()


def warnings_shown(iface):
    return iface.messageBar().get_messages(Qgis.MessageLevel.Warning)


@pytest.mark.parametrize("crs, why", [
    (QgsCoordinateReferenceSystem(), "the map has no coordinate reference system"),
    (QgsCoordinateReferenceSystem("EPSG:4326"), "the canvas extent is empty"),
], ids=["no CRS", "EPSG:4326"])
def test_canvas_extent_of_an_empty_project_gives_a_clear_warning_not_a_python_error(iface, loaded_plugin, crs, why):
    QgsSettings().remove(SETTINGS.rstrip("/"))
    empty = EmptyProjectInterface(iface, crs)
    assert empty.canvas.extent().isEmpty()
    dialog = QueryDialog(empty)
    try:
        assert dialog.use_canvas_extent() is False  # before the fix: an unhandled QueryError
        assert dialog.roi is None and dialog.roiLabel.text() == "No region chosen yet."
        message = warnings_shown(iface)[-1]
        assert message.startswith(f"Canopy Explorer:{why[0].upper()}{why[1:]}")
        assert "add a layer" in message and "Canvas extent again" in message
        assert "color:#b00020" in dialog.statusLabel.text()
    finally:
        dialog.clear_canvas_items()
        dialog.deleteLater()


def test_a_rectangle_drawn_off_the_earth_is_refused_at_once_and_the_previous_region_kept(dialog, canvas, iface):
    assert dialog.use_canvas_extent()
    previous, previous_label = dialog.roi, dialog.roiLabel.text()
    canvas.setExtent(QgsRectangle(99, -540, 499, -240))  # where an empty project's canvas can drift
    QTest.mouseClick(dialog.drawRectangleButton, Qt.MouseButton.LeftButton)
    drag(canvas, (150, 150), (450, 400))

    assert dialog.isVisible()
    assert dialog.roi == previous and dialog.roiLabel.text() == previous_label
    message = warnings_shown(iface)[-1]
    assert re.fullmatch(r"Canopy Explorer:The rectangle you drew lies outside the Earth \(lon [\d.]+ to [\d.]+, lat -[\d.]+ to -[\d.]+\): "
                        r"zoom to your area of interest or add a layer, then draw again", message), message
    assert not dialog.tasks


def test_a_zoomed_out_web_mercator_canvas_extent_is_clipped_to_the_earth_not_refused(dialog, canvas):
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    canvas.setExtent(QgsRectangle(-4e7, -3e7, 4e7, 3e7))
    assert dialog.use_canvas_extent()
    assert "lon -180.0000 to 180.0000, lat -85.0600 to 85.0600 (clipped to the part on the Earth)" in dialog.roiLabel.text()
    assert dialog.roi[1] == "EPSG:3857" and dialog.roi[0].bounds[2] <= 20_037_508.35


def test_a_utm_canvas_extent_queries_the_same_segments_as_its_box_in_degrees(dialog, canvas, local_database):
    utm = QgsCoordinateReferenceSystem("EPSG:32632")
    canvas.setDestinationCrs(utm)
    canvas.setExtent(QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), utm, QgsProject.instance())
                     .transformBoundingBox(SAMPLE_EXTENT))
    assert dialog.use_canvas_extent() and "clipped" not in dialog.roiLabel.text()
    roi, crs = dialog.roi
    assert crs == "EPSG:32632"
    dialog.run_query()
    wait_for_tasks(dialog)
    [layer] = result_layers()
    expected = engine_rows(local_database, roi, "EPSG:32632")
    assert 0 < layer.featureCount() == len(expected)


# --------------------------------------------------------------------------- error lines that go when their cause does


def test_an_error_line_is_cleared_when_the_region_variables_or_filters_change(dialog, canvas):
    QTest.mouseClick(dialog.runButton, Qt.MouseButton.LeftButton)
    assert "No region of interest yet" in dialog.statusLabel.text()
    QTest.mouseClick(dialog.drawRectangleButton, Qt.MouseButton.LeftButton)
    drag(canvas, (150, 150), (450, 400))
    assert dialog.statusLabel.text() == ""  # the region the error was about is there now

    dialog.set_variables([])
    QTest.mouseClick(dialog.runButton, Qt.MouseButton.LeftButton)
    assert "No variable is selected" in dialog.statusLabel.text()
    dialog.set_variables(["h_canopy"])
    assert dialog.statusLabel.text() == ""

    dialog.filtersEdit.setPlainText("h_canopy >> 5")
    QTest.mouseClick(dialog.runButton, Qt.MouseButton.LeftButton)
    assert "quality filters are not valid" in dialog.statusLabel.text()
    dialog.filtersEdit.setPlainText("h_canopy >= 5")
    assert dialog.statusLabel.text() == ""
    assert not dialog.tasks


def test_choosing_another_database_clears_the_connection_and_query_errors(dialog, local_database, tmp_path):
    dialog.use_canvas_extent()
    dialog.databaseEdit.setText(str(tmp_path / "missing"))
    QTest.mouseClick(dialog.testConnectionButton, Qt.MouseButton.LeftButton)
    dialog.run_query()
    wait_for_tasks(dialog)
    assert "does not exist" in dialog.connectionLabel.text() and "does not exist" in dialog.statusLabel.text()

    dialog.databaseEdit.setText(local_database.local_path)
    assert dialog.connectionLabel.text() == "" and dialog.statusLabel.text() == ""

    dialog.databaseCombo.setCurrentIndex(0)  # and a choice in the list does the same
    dialog.databaseCombo.setCurrentIndex(dialog.databaseCombo.count() - 1)
    QTest.mouseClick(dialog.testConnectionButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    assert "variables, segments from" in dialog.connectionLabel.text()


def test_a_connection_answer_for_a_database_no_longer_chosen_is_not_shown(dialog, local_database, tmp_path):
    dialog.databaseEdit.setText(str(tmp_path / "missing"))
    dialog.test_connection()
    dialog.databaseEdit.setText(local_database.local_path)  # before the answer arrives
    wait_for_tasks(dialog)
    assert dialog.connectionLabel.text() == ""


# --------------------------------------------------------------------------- messages in plain words


def test_warnings_start_with_a_capital_and_name_the_plugin_once(dialog, iface, tmp_path):
    dialog.use_canvas_extent()
    dialog.set_variables([])
    QTest.mouseClick(dialog.runButton, Qt.MouseButton.LeftButton)
    assert warnings_shown(iface)[-1] == "Canopy Explorer:No variable is selected: tick at least one in Variables, then run again"

    dialog.set_variables(["h_canopy"])
    dialog.databaseEdit.setText(str(tmp_path / "missing"))
    dialog.run_query()
    wait_for_tasks(dialog)
    engine_message = warnings_shown(iface)[-1]  # the engine writes it in lower case, to be quoted in other messages
    assert re.match(r"Canopy Explorer:[A-Z/]", engine_message) and "does not exist" in engine_message

    dialog._warn("Canopy Explorer cannot run yet: tiledb is missing.")
    assert warnings_shown(iface)[-1] == ":Canopy Explorer cannot run yet: tiledb is missing."  # no "Canopy Explorer: Canopy Explorer"


def test_an_unexpected_error_reaches_the_user_in_plain_words_with_the_details_in_the_log(dialog, iface, monkeypatch):
    from shapely.errors import GEOSException

    def broken(*args, **kwargs):
        raise GEOSException("IllegalArgumentException: Points of LinearRing do not form a closed linestring")

    logged = []
    QgsApplication.messageLog().messageReceived.connect(lambda text, tag, level: logged.append(text))
    monkeypatch.setattr(SegmentQuery, "create", broken)
    dialog.use_canvas_extent()
    assert dialog.run_query() is None  # before the fix: the GEOSException escaped into QGIS's Python error bar
    message = warnings_shown(iface)[-1]
    assert message == ("Canopy Explorer:The ATL08 query stopped on an unexpected problem in Canopy Explorer (GEOSException). "
                       "The details are in the Log Messages panel (Canopy Explorer tab); please report them")
    assert "GEOSException(" not in dialog.statusLabel.text()
    assert any("Traceback" in text and "closed linestring" in text for text in logged)


def test_clicking_run_asks_before_loading_a_large_result(dialog, monkeypatch):
    """The button's clicked(bool) must not reach run_query's ask_above: the question is asked."""
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: asked.append(args[2]) or QMessageBox.StandardButton.No)
    dialog.maxRowsSpin.setValue(1000)
    dialog.use_canvas_extent()
    QTest.mouseClick(dialog.runButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    assert len(asked) == 1 and result_layers() == []


# --------------------------------------------------------------------------- the sample database from an installed plugin


@pytest.fixture
def installed_without_sample_data(monkeypatch, tmp_path):
    """The plugin as installed from its zip: configs/sample_local.yaml names no database, and the user's
    data folder (QgsApplication.qgisSettingsDirPath()) is a temporary one. The user's sample folder is returned."""
    from canopy_explorer.plugin import database_source

    root = Path(__file__).resolve().parent.parent
    bundled = tmp_path / "plugins" / "canopy_explorer" / "configs" / "sample_local.yaml"
    bundled.parent.mkdir(parents=True)
    bundled.write_text((root / "configs" / "sample_local.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    user = tmp_path / "profile" / "canopy_explorer" / "sample_data" / "atl08_db"
    monkeypatch.setattr(database_source, "BUNDLED_SAMPLE_CONFIG", str(bundled))
    monkeypatch.setattr(database_source, "user_sample_folder", lambda: user)
    return user


def answer_questions(monkeypatch, answer):
    asked = []

    def question(*args, **kwargs):
        asked.append(args[2])
        return answer

    monkeypatch.setattr(QMessageBox, "question", question)
    return asked


def choose_sample_database(dialog):
    index = dialog.databaseCombo.findData(SAMPLE_CONFIG)
    dialog.databaseCombo.setCurrentIndex(index)
    dialog.databaseCombo.activated.emit(index)  # as when the user picks it in the list


def test_choosing_the_missing_sample_database_offers_to_build_it_then_uses_it(dialog, installed_without_sample_data, monkeypatch):
    from canopy_explorer.plugin.core.lidar.config import local_config

    asked = answer_questions(monkeypatch, QMessageBox.StandardButton.Yes)
    choose_sample_database(dialog)
    assert len(asked) == 1 and str(installed_without_sample_data) in asked[0]
    wait_for_tasks(dialog, timeout=180)  # the build, then the connection test it leads to
    assert (installed_without_sample_data / "array_uri").is_dir()
    assert "variables, segments from 2019" in dialog.connectionLabel.text()

    demo_box = (9.6, 50.6, 10.3, 51.3)
    dialog.set_roi((demo_box, "EPSG:4326"), QgsGeometry.fromRect(QgsRectangle(*demo_box)), QgsCoordinateReferenceSystem("EPSG:4326"), "test")
    dialog.run_query()
    wait_for_tasks(dialog)
    [layer] = result_layers()
    span = [edit.date().toString("yyyy-MM-dd") for edit in (dialog.startDateEdit, dialog.endDateEdit)]
    assert span[0].startswith("2019") and span[1].startswith("2023")  # set by the connection test
    expected = engine_rows(local_config(installed_without_sample_data), demo_box, start=span[0], end=span[1])
    assert 0 < layer.featureCount() == len(expected)
    assert len(asked) == 1  # built once, not offered again


def test_running_a_query_on_the_missing_sample_database_offers_to_build_it_first(dialog, installed_without_sample_data, monkeypatch):
    asked = answer_questions(monkeypatch, QMessageBox.StandardButton.Yes)
    dialog.databaseCombo.setCurrentIndex(dialog.databaseCombo.findData(SAMPLE_CONFIG))  # restored from settings: no question yet
    assert asked == []
    demo_box = (9.6, 50.6, 10.3, 51.3)
    dialog.set_roi((demo_box, "EPSG:4326"), QgsGeometry.fromRect(QgsRectangle(*demo_box)), QgsCoordinateReferenceSystem("EPSG:4326"), "test")
    dialog.startDateEdit.setDate(QDate(2019, 1, 1))
    assert dialog.run_query() is None  # not yet: the database is being built
    wait_for_tasks(dialog, timeout=180)
    assert len(asked) == 1 and len(result_layers()) == 1  # then the query ran on it


def test_declining_to_build_the_sample_database_builds_nothing_and_says_how_to_get_it(dialog, installed_without_sample_data, monkeypatch):
    asked = answer_questions(monkeypatch, QMessageBox.StandardButton.No)
    choose_sample_database(dialog)
    QTest.mouseClick(dialog.testConnectionButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    assert len(asked) == 2 and not dialog.tasks
    assert "The sample database is not built" in dialog.connectionLabel.text() and "make demo" in dialog.connectionLabel.text()
    assert not installed_without_sample_data.parent.parent.exists()
