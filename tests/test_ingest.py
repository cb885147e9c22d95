"""Building a database: public layout, idempotent and resumable ingest, bad granules skipped."""

import numpy as np
import pytest
import tiledb

from canopy_explorer.plugin.core.lidar.config import local_config
from canopy_explorer.plugin.core.errors import Cancelled
from canopy_explorer.plugin.core.lidar.ingest import ingest_granules, read_ledger
from canopy_explorer.plugin.core.lidar.atl08.schema import decode_segment_id
from granule_truth import segments


def all_segment_ids(config):
    with tiledb.open(config.array_uri) as array:
        return np.sort(array.query(attrs=["segment_id"])[:]["segment_id"])


def test_array_has_the_public_layout(local_database):
    with tiledb.open(local_database.array_uri) as array:
        schema = array.schema
        assert [schema.domain.dim(i).name for i in range(3)] == ["latitude", "longitude", "time"]
        assert schema.domain.dim("latitude").dtype == np.float64
        assert schema.domain.dim("time").dtype == np.int64
        assert tuple(schema.domain.dim("time").domain) == (17532, 24105)
        assert schema.sparse and schema.allows_duplicates and schema.capacity == 100000
        assert schema.cell_order == "hilbert"
        names = {schema.attr(i).name for i in range(schema.nattr)}
        assert {"canopy_h_metrics_1", "canopy_h_metrics_18", "h_canopy_20m_5", "surf_type_5", "timestamp_ns", "beam_id", "delta_time"} <= names
        assert "canopy_h_metrics" not in names and "canopy_h_metrics_19" not in names
        assert schema.attr("h_canopy").dtype == np.float32 and schema.attr("segment_landcover").dtype == np.int16
        assert schema.attr("beam_id").isvar
        assert array.meta["canopy_h_metrics.profile_labels"] == "10,15,20,25,30,35,40,45,50,55,60,65,70,75,80,85,90,95"
        assert array.meta["canopy_h_metrics.profile_label_name"] == "percentile"
        assert array.meta["h_canopy_20m.subsegment_labels"] == "10,30,50,70,90"
        assert array.meta["h_canopy_20m.subsegment_label_name"] == "along_track_offset_m"
        assert array.meta["h_canopy.units"] == "meters"


def test_every_segment_is_written_once_with_its_encoded_id(local_database, sample_granules):
    truth = segments(sample_granules)
    ids = all_segment_ids(local_database)
    assert len(ids) == len(truth["segment_id"])  # bare ground kept, nothing duplicated
    np.testing.assert_array_equal(ids, np.sort(truth["segment_id"]))
    rgt, cycle, beam, seg = decode_segment_id(ids[:1])
    assert 1 <= rgt[0] <= 1387 and 0 <= beam[0] <= 5


def test_rerunning_writes_nothing(local_database, sample_granules):
    report = ingest_granules(local_database, sample_granules, workers=1)
    assert report.written == [] and report.segments == 0
    assert sorted(report.already_ingested) == sorted(p.name for p in sample_granules)


def test_ledger_records_each_granule_with_its_segment_count(local_database, sample_granules):
    from canopy_explorer.plugin.core.lidar.atl08.granule_identity import identify_granule

    ledger = read_ledger(local_database.ledger_uri, tiledb.Ctx())
    assert sorted(ledger) == sorted(identify_granule(p).key for p in sample_granules)  # keyed on content
    assert sorted(e.file_name for e in ledger.values()) == sorted(p.name for p in sample_granules)
    for path in sample_granules:
        assert ledger[identify_granule(path).key].segments == len(segments([path])["segment_id"])
    assert sum(e.segments for e in ledger.values()) == len(all_segment_ids(local_database))


def test_corrupt_truncated_and_foreign_files_are_skipped_by_name(tmp_path, sample_granules):
    import h5py

    bad = tmp_path / "in"
    bad.mkdir()
    (bad / "ATL08_20200101000000_00010101_007_01.h5").write_bytes(b"not hdf5 at all")
    truncated = bad / sample_granules[0].name
    truncated.write_bytes(sample_granules[0].read_bytes()[:20000])
    with h5py.File(bad / "ATL03_20200101000000_00010101_007_01.h5", "w") as h5:
        h5.create_group("gt1l/heights")
    good = bad / sample_granules[1].name
    good.write_bytes(sample_granules[1].read_bytes())
    config = local_config(tmp_path / "db")
    report = ingest_granules(config, bad, workers=1)
    skipped = dict(report.skipped)
    assert set(skipped) == {"ATL08_20200101000000_00010101_007_01.h5", truncated.name, "ATL03_20200101000000_00010101_007_01.h5"}
    assert "not a readable HDF5 file" in skipped["ATL08_20200101000000_00010101_007_01.h5"]
    assert "not an ATL08 granule" in skipped["ATL03_20200101000000_00010101_007_01.h5"]
    assert report.written == [good.name]
    assert len(all_segment_ids(config)) == len(segments([sample_granules[1]])["lat"])


