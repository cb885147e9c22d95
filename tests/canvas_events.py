"""Real mouse and key events on a QgsMapCanvas, as a user produces them.

Presses, releases and clicks go through QTest to the canvas viewport. Moves are
sent as QMouseEvents with QApplication.sendEvent, because QTest.mouseMove in
Qt 5 only moves the cursor, which the offscreen platform never turns into an event.
"""

from qgis.core import QgsPointXY
from qgis.PyQt.QtCore import QEvent, QPoint, QPointF, Qt
from qgis.PyQt.QtGui import QMouseEvent
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import QApplication

NO_MODIFIER = Qt.KeyboardModifier.NoModifier
LEFT = Qt.MouseButton.LeftButton
RIGHT = Qt.MouseButton.RightButton


def map_point(canvas, x, y) -> QgsPointXY:
    """Where pixel (x, y) of the viewport is in map coordinates, computed apart from the tools."""
    return canvas.getCoordinateTransform().toMapCoordinates(x, y)


def move_mouse(canvas, x, y, buttons=Qt.MouseButton.NoButton):
    event = QMouseEvent(QEvent.Type.MouseMove, QPointF(x, y), Qt.MouseButton.NoButton, buttons, NO_MODIFIER)
    QApplication.sendEvent(canvas.viewport(), event)


def drag(canvas, start, end):
    QTest.mousePress(canvas.viewport(), LEFT, NO_MODIFIER, QPoint(*start))
    move_mouse(canvas, (start[0] + end[0]) // 2, (start[1] + end[1]) // 2, LEFT)
    move_mouse(canvas, *end, LEFT)
    QTest.mouseRelease(canvas.viewport(), LEFT, NO_MODIFIER, QPoint(*end))


def click(canvas, x, y, button=LEFT):
    move_mouse(canvas, x, y)
    QTest.mouseClick(canvas.viewport(), button, NO_MODIFIER, QPoint(x, y))


def press_key(canvas, key):
    QTest.keyClick(canvas, key)
