"""The sample database for a plugin installed without one: built in the background into the user's
data folder, whole or not at all, and the same database `make demo` builds."""

from pathlib import Path

import pytest
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt

from task_waits import wait_until
from canopy_explorer.plugin.core.lidar.config import load_config, local_config
from canopy_explorer.plugin.core.lidar.database import Atl08Database
from canopy_explorer.plugin.core.errors import Cancelled
from canopy_explorer.plugin.core.lidar.query import SegmentQuery
from canopy_explorer.plugin.core.samples.database import (
    SAMPLE_SEED, build_sample_database, sample_database_config, sample_database_exists,
)
from canopy_explorer.plugin.core.samples.granules import SAMPLE_REGION
from canopy_explorer.plugin.tasks.sample_database_task import SampleDatabaseTask

ROOT = Path(__file__).resolve().parent.parent
DEMO_BOX = (9.6, 50.6, 10.3, 51.3)  # inside SAMPLE_REGION (lat 50.5-51.5, lon 9.5-10.5)


def bundled_config(folder: Path, database: Path = None) -> Path:
    """configs/sample_local.yaml as shipped, copied into ``folder``, optionally pointing at ``database``."""
    text = (ROOT / "configs" / "sample_local.yaml").read_text(encoding="utf-8")
    if database is not None:
        text = text.replace('"../sample_data/atl08_db"', f'"{database}"')
    path = folder / "configs" / "sample_local.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def run_task(task):
    """Run a task in QGIS's task manager until it ends; 'completed' or 'terminated'."""
    ends = []
    task.taskCompleted.connect(lambda: ends.append("completed"))
    task.taskTerminated.connect(lambda: ends.append("terminated"))
    QgsApplication.taskManager().addTask(task)
    wait_until(lambda: ends, timeout=180)
    wait_until(lambda: QgsApplication.taskManager().countActiveTasks() == 0)
    return ends[0]


def test_the_demo_and_the_plugin_build_the_same_sample_data():
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import demo
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert demo.SAMPLE_SEED == SAMPLE_SEED == 42 and demo.SAMPLE_REGION == SAMPLE_REGION


def test_the_task_builds_a_sample_database_that_a_query_reads(tmp_path):
    config = sample_database_config(bundled_config(tmp_path / "plugin"), tmp_path / "profile" / "sample_data" / "atl08_db")
    assert config.local_path == str(tmp_path / "profile" / "sample_data" / "atl08_db") and not sample_database_exists(config)
    task = SampleDatabaseTask(config)
    reports = []
    task.completed.connect(reports.append)

    assert run_task(task) == "completed"

    assert sample_database_exists(config) and reports[0].segments > 0 and len(reports[0].written) == 16
    frame = Atl08Database(config).query(SegmentQuery.create(roi=DEMO_BOX, start="2019-01-01", end="2023-12-31", variables=["h_canopy"]))
    assert len(frame) > 1000
    assert frame["latitude"].between(50.6, 51.3).all() and frame["longitude"].between(9.6, 10.3).all()
    # only the database is left: no granules, no staging folder
    assert sorted(p.name for p in (tmp_path / "profile" / "sample_data").iterdir()) == ["atl08_db"]


def test_a_cancelled_build_leaves_nothing_behind(tmp_path):
    profile = tmp_path / "profile"
    profile.mkdir()
    config = local_config(profile / "canopy_explorer" / "sample_data" / "atl08_db")
    task = SampleDatabaseTask(config)
    # cancel from inside the run, at its first progress report, so the cancel lands mid-build
    task.progressChanged.connect(lambda _: task.cancel(), Qt.ConnectionType.DirectConnection)

    assert run_task(task) == "terminated"

    assert list(profile.iterdir()) == []  # not the database, not the granules, not the folders made for them


def test_a_build_stopped_while_ingesting_leaves_nothing_behind(tmp_path):
    config = local_config(tmp_path / "sample_data" / "atl08_db")
    seen = []

    def progress(fraction):
        seen.append(fraction)
        if fraction > 0.6:  # past the granules, in the middle of the ingest
            raise Cancelled("cancelled by the user")

    with pytest.raises(Cancelled):
        build_sample_database(config, progress=progress)
    assert max(seen) > 0.6 and list(tmp_path.iterdir()) == []


def test_an_existing_sample_database_is_used_not_rebuilt(tmp_path):
    config = local_config(tmp_path / "atl08_db")
    assert build_sample_database(config) is not None
    stamp = (tmp_path / "atl08_db" / "array_uri").stat().st_mtime_ns
    assert build_sample_database(config) is None
    assert (tmp_path / "atl08_db" / "array_uri").stat().st_mtime_ns == stamp


def test_the_sample_choice_is_the_repository_copy_when_make_demo_built_it(tmp_path):
    repository_copy = tmp_path / "repository" / "sample_data" / "atl08_db"
    (repository_copy / "array_uri").mkdir(parents=True)  # what make demo leaves
    bundled = bundled_config(tmp_path / "repository", repository_copy)
    user = tmp_path / "profile" / "atl08_db"

    assert sample_database_config(bundled, user).local_path == str(repository_copy)
    (repository_copy / "array_uri").rmdir()
    chosen = sample_database_config(bundled, user)
    assert chosen.local_path == str(user)
    assert chosen.latitude_tile == load_config(bundled).latitude_tile  # the shipped layout, in the user's folder