def test_interrupted_run_resumes_without_duplicates_or_losses(tmp_path, sample_granules):
    config = local_config(tmp_path / "db", flush_every=1)

    def stop_halfway(fraction):
        if fraction >= 0.5:  # the first granule is written by then, not the last
            raise Cancelled("cancelled")

    with pytest.raises(Cancelled):
        ingest_granules(config, sample_granules, workers=1, progress=stop_halfway)
    partial = len(all_segment_ids(config))
    assert 0 < partial < len(segments(sample_granules)["lat"])
    report = ingest_granules(config, sample_granules, workers=1)
    assert len(report.already_ingested) >= 1
    np.testing.assert_array_equal(all_segment_ids(config), np.sort(segments(sample_granules)["segment_id"]))


def test_fragments_without_a_ledger_entry_are_removed_on_resume(tmp_path, sample_granules):
    """A run killed after writing data but before recording it leaves an orphan fragment."""
    from canopy_explorer.plugin.core.lidar import ingest as ingest_module

    config = local_config(tmp_path / "db")
    original = ingest_module._record

    def die_before_recording(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    ingest_module._record = die_before_recording
    try:
        with pytest.raises(KeyboardInterrupt):
            ingest_granules(config, sample_granules[:2], workers=1)
    finally:
        ingest_module._record = original
    assert len(all_segment_ids(config)) > 0  # data landed, ledger did not
    report = ingest_granules(config, sample_granules[:2], workers=1)
    assert report.removed_orphan_fragments == 1
    np.testing.assert_array_equal(all_segment_ids(config), np.sort(segments(sample_granules[:2])["segment_id"]))


def test_reference_filters_drop_bare_ground_water_and_urban(tmp_path, sample_granules):
    config = local_config(tmp_path / "db")
    ingest_granules(config, sample_granules[:1], workers=1, reference_filters=True)
    truth = segments(sample_granules[:1], datasets=("canopy/h_canopy", "canopy/h_canopy_uncertainty", "urban_flag", "segment_watermask"))
    keep = ~np.isnan(truth["canopy/h_canopy"]) & ~np.isnan(truth["canopy/h_canopy_uncertainty"]) & (truth["urban_flag"] == 0) & (truth["segment_watermask"] == 0)
    np.testing.assert_array_equal(all_segment_ids(config), np.sort(truth["segment_id"][keep]))


def test_parallel_processes_give_the_same_database(tmp_path, sample_granules, local_database):
    config = local_config(tmp_path / "db")
    ingest_granules(config, sample_granules, workers=2, executor="process")
    np.testing.assert_array_equal(all_segment_ids(config), all_segment_ids(local_database))


def test_writes_one_fragment_per_write_tile_and_batch(tmp_path, sample_granules):
    config = local_config(tmp_path / "db")
    report = ingest_granules(config, sample_granules, workers=1)
    years = {p.name[6:10] for p in sample_granules}
    assert report.fragments == len(years)  # all granules fall in one 30 x 30 degree tile
    assert len(tiledb.FragmentInfoList(config.array_uri)) == len(years)


def test_command_line_ingest(tmp_path, sample_granules):
    import subprocess
    import sys

    config_file = tmp_path / "db.yaml"
    config_file.write_text(f"tiledb:\n  storage_type: local\n  local_path: {tmp_path / 'cli_db'}\n")
    result = subprocess.run(
        [sys.executable, "-m", "canopy_explorer.plugin.core.lidar.ingest", str(config_file), str(sample_granules[0].parent), "--workers", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"{len(sample_granules)} granules written" in result.stdout


def test_fragments_written_before_the_ledger_existed_are_kept(tmp_path, sample_granules):
    """Ingesting into a database built by another tool never deletes its data."""
    from canopy_explorer.plugin.core.lidar.atl08.granule import read_granule
    from canopy_explorer.plugin.core.lidar.atl08.schema import create_array

    config = local_config(tmp_path / "db")
    (tmp_path / "db").mkdir()
    create_array(config.array_uri, config, tiledb.Ctx())
    columns = read_granule(sample_granules[0])
    with tiledb.open(config.array_uri, "w") as array:
        array[columns["latitude"], columns["longitude"], columns["time"]] = {k: v for k, v in columns.items() if k not in ("latitude", "longitude", "time")}
    report = ingest_granules(config, sample_granules[1:2], workers=1)
    assert report.removed_orphan_fragments == 0
    expected = np.sort(np.concatenate([segments([p])["segment_id"] for p in sample_granules[:2]]))
    np.testing.assert_array_equal(all_segment_ids(config), expected)
