"""A range of days, first to last, as two date fields side by side: the ATL08 query's time range and the
grid change's two periods."""

import datetime as dt

from qgis.PyQt.QtCore import QDate, pyqtSignal
from qgis.PyQt.QtWidgets import QDateEdit, QHBoxLayout, QLabel, QWidget

DAY_FORMAT = "yyyy-MM-dd"


class DateRange(QWidget):
    """``changed``: either day changed."""

    changed = pyqtSignal()

    def __init__(self, start: QDate, end: QDate, parent=None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.startEdit = self._date_edit(start)
        self.endEdit = self._date_edit(end)
        layout.addWidget(self.startEdit, 1)
        layout.addWidget(QLabel("to"))
        layout.addWidget(self.endEdit, 1)

    def _date_edit(self, day: QDate) -> QDateEdit:
        edit = QDateEdit(day)
        edit.setCalendarPopup(True)
        edit.setDisplayFormat(DAY_FORMAT)
        edit.dateChanged.connect(lambda _: self.changed.emit())
        return edit

    def start(self) -> str:
        return self.startEdit.date().toString(DAY_FORMAT)

    def end(self) -> str:
        return self.endEdit.date().toString(DAY_FORMAT)

    def set_span(self, start: dt.date, end: dt.date) -> None:
        self.startEdit.setDate(QDate(start.year, start.month, start.day))
        self.endEdit.setDate(QDate(end.year, end.month, end.day))

    def text(self) -> str:
        return f"{self.start()} to {self.end()}"
