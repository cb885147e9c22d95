"""Composite tasks one after another and side by side on QGIS's pooled task threads, with no crash.

With pyproj 3.7.0/3.7.1 (QGIS 3.40 on Debian 13) the second task on a reused thread handed PROJ a
freed context and the process died with a segmentation fault (plugin/core/proj_context.py). The
tasks run in a separate Python process hosting QGIS, so a crash is reported as a failure with its
signal instead of ending the test session.
"""

import json
import os
import subprocess
import sys

import numpy as np

from conftest import ROOT
from stac_fixtures import *  # noqa: F401,F403  (stac_server)
from stac_fixtures import read_composite

SCRIPT = r'''
import json, sys
sys.path.insert(0, {tests!r})
from qgis.core import QgsApplication
app = QgsApplication([], False)
app.initQgis()
from stac_fixtures import BOUNDARY, BOUNDARY_CRS, make_source
from task_waits import wait_until
from canopy_explorer.plugin.core.sentinel2.composites import CompositeRequest
from canopy_explorer.plugin.tasks.ndvi_task import NdviCompositeTask

source = make_source({url!r})
finished, failed = [], []


def start(name):
    task = NdviCompositeTask(CompositeRequest.create(source, BOUNDARY, BOUNDARY_CRS, "2022", 50, {folder!r} + "/" + name))
    task.completed.connect(lambda outputs: finished.extend(str(o.report.path) for o in outputs))
    task.failed.connect(failed.append)
    QgsApplication.taskManager().addTask(task)
    return task


kept = []
for n in range(3):  # back to back: each on a pooled thread another task has used
    kept.append(start(f"serial{{n}}"))
    wait_until(lambda: len(finished) + len(failed) == n + 1, timeout=180)
kept += [start(f"parallel{{n}}") for n in range(3)]  # side by side
wait_until(lambda: len(finished) + len(failed) == 6, timeout=300)
wait_until(lambda: QgsApplication.taskManager().countActiveTasks() == 0, timeout=60)
print(json.dumps({{"finished": finished, "failed": failed}}))
sys.stdout.flush()
'''


def test_six_composite_tasks_in_a_row_and_at_once_finish_with_the_same_composite(stac_server, tmp_path):
    code = SCRIPT.format(tests=str(ROOT / "tests"), url=stac_server.url, folder=str(tmp_path))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert run.returncode == 0, f"the QGIS process ended with {run.returncode} (negative: killed by that signal)\n{run.stderr[-3000:]}"
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["failed"] == [] and len(result["finished"]) == 6
    first, *others = [read_composite(path)[0] for path in result["finished"]]
    for other in others:
        np.testing.assert_array_equal(other, first)
    assert np.isfinite(first).any()
