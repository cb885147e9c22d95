"""Ingest on a Dask cluster (separate worker processes on loopback): the workers read granules and write their
own fragments, and the database equals a single-process build, row for row, on local disk and on S3."""

import json
import subprocess
import sys

import numpy as np
import pytest

from bad_granules import copy_as, subset
from canopy_explorer.plugin.core.errors import ConfigurationError
from canopy_explorer.plugin.core.lidar.config import local_config
from canopy_explorer.plugin.core.lidar.ingest import ingest_granules
from conftest import ROOT, s3_config
from dask_cluster import local_cluster
from distributed_fixtures import assert_no_duplicate, checksum, rows_by_segment, unrecorded_fragments
from granule_truth import segments


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two worker processes; no fault plan is ever written for this module."""
    with local_cluster(tmp_path_factory.mktemp("faults") / "never.json") as running:
        yield running


@pytest.fixture(scope="module")
def awkward_inputs(sample_granules, tmp_path_factory):
    """The sample granules, plus what the integrity rules are for: a copy under another name, and a subset
    of one granule named to come first, so the full granule after it adds only the missing segments."""
    folder = tmp_path_factory.mktemp("inputs")
    for path in sample_granules:
        copy_as(path, folder / path.name)
    copy_as(sample_granules[1], folder / "copy" / "renamed.h5")
    subset(copy_as(sample_granules[2], folder / "0_subset.h5"), ("gt1l", "gt2r"), slice(0, 200))
    return folder


def config_for(storage, tmp_path, s3_server, bucket):
    return local_config(tmp_path / bucket) if storage == "local" else s3_config(s3_server, bucket)


@pytest.fixture
def s3_or_none(request):
    return request.getfixturevalue("s3_server") if request.node.callspec.params["storage"] == "s3" else None


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_a_cluster_build_equals_the_single_process_build(storage, cluster, awkward_inputs, sample_granules, tmp_path,
                                                         s3_or_none):
    here = config_for(storage, tmp_path, s3_or_none, "single-process")
    there = config_for(storage, tmp_path, s3_or_none, "on-cluster")
    expected = ingest_granules(here, awkward_inputs, workers=1)
    report = ingest_granules(there, awkward_inputs, scheduler=cluster.scheduler_address)

    single, distributed = rows_by_segment(here), rows_by_segment(there)
    assert_no_duplicate(distributed)
    assert checksum(distributed) == checksum(single)
    for name in single:
        np.testing.assert_array_equal(distributed[name], single[name], err_msg=name)
    # nothing lost: every segment of the granules (the copy and the subset add none)
    np.testing.assert_array_equal(distributed["segment_id"], np.sort(segments(sample_granules)["segment_id"]))
    assert sorted(report.written) == sorted(expected.written)
    assert report.duplicates == expected.duplicates == [("renamed.h5", f"same granule as {sample_granules[1].name}, read in this run")]
    assert [(d.granule, d.counts) for d in report.dropped] == [(d.granule, d.counts) for d in expected.dropped] != []
    assert report.segments == expected.segments == len(single["segment_id"])
    assert unrecorded_fragments(there) == []

    again = ingest_granules(there, awkward_inputs, scheduler=cluster.scheduler_address)
    assert again.written == [] and again.segments == 0
    assert sorted(again.already_ingested) == sorted(report.written)


def test_each_task_writes_its_own_fragments_and_every_granule_is_recorded(cluster, sample_granules, tmp_path):
    from canopy_explorer.plugin.core.lidar.distributed_ingest import ingest_on_cluster  # noqa: F401 (the module exists)
    from canopy_explorer.plugin.core.lidar.ingest_ledger import read_ledger
    from distributed_fixtures import context

    config = local_config(tmp_path / "db")
    report = ingest_granules(config, sample_granules, scheduler=cluster.scheduler_address)
    ledger = read_ledger(config.ledger_uri, context(config))
    stamps = {entry.batch_timestamp for entry in ledger.values()}
    assert sorted(entry.file_name for entry in ledger.values()) == sorted(p.name for p in sample_granules)
    assert len(stamps) > 1, "one writer wrote every granule"
    assert sum(entry.segments for entry in ledger.values()) == report.segments == len(segments(sample_granules)["segment_id"])


def test_an_unreachable_scheduler_is_a_clear_error_and_nothing_is_written(sample_granules, tmp_path, monkeypatch):
    from canopy_explorer.plugin.core.lidar import distributed_ingest

    monkeypatch.setattr(distributed_ingest, "SCHEDULER_TIMEOUT_S", 2.0)
    config = local_config(tmp_path / "db")
    with pytest.raises(ConfigurationError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"):
        ingest_granules(config, sample_granules[:1], scheduler="tcp://127.0.0.1:9")
    assert not (tmp_path / "db").exists()


def test_without_dask_the_engine_ingests_and_a_scheduler_asks_for_it(sample_granules, tmp_path):
    """dask is optional for plugin users: a Python where it cannot be imported ingests as before."""
    code = f"""
import sys
sys.modules["dask"] = sys.modules["distributed"] = None  # not installed
from canopy_explorer.plugin.core.lidar.config import local_config
from canopy_explorer.plugin.core.lidar.ingest import ingest_granules
from canopy_explorer.plugin.core.errors import ConfigurationError
granules = {json.dumps([str(p) for p in sample_granules[:2]])}
print(len(ingest_granules(local_config({str(tmp_path / 'db')!r}), granules, workers=1).written))
try:
    ingest_granules(local_config({str(tmp_path / 'db2')!r}), granules, scheduler="tcp://127.0.0.1:8786")
except ConfigurationError as error:
    print(error)
"""
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert answer.returncode == 0, answer.stderr
    written, message = answer.stdout.strip().splitlines()
    assert written == "2"
    assert message == "a Dask scheduler was given but dask.distributed is not installed (pip install distributed, or make setup)"
