"""The ATL08 database the query, nearest-shots and grid-change panels read: which one, its connection test,
and the sample database built on demand. One box, shared by those three panels."""

import datetime as dt
from typing import Callable, Optional

from qgis.core import Qgis
from qgis.PyQt import uic
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QFileDialog, QGroupBox, QMessageBox

from ...core.errors import CanopyExplorerError
from ...core.lidar.config import DatabaseConfig
from ...core.samples.database import sample_database_exists
from ...database_source import PUBLIC_CONFIG, SAMPLE_CONFIG, DatabaseSource, sample_config
from ...resources import ui_path
from ...tasks.connection_task import ConnectionTestTask
from ...tasks.running import RunningTasks
from ...tasks.sample_database_task import SampleDatabaseTask
from ..messages import FOLLOW_IN_TASK_MANAGER, TITLE, error_line, push_message
from ..settings import ExplorerSettings

FORM_CLASS, _ = uic.loadUiType(ui_path("database_box.ui"))

DATABASES = [("Public ATL08 v7 database (S3, GFZ Potsdam)", PUBLIC_CONFIG),
             ("Sample database (make demo)", SAMPLE_CONFIG),
             ("Other: configuration file, folder or s3:// URI", "")]


class DatabaseBox(QGroupBox, FORM_CLASS):
    """``changed``: another database, source, endpoint or key was chosen (what was said about the previous
    one no longer holds). ``spanFound(start, end)``: a connection test found the database's time span."""

    changed = pyqtSignal()
    spanFound = pyqtSignal(object, object)

    def __init__(self, message_bar, parent=None):
        super().__init__(parent)
        self.setupUi(self)
        self.message_bar = message_bar
        self.tasks = RunningTasks()
        self._sample_task: Optional[SampleDatabaseTask] = None
        self._generation = 0  # a connection test answers only for the database it was asked about
        for text, path in DATABASES:
            self.databaseCombo.addItem(text, path)
        self.databaseCombo.currentIndexChanged.connect(self._choice_changed)
        self.databaseCombo.activated.connect(self._chosen)  # the user's choice, not restore_settings
        self.databaseEdit.textChanged.connect(self._changed)
        self.endpointEdit.textChanged.connect(self._changed)
        self.authConfigSelect.selectedConfigIdChanged.connect(self._changed)
        for edit in (self.databaseEdit, self.endpointEdit):
            edit.editingFinished.connect(self._chosen)
        self.browseDatabaseButton.clicked.connect(self._browse)
        self.testConnectionButton.clicked.connect(lambda: self.test_connection())
        self._choice_changed()

    # ------------------------------------------------------------------ the choice

    def config(self) -> DatabaseConfig:
        if self.databaseCombo.currentData():  # the public or the sample database
            return DatabaseSource(self.databaseCombo.currentData()).config()
        return DatabaseSource(self.databaseEdit.text(), self.endpointEdit.text(), self.authConfigSelect.configId()).config()

    def restore_settings(self, settings: ExplorerSettings) -> None:
        self.databaseCombo.setCurrentIndex(min(max(settings.database_choice, 0), self.databaseCombo.count() - 1))
        self.databaseEdit.setText(settings.database)
        self.endpointEdit.setText(settings.endpoint)
        self.authConfigSelect.setConfigId(settings.auth_config)

    def store_settings(self, settings: ExplorerSettings) -> None:
        settings.database_choice = self.databaseCombo.currentIndex()
        settings.database = self.databaseEdit.text()
        settings.endpoint = self.endpointEdit.text()
        settings.auth_config = self.authConfigSelect.configId()  # an id, never the secret

    def _choice_changed(self, *_):
        other = not self.databaseCombo.currentData()
        for widget in (self.databaseEdit, self.browseDatabaseButton, self.endpointEdit, self.endpointLabel,
                       self.authConfigSelect, self.authLabel):
            widget.setEnabled(other)
        self._changed()

    def _changed(self, *_):
        self._generation += 1
        self.connectionLabel.setText("")
        self.changed.emit()

    def _browse(self):
        path, _ = QFileDialog.getOpenFileName(self, "Database configuration", self.databaseEdit.text(), "YAML (*.yaml *.yml)")
        if path:
            self.databaseEdit.setText(path)

    # ------------------------------------------------------------------ connection test

    def test_connection(self) -> Optional[ConnectionTestTask]:
        if not self.ensure_sample_database(then=self.test_connection):
            return None
        try:
            config = self.config()
        except CanopyExplorerError as error:
            self.show_connection(f"Cannot use this database: {error}", error=True)
            return None
        self.show_connection(f"Connecting to {config.array_uri}…")
        generation = self._generation
        task = ConnectionTestTask(config)
        task.completed.connect(lambda summary: self._connection_ok(summary) if generation == self._generation else None)
        task.failed.connect(lambda message: self.show_connection(f"Cannot use this database: {message}", error=True)
                            if generation == self._generation else None)
        self.tasks.start(task)
        return task

    def _connection_ok(self, summary: dict):
        start, end = summary["start"], summary["end"]
        self.show_connection(f"{len(summary['variables'])} variables, segments from {start} to {end}.")
        self.spanFound.emit(dt.date.fromisoformat(str(start)[:10]), dt.date.fromisoformat(str(end)[:10]))

    def show_connection(self, text: str, error: bool = False):
        self.connectionLabel.setText(error_line(text) if error else text)

    # ------------------------------------------------------------------ the sample database

    def _chosen(self, _index=None):
        """A database chosen by the user is tested, and so opened, straight away: the connection test keeps it
        open for the queries that follow (opening the public database reads every fragment's footer)."""
        if self.databaseCombo.currentData() or self.databaseEdit.text().strip():
            self.test_connection()

    def sample_chosen(self) -> bool:
        return self.databaseCombo.currentData() == SAMPLE_CONFIG

    def ensure_sample_database(self, then: Optional[Callable[[], None]] = None) -> bool:
        """True when the chosen database can be used now. For a sample database that is not built yet
        (a plugin installed from its zip has no sample data), ask to build it in the user's data folder;
        ``then`` runs once it is built."""
        if not self.sample_chosen():
            return True
        try:
            config = sample_config()
        except CanopyExplorerError as error:
            self.show_connection(f"Cannot use the sample database: {error}", error=True)
            return False
        if sample_database_exists(config):
            return True
        if self._sample_task is not None:
            self.show_connection(f"The sample database is being built in {config.base_uri}{FOLLOW_IN_TASK_MANAGER}.")
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
            self.show_connection("The sample database is not built: choose it again and answer Yes to build it, "
                                 "run 'make demo' in the repository, or choose another database.", error=True)
            return False
        task = SampleDatabaseTask(config)
        self._sample_task = task
        task.completed.connect(lambda report, t=task: self._sample_database_built(t, then))
        task.failed.connect(lambda message: self.show_connection(f"Cannot build the sample database: {message}", error=True))
        task.taskCompleted.connect(lambda: setattr(self, "_sample_task", None))
        task.taskTerminated.connect(lambda t=task: self._sample_build_ended(t))
        self.show_connection(f"Building the sample database in {config.base_uri}{FOLLOW_IN_TASK_MANAGER}…")
        self.tasks.start(task)
        return False

    def _sample_build_ended(self, task: SampleDatabaseTask):
        self._sample_task = None
        if task.error is None:  # cancelled (a failure has said why already)
            self.show_connection("Building the sample database was cancelled; nothing was written. Choose the sample "
                                 "database again to build it.")

    def _sample_database_built(self, task: SampleDatabaseTask, then: Optional[Callable[[], None]]):
        push_message(self.message_bar, f"The sample database is ready in {task.config.base_uri}.", Qgis.MessageLevel.Success)
        self.show_connection(f"Sample database ready in {task.config.base_uri}.")
        if then is not None and self.sample_chosen():
            then()
