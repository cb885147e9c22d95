"""Granules as people download them: variable subsets (NSIDC/Harmony, icepyx, earthaccess orders with
a variable list), one-beam clips without ``ancillary_data``, and granules of release 006, which lacks
the quality scores release 007 added. They ingest with their values intact; what they lack is stored
as fill and named per granule; the ledger records each granule's release. Only a file without the
core (coordinates, ``delta_time``, segment ids, the orbit the segment ids are built from) is refused.

Expected values come from the files through h5py; the catalogue says where each variable lives."""

import datetime as dt
import shutil

import h5py
import numpy as np
import pytest
import tiledb

from canopy_explorer.plugin.core.errors import GranuleError
from canopy_explorer.plugin.core.lidar.atl08.catalogue import catalogue
from canopy_explorer.plugin.core.lidar.atl08.granule import read_granule
from canopy_explorer.plugin.core.lidar.atl08.granule_identity import identify_granule
from canopy_explorer.plugin.core.lidar.config import local_config
from canopy_explorer.plugin.core.lidar.database import Atl08Database
from canopy_explorer.plugin.core.lidar.ingest import ingest_granules, read_ledger
from canopy_explorer.plugin.core.lidar.ingest_ledger import LedgerEntry
from canopy_explorer.plugin.core.lidar.query import SegmentQuery
from canopy_explorer.plugin.core.samples.granules import generate_granules

BEAMS = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")
FILL = np.float32(3.4028235e38)
EPOCH = np.datetime64("2018-01-01T00:00:00", "ns")  # the ATLAS SDP epoch, 1198800018 GPS seconds
REGION = (45.0, 45.12, 7.0, 7.12)
# What an order with a variable list leaves out: scalars of each dtype, a profile, sub-segment
# variables, the quality score and orbit_info/sc_orient.
LEFT_OUT = ("can_quality_score", "canopy_h_metrics", "h_canopy_20m", "subset_can_flag", "n_te_photons",
            "segment_landcover", "night_flag", "ph_ndx_beg", "dem_h", "delta_time_beg", "te_quality_score", "sc_orient")


def drop(path, *items):
    """Delete groups or datasets (``ancillary_data``, ``orbit_info/rgt``, ``land_segments/<dataset>`` of every beam)."""
    with h5py.File(path, "r+") as h5:
        for item in items:
            if item.startswith("land_segments/"):
                for beam in BEAMS:
                    if f"{beam}/{item}" in h5:
                        del h5[f"{beam}/{item}"]
            elif item in h5:
                del h5[item]
    return path


def leave_out(path, names):
    """A variable subset: the catalogue variables ``names`` deleted from every beam (or orbit_info)."""
    return drop(path, *[catalogue()[name].hdf5_path for name in names])


def keep_beams(path, beams):
    with h5py.File(path, "r+") as h5:
        for beam in BEAMS:
            if beam not in beams and beam in h5:
                del h5[beam]
    return path


def expected_columns(path):
    """Every catalogue attribute of every segment, read with h5py, ordered by beam and segment_id_beg;
    a variable the file lacks is expected as fill."""
    parts = []
    with h5py.File(path, "r") as h5:
        for beam in [b for b in BEAMS if b in h5]:
            land = h5[f"{beam}/land_segments"]
            n = land["latitude"].shape[0]
            columns = {"key": BEAMS.index(beam) * 2**32 + land["segment_id_beg"][:].astype(np.int64)}
            for variable in catalogue().values():
                if variable.is_derived:
                    continue
                if variable.is_orbit_info:
                    data = np.full(n, h5[variable.hdf5_path][0]) if variable.hdf5_path in h5 else None
                else:
                    relative = variable.hdf5_path.split("/", 1)[1]
                    data = land[relative][:] if relative in land else None
                dtype = np.dtype(variable.dtype)
                if data is None:
                    data = np.full((n, variable.length) if variable.kind != "scalar" else n,
                                   np.nan if dtype.kind == "f" else np.iinfo(dtype).max)
                elif dtype.kind == "f":
                    data = np.where(data.astype(np.float64) >= FILL, np.nan, data)
                for index, name in enumerate(variable.attribute_names):
                    columns[name] = data if variable.kind == "scalar" else data[:, index]
            parts.append(columns)
    merged = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    order = np.argsort(merged["key"])
    return {name: values[order] for name, values in merged.items()}


def stored_columns(config, rgt):
    """The database's rows of one track, ordered by beam and segment_id_beg (``key`` as above)."""
    with tiledb.open(config.array_uri) as array:
        data = array[:]
    mine = (data["segment_id"] >> 43) == rgt
    key = data["segment_id"][mine] & (2**35 - 1)  # beam and segment_id_beg
    order = np.argsort(key)
    columns = {name: values[mine][order] for name, values in data.items()}
    columns["key"] = key[order]
    return columns


def fullest_beam(path):
    with h5py.File(path, "r") as h5:
        return max(BEAMS, key=lambda beam: h5[f"{beam}/land_segments/latitude"].shape[0])


