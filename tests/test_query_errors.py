"""Bad input to queries gets a specific error, never a hang or a silent wrong answer."""

import socket
import time

import pytest
import shapely
import tiledb

from canopy_explorer.plugin.core.lidar.config import DatabaseConfig, local_config
from canopy_explorer.plugin.core.lidar.database import Atl08Database
from canopy_explorer.plugin.core.errors import QueryError, StorageError, UnknownVariableError
from canopy_explorer.plugin.core.lidar.query import SegmentQuery
from conftest import s3_config


def test_unknown_variable_suggests_a_close_name():
    with pytest.raises(UnknownVariableError, match="unknown variable 'h_canopi': did you mean 'h_canopy'"):
        SegmentQuery.create(variables=["h_canopi"])


def test_unknown_label_lists_the_valid_ones():
    with pytest.raises(UnknownVariableError, match="valid percentile labels are: 10, 15, 20.*95"):
        SegmentQuery.create(variables=["canopy_h_metrics:97"])
    with pytest.raises(UnknownVariableError, match="valid along_track_offset_m labels are: 10, 30, 50, 70, 90"):
        SegmentQuery.create(variables=["h_canopy_20m:40"])
    with pytest.raises(UnknownVariableError, match="scalar variable and has no labels"):
        SegmentQuery.create(variables=["h_canopy:50"])


def test_end_before_start_is_refused():
    with pytest.raises(QueryError, match="before start time"):
        SegmentQuery.create(start="2022-01-01", end="2021-01-01")
    with pytest.raises(QueryError, match="is not an ISO date"):
        SegmentQuery.create(start="2021-02-30")


@pytest.mark.parametrize(
    "roi, message",
    [
        ((10, 5, 11, 5), "empty region of interest"),
        ((10, 95, 11, 96), "outside -90..90"),
        (shapely.Polygon(), "is empty"),
        (shapely.Polygon([(0, 0), (2, 0), (1, 0), (0, 0)]), "has no area: it is an invalid polygon .* collapses to lines"),
        (shapely.GeometryCollection([shapely.LineString([(0, 0), (1, 1)])]), "has no area: it is a GeometryCollection without polygons"),
        (shapely.LineString([(0, 0), (1, 1)]), "must be a polygon or multipolygon"),
        ("POLYGON ((0 0, 1", "not valid WKT"),
    ],
)
def test_bad_regions_of_interest(roi, message):
    with pytest.raises(QueryError, match=message):
        SegmentQuery.create(roi=roi)


def test_a_bow_tie_region_is_repaired_into_its_two_lobes(local_database):
    """The crossing ring is read as the two triangles a repair makes of it, as the dialog draws it."""
    west, south, east, north = 7.05, 45.05, 7.25, 45.25
    bow_tie = shapely.Polygon([(west, south), (east, north), (east, south), (west, north)])
    lobes = shapely.make_valid(bow_tie)
    database = Atl08Database(local_database)
    repaired = database.query(SegmentQuery.create(roi=bow_tie, variables=["h_canopy"]))
    expected = database.query(SegmentQuery.create(roi=lobes, variables=["h_canopy"]))
    assert len(repaired) > 0
    assert sorted(repaired["segment_id"]) == sorted(expected["segment_id"])
    inside = shapely.contains_xy(lobes, repaired["longitude"].to_numpy(), repaired["latitude"].to_numpy())
    assert inside.all()


def test_region_outside_the_data_returns_no_rows(local_database):
    frame = Atl08Database(local_database).query(SegmentQuery.create(roi=(-60, -10, -59, -9), variables=["h_canopy"]))
    assert len(frame) == 0 and "h_canopy" in frame.columns


def test_unknown_crs_is_named():
    with pytest.raises(QueryError, match="unknown coordinate reference system 'EPSG:999999'"):
        SegmentQuery.create(roi=shapely.box(0, 0, 1, 1), roi_crs="EPSG:999999")


def test_folder_without_a_database(tmp_path):
    with pytest.raises(StorageError, match="no ATL08 database at"):
        Atl08Database(local_config(tmp_path / "empty"))


def test_array_that_is_not_an_atl08_database(tmp_path):
    import numpy as np

    uri = str(tmp_path / "other" / "array_uri")
    (tmp_path / "other").mkdir()
    schema = tiledb.ArraySchema(domain=tiledb.Domain(tiledb.Dim("x", domain=(0, 9), dtype=np.int64)), attrs=[tiledb.Attr("v", dtype=np.float64)], sparse=True)
    tiledb.Array.create(uri, schema)
    with pytest.raises(StorageError, match="is not an ATL08 database"):
        Atl08Database(local_config(tmp_path / "other"))


def test_missing_bucket_is_a_clear_error(s3_server):
    config = s3_config(s3_server, "no-such-bucket", create=False)
    with pytest.raises(StorageError, match="no-such-bucket"):
        Atl08Database(config)


