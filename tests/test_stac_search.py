"""STAC search against a real STAC API on loopback: parameters sent, pages, client-side checks, config."""

import json
import math

import pytest
import shapely
from shapely.geometry import Polygon

from canopy_explorer.plugin.core.errors import ConfigurationError, QueryError, StorageError
from canopy_explorer.plugin.core.samples.stac_server import SampleStacServer, free_port
from canopy_explorer.plugin.core.sentinel2.stac_search import (
    DEFAULT_CONFIG, StacSource, default_stac_source, find_scenes, load_stac_source, parse_years, search_geometry, search_scenes,
)
from stac_fixtures import *  # noqa: F401,F403
from stac_fixtures import BOUNDARY, COLLECTION, boundary_wgs84, make_source


def _ids(scenes):
    return [scene.id for scene in scenes]


def test_search_sends_intersects_year_interval_and_dict_form_cloud_query(stac_server):
    scenes = search_scenes(make_source(stac_server.url), boundary_wgs84(), 2023, max_cloud=20)

    searches = stac_server.requests(kind="api", path="/search")
    assert len(searches) == 1
    body = searches[0]["body"]
    assert searches[0]["method"] == "POST"
    assert body["collections"] == [COLLECTION]
    assert body["datetime"] == "2023-01-01T00:00:00Z/2023-12-31T23:59:59Z"
    assert body["query"] == {"eo:cloud_cover": {"lt": 20}}
    sent = shapely.geometry.shape(body["intersects"])
    assert sent.equals_exact(boundary_wgs84(), 1e-9)
    # D (80 %) is filtered by the server, E is another collection, F is 60 km away, G is 2022
    assert _ids(scenes) == ["A_2023", "B_2023", "C_2023"]


def test_scene_carries_assets_scaling_baseline_and_projection(stac_server):
    scenes = {s.id: s for s in search_scenes(make_source(stac_server.url), boundary_wgs84(), 2021, max_cloud=20)}

    new, old, mislabelled = scenes["NEW_2021"], scenes["OLD_2021"], scenes["MISLABELLED_2021"]
    assert new.processing_baseline == "05.00" and old.processing_baseline == "02.14"
    assert new.assets["red"].scale == pytest.approx(0.0001) and new.assets["red"].offset == pytest.approx(-0.1)
    assert old.assets["nir"].offset == 0.0
    assert mislabelled.assets["red"].offset == 0.0
    assert new.epsg == 32632 and new.cloud_cover == 1.0
    assert new.assets["scl"].href.startswith(stac_server.url) and new.assets["scl"].href.endswith("/scl.tif")
    assert new.datetime.year == 2021 and new.datetime.tzinfo is not None


def test_every_page_is_read(stac_server):
    scenes = search_scenes(make_source(stac_server.url, page_size=2), boundary_wgs84(), 2019, max_cloud=20)

    assert _ids(scenes) == [f"P{i}_2019" for i in range(1, 6)]
    searches = stac_server.requests(kind="api", path="/search")
    assert len(searches) == 3  # 2 + 2 + 1
    assert [s["body"].get("token") for s in searches] == [None, "next:2", "next:4"]
    assert all(s["body"]["limit"] == 2 for s in searches)


def test_cloud_cover_is_checked_again_when_the_server_ignores_the_query(stac_catalogue, tmp_path):
    with SampleStacServer(stac_catalogue, log=tmp_path / "log.jsonl", ignore_query=True) as server:
        lines = []
        scenes = search_scenes(make_source(server.url), boundary_wgs84(), 2023, max_cloud=10, log=lines.append)

    assert _ids(scenes) == ["A_2023", "C_2023"]  # B (12 %) and D (80 %) came back from the server
    assert any("B_2023" in line and "not below 10" in line for line in lines)
    assert any("D_2023" in line for line in lines)


def test_when_no_scene_is_clear_enough_a_search_without_the_cloud_condition_counts_the_cloudy_ones(stac_server):
    found = find_scenes(make_source(stac_server.url), boundary_wgs84(), 2023, max_cloud=4)

    assert found.scenes == () and found.returned == 0  # the server applied lt 4 itself
    # over the city in 2023: A 5 %, B 12 %, C 8 %, D 80 % (E is another collection, F is 60 km away)
    assert sorted(found.cloudy) == [5.0, 8.0, 12.0, 80.0] and not found.cloudy_capped
    searches = stac_server.requests(kind="api", path="/search")
    assert [s["body"].get("query") for s in searches] == [{"eo:cloud_cover": {"lt": 4}}, None]
    assert "raise the cloud-cover threshold above 5%" in found.why_none(make_source(stac_server.url))


