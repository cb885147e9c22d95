"""What every workflow panel shares: the message bar, its own status line, the tasks it started, one
place where errors become messages, and its part of the settings.

A panel is a form (``ui/<name>_panel.ui``, with a ``statusLabel`` and a ``runButton``) for one workflow;
the dialog lists the panels and shows one at a time. A subclass builds its task in one method, and starts
it with ``launch``, which hands the result to the ``done(task, result)`` method it names, on the main thread.
"""

import traceback
from contextlib import contextmanager
from typing import Callable

from qgis.core import Qgis, QgsMessageLog
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QWidget

from ...core.errors import CanopyExplorerError
from ...tasks.running import RunningTasks
from ..messages import LOG_TAG, error_line, push_message, sentence
from ..settings import ExplorerSettings


class BasePanel(QWidget):
    """``title`` and ``icon_name`` are what the dialog's workflow list shows. ``uses_database`` and
    ``uses_region``: the dialog shows its shared database and region boxes above the panels that read them.
    ``openPanel(key, status)``: the panel hands the user over to another panel (the dialog shows it, with
    ``status`` on that panel's status line)."""

    key = ""
    title = ""
    icon_name = "canopy_explorer.svg"
    uses_database = False
    uses_region = False

    openPanel = pyqtSignal(str, str)

    def __init__(self, iface, parent=None):
        super().__init__(parent)
        self.setupUi(self)  # every subclass mixes in the form class of its .ui
        self.iface = iface
        self.tasks = RunningTasks()
        self._status_error = False  # the status line shows an error, cleared when an input changes

    # ------------------------------------------------------------------ what subclasses may override

    def refresh(self) -> None:
        """The panel is shown: bring lists that follow the project (layers, connections) up to date."""

    def restore_settings(self, settings: ExplorerSettings) -> None:
        """Fill this panel's own fields from ``settings``."""

    def store_settings(self, settings: ExplorerSettings) -> None:
        """Write this panel's own fields (and those of the shared boxes it reads) into ``settings``."""

    def clear_canvas_items(self) -> None:
        """Remove what the panel drew on the map (when the plugin unloads)."""

    # ------------------------------------------------------------------ running a workflow

    def launch(self, action: str, build: Callable, done: Callable, hint: str = ""):
        """Build the workflow's task (errors in the inputs become a warning, and nothing runs), remember the
        settings, and start it; ``done(task, result)`` shows the result. ``action`` names the workflow in
        messages ("The NDVI composites"). Returns the task, or None when it could not be built."""
        task = None
        with self.reporting(action):
            task = build()
        if task is None:
            return None
        self.save_settings()
        task.completed.connect(lambda result, t=task: self._finish(t, done, result))
        task.failed.connect(self.warn)
        self.show_status(f"Running {task.description()}…{hint}")
        self.tasks.start(task)
        return task

    def _finish(self, task, done: Callable, result):
        """A task's result shown (layers added, messages): a defect there is reported, not raised into QGIS."""
        with self.reporting(f"Showing the result of {task.description()}"):
            done(task, result)

    def save_settings(self) -> None:
        settings = ExplorerSettings.load()
        self.store_settings(settings)
        settings.save()

    # ------------------------------------------------------------------ messages

    def message(self, text: str, level=Qgis.MessageLevel.Info):
        push_message(self.iface.messageBar(), text, level)

    def warn(self, text: str):
        text = sentence(text)
        QgsMessageLog.logMessage(text, LOG_TAG, Qgis.MessageLevel.Warning)
        self.show_status(error_line(text), error=True)
        self.message(text, Qgis.MessageLevel.Warning)

    def show_status(self, text: str, error: bool = False):
        self._status_error = error
        self.statusLabel.setText(text)

    def inputs_changed(self, *_):
        """An input changed: an error about the previous inputs no longer holds (it comes back at Run if it does)."""
        if self._status_error:
            self.show_status("")

    @contextmanager
    def reporting(self, action: str):
        """Where the panel turns errors into messages: the engine's (written for the user) as they are;
        anything else, a defect, as what failed and where the details are, with the traceback in the log."""
        try:
            yield
        except CanopyExplorerError as error:
            self.warn(str(error))
        except Exception as error:  # noqa: BLE001 (a defect must not surface as QGIS's Python error bar)
            QgsMessageLog.logMessage(f"{action} failed:\n{traceback.format_exc()}", LOG_TAG, Qgis.MessageLevel.Critical)
            self.warn(f"{action} stopped on an unexpected problem in Canopy Explorer ({type(error).__name__}). "
                      "The details are in the Log Messages panel (Canopy Explorer tab); please report them")


def place(component: QWidget, holder: QWidget) -> QWidget:
    """Put a shared component into the empty ``holder`` a panel's form keeps for it."""
    holder.layout().setContentsMargins(0, 0, 0, 0)
    holder.layout().addWidget(component)
    return component
