"""Nothing lost, duplicated or poisoned: granules known by content, rows checked before writing,
configuration ranges honoured, ledgers of the previous version upgraded, damaged databases readable.

Every bad granule is made here from a sample granule (``bad_granules``); expected rows come from
the files themselves through h5py (``granule_truth``), not from the engine."""

import numpy as np
import pytest
import tiledb

from bad_granules import FILL, beam_rows, copy_as, set_values, shorten, subset, write_legacy_database, write_poisoned_fragment
from canopy_explorer.plugin.core.lidar.config import DatabaseConfig, load_config, local_config
from canopy_explorer.plugin.core.lidar.database import Atl08Database
from canopy_explorer.plugin.core.errors import ConfigurationError, GranuleError
from canopy_explorer.plugin.core.lidar.atl08.granule_identity import identify_granule
from canopy_explorer.plugin.core.lidar.granule_identity import is_identity_key
from canopy_explorer.plugin.core.lidar.ingest import ingest_granules, read_ledger
from canopy_explorer.plugin.core.lidar.query import SegmentQuery
from canopy_explorer.plugin.core.lidar.atl08.segment_checks import (
    ALREADY_STORED,
    INVALID_COORDINATES,
    INVALID_SEGMENT_ID,
    INVALID_TIME,
    OUTSIDE_SPATIAL_RANGE,
    OUTSIDE_TIME_RANGE,
)
from conftest import s3_config
from granule_truth import segments


def stored_ids(config):
    with tiledb.open(config.array_uri, ctx=tiledb.Ctx(tiledb.Config(config.tiledb_config()))) as array:
        return np.sort(array.query(attrs=["segment_id"])[:]["segment_id"])


def truth_ids(paths, keep=None):
    truth = segments(paths)
    ids = truth["segment_id"] if keep is None else truth["segment_id"][keep(truth)]
    return np.sort(ids)


def valid_coordinates(truth):
    return (np.abs(truth["lat"]) <= 90) & (np.abs(truth["lon"]) <= 180)


def assert_exactly(config, expected):
    ids = stored_ids(config)
    assert len(ids) == len(np.unique(ids)), "a segment is stored twice"
    np.testing.assert_array_equal(ids, expected)


# --------------------------------------------------------------------------- identity


def test_the_same_granule_under_two_names_is_stored_once_and_both_are_named(tmp_path, sample_granules):
    first, other = sample_granules[0], sample_granules[1]
    folder = tmp_path / "in"
    copy_as(first, folder / first.name)
    second = first.name.replace("_01.h5", "_02.h5")
    copy_as(first, folder / second)
    copy_as(other, folder / other.name)
    config = local_config(tmp_path / "db")
    report = ingest_granules(config, folder, workers=1)
    assert report.duplicates == [(second, f"same granule as {first.name}, read in this run")]
    assert sorted(report.written) == sorted([first.name, other.name])
    assert_exactly(config, truth_ids([first, other]))
    assert f"duplicate {second}: same granule as {first.name}" in report.summary()

    # later, the same data under a third name in another folder
    renamed = copy_as(first, tmp_path / "elsewhere" / "my_granule.h5")
    again = ingest_granules(config, renamed.parent, workers=1)
    assert again.duplicates == [("my_granule.h5", f"same granule as {first.name}, already in the database")]
    assert again.written == [] and again.segments == 0
    assert_exactly(config, truth_ids([first, other]))


def test_two_different_granules_with_one_name_are_both_stored(tmp_path, sample_granules):
    name = sample_granules[0].name
    older = copy_as(sample_granules[0], tmp_path / "in" / "2019" / name)
    newer = copy_as(sample_granules[2], tmp_path / "in" / "2020" / name)
    config = local_config(tmp_path / "db")
    report = ingest_granules(config, tmp_path / "in", workers=1)
    assert sorted(report.written) == [f"2019/{name}", f"2020/{name}"] and report.duplicates == []
    assert_exactly(config, truth_ids([older, newer]))
    ledger = read_ledger(config.ledger_uri, tiledb.Ctx())
    assert sorted(e.file_name for e in ledger.values()) == [f"2019/{name}", f"2020/{name}"]
    assert all(is_identity_key(key) for key in ledger)
    again = ingest_granules(config, tmp_path / "in", workers=1)
    assert sorted(again.already_ingested) == [f"2019/{name}", f"2020/{name}"] and again.written == []


