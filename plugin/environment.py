"""The QGIS side of the self-check and installer: the profile's packages folder on ``sys.path``, and
the self-check run with the GEOS version this QGIS loads (``core.environment`` says why it matters).

The report is computed on the main thread (at load, and again after an install) and kept: importing
the packages from a Processing worker thread first would be the riskier order.
"""

import importlib
import sys
from pathlib import Path
from typing import Optional

from qgis.core import Qgis, QgsApplication

from .core.environment.installer import packages_folder as folder_in_profile
from .core.environment.self_check import EnvironmentReport, check_environment

_report: Optional[EnvironmentReport] = None


def packages_folder() -> Path:
    """Where "Install missing packages" puts packages: inside this QGIS profile, one folder per Python version."""
    return folder_in_profile(Path(QgsApplication.qgisSettingsDirPath()))


def use_packages_folder() -> Path:
    """Put the packages folder first on ``sys.path`` (it only holds what QGIS's Python lacks: see the installer)."""
    folder = str(packages_folder())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.path_importer_cache.pop(folder, None)  # the folder may not have existed when the path was first searched
    importlib.invalidate_caches()
    return Path(folder)


def environment_report(refresh: bool = False) -> EnvironmentReport:
    global _report
    if _report is None or refresh:
        _report = check_environment(Qgis.geosVersion(), packages_folder=str(packages_folder()))
    return _report
