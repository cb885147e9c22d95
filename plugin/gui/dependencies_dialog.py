"""The "Check dependencies" dialog: each required package with its version or 'missing'."""

from qgis.PyQt import uic
from qgis.PyQt.QtGui import QBrush, QColor, QGuiApplication
from qgis.PyQt.QtWidgets import QDialog, QTableWidgetItem

from ..core.dependencies import check_dependencies, install_command, missing
from ..resources import ui_path

FORM_CLASS, _ = uic.loadUiType(ui_path("dependencies_dialog.ui"))

MISSING = "missing"


class DependenciesDialog(QDialog, FORM_CLASS):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setupUi(self)
        self.copyButton.clicked.connect(self.copy_command)
        self.recheckButton.clicked.connect(self.refresh)
        self.statuses = []

    def refresh(self):
        self.statuses = check_dependencies()
        self.packagesTable.setRowCount(len(self.statuses))
        for row, status in enumerate(self.statuses):
            cells = (status.requirement.distribution, status.version or MISSING, status.requirement.purpose)
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if not status.installed:
                    item.setForeground(QBrush(QColor("#b71c1c")))
                    item.setToolTip(status.problem)
                self.packagesTable.setItem(row, column, item)
        self.packagesTable.resizeColumnsToContents()
        absent = missing(self.statuses)
        if absent:
            self.summaryLabel.setText(f"{len(absent)} of {len(self.statuses)} packages are missing.")
        else:
            self.summaryLabel.setText(f"All {len(self.statuses)} packages are installed.")
        command = install_command(absent)
        self.commandText.setPlainText(command or "Nothing to install.")
        self.copyButton.setEnabled(bool(command))

    def copy_command(self):
        QGuiApplication.clipboard().setText(self.commandText.toPlainText())
