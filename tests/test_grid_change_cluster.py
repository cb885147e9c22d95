"""Grid change on a Dask cluster: workers read their own parts of the database, the statistics merge to the single-process result."""

import sys
from fractions import Fraction

import numpy as np
import pytest

from canopy_explorer.plugin.core.errors import ConfigurationError, MissingDependencyError
from canopy_explorer.plugin.core.grid import cluster_statistics
from canopy_explorer.plugin.core.grid.cell_statistics import CellStatistics
from canopy_explorer.plugin.core.grid.change import FIELDS, GridChangeRequest, grid_change
from canopy_explorer.plugin.core.lidar.database import Atl08Database
from canopy_explorer.plugin.core.lidar.query import SegmentQuery
from grid_fixtures import PERIODS, write_planted_database

SAMPLE_PERIODS = (("2020-01-01", "2020-12-31"), ("2021-01-01", "2021-12-31"))


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes on loopback, as a real cluster's workers would be (each its own interpreter)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=40) as local:
        yield local.scheduler_address


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    config, _ = write_planted_database(tmp_path_factory.mktemp("planted_cluster") / "db", europe=20_000, antimeridian=2_000)
    return config


def assert_same_result(on_cluster, here):
    assert np.array_equal(on_cluster.cell, here.cell) and len(here) > 0
    for name in FIELDS:  # exact: counts, means, medians and changes, bit for bit
        assert np.array_equal(on_cluster.columns[name], here.columns[name]), name
    assert on_cluster.segments == here.segments and on_cluster.cells_seen == here.cells_seen


def test_the_cluster_result_equals_the_single_process_result_on_a_local_database(cluster, planted):
    def request(**scheduler):
        return GridChangeRequest.create(planted, periods=PERIODS, cell_size_km=50, min_shots=20, filters="h_canopy >= 0",
                                        batch_rows=3_000, **scheduler)

    here = grid_change(request())
    on_cluster = grid_change(request(scheduler=cluster))
    assert_same_result(on_cluster, here)
    assert on_cluster.batches > here.batches  # the parts were read in batches of their own, on the workers


def test_the_cluster_result_equals_the_single_process_result_on_s3(cluster, s3_database):
    def request(**scheduler):  # the workers open the bucket with the configuration's endpoint and keys
        return GridChangeRequest.create(s3_database, periods=SAMPLE_PERIODS, cell_size_km=3, min_shots=1, batch_rows=2_000,
                                        roi=(7.0, 45.0, 7.3, 45.3), **scheduler)

    here = grid_change(request())
    assert_same_result(grid_change(request(scheduler=cluster)), here)


def test_progress_reaches_the_end_and_cancel_stops_the_cluster_run(cluster, planted):
    from canopy_explorer.plugin.core.errors import Cancelled

    request = GridChangeRequest.create(planted, periods=PERIODS, cell_size_km=50, min_shots=20, scheduler=cluster)
    fractions = []
    grid_change(request, progress=fractions.append)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) > 2

    checks = []

    def cancel_on_the_third_check():
        checks.append(1)
        if len(checks) == 3:
            raise Cancelled("cancelled")

    with pytest.raises(Cancelled):
        grid_change(request, check_cancel=cancel_on_the_third_check)


def test_the_region_parts_read_every_segment_exactly_once(planted):
    spec = SegmentQuery.create(roi=(8.0, 50.0, 12.0, 52.0), start=PERIODS[0][0], end=PERIODS[0][1])
    database = Atl08Database(planted)
    whole = database.query(spec)["segment_id"].to_numpy()
    pieces = cluster_statistics.split_region(spec, 7)
    assert len(pieces) == 7
    in_parts = np.concatenate([database.query(piece)["segment_id"].to_numpy() for piece in pieces])
    assert len(in_parts) == len(whole) and np.array_equal(np.sort(in_parts), np.sort(whole))


def test_a_strip_edge_on_a_segment_gives_it_to_one_part_only():
    (west, _, east, _), (west2, _, east2, _) = cluster_statistics._strips(10.0, 50.0, 11.0, 51.0, 2)
    assert (west, east2) == (10.0, 11.0) and west2 == 10.5 and east == np.nextafter(10.5, 0)


