"""Installing the missing Python packages in the background, with pip's log streamed to the dialog."""

from pathlib import Path

from qgis.PyQt.QtCore import pyqtSignal

from ..core.environment.installer import InstallPlan, install
from .engine_task import EngineTask


class InstallPackagesTask(EngineTask):
    """``logged(line)`` carries each line of pip's (or apt's) output as it comes, from the worker thread."""

    logged = pyqtSignal(str)

    def __init__(self, plan: InstallPlan, folder: Path):
        self.plan = plan
        self.folder = folder
        super().__init__("Installing Python packages for Canopy Explorer", self._install)

    def _install(self, progress, check_cancel, log):
        def log_line(line: str) -> None:
            log(line)
            self.logged.emit(line)

        return install(self.plan, self.folder, log=log_line, progress=progress, check_cancel=check_cancel)
