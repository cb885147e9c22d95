"""The quality filters of the ATL08 workflows: rows of variable / operator / value and free text in the
filter grammar, checked as the user types, with the presets."""

from typing import List, Optional

from qgis.PyQt import uic
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QComboBox, QLineEdit, QWidget

from ...core.errors import QueryError
from ...core.lidar.atl08.catalogue import catalogue
from ...core.lidar.variables import SCALAR
from ...core.lidar.atl08.presets import PRESETS
from ...core.lidar.filters import ParsedFilters
from ...resources import ui_path
from ..messages import error_line
from ..settings import ExplorerSettings

FORM_CLASS, _ = uic.loadUiType(ui_path("filter_editor.ui"))

OPERATORS = ["==", "!=", "<", "<=", ">", ">=", "between", "in", "not in"]


class FilterEditor(QWidget, FORM_CLASS):
    """``changed``: a condition was added, removed or edited. ``filter_error``: the parser's message about
    the conditions as they stand, None when they parse; ``parsed_filters``: their parse, from which the
    workflows build their requests (the text is parsed once, as it is typed)."""

    changed = pyqtSignal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setupUi(self)
        self.filter_error: Optional[str] = None
        self.parsed_filters = ParsedFilters("", ())
        self.presetCombo.addItems(list(PRESETS))
        self.filtersTable.horizontalHeader().setStretchLastSection(True)
        self.applyPresetButton.clicked.connect(self.apply_preset)
        self.addFilterButton.clicked.connect(lambda: self.add_filter_row())
        self.removeFilterButton.clicked.connect(self._remove_filter_row)
        self.filtersEdit.textChanged.connect(self._edited)
        self.validate_filters()

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

    def checked(self, then: str) -> ParsedFilters:
        """The conditions, parsed, for a workflow about to run; a QueryError ending in ``then`` (what to do
        once they are fixed) when they do not parse."""
        if not self.validate_filters():
            raise QueryError(f"the quality filters are not valid ({self.filter_error}): fix them, then {then}")
        return self.parsed_filters

    def validate_filters(self) -> bool:
        """Check the filters as typed; the parser's message is kept in ``filter_error`` and shown inline."""
        lines = self.filter_lines()
        self.filter_error = None
        self.parsed_filters = ParsedFilters("", ())
        try:
            self.parsed_filters = ParsedFilters.parse(lines)
        except QueryError as error:
            self.filter_error = str(error)
            self.filterStatusLabel.setText(error_line(self.filter_error))
            return False
        count = len(lines)
        self.filterStatusLabel.setText(f"{count} condition{'s' if count != 1 else ''}, evaluated in the database." if lines
                                       else "No filters.")
        return True

    def summary(self) -> str:
        """What the filters do, in a few words, for the panels that use them without showing them."""
        if not self.validate_filters():
            return "quality filters that are not valid yet"
        count = len(self.filter_lines())
        return f"{count} quality filter condition{'s' if count != 1 else ''}" if count else "no quality filters"

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
            signal.connect(self._edited)
        self._edited()

    def _remove_filter_row(self):
        row = self.filtersTable.currentRow()
        self.filtersTable.removeRow(row if row >= 0 else self.filtersTable.rowCount() - 1)
        self._edited()

    def apply_preset(self):
        self.filtersEdit.setPlainText(PRESETS[self.presetCombo.currentText()])

    def restore_settings(self, settings: ExplorerSettings) -> None:
        self.filtersEdit.setPlainText(settings.filters)

    def store_settings(self, settings: ExplorerSettings) -> None:
        settings.filters = self.filtersEdit.toPlainText()

    def _edited(self, *_):
        self.validate_filters()
        self.changed.emit()
