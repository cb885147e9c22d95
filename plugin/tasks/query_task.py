"""ATL08 work in the background: queries and nearest-shot searches that end in a styled file."""

import traceback
from typing import Callable, Optional

from qgis.core import Qgis, QgsMessageLog, QgsTask
from qgis.PyQt.QtCore import QCoreApplication, pyqtSignal

from ..core.errors import Cancelled, CanopyExplorerError
from ..layers.segment_layer import QueryOutput, QueryRequest, load_query_layer, write_nearest_output, write_query_output
from .progress import task_progress

LOG_TAG = "Canopy Explorer"


class OutputTask(QgsTask):
    """Runs ``work(progress, check_cancel) -> QueryOutput`` in ``run()``; the starter loads the layer.

    The result layer is opened here too (a CSV's provider scans the whole file when
    opened) and handed to the main thread, so nothing heavy runs there.

    Signals, emitted from ``finished()`` on the main thread: ``completed(QueryOutput,
    layer or None)`` when the work ended (the output may have no rows, or may ask for
    confirmation);
    ``failed(str)`` with a message for the message bar (details go to the log).
    Nothing is emitted for a cancelled task, which has left nothing behind.
    """

    completed = pyqtSignal(object, object)
    failed = pyqtSignal(str)

    def __init__(self, description: str, work: Callable[..., QueryOutput]):
        super().__init__(description, QgsTask.CanCancel)
        self.work = work
        self.output: Optional[QueryOutput] = None
        self.layer = None
        self.error: Optional[BaseException] = None

    def run(self) -> bool:
        progress, check_cancel = task_progress(self)
        try:
            self.output = self.work(progress, check_cancel)
            if self.output.path and self.output.rows:
                self.layer = load_query_layer(self.output)
                self.layer.moveToThread(QCoreApplication.instance().thread())
            return True
        except Cancelled:
            return False
        except CanopyExplorerError as error:
            self.error = error
            return False
        except Exception as error:  # a defect, not bad input: keep the traceback for the log
            self.error = error
            QgsMessageLog.logMessage(traceback.format_exc(), LOG_TAG, Qgis.Critical)
            return False

    def finished(self, result: bool) -> None:
        if result and self.output is not None:
            self.completed.emit(self.output, self.layer)
        elif self.error is not None:
            message = str(self.error) if isinstance(self.error, CanopyExplorerError) else f"unexpected error: {self.error!r}"
            QgsMessageLog.logMessage(f"{self.description()} failed: {message}", LOG_TAG, Qgis.Critical)
            self.failed.emit(message)


class QueryTask(OutputTask):
    def __init__(self, request: QueryRequest):
        super().__init__(f"ATL08 query: {request.layer_name}", lambda progress, cancel: write_query_output(request, progress, cancel))
        self.request = request


class NearestTask(OutputTask):
    def __init__(self, config, point, num_shots, radius_m, variables, filters_text="", start=None, end=None, output_path=None, classes=5):
        def work(progress, check_cancel):
            return write_nearest_output(config, point, num_shots, radius_m, variables, filters_text, start, end,
                                        output_path, classes, check_cancel)

        super().__init__(f"ATL08 nearest {num_shots} segments to {point[1]:.4f}, {point[0]:.4f}", work)
        self.point = point
