"""Elevation profiles along an ATL08 track: terrain, canopy top and the canopy percentile band.

The engine chooses a track (rgt, cycle and beam from segment_id), orders its segments along track and
measures the geodesic distance from the first one; the plugin plots it (QGIS 3.22 has no Elevation
Profile tool), and on QGIS 3.26+ the layer's elevation properties let QGIS's own tool show it.
"""

import math

import numpy as np
import pandas as pd
import pytest

from canopy_explorer.plugin.core.errors import QueryError
from canopy_explorer.plugin.core.lidar.atl08.profiles import Track, along_track_profile, segment_id_range, track_of, tracks_of
from canopy_explorer.plugin.core.lidar.atl08.schema import BEAM_NUMBERS, encode_segment_id

WGS84_A = 6378137.0
METRES_PER_DEGREE_ON_EQUATOR = WGS84_A * math.pi / 180  # the geodesic along the equator is the equator's arc


def segment_ids(rgt, cycle, beam, numbers):
    return encode_segment_id(np.full(len(numbers), rgt), np.full(len(numbers), cycle), np.full(len(numbers), BEAM_NUMBERS[beam]),
                             np.asarray(numbers))


def equator_track(**extra):
    """Track 1234 gt2l cycle 5: four segments on the equator, given out of order, 0.001 degrees apart, and
    two segments of other tracks (another beam, another cycle) in between."""
    ids = np.concatenate([segment_ids(1234, 5, "gt2l", [102, 100, 103, 101]), segment_ids(1234, 5, "gt2r", [100]),
                          segment_ids(1234, 6, "gt2l", [100])])
    columns = {
        "segment_id": ids,
        "longitude": np.array([0.002, 0.0, 0.003, 0.001, 0.0, 0.0]),
        "latitude": np.zeros(6),
        "h_te_best_fit": np.array([102.0, 100.0, 103.0, 101.0, 500.0, 600.0]),
        "h_canopy": np.array([np.nan, 20.0, 23.0, 21.0, 50.0, 60.0]),
    }
    columns.update(extra)
    return columns


# ---------------------------------------------------------------------------------------------- the engine

def test_a_track_is_one_range_of_segment_ids():
    first, end = segment_id_range(Track(1234, 5, "gt2l"))
    ids = equator_track()["segment_id"]
    assert list((ids >= first) & (ids < end)) == [True] * 4 + [False, False]
    assert end - first == 2 ** 32


def test_tracks_are_decoded_from_segment_ids_most_segments_first():
    found = tracks_of(equator_track())
    assert [(t.rgt, t.cycle, t.beam, t.segments) for t in found] == [(1234, 5, "gt2l", 4), (1234, 5, "gt2r", 1), (1234, 6, "gt2l", 1)]
    assert found[0].label == "Track 1234, beam gt2l, cycle 5, 4 segments"
    assert track_of(segment_ids(77, 3, "gt3r", [9])[0]) == Track(77, 3, "gt3r")


def test_a_profile_orders_the_track_along_track_with_geodesic_distance_from_the_first_segment():
    profile = along_track_profile(equator_track(), Track(1234, 5, "gt2l"))
    assert len(profile) == 4 and profile.track.segments == 4
    assert list(profile.segment_id & 0xFFFFFFFF) == [100, 101, 102, 103]
    expected_km = np.array([0, 1, 2, 3]) * 0.001 * METRES_PER_DEGREE_ON_EQUATOR / 1000  # 0.1113195 km per step
    np.testing.assert_allclose(profile.distance_km, expected_km, atol=1e-9)
    np.testing.assert_array_equal(profile.terrain, [100.0, 101.0, 102.0, 103.0])
    # canopy top is terrain + h_canopy; no canopy retrieval stays missing, never the terrain
    np.testing.assert_array_equal(profile.canopy_top, [120.0, 122.0, np.nan, 126.0])
    assert profile.band is None


def test_the_band_spans_the_lowest_and_highest_queried_canopy_percentiles():
    columns = equator_track(canopy_h_metrics_p25=np.array([8.0, 5.0, 9.0, 6.0, 0, 0]),
                            canopy_h_metrics_p50=np.array([10.0, 7.0, 11.0, 8.0, 0, 0]),
                            canopy_h_metrics_p95=np.array([18.0, 15.0, 19.0, 16.0, 0, 0]))
    band = along_track_profile(columns, Track(1234, 5, "gt2l")).band
    assert (band.low_percentile, band.high_percentile, band.label) == (25, 95, "Canopy p25–p95")
    np.testing.assert_array_equal(band.low, [105.0, 107.0, 110.0, 112.0])
    np.testing.assert_array_equal(band.high, [115.0, 117.0, 120.0, 122.0])


def test_one_queried_percentile_makes_a_band_up_to_h_canopy_the_98th():
    columns = equator_track(canopy_h_metrics_p50=np.array([10.0, 7.0, 11.0, 8.0, 0, 0]))
    band = along_track_profile(columns, Track(1234, 5, "gt2l")).band
    assert (band.low_percentile, band.high_percentile) == (50, 98)
    np.testing.assert_array_equal(band.low, [107.0, 109.0, 112.0, 114.0])
    np.testing.assert_array_equal(band.high, [120.0, 122.0, np.nan, 126.0])


def test_terrain_alone_gives_a_terrain_profile_and_nulls_from_a_layer_are_missing_heights():
    columns = equator_track()
    del columns["h_canopy"]
    columns["h_te_best_fit"] = np.array([102.0, None, 103.0, 101.0, 500.0, 600.0], dtype=object)
    profile = along_track_profile(columns, Track(1234, 5, "gt2l"))
    assert profile.canopy_top is None and profile.band is None
    np.testing.assert_array_equal(profile.terrain, [np.nan, 101.0, 102.0, 103.0])


def test_lines_break_where_segments_are_missing():
    columns = equator_track()
    columns["longitude"] = np.array([0.002, 0.0, 0.010, 0.001, 0.0, 0.0])  # segment 103 lies 0.9 km beyond 102
    assert list(along_track_profile(columns, Track(1234, 5, "gt2l")).gaps()) == [3]


def test_a_profile_without_terrain_or_of_an_absent_track_is_refused_by_name():
    columns = equator_track()
    del columns["h_te_best_fit"]
    with pytest.raises(QueryError, match="h_te_best_fit"):
        along_track_profile(columns, Track(1234, 5, "gt2l"))
    with pytest.raises(QueryError, match="track 99, beam gt1l, cycle 5"):
        along_track_profile(equator_track(), Track(99, 5, "gt1l"))
