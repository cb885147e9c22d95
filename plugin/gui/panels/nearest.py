"""The segments nearest to a point clicked on the map, by geodesic distance, with their distance. They are
read with the database, variables, time range and quality filters of the ATL08 query."""

from typing import Optional

from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject
from qgis.gui import QgsVertexMarker
from qgis.PyQt import uic

from ...core.lidar.query import NearestRequest
from ...resources import ui_path
from ...tasks.query_task import NearestTask
from ..components.database_box import DatabaseBox
from ..components.date_range import DateRange
from ..components.filter_editor import FilterEditor
from ..components.map_picking import MapPicking
from ..components.region_box import check_canvas_crs
from ..components.variable_picker import VariablePicker
from ..map_tools import ROI_STROKE, PointPickTool
from ..messages import escape
from ..settings import DEFAULT_VARIABLES, ExplorerSettings
from .atl08_base import Atl08Panel

FORM_CLASS, _ = uic.loadUiType(ui_path("nearest_panel.ui"))

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")


class NearestPanel(Atl08Panel, FORM_CLASS):
    key = "nearest"
    title = "Nearest shots"
    icon_name = "nearest.svg"

    def __init__(self, iface, picking: MapPicking, database: DatabaseBox, time_range: DateRange, variables: VariablePicker,
                 filters: FilterEditor, parent=None):
        super().__init__(iface, database, variables, filters, parent)
        self.picking = picking
        self.canvas = picking.canvas
        self.time_range = time_range
        self.nearest_marker: Optional[QgsVertexMarker] = None
        self.runButton.clicked.connect(self.pick_nearest_point)
        self.usesLabel.linkActivated.connect(lambda key: self.openPanel.emit(key, ""))
        for component in (time_range, variables, filters):
            component.changed.connect(self._show_what_is_used)
        self._show_what_is_used()

    def restore_settings(self, settings: ExplorerSettings) -> None:
        self.classesSpin.setValue(settings.classes)

    def store_settings(self, settings: ExplorerSettings) -> None:
        super().store_settings(settings)
        settings.classes = self.classesSpin.value()

    def _show_what_is_used(self, *_):
        variables = ", ".join(self.variables.selected_variables()) or f"{', '.join(DEFAULT_VARIABLES)}, as none is ticked"
        self.usesLabel.setText(escape(f"Reads the database above, and the variables ({variables}), the time range "
                                      f"({self.time_range.text()}) and the {self.filters.summary()} of ")
                               + "<a href='atl08_query'>ATL08 query</a>.")

    def pick_nearest_point(self):
        self.picking.start(PointPickTool(self.canvas), self.nearest_shots)

    def nearest_shots(self, point, crs) -> Optional[NearestTask]:
        self._mark(point)
        if not self.database.ensure_sample_database(then=lambda: self.nearest_shots(point, crs)):
            return None
        return self.launch("The nearest-shots search", lambda: self.build_task(point, crs),
                           lambda task, output: self.add_output_layer(output, task.layer))

    def build_task(self, point, crs) -> NearestTask:
        check_canvas_crs(crs, "then click the map again")
        wgs84 = QgsCoordinateTransform(crs, WGS84, QgsProject.instance()).transform(point)
        variables = self.variables.selected_variables() or list(DEFAULT_VARIABLES)
        filters = self.filters.checked("click the map again")
        config = self.database.config()
        request = NearestRequest.create((wgs84.x(), wgs84.y()), self.nearestCountSpin.value(), self.nearestRadiusSpin.value(),
                                        variables, filters, self.time_range.start(), self.time_range.end(),
                                        product=config.product)
        return NearestTask(config, request, classes=self.classesSpin.value())

    def _mark(self, point):
        if self.nearest_marker is None:
            self.nearest_marker = QgsVertexMarker(self.canvas)
            self.nearest_marker.setIconType(QgsVertexMarker.IconType.ICON_CROSS)
            self.nearest_marker.setColor(ROI_STROKE)
            self.nearest_marker.setIconSize(14)
            self.nearest_marker.setPenWidth(3)
        self.nearest_marker.setCenter(point)

    def clear_canvas_items(self) -> None:
        if self.nearest_marker is not None:
            self.canvas.scene().removeItem(self.nearest_marker)
            self.nearest_marker = None
