"""District statistics: embedded and PostGIS modes against numpy over pixel centres, and against each other."""

import math

import pytest
import shapely

from postgis_fixtures import *  # noqa: F401,F403
from zonal_fixtures import (CRS, YEARS, district_shapes, districts, expected_quantiles, expected_stats, layer_names, read_table,
                            write_composite, write_composites)

from canopy_explorer.plugin.core.districts.statistics import NDVI_LAYOUT, DistrictStatsRequest
from canopy_explorer.plugin.core.districts.postgis import district_stats_postgis
from canopy_explorer.plugin.core.districts.embedded import district_stats_embedded

TOLERANCE = 1e-6
STATS = ("pixel_count", "min_ndvi", "max_ndvi", "mean_ndvi", "stddev_ndvi")
QUANTILES = ("median_ndvi", "p10_ndvi", "p90_ndvi")


@pytest.fixture(scope="module")
def composites(tmp_path_factory):
    return write_composites(tmp_path_factory.mktemp("composites"))


@pytest.fixture(scope="module")
def embedded_output(composites, tmp_path_factory):
    output = tmp_path_factory.mktemp("embedded") / "district_stats.gpkg"
    result = district_stats_embedded(DistrictStatsRequest.create(districts(), list(composites.values()), output))
    return output, result


def assert_close(actual, expected, what):
    if expected is None:
        assert actual is None, f"{what}: expected NULL, got {actual}"
    else:
        assert actual is not None and math.isclose(actual, expected, rel_tol=0, abs_tol=TOLERANCE), \
            f"{what}: {actual} != {expected}"


def assert_matches_numpy(gpkg, composites):
    for year, path in composites.items():
        table = read_table(gpkg, f"ndvi_stats_{year}")
        assert set(table) == {i for i, _ in district_shapes()}
        for identifier, geometry in district_shapes():
            count, minimum, maximum, mean, stddev = expected_stats(path, geometry)
            row = table[identifier]
            assert row["year"] == year
            assert row["pixel_count"] == count, f"{year} {identifier}: {row['pixel_count']} pixels, expected {count}"
            for field, value in zip(STATS[1:], (minimum, maximum, mean, stddev)):
                assert_close(row[field], value, f"{year} {identifier} {field}")
            for field, value in zip(QUANTILES, expected_quantiles(path, geometry)):
                assert_close(row[field], value, f"{year} {identifier} {field}")


def assert_same_tables(first, second, layers, id_field="district code"):
    for layer in layers:
        a, b = read_table(first, layer, id_field), read_table(second, layer, id_field)
        assert set(a) == set(b), layer
        for identifier in a:
            for field, value in a[identifier].items():
                if field == "geom":
                    assert a[identifier]["geom"].equals(b[identifier]["geom"]), f"{layer} {identifier} geometry"
                elif isinstance(value, float) or isinstance(b[identifier][field], float):
                    assert_close(b[identifier][field], value, f"{layer} {identifier} {field}")
                else:
                    assert b[identifier][field] == value, f"{layer} {identifier} {field}"


def test_embedded_statistics_equal_numpy_over_pixel_centres(embedded_output, composites):
    output, result = embedded_output
    assert_matches_numpy(output, composites)
    assert result.years == YEARS
    assert layer_names(output) == sorted([f"ndvi_stats_{y}" for y in YEARS] + ["ndvi_stats_latest", "ndvi_stats_change"])


def test_district_outside_the_raster_or_between_pixel_centres_has_count_zero_and_null_statistics(embedded_output):
    output, _ = embedded_output
    for year in YEARS:
        table = read_table(output, f"ndvi_stats_{year}")
        for identifier in ("C; DROP TABLE districts; --", "H tiny"):
            assert table[identifier]["pixel_count"] == 0
            assert all(table[identifier][f] is None for f in STATS[1:] + QUANTILES)