def test_statistics_merged_from_parts_equal_one_pass_bit_for_bit():
    rng = np.random.default_rng(5)
    cells = rng.integers(0, 40, 30_000)
    values = np.concatenate([rng.normal(20, 6, 29_990), [1e-9, -3.0, 0.0, 7e5, 1e-300, -1e-300, 2.5, 2.5, 1e15, -1e15]])
    values[rng.random(len(values)) < 0.01] = np.nan
    one_pass = CellStatistics()
    for start in range(0, len(values), 7_000):
        one_pass.add(cells[start:start + 7_000], values[start:start + 7_000])
    merged = CellStatistics()
    for part in np.array_split(rng.permutation(len(values)), 3):  # other parts, in another order
        worker = CellStatistics()
        for chunk in np.array_split(part, 4):
            worker.add(cells[chunk], values[chunk])
        merged.merge(worker.partial())
    expected, got = one_pass.result(), merged.result()
    for name in ("cell", "count", "mean", "median"):
        assert np.array_equal(getattr(got, name), getattr(expected, name)), name
    for cell, mean in zip(got.cell, got.mean):  # the exact mean, rounded once
        mine = values[(cells == cell) & np.isfinite(values)]
        assert mean == float(sum(map(Fraction, mine)) / len(mine))


def test_a_scheduler_that_cannot_be_reached_is_named(planted, monkeypatch):
    import socket

    pytest.importorskip("distributed")
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(cluster_statistics, "CONNECT_TIMEOUT_S", 1)
    request = GridChangeRequest.create(planted, periods=PERIODS, scheduler=f"tcp://127.0.0.1:{port}", scheduler_label="SCHEDULER")
    with pytest.raises(ConfigurationError, match=f"cannot reach SCHEDULER at 'tcp://127.0.0.1:{port}'"):
        grid_change(request)


def test_a_scheduler_address_that_is_not_one_is_refused_before_any_read(planted):
    with pytest.raises(ConfigurationError, match="SCHEDULER 'my cluster' is not an address: write it as tcp://host:8786"):
        GridChangeRequest.create(planted, periods=PERIODS, scheduler="my cluster", scheduler_label="SCHEDULER")
    assert GridChangeRequest.create(planted, periods=PERIODS, scheduler="  ").scheduler is None  # empty: compute here


def test_without_dask_a_scheduler_is_refused_with_its_name(planted, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    request = GridChangeRequest.create(planted, periods=PERIODS, scheduler="tcp://127.0.0.1:8786", scheduler_label="SCHEDULER")
    with pytest.raises(MissingDependencyError, match="SCHEDULER 'tcp://127.0.0.1:8786' needs Dask's distributed package.*"
                                                     "leave SCHEDULER empty to compute here"):
        grid_change(request)
    assert len(grid_change(GridChangeRequest.create(planted, periods=PERIODS, cell_size_km=50, min_shots=20))) > 0


def test_processing_runs_on_the_cluster_with_scheduler(loaded_plugin, cluster, planted, tmp_path):
    from qgis import processing
    from qgis.core import QgsProcessingFeedback, QgsVectorLayer

    parameters = {"CONFIG": planted.local_path, "VARIABLE": "h_canopy", "PERIOD1_START": PERIODS[0][0], "PERIOD1_END": PERIODS[0][1],
                  "PERIOD2_START": PERIODS[1][0], "PERIOD2_END": PERIODS[1][1], "CELL_SIZE_KM": 50, "MIN_SHOTS": 20,
                  "SCHEDULER": cluster, "OUTPUT": str(tmp_path / "change.gpkg")}
    result = processing.run("canopyexplorer:atl08_grid_change", parameters, feedback=QgsProcessingFeedback())
    here = grid_change(GridChangeRequest.create(planted, periods=PERIODS, cell_size_km=50, min_shots=20))
    layer = QgsVectorLayer(f"{result['OUTPUT']}|layername=grid_change", "change", "ogr")
    rows = {f["cell_id"]: f for f in layer.getFeatures()}
    assert result["CELLS"] == len(here) == len(rows) > 0
    for name in FIELDS:
        assert [rows[int(cell)][name] for cell in here.cell] == here.columns[name].tolist(), name


def test_the_dialog_passes_its_dask_scheduler_to_the_request(loaded_plugin, planted, tmp_path):
    from canopy_explorer.plugin.gui.explorer_dialog import ExplorerDialog
    from dialog_fixtures import use_database

    dialog = ExplorerDialog(loaded_plugin.iface)
    use_database(dialog, planted.local_path)
    dialog.variables.set_variables(["h_canopy"])
    panel = dialog.grid_change
    panel.gridWholeCheck.setChecked(True)
    panel.gridOutputWidget.setFilePath(str(tmp_path / "change.gpkg"))
    assert panel.build_task().request.scheduler is None  # empty: computed here
    panel.schedulerEdit.setText(" tcp://127.0.0.1:8786 ")
    assert panel.build_task().request.scheduler == "tcp://127.0.0.1:8786"
    panel.schedulerEdit.setText("my cluster")
    assert panel.map_grid_change() is None
    assert "The Dask scheduler 'my cluster' is not an address" in panel.statusLabel.text() and not list(tmp_path.iterdir())
    dialog.deleteLater()
