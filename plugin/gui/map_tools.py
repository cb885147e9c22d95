"""Map tools the query dialog uses to pick a region of interest or a point on the map canvas.

The dialog hides while the user draws and comes back when a tool emits
``roiDrawn``, ``pointPicked`` or ``cancelled``. Geometries are emitted in the
canvas's destination CRS; the engine reprojects them (densified) for the query.
"""

from typing import List, Optional

from qgis.core import QgsCoordinateReferenceSystem, QgsGeometry, QgsPointXY
from qgis.gui import QgsMapCanvas, QgsMapMouseEvent, QgsMapTool, QgsRubberBand
from qgis.PyQt.QtCore import QPoint, Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor, QCursor, QKeyEvent

from ..core.polygons import polygonal_part
from ..qgis_compat import POLYGON_GEOMETRY


ROI_STROKE = QColor(230, 81, 0)
ROI_FILL = QColor(230, 81, 0, 60)  # translucent so the map under the region stays readable
ROI_STROKE_WIDTH = 2


class _CanvasPickingTool(QgsMapTool):
    """What every picking tool shares: a crosshair, Esc to cancel, clean-up on deactivation."""

    cancelled = pyqtSignal()

    def __init__(self, canvas: QgsMapCanvas):
        super().__init__(canvas)
        # QgsMapTool's default, set anyway: the dialog relies on the user seeing a crosshair.
        self.setCursor(QCursor(Qt.CursorShape.CrossCursor))

    def reset(self) -> None:
        """Forget what was drawn; subclasses clear their state and rubber band."""

    def deactivate(self) -> None:
        self.reset()
        super().deactivate()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.reset()
            event.accept()
            self.cancelled.emit()
        else:
            # Let the canvas keep its own keys (arrows pan, +/- zoom).
            event.ignore()


class _RoiTool(_CanvasPickingTool):
    """A picking tool that draws a polygon region with a rubber band and emits it."""

    roiDrawn = pyqtSignal(QgsGeometry)

    def __init__(self, canvas: QgsMapCanvas):
        super().__init__(canvas)
        self.rubber_band = QgsRubberBand(canvas, POLYGON_GEOMETRY)
        self.rubber_band.setStrokeColor(ROI_STROKE)
        self.rubber_band.setFillColor(ROI_FILL)
        self.rubber_band.setWidth(ROI_STROKE_WIDTH)

    def reset(self) -> None:
        self.rubber_band.reset(POLYGON_GEOMETRY)

    def _show_ring(self, points: List[QgsPointXY]) -> None:
        self.rubber_band.reset(POLYGON_GEOMETRY)
        for index, point in enumerate(points):
            # Repaint once, after the last point, not once per vertex.
            self.rubber_band.addPoint(point, index == len(points) - 1)


