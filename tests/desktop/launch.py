"""`qgis --code launch.py`: imports the driver from tests/desktop and schedules it; if that fails,
the error is written down and QGIS quits (with status 3) instead of waiting for ever."""

import os
import sys
import traceback
from pathlib import Path

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QTimer

sys.path.insert(0, os.environ["CANOPY_DESKTOP_TESTS"])  # tests/: the driver and the canvas event helpers
try:
    from desktop import driver

    driver.schedule()
except Exception:
    Path(os.environ["CANOPY_DESKTOP_PLAN"]).with_name("launch_error.txt").write_text(traceback.format_exc())
    QTimer.singleShot(0, lambda: QgsApplication.exit(3))
