"""The region of interest: drawn on the map, the canvas extent, or a polygon layer; checked by the engine
as soon as it is set and kept outlined on the map. One box, shared by the panels that work over a region
(ATL08 query, grid change, NDVI composites)."""

from typing import Callable, ContextManager, Optional, Tuple

from qgis.core import QgsCoordinateReferenceSystem, QgsGeometry, QgsRectangle
from qgis.gui import QgsMapCanvas, QgsRubberBand
from qgis.PyQt import uic
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QGroupBox

from ...core.errors import QueryError
from ...core.lidar.regions import region_on_earth
from ...layers.roi_source import crs_text, roi_from_geometry, roi_from_layer, roi_from_rectangle
from ...qgis_compat import POLYGON_GEOMETRY, POLYGON_LAYERS
from ...resources import ui_path
from ..map_tools import ROI_FILL, ROI_STROKE, ROI_STROKE_WIDTH, PolygonRoiTool, RectangleRoiTool
from .map_picking import MapPicking

FORM_CLASS, _ = uic.loadUiType(ui_path("region_box.ui"))

DRAW_AGAIN = "zoom to your area of interest or add a layer, then draw again"


class RegionBox(QGroupBox, FORM_CLASS):
    """``roi``: None, or (box or shapely geometry, CRS) as the engine takes it. ``changed``: a new region.
    Errors go through ``reporting(action)``, the context manager of the panel the user is on."""

    changed = pyqtSignal()

    def __init__(self, canvas: QgsMapCanvas, picking: MapPicking, reporting: Callable[[str], ContextManager], parent=None):
        super().__init__(parent)
        self.setupUi(self)
        self.canvas = canvas
        self.picking = picking
        self.reporting = reporting
        self.roi: Optional[Tuple[object, str]] = None
        self.roi_band = QgsRubberBand(canvas, POLYGON_GEOMETRY)
        self.roi_band.setStrokeColor(ROI_STROKE)
        self.roi_band.setFillColor(ROI_FILL)
        self.roi_band.setWidth(ROI_STROKE_WIDTH)
        self.roiLayerCombo.setFilters(POLYGON_LAYERS)
        self.drawRectangleButton.clicked.connect(lambda: self.draw(RectangleRoiTool(self.canvas), "rectangle"))
        self.drawPolygonButton.clicked.connect(lambda: self.draw(PolygonRoiTool(self.canvas), "polygon"))
        self.canvasExtentButton.clicked.connect(self.use_canvas_extent)
        self.layerRoiButton.clicked.connect(self.use_layer)

    def draw(self, tool, shape: str) -> None:
        self.picking.start(tool, lambda geometry: self._drawn(geometry, shape))

    def _drawn(self, geometry: QgsGeometry, shape: str):
        crs = self.canvas.mapSettings().destinationCrs()
        with self.reporting("Setting the region you drew"):
            check_canvas_crs(crs, "then draw again")
            self.set_roi(roi_from_geometry(geometry, crs), geometry, crs, "drawn on the map",
                         what=f"the {shape} you drew", advice=DRAW_AGAIN)

    def use_canvas_extent(self) -> bool:
        """The canvas extent as the region; False (with a warning saying why) when it cannot be one."""
        advice = "zoom or pan the map to your area of interest (add a layer first if the project is empty), then click Canvas extent again"
        with self.reporting("Using the canvas extent"):
            crs = self.canvas.mapSettings().destinationCrs()
            extent = self.canvas.extent()
            check_canvas_crs(crs, "then click Canvas extent again")
            if extent.isNull() or extent.isEmpty() or not extent.isFinite():
                raise QueryError("the canvas extent is empty (the map shows nothing yet, as in a project without layers), "
                                 f"so it cannot be the region: {advice}")
            return self.set_roi(roi_from_rectangle(extent, crs), QgsGeometry.fromRect(extent), crs, "the canvas extent",
                                what="the canvas extent", advice=advice)
        return False

    def use_layer(self) -> bool:
        with self.reporting("Using the layer as the region"):
            layer = self.roiLayerCombo.currentLayer()
            selected = self.selectedOnlyCheck.isChecked()
            roi = roi_from_layer(layer, selected)
            origin = f"{'selected features of ' if selected else ''}layer '{layer.name()}'"
            return self.set_roi(roi, qgs_geometry(roi[0]), layer.crs(), origin, what=f"the {origin}" if selected else origin,
                                advice="check that the layer's CRS is the one its coordinates are in (Layer Properties > Source)")
        return False

    def set_roi(self, roi, geometry: QgsGeometry, crs: QgsCoordinateReferenceSystem, origin: str,
                what: str = "the region", advice: str = "choose the region again") -> bool:
        """Keep ``roi`` ((box or shapely geometry, CRS) as the engine takes it) as the region, after the
        engine's check: a region off the Earth or without area raises a QueryError and the previous
        region stays. Part of a region beyond the Earth is clipped off, and the map shows what is kept."""
        checked = region_on_earth(roi[0], roi[1], what, advice)
        if checked.clipped:
            geometry = qgs_geometry(checked.roi)
        self.roi = (checked.roi, checked.crs)
        self.roi_band.reset(POLYGON_GEOMETRY)
        self.roi_band.setToGeometry(geometry, crs)
        west, south, east, north = checked.bounds
        clipped = " (clipped to the part on the Earth)" if checked.clipped else ""
        self.roiLabel.setText(f"Region: {origin}, lon {west:.4f} to {east:.4f}, lat {south:.4f} to {north:.4f}{clipped}.")
        self.changed.emit()
        return True

    def clear_canvas_items(self):
        self.canvas.scene().removeItem(self.roi_band)


def check_canvas_crs(crs: QgsCoordinateReferenceSystem, then: str) -> None:
    """A map canvas without a CRS (a project with no layers and no CRS) cannot place a region or a point on the Earth."""
    if crs is None or not crs.isValid():
        raise QueryError("the map has no coordinate reference system (the project has no layers and no CRS), so it cannot "
                         f"place the region on the Earth: add a layer or set the project's CRS (Project > Properties > CRS), {then}")
    crs_text(crs, "the map")


def qgs_geometry(roi) -> QgsGeometry:
    """A region as the engine holds it (a box or a shapely geometry) as a QgsGeometry, to show on the map."""
    import shapely

    if isinstance(roi, tuple):
        west, south, east, north = roi
        return QgsGeometry.fromRect(QgsRectangle(west, south, east + 360.0 if east < west else east, north))
    geometry = QgsGeometry()
    geometry.fromWkb(shapely.to_wkb(roi))
    return geometry