class RectangleRoiTool(_RoiTool):
    """Press, drag and release to draw a rectangular region; emits ``roiDrawn`` on release."""

    def __init__(self, canvas: QgsMapCanvas):
        super().__init__(canvas)
        self._start_pixel: Optional[QPoint] = None
        # While a mouse button is down QgsMapCanvas does not pass key presses to its map tool,
        # it only emits keyPressed: listen there so Esc also cancels in the middle of a drag.
        canvas.keyPressed.connect(self._canvas_key_pressed)

    def reset(self) -> None:
        self._start_pixel = None
        super().reset()

    def _canvas_key_pressed(self, event: QKeyEvent) -> None:
        # Outside a drag keyPressEvent has already handled the key (and ended any drag).
        if self._start_pixel is not None and event.key() == Qt.Key.Key_Escape:
            self.reset()
            self.cancelled.emit()

    def canvasPressEvent(self, event: QgsMapMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        self._start_pixel = event.pos()
        self.rubber_band.reset(POLYGON_GEOMETRY)

    def canvasMoveEvent(self, event: QgsMapMouseEvent) -> None:
        if self._start_pixel is not None:
            self._show_ring(self._corners(self._start_pixel, event.pos()))

    def canvasReleaseEvent(self, event: QgsMapMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._start_pixel is None:
            return
        start, end = self._start_pixel, event.pos()
        self._start_pixel = None
        if start.x() == end.x() or start.y() == end.y():
            # A click or a line has no area: nothing to query.
            self.rubber_band.reset(POLYGON_GEOMETRY)
            return
        corners = self._corners(start, end)
        # The band stays on the canvas showing the region until reset() or deactivate().
        self._show_ring(corners)
        self.roiDrawn.emit(QgsGeometry.fromPolygonXY([corners + [corners[0]]]))

    def _corners(self, start: QPoint, end: QPoint) -> List[QgsPointXY]:
        # Corners are taken from the screen rectangle pixel by pixel so that what is emitted
        # is what the user saw, also on a rotated canvas where it is not axis-aligned in map units.
        pixels = [start, QPoint(end.x(), start.y()), end, QPoint(start.x(), end.y())]
        return [self.toMapCoordinates(pixel) for pixel in pixels]


class PolygonRoiTool(_RoiTool):
    """Left-click adds vertices, right-click finishes (three or more), Backspace undoes the last
    vertex, Esc cancels. Emits ``roiDrawn`` with a valid polygon."""

    def __init__(self, canvas: QgsMapCanvas):
        super().__init__(canvas)
        self.vertices: List[QgsPointXY] = []
        self._cursor_point: Optional[QgsPointXY] = None

    def reset(self) -> None:
        self.vertices = []
        self._cursor_point = None
        super().reset()

    def canvasMoveEvent(self, event: QgsMapMouseEvent) -> None:
        self._cursor_point = event.mapPoint()
        if self.vertices:
            self._show_drawing()

    def canvasReleaseEvent(self, event: QgsMapMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            point = event.mapPoint()
            self._cursor_point = point
            # A double-click releases twice on one spot; a repeated vertex would only add a zero-length edge.
            if not self.vertices or self.vertices[-1] != point:
                self.vertices.append(point)
            self._show_drawing()
        elif event.button() == Qt.MouseButton.RightButton:
            self._finish()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        # Delete as well as Backspace, as in QGIS's own digitizing tools.
        if event.key() in (Qt.Key.Key_Backspace, Qt.Key.Key_Delete):
            if not self.vertices:
                event.ignore()
                return
            self.vertices.pop()
            self._show_drawing()
            event.accept()
        else:
            super().keyPressEvent(event)

    def _show_drawing(self) -> None:
        if not self.vertices:
            self.rubber_band.reset(POLYGON_GEOMETRY)
            return
        # The last segment follows the mouse so the user sees where the next click goes.
        following = [self._cursor_point] if self._cursor_point is not None else []
        self._show_ring(self.vertices + following)

    def _finish(self) -> None:
        if len(self.vertices) < 3:
            return  # not a polygon yet: keep drawing
        region = drawn_region(self.vertices)
        if region.isEmpty():
            return  # the ring collapsed (all points on a line): keep drawing so it can be fixed
        self.vertices = []
        # Show what is emitted (the repaired region of a bow-tie), without the cursor segment.
        self.rubber_band.setToGeometry(region)
        self.roiDrawn.emit(region)


class PointPickTool(_CanvasPickingTool):
    """Left-click emits ``pointPicked(point, crs)``: the map point in the canvas CRS."""

    pointPicked = pyqtSignal(QgsPointXY, QgsCoordinateReferenceSystem)

    def canvasReleaseEvent(self, event: QgsMapMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.pointPicked.emit(event.mapPoint(), self.canvas().mapSettings().destinationCrs())


def drawn_region(ring: List[QgsPointXY]) -> QgsGeometry:
    """The area of a drawn ring, repaired as the engine repairs any region (``core.polygons``):
    a bow-tie keeps both lobes; an empty geometry when the ring has no area."""
    import shapely

    region, _ = polygonal_part(shapely.from_wkb(bytes(QgsGeometry.fromPolygonXY([ring + [ring[0]]]).asWkb())))
    if region.is_empty:
        return QgsGeometry()
    geometry = QgsGeometry()
    geometry.fromWkb(shapely.to_wkb(region))
    return geometry
