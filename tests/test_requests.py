"""The engine's request objects: each refuses a bad value when it is built, with a message naming the value,
before any read, search or write; the filters are parsed once however many queries a request makes."""

import re

import pytest
import shapely
from shapely.geometry import LineString, box

from canopy_explorer.plugin.core.districts.canopy import CanopyStatsRequest
from canopy_explorer.plugin.core.districts.statistics import DistrictStatsRequest, district_stats
from canopy_explorer.plugin.core.errors import ConfigurationError, FilterSyntaxError, OutputError, QueryError, UnknownVariableError
from canopy_explorer.plugin.core.grid.change import GridChangeRequest
from canopy_explorer.plugin.core.lidar import filters as filters_module
from canopy_explorer.plugin.core.lidar import query as query_module
from canopy_explorer.plugin.core.lidar.config import local_config
from canopy_explorer.plugin.core.lidar.filters import ParsedFilters
from canopy_explorer.plugin.core.lidar.query import NearestRequest, SegmentQuery
from canopy_explorer.plugin.core.sentinel2.composites import CompositeRequest
from canopy_explorer.plugin.core.sentinel2.stac_search import StacSource
from dialog_fixtures import canvas, dialog  # noqa: F401 (fixtures)
from stac_fixtures import BOUNDARY, BOUNDARY_CRS
from zonal_fixtures import districts, write_composites

CONFIG = local_config("/nonexistent/atl08")  # never opened: every case fails before reading
PERIODS = (("2019-01-01", "2020-12-31"), ("2022-01-01", "2023-12-31"))


def refused(error_type, fragment, build):
    """``build()`` raises ``error_type`` with ``fragment`` (the offending value) in its message."""
    with pytest.raises(error_type) as raised:
        build()
    assert fragment in str(raised.value), str(raised.value)
    return str(raised.value)


@pytest.fixture
def count_parses(monkeypatch):
    """How many times filter text is parsed (line by line) from now on."""
    calls = []
    original = filters_module.parse_filter_lines

    def counted(text, *args, **kwargs):
        calls.append(text)
        return original(text, *args, **kwargs)

    monkeypatch.setattr(filters_module, "parse_filter_lines", counted)
    monkeypatch.setattr(query_module, "parse_filter_lines", counted)
    return calls


# --------------------------------------------------------------------------- nearest


@pytest.mark.parametrize("changes, error, fragment", [
    ({"point": (500.0, 100.0)}, QueryError, "point (500.0, 100.0) is not a longitude/latitude pair"),
    ({"point": "7.1 45.1"}, QueryError, "7.1 45.1"),
    ({"point": (7.1,)}, QueryError, "(7.1,)"),
    ({"num_shots": 0}, QueryError, "not 0"),
    ({"num_shots": 2.5}, QueryError, "not 2.5"),
    ({"num_shots": True}, QueryError, "not True"),
    ({"radius_m": 0}, QueryError, "not 0"),
    ({"radius_m": -5.0}, QueryError, "not -5.0"),
    ({"radius_m": "far"}, QueryError, "not 'far'"),
    ({"variables": ""}, QueryError, "no variables given"),
    ({"variables": "h_canopi"}, UnknownVariableError, "h_canopi"),
    ({"filters": "h_canopy >>= 3"}, FilterSyntaxError, "h_canopy >>= 3"),
    ({"start": "2020-02-30"}, QueryError, "2020-02-30"),
    ({"start": "2021-01-01", "end": "2020-01-01"}, QueryError, "2020-01-01 is before start time"),
])
def test_nearest_request_refuses(changes, error, fragment):
    values = {"point": (7.15, 45.15), "num_shots": 5, "radius_m": 1000.0, "variables": "h_canopy"}
    values.update(changes)
    refused(error, fragment, lambda: NearestRequest.create(**values))


