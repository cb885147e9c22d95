"""NDVI composites in the background, one year after the other, with progress per scene and cancel."""

import traceback
from typing import List, Optional

from qgis.core import Qgis, QgsMessageLog, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..core.errors import Cancelled, CanopyExplorerError
from ..layers.ndvi_layer import CompositeOutput, write_ndvi_composites
from .progress import task_progress

LOG_TAG = "Canopy Explorer"


class NdviCompositeTask(QgsTask):
    """``completed(list of CompositeOutput)`` or ``failed(message)``, from ``finished()`` on the main thread."""

    completed = pyqtSignal(object)
    failed = pyqtSignal(str)

    def __init__(self, source, boundary, boundary_crs: str, years, max_cloud: float, output_folder: str,
                 cover_whole: bool = False, classes: int = 5):
        super().__init__(f"NDVI composites {years} ({source.collection})", QgsTask.CanCancel)
        self.arguments = (source, boundary, boundary_crs, years, max_cloud, output_folder, cover_whole, classes)
        self.outputs: Optional[List[CompositeOutput]] = None
        self.error: Optional[BaseException] = None
        self.log_lines: List[str] = []

    def run(self) -> bool:
        progress, check_cancel = task_progress(self)
        try:
            self.outputs = write_ndvi_composites(*self.arguments, progress=progress, check_cancel=check_cancel,
                                                 log=self.log_lines.append)
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
        for line in self.log_lines:
            QgsMessageLog.logMessage(line, LOG_TAG, Qgis.Info)
        if result and self.outputs is not None:
            self.completed.emit(self.outputs)
        elif self.error is not None:
            message = str(self.error) if isinstance(self.error, CanopyExplorerError) else f"unexpected error: {self.error!r}"
            QgsMessageLog.logMessage(f"{self.description()} failed: {message}", LOG_TAG, Qgis.Critical)
            self.failed.emit(message)
