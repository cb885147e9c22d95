"""QGIS under load: eight queries at once over a slow S3 link, then all cancelled."""

import time

import pytest
from qgis.core import QgsApplication, QgsProject, QgsTask
from qgis.PyQt.QtCore import QTimer

from canopy_explorer.plugin.core.lidar.database import Atl08Database
from canopy_explorer.plugin.core.lidar.query import SegmentQuery
from canopy_explorer.plugin.layers.segment_layer import QueryRequest
from canopy_explorer.plugin.tasks.query_task import QueryTask
from fault_proxy import FaultProxy
from task_waits import wait_until
from test_faults_s3 import config_through

QUERIES = 8


def test_eight_queries_cancelled_at_once_leave_nothing_and_qgis_keeps_answering(loaded_plugin, s3_server, s3_database, tmp_path):
    ticks = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    with FaultProxy(s3_server, delay_rate=1.0, delay_s=0.3, seed=5) as proxy:  # every request takes 0.3 s
        config = config_through(proxy.url, s3_database.s3_bucket)
        Atl08Database(config)  # reachable, before the clock starts
        tasks, outcomes = [], {}
        for index in range(QUERIES):
            spec = SegmentQuery.create(variables=["h_canopy", "canopy_h_metrics:95", "h_te_best_fit"][: 1 + index % 3])
            task = QueryTask(QueryRequest(config, spec, ("h_canopy",), output_path=str(tmp_path / f"query_{index}.gpkg")))
            tasks.append(task)
            # the task manager deletes a finished task: its outcome is kept from its signals
            task.taskCompleted.connect(lambda i=index: outcomes.setdefault(i, "completed"))
            task.taskTerminated.connect(lambda i=index: outcomes.setdefault(i, "terminated"))
            task.statusChanged.connect(lambda status, i=index: status == QgsTask.TaskStatus.Running and outcomes.setdefault(f"ran {i}", True))
            QgsApplication.taskManager().addTask(task)
        timer.start()
        # the timer ticks while the tasks run: the main thread is free
        wait_until(lambda: sum(str(k).startswith("ran") for k in outcomes) >= 2 and len(ticks) >= 3, timeout=30)
        cancelled_at = time.monotonic()
        QgsApplication.taskManager().cancelAll()
        wait_until(lambda: all(i in outcomes for i in range(QUERIES)), timeout=120)
        finished_at = time.monotonic()
        timer.stop()
    assert [outcomes[i] for i in range(QUERIES)] == ["terminated"] * QUERIES
    assert [p.name for p in tmp_path.iterdir()] == []  # no result, no partial file
    assert not [layer for layer in QgsProject.instance().mapLayers().values() if layer.name().startswith("ATL08")]
    # the event loop kept turning while the tasks ran and while they wound down (a frozen UI has no timer ticks)
    assert finished_at - cancelled_at < 0.1 or any(cancelled_at <= t <= finished_at for t in ticks)


@pytest.fixture(autouse=True)
def _no_leftover_tasks():
    yield
    QgsApplication.taskManager().cancelAll()
    wait_until(lambda: QgsApplication.taskManager().countActiveTasks() == 0, timeout=60)