def test_an_edited_copy_of_a_stored_granule_adds_no_segment(tmp_path, sample_granules):
    """Fill values written into a copy change its content, not its segments: it is a copy."""
    original = sample_granules[0]
    config = local_config(tmp_path / "db")
    ingest_granules(config, original, workers=1)
    edited = set_values(copy_as(original, tmp_path / "in" / "edited.h5"), "gt1l", "latitude", slice(10, 20), FILL)
    report = ingest_granules(config, edited, workers=1)
    assert report.duplicates == [("edited.h5", f"holds only segments already stored from {original.name} "
                                               "(an edited copy, a subset or another version of it?)")]
    assert report.written == [] and report.segments == 0
    assert_exactly(config, truth_ids([original]))


def test_a_full_granule_after_its_subset_adds_only_the_missing_segments(tmp_path, sample_granules):
    full = sample_granules[0]
    part = subset(copy_as(full, tmp_path / "harmony" / "subset.h5"), ("gt1l", "gt2r"), slice(0, 200))
    config = local_config(tmp_path / "db")
    first = ingest_granules(config, part, workers=1)
    assert first.written == ["subset.h5"] and first.segments == 400
    report = ingest_granules(config, full, workers=1)
    assert report.written == [full.name]
    assert [(d.granule, d.counts) for d in report.dropped] == [(full.name, {ALREADY_STORED: 400})]
    assert any(note.startswith(f"{full.name} shares 400 segments with subset.h5") for note in report.notes)
    assert_exactly(config, truth_ids([full]))
    # and the subset once more, in either order within one run
    both = tmp_path / "both"
    copy_as(full, both / "b_full.h5")
    copy_as(part, both / "a_subset.h5")
    config2 = local_config(tmp_path / "db2")
    ingest_granules(config2, both, workers=1)
    assert_exactly(config2, truth_ids([full]))


def test_identity_ignores_the_name_and_sees_any_change_of_data(tmp_path, sample_granules):
    original = identify_granule(sample_granules[0])
    assert identify_granule(copy_as(sample_granules[0], tmp_path / "a" / "renamed.h5")) == original
    edited = set_values(copy_as(sample_granules[0], tmp_path / "b" / sample_granules[0].name), "gt3r", "longitude", 7, 7.2)
    changed = identify_granule(edited)
    assert changed.key != original.key
    assert (changed.rgt, changed.cycle, changed.first_segment, changed.last_segment) == (
        original.rgt, original.cycle, original.first_segment, original.last_segment)
    truth = segments([sample_granules[0]])
    assert original.segments == len(truth["segment_id"]) and original.year == 2020


# --------------------------------------------------------------------------- rows checked before writing


def test_fill_values_in_latitude_are_dropped_counted_and_never_become_an_extent(tmp_path, sample_granules):
    bad = set_values(copy_as(sample_granules[0], tmp_path / "in" / sample_granules[0].name), "gt1l", "latitude", slice(10, 20), FILL)
    good = copy_as(sample_granules[1], tmp_path / "in" / sample_granules[1].name)
    config = local_config(tmp_path / "db")
    report = ingest_granules(config, tmp_path / "in", workers=1)
    assert sorted(report.written) == sorted([bad.name, good.name])
    assert len(report.dropped) == 1
    dropped = report.dropped[0]
    assert (dropped.granule, dropped.counts, dropped.rows) == (bad.name, {INVALID_COORDINATES: 10}, len(segments([bad])["lat"]))
    assert f"{bad.name}: dropped 10 of {dropped.rows} segments: 10 fill, NaN or out-of-range latitude/longitude" in report.summary()
    assert_exactly(config, truth_ids([bad, good], valid_coordinates))
    for fragment in tiledb.FragmentInfoList(config.array_uri):
        assert np.isfinite(np.array(fragment.nonempty_domain[:2], dtype=float)).all()
    database = Atl08Database(config)
    whole = SegmentQuery.create(variables=["h_canopy"])
    assert database.estimate(whole).rows >= len(stored_ids(config)) and database.estimate(whole).damaged_fragments == ()
    assert len(database.query(whole)) == len(stored_ids(config))


def test_a_latitude_of_95_drops_that_row_not_the_annual_batch(tmp_path, sample_granules):
    bad = set_values(copy_as(sample_granules[0], tmp_path / "in" / sample_granules[0].name), "gt2r", "latitude", 3, 95.0)
    good = copy_as(sample_granules[1], tmp_path / "in" / sample_granules[1].name)  # the same year: one batch
    assert bad.name[6:10] == good.name[6:10]
    config = local_config(tmp_path / "db")
    report = ingest_granules(config, tmp_path / "in", workers=1)
    assert sorted(report.written) == sorted([bad.name, good.name]) and report.skipped == []
    assert [(d.granule, d.counts) for d in report.dropped] == [(bad.name, {INVALID_COORDINATES: 1})]
    assert_exactly(config, truth_ids([bad, good], valid_coordinates))


