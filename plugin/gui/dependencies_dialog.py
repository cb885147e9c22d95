"""The "Check dependencies" dialog: each package with its version or problem, and the installer.

"Install missing packages" runs the plugin's installer in a task (progress and cancel here and
in the task manager, pip's log below); the terminal command underneath does the same.
"""

import sys
from pathlib import Path
from typing import Optional

from qgis.core import Qgis, QgsApplication, QgsMessageLog
from qgis.PyQt import uic
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtGui import QBrush, QColor, QGuiApplication
from qgis.PyQt.QtWidgets import QDialog, QTableWidgetItem

from ..core.environment.installer import InstallPlan, InstallResult, manual_command, plan_install
from ..core.environment.interpreter import find_python
from ..core.errors import CanopyExplorerError
from ..environment import environment_report, packages_folder, use_packages_folder
from ..resources import ui_path
from ..tasks.install_task import InstallPackagesTask

FORM_CLASS, _ = uic.loadUiType(ui_path("dependencies_dialog.ui"))

LOG_TAG = "Canopy Explorer"
PROBLEM_COLOUR = "#b71c1c"


class DependenciesDialog(QDialog, FORM_CLASS):
    """``ready`` is emitted when an install leaves nothing for the self-check to complain about."""

    ready = pyqtSignal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setupUi(self)
        self.installButton.clicked.connect(self.install_missing)
        self.cancelButton.clicked.connect(self.cancel_install)
        self.copyButton.clicked.connect(self.copy_command)
        self.recheckButton.clicked.connect(lambda: self.refresh(recheck=True))
        self.report = None
        self.plan: InstallPlan = InstallPlan()
        self.task: Optional[InstallPackagesTask] = None
        self.result: Optional[InstallResult] = None
        self.progressBar.setVisible(False)
        self.cancelButton.setVisible(False)

    def refresh(self, recheck: bool = False):
        self.report = environment_report(refresh=recheck)
        problems = {p.module: p for p in self.report.problems}
        self.packagesTable.setRowCount(len(self.report.statuses))
        for row, status in enumerate(self.report.statuses):
            problem = problems.get(status.requirement.module)
            where = problem.text if problem else status.location
            state = status.version if status.installed else ("missing" if status.absent else "broken")
            cells = (status.requirement.name, state, where, status.requirement.purpose)
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if problem:
                    item.setForeground(QBrush(QColor(PROBLEM_COLOUR)))
                    item.setToolTip(f"{problem.text}\n{problem.fix}" + (f"\n{status.error}" if status.error else ""))
                self.packagesTable.setItem(row, column, item)
        self.packagesTable.resizeColumnsToContents()
        self.summaryLabel.setText(self.report.message())
        self.summaryLabel.setStyleSheet("")
        self.plan = plan_install(self.report)
        self.planText.setPlainText(self.plan.describe() or "Nothing to install.")
        running = self.task is not None
        self.installButton.setEnabled(not self.plan.empty and not running)
        self.commandText.setPlainText(self.terminal_command() if not self.plan.empty else "Nothing to install.")
        self.copyButton.setEnabled(not self.plan.empty)

    def terminal_command(self) -> str:
        try:
            python = find_python()
        except CanopyExplorerError:
            python = "python3"
        package = __name__.split(".")[0]  # the name QGIS imported the plugin under (its folder's name)
        plugins_dir = Path(sys.modules[package].__file__).parent.parent  # not resolved: a symlinked checkout keeps its name
        command = manual_command(plugins_dir, package, python, packages_folder(), Qgis.geosVersion())
        if self.plan.system:
            command = f"sudo apt install {' '.join(self.plan.system)} && {command}"
        return command

    def install_missing(self) -> Optional[InstallPackagesTask]:
        """Start the installer on the current plan (only on the user's click: nothing installs by itself)."""
        if self.task is not None or self.plan.empty:
            return None
        self.logText.clear()
        self.progressBar.setValue(0)
        self.progressBar.setVisible(True)
        self.cancelButton.setVisible(True)
        self.installButton.setEnabled(False)
        self.summaryLabel.setText("Installing… (you can keep working; the task manager shows it too)")
        task = InstallPackagesTask(self.plan, packages_folder())
        task.logged.connect(self.logText.appendPlainText)
        task.progressChanged.connect(lambda value: self.progressBar.setValue(int(value)))
        task.completed.connect(self._installed)
        task.failed.connect(self._install_failed)
        task.taskTerminated.connect(self._install_ended)
        task.taskCompleted.connect(self._install_ended)
        self.task = task
        QgsApplication.taskManager().addTask(task)
        return task

    def cancel_install(self):
        if self.task is not None:
            self.task.cancel()

    def _install_ended(self):
        cancelled = self.task is not None and self.task.isCanceled()
        self.task = None
        self.progressBar.setVisible(False)
        self.cancelButton.setVisible(False)
        if cancelled:
            self.refresh()
            self.summaryLabel.setText("Installation cancelled: nothing was changed.")

    def _installed(self, result: InstallResult):
        self.result = result
        use_packages_folder()
        self.task = None
        self.refresh(recheck=True)
        if self.report.ok:
            text = f"{result.summary()} Canopy Explorer is ready."
            self.ready.emit()
        else:
            text = f"{result.summary()} Restart QGIS to use them. " + self.report.message()
        if result.replaced:
            text = f"{result.summary()} Restart QGIS to use them (they replace {', '.join(result.replaced)})."
        self.summaryLabel.setText(text)
        QgsMessageLog.logMessage(text, LOG_TAG, Qgis.MessageLevel.Success if self.report.ok else Qgis.MessageLevel.Warning)

    def _install_failed(self, message: str):
        self.task = None
        self.refresh()
        text = f"Installing failed: {message}. Nothing was changed; the log above has pip's own words."
        self.summaryLabel.setText(text)
        self.summaryLabel.setStyleSheet(f"color: {PROBLEM_COLOUR}")
        QgsMessageLog.logMessage(text, LOG_TAG, Qgis.MessageLevel.Critical)

    def copy_command(self):
        QGuiApplication.clipboard().setText(self.commandText.toPlainText())
