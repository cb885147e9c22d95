"""Dask clusters of separate worker processes on loopback, for the distributed ingest tests.

``local_cluster``: a LocalCluster whose scheduler runs in the test process and whose two workers are
processes of their own (the worker-killed faults). ``ClusterProcess``: the same cluster started by
another process (``python tests/dask_cluster.py``), so a test can lose its scheduler by killing it.
Both give the workers ``FAULT_VARIABLE`` naming a fault plan file the tests write when they want a fault.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

WORKERS = 2


def cluster_options(fault_plan: Path) -> dict:
    from canopy_explorer.plugin.core.lidar.distributed_ingest import FAULT_VARIABLE

    return dict(n_workers=WORKERS, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0",
                env={FAULT_VARIABLE: str(fault_plan)}, silence_logs=40)


def local_cluster(fault_plan: Path):
    from dask.distributed import LocalCluster

    return LocalCluster(**cluster_options(fault_plan))


class ClusterProcess:
    """``with ClusterProcess(plan) as cluster:`` cluster.address, cluster.pid; stopped (SIGKILL) on leaving."""

    def __init__(self, fault_plan: Path):
        self.fault_plan = fault_plan
        self.process = None
        self.address = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def __enter__(self) -> "ClusterProcess":
        self.process = subprocess.Popen([sys.executable, __file__, str(self.fault_plan)], stdout=subprocess.PIPE, text=True,
                                        start_new_session=True)
        self.address = self.process.stdout.readline().strip()
        if not self.address.startswith("tcp://"):
            self.stop()
            raise RuntimeError(f"the cluster process did not start (it printed {self.address!r})")
        return self

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # worker processes left in its session, if any
        except ProcessLookupError:
            pass
        self.process.stdout.close()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    with local_cluster(Path(sys.argv[1])) as cluster:
        print(cluster.scheduler_address, flush=True)
        while True:
            time.sleep(60)
