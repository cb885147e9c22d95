"""District statistics in the background (embedded or in PostGIS), ending in a styled GeoPackage."""

import traceback
from typing import List, Optional

from qgis.core import Qgis, QgsMessageLog, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..core.errors import Cancelled, CanopyExplorerError
from ..layers.district_layer import write_district_stats
from .progress import task_progress

LOG_TAG = "Canopy Explorer"


class DistrictStatsTask(QgsTask):
    """``completed(StatsResult)`` or ``failed(message)``, from ``finished()`` on the main thread.

    The PostgreSQL connection string is expanded from the saved connection here,
    in the task, and never leaves it."""

    completed = pyqtSignal(object)
    failed = pyqtSignal(str)

    def __init__(self, districts, rasters, output_gpkg: str, connection_name: str = "", classes: int = 5,
                 geojson: Optional[str] = None):
        super().__init__(f"District statistics to {output_gpkg}", QgsTask.CanCancel)
        self.arguments = (districts, list(rasters), output_gpkg, connection_name, classes)
        self.geojson = geojson
        self.result = None
        self.error: Optional[BaseException] = None
        self.log_lines: List[str] = []

    def run(self) -> bool:
        progress, check_cancel = task_progress(self)
        try:
            self.result = write_district_stats(*self.arguments, progress=progress, check_cancel=check_cancel,
                                               log=self.log_lines.append)
            if self.geojson:
                from ..core.stats_geopackage import export_geojson

                latest = next(layer.name for layer in self.result.layers if layer.kind == "latest")
                export_geojson(self.result.output, latest, self.geojson)
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
        if result and self.result is not None:
            self.completed.emit(self.result)
        elif self.error is not None:
            message = str(self.error) if isinstance(self.error, CanopyExplorerError) else f"unexpected error: {self.error!r}"
            QgsMessageLog.logMessage(f"{self.description()} failed: {message}", LOG_TAG, Qgis.Critical)
            self.failed.emit(message)
