"""Query results equal values computed independently from the granules, locally and on S3."""

import numpy as np
import pandas as pd
import pytest
import shapely

from canopy_explorer.plugin.core.lidar.database import Atl08Database
from canopy_explorer.plugin.core.lidar.query import NearestRequest, SegmentQuery
from granule_truth import segments

FOREST = [111, 112, 113, 114, 115, 116, 121, 122, 123, 124, 125, 126]


@pytest.fixture(scope="module")
def truth(sample_granules):
    return segments(
        sample_granules,
        datasets=(
            "canopy/h_canopy",
            "canopy/canopy_h_metrics",
            "canopy/h_canopy_20m",
            "terrain/h_te_best_fit",
            "segment_landcover",
            "night_flag",
            "solar_elevation",
            "canopy/n_ca_photons",
            "terrain/n_te_photons",
        ),
    )


def by_segment(frame, column):
    return dict(zip(frame["segment_id"], frame[column]))


def test_bounding_box_returns_exactly_the_segments_inside(database_config, truth):
    db = Atl08Database(database_config)
    box = (7.05, 45.05, 7.2, 45.2)
    frame = db.query(SegmentQuery.create(roi=box, variables=["h_canopy", "h_te_best_fit"]))
    inside = (truth["lon"] >= 7.05) & (truth["lon"] <= 7.2) & (truth["lat"] >= 45.05) & (truth["lat"] <= 45.2)
    assert sorted(frame["segment_id"]) == sorted(truth["segment_id"][inside])
    expected = dict(zip(truth["segment_id"][inside], truth["canopy/h_canopy"][inside]))
    got = by_segment(frame, "h_canopy")
    for key, value in expected.items():
        assert (np.isnan(value) and np.isnan(got[key])) or got[key] == pytest.approx(value)
    assert list(frame.columns[:5]) == ["latitude", "longitude", "time", "segment_id", "beam_id"]


def test_fill_values_become_missing_not_heights(database_config, truth):
    frame = Atl08Database(database_config).query(SegmentQuery.create(variables=["h_canopy", "canopy_h_metrics", "h_canopy_20m"]))
    assert frame["h_canopy"].max() < 100
    assert frame["h_canopy"].isna().sum() == np.isnan(truth["canopy/h_canopy"]).sum() > 0
    profile = frame[[c for c in frame.columns if c.startswith("canopy_h_metrics_p")]]
    assert profile.shape[1] == 18 and np.nanmax(profile.to_numpy()) < 100
    assert (profile.isna().all(axis=1) == frame["h_canopy"].isna()).all()


def test_polygon_membership_is_exact(database_config, truth):
    # A concave, many-vertex polygon: the reference package would convex-hull it.
    angles = np.linspace(0, 2 * np.pi, 6000, endpoint=False)
    radius = 0.1 + 0.04 * np.sin(7 * angles)
    ring = np.column_stack([7.15 + radius * np.cos(angles), 45.15 + 0.7 * radius * np.sin(angles)])
    polygon = shapely.Polygon(ring)
    frame = Atl08Database(database_config).query(SegmentQuery.create(roi=polygon))
    inside = shapely.intersects_xy(polygon, truth["lon"], truth["lat"])
    assert inside.sum() > 100
    assert sorted(frame["segment_id"]) == sorted(truth["segment_id"][inside])


def test_polygon_in_a_projected_crs_is_reprojected(database_config, truth):
    from pyproj import Transformer

    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32632", always_xy=True)
    x0, y0 = to_utm.transform(7.05, 45.05)
    x1, y1 = to_utm.transform(7.25, 45.25)
    polygon_utm = shapely.box(x0, y0, x1, y1)
    frame = Atl08Database(database_config).query(SegmentQuery.create(roi=polygon_utm, roi_crs="EPSG:32632"))
    tx, ty = to_utm.transform(truth["lon"], truth["lat"])
    inside = (tx >= x0) & (tx <= x1) & (ty >= y0) & (ty <= y1)
    got = set(frame["segment_id"])
    expected = set(truth["segment_id"][inside])
    # Edges are densified before reprojection; only points within centimetres of an edge may differ.
    assert len(got ^ expected) <= 2 and len(expected) > 100