def test_a_year_with_no_scene_at_all_is_told_apart_from_a_cloudy_one(stac_server):
    found = find_scenes(make_source(stac_server.url), boundary_wgs84(), 2018, max_cloud=20)

    assert found.scenes == () and found.cloudy == ()
    reason = found.why_none(make_source(stac_server.url))
    assert reason.startswith(f"the STAC API at {stac_server.url} has no sentinel-2-c1-l2a scenes over this region in 2018")
    assert "cloud" not in reason


def test_cloudy_scenes_the_server_sent_back_despite_the_query_are_counted_without_a_second_search(stac_catalogue, tmp_path):
    with SampleStacServer(stac_catalogue, log=tmp_path / "log.jsonl", ignore_query=True) as server:
        found = find_scenes(make_source(server.url), boundary_wgs84(), 2023, max_cloud=4)
        searches = server.requests(kind="api", path="/search")

    assert found.scenes == () and sorted(found.cloudy) == [5.0, 8.0, 12.0, 80.0]
    assert len(searches) == 1


@pytest.mark.parametrize("region", [shapely.Polygon(), shapely.MultiPolygon(), None], ids=["polygon", "multipolygon", "none"])
def test_an_empty_region_is_refused_and_no_search_is_sent(stac_server, region):
    with pytest.raises(QueryError, match="the region is empty"):
        search_scenes(make_source(stac_server.url), region, 2023, max_cloud=20)
    assert stac_server.requests() == []


def test_a_region_whose_coordinates_are_not_numbers_is_refused_and_no_search_is_sent(stac_server):
    import numpy as np

    broken = shapely.polygons(np.array([[9.0, 51.0], [9.1, 51.0], [np.nan, 51.1], [9.0, 51.0]]))
    with pytest.raises(QueryError, match="not numbers"):
        search_scenes(make_source(stac_server.url), broken, 2023, max_cloud=20)
    assert stac_server.requests() == []


@pytest.mark.parametrize("region", [shapely.Polygon(), shapely.MultiPolygon(), shapely.box(9.0, 51.0, 9.0, 51.1)])
def test_search_geometry_is_never_empty(region):
    with pytest.raises(QueryError, match="the region is empty"):
        search_geometry(region, 500)


def test_cover_whole_keeps_only_scenes_covering_the_boundary(stac_server):
    every = search_scenes(make_source(stac_server.url), boundary_wgs84(), 2023, max_cloud=20)
    covering = search_scenes(make_source(stac_server.url), boundary_wgs84(), 2023, max_cloud=20, cover_whole=True)

    assert "C_2023" in _ids(every)
    assert _ids(covering) == ["A_2023", "B_2023"]  # C's footprint ends in the middle of the boundary


def test_scenes_covering_only_part_of_the_region_are_counted_and_named_as_the_cause(stac_server):
    from canopy_explorer.plugin.core.sentinel2.stac_search import SceneSearch

    found = find_scenes(make_source(stac_server.url), boundary_wgs84(), 2023, max_cloud=20, cover_whole=True)
    assert found.partial == 1  # C_2023 (8 %) ends in the middle of the city
    only_partial = SceneSearch(year=2023, max_cloud=20, scenes=(), returned=1, partial=1)
    reason = only_partial.why_none(make_source(stac_server.url))
    assert "1 sentinel-2-c1-l2a scene(s) over part of this region in 2023" in reason and "allow partial scenes" in reason
    assert "threshold" not in reason


def test_complex_boundary_is_searched_by_a_covering_simplification(stac_server):
    # a 2,000-vertex star inside the usual boundary's area
    centre = BOUNDARY.centroid
    angles = [2 * math.pi * i / 2000 for i in range(2000)]
    radius = [700 + (150 if i % 2 else 0) for i in range(2000)]
    star = Polygon([(centre.x + r * math.cos(a), centre.y + r * math.sin(a)) for r, a in zip(radius, angles)])
    star_wgs84 = boundary_wgs84(star)

    scenes = search_scenes(make_source(stac_server.url, max_search_vertices=100), star_wgs84, 2023, max_cloud=20)

    sent = shapely.geometry.shape(stac_server.requests(kind="api", path="/search")[0]["body"]["intersects"])
    assert shapely.get_num_coordinates(sent) <= 100
    assert sent.covers(star_wgs84)
    assert _ids(scenes) == ["A_2023", "B_2023", "C_2023"]


def test_search_geometry_keeps_simple_boundaries_exact():
    simple = boundary_wgs84()
    assert search_geometry(simple, 500) is simple


def test_transient_search_failures_are_retried(stac_catalogue, tmp_path):
    with SampleStacServer(stac_catalogue, log=tmp_path / "log.jsonl", fail_search=2) as server:
        scenes = search_scenes(make_source(server.url, retries=3), boundary_wgs84(), 2022, max_cloud=20)
        statuses = [r["status"] for r in server.requests(kind="api", path="/search")]

    assert _ids(scenes) == ["G_2022"]
    assert statuses == [503, 503, 200]


