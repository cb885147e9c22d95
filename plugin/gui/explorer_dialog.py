"""The Canopy Explorer dialog: a list of the workflows on the left, the chosen workflow's panel on the right.

Six panels, one per workflow (plugin/gui/panels/), each with its own run button and status line. What
several workflows read is one component, made here once and shared: the ATL08 database and the region of
interest stand above the panels that use them (the database above the ATL08 query, nearest shots and grid
change; the region above the ATL08 query, grid change and NDVI composites); the time range, variables and
quality filters are laid out in the ATL08 query panel, and the nearest-shots and grid-change panels read
them and say so.
"""

from typing import List

from qgis.PyQt import uic
from qgis.PyQt.QtCore import QDate, QSize
from qgis.PyQt.QtWidgets import QDialog, QListWidgetItem

from ..resources import icon, ui_path
from .components.database_box import DatabaseBox
from .components.date_range import DateRange
from .components.filter_editor import FilterEditor
from .components.map_picking import MapPicking
from .components.region_box import RegionBox
from .components.variable_picker import VariablePicker
from .panels.atl08_query import Atl08QueryPanel
from .panels.base import BasePanel
from .panels.districts import DistrictsPanel
from .panels.grid_change import GridChangePanel
from .panels.ndvi import NdviPanel
from .panels.nearest import NearestPanel
from .panels.sample_rasters import SampleRastersPanel
from .settings import ExplorerSettings

FORM_CLASS, _ = uic.loadUiType(ui_path("explorer_dialog.ui"))

FIRST_ATL08_DAY = QDate(2018, 10, 13)


class ExplorerDialog(QDialog, FORM_CLASS):
    def __init__(self, iface, parent=None):
        super().__init__(parent or (iface.mainWindow() if iface else None))
        self.setupUi(self)
        self.iface = iface
        self.canvas = iface.mapCanvas()

        self.picking = MapPicking(self.canvas, self)
        self.database = DatabaseBox(iface.messageBar())
        self.region = RegionBox(self.canvas, self.picking, lambda action: self.current_panel().reporting(action))
        self.time_range = DateRange(FIRST_ATL08_DAY, QDate.currentDate())
        self.variables = VariablePicker()
        self.filters = FilterEditor()
        self.sharedLayout.addWidget(self.database, 3)
        self.sharedLayout.addWidget(self.region, 2)
        self.bodyLayout.setStretch(1, 1)  # the panels take the width and height the dialog has to spare
        self.workflowLayout.setStretch(1, 1)
        self.database.spanFound.connect(self.time_range.set_span)

        self.query = Atl08QueryPanel(iface, self.database, self.region, self.time_range, self.variables, self.filters)
        self.nearest = NearestPanel(iface, self.picking, self.database, self.time_range, self.variables, self.filters)
        self.grid_change = GridChangePanel(iface, self.database, self.region, self.variables, self.filters)
        self.ndvi = NdviPanel(iface, self.region)
        self.districts = DistrictsPanel(iface)
        self.sample_rasters = SampleRastersPanel(iface)
        self.panels: List[BasePanel] = [self.query, self.nearest, self.grid_change, self.ndvi, self.districts,
                                        self.sample_rasters]
        for panel in self.panels:
            self.workflowList.addItem(QListWidgetItem(icon(panel.icon_name), panel.title))
            self.panelLayout.addWidget(panel)
            panel.hide()
            panel.openPanel.connect(self._hand_over)
        self.workflowList.setFixedWidth(self.workflowList.sizeHintForColumn(0) + 2 * self.workflowList.frameWidth() + 12)
        self.workflowList.currentRowChanged.connect(self._show_row)
        self.buttonBox.rejected.connect(self.close)

        self.restore_settings()
        self.workflowList.setCurrentRow(0)
        self._show_row(0)
        self.resize(self.sizeHint().boundedTo(self._available_size()))

    # ------------------------------------------------------------------ panels

    def current_panel(self) -> BasePanel:
        return self.panels[max(self.workflowList.currentRow(), 0)]

    def show_panel(self, panel: BasePanel) -> BasePanel:
        self.workflowList.setCurrentRow(self.panels.index(panel))
        return panel

    def panel(self, key: str) -> BasePanel:
        return next(panel for panel in self.panels if panel.key == key)

    def _show_row(self, row: int):
        if row < 0:
            return
        panel = self.panels[row]
        # One panel shown, the others hidden (out of the layout): the dialog is as large as the panel on screen
        # needs, not the largest one (a QStackedWidget sizes itself for its largest page).
        for other in self.panels:
            if other is not panel:
                other.hide()
        panel.show()  # after the others are hidden, or the dialog would grow to hold two panels
        self.database.setVisible(panel.uses_database)
        self.region.setVisible(panel.uses_region)
        panel.runButton.setDefault(True)  # Enter runs the workflow on screen
        panel.refresh()

    def _hand_over(self, key: str, status: str):
        panel = self.show_panel(self.panel(key))
        if status:
            panel.show_status(status)

    def pick_nearest_point(self):
        """The "Nearest ATL08 shots" action: the nearest-shots panel, and a click on the map."""
        self.show_panel(self.nearest).pick_nearest_point()

    # ------------------------------------------------------------------ the whole dialog

    @property
    def tasks(self) -> list:
        """Every task the dialog started that is still running (the panels' and the database box's)."""
        return [task for owner in (self.database, *self.panels) for task in owner.tasks]

    def restore_settings(self):
        settings = ExplorerSettings.load()
        for owner in (self.database, self.variables, self.filters, *self.panels):
            owner.restore_settings(settings)

    def showEvent(self, event):  # noqa: N802
        super().showEvent(event)
        self.current_panel().refresh()  # layers or connections may have come and gone while the dialog was closed

    def closeEvent(self, event):  # noqa: N802
        self.picking.stop()
        super().closeEvent(event)

    def clear_canvas_items(self):
        """Remove the region's outline and the nearest-point marker (when the plugin unloads)."""
        self.picking.stop()
        self.region.clear_canvas_items()
        for panel in self.panels:
            panel.clear_canvas_items()

    def _available_size(self) -> QSize:
        screen = self.screen() if hasattr(self, "screen") else None
        return screen.availableGeometry().size() if screen is not None else QSize(1366, 768)