def orbit(path):
    with h5py.File(path, "r") as h5:
        return int(h5["orbit_info/rgt"][0])


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    """A variable subset of a 007 granule (no ancillary_data), a whole 006 granule and a one-beam 006 clip
    with orbit_info but no ancillary_data, ingested into one database."""
    made = tmp_path_factory.mktemp("made")
    v7 = generate_granules(made / "v7", region=REGION, start=dt.date(2020, 3, 1), end=dt.date(2020, 9, 1), n_tracks=1, seed=21)
    v6 = generate_granules(made / "v6", region=REGION, start=dt.date(2020, 3, 1), end=dt.date(2021, 9, 1), n_tracks=2, seed=22,
                           release="006")
    folder = tmp_path_factory.mktemp("downloads")
    subset = leave_out(drop(shutil.copy(v7[0], folder / f"processed_{v7[0].name}"), "ancillary_data"), LEFT_OUT)
    whole_v6 = shutil.copy(v6[0], folder / v6[0].name)
    clip = drop(keep_beams(shutil.copy(v6[1], folder / "clip.h5"), [fullest_beam(v6[1])]), "ancillary_data")
    config = local_config(folder.parent / "db" / "atl08")
    report = ingest_granules(config, folder, workers=1)
    return {"config": config, "report": report, "subset": subset, "v6": whole_v6, "clip": clip}


def assert_stored_as_in_the_file(config, path):
    expected = expected_columns(path)
    stored = stored_columns(config, orbit(path))
    assert len(expected["key"]) > 0
    np.testing.assert_array_equal(stored["key"], expected["key"], err_msg="a segment is lost or added")
    for name, values in expected.items():
        np.testing.assert_array_equal(stored[name], values.astype(stored[name].dtype), err_msg=f"{path.name} {name}")


# --------------------------------------------------------------------------- subsets and older releases


def test_a_variable_subset_ingests_with_what_it_holds_intact_and_the_rest_as_fill(downloads):
    report, subset = downloads["report"], downloads["subset"]
    assert subset.name in report.written and not report.skipped
    assert_stored_as_in_the_file(downloads["config"], subset)
    line = next(str(m) for m in report.missing_variables if m.granule == subset.name)
    assert line.startswith(f"{subset.name} (release 007): 12 variables missing, stored as fill: ")
    assert sorted(line.split("stored as fill: ")[1].split(", ")) == sorted(LEFT_OUT)
    assert line in report.summary()


def test_a_release_006_granule_ingests_lacking_only_the_quality_scores(downloads):
    report, v6 = downloads["report"], downloads["v6"]
    assert v6.name in report.written
    assert_stored_as_in_the_file(downloads["config"], v6)
    line = next(str(m) for m in report.missing_variables if m.granule == v6.name)
    assert line == f"{v6.name} (release 006): 2 variables missing, stored as fill: can_quality_score, te_quality_score"
    with h5py.File(v6, "r") as h5:  # the 006 layout: everything else of the catalogue is there
        assert "gt1l/land_segments/canopy/can_quality_score" not in h5 and "gt1l/land_segments/canopy/h_canopy_20m" in h5


def test_a_one_beam_clip_without_ancillary_data_ingests_its_beam(downloads):
    clip = downloads["clip"]
    assert clip.name in downloads["report"].written
    assert_stored_as_in_the_file(downloads["config"], clip)
    with h5py.File(clip, "r") as h5:
        beams = [name for name in h5 if name.startswith("gt")]
    assert len(beams) == 1
    assert set(stored_columns(downloads["config"], orbit(clip))["key"] >> 32) == {BEAMS.index(beams[0])}


def test_the_ledger_records_the_release_each_file_states(downloads):
    ledger = read_ledger(downloads["config"].ledger_uri, tiledb.Ctx())
    releases = {entry.file_name: entry.product_version for entry in ledger.values()}
    # the subset lost ancillary_data: its name says 007; the clip has neither, but its METADATA is gone too
    assert releases == {downloads["subset"].name: "007", downloads["v6"].name: "006", "clip.h5": ""}


def test_the_release_is_read_from_ancillary_data_then_metadata_then_the_file_name(tmp_path, downloads):
    v6 = downloads["v6"]
    assert identify_granule(v6).version == "006"  # ancillary_data/release, whatever the name says
    renamed = shutil.copy(v6, tmp_path / v6.name.replace("_006_", "_007_"))
    assert identify_granule(renamed).version == "006"
    drop(renamed, "ancillary_data")
    assert identify_granule(renamed).version == "007"  # now only the name says
    with h5py.File(renamed, "r+") as h5:
        h5.create_group("METADATA/DatasetIdentification").attrs["VersionID"] = "006"
    assert identify_granule(renamed).version == "006"


