"""The main dialog: ATL08 queries (database, region, time, variables, filters, output), NDVI composites
and district statistics.

The dialog only gathers values and shows results: the query itself is
``write_query_output`` in a ``QueryTask``, the same code the Processing
algorithm runs.
"""

import datetime as dt
import re
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from shapely.geometry import box as shapely_box

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsMessageLog,
    QgsProject,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsRectangle,
    QgsSettings,
)
from qgis.gui import QgsFileWidget, QgsRubberBand, QgsVertexMarker
from qgis.PyQt import uic
from qgis.PyQt.QtCore import QDate, Qt
from qgis.PyQt.QtWidgets import QComboBox, QDialog, QFileDialog, QLineEdit, QListWidgetItem, QMessageBox, QTreeWidgetItem

from ..core.districts.statistics import DistrictStatsRequest, year_of
from ..core.errors import CanopyExplorerError, QueryError
from ..core.grid.change import GridChangeRequest
from ..core.lidar.atl08.catalogue import SCALAR, catalogue
from ..core.lidar.atl08.presets import PRESETS
from ..core.lidar.config import DatabaseConfig
from ..core.lidar.filters import ParsedFilters
from ..core.lidar.query import NearestRequest, SegmentQuery, resolve_columns
from ..core.lidar.regions import region_on_earth
from ..core.samples.database import sample_database_exists
from ..core.segment_files import FORMATS
from ..core.sentinel2.composites import CompositeRequest
from ..core.sentinel2.stac_search import default_stac_source
from ..database_source import PUBLIC_CONFIG, SAMPLE_CONFIG, DatabaseSource, sample_config
from ..layers.district_layer import districts_from_layer, load_statistics_layers, postgres_connection
from ..layers.grid_layer import load_grid_layers
from ..layers.ndvi_layer import load_composite_layer
from ..layers.roi_source import crs_text, roi_from_geometry, roi_from_layer, roi_from_rectangle
from ..layers.segment_layer import QueryOutput, QueryRequest
from ..qgis_compat import POLYGON_GEOMETRY, POLYGON_LAYERS
from ..resources import ui_path
from ..tasks.connection_task import ConnectionTestTask
from ..tasks.district_task import DistrictStatsTask
from ..tasks.grid_change_task import GridChangeTask
from ..tasks.ndvi_task import NdviCompositeTask
from ..tasks.query_task import NearestTask, QueryTask
from ..tasks.running import RunningTasks
from ..tasks.sample_database_task import SampleDatabaseTask
from .map_tools import ROI_FILL, ROI_STROKE, ROI_STROKE_WIDTH, PointPickTool, PolygonRoiTool, RectangleRoiTool

FORM_CLASS, _ = uic.loadUiType(ui_path("query_dialog.ui"))

TITLE = "Canopy Explorer"
LOG_TAG = "Canopy Explorer"
SETTINGS = "canopy_explorer/query/"
FOLLOW_IN_TASK_MANAGER = " (see the task manager to follow or cancel it)"
WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")
DATABASES = [("Public ATL08 v7 database (S3, GFZ Potsdam)", PUBLIC_CONFIG),
             ("Sample database (make demo)", SAMPLE_CONFIG),
             ("Other: configuration file, folder or s3:// URI", "")]
OPERATORS = ["==", "!=", "<", "<=", ">", ">=", "between", "in", "not in"]
ALL_LABELS = "All labels"
DEFAULT_VARIABLES = ("h_canopy",)
ERROR_STYLE = "<span style='color:#b00020'>{}</span>"
DRAW_AGAIN = "zoom to your area of interest or add a layer, then draw again"


