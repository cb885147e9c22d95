"""The map tools that pick a region of interest or a point, driven by real mouse and key events.

Events go through a real QgsMapCanvas: presses, releases, clicks and keys are sent
with QTest to the canvas (its viewport for the mouse), which passes them to the
active map tool as QGIS does. Mouse moves are sent as QMouseEvents with
QApplication.sendEvent, because QTest.mouseMove in Qt 5 only moves the cursor
(QCursor.setPos), which the offscreen platform never turns into an event.

Each test gets its own shown canvas rather than pytest-qgis's session canvas, so
the extents and CRSs set here do not leak into other tests.
"""

import pytest
from qgis.core import QgsCoordinateReferenceSystem, QgsGeometry, QgsRectangle
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtCore import QCoreApplication, QEvent, QPoint, Qt
from qgis.PyQt.QtTest import QTest

from canvas_events import LEFT, NO_MODIFIER, RIGHT, click, drag, map_point, move_mouse, press_key

from canopy_explorer.plugin.gui.map_tools import PointPickTool, PolygonRoiTool, RectangleRoiTool
from canopy_explorer.plugin.qgis_compat import POLYGON_GEOMETRY


WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")
MERCATOR = QgsCoordinateReferenceSystem("EPSG:3857")


@pytest.fixture
def make_canvas(qgis_app):
    """Shown 600x400 canvases with a given CRS and extent; closed and deleted afterwards."""
    canvases = []

    def make(crs: QgsCoordinateReferenceSystem, extent: QgsRectangle) -> QgsMapCanvas:
        canvas = QgsMapCanvas()
        canvas.resize(600, 400)
        canvas.show()
        # The viewport gets its real size only once shown; extent and pixels depend on it.
        assert QTest.qWaitForWindowExposed(canvas)
        canvas.setDestinationCrs(crs)
        canvas.setExtent(extent)
        canvases.append(canvas)
        return canvas

    yield make
    for canvas in canvases:
        canvas.unsetMapTool(canvas.mapTool())
        canvas.close()
        canvas.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


@pytest.fixture
def mercator_canvas(make_canvas):
    return make_canvas(MERCATOR, QgsRectangle(-2_000_000, 5_000_000, 4_000_000, 9_000_000))


@pytest.fixture
def geographic_canvas(make_canvas):
    return make_canvas(WGS84, QgsRectangle(5.0, 44.0, 11.0, 48.0))


def record(signal):
    """The arguments of every emission of ``signal``, copied (QGIS may reuse the objects)."""
    emissions = []
    signal.connect(lambda *args: emissions.append(tuple(type(a)(a) for a in args)))
    return emissions


def coordinates(points):
    """x0, y0, x1, y1, ...: flat, for pytest.approx, which does not compare nested sequences."""
    return [c for p in points for c in (p.x(), p.y())]


def exterior(geometry):
    assert geometry.type() == POLYGON_GEOMETRY and not geometry.isMultipart()
    return coordinates(geometry.asPolygon()[0])


def band_points(band):
    return [band.getPoint(0, i) for i in range(band.numberOfVertices())]


# Rectangle


def test_rectangle_drag_emits_the_polygon_whose_corners_are_the_dragged_pixels(mercator_canvas):
    canvas = mercator_canvas
    tool = RectangleRoiTool(canvas)
    canvas.setMapTool(tool)
    drawn = record(tool.roiDrawn)

    drag(canvas, (100, 80), (340, 290))

    assert len(drawn) == 1
    corners = [map_point(canvas, x, y) for x, y in [(100, 80), (340, 80), (340, 290), (100, 290)]]
    assert exterior(drawn[0][0]) == pytest.approx(coordinates(corners + corners[:1]))
    assert drawn[0][0].isGeosValid()


def test_rectangle_band_follows_the_drag_and_stays_after_release(mercator_canvas):
    canvas = mercator_canvas
    tool = RectangleRoiTool(canvas)
    canvas.setMapTool(tool)
    band = tool.rubber_band
    assert 0 < band.fillColor().alpha() < 255  # the map stays visible under the region

    QTest.mousePress(canvas.viewport(), LEFT, NO_MODIFIER, QPoint(100, 80))
    move_mouse(canvas, 200, 150, LEFT)
    assert band.isVisible()
    corners = [map_point(canvas, x, y) for x, y in [(100, 80), (200, 80), (200, 150), (100, 150)]]
    assert coordinates(band_points(band)) == pytest.approx(coordinates(corners))

    move_mouse(canvas, 300, 250, LEFT)
    QTest.mouseRelease(canvas.viewport(), LEFT, NO_MODIFIER, QPoint(300, 250))
    corners = [map_point(canvas, x, y) for x, y in [(100, 80), (300, 80), (300, 250), (100, 250)]]
    assert coordinates(band_points(band)) == pytest.approx(coordinates(corners))


