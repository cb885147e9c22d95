"""ATL08 queries in the background: the dialog's task around ``write_query_output``."""

from typing import Optional

from qgis.core import Qgis, QgsMessageLog, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..core.errors import Cancelled, CanopyExplorerError
from ..layers.segment_layer import QueryOutput, QueryRequest, write_query_output
from .progress import task_progress

LOG_TAG = "Canopy Explorer"


class QueryTask(QgsTask):
    """Writes the query's styled file in ``run()``; whoever started it loads the layer on ``completed``.

    Signals (emitted from ``finished()``, on the main thread):
    ``completed(QueryOutput)``: the file is complete (or ``rows == 0``, or the
    estimate needs the user's confirmation); ``failed(str)``: a message for the
    message bar, details already in the log; nothing when cancelled.
    """

    completed = pyqtSignal(object)
    failed = pyqtSignal(str)

    def __init__(self, request: QueryRequest):
        super().__init__(f"ATL08 query: {request.layer_name}", QgsTask.CanCancel)
        self.request = request
        self.output: Optional[QueryOutput] = None
        self.error: Optional[BaseException] = None

    def run(self) -> bool:
        progress, check_cancel = task_progress(self)
        try:
            self.output = write_query_output(self.request, progress, check_cancel)
            return True
        except Cancelled:
            return False
        except CanopyExplorerError as error:
            self.error = error
            return False
        except Exception as error:  # unexpected: keep the details for the log
            self.error = error
            import traceback

            QgsMessageLog.logMessage(traceback.format_exc(), LOG_TAG, Qgis.Critical)
            return False

    def finished(self, result: bool) -> None:
        if result and self.output is not None:
            self.completed.emit(self.output)
        elif self.error is not None:
            message = str(self.error) if isinstance(self.error, CanopyExplorerError) else f"unexpected error: {self.error!r}"
            QgsMessageLog.logMessage(f"{self.description()} failed: {message}", LOG_TAG, Qgis.Critical)
            self.failed.emit(message)
