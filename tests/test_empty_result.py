"""An empty result explains itself: how many segments the region holds, how many the time range
leaves, and which filter line removes the rest, counted cheaply (a bounded number of counts in
TileDB). The numbers are checked against the segments read with TileDB directly."""


import numpy as np
import pytest
import shapely
import tiledb

from canopy_explorer.plugin.core.lidar.database import Atl08Database
from canopy_explorer.plugin.core.lidar.empty_result import explain_empty
from canopy_explorer.plugin.core.grid.change import GridChangeRequest, grid_change
from canopy_explorer.plugin.core.lidar.query import NearestRequest, SegmentQuery

REGION = (7.05, 45.05, 7.25, 45.25)


@pytest.fixture(scope="module")
def stored(local_database):
    with tiledb.open(local_database.array_uri) as array:
        raw = array.query(attrs=["h_canopy", "night_flag", "segment_landcover"]).multi_index[:, :, :]
    return raw


def _in_region(raw, region=REGION):
    west, south, east, north = region
    return (raw["longitude"] >= west) & (raw["longitude"] <= east) & (raw["latitude"] >= south) & (raw["latitude"] <= north)


def _days(text):
    return (np.datetime64(text) - np.datetime64("1970-01-01")).astype(int)


def _explain(database, **query):
    spec = SegmentQuery.create(variables=["h_canopy"], **query)
    assert len(database.query(spec)) == 0
    return explain_empty(database, spec)


def test_a_region_without_data_says_so_and_where_the_data_is(local_database, stored):
    text = _explain(Atl08Database(local_database), roi=(20.0, 60.0, 20.1, 60.1))
    west, east = stored["longitude"].min(), stored["longitude"].max()
    assert text.startswith("the region holds no segments in this database (its segments lie within lon ")
    assert f"lon {west:.4f} to {east:.4f}" in text


def test_a_time_range_without_data_says_how_many_the_region_holds_and_which_days_the_database_has(local_database, stored):
    text = _explain(Atl08Database(local_database), roi=REGION, start="2023-01-01", end="2023-12-31")
    first = np.datetime64("1970-01-01") + int(stored["time"].min())
    held = int(_in_region(stored).sum())
    assert text == (f"the region holds {held:,} segments in this database, none of them from 2023-01-01 to 2023-12-31 "
                    f"(the database holds {first} to {np.datetime64('1970-01-01') + int(stored['time'].max())})")


def test_the_filter_line_that_removes_the_rest_is_named_with_the_counts_before_it(local_database, stored):
    text = _explain(Atl08Database(local_database), roi=REGION, start="2020-06-01", end="2021-05-31",
                    filters="h_canopy between 5 60\n# a comment\nnight_flag == 1\nsegment_landcover in [9999]")
    region = _in_region(stored)
    timed = region & (stored["time"] >= _days("2020-06-01")) & (stored["time"] <= _days("2021-05-31"))
    line1 = timed & (stored["h_canopy"] >= 5) & (stored["h_canopy"] <= 60)
    line3 = line1 & (stored["night_flag"] == 1)
    assert text == (f"the region holds {int(region.sum()):,} segments in this database; {int(timed.sum()):,} of them are "
                    f"from 2020-06-01 to 2021-05-31; line 1 'h_canopy between 5 60' keeps {int(line1.sum()):,}; "
                    f"line 3 'night_flag == 1' keeps {int(line3.sum()):,}; line 4 'segment_landcover in [9999]' removes the "
                    f"remaining {int(line3.sum()):,}")
    assert 0 < line3.sum() < line1.sum() < timed.sum() < region.sum()


def test_a_polygon_region_counts_the_segments_inside_it_not_its_box(local_database, stored):
    triangle = shapely.Polygon([(7.05, 45.05), (7.25, 45.05), (7.05, 45.25)])
    text = _explain(Atl08Database(local_database), roi=triangle, filters="h_canopy > 1000")
    inside = shapely.intersects_xy(triangle, stored["longitude"], stored["latitude"])
    assert text == f"the region holds {int(inside.sum()):,} segments in this database; line 1 'h_canopy > 1000' removes the " \
                   f"remaining {int(inside.sum()):,}"


def test_many_filter_lines_cost_a_bounded_number_of_counts(local_database, stored, monkeypatch):
    database = Atl08Database(local_database)
    lines = [f"h_canopy > {-i}" for i in range(1, 20)] + ["h_canopy > 1000"] + [f"h_canopy < {1000 + i}" for i in range(30)]
    spec = SegmentQuery.create(roi=REGION, variables=["h_canopy"], filters="\n".join(lines))
    counts = []
    original = database.count_segments
    monkeypatch.setattr(database, "count_segments", lambda *a, **k: counts.append(1) or original(*a, **k))
    text = explain_empty(database, spec)
    kept = int((_in_region(stored) & (stored["h_canopy"] > -1)).sum())
    assert text.endswith(f"lines 1 to 19 of the filters keep {kept:,}; line 20 'h_canopy > 1000' removes the remaining {kept:,}")
    assert len(counts) <= 1 + 1 + 7  # the region, all 50 lines, then bisection over 50 lines


def test_a_nearest_search_says_what_its_circle_holds(local_database):
    database = Atl08Database(local_database)
    request = NearestRequest.create((7.15, 45.15), radius_m=2_000, filters="h_canopy > 1000")
    assert len(database.nearest(request)) == 0
    text = explain_empty(database, request.spec, request.within, region="the circle of 2000 m round the point")
    assert text.startswith("the circle of 2000 m round the point holds ") and "line 1 'h_canopy > 1000' removes the remaining" in text
    empty_circle = NearestRequest.create((7.15, 45.15), radius_m=5)
    assert explain_empty(database, empty_circle.spec, empty_circle.within, region="the circle").startswith("the circle holds no segments")


def test_a_grid_change_period_without_segments_says_why(local_database):
    periods = (("2020-01-01", "2020-12-31"), ("2024-01-01", "2024-12-31"))
    result = grid_change(GridChangeRequest.create(Atl08Database(local_database), roi=REGION, periods=periods, cell_size_km=20,
                                                  min_shots=1))
    assert len(result) == 0 and result.segments[1] == 0
    assert result.empty_reasons[0] == ""
    assert "none of them from 2024-01-01 to 2024-12-31 (the database holds" in result.empty_reasons[1]
