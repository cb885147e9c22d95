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


# ---------------------------------------------------------------------------------------------- in QGIS

def segments_layer(tmp_path, columns=None):
    """The equator track (and its neighbours) written as a query output and opened as the plugin opens it."""
    from canopy_explorer.plugin.layers.segment_layer import load_query_layer, write_styled_segments

    columns = columns or equator_track(canopy_h_metrics_p25=np.array([8.0, 5.0, 9.0, 6.0, 1, 1]),
                                       canopy_h_metrics_p95=np.array([18.0, 15.0, 19.0, 16.0, 2, 2]))
    count = len(columns["segment_id"])
    frame = pd.DataFrame({"time": pd.DatetimeIndex(["2021-05-01T10:00:00"] * count).tz_localize("UTC"),
                          "beam_id": ["gt2l"] * count, **columns})
    output = write_styled_segments([frame], str(tmp_path / "track.gpkg"), "ATL08 track", {}, "h_canopy", "h_canopy")
    return load_query_layer(output)


def test_a_layer_gives_its_tracks_and_the_same_profile_as_the_engine(tmp_path):
    from canopy_explorer.plugin.layers.profile_layer import layer_tracks, track_segments

    layer = segments_layer(tmp_path)
    tracks = layer_tracks(layer)
    assert [(t.rgt, t.cycle, t.beam, t.segments) for t in tracks] == [(1234, 5, "gt2l", 4), (1234, 5, "gt2r", 1), (1234, 6, "gt2l", 1)]
    profile = along_track_profile(track_segments(layer, tracks[0]), tracks[0])
    np.testing.assert_allclose(profile.distance_km, np.arange(4) * 0.001 * METRES_PER_DEGREE_ON_EQUATOR / 1000, atol=1e-9)
    np.testing.assert_array_equal(profile.terrain, [100.0, 101.0, 102.0, 103.0])
    np.testing.assert_array_equal(profile.canopy_top, [120.0, 122.0, np.nan, 126.0])
    np.testing.assert_array_equal(profile.band.low, [105.0, 107.0, 110.0, 112.0])
    np.testing.assert_array_equal(profile.band.high, [115.0, 117.0, 120.0, 122.0])


def test_the_profile_dialog_draws_the_selected_segments_track_and_saves_a_png(tmp_path):
    from qgis.PyQt.QtGui import QImage

    from canopy_explorer.plugin.gui.profile_dialog import ProfileDialog

    layer = segments_layer(tmp_path)
    [other_cycle] = [f.id() for f in layer.getFeatures() if f["h_te_best_fit"] == 600.0]
    layer.selectByIds([other_cycle])
    dialog = ProfileDialog(layer)
    assert dialog.profile.track.same_pass(Track(1234, 6, "gt2l"))  # the selected segment's track
    dialog.track_combo.setCurrentIndex(0)
    assert dialog.profile.track.same_pass(Track(1234, 5, "gt2l"))
    assert dialog.status.text() == "4 segments over 0.3 km; shaded: canopy p25–p95 of the canopy heights."
    axes = dialog.canvas.figure.axes[0]
    assert [line.get_label() for line in axes.get_lines()] == ["Canopy top (terrain + h_canopy)", "Terrain (h_te_best_fit)"]
    np.testing.assert_array_equal(axes.get_lines()[1].get_ydata(), [100.0, 101.0, 102.0, 103.0])
    path = dialog.save_png(str(tmp_path / "profile"))
    image = QImage(path)
    assert path.endswith("profile.png") and not image.isNull() and image.width() > 400
    colours = {image.pixelColor(x, y).name() for x in range(0, image.width(), 3) for y in range(0, image.height(), 3)}
    assert {"#8c510a", "#1a9850"} <= colours  # terrain and canopy lines drawn
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".canopy-partial")] == []
    dialog.deleteLater()


def test_the_context_menu_offers_the_profile_on_segment_layers_only(loaded_plugin, tmp_path):
    from qgis.core import QgsProject, QgsVectorLayer

    layer = segments_layer(tmp_path)
    districts = QgsVectorLayer("Polygon?crs=EPSG:4326&field=name:string", "districts", "memory")
    QgsProject.instance().addMapLayers([layer, districts])
    try:
        assert loaded_plugin.iface.custom_layer_actions[loaded_plugin.profile_action] == [layer]
        loaded_plugin.iface.setActiveLayer(layer)
        loaded_plugin.profile_action.trigger()
        assert loaded_plugin.profile_dialog.profile.track.same_pass(Track(1234, 5, "gt2l"))
    finally:
        QgsProject.instance().removeAllMapLayers()


def test_qgis_elevation_profile_tool_shows_terrain_and_canopy(tmp_path):
    """QGIS 3.26+: the layer's elevation properties put each segment at its terrain height, extruded to its canopy top."""
    from canopy_explorer.plugin.qgis_compat import HAS_ELEVATION_PROFILES

    if not HAS_ELEVATION_PROFILES:
        pytest.skip("QGIS before 3.26 has no Elevation Profile tool: the plugin's own plot stands in")
    from qgis.core import (Qgis, QgsCoordinateReferenceSystem, QgsCoordinateTransformContext, QgsLineString,
                           QgsMapLayerElevationProperties, QgsPoint, QgsProfilePlotRenderer, QgsProfileRequest)

    layer = segments_layer(tmp_path)
    properties = layer.elevationProperties()
    assert properties.clamping() == Qgis.AltitudeClamping.Absolute
    assert properties.extrusionEnabled()
    defined = properties.dataDefinedProperties()
    assert defined.property(QgsMapLayerElevationProperties.Property.ZOffset).field() == "h_te_best_fit"
    request = QgsProfileRequest(QgsLineString([QgsPoint(-0.0005, 0.0), QgsPoint(0.0035, 0.0)]))
    request.setCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    request.setTransformContext(QgsCoordinateTransformContext())
    request.setTolerance(0.0001)
    generator = layer.createProfileGenerator(request)
    assert generator.generateProfile()
    heights = sorted(round(p.z(), 3) for p in generator.takeResults().sampledPoints())
    assert {100.0, 101.0, 102.0, 103.0} <= set(heights)
    # and QGIS draws them: the profile rendered as the tool's plot does
    renderer = QgsProfilePlotRenderer([layer], request)
    renderer.startGeneration()
    renderer.waitForFinished()
    image = renderer.renderToImage(400, 300, 0, 0.004, 90, 140)
    drawn = [image.pixelColor(x, y).alpha() for x in range(0, 400, 2) for y in range(0, 300, 2)]
    del renderer, generator  # before the layer, whose profile they were made from
    assert sum(alpha > 0 for alpha in drawn) > 20
