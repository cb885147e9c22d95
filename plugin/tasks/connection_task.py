"""Test a database connection in the background (S3 can take seconds to answer, or time out)."""

from typing import Optional

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..core.config import DatabaseConfig
from ..core.database import Atl08Database
from ..core.errors import CanopyExplorerError
from ..core.variables import catalogue


class ConnectionTestTask(QgsTask):
    """Opens the database and reads its time span and variables; ``succeeded(dict)`` or ``failed(str)``."""

    succeeded = pyqtSignal(object)
    failed = pyqtSignal(str)

    def __init__(self, config: DatabaseConfig, timeout_s: float = 20.0):
        super().__init__(f"Test ATL08 database {config.array_uri}", QgsTask.CanCancel)
        self.config = config
        self.timeout_s = timeout_s
        self.summary: Optional[dict] = None
        self.error: Optional[BaseException] = None

    def run(self) -> bool:
        try:
            database = Atl08Database(self.config, probe_timeout_s=self.timeout_s)
            start, end = database.time_span()
            names = set(database.attribute_names)
            variables = sorted(v.name for v in catalogue().values() if set(v.attribute_names) & names)
            self.summary = {"uri": self.config.array_uri, "start": start, "end": end, "variables": variables}
            return True
        except CanopyExplorerError as error:
            self.error = error
            return False
        except Exception as error:  # e.g. a TileDB error not mapped by the engine
            self.error = error
            return False

    def finished(self, result: bool) -> None:
        if result and self.summary is not None:
            self.succeeded.emit(self.summary)
        elif self.error is not None:
            self.failed.emit(str(self.error))
