"""Regions of any size and shape return exactly the segments they cover, once each.

Checked against brute force: every segment of a database built with sample granules placed
where the cases need them (the Alps, Mexico, Borneo, both sides of the antimeridian in the
Pacific and the Arctic, the Ross Sea, ...), read with TileDB directly and tested one by one in
the region's own CRS. Projected regions are densified before they are reprojected, so a
segment within 1/100,000 of the region's size of a projected outline (80 m for the Arctic, half a
metre round Fiji) may go either way; in these cases none does.
"""

import numpy as np
import pytest
import shapely
from shapely.geometry import box

from canopy_explorer.plugin.core.lidar.database import Atl08Database
from canopy_explorer.plugin.core.grid.equal_area_grid import HexGrid
from canopy_explorer.plugin.core.errors import QueryError
from canopy_explorer.plugin.core.grid.change import GridChangeRequest, grid_change
from canopy_explorer.plugin.core.lidar.query import SegmentQuery
from canopy_explorer.plugin.core.lidar.regions import prepare_roi, region_on_earth
from region_fixtures import PLACES, assert_same_segments, brute_force, every_segment, region_database  # noqa: F401

PROJECTED_TOLERANCE = 1e-5  # of the region's width or height
ZOOMED_OUT_WEB_MERCATOR = (-15028131.0, -8000000.0, 15028131.0, 8000000.0)  # lon +-135, lat +-58
ARCTIC = (-4e6, -4e6, 4e6, 4e6)  # EPSG:3413 round the North Pole, down to 41 degrees north at the corners
ACROSS_ARCTIC_ANTIMERIDIAN = (-1.2e6, 0.4e6, -0.4e6, 1.2e6)  # EPSG:3413 across 180 degrees, not round the pole
ANTARCTIC = (-3e6, -3e6, 3e6, 3e6)  # EPSG:3031 round the South Pole


@pytest.fixture(scope="module")
def segments(region_database):
    return every_segment(region_database)


def _tolerance(region) -> float:
    xmin, ymin, xmax, ymax = region.bounds
    return PROJECTED_TOLERANCE * max(xmax - xmin, ymax - ymin)


def _query(config, roi, crs="EPSG:4326"):
    return Atl08Database(config).query(SegmentQuery.create(roi=roi, roi_crs=crs, variables=["h_canopy"]))


def _places_in(frame):
    found = set()
    for name, (south, north, west, east) in PLACES.items():
        lon, lat = frame["longitude"].to_numpy(), frame["latitude"].to_numpy()
        if ((lat >= south) & (lat <= north) & (lon >= west) & (lon <= east)).any():
            found.add(name)
    return found


# --------------------------------------------------------------------------- EPSG:4326, as drawn


@pytest.mark.parametrize("roi, places", [
    (box(-100, -60, 100, 85), {"alps", "mexico", "greenland"}),
    (box(-10, -60, 175, 85), {"alps", "borneo", "siberia"}),
], ids=["-100 to 100 degrees", "-10 to 175 degrees"])
def test_a_polygon_wider_than_half_the_world_covers_every_longitude_it_spans(region_database, segments, roi, places):
    frame = _query(region_database, roi)
    inside, _ = brute_force(segments, roi)
    assert_same_segments(frame, segments, inside, at_least=1000)
    assert places <= _places_in(frame) and not {"tuvalu", "fiji_west", "island_176w"} & _places_in(frame)


def test_a_multipolygon_of_parts_far_apart_reads_each_part_and_nothing_between(region_database, segments):
    island = PLACES["island_176w"]
    roi = shapely.MultiPolygon([box(2.0, 40.0, 12.0, 50.0),  # round the Alps
                                box(island[2] - 0.1, island[0] - 0.1, island[3] + 0.1, island[1] + 0.1)])
    parts, polygon = prepare_roi(roi)
    assert len(parts) == 2 and polygon is None  # two boxes, not the 188 degrees between them
    frame = _query(region_database, roi)
    inside, _ = brute_force(segments, roi)
    assert_same_segments(frame, segments, inside, at_least=1000)
    assert _places_in(frame) == {"alps", "island_176w"}