def test_time_bounds_whole_days_and_sub_day(database_config, truth):
    db = Atl08Database(database_config)
    times = np.sort(np.unique(truth["time"].astype("datetime64[D]")))
    first_day = str(times[0])
    frame = db.query(SegmentQuery.create(start=first_day, end=first_day))
    on_day = truth["time"].astype("datetime64[D]") == times[0]
    assert len(frame) == on_day.sum() > 0
    # Sub-day: the first half of that pass by timestamp.
    day_times = np.sort(truth["time"][on_day])
    middle = day_times[len(day_times) // 2]
    frame = db.query(SegmentQuery.create(start=first_day, end=middle))
    assert len(frame) == (truth["time"][on_day] <= middle).sum() < on_day.sum()
    assert frame["time"].max() <= pd.Timestamp(middle).tz_localize("UTC")
    # ISO text with microseconds works the same way.
    cut = middle.astype("datetime64[us]")
    frame = db.query(SegmentQuery.create(start=first_day, end=str(cut) + "Z"))
    assert len(frame) == (truth["time"][on_day] <= cut).sum()


def test_labels_give_reference_column_names_and_values(database_config, truth):
    frame = Atl08Database(database_config).query(SegmentQuery.create(variables=["canopy_h_metrics:50", "h_canopy_20m:50"]))
    assert {"canopy_h_metrics_p50", "h_canopy_20m_50m"} <= set(frame.columns)
    assert not [c for c in frame.columns if c.startswith("canopy_h_metrics_p") and c != "canopy_h_metrics_p50"]
    expected_p50 = dict(zip(truth["segment_id"], truth["canopy/canopy_h_metrics"][:, 8]))
    expected_20m = dict(zip(truth["segment_id"], truth["canopy/h_canopy_20m"][:, 2]))
    for sid, p50, sub in frame[["segment_id", "canopy_h_metrics_p50", "h_canopy_20m_50m"]].itertuples(index=False):
        assert np.isclose(p50, expected_p50[sid], equal_nan=True)
        assert np.isclose(sub, expected_20m[sid], equal_nan=True)


def test_filters_match_numpy_on_the_granules(database_config, truth):
    text = "\n".join(
        [
            f"segment_landcover in {FOREST}",
            "h_canopy >= 5 and <= 60",
            "n_ca_photons between 2 140",
            "(night_flag == 1 or solar_elevation < 20) and n_te_photons >= 10",
        ]
    )
    frame = Atl08Database(database_config).query(SegmentQuery.create(variables=["h_canopy"], filters=text))
    h = truth["canopy/h_canopy"]
    with np.errstate(invalid="ignore"):
        mask = (
            np.isin(truth["segment_landcover"], FOREST)
            & (h >= 5) & (h <= 60)
            & (truth["canopy/n_ca_photons"] >= 2) & (truth["canopy/n_ca_photons"] <= 140)
            & ((truth["night_flag"] == 1) | (truth["solar_elevation"] < 20))
            & (truth["terrain/n_te_photons"] >= 10)
        )
    assert mask.sum() > 50
    assert sorted(frame["segment_id"]) == sorted(truth["segment_id"][mask])


def test_filter_on_an_attribute_that_is_not_returned(database_config, truth):
    frame = Atl08Database(database_config).query(SegmentQuery.create(variables=["h_te_best_fit"], filters="segment_landcover == 80"))
    assert "segment_landcover" not in frame.columns
    assert sorted(frame["segment_id"]) == sorted(truth["segment_id"][truth["segment_landcover"] == 80])


def test_keyword_filters_like_the_reference(database_config, truth):
    spec = SegmentQuery.create(variables=["h_canopy"], h_canopy=">= 5 and <= 60", segment_landcover=f"in {FOREST}")
    frame = Atl08Database(database_config).query(spec)
    h = truth["canopy/h_canopy"]
    with np.errstate(invalid="ignore"):
        mask = (h >= 5) & (h <= 60) & np.isin(truth["segment_landcover"], FOREST)
    assert len(frame) == mask.sum()


def test_batches_cover_the_same_rows_as_one_query(database_config):
    db = Atl08Database(database_config)
    spec = SegmentQuery.create(variables=["h_canopy"])
    whole = db.query(spec)
    batches = list(db.iter_batches(spec, rows=2000))
    assert len(batches) > 2
    assert sorted(pd.concat(batches)["segment_id"]) == sorted(whole["segment_id"])


def test_estimate_is_fast_and_bounds_the_count(database_config):
    db = Atl08Database(database_config)
    spec = SegmentQuery.create(roi=(7.0, 45.0, 7.15, 45.15), variables=["h_canopy"])
    count = len(db.query(spec))
    estimate = db.estimate(spec)
    assert 0.3 * count <= estimate.rows <= 3 * count
    assert estimate.bytes > estimate.rows * 8


def test_nearest_uses_geodesic_metres_and_sorts(database_config, truth):
    from pyproj import Geod

    point = (7.15, 45.15)
    frame = Atl08Database(database_config).nearest(NearestRequest.create(point, num_shots=25, radius_m=1500, variables=["h_canopy"]))
    _, _, distance = Geod(ellps="WGS84").inv(np.full(len(truth["lon"]), point[0]), np.full(len(truth["lat"]), point[1]), truth["lon"], truth["lat"])
    order = np.argsort(distance, kind="stable")
    within = order[distance[order] <= 1500][:25]
    assert len(frame) == len(within) > 0
    assert list(frame["distance_m"]) == sorted(frame["distance_m"])
    np.testing.assert_allclose(frame["distance_m"], distance[within], rtol=1e-6)
    assert frame["distance_m"].max() <= 1500


# The whole world is checked against memory first (that estimate lists the commits); the small
# box is read while the listing runs beside it. Both must see fragments written after opening.
@pytest.mark.parametrize("roi", [None, (6.9, 44.9, 7.4, 45.4)], ids=["checked-for-memory", "small-box"])
@pytest.mark.parametrize("storage", ["local", "s3"])
def test_new_fragments_are_seen_by_an_open_database(storage, roi, tmp_path, sample_granules, request):
    from canopy_explorer.plugin.core.lidar.config import local_config
    from canopy_explorer.plugin.core.lidar.ingest import ingest_granules
    from conftest import s3_config

    if storage == "s3":
        config = s3_config(request.getfixturevalue("s3_server"), f"atl08-fresh-{'world' if roi is None else 'box'}")
    else:
        config = local_config(tmp_path / "db")
    ingest_granules(config, sample_granules[:1], workers=1)
    db = Atl08Database(config)
    spec = SegmentQuery.create(roi=roi, variables=["h_canopy"])
    before = len(db.query(spec))
    assert len(db.query(spec)) == before  # nothing new: the open handle answers
    ingest_granules(config, sample_granules[1:2], workers=1)
    after = len(db.query(spec))
    truth = segments(sample_granules[:2])
    assert before < after == len(truth["lat"])


# On S3 a query within the freshness answers from the view it has (listing the commits is a round
# trip); fragments another process writes are seen by the first query after the freshness.
def test_fragments_written_by_another_process_are_seen_after_the_freshness(s3_server, sample_granules):
    import subprocess
    import sys
    import time
    from pathlib import Path

    from conftest import s3_config

    config = s3_config(s3_server, "atl08-fresh-other-process")
    ingest_granules_elsewhere = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from conftest import s3_config;"
        "from canopy_explorer.plugin.core.lidar.ingest import ingest_granules;"
        "ingest_granules(s3_config(sys.argv[2], sys.argv[3], create=False), sys.argv[4:], workers=1)"
    )
    tests = str(Path(__file__).parent)
    subprocess.run([sys.executable, "-c", ingest_granules_elsewhere, tests, s3_server, config.s3_bucket, str(sample_granules[0])], check=True)
    db = Atl08Database(config, freshness_s=2.0)
    spec = SegmentQuery.create(variables=["h_canopy"])
    before = len(db.query(spec))
    subprocess.run([sys.executable, "-c", ingest_granules_elsewhere, tests, s3_server, config.s3_bucket, str(sample_granules[1])], check=True)
    time.sleep(2.0)
    after = len(db.query(spec))
    assert before < after == len(segments(sample_granules[:2])["lat"])