def test_nearest_request_holds_the_box_round_the_point_and_the_circle():
    request = NearestRequest.create((179.99, 10.0), num_shots=3, radius_m=5000, variables="h_canopy, canopy_h_metrics:95",
                                    filters="night_flag == 1", start="2020-01-01")
    assert request.variables == ("h_canopy", "canopy_h_metrics:95") and request.filters_text == "night_flag == 1"
    assert len(request.spec.parts) == 2  # the box crosses the antimeridian
    assert list(request.within([179.99, -179.99, 179.0], [10.0, 10.0, 10.0])) == [True, True, False]
    assert NearestRequest.create((7.1, 45.1), num_shots=5.0).num_shots == 5  # a spin box's whole number is one


# --------------------------------------------------------------------------- grid change


@pytest.mark.parametrize("changes, error, fragment", [
    ({"database": "no database"}, ConfigurationError, "'no database'"),
    ({"output": "grid.shp"}, OutputError, "grid.shp"),
    ({"output": 42}, OutputError, "not 42"),
    ({"cells": "triangle"}, QueryError, "'triangle'"),
    ({"output": "grid.gpkg", "cells": "square"}, OutputError, "grid.gpkg holds hexagons, not squares"),
    ({"cell_size_km": "big"}, QueryError, "'big'"),
    ({"cell_size_km": 0}, QueryError, "not 0.0 km"),
    ({"grid_crs": "EPSG:4326"}, QueryError, "WGS 84"),
    ({"periods": PERIODS + (PERIODS[0],)}, QueryError, "2019-01-01"),
    ({"periods": "2019/2020"}, QueryError, "two periods"),
    ({"min_shots": 0}, QueryError, "not 0"),
    ({"min_shots": 2.5}, QueryError, "not 2.5"),
    ({"batch_rows": 0}, QueryError, "not 0"),
    ({"resolution": -1}, QueryError, "not -1"),
    ({"variable": "canopy_h_metrics"}, QueryError, "'canopy_h_metrics' has 18 columns"),
    ({"variable": "h_canopyy"}, UnknownVariableError, "h_canopyy"),
    ({"filters": "(" * 40 + "h_canopy > 5" + ")" * 40}, FilterSyntaxError, "nested more than 32 deep"),
    ({"periods": (PERIODS[0], ("2023-01-01", "2022-01-01")), "period_labels": (("A1", "A2"), ("B1", "B2"))}, QueryError,
     "end time (B2) 2022-01-01 is before start time (B1) 2023-01-01"),
    ({"roi": (5, 100, 6, 120)}, QueryError, "100.0..120.0"),
])
def test_grid_change_request_refuses(changes, error, fragment):
    values = {"database": CONFIG, "periods": PERIODS}
    values.update(changes)
    refused(error, fragment, lambda: GridChangeRequest.create(**values))


def test_grid_change_request_picks_the_cells_from_the_output_and_parses_the_filters_once(count_parses):
    request = GridChangeRequest.create(CONFIG, "change.tif", periods=PERIODS, cell_size_km=20, filters="h_canopy >= 5\nnight_flag == 1")
    assert request.grid.kind == "square" and request.raster and request.column.name == "h_canopy"
    assert len(count_parses) == 1  # one parse for the two periods' queries
    assert request.specs[0].filter_lines == request.specs[1].filter_lines and len(request.specs[0].filter_lines) == 2
    assert GridChangeRequest.create(CONFIG, periods=PERIODS).grid.kind == "hexagon"
    assert GridChangeRequest.create(CONFIG, "change.gpkg", periods=PERIODS).grid.kind == "hexagon"


# --------------------------------------------------------------------------- NDVI composites


def _source():
    return StacSource(url="http://127.0.0.1:9/stac", collection="sentinel-2-c1-l2a", source="test")


