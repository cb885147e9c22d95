"""Faults on the cluster, with separate worker processes on loopback, on local disk and on the loopback S3 server:
a worker killed (SIGKILL) once its task's fragments are committed, and the scheduler lost at that moment. Either the
run completes (Dask runs the task again) or the next run completes it; never a duplicate, never an orphan fragment.

The faults are planned by a file the workers read (``distributed_ingest.FAULT_VARIABLE``): deterministic, and once."""

import json

import numpy as np
import pytest

from canopy_explorer.plugin.core.errors import StorageError
from canopy_explorer.plugin.core.lidar.config import local_config
from canopy_explorer.plugin.core.lidar.ingest import ingest_granules
from conftest import s3_config
from dask_cluster import ClusterProcess, local_cluster
from distributed_fixtures import assert_no_duplicate, rows_by_segment, unrecorded_fragments
from granule_truth import segments


@pytest.fixture(scope="module")
def fault_plan(tmp_path_factory):
    return tmp_path_factory.mktemp("faults") / "fault.json"


@pytest.fixture(scope="module")
def cluster(fault_plan):
    with local_cluster(fault_plan) as running:
        yield running


def plan(fault_plan, granule: str, pid: int = 0, when: str = "written") -> None:
    fault_plan.with_name(fault_plan.name + ".done").unlink(missing_ok=True)
    fault_plan.write_text(json.dumps({"granule": granule, "pid": pid, "when": when}))


def fired(fault_plan) -> bool:
    return not fault_plan.exists() and fault_plan.with_name(fault_plan.name + ".done").exists()


def database(storage, tmp_path, request, bucket):
    return local_config(tmp_path / bucket) if storage == "local" else s3_config(request.getfixturevalue("s3_server"), bucket)


def assert_complete(config, granules):
    rows = rows_by_segment(config)
    assert_no_duplicate(rows)
    np.testing.assert_array_equal(rows["segment_id"], np.sort(segments(granules)["segment_id"]))  # nothing lost
    assert unrecorded_fragments(config) == []


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_a_worker_killed_after_committing_its_fragments_is_replaced_and_the_run_completes(
        storage, cluster, fault_plan, sample_granules, tmp_path, request):
    config = database(storage, tmp_path, request, f"worker-killed-{storage}")
    victim = sorted(p.name for p in sample_granules)[len(sample_granules) // 2]
    plan(fault_plan, victim)
    report = ingest_granules(config, sample_granules, scheduler=cluster.scheduler_address)
    assert fired(fault_plan)
    assert sorted(report.written) == sorted(p.name for p in sample_granules)
    assert report.removed_orphan_fragments == 0
    assert_complete(config, sample_granules)


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_a_scheduler_lost_mid_run_fails_clearly_and_the_next_run_completes_it(
        storage, cluster, fault_plan, sample_granules, tmp_path, request):
    config = database(storage, tmp_path, request, f"scheduler-lost-{storage}")
    victim = sorted(p.name for p in sample_granules)[len(sample_granules) // 2]
    with ClusterProcess(fault_plan) as doomed:
        plan(fault_plan, victim, pid=doomed.pid)  # the worker with that granule kills the scheduler's process
        with pytest.raises(StorageError, match=r"Dask .*run the ingest again to complete it"):
            ingest_granules(config, sample_granules, scheduler=doomed.address)
    assert fired(fault_plan)
    assert unrecorded_fragments(config) != []  # the victim's task had committed its fragments

    again = ingest_granules(config, sample_granules, scheduler=cluster.scheduler_address)
    assert again.removed_orphan_fragments >= 1
    assert sorted(again.written + again.already_ingested) == sorted(p.name for p in sample_granules)
    assert victim in again.written
    assert_complete(config, sample_granules)