def test_unreachable_s3_endpoint_times_out_with_a_message():
    with socket.socket() as listener:  # accepts connections but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        config = DatabaseConfig(storage_type="s3", s3_bucket="b", url=endpoint, s3_settings={"connect_timeout_ms": "500", "request_timeout_ms": "1000", "connect_max_tries": "1"})
        started = time.monotonic()
        with pytest.raises(StorageError, match="127.0.0.1"):
            Atl08Database(config, probe_timeout_s=3)
        assert time.monotonic() - started < 10



def test_a_query_larger_than_the_memory_that_can_be_spared_is_refused_before_reading(local_database):
    from canopy_explorer.plugin.core.lidar.database import Atl08Database, available_memory_bytes

    database = Atl08Database(local_database)
    spec = SegmentQuery.create(variables=["h_canopy"])
    estimate = database.estimate(spec)
    with pytest.raises(QueryError, match=r"could need about .* GB of memory.*iter_batches"):
        database.query(spec, max_bytes=estimate.bytes // 10)
    assert len(database.query(spec, max_bytes=estimate.bytes * 10)) > 0
    assert available_memory_bytes() > 0
    # the batch iterator is the way through: it never holds more than a batch
    assert sum(len(b) for b in database.iter_batches(spec, rows=1_000)) == len(database.query(spec))


def test_on_s3_a_query_larger_than_the_memory_that_can_be_spared_is_refused_on_tiledbs_estimate(s3_database):
    from canopy_explorer.plugin.core.lidar.database import Atl08Database

    database = Atl08Database(s3_database)  # no extents loaded: on S3 they cost two requests per fragment
    spec = SegmentQuery.create(variables=["h_canopy"])
    whole = database.query(spec)
    with pytest.raises(QueryError, match=r"could need about .* GB of memory, more than the .* GB that can be spared.*iter_batches"):
        Atl08Database(s3_database).query(spec, max_bytes=1000)
    assert len(Atl08Database(s3_database).query(spec, max_bytes=10**9)) == len(whole) > 0


def test_on_s3_a_read_that_outgrows_tiledbs_estimate_stops_as_soon_as_it_passes_the_limit(s3_database, monkeypatch):
    from canopy_explorer.plugin.core.lidar import database as database_module

    monkeypatch.setattr(database_module, "_checked_estimate", lambda batches, limit: limit)  # an estimate that fell short
    spec = SegmentQuery.create(variables=["h_canopy"])
    with pytest.raises(QueryError, match=r"needs more than the .* GB of memory that can be spared.*iter_batches"):
        database_module.Atl08Database(s3_database).query(spec, max_bytes=1000)


@pytest.mark.parametrize("start, end, message", [
    (None, "3000-01-01", r"^end time \(END\) 3000-01-01 is outside the times Canopy Explorer can represent \(1677-09-22 to 2262-04-10"),
    ("2300-01-01", None, r"^start time \(START\) 2300-01-01 is outside"),
    (None, "0001-01-01", r"^end time \(END\) 0001-01-01 is outside"),
    ("1500-01-01T00:00:00Z", None, r"^start time \(START\) 1500-01-01T00:00:00Z is outside"),
    ("2262-04-12", "2262-04-13", r"^start time \(START\) 2262-04-12 is outside"),
], ids=["END 3000", "START 2300, no END", "END year 1", "START 1500 with a time", "just past 2262-04-11"])
def test_times_beyond_what_nanoseconds_can_hold_name_the_parameter(start, end, message):
    """Before: OverflowError (int too big to convert), or 'end time None is before start time 2300-01-01'."""
    with pytest.raises(QueryError, match=message) as error:
        SegmentQuery.create(start=start, end=end, time_labels=("START", "END"))
    assert "None" not in str(error.value)


@pytest.mark.parametrize("value", ["numpy", "date", "datetime"])
def test_time_objects_beyond_the_range_are_refused_not_wrapped_round(value):
    """numpy's datetime64[D] of 3000 wraps round silently when cast to nanoseconds."""
    import datetime as dt

    import numpy as np

    late = {"numpy": np.datetime64("3000-01-01"), "date": dt.date(3000, 1, 1),
            "datetime": dt.datetime(3000, 1, 1, tzinfo=dt.timezone.utc)}[value]
    with pytest.raises(QueryError, match="end time .* is outside the times"):
        SegmentQuery.create(end=late)
    assert SegmentQuery.create(end=np.datetime64("2262-04-10")).end_ns > 0  # the last whole day still fits


def test_the_first_and_last_representable_days_are_accepted():
    spec = SegmentQuery.create(start="1677-09-22", end="2262-04-10")
    assert spec.start_ns < 0 < spec.end_ns


def test_an_end_before_the_start_names_both_parameters():
    with pytest.raises(QueryError, match=r"^end time \(PERIOD2_END\) 2020-01-01 is before start time \(PERIOD2_START\) 2021-01-01$"):
        SegmentQuery.create(start="2021-01-01", end="2020-01-01", time_labels=("PERIOD2_START", "PERIOD2_END"))
