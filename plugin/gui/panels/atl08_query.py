"""The ATL08 query: the segments of a region, time range, variables and quality filters, loaded as a styled
point layer or written to a file. The query is ``write_query_output`` in a ``QueryTask``, the code the
Processing algorithm runs."""

from typing import Optional

from qgis.gui import QgsFileWidget
from qgis.PyQt import uic
from qgis.PyQt.QtWidgets import QMessageBox

from ...core.errors import QueryError
from ...core.lidar.query import SegmentQuery, resolve_columns
from ...core.segment_files import FORMATS
from ...layers.preview_layer import PreviewLayer
from ...layers.segment_layer import QueryOutput, QueryRequest
from ...resources import ui_path
from ...tasks.query_task import QueryTask
from ..components.database_box import DatabaseBox
from ..components.date_range import DateRange
from ..components.filter_editor import FilterEditor
from ..components.region_box import RegionBox
from ..components.variable_picker import VariablePicker
from ..messages import FOLLOW_IN_TASK_MANAGER, TITLE
from ..settings import ExplorerSettings
from .atl08_base import Atl08Panel
from .base import place

FORM_CLASS, _ = uic.loadUiType(ui_path("atl08_query_panel.ui"))


class Atl08QueryPanel(Atl08Panel, FORM_CLASS):
    key = "atl08_query"
    title = "ATL08 query"
    uses_region = True

    def __init__(self, iface, database: DatabaseBox, region: RegionBox, time_range: DateRange, variables: VariablePicker,
                 filters: FilterEditor, parent=None):
        super().__init__(iface, database, variables, filters, parent)
        self.region = region
        self.time_range = time_range
        place(time_range, self.timeRangeHolder)
        place(variables, self.variablesTab)
        place(filters, self.filtersTab)
        self.outputFormatCombo.addItem("Temporary layer", "")
        for name in FORMATS:
            self.outputFormatCombo.addItem(name, name)
        self.outputFileWidget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.outputFileWidget.setFilter(";;".join(f"{n} (*{ext})" for n, (_, ext) in FORMATS.items()))
        self.outputFormatCombo.currentIndexChanged.connect(self._output_format_changed)
        region.changed.connect(self.inputs_changed)
        variables.changed.connect(self._variables_changed)
        self.runButton.clicked.connect(lambda: self.run_query())  # clicked(bool) would land in ask_above
        self._output_format_changed()
        self._variables_changed()

    def restore_settings(self, settings: ExplorerSettings) -> None:
        self.outputFormatCombo.setCurrentIndex(min(max(settings.output_format, 0), self.outputFormatCombo.count() - 1))
        self.outputFileWidget.setFilePath(settings.output_path)
        self.classesSpin.setValue(settings.classes)
        self.maxRowsSpin.setValue(settings.max_rows)
        self.exactTimesCheck.setChecked(settings.exact_times)

    def store_settings(self, settings: ExplorerSettings) -> None:
        super().store_settings(settings)
        settings.output_format = self.outputFormatCombo.currentIndex()
        settings.output_path = self.outputFileWidget.filePath()
        settings.classes = self.classesSpin.value()
        settings.max_rows = self.maxRowsSpin.value()
        settings.exact_times = self.exactTimesCheck.isChecked()

    # ------------------------------------------------------------------ output

    def _variables_changed(self):
        current = self.colourByCombo.currentText()
        self.colourByCombo.clear()
        try:
            self.colourByCombo.addItems([c.name for c in resolve_columns(self.variables.selected_variables())])
        except QueryError:
            pass
        if current:
            self.colourByCombo.setCurrentText(current)

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
        if self.region.roi is None:
            raise QueryError("no region of interest yet: draw one, use the canvas extent or a polygon layer (Region of interest), "
                             "then run again")
        variables = self.variables.selected_variables()
        if not variables:
            raise QueryError("no variable is selected: tick at least one in Variables, then run again")
        filters = self.filters.checked("run again")
        roi, roi_crs = self.region.roi
        config = self.database.config()
        spec = SegmentQuery.create(roi=roi, start=self.time_range.start(), end=self.time_range.end(), variables=variables,
                                   filters=filters, roi_crs=roi_crs, exact_times=self.exactTimesCheck.isChecked(),
                                   product=config.product)
        return QueryRequest(
            config, spec, tuple(variables), filters.text, output_path=self.output_path(),
            colour_by=self.colourByCombo.currentText() or None, classes=self.classesSpin.value(),
            max_rows=self.maxRowsSpin.value() if ask_above else None,
        )

    def build_task(self, ask_above: bool = True) -> QueryTask:
        return QueryTask(self.build_request(ask_above))

    def run_query(self, ask_above: bool = True) -> Optional[QueryTask]:
        if not self.database.ensure_sample_database(then=lambda: self.run_query(ask_above)):
            return None
        task = self.launch("The ATL08 query", lambda: self.build_task(ask_above), self._query_completed, FOLLOW_IN_TASK_MANAGER)
        if task is not None:
            self._preview_while_reading(task)
        return task

    def _preview_while_reading(self, task: QueryTask) -> None:
        """The first points on the map while the rest is read; the finished layer takes the preview's place."""
        request = task.request
        column = request.colour_column
        variable = next((c.variable for c in request.spec.columns if c.name == column), None)
        preview = PreviewLayer(request.layer_name, column, variable, parent=self)
        preview.shown.connect(lambda batch: self.show_status(
            f"Read {batch.rows:,} of about {max(batch.rows, batch.estimated_rows):,} segments; the map shows the first "
            "ones while the rest is read…"))
        task.batchRead.connect(preview.add)
        task.taskCompleted.connect(preview.end)
        task.taskTerminated.connect(preview.end)

    def _query_completed(self, task: QueryTask, output: QueryOutput):
        if output.needs_confirmation:
            answer = QMessageBox.question(
                self, TITLE,
                f"This query would load about {output.estimated_rows:,} segments, more than the "
                f"{task.request.max_rows:,} you asked to be warned about. Load them anyway?\n\n"
                "Choose Open to map them on an equal-area grid instead (Grid change), "
                "or No to narrow the region, time range or filters first.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Open | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer == QMessageBox.StandardButton.Yes:
                self.run_query(ask_above=False)
            elif answer == QMessageBox.StandardButton.Open:
                self.show_status("Query not run: map the segments on a grid instead (Grid change).")
                self.openPanel.emit("grid_change", "Choose the periods, cell size and output, then map the change on a grid.")
            else:
                self.show_status("Query not run: narrow the region, time range or filters.")
            return
        self.add_output_layer(output, task.layer)
