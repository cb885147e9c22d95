"""One map tool at a time for the dialog: it hides while the user draws a region or picks a point on the
map, and comes back when the tool emits its result or is cancelled (Esc)."""

from typing import Callable, Optional

from qgis.gui import QgsMapCanvas, QgsMapTool
from qgis.PyQt.QtWidgets import QWidget

from ..map_tools import PointPickTool


class MapPicking:
    def __init__(self, canvas: QgsMapCanvas, window: QWidget):
        self.canvas = canvas
        self.window = window
        self.tool: Optional[QgsMapTool] = None
        self._previous_tool: Optional[QgsMapTool] = None

    def start(self, tool: QgsMapTool, picked: Callable) -> None:
        """Make ``tool`` the canvas's tool, the dialog out of the way; ``picked`` gets what the tool emits
        (a point and its CRS, or a region's geometry) once the tool is gone and the dialog back."""
        self.stop()
        self.tool = tool
        self._previous_tool = self.canvas.mapTool()
        result = tool.pointPicked if isinstance(tool, PointPickTool) else tool.roiDrawn
        result.connect(lambda *values: self._picked(picked, values))
        tool.cancelled.connect(self._cancelled)
        self.canvas.setMapTool(tool)
        self.window.hide()

    def stop(self) -> None:
        """Give the canvas its previous tool back (when the dialog closes, or another pick starts)."""
        if self.tool is None:
            return
        if self.canvas.mapTool() is self.tool:
            self.canvas.unsetMapTool(self.tool)
            if self._previous_tool is not None:
                self.canvas.setMapTool(self._previous_tool)
        self.tool.deleteLater()
        self.tool = None

    def _picked(self, picked: Callable, values) -> None:
        self.stop()
        self.window.show()
        picked(*values)

    def _cancelled(self) -> None:
        self.stop()
        self.window.show()