def test_nan_pixels_are_left_out_and_partial_overlap_counts_only_pixels_inside(embedded_output, composites):
    output, _ = embedded_output
    table = read_table(output, "ndvi_stats_2019")
    assert 0 < table["F nan"]["pixel_count"] < shapely.area(dict(district_shapes())["F nan"]) / 100
    # B spans x 2703.3..3350.7 m and y 1203.3..1606.9 m; the raster ends at x = 3000 m:
    # centres 2705..2995 (30 columns) and 1205..1605 (41 rows) count
    assert table["B partial's"]["pixel_count"] == 30 * 41


def test_geometries_are_stored_in_the_raster_crs_as_multipolygons(embedded_output):
    from osgeo import ogr

    output, result = embedded_output
    assert result.crs == CRS
    dataset = ogr.Open(str(output))
    layer = dataset.GetLayerByName("ndvi_stats_latest")
    assert layer.GetSpatialRef().GetAuthorityCode(None) == "32632"
    assert layer.GetGeomType() == ogr.wkbMultiPolygon
    hole = read_table(output, "ndvi_stats_latest")["D hole"]["geom"]
    assert len(hole.geoms[0].interiors) == 1


@pytest.mark.parametrize("loader", ["python", "raster2pgsql"])
def test_postgis_statistics_equal_numpy_and_the_embedded_mode(postgis_server, composites, embedded_output, tmp_path, loader):
    output = tmp_path / "postgis.gpkg"
    result = district_stats_postgis(DistrictStatsRequest.create(districts(), list(composites.values()),
                                                                connection=postgis_server.conninfo, prefix=f"values_{loader}_", output_gpkg=output, loader=loader))
    assert result.years == YEARS
    assert_matches_numpy(output, composites)
    layers = [f"ndvi_stats_{y}" for y in YEARS] + ["ndvi_stats_latest", "ndvi_stats_change"]
    assert_same_tables(embedded_output[0], output, layers)
    embedded_breaks = {layer.name: layer.breaks for layer in embedded_output[1].layers}
    for layer in result.layers:
        assert layer.breaks == pytest.approx(embedded_breaks[layer.name], abs=TOLERANCE)