def test_times_are_days_unless_exact_times_are_asked_for(database_config, truth):
    db = Atl08Database(database_config)
    expected = dict(zip(truth["segment_id"], truth["time"]))
    days = db.query(SegmentQuery.create(variables=["h_canopy"]))
    instants = db.query(SegmentQuery.create(variables=["h_canopy"], exact_times=True))
    assert len(days) == len(instants) == len(truth["segment_id"])
    assert str(days["time"].dt.tz) == str(instants["time"].dt.tz) == "UTC"
    for sid, day, instant in zip(days["segment_id"], days["time"], instants.set_index("segment_id").loc[days["segment_id"], "time"]):
        true_instant = pd.Timestamp(expected[sid]).tz_localize("UTC")
        assert day == true_instant.floor("D")
        assert abs(instant - true_instant) < pd.Timedelta(microseconds=1)
    assert (instants["time"] != instants["time"].dt.floor("D")).any()
    # sub-day bounds make the times exact by themselves
    first = pd.Timestamp(np.sort(truth["time"])[0])
    bounded = db.query(SegmentQuery.create(start=str(first.date()), end=(first + pd.Timedelta(hours=23)).isoformat()))
    assert (bounded["time"] != bounded["time"].dt.floor("D")).any()


def test_the_estimate_follows_new_fragments(tmp_path, sample_granules):
    from canopy_explorer.plugin.core.lidar.config import local_config
    from canopy_explorer.plugin.core.lidar.ingest import ingest_granules

    config = local_config(tmp_path / "db")
    ingest_granules(config, sample_granules[:1], workers=1)
    db = Atl08Database(config)
    spec = SegmentQuery.create(variables=["h_canopy"])
    before = db.estimate(spec).rows
    assert db.estimate(spec).rows == before  # kept while nothing landed
    ingest_granules(config, sample_granules[1:2], workers=1)
    assert db.estimate(spec).rows > before
