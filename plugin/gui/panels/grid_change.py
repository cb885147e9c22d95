"""The change of a variable between two periods on an equal-area hexagon grid, for areas too large for
points. It reads the database and region above, and the first variable and the quality filters of the
ATL08 query."""

from typing import Optional

from qgis.core import Qgis, QgsProject
from qgis.gui import QgsFileWidget
from qgis.PyQt import uic
from qgis.PyQt.QtCore import QDate

from ...core.errors import CanopyExplorerError, QueryError
from ...core.grid.change import GridChangeRequest
from ...layers.grid_layer import load_grid_layers
from ...resources import ui_path
from ...tasks.grid_change_task import GridChangeTask
from ..components.database_box import DatabaseBox
from ..components.date_range import DateRange
from ..components.filter_editor import FilterEditor
from ..components.region_box import RegionBox
from ..components.variable_picker import VariablePicker
from ..messages import FOLLOW_IN_TASK_MANAGER, escape
from .atl08_base import Atl08Panel
from .base import place

FORM_CLASS, _ = uic.loadUiType(ui_path("grid_change_panel.ui"))


class GridChangePanel(Atl08Panel, FORM_CLASS):
    key = "grid_change"
    title = "Grid change"
    icon_name = "grid_change.svg"
    uses_region = True

    def __init__(self, iface, database: DatabaseBox, region: RegionBox, variables: VariablePicker, filters: FilterEditor,
                 parent=None):
        super().__init__(iface, database, variables, filters, parent)
        self.region = region
        self.period1 = place(DateRange(QDate(2018, 10, 1), QDate(2021, 12, 31)), self.period1Holder)
        self.period2 = place(DateRange(QDate(2022, 1, 1), QDate(2025, 12, 31)), self.period2Holder)
        self.gridOutputWidget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.gridOutputWidget.setFilter("GeoPackage (*.gpkg);;GeoTIFF (*.tif)")
        region.changed.connect(self.inputs_changed)
        self.runButton.clicked.connect(self.map_grid_change)
        self.usesLabel.linkActivated.connect(lambda key: self.openPanel.emit(key, ""))
        for component in (variables, filters):
            component.changed.connect(self._show_what_is_used)
        self._show_what_is_used()

    def _show_what_is_used(self, *_):
        variables = self.variables.selected_variables()
        mapped = f"the first variable ({variables[0]})" if variables else "the first variable (none is ticked yet)"
        self.usesLabel.setText(escape(f"Maps {mapped} with the {self.filters.summary()} of ") + "<a href='atl08_query'>ATL08 query</a>.")

    def map_grid_change(self) -> Optional[GridChangeTask]:
        if not self.database.ensure_sample_database(then=self.map_grid_change):
            return None
        return self.launch("The grid change", self.build_task, self._grid_change_done, FOLLOW_IN_TASK_MANAGER)

    def build_task(self) -> GridChangeTask:
        output = self.gridOutputWidget.filePath().strip()
        if not output:
            raise QueryError("no output file for the grid: choose a GeoPackage or GeoTIFF, then map again")
        if not output.lower().endswith((".gpkg", ".tif", ".tiff")):
            output += ".gpkg"
        if self.gridWholeCheck.isChecked():
            roi, roi_crs = None, "EPSG:4326"
        elif self.region.roi is None:
            raise QueryError("no region of interest yet: choose one in Region of interest, or tick 'Whole database'")
        else:
            roi, roi_crs = self.region.roi
        variables = self.variables.selected_variables()
        if not variables:
            raise QueryError("no variable is selected: tick one in the ATL08 query's Variables (the first selected one is mapped)")
        filters = self.filters.checked("map again")
        request = GridChangeRequest.create(
            self.database.config(), output, roi=roi, roi_crs=roi_crs, variable=variables[0],
            periods=((self.period1.start(), self.period1.end()), (self.period2.start(), self.period2.end())),
            cell_size_km=self.cellSizeSpin.value(), min_shots=self.minShotsSpin.value(), filters=filters,
            scheduler=self.schedulerEdit.text(), scheduler_label="the Dask scheduler",
        )
        return GridChangeTask(request)

    def _grid_change_done(self, task: GridChangeTask, output):
        try:
            layers = load_grid_layers(output)
        except CanopyExplorerError as error:
            self.warn(str(error))
            return
        for layer in layers:
            QgsProject.instance().addMapLayer(layer)
        result = output.result
        text = (f"{len(result):,} cells with at least {result.min_shots} segments in both periods "
                f"({result.segments[0]:,} and {result.segments[1]:,} segments) written to {output.path}.")
        self.message(text, Qgis.MessageLevel.Success)
        self.show_status(text)