def test_postgis_tables_are_what_raster2pgsql_dash_i_c_m_makes(postgis_server, composites, tmp_path):
    district_stats_postgis(DistrictStatsRequest.create(districts(), {2019: composites[2019]},
                                                       connection=postgis_server.conninfo, schema="layout", loader="python"))
    with postgis_server.admin_connect() as conn:
        srid, scale_x, scale_y, block_x, block_y, nodata, extent = conn.execute(
            "SELECT srid, scale_x, scale_y, blocksize_x, blocksize_y, nodata_values, ST_AsText(extent) "
            "FROM raster_columns WHERE r_table_schema = 'layout' AND r_table_name = 'ndvi_2019'").fetchone()
        assert (srid, scale_x, scale_y) == (32632, 10, -10)
        assert (block_x, block_y) in ((256, 256), (None, None))
        assert math.isnan(nodata[0])
        assert extent is not None
        tiles = conn.execute("SELECT count(*), max(ST_Width(rast)), min(ST_Width(rast)) FROM layout.ndvi_2019").fetchone()
        assert tiles == (4, 256, 300 - 256)
        indexes = " ".join(row[0] for row in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'layout'").fetchall())
        assert "st_convexhull(rast)" in indexes.lower()
        assert "districts USING gist (geom)" in indexes
        column_type = conn.execute("SELECT type FROM geometry_columns WHERE f_table_schema = 'layout' "
                                   "AND f_table_name = 'districts'").fetchone()[0]
        assert column_type == "MULTIPOLYGON"


def test_breaks_are_in_the_result_for_every_published_layer(embedded_output):
    _, result = embedded_output
    kinds = {layer.name: layer.kind for layer in result.layers}
    assert kinds == {"ndvi_stats_2019": "year", "ndvi_stats_2020": "year", "ndvi_stats_2021": "year",
                     "ndvi_stats_latest": "latest", "ndvi_stats_change": "change"}
    latest = result.layer("ndvi_stats_latest")
    assert latest.field == NDVI_LAYOUT.primary and len(latest.breaks) == 5
    assert result.layer("ndvi_stats_change").field == "mean_ndvi_change"


def test_pixel_centres_exactly_on_an_edge_go_the_same_way_as_in_postgis(postgis_server, composites, tmp_path):
    # edges through rows and columns of pixel centres (x, y = 5, 15, 25, ... m): numpy's contains_xy
    # leaves those pixels out, GDAL's rasterizer (which ST_Clip uses) takes some; both modes must agree
    from canopy_explorer.plugin.core.districts.statistics import Districts
    from zonal_fixtures import rect

    shapes = {"on centres": rect(5, 5, 105, 205), "diagonal": shapely.Polygon([(500005, 5699995), (500405, 5699595),
                                                                                 (500005, 5699595)]),
              "tile edge": rect(2555, 2455, 2605, 2605)}
    on_centres = Districts.create(list(shapes), list(shapes.values()), CRS)
    rasters = {2019: composites[2019]}
    district_stats_embedded(DistrictStatsRequest.create(on_centres, rasters, tmp_path / "embedded.gpkg"))
    district_stats_postgis(DistrictStatsRequest.create(on_centres, rasters, connection=postgis_server.conninfo,
                                                       prefix="centres_", output_gpkg=tmp_path / "pg.gpkg"))
    assert_same_tables(tmp_path / "embedded.gpkg", tmp_path / "pg.gpkg", ["ndvi_stats_2019"], id_field="id")
    counts = {i: r["pixel_count"] for i, r in read_table(tmp_path / "embedded.gpkg", "ndvi_stats_2019", "id").items()}
    # the case was really on the edge: 11 x 21 centres on the closed rectangle, 9 x 19 strictly inside
    assert 9 * 19 < counts["on centres"] < 11 * 21


def test_progress_rises_to_one(composites, tmp_path, postgis_server):
    for run in (lambda p: district_stats_embedded(DistrictStatsRequest.create(districts(), composites, tmp_path / "e.gpkg"),
                                                  progress=p),
                lambda p: district_stats_postgis(DistrictStatsRequest.create(districts(), composites,
                                                                             connection=postgis_server.conninfo, prefix="progress_"), progress=p)):
        seen = []
        run(seen.append)
        assert seen[-1] == 1.0 and all(0 <= a <= b <= 1 for a, b in zip(seen, seen[1:])) and len(seen) > 3


def test_median_and_percentiles_interpolate_linearly_between_ranks_in_both_modes(postgis_server, tmp_path):
    # a district over five pixels 0, 1, 2, 10 and NaN (left out): numpy's default (linear) percentile puts the
    # 10th percentile at rank 0.3 (0.3), the median between 1 and 2 (1.5) and the 90th at rank 2.7 (2 + 0.7 * 8 = 7.6);
    # "lower", "nearest" or "midpoint" definitions would give other numbers
    import numpy as np

    from canopy_explorer.plugin.core.districts.statistics import Districts
    from zonal_fixtures import rect

    values = np.full((4, 6), np.nan, dtype=np.float32)
    values[1, 1:6] = [0.0, 1.0, np.nan, 2.0, 10.0]
    raster = write_composite(tmp_path / "ndvi_composite_2022.tif", values)
    row = rect(10.3, 10.3, 59.7, 19.7)  # the centres of row 1, columns 1..5
    request = dict(districts=Districts.create(["row"], [row], CRS), rasters=[raster])
    district_stats_embedded(DistrictStatsRequest.create(**request, output_gpkg=tmp_path / "embedded.gpkg"))
    district_stats_postgis(DistrictStatsRequest.create(**request, connection=postgis_server.conninfo, prefix="ranks_",
                                                       output_gpkg=tmp_path / "pg.gpkg"))
    for output in ("embedded.gpkg", "pg.gpkg"):
        for table in ("ndvi_stats_2022", "ndvi_stats_latest"):
            found = read_table(tmp_path / output, table, "id")["row"]
            assert found["pixel_count"] == 4, output
            assert (found["p10_ndvi"], found["median_ndvi"], found["p90_ndvi"]) == pytest.approx((0.3, 1.5, 7.6), abs=1e-12), \
                f"{output} {table}"
