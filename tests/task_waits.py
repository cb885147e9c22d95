"""Waiting for background tasks the way QGIS does: process events until a condition holds, with a deadline."""

import time

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QCoreApplication


def wait_until(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        QCoreApplication.processEvents()
        time.sleep(0.005)


def wait_for_tasks(dialog, timeout=60.0):
    """Until the dialog's tasks have finished (and their ``finished()`` has run on this thread)."""
    wait_until(lambda: not dialog.tasks and QgsApplication.taskManager().countActiveTasks() == 0, timeout)
    QCoreApplication.processEvents()