@pytest.mark.parametrize("changes, error, fragment", [
    ({"source": "earth search"}, ConfigurationError, "'earth search'"),
    ({"source": StacSource(url="ftp://example.org", source="test")}, ConfigurationError, "'ftp://example.org'"),
    ({"years": "2022, twenty"}, QueryError, "'twenty'"),
    ({"years": "1999"}, QueryError, "1999"),
    ({"max_cloud": 0}, QueryError, "not 0"),
    ({"max_cloud": 150}, QueryError, "not 150"),
    ({"boundary": LineString([(0, 0), (1, 1)])}, QueryError, "polygon"),
    ({"boundary_crs": "EPSG:999999"}, QueryError, "'EPSG:999999'"),
    ({"boundary_crs": "EPSG:4326"}, QueryError, "(500403.1, 5651603.9, 502403.7, 5653601.1) are not longitudes and latitudes"),
    ({"resolution": -10}, QueryError, "not -10"),
    ({"resolution": "ten"}, QueryError, "not 'ten'"),
    ({"crs": "EPSG:4326"}, QueryError, "output CRS EPSG:4326 is in degrees"),
    ({"block_size": 8}, QueryError, "not 8"),
    ({"workers": 0}, QueryError, "not 0"),
    ({"classes": 0}, QueryError, "not 0"),
    ({"output_folder": " "}, OutputError, "' '"),
])
def test_composite_request_refuses(changes, error, fragment, tmp_path):
    values = {"source": _source(), "boundary": BOUNDARY, "boundary_crs": BOUNDARY_CRS, "years": "2022", "max_cloud": 20,
              "output_folder": tmp_path / "out"}
    values.update(changes)
    refused(error, fragment, lambda: CompositeRequest.create(**values))
    assert not (tmp_path / "out").exists()


def test_composite_request_keeps_sorted_years_and_the_boundary_crs(tmp_path):
    request = CompositeRequest.create(_source(), BOUNDARY, BOUNDARY_CRS, "2024, 2019", 30, str(tmp_path), cover_whole=1)
    assert request.years == (2019, 2024) and request.max_cloud == 30.0 and request.cover_whole is True
    assert request.boundary_crs.to_epsg() == 32632 and request.output_folder == tmp_path


# --------------------------------------------------------------------------- district statistics


@pytest.fixture(scope="module")
def composites(tmp_path_factory):
    return write_composites(tmp_path_factory.mktemp("composites"))


@pytest.mark.parametrize("changes, error, fragment", [
    ({"districts": "districts.gpkg"}, ConfigurationError, "not str"),
    ({"rasters": []}, QueryError, "choose at least one NDVI composite"),
    ({"rasters": ["composite_latest.tif"]}, ConfigurationError, "'composite_latest.tif'"),
    ({"rasters": ["ndvi_2019_2020.tif"]}, ConfigurationError, "'ndvi_2019_2020.tif' holds several years"),
    ({"output_gpkg": None}, ConfigurationError, "give output_gpkg"),
    ({"output_gpkg": ""}, ConfigurationError, "not ''"),
    ({"connection": 42}, ConfigurationError, "not int"),
    ({"connection": "service=gis", "output_gpkg": None, "geojson": "latest.geojson"}, ConfigurationError, "latest.geojson"),
    ({"classes": 0}, ConfigurationError, "not 0"),
    ({"classes": "5"}, ConfigurationError, "not '5'"),
    ({"statistic": "p95_ndvi"}, ConfigurationError, "'p95_ndvi'"),  # median_ndvi, p10_ndvi, p90_ndvi exist
    ({"connection": "service=gis", "loader": "gdal"}, ConfigurationError, "'gdal'"),
    ({"connection": "service=gis", "prefix": "p" * 60}, ConfigurationError, "p" * 60),
    ({"connection": "service=gis", "schema": " "}, ConfigurationError, "schema name is empty"),
])
def test_district_stats_request_refuses(changes, error, fragment, tmp_path):
    values = {"districts": districts(), "rasters": ["ndvi_composite_2019.tif"], "output_gpkg": tmp_path / "stats.gpkg"}
    values.update(changes)
    refused(error, fragment, lambda: DistrictStatsRequest.create(**values))