def test_a_polygon_drawn_past_180_degrees_reads_both_sides_of_the_antimeridian(region_database, segments):
    roi = shapely.Polygon([(179.8, -17.25), (180.26, -17.25), (180.26, -17.05), (179.8, -17.05)])
    frame = _query(region_database, roi)
    inside, _ = brute_force(segments, roi)
    assert_same_segments(frame, segments, inside)
    assert _places_in(frame) == {"fiji_west", "fiji_east"}


def test_a_box_from_east_to_west_crosses_the_antimeridian(region_database, segments):
    frame = _query(region_database, (179.8, -17.25, -179.72, -17.05))
    inside, _ = brute_force(segments, shapely.Polygon([(179.8, -17.25), (180.28, -17.25), (180.28, -17.05), (179.8, -17.05)]))
    assert_same_segments(frame, segments, inside)


def test_a_triangle_is_read_exactly_not_as_its_bounding_box(region_database, segments):
    west, east = PLACES["alps"][2], PLACES["alps"][3]
    roi = shapely.Polygon([(west, 45.0), (east, 45.0), (west, 45.3)])
    frame = _query(region_database, roi)
    inside, _ = brute_force(segments, roi)
    assert_same_segments(frame, segments, inside, at_least=100)
    assert len(frame) < 0.7 * len(_query(region_database, roi.envelope))


# --------------------------------------------------------------------------- projected regions


@pytest.mark.parametrize("crs, extent, places", [
    ("EPSG:3857", ZOOMED_OUT_WEB_MERCATOR, {"alps", "mexico", "borneo"}),
    ("EPSG:3857", (-4e7, -3e7, 4e7, 3e7), set(PLACES)),
    ("EPSG:3413", ARCTIC, {"greenland", "arctic_west", "arctic_east", "siberia", "canada"}),
    ("EPSG:3413", ACROSS_ARCTIC_ANTIMERIDIAN, {"arctic_west", "arctic_east"}),
    ("EPSG:3031", ANTARCTIC, {"antarctica", "ross_sea"}),
    ("EPSG:3460", (2_110_000.0, 3_970_000.0, 2_165_000.0, 3_995_000.0), {"fiji_west", "fiji_east"}),
], ids=["zoomed-out Web Mercator", "Web Mercator beyond the world", "round the North Pole",
        "across the antimeridian near the pole", "round the South Pole", "Fiji Map Grid across the antimeridian"])
def test_a_projected_extent_returns_exactly_what_it_covers(region_database, segments, crs, extent, places):
    roi = box(*extent)
    frame = _query(region_database, extent, crs)
    inside, near = brute_force(segments, roi, crs, _tolerance(roi))
    if extent == (-4e7, -3e7, 4e7, 3e7):  # beyond the world: what lies on it, clipped to Web Mercator's 85.06 degrees
        inside = np.abs(segments["lat"]) <= 85.06
    assert_same_segments(frame, segments, inside, near)
    assert places == _places_in(frame)


def test_a_polar_ring_with_the_pole_in_its_hole_leaves_the_hole_out(region_database, segments):
    roi = box(*ARCTIC).difference(box(-0.7e6, -0.7e6, 0.7e6, 0.7e6))  # the hole holds the pole and Siberia's tracks
    frame = _query(region_database, roi, "EPSG:3413")
    inside, near = brute_force(segments, roi, "EPSG:3413", _tolerance(roi))
    assert_same_segments(frame, segments, inside, near)
    assert {"greenland", "arctic_west", "canada"} <= _places_in(frame) and "siberia" not in _places_in(frame)


def test_a_polygon_with_a_vertex_on_the_pole_is_read_as_the_wedge_it_draws(region_database, segments):
    wedge = shapely.Polygon([(0.0, 0.0), (0.4e6, -1.5e6), (-0.4e6, -1.5e6)])  # EPSG:3413: apex on the pole, Greenland inside
    frame = _query(region_database, wedge, "EPSG:3413")
    inside, near = brute_force(segments, wedge, "EPSG:3413", _tolerance(wedge))
    assert_same_segments(frame, segments, inside, near)
    assert _places_in(frame) == {"greenland"}


