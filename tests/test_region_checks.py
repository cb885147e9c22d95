"""Regions checked when they are set (drawn, canvas extent, layer): on the Earth, with an area, clipped when partly off it."""

import math

import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import box

from canopy_explorer.plugin.core.errors import QueryError
from canopy_explorer.plugin.core.lidar.regions import prepare_roi, region_on_earth

DRAW_AGAIN = "zoom to your area of interest or add a layer, then draw again"
R = 6378137.0  # the Web Mercator sphere


def _check(roi, crs="EPSG:4326"):
    return region_on_earth(roi, crs, "the rectangle you drew", DRAW_AGAIN)


@pytest.mark.parametrize("roi", [box(99, -540, 499, -240), (99, -540, 499, -240)], ids=["polygon", "box"])
def test_a_region_wholly_off_the_earth_is_refused_naming_it_and_what_to_do(roi):
    with pytest.raises(QueryError) as error:
        _check(roi)
    assert str(error.value) == ("the rectangle you drew lies outside the Earth (lon 99 to 499, lat -540 to -240): "
                                f"{DRAW_AGAIN}")


def test_a_projected_region_with_no_point_on_the_earth_is_refused_in_its_own_coordinates():
    with pytest.raises(QueryError, match=r"lies outside the Earth \(x 500000000 to 600000000, y 500000000 to 600000000 in EPSG:32632\)"):
        _check(box(5e8, 5e8, 6e8, 6e8), "EPSG:32632")


@pytest.mark.parametrize("roi, message", [
    ((7.0, 45.0, 7.0, 45.3), r"is empty: it has no area \(lon 7 to 7, lat 45 to 45.3\)"),
    (shapely.Polygon(), "is empty"),
    (shapely.Polygon([(0, 0), (2, 0), (1, 0), (0, 0)]), "has no area"),
], ids=["zero-width box", "empty polygon", "collapsed ring"])
def test_a_region_with_no_area_is_refused(roi, message):
    with pytest.raises(QueryError, match=message):
        _check(roi)


def test_a_region_on_the_earth_is_kept_as_it_was_given():
    roi = box(7.0, 45.0, 7.3, 45.3)
    checked = _check(roi)
    assert checked.roi is roi and checked.crs == "EPSG:4326" and not checked.clipped
    assert checked.bounds == pytest.approx((7.0, 45.0, 7.3, 45.3))


def test_latitudes_past_the_poles_are_clipped_and_the_rest_kept():
    checked = _check((10.0, 80.0, 20.0, 100.0))
    assert checked.clipped and checked.roi == (10.0, 80.0, 20.0, 90.0)
    assert prepare_roi(checked.roi, checked.crs)[0] == ((10.0, 80.0, 20.0, 90.0),)


def test_a_canvas_zoomed_out_past_a_whole_turn_keeps_every_longitude_once():
    checked = _check((-400.0, -200.0, 400.0, 200.0))
    assert checked.clipped and checked.roi == (-180.0, -90.0, 180.0, 90.0)
    assert prepare_roi(checked.roi, checked.crs)[0] == ((-180.0, -90.0, 180.0, 90.0),)


def test_a_drawn_rectangle_wider_than_a_turn_is_every_longitude_between_its_latitudes():
    checked = _check(box(99.0, 10.0, 499.0, 20.0))
    parts, _ = prepare_roi(checked.roi, checked.crs)
    assert checked.clipped and parts == ((-180.0, 10.0, 180.0, 20.0),)


def test_a_canvas_panned_past_the_antimeridian_is_moved_back_onto_the_earth():
    checked = _check((200.0, 10.0, 300.0, 20.0))
    assert checked.roi == (-160.0, 10.0, -60.0, 20.0) and checked.bounds == (-160.0, 10.0, -60.0, 20.0)


def test_a_region_across_the_antimeridian_is_kept_and_read_on_both_sides():
    roi = box(170.0, 10.0, 190.0, 20.0)
    checked = _check(roi)
    assert checked.roi is roi and not checked.clipped
    assert prepare_roi(checked.roi, checked.crs)[0] == ((170.0, 10.0, 180.0, 20.0), (-180.0, 10.0, -170.0, 20.0))


def test_zoomed_out_web_mercator_is_clipped_to_where_the_projection_is_defined():
    checked = _check(box(-4e7, -3e7, 4e7, 3e7), "EPSG:3857")  # a world map zoomed out: x past +-20,037 km wraps round
    west, south, east, north = checked.bounds
    assert checked.clipped and checked.crs == "EPSG:3857"
    assert west == pytest.approx(-180, abs=1e-4) and east == pytest.approx(180, abs=1e-4)
    # EPSG:3857's area of use ends at 85.06 degrees
    assert north == pytest.approx(85.06, abs=1e-6) and south == pytest.approx(-85.06, abs=1e-6)
    parts, _ = prepare_roi(checked.roi, checked.crs)
    assert len(parts) == 1 and parts[0] == pytest.approx((-180, -85.06, 180, 85.06), abs=1e-4)


def test_a_web_mercator_region_wider_than_half_the_world_is_read_as_drawn():
    """Not folded across the antimeridian: its edges never jump from +180 to -180."""
    roi = box(-1.5e7, -5e6, 1.5e7, 5e6)
    checked = _check(roi, "EPSG:3857")
    assert checked.roi is roi and not checked.clipped
    lon = math.degrees(1.5e7 / R)
    lat = math.degrees(math.atan(math.sinh(5e6 / R)))
    parts, _ = prepare_roi(checked.roi, checked.crs)
    assert len(parts) == 1 and parts[0] == pytest.approx((-lon, -lat, lon, lat), abs=1e-6)


@pytest.mark.parametrize("roi", [box(400_000, 5_500_000, 600_000, 5_700_000), box(-5e6, 2e6, 5e6, 9e6)],
                         ids=["inside the zone", "far beyond the zone"])
def test_utm_regions_are_accepted_unchanged_wherever_the_projection_holds(roi):
    checked = _check(roi, "EPSG:32632")
    assert checked.roi is roi and not checked.clipped
    expected = Transformer.from_crs(32632, 4326, always_xy=True).transform_bounds(*roi.bounds, densify_pts=64)
    assert checked.bounds == pytest.approx(expected, abs=0.05)


def test_a_utm_extent_zoomed_out_to_the_planet_is_clipped_to_its_area_of_use():
    checked = _check(box(-4e7, -3e7, 4e7, 3e7), "EPSG:32632")  # most of it has no place on the Earth in UTM
    assert checked.clipped
    west, south, east, north = checked.roi.bounds
    assert 160_000 < west < 170_000 and 830_000 < east < 840_000 and south == pytest.approx(0, abs=1) and 9.3e6 < north < 9.34e6
    parts, _ = prepare_roi(checked.roi, checked.crs)
    assert all(math.isfinite(v) for part in parts for v in part)


def test_islands_split_at_the_antimeridian_are_read_as_two_small_boxes_not_the_whole_band():
    fiji = shapely.MultiPolygon([box(179.5, -17.3, 180, -17), box(-180, -17.3, -179.5, -17)])
    checked = region_on_earth(fiji, "EPSG:4326", "layer 'fiji'", "check the layer")
    assert checked.roi is fiji and checked.bounds == (179.5, -17.3, 180.5, -17.0)
    assert prepare_roi(checked.roi, checked.crs)[0] == ((179.5, -17.3, 180.0, -17.0), (-180.0, -17.3, -179.5, -17.0))