@pytest.mark.parametrize("end", [(300, 80), (100, 250), (100, 80)], ids=["zero height", "zero width", "click"])
def test_degenerate_rectangle_emits_nothing_and_clears_the_band(mercator_canvas, end):
    canvas = mercator_canvas
    tool = RectangleRoiTool(canvas)
    canvas.setMapTool(tool)
    drawn = record(tool.roiDrawn)

    drag(canvas, (100, 80), end)

    assert drawn == []
    assert tool.rubber_band.numberOfVertices() == 0


def test_escape_after_a_rectangle_clears_it_and_emits_cancelled(mercator_canvas):
    canvas = mercator_canvas
    tool = RectangleRoiTool(canvas)
    canvas.setMapTool(tool)
    cancelled = record(tool.cancelled)
    drag(canvas, (100, 80), (300, 250))
    assert tool.rubber_band.numberOfVertices() > 0

    press_key(canvas, Qt.Key.Key_Escape)

    assert cancelled == [()]
    assert tool.rubber_band.numberOfVertices() == 0


def test_escape_in_the_middle_of_a_drag_cancels_the_rectangle(mercator_canvas):
    canvas = mercator_canvas
    tool = RectangleRoiTool(canvas)
    canvas.setMapTool(tool)
    drawn, cancelled = record(tool.roiDrawn), record(tool.cancelled)
    QTest.mousePress(canvas.viewport(), LEFT, NO_MODIFIER, QPoint(100, 80))
    move_mouse(canvas, 300, 250, LEFT)

    press_key(canvas, Qt.Key.Key_Escape)
    assert cancelled == [()]
    assert tool.rubber_band.numberOfVertices() == 0
    QTest.mouseRelease(canvas.viewport(), LEFT, NO_MODIFIER, QPoint(300, 250))

    assert drawn == []
    assert cancelled == [()]


def test_rectangle_deactivation_clears_the_band_and_emits_deactivated(mercator_canvas):
    canvas = mercator_canvas
    tool = RectangleRoiTool(canvas)
    canvas.setMapTool(tool)
    deactivated = record(tool.deactivated)
    drag(canvas, (100, 80), (300, 250))

    canvas.unsetMapTool(tool)

    assert deactivated == [()]
    assert tool.rubber_band.numberOfVertices() == 0


# Polygon


POLYGON_PIXELS = [(100, 80), (400, 60), (450, 300), (150, 320)]


def test_polygon_clicks_then_right_click_emit_the_clicked_vertices(geographic_canvas):
    canvas = geographic_canvas
    tool = PolygonRoiTool(canvas)
    canvas.setMapTool(tool)
    drawn = record(tool.roiDrawn)

    for x, y in POLYGON_PIXELS:
        click(canvas, x, y)
    assert drawn == []
    click(canvas, 500, 350, RIGHT)  # finishes; the right-click spot is not a vertex

    assert len(drawn) == 1
    vertices = [map_point(canvas, x, y) for x, y in POLYGON_PIXELS]
    assert exterior(drawn[0][0]) == pytest.approx(coordinates(vertices + vertices[:1]))
    assert drawn[0][0].isGeosValid()
    assert tool.rubber_band.numberOfVertices() > 0  # the finished region stays shown


def test_polygon_band_shows_the_vertices_and_a_last_segment_following_the_mouse(geographic_canvas):
    canvas = geographic_canvas
    tool = PolygonRoiTool(canvas)
    canvas.setMapTool(tool)
    click(canvas, 100, 80)
    click(canvas, 400, 60)

    move_mouse(canvas, 450, 300)
    expected = [map_point(canvas, x, y) for x, y in [(100, 80), (400, 60), (450, 300)]]
    assert coordinates(band_points(tool.rubber_band)) == pytest.approx(coordinates(expected))

    move_mouse(canvas, 200, 350)
    assert coordinates(band_points(tool.rubber_band)[-1:]) == pytest.approx(coordinates([map_point(canvas, 200, 350)]))


def test_polygon_right_click_with_fewer_than_three_vertices_keeps_drawing(geographic_canvas):
    canvas = geographic_canvas
    tool = PolygonRoiTool(canvas)
    canvas.setMapTool(tool)
    drawn = record(tool.roiDrawn)
    click(canvas, 100, 80)
    click(canvas, 400, 60)

    click(canvas, 500, 350, RIGHT)
    assert drawn == []
    assert tool.rubber_band.numberOfVertices() > 0

    click(canvas, 450, 300)
    click(canvas, 500, 350, RIGHT)
    vertices = [map_point(canvas, x, y) for x, y in [(100, 80), (400, 60), (450, 300)]]
    assert len(drawn) == 1
    assert exterior(drawn[0][0]) == pytest.approx(coordinates(vertices + vertices[:1]))