def test_unreachable_stac_api_is_a_storage_error_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(StorageError, match=f"STAC API at {url}"):
        search_scenes(make_source(url, retries=1), boundary_wgs84(), 2023, max_cloud=20)


def test_persistent_search_failures_end_in_a_storage_error(stac_catalogue, tmp_path):
    with SampleStacServer(stac_catalogue, log=tmp_path / "log.jsonl", fail_search=100) as server:
        with pytest.raises(StorageError, match="did not answer the search"):
            search_scenes(make_source(server.url, retries=1), boundary_wgs84(), 2023, max_cloud=20)
        assert len(server.requests(kind="api", path="/search")) == 2  # the request and one retry


@pytest.mark.parametrize("years, expected", [("2019, 2024", (2019, 2024)), ([2024, "2019", 2024], (2019, 2024)), (2021, (2021,))])
def test_years_parse_from_text_and_lists(years, expected):
    assert parse_years(years) == expected


@pytest.mark.parametrize("years", ["20x9", "1999", "2019, 3024", "", "19"])
def test_invalid_years_are_query_errors(years):
    with pytest.raises(QueryError, match="year"):
        parse_years(years)


@pytest.mark.parametrize("max_cloud", [0, -5, 101, "20"])
def test_invalid_cloud_threshold_is_a_query_error(max_cloud):
    with pytest.raises(QueryError, match="cloud-cover threshold"):
        search_scenes(make_source("http://127.0.0.1:9"), boundary_wgs84(), 2023, max_cloud=max_cloud)


def test_boundary_in_projected_coordinates_is_refused_before_searching():
    with pytest.raises(QueryError, match="EPSG:4326"):
        search_scenes(make_source("http://127.0.0.1:9"), BOUNDARY, 2023, max_cloud=20)


def test_shipped_configuration_is_earth_search_with_the_documented_defaults():
    source = load_stac_source(DEFAULT_CONFIG)
    assert source.url == "https://earth-search.aws.element84.com/v1"
    assert source.collection == "sentinel-2-c1-l2a"
    assert source.asset_keys == {"red": "red", "nir": "nir", "scl": "scl"}
    assert source.cloud_property == "eo:cloud_cover"
    assert source.scl_mask_classes == (0, 1, 3, 8, 9, 10)
    assert source.offset_policy == "auto"
    assert source.gdal_options["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    assert default_stac_source(collection="sentinel-2-l2a").collection == "sentinel-2-l2a"


@pytest.mark.parametrize("block, message", [
    ("  colection: x\n", "unknown key stac.colection"),
    ("  page_size: many\n", "stac.page_size .* must be int"),
    ("  offset_policy: guess\n", "stac.offset_policy"),
    ("  assets: {red: B04, swir: B11}\n", "stac.assets"),
    ("  scl_mask_classes: [3, 12]\n", "stac.scl_mask_classes"),
    ("  url: ftp://example.org\n", "stac.url"),
])
def test_configuration_errors_name_the_file_and_the_key(tmp_path, block, message):
    path = tmp_path / "stac.yaml"
    url = "" if block.lstrip().startswith("url:") else "  url: https://example.org/v1\n"  # a key given twice is an error of its own
    path.write_text("stac:\n" + url + block, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message) as error:
        load_stac_source(path)
    assert str(path) in str(error.value)


def test_configuration_sets_asset_keys_and_mask_classes(tmp_path):
    path = tmp_path / "stac.yaml"
    path.write_text(json.dumps({"stac": {"url": "https://example.org/v1", "collection": "s2", "assets": {"red": "B04", "nir": "B08", "scl": "SCL"},
                                         "scl_mask_classes": [3, 8, 9], "offset_policy": "baseline", "gdal": {"GDAL_CACHEMAX": 64}}}), encoding="utf-8")
    source = load_stac_source(path)
    assert source.asset_keys == {"red": "B04", "nir": "B08", "scl": "SCL"}
    assert source.scl_mask_classes == (3, 8, 9) and source.offset_policy == "baseline"
    assert source.gdal_env() == {"GDAL_CACHEMAX": 64, "GDAL_HTTP_TIMEOUT": 30, "GDAL_HTTP_CONNECTTIMEOUT": 30}


def test_gdal_http_timeouts_follow_timeout_s_unless_the_configuration_sets_them():
    source = StacSource(url="https://example.org/v1", collection="s2", timeout_s=2.5)
    assert source.gdal_env() == {"GDAL_HTTP_TIMEOUT": 3, "GDAL_HTTP_CONNECTTIMEOUT": 3}
    own = source.with_changes(gdal_options={"GDAL_HTTP_TIMEOUT": "120"})
    assert own.gdal_env() == {"GDAL_HTTP_TIMEOUT": 120, "GDAL_HTTP_CONNECTTIMEOUT": 3}