def test_the_latest_table_is_exported_as_geojson_by_the_engine_in_either_mode(composites, tmp_path):
    request = DistrictStatsRequest.create(districts(), composites, tmp_path / "stats.gpkg", geojson=tmp_path / "latest.geojson")
    assert request.embedded and [year for year, _ in request.rasters] == sorted(composites)
    result = district_stats(request)
    assert result.geojson == tmp_path / "latest.geojson" and result.geojson.exists()
    without = district_stats(DistrictStatsRequest.create(districts(), composites, tmp_path / "plain.gpkg"))
    assert without.geojson is None and sorted(p.name for p in tmp_path.iterdir()) == ["latest.geojson", "plain.gpkg", "stats.gpkg"]


def test_a_mode_refuses_the_other_modes_request(tmp_path):
    from canopy_explorer.plugin.core.districts.embedded import district_stats_embedded
    from canopy_explorer.plugin.core.districts.postgis import district_stats_postgis

    in_postgis = DistrictStatsRequest.create(districts(), ["ndvi_composite_2019.tif"], connection="service=gis")
    refused(ConfigurationError, "in PostGIS", lambda: district_stats_embedded(in_postgis))
    embedded = DistrictStatsRequest.create(districts(), ["ndvi_composite_2019.tif"], tmp_path / "stats.gpkg")
    refused(ConfigurationError, "no PostgreSQL connection", lambda: district_stats_postgis(embedded))


@pytest.mark.parametrize("changes, error, fragment", [
    ({"districts": None}, ConfigurationError, "not NoneType"),
    ({"database": "s3://bucket"}, ConfigurationError, "'s3://bucket'"),
    ({"output_gpkg": None}, ConfigurationError, "give output_gpkg"),
    ({"variable": "canopy_h_metrics"}, QueryError, "'canopy_h_metrics' has 18 values per segment"),
    ({"variable": "h_canopi"}, UnknownVariableError, "h_canopi"),
    ({"statistic": "max_h_canopy"}, ConfigurationError, "'max_h_canopy'"),
    ({"classes": 0}, ConfigurationError, "not 0"),
    ({"batch_rows": 0}, QueryError, "not 0"),
    ({"filters": "h_canopy between 5"}, FilterSyntaxError, "h_canopy between 5"),
    ({"start": "2021-01-01", "end": "2020-01-01"}, QueryError, "2020-01-01 is before start time"),
])
def test_canopy_stats_request_refuses(changes, error, fragment, tmp_path):
    values = {"districts": districts(), "database": CONFIG, "output_gpkg": tmp_path / "canopy.gpkg"}
    values.update(changes)
    refused(error, fragment, lambda: CanopyStatsRequest.create(**values))


# --------------------------------------------------------------------------- filters parsed once


def test_parsed_filters_are_taken_as_they_are(count_parses):
    parsed = ParsedFilters.parse(["h_canopy between 5 60", "# a comment", "night_flag == 1"])
    assert parsed.text == "h_canopy between 5 60\n# a comment\nnight_flag == 1" and len(parsed.lines) == 2
    assert ParsedFilters.parse(parsed) is parsed
    spec = SegmentQuery.create(roi=box(7, 45, 7.3, 45.3), filters=parsed)
    nearest = NearestRequest.create((7.1, 45.1), filters=parsed)
    assert len(count_parses) == 1
    assert spec.filter_lines == nearest.spec.filter_lines == parsed.lines
    assert re.search(r"line 3 'night_flag == 1'", spec.filter_lines[1].label)


def test_the_dialog_parses_the_filters_once_to_build_a_query(dialog, count_parses):
    dialog.variables.set_variables(["h_canopy"])
    dialog.region.roi = (shapely.box(7.0, 45.0, 7.3, 45.3), "EPSG:4326")
    dialog.filters.filtersTable.setRowCount(0)
    dialog.filters.filtersEdit.setPlainText("h_canopy between 5 60\nnight_flag == 1")
    count_parses.clear()  # typing checks the text as it changes; building the query must not parse it again
    request = dialog.query.build_request()
    assert len(count_parses) == 1  # the check that build_request makes, whose parse the query takes
    assert request.filters_text == "h_canopy between 5 60\nnight_flag == 1"
    assert request.spec.filter_lines == dialog.filters.parsed_filters.lines and len(request.spec.filter_lines) == 2