class QueryDialog(QDialog, FORM_CLASS):
    def __init__(self, iface, parent=None):
        super().__init__(parent or (iface.mainWindow() if iface else None))
        self.setupUi(self)
        self.iface = iface
        self.canvas = iface.mapCanvas()
        self.tasks = RunningTasks()
        self.roi: Optional[Tuple[object, str]] = None  # (shapely geometry or box, CRS) as the engine takes it
        self.roi_band = QgsRubberBand(self.canvas, POLYGON_GEOMETRY)
        self.roi_band.setStrokeColor(ROI_STROKE)
        self.roi_band.setFillColor(ROI_FILL)
        self.roi_band.setWidth(ROI_STROKE_WIDTH)
        self.nearest_marker: Optional[QgsVertexMarker] = None
        self._tool = None
        self._previous_tool = None
        self.label_choice: Dict[str, str] = {}
        self.checked_order: List[str] = []  # variables in the order the user ticked them: the first names the layer

        for text, path in DATABASES:
            self.databaseCombo.addItem(text, path)
        self.roiLayerCombo.setFilters(POLYGON_LAYERS)
        self.outputFormatCombo.addItem("Temporary layer", "")
        for name in FORMATS:
            self.outputFormatCombo.addItem(name, name)
        self.outputFileWidget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.outputFileWidget.setFilter(";;".join(f"{n} (*{ext})" for n, (_, ext) in FORMATS.items()))
        self.presetCombo.addItems(list(PRESETS))
        self.filtersTable.horizontalHeader().setStretchLastSection(True)
        self._build_variable_tree()

        self._status_error = False  # the status line shows an error, cleared when an input changes
        self._sample_task: Optional[SampleDatabaseTask] = None
        self._database_generation = 0  # a connection test answers only for the database it was asked about

        self.databaseCombo.currentIndexChanged.connect(self._database_choice_changed)
        self.databaseCombo.activated.connect(self._database_chosen)  # the user's choice, not restore_settings
        self.databaseEdit.textChanged.connect(self._database_changed)
        self.endpointEdit.textChanged.connect(self._database_changed)
        self.authConfigSelect.selectedConfigIdChanged.connect(self._database_changed)
        self.browseDatabaseButton.clicked.connect(self._browse_database)
        self.testConnectionButton.clicked.connect(lambda: self.test_connection())
        self.drawRectangleButton.clicked.connect(lambda: self._start_drawing(RectangleRoiTool(self.canvas)))
        self.drawPolygonButton.clicked.connect(lambda: self._start_drawing(PolygonRoiTool(self.canvas)))
        self.canvasExtentButton.clicked.connect(self.use_canvas_extent)
        self.layerRoiButton.clicked.connect(self.use_layer)
        self.variableSearchEdit.textChanged.connect(self._filter_variable_tree)
        self.variablesTree.itemChanged.connect(self._variable_ticked)
        self.variablesTree.currentItemChanged.connect(self._show_labels_of)
        self.labelCombo.currentIndexChanged.connect(self._label_chosen)
        self.applyPresetButton.clicked.connect(self.apply_preset)
        self.addFilterButton.clicked.connect(lambda: self.add_filter_row())
        self.removeFilterButton.clicked.connect(self._remove_filter_row)
        self.filtersEdit.textChanged.connect(self.validate_filters)
        self.filtersEdit.textChanged.connect(self._inputs_changed)
        self.outputFormatCombo.currentIndexChanged.connect(self._output_format_changed)
        self.pickNearestButton.clicked.connect(self.pick_nearest_point)
        self.runButton.clicked.connect(lambda: self.run_query())  # clicked(bool) would land in ask_above
        self.buildNdviButton.clicked.connect(self.build_ndvi_composites)
        self.districtsLayerCombo.setFilters(POLYGON_LAYERS)
        self.districtsLayerCombo.layerChanged.connect(self.idFieldCombo.setLayer)
        self.idFieldCombo.setLayer(self.districtsLayerCombo.currentLayer())
        self.statsOutputWidget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.statsOutputWidget.setFilter("GeoPackage (*.gpkg)")
        self.tabs.currentChanged.connect(lambda _: (self.refresh_composites(), self.refresh_connections()))
        self.computeStatsButton.clicked.connect(self.compute_district_stats)
        self.gridOutputWidget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.gridOutputWidget.setFilter("GeoPackage (*.gpkg);;GeoTIFF (*.tif)")
        self.gridChangeButton.clicked.connect(self.map_grid_change)
        self.ndviFolderWidget.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        stac = default_stac_source()
        self.stacUrlEdit.setText(stac.url)
        self.collectionEdit.setText(stac.collection)
        self.closeButton.clicked.connect(self.close)

        self.startDateEdit.setDate(QDate(2018, 10, 13))
        self.endDateEdit.setDate(QDate.currentDate())
        self.restore_settings()
        self._database_choice_changed()
        self._output_format_changed()
        self.validate_filters()

    # ------------------------------------------------------------------ database

    def _database_choice_changed(self):
        other = not self.databaseCombo.currentData()
        for widget in (self.databaseEdit, self.browseDatabaseButton, self.endpointEdit, self.endpointLabel,
                       self.authConfigSelect, self.authLabel):
            widget.setEnabled(other)
        self._database_changed()

    def _database_changed(self, *_):
        """Another database, source, endpoint or key: what was said about the previous one no longer holds."""
        self._database_generation += 1
        self.connectionLabel.setText("")
        self._inputs_changed()

    def _database_chosen(self, _index=None):
        if self._sample_chosen():
            self._ensure_sample_database(then=self.test_connection)

    def _sample_chosen(self) -> bool:
        return self.databaseCombo.currentData() == SAMPLE_CONFIG

    def _ensure_sample_database(self, then: Optional[Callable[[], None]] = None) -> bool:
        """True when the chosen database can be used now. For a sample database that is not built yet
        (a plugin installed from its zip has no sample data), ask to build it in the user's data folder;
        ``then`` runs once it is built."""
        if not self._sample_chosen():
            return True
        try:
            config = sample_config()
        except CanopyExplorerError as error:
            self._show_connection(f"Cannot use the sample database: {error}", error=True)
            return False
        if sample_database_exists(config):
            return True
        if self._sample_task is not None:
            self._show_connection(f"The sample database is being built in {config.base_uri}{FOLLOW_IN_TASK_MANAGER}.")
            return False
        answer = QMessageBox.question(
            self, TITLE,
            "The sample database is not on this computer yet: 'make demo' builds it in the repository, and a plugin installed "
            f"from its zip has no sample data.\n\nBuild it now in {config.base_uri}? Canopy Explorer writes 16 "
            "synthetic ATL08 granules over central Germany (2019-2023) and ingests them in the background: "
            "about 30 MB and a minute at most, with progress and Cancel in the task manager.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes,
        )
        if answer != QMessageBox.StandardButton.Yes:
            self._show_connection("The sample database is not built: choose it again and answer Yes to build it, "
                                  "run 'make demo' in the repository, or choose another database.", error=True)
            return False
        task = SampleDatabaseTask(config)
        self._sample_task = task
        task.completed.connect(lambda report, t=task: self._sample_database_built(t, report, then))
        task.failed.connect(lambda message: self._show_connection(f"Cannot build the sample database: {message}", error=True))
        task.taskCompleted.connect(lambda: setattr(self, "_sample_task", None))
        task.taskTerminated.connect(lambda t=task: self._sample_build_ended(t))
        self._show_connection(f"Building the sample database in {config.base_uri}{FOLLOW_IN_TASK_MANAGER}…")
        self._start(task)
        return False

    def _sample_build_ended(self, task: SampleDatabaseTask):
        self._sample_task = None
        if task.error is None:  # cancelled (a failure has said why already)
            self._show_connection("Building the sample database was cancelled; nothing was written. Choose the sample "
                                  "database again to build it.")

    def _sample_database_built(self, task: SampleDatabaseTask, report, then: Optional[Callable[[], None]]):
        self._message(f"The sample database is ready in {task.config.base_uri}.", Qgis.MessageLevel.Success)
        self._show_connection(f"Sample database ready in {task.config.base_uri}.")
        if then is not None and self._sample_chosen():
            then()

    def _browse_database(self):
        path, _ = QFileDialog.getOpenFileName(self, "Database configuration", self.databaseEdit.text(), "YAML (*.yaml *.yml)")
        if path:
            self.databaseEdit.setText(path)

    def database_config(self) -> DatabaseConfig:
        if self.databaseCombo.currentData():  # the public or the sample database
            return DatabaseSource(self.databaseCombo.currentData()).config()
        return DatabaseSource(self.databaseEdit.text(), self.endpointEdit.text(), self.authConfigSelect.configId()).config()

    def test_connection(self) -> Optional[ConnectionTestTask]:
        if not self._ensure_sample_database(then=self.test_connection):
            return None
        try:
            config = self.database_config()
        except CanopyExplorerError as error:
            self._show_connection(f"Cannot use this database: {error}", error=True)
            return None
        self._show_connection(f"Connecting to {config.array_uri}…")
        generation = self._database_generation
        task = ConnectionTestTask(config)
        task.completed.connect(lambda summary: self._connection_ok(summary) if generation == self._database_generation else None)
        task.failed.connect(lambda message: self._show_connection(f"Cannot use this database: {message}", error=True)
                            if generation == self._database_generation else None)
        self._start(task)
        return task

    def _connection_ok(self, summary: dict):
        start, end = summary["start"], summary["end"]
        self._show_connection(f"{len(summary['variables'])} variables, segments from {start} to {end}.")
        self.startDateEdit.setDate(_qdate(start))
        self.endDateEdit.setDate(_qdate(end))

    def _show_connection(self, text: str, error: bool = False):
        self.connectionLabel.setText(ERROR_STYLE.format(_escape(_sentence(text))) if error else text)

    # ------------------------------------------------------------------ region of interest

    def _start_drawing(self, tool):
        self._stop_drawing()
        self._tool = tool
        self._previous_tool = self.canvas.mapTool()
        if isinstance(tool, PointPickTool):
            tool.pointPicked.connect(self._nearest_point_picked)
        else:
            tool.roiDrawn.connect(self._roi_drawn)
        tool.cancelled.connect(self._drawing_cancelled)
        self.canvas.setMapTool(tool)
        self.hide()  # out of the way while the user draws; back when the tool emits

    def _stop_drawing(self):
        if self._tool is not None:
            if self.canvas.mapTool() is self._tool:
                self.canvas.unsetMapTool(self._tool)
                if self._previous_tool is not None:
                    self.canvas.setMapTool(self._previous_tool)
            self._tool.deleteLater()
            self._tool = None

    def _drawing_cancelled(self):
        self._stop_drawing()
        self.show()

    def _roi_drawn(self, geometry: QgsGeometry):
        crs = self.canvas.mapSettings().destinationCrs()
        shape = "rectangle" if isinstance(self._tool, RectangleRoiTool) else "polygon"
        self._stop_drawing()
        self.show()
        with self._reporting("Setting the region you drew"):
            _check_canvas_crs(crs, "then draw again")
            self.set_roi(roi_from_geometry(geometry, crs), geometry, crs, "drawn on the map",
                         what=f"the {shape} you drew", advice=DRAW_AGAIN)

    def use_canvas_extent(self) -> bool:
        """The canvas extent as the region; False (with a warning saying why) when it cannot be one."""
        advice = "zoom or pan the map to your area of interest (add a layer first if the project is empty), then click Canvas extent again"
        with self._reporting("Using the canvas extent"):
            crs = self.canvas.mapSettings().destinationCrs()
            extent = self.canvas.extent()
            _check_canvas_crs(crs, "then click Canvas extent again")
            if extent.isNull() or extent.isEmpty() or not extent.isFinite():
                raise QueryError("the canvas extent is empty (the map shows nothing yet, as in a project without layers), "
                                 f"so it cannot be the region: {advice}")
            return self.set_roi(roi_from_rectangle(extent, crs), QgsGeometry.fromRect(extent), crs, "the canvas extent",
                                what="the canvas extent", advice=advice)
        return False

    def use_layer(self) -> bool:
        with self._reporting("Using the layer as the region"):
            layer = self.roiLayerCombo.currentLayer()
            selected = self.selectedOnlyCheck.isChecked()
            roi = roi_from_layer(layer, selected)
            geometry = _qgs_geometry(roi[0])
            origin = f"{'selected features of ' if selected else ''}layer '{layer.name()}'"
            return self.set_roi(roi, geometry, layer.crs(), origin, what=f"the {origin}" if selected else origin,
                                advice="check that the layer's CRS is the one its coordinates are in (Layer Properties > Source)")
        return False

    def set_roi(self, roi, geometry: QgsGeometry, crs: QgsCoordinateReferenceSystem, origin: str,
                what: str = "the region", advice: str = "choose the region again") -> bool:
        """Keep ``roi`` ((box or shapely geometry, CRS) as the engine takes it) as the region, after the
        engine's check: a region off the Earth or without area raises a QueryError and the previous
        region stays. Part of a region beyond the Earth is clipped off, and the map shows what is kept."""
        checked = region_on_earth(roi[0], roi[1], what, advice)
        if checked.clipped:
            geometry = _qgs_geometry(checked.roi)
        self.roi = (checked.roi, checked.crs)
        self.roi_band.reset(POLYGON_GEOMETRY)
        self.roi_band.setToGeometry(geometry, crs)
        west, south, east, north = checked.bounds
        clipped = " (clipped to the part on the Earth)" if checked.clipped else ""
        self.roiLabel.setText(f"Region: {origin}, lon {west:.4f} to {east:.4f}, lat {south:.4f} to {north:.4f}{clipped}.")
        self._inputs_changed()
        return True

    # ------------------------------------------------------------------ variables

    def _build_variable_tree(self):
        self.variablesTree.blockSignals(True)
        groups: Dict[str, QTreeWidgetItem] = {}
        for variable in sorted(catalogue().values(), key=lambda v: (v.category, v.name)):
            if variable.is_orbit_info or variable.category in ("Reference",):
                continue
            group = groups.get(variable.category)
            if group is None:
                group = groups[variable.category] = QTreeWidgetItem(self.variablesTree, [variable.category])
                group.setFlags(group.flags() & ~Qt.ItemFlag.ItemIsUserCheckable)
            item = QTreeWidgetItem(group, [variable.name])
            item.setData(0, Qt.ItemDataRole.UserRole, variable.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(0, Qt.CheckState.Unchecked)
            units = "" if variable.units in ("adimensional", "") else f" [{variable.units}]"
            item.setToolTip(0, f"{variable.description}{units}")
        self.variablesTree.sortItems(0, Qt.SortOrder.AscendingOrder)
        self.variablesTree.expandAll()
        self.variablesTree.blockSignals(False)

    def _variable_items(self):
        for g in range(self.variablesTree.topLevelItemCount()):
            group = self.variablesTree.topLevelItem(g)
            for i in range(group.childCount()):
                yield group.child(i)

    def _filter_variable_tree(self, text: str):
        needle = text.strip().lower()
        for g in range(self.variablesTree.topLevelItemCount()):
            group = self.variablesTree.topLevelItem(g)
            visible = 0
            for i in range(group.childCount()):
                item = group.child(i)
                match = not needle or needle in item.text(0).lower() or needle in item.toolTip(0).lower()
                item.setHidden(not match)
                visible += match
            group.setHidden(visible == 0)

    def set_variables(self, variables) -> None:
        """Check the given variables (``name`` or ``name:label``) and nothing else."""
        wanted = {}
        for text in variables:
            name, _, label = text.partition(":")
            wanted[name.strip()] = label.strip() or ALL_LABELS
        self.variablesTree.blockSignals(True)
        for item in self._variable_items():
            name = item.data(0, Qt.ItemDataRole.UserRole)
            item.setCheckState(0, Qt.CheckState.Checked if name in wanted else Qt.CheckState.Unchecked)
            if name in wanted and catalogue()[name].kind != SCALAR:
                self.label_choice[name] = wanted[name]
        self.variablesTree.blockSignals(False)
        self.checked_order = [name for name in wanted if name in catalogue()]
        self._variables_changed()

    def selected_variables(self) -> List[str]:
        chosen = []
        for name in self.checked_order:
            label = self.label_choice.get(name, ALL_LABELS)
            chosen.append(name if label == ALL_LABELS else f"{name}:{label}")
        return chosen

    def _show_labels_of(self, item, _previous=None):
        name = item.data(0, Qt.ItemDataRole.UserRole) if item else None
        variable = catalogue().get(name) if name else None
        self.labelCombo.blockSignals(True)
        self.labelCombo.clear()
        if variable is not None and variable.labels:
            self.labelCombo.addItem(ALL_LABELS)
            self.labelCombo.addItems([str(label) for label in variable.labels])
            self.labelCombo.setCurrentText(self.label_choice.get(name, ALL_LABELS))
        self.labelCombo.setEnabled(self.labelCombo.count() > 0)
        self.labelCombo.blockSignals(False)

    def _label_chosen(self):
        item = self.variablesTree.currentItem()
        name = item.data(0, Qt.ItemDataRole.UserRole) if item else None
        if name:
            self.label_choice[name] = self.labelCombo.currentText()
            self._variables_changed()

    def _variable_ticked(self, item, _column=0):
        name = item.data(0, Qt.ItemDataRole.UserRole)
        if not name:
            return
        ticked = item.checkState(0) == Qt.CheckState.Checked
        if ticked and name not in self.checked_order:
            self.checked_order.append(name)
        elif not ticked and name in self.checked_order:
            self.checked_order.remove(name)
        self._variables_changed()

    def _variables_changed(self, *_):
        self._inputs_changed()
        variables = self.selected_variables()
        self.selectedVariablesLabel.setText("Selected: " + (", ".join(variables) or "none"))
        current = self.colourByCombo.currentText()
        self.colourByCombo.clear()
        try:
            self.colourByCombo.addItems([c.name for c in resolve_columns(variables)])
        except QueryError:
            pass
        if current:
            self.colourByCombo.setCurrentText(current)

    # ------------------------------------------------------------------ filters

    def add_filter_row(self, variable: str = "h_canopy", operator: str = ">=", value: str = "") -> None:
        row = self.filtersTable.rowCount()
        self.filtersTable.insertRow(row)
        names = QComboBox()
        names.addItems(sorted(v.name for v in catalogue().values() if v.kind == SCALAR))
        names.setCurrentText(variable)
        operators = QComboBox()
        operators.addItems(OPERATORS)
        operators.setCurrentText(operator)
        value_edit = QLineEdit(value)
        value_edit.setPlaceholderText("5   or   5 60 (between)   or   [111, 112] (in)")
        for widget, column in ((names, 0), (operators, 1), (value_edit, 2)):
            self.filtersTable.setCellWidget(row, column, widget)
        for signal in (names.currentIndexChanged, operators.currentIndexChanged, value_edit.textChanged):
            signal.connect(self.validate_filters)
            signal.connect(self._inputs_changed)
        self.validate_filters()
        self._inputs_changed()

    def _remove_filter_row(self):
        row = self.filtersTable.currentRow()
        self.filtersTable.removeRow(row if row >= 0 else self.filtersTable.rowCount() - 1)
        self.validate_filters()
        self._inputs_changed()

    def filter_lines(self) -> List[str]:
        lines = []
        for row in range(self.filtersTable.rowCount()):
            variable = self.filtersTable.cellWidget(row, 0).currentText()
            operator = self.filtersTable.cellWidget(row, 1).currentText()
            value = self.filtersTable.cellWidget(row, 2).text().strip()
            if value:
                lines.append(f"{variable} {operator} {value}")
        lines += [line.strip() for line in self.filtersEdit.toPlainText().splitlines() if line.strip()]
        return lines

    def validate_filters(self) -> bool:
        """Check the filters as typed; the parser's message is kept in ``filter_error`` and shown inline, the
        parse in ``parsed_filters``, from which the requests are built (the text is not parsed twice)."""
        lines = self.filter_lines()
        self.filter_error = None
        self.parsed_filters = ParsedFilters("", ())
        try:
            self.parsed_filters = ParsedFilters.parse(lines)
        except QueryError as error:
            self.filter_error = str(error)
            self.filterStatusLabel.setText(ERROR_STYLE.format(_escape(_sentence(self.filter_error))))
            return False
        self.filterStatusLabel.setText(f"{len(lines)} condition(s), evaluated in the database." if lines else "No filters.")
        return True

    def apply_preset(self):
        self.filtersEdit.setPlainText(PRESETS[self.presetCombo.currentText()])

    # ------------------------------------------------------------------ output

    def _output_format_changed(self):
        output_format = self.outputFormatCombo.currentData()
        self.outputFileWidget.setEnabled(bool(output_format))
        if output_format:
            path = self.outputFileWidget.filePath()
            extension = FORMATS[output_format][1]
            if path and not path.endswith(extension):
                self.outputFileWidget.setFilePath(path.rsplit(".", 1)[0] + extension)

    def output_path(self) -> Optional[str]:
        output_format = self.outputFormatCombo.currentData()
        if not output_format:
            return None
        path = self.outputFileWidget.filePath().strip()
        if not path:
            raise QueryError(f"choose a file to save the {output_format} to, or 'Temporary layer'")
        extension = FORMATS[output_format][1]
        return path if path.lower().endswith(extension) else path + extension

    # ------------------------------------------------------------------ running

    def build_request(self, ask_above: bool = True) -> QueryRequest:
        if self.roi is None:
            raise QueryError("no region of interest yet: draw one, use the canvas extent or a polygon layer (Region and time), then run again")
        variables = self.selected_variables()
        if not variables:
            raise QueryError("no variable is selected: tick at least one in Variables, then run again")
        if not self.validate_filters():
            raise QueryError(f"the quality filters are not valid ({self.filter_error}): fix them, then run again")
        filters = self.parsed_filters
        start = self.startDateEdit.date().toString("yyyy-MM-dd")
        end = self.endDateEdit.date().toString("yyyy-MM-dd")
        roi, roi_crs = self.roi
        spec = SegmentQuery.create(roi=roi, start=start, end=end, variables=variables, filters=filters, roi_crs=roi_crs,
                                   exact_times=self.exactTimesCheck.isChecked())
        return QueryRequest(
            self.database_config(), spec, tuple(variables), filters.text, output_path=self.output_path(),
            colour_by=self.colourByCombo.currentText() or None, classes=self.classesSpin.value(),
            max_rows=self.maxRowsSpin.value() if ask_above else None,
        )

    def run_query(self, ask_above: bool = True) -> Optional[QueryTask]:
        if not self._ensure_sample_database(then=lambda: self.run_query(ask_above)):
            return None
        request = None
        with self._reporting("The ATL08 query"):
            request = self.build_request(ask_above)
        if request is None:
            return None
        self.save_settings()
        task = QueryTask(request)
        self._run(task, lambda output, t=task: self._query_completed(t, output, t.layer), FOLLOW_IN_TASK_MANAGER)
        return task

    def _run(self, task, done, hint: str = ""):
        """Start a task whose result goes to ``done`` and whose failure is warned about, saying so."""
        task.completed.connect(lambda result, what=task.description(): self._finish(what, done, result))
        task.failed.connect(self._warn)
        self._show_status(f"Running {task.description()}…{hint}")
        self._start(task)

    def _finish(self, what: str, done, result):
        """A task's result shown (layers added, messages): a defect there is reported, not raised into QGIS."""
        with self._reporting(f"Showing the result of {what}"):
            done(result)

    def _start(self, task):
        self.tasks.start(task)

    def _query_completed(self, task: QueryTask, output: QueryOutput, layer):
        if output.needs_confirmation:
            answer = QMessageBox.question(
                self, TITLE,
                f"This query would load about {output.estimated_rows:,} segments, more than the "
                f"{task.request.max_rows:,} you asked to be warned about. Load them anyway?\n\n"
                "Choose Open to map them on an equal-area grid instead (Grid change tab), "
                "or No to narrow the region, time range or filters first.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Open | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer == QMessageBox.StandardButton.Yes:
                self.run_query(ask_above=False)
            elif answer == QMessageBox.StandardButton.Open:
                self.tabs.setCurrentWidget(self.gridTab)
                self._show_status("Choose the periods, cell size and output, then map the change on a grid.")
            else:
                self._show_status("Query not run: narrow the region, time range or filters.")
            return
        self.add_output_layer(output, layer)

    def add_output_layer(self, output: QueryOutput, layer):
        if output.rows == 0 or layer is None:
            why = f" ({output.empty_reason})" if output.empty_reason else ""
            self._message(f"No segments match this region, time range and filters; no layer was added{why}.", Qgis.MessageLevel.Info)
            self._show_status(_escape(f"No segments matched{why}."))
            return None
        QgsProject.instance().addMapLayer(layer)
        self._message(f"{output.rows:,} segments loaded as '{output.layer_name}'.", Qgis.MessageLevel.Success)
        self._show_status(f"Loaded {output.rows:,} segments ({output.path}).")
        return layer

    # ------------------------------------------------------------------ nearest shots

    def pick_nearest_point(self):
        self.tabs.setCurrentWidget(self.nearestTab)
        self._start_drawing(PointPickTool(self.canvas))

    def _nearest_point_picked(self, point, crs):
        self._stop_drawing()
        self.show()
        return self._nearest_shots(point, crs)

    def _nearest_shots(self, point, crs) -> Optional[NearestTask]:
        self._mark(point)
        if not self._ensure_sample_database(then=lambda: self._nearest_shots(point, crs)):
            return None
        task = None
        with self._reporting("The nearest-shots search"):
            _check_canvas_crs(crs, "then click the map again")
            wgs84 = QgsCoordinateTransform(crs, WGS84, QgsProject.instance()).transform(point)
            variables = self.selected_variables() or list(DEFAULT_VARIABLES)
            if not self.validate_filters():
                raise QueryError(f"the quality filters are not valid ({self.filter_error}): fix them, then click the map again")
            request = NearestRequest.create(
                (wgs84.x(), wgs84.y()), self.nearestCountSpin.value(), self.nearestRadiusSpin.value(), variables,
                self.parsed_filters, self.startDateEdit.date().toString("yyyy-MM-dd"),
                self.endDateEdit.date().toString("yyyy-MM-dd"),
            )
            task = NearestTask(self.database_config(), request, classes=self.classesSpin.value())
        if task is None:
            return None
        task.completed.connect(lambda output, t=task: self._finish(t.description(), lambda o: self.add_output_layer(o, t.layer), output))
        task.failed.connect(self._warn)
        self._start(task)
        return task

    def _mark(self, point):
        if self.nearest_marker is None:
            self.nearest_marker = QgsVertexMarker(self.canvas)
            self.nearest_marker.setIconType(QgsVertexMarker.IconType.ICON_CROSS)
            self.nearest_marker.setColor(ROI_STROKE)
            self.nearest_marker.setIconSize(14)
            self.nearest_marker.setPenWidth(3)
        self.nearest_marker.setCenter(point)

    # ------------------------------------------------------------------ NDVI composites

    def build_ndvi_composites(self) -> Optional[NdviCompositeTask]:
        task = None
        with self._reporting("The NDVI composites"):
            if self.roi is None:
                raise QueryError("no region yet: choose it in Region and time (draw it, use the canvas extent or a polygon layer), "
                                 "then build the composites again")
            folder = self.ndviFolderWidget.filePath().strip()
            if not folder:
                raise QueryError("no output folder for the composites: choose one, then build them again")
            roi, crs = self.roi
            boundary = roi if not isinstance(roi, tuple) else shapely_box(*roi)
            source = default_stac_source().with_changes(url=self.stacUrlEdit.text().strip(), collection=self.collectionEdit.text().strip())
            request = CompositeRequest.create(source, boundary, crs, self.yearsEdit.text(), self.maxCloudSpin.value(), folder,
                                              cover_whole=self.coverWholeCheck.isChecked(), classes=self.classesSpin.value())
            task = NdviCompositeTask(request)
        if task is None:
            return None
        self.save_settings()
        self._run(task, self._composites_built, " (progress per scene in the task manager)")
        return task

    def _composites_built(self, outputs):
        for output in outputs:
            try:
                QgsProject.instance().addMapLayer(load_composite_layer(output))
            except CanopyExplorerError as error:
                self._warn(str(error))
                continue
            if output.report.scenes_failed:
                self._message(output.report.summary(), Qgis.MessageLevel.Warning)
        self._message(f"{len(outputs)} NDVI composite(s) loaded.", Qgis.MessageLevel.Success)
        self._show_status("; ".join(output.report.summary() for output in outputs))

    # ------------------------------------------------------------------ district statistics

    def refresh_composites(self):
        """List the project's raster layers whose source names a year, keeping what was ticked."""
        ticked = {self.rastersList.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.rastersList.count())
                  if self.rastersList.item(i).checkState() == Qt.CheckState.Checked}
        self.rastersList.clear()
        for layer in QgsProject.instance().mapLayers().values():
            if not isinstance(layer, QgsRasterLayer):
                continue
            try:
                year = year_of(layer.source())
            except CanopyExplorerError:
                continue
            item = QListWidgetItem(f"{layer.name()} ({year})")
            item.setData(Qt.ItemDataRole.UserRole, layer.source())
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if not ticked or layer.source() in ticked else Qt.CheckState.Unchecked)
            self.rastersList.addItem(item)

    def refresh_connections(self):
        """The saved PostgreSQL connections, after "none" (embedded)."""
        current = self.postgresCombo.currentData()
        self.postgresCombo.clear()
        self.postgresCombo.addItem("None: compute here (embedded)", "")
        metadata = QgsProviderRegistry.instance().providerMetadata("postgres")
        for name in sorted(metadata.connections() if metadata else {}):
            self.postgresCombo.addItem(name, name)
        index = self.postgresCombo.findData(current)
        self.postgresCombo.setCurrentIndex(max(index, 0))

    def chosen_composites(self) -> List[str]:
        return [self.rastersList.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.rastersList.count())
                if self.rastersList.item(i).checkState() == Qt.CheckState.Checked]

    def compute_district_stats(self) -> Optional[DistrictStatsTask]:
        task = None
        with self._reporting("The district statistics"):
            output = self.statsOutputWidget.filePath().strip()
            if not output:
                raise QueryError("no GeoPackage for the statistics: choose one, then compute again")
            if not output.lower().endswith(".gpkg"):
                output += ".gpkg"
            districts = districts_from_layer(self.districtsLayerCombo.currentLayer(), self.idFieldCombo.currentField())
            geojson = str(Path(output).with_name(Path(output).stem + "_latest.geojson")) if self.geojsonCheck.isChecked() else None
            request = DistrictStatsRequest.create(districts, self.chosen_composites(), output,
                                                  connection=postgres_connection(self.postgresCombo.currentData() or ""),
                                                  classes=self.classesSpin.value(), geojson=geojson)
            task = DistrictStatsTask(request)
        if task is None:
            return None
        self._run(task, self._district_stats_done)
        return task

    def _district_stats_done(self, result):
        for layer in load_statistics_layers(result):
            QgsProject.instance().addMapLayer(layer)
        if result.repairs:
            self._message(f"{len(result.repairs)} district geometries were repaired or empty; see the log.", Qgis.MessageLevel.Warning)
            for district, reason in result.repairs:
                QgsMessageLog.logMessage(f"district {district}: {reason}", LOG_TAG, Qgis.MessageLevel.Warning)
        self._message(result.summary(), Qgis.MessageLevel.Success)
        self._show_status(result.summary())

    # ------------------------------------------------------------------ grid change

    def map_grid_change(self) -> Optional[GridChangeTask]:
        if not self._ensure_sample_database(then=self.map_grid_change):
            return None
        task = None
        with self._reporting("The grid change"):
            output = self.gridOutputWidget.filePath().strip()
            if not output:
                raise QueryError("no output file for the grid: choose a GeoPackage or GeoTIFF, then map again")
            if not output.lower().endswith((".gpkg", ".tif", ".tiff")):
                output += ".gpkg"
            if self.gridWholeCheck.isChecked():
                roi, roi_crs = None, "EPSG:4326"
            elif self.roi is None:
                raise QueryError("no region of interest yet: choose one in Region and time, or tick 'Whole database'")
            else:
                roi, roi_crs = self.roi
            variables = self.selected_variables()
            if not variables:
                raise QueryError("no variable is selected: tick one in Variables (the first selected one is mapped)")
            if not self.validate_filters():
                raise QueryError(f"the quality filters are not valid ({self.filter_error}): fix them, then map again")

            def day(edit):
                return edit.date().toString("yyyy-MM-dd")

            request = GridChangeRequest.create(
                self.database_config(), output, roi=roi, roi_crs=roi_crs, variable=variables[0],
                periods=((day(self.period1StartEdit), day(self.period1EndEdit)), (day(self.period2StartEdit), day(self.period2EndEdit))),
                cell_size_km=self.cellSizeSpin.value(), min_shots=self.minShotsSpin.value(), filters=self.parsed_filters,
            )
            task = GridChangeTask(request)
        if task is None:
            return None
        self._run(task, self._grid_change_done, FOLLOW_IN_TASK_MANAGER)
        return task

    def _grid_change_done(self, output):
        try:
            layers = load_grid_layers(output)
        except CanopyExplorerError as error:
            self._warn(str(error))
            return
        for layer in layers:
            QgsProject.instance().addMapLayer(layer)
        result = output.result
        text = (f"{len(result):,} cells with at least {result.min_shots} segments in both periods "
                f"({result.segments[0]:,} and {result.segments[1]:,} segments) written to {output.path}.")
        self._message(text, Qgis.MessageLevel.Success)
        self._show_status(text)

    # ------------------------------------------------------------------ messages and settings

    def _message(self, text: str, level=Qgis.MessageLevel.Info):
        text = _sentence(text)
        # "Canopy Explorer: Canopy Explorer cannot..." says the name twice: a text that starts with it needs no title
        title = "" if text.startswith(TITLE) else TITLE
        self.iface.messageBar().pushMessage(title, text, level=level, duration=8)

    def _warn(self, text: str):
        text = _sentence(text)
        QgsMessageLog.logMessage(text, LOG_TAG, Qgis.MessageLevel.Warning)
        self._show_status(ERROR_STYLE.format(_escape(text)), error=True)
        self._message(text, Qgis.MessageLevel.Warning)

    def _show_status(self, text: str, error: bool = False):
        self._status_error = error
        self.statusLabel.setText(text)

    def _inputs_changed(self, *_):
        """An input changed: an error about the previous inputs no longer holds (it comes back at Run if it does)."""
        if self._status_error:
            self._show_status("")

    @contextmanager
    def _reporting(self, action: str):
        """Where the dialog turns errors into messages: the engine's (written for the user) as they are;
        anything else, a defect, as what failed and where the details are, with the traceback in the log."""
        try:
            yield
        except CanopyExplorerError as error:
            self._warn(str(error))
        except Exception as error:  # noqa: BLE001 (a defect must not surface as QGIS's Python error bar)
            QgsMessageLog.logMessage(f"{action} failed:\n{traceback.format_exc()}", LOG_TAG, Qgis.MessageLevel.Critical)
            self._warn(f"{action} stopped on an unexpected problem in Canopy Explorer ({type(error).__name__}). "
                       "The details are in the Log Messages panel (Canopy Explorer tab); please report them")

    def save_settings(self):
        settings = QgsSettings()
        settings.setValue(SETTINGS + "database_choice", self.databaseCombo.currentIndex())
        settings.setValue(SETTINGS + "database", self.databaseEdit.text())
        settings.setValue(SETTINGS + "endpoint", self.endpointEdit.text())
        settings.setValue(SETTINGS + "auth_config", self.authConfigSelect.configId())  # an id, never the secret
        settings.setValue(SETTINGS + "variables", ",".join(self.selected_variables()))
        settings.setValue(SETTINGS + "filters", self.filtersEdit.toPlainText())
        settings.setValue(SETTINGS + "output_format", self.outputFormatCombo.currentIndex())
        settings.setValue(SETTINGS + "output_path", self.outputFileWidget.filePath())
        settings.setValue(SETTINGS + "classes", self.classesSpin.value())
        settings.setValue(SETTINGS + "max_rows", self.maxRowsSpin.value())
        settings.setValue(SETTINGS + "exact_times", self.exactTimesCheck.isChecked())
        for key, widget in (("ndvi_years", self.yearsEdit), ("stac_url", self.stacUrlEdit), ("stac_collection", self.collectionEdit)):
            settings.setValue(SETTINGS + key, widget.text())
        settings.setValue(SETTINGS + "ndvi_folder", self.ndviFolderWidget.filePath())
        settings.setValue(SETTINGS + "max_cloud", self.maxCloudSpin.value())

    def restore_settings(self):
        settings = QgsSettings()
        self.databaseCombo.setCurrentIndex(int(settings.value(SETTINGS + "database_choice", 0)))
        self.databaseEdit.setText(settings.value(SETTINGS + "database", ""))
        self.endpointEdit.setText(settings.value(SETTINGS + "endpoint", ""))
        self.authConfigSelect.setConfigId(settings.value(SETTINGS + "auth_config", ""))
        variables = [v for v in settings.value(SETTINGS + "variables", ",".join(DEFAULT_VARIABLES)).split(",") if v]
        self.set_variables(variables)
        self.filtersEdit.setPlainText(settings.value(SETTINGS + "filters", ""))
        self.outputFormatCombo.setCurrentIndex(int(settings.value(SETTINGS + "output_format", 0)))
        self.outputFileWidget.setFilePath(settings.value(SETTINGS + "output_path", ""))
        self.classesSpin.setValue(int(settings.value(SETTINGS + "classes", 5)))
        self.maxRowsSpin.setValue(int(settings.value(SETTINGS + "max_rows", 2_000_000)))
        self.exactTimesCheck.setChecked(settings.value(SETTINGS + "exact_times", False, type=bool))
        for key, widget in (("ndvi_years", self.yearsEdit), ("stac_url", self.stacUrlEdit), ("stac_collection", self.collectionEdit)):
            widget.setText(settings.value(SETTINGS + key, widget.text()))
        self.ndviFolderWidget.setFilePath(settings.value(SETTINGS + "ndvi_folder", ""))
        self.maxCloudSpin.setValue(float(settings.value(SETTINGS + "max_cloud", 20.0)))

    def closeEvent(self, event):  # noqa: N802
        self._stop_drawing()
        super().closeEvent(event)

    def clear_canvas_items(self):
        """Remove the ROI band and the nearest-point marker (when the plugin unloads)."""
        self._stop_drawing()
        self.canvas.scene().removeItem(self.roi_band)
        if self.nearest_marker is not None:
            self.canvas.scene().removeItem(self.nearest_marker)
            self.nearest_marker = None


