"""The one task shape: engine work in ``run()``, results and errors handed to the main thread in ``finished()``."""

import traceback
from typing import Callable, List, Optional

from qgis.core import Qgis, QgsMessageLog, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..core.callbacks import reporting_to
from ..core.errors import Cancelled, CanopyExplorerError
from ..core.proj_context import keep_proj_context

LOG_TAG = "Canopy Explorer"


class EngineTask(QgsTask):
    """Runs ``work(progress, check_cancel, log)`` in the background.

    Signals, emitted from ``finished()`` on the main thread: ``completed(result)``,
    or ``failed(message)`` with a text for the message bar (details go to the log
    panel). Nothing is emitted for a cancelled task: the engine leaves nothing behind.
    Subclasses may override ``prepare(result)``, which also runs in the background.
    """

    completed = pyqtSignal(object)
    failed = pyqtSignal(str)

    def __init__(self, description: str, work: Callable):
        super().__init__(description, QgsTask.Flag.CanCancel)
        self.work = work
        self.result = None
        self.error: Optional[BaseException] = None
        self.log_lines: List[str] = []

    def prepare(self, result) -> None:
        """More background work on the result before it reaches the main thread."""

    def run(self) -> bool:
        progress, check_cancel = reporting_to(self.isCanceled, self.setProgress)
        try:
            self.result = self.work(progress, check_cancel, self.log_lines.append)
            self.prepare(self.result)
            return True
        except Cancelled:
            return False
        except CanopyExplorerError as error:
            self.error = error
            return False
        except Exception as error:  # a defect, not bad input: keep the traceback for the log
            self.error = error
            self.log_lines.append(traceback.format_exc())
            return False
        finally:
            keep_proj_context()  # this pooled thread may run another task: see core/proj_context.py

    def finished(self, result: bool) -> None:
        for line in self.log_lines:
            QgsMessageLog.logMessage(line, LOG_TAG, Qgis.MessageLevel.Info)
        if result:
            self.completed.emit(self.result)
        elif self.error is not None:
            if isinstance(self.error, CanopyExplorerError):
                message = str(self.error)
            else:  # a defect: the user gets what failed and where the details are, not a Python repr
                message = (f"{self.description()} stopped on an unexpected problem in Canopy Explorer "
                           f"({type(self.error).__name__}). The details are in the Log Messages panel "
                           "(Canopy Explorer tab); please report them")
            QgsMessageLog.logMessage(f"{self.description()} failed: {message}", LOG_TAG, Qgis.MessageLevel.Critical)
            self.failed.emit(message)