def test_the_region_check_and_the_engine_agree_on_a_polar_extent():
    checked = region_on_earth(ARCTIC, "EPSG:3413", "the canvas extent", "zoom in")
    west, south, east, north = checked.bounds
    assert (west, east, north) == (-180.0, 180.0, 90.0) and 40 < south < 42
    parts, polygon = prepare_roi(checked.roi, checked.crs)
    assert parts == ((-180.0, south, 180.0, 90.0),) and polygon.covers(shapely.Point(0, 89.99))


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["NaN", "infinite"])
def test_coordinates_that_are_not_numbers_are_refused_by_name(value):
    ring = shapely.Polygon([(7.0, 45.0), (value, 45.0), (7.3, 45.3), (7.0, 45.0)])
    with pytest.raises(QueryError, match=r"the region of interest has a vertex whose coordinates are not numbers"):
        SegmentQuery.create(roi=ring)
    with pytest.raises(QueryError, match=r"not numbers .*: draw again"):
        region_on_earth(ring, "EPSG:4326", "the polygon you drew", "draw again")


# --------------------------------------------------------------------------- the grid change


@pytest.mark.parametrize("crs, extent", [("EPSG:3857", ZOOMED_OUT_WEB_MERCATOR), ("EPSG:3413", ARCTIC)],
                         ids=["zoomed-out Web Mercator", "round the North Pole"])
def test_the_grid_change_counts_every_segment_of_a_large_region_in_each_period(region_database, segments, crs, extent):
    result = grid_change(GridChangeRequest.create(Atl08Database(region_database), roi=extent, roi_crs=crs, variable="h_canopy",
                                                  periods=(("2020-01-01", "2020-12-31"), ("2021-01-01", "2021-12-31")),
                                                  cell_size_km=50, min_shots=1))
    inside, near = brute_force(segments, box(*extent), crs, _tolerance(box(*extent)))
    assert not near.any()
    valued = inside & np.isfinite(segments["h_canopy"])
    year_2021 = (np.datetime64("2021-01-01") - np.datetime64("1970-01-01")).astype(int)
    expected = (int((valued & (segments["day"] < year_2021)).sum()), int((valued & (segments["day"] >= year_2021)).sum()))
    assert result.segments == expected and min(expected) > 100
    assert len(result) > 0 and result.empty_reasons == ("", "")


# --------------------------------------------------------------------------- through Processing


@pytest.fixture
def run(loaded_plugin):
    from qgis import processing
    from qgis.core import QgsProcessingFeedback

    return lambda name, parameters: processing.run(f"canopyexplorer:{name}", parameters, feedback=QgsProcessingFeedback())


@pytest.mark.parametrize("crs, extent", [("EPSG:3857", ZOOMED_OUT_WEB_MERCATOR), ("EPSG:3413", ARCTIC),
                                         ("EPSG:3413", ACROSS_ARCTIC_ANTIMERIDIAN)],
                         ids=["zoomed-out Web Mercator", "round the North Pole", "across the antimeridian near the pole"])
def test_processing_queries_a_projected_extent_exactly(run, region_database, segments, tmp_path, crs, extent):
    import pandas as pd
    from qgis.core import QgsVectorLayer

    xmin, ymin, xmax, ymax = extent
    result = run("atl08_query", {"CONFIG": region_database.local_path, "ROI": f"{xmin},{xmax},{ymin},{ymax} [{crs}]",
                                 "VARIABLES": "h_canopy", "OUTPUT": str(tmp_path / "segments.gpkg")})
    layer = QgsVectorLayer(result["OUTPUT"], "segments", "ogr")
    points = [(f["segment_id"], f.geometry().asPoint()) for f in layer.getFeatures()]
    frame = pd.DataFrame({"segment_id": [p[0] for p in points], "longitude": [p[1].x() for p in points],
                          "latitude": [p[1].y() for p in points]})
    inside, near = brute_force(segments, box(*extent), crs, _tolerance(box(*extent)))
    assert result["SEGMENTS"] == len(frame)
    assert_same_segments(frame, segments, inside, near, at_least=100)