def test_fill_times_and_segment_ids_are_dropped_and_counted(tmp_path, sample_granules):
    bad = copy_as(sample_granules[0], tmp_path / "in" / sample_granules[0].name)
    set_values(bad, "gt1l", "delta_time", slice(0, 5), np.finfo(np.float64).max)
    set_values(bad, "gt2l", "segment_id_beg", slice(5, 8), np.iinfo(np.int32).max)
    config = local_config(tmp_path / "db")
    report = ingest_granules(config, bad, workers=1)
    assert [(d.granule, d.counts) for d in report.dropped] == [(bad.name, {INVALID_TIME: 5, INVALID_SEGMENT_ID: 3})]
    truth = segments([sample_granules[0]])
    beams = truth["beam"]
    keep = np.ones(len(beams), dtype=bool)
    keep[np.flatnonzero(beams == "gt1l")[0:5]] = False
    keep[np.flatnonzero(beams == "gt2l")[5:8]] = False
    assert_exactly(config, np.sort(truth["segment_id"][keep]))


def test_a_beam_with_arrays_of_different_lengths_skips_its_granule_by_name_not_the_batch(tmp_path, sample_granules):
    bad = shorten(copy_as(sample_granules[0], tmp_path / "in" / sample_granules[0].name), "gt2l", "longitude", by=5)
    good = copy_as(sample_granules[1], tmp_path / "in" / sample_granules[1].name)
    rows = beam_rows(bad, "gt2l")
    config = local_config(tmp_path / "db")
    report = ingest_granules(config, tmp_path / "in", workers=1)
    assert report.skipped == [(bad.name, f"beam gt2l cannot be read consistently: longitude has {rows - 5} rows "
                                         f"but latitude has {rows}")]
    assert report.written == [good.name]
    assert_exactly(config, truth_ids([good]))


def test_a_first_ingest_of_only_unreadable_granules_fails_by_name_and_leaves_nothing(tmp_path, sample_granules):
    bad = shorten(copy_as(sample_granules[0], tmp_path / "in" / sample_granules[0].name), "gt1r", "delta_time", by=1)
    config = local_config(tmp_path / "db")
    with pytest.raises(GranuleError, match=rf"none of the 1 granules could be ingested, nothing was written: {bad.name}: "
                                           r"beam gt1r cannot be read consistently: delta_time has"):
        ingest_granules(config, bad, workers=1)
    assert not (tmp_path / "db").exists()


def test_time_range_and_spatial_range_of_the_configuration_are_honoured(tmp_path, sample_granules):
    config_file = tmp_path / "ranges.yaml"
    config_file.write_text(
        f"tiledb:\n  storage_type: local\n  local_path: {tmp_path / 'db'}\n"
        "  time_range:\n    start_time: 2020-06-01\n    end_time: 2021-06-30\n"
        "  spatial_range:\n    lat_min: 45.08\n    lat_max: 45.22\n    lon_min: -180\n    lon_max: 7.2\n"
    )
    config = load_config(config_file)
    report = ingest_granules(config, sample_granules, workers=1)
    truth = segments(sample_granules)
    day = truth["time"].astype("datetime64[D]")
    in_time = (day >= np.datetime64("2020-06-01")) & (day <= np.datetime64("2021-06-30"))
    in_space = (truth["lat"] >= 45.08) & (truth["lat"] <= 45.22) & (truth["lon"] <= 7.2)
    assert 0 < (in_time & in_space).sum() < len(day)
    assert_exactly(config, np.sort(truth["segment_id"][in_time & in_space]))
    counted = {reason: sum(d.counts.get(reason, 0) for d in report.dropped) for reason in (OUTSIDE_TIME_RANGE, OUTSIDE_SPATIAL_RANGE)}
    assert counted == {OUTSIDE_TIME_RANGE: int((~in_time).sum()), OUTSIDE_SPATIAL_RANGE: int((in_time & ~in_space).sum())}
    assert sorted(report.written) == sorted(p.name for p in sample_granules)  # granules outside the range too: with 0 segments
    again = ingest_granules(config, sample_granules, workers=1)
    assert again.written == [] and len(again.already_ingested) == len(sample_granules)


def test_a_capacity_tiledb_cannot_take_is_refused_naming_the_key_before_anything_is_created(tmp_path, sample_granules):
    config_file = tmp_path / "big.yaml"
    config_file.write_text(f"tiledb:\n  storage_type: local\n  local_path: {tmp_path / 'db'}\n  capacity: 18446744073709551616\n")
    with pytest.raises(ConfigurationError, match=r"tiledb\.capacity in .*big\.yaml is 18446744073709551616: it must be at most 100000000"):
        load_config(config_file)
    built_in_code = DatabaseConfig(storage_type="local", local_path=str(tmp_path / "db"), capacity=2**64, source="script")
    with pytest.raises(ConfigurationError, match=r"tiledb\.capacity in script"):
        ingest_granules(built_in_code, sample_granules[:1], workers=1)
    assert not (tmp_path / "db").exists()
    with pytest.raises(ConfigurationError, match=r"tiledb\.attribute_zstd_level .* from -7 to 22, not 40"):
        local_config(tmp_path / "db", attribute_zstd_level=40)