def test_the_database_answers_queries_over_them(downloads):
    database = Atl08Database(downloads["config"])
    frame = database.query(SegmentQuery.create(variables=["h_canopy", "can_quality_score", "canopy_h_metrics:95"]))
    rgt = frame["segment_id"].to_numpy() >> 43
    for key in ("subset", "v6", "clip"):
        path = downloads[key]
        expected = expected_columns(path)
        mine = frame[rgt == orbit(path)]
        assert len(mine) == len(expected["key"]) > 0
        if key == "subset":  # the profile was left out
            assert mine["canopy_h_metrics_p95"].isna().all()
        else:
            assert mine["canopy_h_metrics_p95"].notna().any()
        assert (mine["can_quality_score"] == np.iinfo(np.int8).max).all()  # never in these files
        truth = np.sort(expected["h_canopy"][np.isfinite(expected["h_canopy"])])
        np.testing.assert_array_equal(np.sort(mine["h_canopy"].dropna().to_numpy()), truth)


# --------------------------------------------------------------------------- times


def test_times_without_the_ancillary_epoch_count_from_the_atlas_sdp_epoch(downloads):
    clip = downloads["clip"]
    columns = read_granule(clip)
    with h5py.File(clip, "r") as h5:
        assert "ancillary_data" not in h5
        beam = next(name for name in h5 if name.startswith("gt"))
        delta_time = h5[f"{beam}/land_segments/delta_time"][:]
    expected = EPOCH + np.round(delta_time * 1e9).astype("timedelta64[ns]")
    np.testing.assert_array_equal(columns["timestamp_ns"].view("datetime64[ns]"), expected)
    np.testing.assert_array_equal(columns["time"], expected.astype("datetime64[D]").astype(np.int64))


def test_a_files_own_epoch_is_the_one_its_times_count_from(tmp_path, downloads):
    v6 = downloads["v6"]
    shifted = shutil.copy(v6, tmp_path / v6.name)
    with h5py.File(shifted, "r+") as h5:
        h5["ancillary_data/atlas_sdp_gps_epoch"][0] = 1198800018.0 + 86400.0
    np.testing.assert_array_equal(read_granule(shifted)["timestamp_ns"] - read_granule(v6)["timestamp_ns"], 86400 * 10**9)


# --------------------------------------------------------------------------- refused


@pytest.mark.parametrize("removed, reason", [
    ("land_segments/latitude", "dataset gt1l/land_segments/latitude is missing"),
    ("land_segments/longitude", "dataset gt1l/land_segments/longitude is missing"),
    ("land_segments/delta_time", "dataset gt1l/land_segments/delta_time is missing"),
    ("land_segments/segment_id_beg", "dataset gt1l/land_segments/segment_id_beg is missing"),
    ("orbit_info/rgt", "orbit_info/rgt is missing, and the segment ids cannot be built without it"),
    ("orbit_info/cycle_number", "orbit_info/cycle_number is missing, and the segment ids cannot be built without it"),
])
def test_a_file_without_the_core_is_refused_with_what_it_lacks(tmp_path, downloads, removed, reason):
    broken = drop(shutil.copy(downloads["v6"], tmp_path / "core.h5"), removed)
    with pytest.raises(GranuleError, match=f"core.h5: {reason}"):
        ingest_granules(local_config(tmp_path / "db"), broken, workers=1)


# --------------------------------------------------------------------------- ledgers of earlier versions


def test_a_ledger_written_before_releases_were_recorded_is_upgraded_silently(tmp_path, downloads):
    from canopy_explorer.plugin.core.lidar.atl08.schema import create_array

    config = local_config(tmp_path / "db")
    (tmp_path / "db").mkdir()
    create_array(config.array_uri, config, tiledb.Ctx())
    schema = tiledb.ArraySchema(
        domain=tiledb.Domain(tiledb.Dim("granule", dtype="ascii")),
        attrs=[tiledb.Attr("batch_timestamp", dtype=np.int64), tiledb.Attr("segments", dtype=np.int64)]
        + [tiledb.Attr(name, dtype=str, var=True) for name in ("file_name", "product_id", "segment_ranges")],
        sparse=True,
    )
    tiledb.Array.create(config.ledger_uri, schema)
    old_key = "atl08-0001-001-10-20-" + "0" * 32
    with tiledb.open(config.ledger_uri, "w") as ledger:
        ledger.meta["created_ms"] = 1
        ledger[np.array([old_key], dtype=object)] = {
            "batch_timestamp": np.array([1], dtype=np.int64), "segments": np.array([0], dtype=np.int64),
            "file_name": np.array(["old.h5"], dtype=object), "product_id": np.array([""], dtype=object),
            "segment_ranges": np.array(["0:10-20"], dtype=object)}
    report = ingest_granules(config, downloads["v6"], workers=1)
    assert report.written == [downloads["v6"].name] and report.notes == []
    ledger = read_ledger(config.ledger_uri, tiledb.Ctx())
    assert ledger[old_key] == LedgerEntry(old_key, 1, 0, "old.h5", "", "0:10-20", "")
    assert ledger[identify_granule(downloads["v6"]).key].product_version == "006"
