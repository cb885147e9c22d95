"""The ATL08 query panel, driven as a user drives it: the shared database, region, variables and filters,
its own output tab, Run query, the task, the layer; and the query's errors in plain words on its own status line."""

import re

import pytest
from qgis.core import QgsApplication, QgsGeometry, QgsRectangle, QgsVectorLayer
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import QMessageBox

from canvas_events import drag
from dialog_fixtures import *  # noqa: F401,F403
from dialog_fixtures import engine_rows, result_layers, warnings_shown
from task_waits import wait_for_tasks, wait_until
from canopy_explorer.plugin.core.lidar.query import SegmentQuery
from canopy_explorer.plugin.qgis_compat import field_kind


def test_canvas_extent_query_adds_a_styled_layer_with_every_matching_segment(dialog, local_database, iface):
    QTest.mouseClick(dialog.region.canvasExtentButton, Qt.MouseButton.LeftButton)
    dialog.query.classesSpin.setValue(4)
    QTest.mouseClick(dialog.query.runButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    [layer] = result_layers()
    extent = dialog.canvas.extent()
    expected = engine_rows(local_database, (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()))
    assert layer.name() == "ATL08 h_canopy and 1 more, 2020-2021"
    assert layer.featureCount() == len(expected) > 100
    assert layer.crs().authid() == "EPSG:4326"
    types = {f.name(): field_kind(f) for f in layer.fields()}
    assert types["time"] == "datetime" and types["segment_id"] == "integer64" and types["h_canopy"] == "real"
    assert "canopy_h_metrics_p95" in types and types["beam_id"] == "string"
    renderer = layer.renderer()
    assert renderer.type() == "graduatedSymbol" and renderer.classAttribute() == "h_canopy" and len(renderer.ranges()) == 4
    assert "h_canopy between 5 60" in layer.metadata().abstract()
    assert any("segments loaded" in m for m in iface.messageBar().get_messages(3))  # Qgis.MessageLevel.Success


def test_several_queries_run_at_once_and_each_adds_its_layer(dialog):
    dialog.region.use_canvas_extent()
    dialog.query.run_query()
    dialog.variables.set_variables(["h_te_best_fit"])
    dialog.query.run_query()
    wait_for_tasks(dialog)
    names = sorted(layer.name() for layer in result_layers())
    assert names == ["ATL08 h_canopy and 1 more, 2020-2021", "ATL08 h_te_best_fit, 2020-2021"]


def test_a_query_draws_its_first_points_while_the_rest_is_read_then_the_finished_layer_takes_their_place(dialog, monkeypatch):
    from qgis.core import QgsProject

    from canopy_explorer.plugin.layers import preview_layer, segment_layer

    monkeypatch.setattr(segment_layer, "BATCH_ROWS", 60)  # the sample region's segments in several batches
    monkeypatch.setattr(preview_layer, "POINTS_PER_BATCH", 10)
    added, statuses = [], []
    record = lambda layers: added.extend((layer.name(), layer.featureCount(), layer.providerType()) for layer in layers)  # noqa: E731
    QgsProject.instance().layersAdded.connect(record)
    monkeypatch.setattr(dialog.query, "show_status", lambda text, error=False: statuses.append(text))
    try:
        dialog.region.use_canvas_extent()
        dialog.query.run_query()
        wait_for_tasks(dialog)
    finally:
        QgsProject.instance().layersAdded.disconnect(record)
    (preview_name, preview_points, preview_provider), (final_name, final_rows, final_provider) = added[0], added[-1]
    assert preview_provider == "memory" and "(loading:" in preview_name and 0 < preview_points <= 10
    assert final_provider == "ogr" and final_rows > 60 and final_name == preview_name.split(" (loading:")[0]
    names = [layer.name() for layer in result_layers()]
    assert final_name in names and not any("(loading:" in name for name in names)  # the preview has gone
    assert any(re.match(r"Read [\d,]+ of about [\d,]+ segments", text) for text in statuses)


def test_a_query_ending_while_its_preview_layer_is_being_added_leaves_no_layer():
    """QGIS may process events inside addMapLayer, so the task's end can arrive there (QGIS 3.22 crashed when
    the preview was removed under it): here the end is delivered from the project's layersAdded signal."""
    import pandas as pd
    from qgis.core import QgsProject

    from canopy_explorer.plugin.layers.preview_layer import PreviewLayer, preview_batch

    frame = pd.DataFrame({"longitude": [10.0, 10.1, 10.2], "latitude": [50.0, 50.1, 50.2], "h_canopy": [3.0, 9.0, 21.0]})
    preview = PreviewLayer("ATL08 h_canopy", "h_canopy", "h_canopy")
    shown = []
    preview.shown.connect(shown.append)
    end_on_add = lambda layers: preview.end()  # noqa: E731
    QgsProject.instance().layersAdded.connect(end_on_add)
    try:
        preview.add(preview_batch(frame, 3, 3, "h_canopy", 2, first=True))
    finally:
        QgsProject.instance().layersAdded.disconnect(end_on_add)
    assert [layer for layer in QgsProject.instance().mapLayers().values() if "(loading:" in layer.name()] == []
    assert shown == []  # nothing reported for a query that has ended
    preview.add(preview_batch(frame, 3, 3, "h_canopy", 2, first=False))  # a batch queued before the end adds nothing
    assert not any("(loading:" in layer.name() for layer in QgsProject.instance().mapLayers().values())


def test_cancelling_a_running_query_leaves_no_layer_and_no_file(dialog, tmp_path):
    dialog.query.outputFormatCombo.setCurrentIndex(dialog.query.outputFormatCombo.findData("GPKG"))
    dialog.query.outputFileWidget.setFilePath(str(tmp_path / "cancelled.gpkg"))
    dialog.region.use_canvas_extent()
    task = dialog.query.run_query()
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
    dialog.region.use_canvas_extent()
    dialog.filters.filtersEdit.setPlainText("n_te_photons >> 10")
    assert "n_te_photons >> 10" in dialog.filters.filterStatusLabel.text() or "column" in dialog.filters.filterStatusLabel.text()
    assert "color:#b00020" in dialog.filters.filterStatusLabel.text()
    QTest.mouseClick(dialog.query.runButton, Qt.MouseButton.LeftButton)
    assert not dialog.tasks
    assert any("quality filters" in m for m in iface.messageBar().get_messages(1))  # Qgis.MessageLevel.Warning


def test_the_variable_search_hides_what_does_not_match(dialog):
    dialog.variables.variableSearchEdit.setText("photons")
    visible = [item.text(0) for item in dialog.variables.variable_items() if not item.isHidden()]
    assert "n_ca_photons" in visible and "h_canopy" not in visible


def test_an_empty_result_says_so_and_adds_no_layer(dialog, iface):
    far_away = QgsRectangle(20, 60, 20.1, 60.1)
    dialog.region.set_roi(((20.0, 60.0, 20.1, 60.1), "EPSG:4326"), QgsGeometry.fromRect(far_away), dialog.canvas.mapSettings().destinationCrs(), "test")
    QTest.mouseClick(dialog.query.runButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    assert result_layers() == []
    # the message says why: nothing in the region (and where the database's segments are)
    assert any("No segments match" in m and "the region holds no segments in this database (its segments lie within lon 7" in m
               for m in iface.messageBar().get_messages(0))  # Qgis.MessageLevel.Info
    assert "the region holds no segments" in dialog.query.statusLabel.text()


def test_an_empty_result_names_the_filter_line_that_removed_the_last_segments(dialog, iface):
    dialog.region.set_roi(((7.05, 45.05, 7.25, 45.25), "EPSG:4326"), QgsGeometry.fromRect(QgsRectangle(7.05, 45.05, 7.25, 45.25)),
                   dialog.canvas.mapSettings().destinationCrs(), "test")
    dialog.filters.filtersEdit.setPlainText("h_canopy > 1000")
    QTest.mouseClick(dialog.query.runButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    assert result_layers() == []
    assert any(re.search(r"line \d+ 'h_canopy > 1000' removes the remaining [\d,]+", m) for m in iface.messageBar().get_messages(0))


def test_a_large_estimate_asks_before_loading(dialog, monkeypatch):
    answers = []

    def answer(*args, **kwargs):
        answers.append(args[2])
        return QMessageBox.StandardButton.No if len(answers) == 1 else QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    dialog.query.maxRowsSpin.setValue(1000)
    dialog.region.use_canvas_extent()
    dialog.query.run_query()
    wait_for_tasks(dialog)
    assert result_layers() == [] and "narrow" in dialog.query.statusLabel.text()
    dialog.query.run_query()
    wait_for_tasks(dialog)
    assert len(answers) == 2 and "more than the 1,000" in answers[0]
    assert len(result_layers()) == 1


def test_clicking_run_asks_before_loading_a_large_result(dialog, monkeypatch):
    """The button's clicked(bool) must not reach run_query's ask_above: the question is asked."""
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: asked.append(args[2]) or QMessageBox.StandardButton.No)
    dialog.query.maxRowsSpin.setValue(1000)
    dialog.region.use_canvas_extent()
    QTest.mouseClick(dialog.query.runButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    assert len(asked) == 1 and result_layers() == []


@pytest.mark.parametrize("suffix", [".gpkg", ".fgb", ".geojson", ".csv"])
def test_a_result_layer_exports_to_each_format_with_its_style(dialog, loaded_plugin, iface, tmp_path, suffix):
    dialog.region.use_canvas_extent()
    dialog.query.run_query()
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


# --------------------------------------------------------------------------- error lines that go when their cause does, in plain words


def test_an_error_line_is_cleared_when_the_region_variables_or_filters_change(dialog, canvas):
    QTest.mouseClick(dialog.query.runButton, Qt.MouseButton.LeftButton)
    assert "No region of interest yet" in dialog.query.statusLabel.text()
    QTest.mouseClick(dialog.region.drawRectangleButton, Qt.MouseButton.LeftButton)
    drag(canvas, (150, 150), (450, 400))
    assert dialog.query.statusLabel.text() == ""  # the region the error was about is there now

    dialog.variables.set_variables([])
    QTest.mouseClick(dialog.query.runButton, Qt.MouseButton.LeftButton)
    assert "No variable is selected" in dialog.query.statusLabel.text()
    dialog.variables.set_variables(["h_canopy"])
    assert dialog.query.statusLabel.text() == ""

    dialog.filters.filtersEdit.setPlainText("h_canopy >> 5")
    QTest.mouseClick(dialog.query.runButton, Qt.MouseButton.LeftButton)
    assert "quality filters are not valid" in dialog.query.statusLabel.text()
    dialog.filters.filtersEdit.setPlainText("h_canopy >= 5")
    assert dialog.query.statusLabel.text() == ""
    assert not dialog.tasks


def test_warnings_start_with_a_capital_and_name_the_plugin_once(dialog, iface, tmp_path):
    dialog.region.use_canvas_extent()
    dialog.variables.set_variables([])
    QTest.mouseClick(dialog.query.runButton, Qt.MouseButton.LeftButton)
    assert warnings_shown(iface)[-1] == "Canopy Explorer:No variable is selected: tick at least one in Variables, then run again"

    dialog.variables.set_variables(["h_canopy"])
    dialog.database.databaseEdit.setText(str(tmp_path / "missing"))
    dialog.query.run_query()
    wait_for_tasks(dialog)
    engine_message = warnings_shown(iface)[-1]  # the engine writes it in lower case, to be quoted in other messages
    assert re.match(r"Canopy Explorer:[A-Z/]", engine_message) and "does not exist" in engine_message

    dialog.query.warn("Canopy Explorer cannot run yet: tiledb is missing.")
    assert warnings_shown(iface)[-1] == ":Canopy Explorer cannot run yet: tiledb is missing."  # no "Canopy Explorer: Canopy Explorer"


def test_an_unexpected_error_reaches_the_user_in_plain_words_with_the_details_in_the_log(dialog, iface, monkeypatch):
    from shapely.errors import GEOSException

    def broken(*args, **kwargs):
        raise GEOSException("IllegalArgumentException: Points of LinearRing do not form a closed linestring")

    logged = []
    QgsApplication.messageLog().messageReceived.connect(lambda text, tag, level: logged.append(text))
    monkeypatch.setattr(SegmentQuery, "create", broken)
    dialog.region.use_canvas_extent()
    assert dialog.query.run_query() is None  # before the fix: the GEOSException escaped into QGIS's Python error bar
    message = warnings_shown(iface)[-1]
    assert message == ("Canopy Explorer:The ATL08 query stopped on an unexpected problem in Canopy Explorer (GEOSException). "
                       "The details are in the Log Messages panel (Canopy Explorer tab); please report them")
    assert "GEOSException(" not in dialog.query.statusLabel.text()
    assert any("Traceback" in text and "closed linestring" in text for text in logged)