# --------------------------------------------------------------------------- databases of earlier versions


def test_a_database_poisoned_by_an_earlier_version_still_answers_and_names_the_fragment(tmp_path, sample_granules):
    config = local_config(tmp_path / "db")
    ingest_granules(config, sample_granules[:2], workers=1)
    write_poisoned_fragment(config, sample_granules[2])
    poisoned = [f.uri.rsplit("/", 1)[-1] for f in tiledb.FragmentInfoList(config.array_uri)
                if not np.isfinite(float(f.nonempty_domain[0][0]))]
    assert len(poisoned) == 1
    database = Atl08Database(config)
    wide = SegmentQuery.create(roi=(0.0, 40.0, 20.0, 50.0), variables=["h_canopy"])  # 400 square degrees: the memory check runs
    estimate = database.estimate(wide)
    assert estimate.damaged_fragments == tuple(poisoned) and estimate.rows >= len(truth_ids(sample_granules[:2]))
    assert database.damaged_fragments() == tuple(poisoned)
    frame = database.query(wide)
    np.testing.assert_array_equal(np.sort(frame["segment_id"].to_numpy()), truth_ids(sample_granules[:2]))
    assert sum(len(b) for b in database.iter_batches(wide, rows=500, progress=lambda fraction: None)) == len(frame)
    database.close()
    report = ingest_granules(config, sample_granules[3:], workers=1)
    assert any(poisoned[0] in note and "NaN coordinates" in note for note in report.notes)


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_a_ledger_of_the_previous_version_is_upgraded_and_nothing_is_written_twice(storage, tmp_path, sample_granules, request):
    if storage == "local":
        config = local_config(tmp_path / "db")
    else:
        config = s3_config(request.getfixturevalue("s3_server"), "atl08-legacy-ledger")
    ctx = tiledb.Ctx(tiledb.Config(config.tiledb_config()))
    write_legacy_database(config, sample_granules[:2], ctx)
    report = ingest_granules(config, sample_granules[:3], workers=1)
    assert sorted(report.already_ingested) == sorted(p.name for p in sample_granules[:2])
    assert report.written == [sample_granules[2].name]
    assert any("written by an earlier version" in note for note in report.notes)
    ledger = read_ledger(config.ledger_uri, ctx)
    assert sorted(ledger) == sorted(identify_granule(p).key for p in sample_granules[:3])
    assert sorted(e.file_name for e in ledger.values()) == sorted(p.name for p in sample_granules[:3])
    assert sum(e.segments for e in ledger.values()) == len(stored_ids(config))
    assert_exactly(config, truth_ids(sample_granules[:3]))
    again = ingest_granules(config, sample_granules[:3], workers=1)
    assert again.written == [] and again.notes == [] and len(again.already_ingested) == 3


def test_files_sharing_a_name_in_an_old_ledger_are_told_apart_by_their_data(tmp_path, sample_granules):
    config = local_config(tmp_path / "db")
    write_legacy_database(config, sample_granules[:1])
    name = sample_granules[0].name
    copy_as(sample_granules[0], tmp_path / "in" / "a" / name)
    other = copy_as(sample_granules[2], tmp_path / "in" / "b" / name)  # the one the old version dropped
    report = ingest_granules(config, tmp_path / "in", workers=1)
    assert report.already_ingested == [f"a/{name}"] and report.written == [f"b/{name}"]
    assert_exactly(config, truth_ids([sample_granules[0], other]))
    ledger = read_ledger(config.ledger_uri, tiledb.Ctx())
    assert all(is_identity_key(key) for key in ledger) and len(ledger) == 2


def test_granules_of_one_year_named_for_another_are_batched_by_their_data(tmp_path, sample_granules):
    renamed = copy_as(sample_granules[0], tmp_path / "in" / "ATL08_20231231235959_00000000_007_01.h5")
    config = local_config(tmp_path / "db")
    ingest_granules(config, [renamed, sample_granules[1]], workers=1)
    assert len(tiledb.FragmentInfoList(config.array_uri)) == 1  # both 2020: one annual batch
    first, last = Atl08Database(config).time_span()
    assert np.datetime64("2020-01-01") <= first <= last <= np.datetime64("2020-12-31")