def _check_canvas_crs(crs: QgsCoordinateReferenceSystem, then: str) -> None:
    """A map canvas without a CRS (a project with no layers and no CRS) cannot place a region on the Earth."""
    if crs is None or not crs.isValid():
        raise QueryError("the map has no coordinate reference system (the project has no layers and no CRS), so it cannot "
                         f"place the region on the Earth: add a layer or set the project's CRS (Project > Properties > CRS), {then}")
    crs_text(crs, "the map")


def _qgs_geometry(roi) -> QgsGeometry:
    """A region as the engine holds it (a box or a shapely geometry) as a QgsGeometry, to show on the map."""
    import shapely

    if isinstance(roi, tuple):
        west, south, east, north = roi
        return QgsGeometry.fromRect(QgsRectangle(west, south, east + 360.0 if east < west else east, north))
    geometry = QgsGeometry()
    geometry.fromWkb(shapely.to_wkb(roi))
    return geometry


_LEADING_WORD = re.compile(r"[a-z]+(?=[\s,;:(]|$)")


def _sentence(text: str) -> str:
    """Engine messages start in lower case (they are also quoted inside other messages); shown on their
    own they start with a capital. A leading name (a path, a variable such as h_canopy) is left as it is."""
    text = text.strip()
    if _LEADING_WORD.match(text):
        return text[0].upper() + text[1:]
    return text


def _qdate(day) -> QDate:
    value = dt.date.fromisoformat(str(day)[:10])
    return QDate(value.year, value.month, value.day)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