def test_backspace_removes_the_last_vertex(geographic_canvas):
    canvas = geographic_canvas
    tool = PolygonRoiTool(canvas)
    canvas.setMapTool(tool)
    drawn = record(tool.roiDrawn)
    for x, y in POLYGON_PIXELS:
        click(canvas, x, y)

    press_key(canvas, Qt.Key.Key_Backspace)
    click(canvas, 500, 350, RIGHT)

    vertices = [map_point(canvas, x, y) for x, y in POLYGON_PIXELS[:3]]
    assert len(drawn) == 1
    assert exterior(drawn[0][0]) == pytest.approx(coordinates(vertices + vertices[:1]))


def test_escape_cancels_a_polygon_being_drawn(geographic_canvas):
    canvas = geographic_canvas
    tool = PolygonRoiTool(canvas)
    canvas.setMapTool(tool)
    drawn, cancelled = record(tool.roiDrawn), record(tool.cancelled)
    for x, y in POLYGON_PIXELS:
        click(canvas, x, y)

    press_key(canvas, Qt.Key.Key_Escape)

    assert cancelled == [()]
    assert tool.rubber_band.numberOfVertices() == 0
    click(canvas, 500, 350, RIGHT)  # the cancelled vertices are gone, so nothing to finish
    assert drawn == []


def test_bow_tie_polygon_is_emitted_as_a_valid_region_with_both_lobes(geographic_canvas):
    canvas = geographic_canvas
    tool = PolygonRoiTool(canvas)
    canvas.setMapTool(tool)
    drawn = record(tool.roiDrawn)
    bow_tie = [(100, 100), (300, 300), (300, 100), (100, 300)]
    corners = [map_point(canvas, x, y) for x, y in bow_tie]
    assert not QgsGeometry.fromPolygonXY([corners + corners[:1]]).isGeosValid()

    for x, y in bow_tie:
        click(canvas, x, y)
    click(canvas, 500, 350, RIGHT)

    assert len(drawn) == 1
    region = drawn[0][0]
    assert region.isGeosValid() and region.type() == POLYGON_GEOMETRY
    # Two triangles, each a quarter of the 200 x 200 pixel square.
    pixel = canvas.mapUnitsPerPixel()
    assert region.area() == pytest.approx(0.5 * (200 * pixel) ** 2)


def test_polygon_with_all_vertices_on_a_line_is_not_emitted(geographic_canvas):
    canvas = geographic_canvas
    tool = PolygonRoiTool(canvas)
    canvas.setMapTool(tool)
    drawn = record(tool.roiDrawn)
    for x, y in [(100, 100), (200, 200), (300, 300)]:
        click(canvas, x, y)

    click(canvas, 500, 350, RIGHT)

    assert drawn == []


def test_polygon_deactivation_and_reset_clear_the_drawing(geographic_canvas):
    canvas = geographic_canvas
    tool = PolygonRoiTool(canvas)
    canvas.setMapTool(tool)
    deactivated = record(tool.deactivated)
    click(canvas, 100, 80)
    click(canvas, 400, 60)
    tool.reset()
    assert tool.rubber_band.numberOfVertices() == 0
    assert tool.vertices == []

    click(canvas, 100, 80)
    click(canvas, 400, 60)
    canvas.unsetMapTool(tool)

    assert deactivated == [()]
    assert tool.rubber_band.numberOfVertices() == 0
    assert tool.vertices == []


# Point


def test_point_pick_emits_the_clicked_map_point_and_the_canvas_crs(mercator_canvas):
    canvas = mercator_canvas
    tool = PointPickTool(canvas)
    canvas.setMapTool(tool)
    picked = record(tool.pointPicked)

    click(canvas, 150, 120, RIGHT)
    assert picked == []
    click(canvas, 150, 120)

    assert len(picked) == 1
    point, crs = picked[0]
    expected = map_point(canvas, 150, 120)
    assert (point.x(), point.y()) == pytest.approx((expected.x(), expected.y()))
    assert crs.authid() == "EPSG:3857"


def test_point_pick_escape_emits_cancelled(geographic_canvas):
    canvas = geographic_canvas
    tool = PointPickTool(canvas)
    canvas.setMapTool(tool)
    picked, cancelled = record(tool.pointPicked), record(tool.cancelled)

    press_key(canvas, Qt.Key.Key_Escape)

    assert cancelled == [()] and picked == []


@pytest.mark.parametrize("tool_class", [RectangleRoiTool, PolygonRoiTool, PointPickTool])
def test_tools_show_a_crosshair_cursor(geographic_canvas, tool_class):
    # QgsMapTool's default is a crosshair too: this guards against a tool choosing another cursor.
    geographic_canvas.setMapTool(tool_class(geographic_canvas))
    assert geographic_canvas.cursor().shape() == Qt.CursorShape.CrossCursor
