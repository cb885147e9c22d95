"""The region of interest box: drawn on the map (the dialog hides meanwhile), the canvas extent in any CRS,
or a polygon layer; checked when it is set, so a region off the Earth is refused at once."""

import re

import pytest
import shapely
from qgis.core import (
    QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsFeature, QgsGeometry, QgsProject, QgsRectangle, QgsVectorLayer,
)
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtTest import QTest

from canvas_events import RIGHT, click, drag, map_point, press_key
from dialog_fixtures import *  # noqa: F401,F403
from dialog_fixtures import SAMPLE_EXTENT, EmptyProjectInterface, engine_rows, result_layers, warnings_shown
from task_waits import wait_for_tasks
from canopy_explorer.plugin.gui.explorer_dialog import ExplorerDialog
from canopy_explorer.plugin.gui.settings import ExplorerSettings


def test_drawing_a_rectangle_hides_the_dialog_and_queries_exactly_that_box(dialog, canvas, local_database):
    QTest.mouseClick(dialog.region.drawRectangleButton, Qt.MouseButton.LeftButton)
    assert not dialog.isVisible()
    drag(canvas, (150, 150), (450, 400))
    assert dialog.isVisible()
    corner_a, corner_b = map_point(canvas, 150, 150), map_point(canvas, 450, 400)
    box = (min(corner_a.x(), corner_b.x()), min(corner_a.y(), corner_b.y()), max(corner_a.x(), corner_b.x()), max(corner_a.y(), corner_b.y()))
    assert f"lon {box[0]:.4f} to {box[2]:.4f}" in dialog.region.roiLabel.text()
    assert dialog.region.roi_band.numberOfVertices() > 0  # the region stays shown on the map
    QTest.mouseClick(dialog.query.runButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    [layer] = result_layers()
    expected = engine_rows(local_database, box)
    assert 0 < layer.featureCount() == len(expected)
    assert {f["segment_id"] for f in layer.getFeatures()} == set(expected["segment_id"])


def test_drawing_a_polygon_queries_segments_inside_it_only(dialog, canvas, local_database):
    QTest.mouseClick(dialog.region.drawPolygonButton, Qt.MouseButton.LeftButton)
    pixels = [(100, 100), (500, 150), (420, 500), (150, 380)]
    for x, y in pixels:
        click(canvas, x, y)
    click(canvas, 300, 300, RIGHT)
    assert dialog.isVisible()
    polygon = shapely.Polygon([(p.x(), p.y()) for p in (map_point(canvas, x, y) for x, y in pixels)])
    QTest.mouseClick(dialog.query.runButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    [layer] = result_layers()
    in_box = engine_rows(local_database, polygon.bounds)
    inside = in_box[shapely.contains_xy(polygon, in_box["longitude"].to_numpy(), in_box["latitude"].to_numpy())]
    assert 0 < len(inside) < len(in_box)
    assert {f["segment_id"] for f in layer.getFeatures()} == set(inside["segment_id"])


def test_escape_cancels_drawing_and_brings_the_dialog_back_unchanged(dialog, canvas):
    QTest.mouseClick(dialog.region.drawPolygonButton, Qt.MouseButton.LeftButton)
    click(canvas, 100, 100)
    press_key(canvas, Qt.Key.Key_Escape)
    assert dialog.isVisible() and dialog.region.roi is None
    QTest.mouseClick(dialog.query.runButton, Qt.MouseButton.LeftButton)
    assert "region of interest" in dialog.query.statusLabel.text() and not dialog.tasks


def test_a_polygon_layer_roi_can_use_only_its_selected_features(dialog, local_database):
    layer = QgsVectorLayer("Polygon?crs=EPSG:4326", "districts", "memory")
    west, east = QgsFeature(), QgsFeature()
    west.setGeometry(QgsGeometry.fromWkt("POLYGON((7.0 45.0, 7.12 45.0, 7.12 45.3, 7.0 45.3, 7.0 45.0))"))
    east.setGeometry(QgsGeometry.fromWkt("POLYGON((7.18 45.0, 7.3 45.0, 7.3 45.3, 7.18 45.3, 7.18 45.0))"))
    layer.dataProvider().addFeatures([west, east])
    QgsProject.instance().addMapLayer(layer)
    layer.selectByIds([2])
    dialog.region.roiLayerCombo.setLayer(layer)
    dialog.region.selectedOnlyCheck.setChecked(True)
    QTest.mouseClick(dialog.region.layerRoiButton, Qt.MouseButton.LeftButton)
    assert "selected features of layer 'districts'" in dialog.region.roiLabel.text()
    QTest.mouseClick(dialog.query.runButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    [result] = result_layers()
    expected = engine_rows(local_database, (7.18, 45.0, 7.3, 45.3))
    assert result.featureCount() == len(expected) > 0
    assert min(f.geometry().asPoint().x() for f in result.getFeatures()) >= 7.18


def test_a_utm_canvas_extent_queries_the_same_segments_as_its_box_in_degrees(dialog, canvas, local_database):
    utm = QgsCoordinateReferenceSystem("EPSG:32632")
    canvas.setDestinationCrs(utm)
    canvas.setExtent(QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), utm, QgsProject.instance())
                     .transformBoundingBox(SAMPLE_EXTENT))
    assert dialog.region.use_canvas_extent() and "clipped" not in dialog.region.roiLabel.text()
    roi, crs = dialog.region.roi
    assert crs == "EPSG:32632"
    dialog.query.run_query()
    wait_for_tasks(dialog)
    [layer] = result_layers()
    expected = engine_rows(local_database, roi, "EPSG:32632")
    assert 0 < layer.featureCount() == len(expected)


# --------------------------------------------------------------------------- regions checked when they are set


@pytest.mark.parametrize("crs, why", [
    (QgsCoordinateReferenceSystem(), "the map has no coordinate reference system"),
    (QgsCoordinateReferenceSystem("EPSG:4326"), "the canvas extent is empty"),
], ids=["no CRS", "EPSG:4326"])
def test_canvas_extent_of_an_empty_project_gives_a_clear_warning_not_a_python_error(iface, loaded_plugin, crs, why):
    ExplorerSettings.clear()
    empty = EmptyProjectInterface(iface, crs)
    assert empty.canvas.extent().isEmpty()
    dialog = ExplorerDialog(empty)
    try:
        assert dialog.region.use_canvas_extent() is False  # before the fix: an unhandled QueryError
        assert dialog.region.roi is None and dialog.region.roiLabel.text() == "No region chosen yet."
        message = warnings_shown(iface)[-1]
        assert message.startswith(f"Canopy Explorer:{why[0].upper()}{why[1:]}")
        assert "add a layer" in message and "Canvas extent again" in message
        assert "color:#b00020" in dialog.query.statusLabel.text()
    finally:
        dialog.clear_canvas_items()
        dialog.deleteLater()


def test_a_rectangle_drawn_off_the_earth_is_refused_at_once_and_the_previous_region_kept(dialog, canvas, iface):
    assert dialog.region.use_canvas_extent()
    previous, previous_label = dialog.region.roi, dialog.region.roiLabel.text()
    canvas.setExtent(QgsRectangle(99, -540, 499, -240))  # where an empty project's canvas can drift
    QTest.mouseClick(dialog.region.drawRectangleButton, Qt.MouseButton.LeftButton)
    drag(canvas, (150, 150), (450, 400))

    assert dialog.isVisible()
    assert dialog.region.roi == previous and dialog.region.roiLabel.text() == previous_label
    message = warnings_shown(iface)[-1]
    assert re.fullmatch(r"Canopy Explorer:The rectangle you drew lies outside the Earth \(lon [\d.]+ to [\d.]+, lat -[\d.]+ to -[\d.]+\): "
                        r"zoom to your area of interest or add a layer, then draw again", message), message
    assert not dialog.tasks


def test_a_zoomed_out_web_mercator_canvas_extent_is_clipped_to_the_earth_not_refused(dialog, canvas):
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    canvas.setExtent(QgsRectangle(-4e7, -3e7, 4e7, 3e7))
    assert dialog.region.use_canvas_extent()
    assert "lon -180.0000 to 180.0000, lat -85.0600 to 85.0600 (clipped to the part on the Earth)" in dialog.region.roiLabel.text()
    assert dialog.region.roi[1] == "EPSG:3857" and dialog.region.roi[0].bounds[2] <= 20_037_508.35