def test_processing_clips_an_extent_in_degrees_beyond_the_world_to_the_world(run, region_database, segments, tmp_path):
    result = run("atl08_query", {"CONFIG": region_database.local_path, "ROI": "-400,400,-100,100 [EPSG:4326]",
                                 "VARIABLES": "h_canopy", "OUTPUT": str(tmp_path / "world.gpkg")})
    assert result["SEGMENTS"] == len(segments["lon"])


def test_processing_takes_a_polar_polygon_layer_with_a_hole(run, region_database, segments, tmp_path):
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    roi = box(*ARCTIC).difference(box(-0.7e6, -0.7e6, 0.7e6, 0.7e6))
    layer = QgsVectorLayer("Polygon?crs=EPSG:3413", "arctic ring", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromWkt(roi.wkt))
    layer.dataProvider().addFeatures([feature])
    result = run("atl08_query", {"CONFIG": region_database.local_path, "ROI": layer, "VARIABLES": "h_canopy",
                                 "OUTPUT": str(tmp_path / "ring.gpkg")})
    inside, near = brute_force(segments, roi, "EPSG:3413", _tolerance(roi))
    assert abs(result["SEGMENTS"] - int(inside.sum())) <= int(near.sum())


@pytest.mark.parametrize("crs, extent", [("EPSG:3857", ZOOMED_OUT_WEB_MERCATOR), ("EPSG:3413", ARCTIC)],
                         ids=["zoomed-out Web Mercator", "round the North Pole"])
def test_processing_grid_change_maps_the_cells_a_large_extent_holds(run, region_database, segments, tmp_path, crs, extent):
    xmin, ymin, xmax, ymax = extent
    result = run("atl08_grid_change", {
        "CONFIG": region_database.local_path, "ROI": f"{xmin},{xmax},{ymin},{ymax} [{crs}]", "VARIABLE": "h_canopy",
        "PERIOD1_START": "2020-01-01", "PERIOD1_END": "2020-12-31", "PERIOD2_START": "2021-01-01", "PERIOD2_END": "2021-12-31",
        "CELL_SIZE_KM": 50, "MIN_SHOTS": 1, "OUTPUT": str(tmp_path / "grid.gpkg")})
    inside, _ = brute_force(segments, box(*extent), crs, _tolerance(box(*extent)))
    valued = inside & np.isfinite(segments["h_canopy"])
    year_2021 = (np.datetime64("2021-01-01") - np.datetime64("1970-01-01")).astype(int)
    grid = HexGrid(50)
    first = set(grid.cell_keys(segments["lon"][valued & (segments["day"] < year_2021)],
                               segments["lat"][valued & (segments["day"] < year_2021)]).tolist())
    second = set(grid.cell_keys(segments["lon"][valued & (segments["day"] >= year_2021)],
                                segments["lat"][valued & (segments["day"] >= year_2021)]).tolist())
    assert result["CELLS"] == len(first & second) > 0


@pytest.mark.parametrize("crs, extent", [("EPSG:3413", ARCTIC), ("EPSG:3857", ZOOMED_OUT_WEB_MERCATOR)],
                         ids=["round the North Pole", "zoomed-out Web Mercator"])
def test_qgis_process_in_the_cpp_host_reads_a_large_projected_extent_exactly(region_database, segments, tmp_path, crs, extent):
    """QGIS's GEOS is loaded first in qgis_process.bin: the region's geometry work must hold there too."""
    from qgis_process_runner import QgisProcessProfile

    xmin, ymin, xmax, ymax = extent
    run = QgisProcessProfile(tmp_path / "qgis").run("atl08_query", {
        "CONFIG": region_database.local_path, "ROI": f"{xmin},{xmax},{ymin},{ymax} [{crs}]", "VARIABLES": "h_canopy",
        "OUTPUT": str(tmp_path / "segments.gpkg")})
    run.check()
    inside, near = brute_force(segments, box(*extent), crs, _tolerance(box(*extent)))
    assert abs(run.results["SEGMENTS"] - int(inside.sum())) <= int(near.sum()) and run.results["SEGMENTS"] > 1000
