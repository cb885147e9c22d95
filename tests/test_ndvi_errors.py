"""NDVI composites with bad input: clear errors, the other scenes still used, nothing half-written."""

import numpy as np
import pytest
import rasterio
from shapely.geometry import LineString

from canopy_explorer.plugin.core.errors import Cancelled, QueryError, StorageError
from canopy_explorer.plugin.core.sentinel2.composites import CompositeRequest, build_composite, composite_years
from canopy_explorer.plugin.core.samples.stac_server import SampleStacServer, free_port
from canopy_explorer.plugin.core.sentinel2.stac_search import search_scenes
from stac_fixtures import *  # noqa: F401,F403
from stac_fixtures import BOUNDARY, BOUNDARY_CRS, boundary_wgs84, expected_stack, grid_centres, make_source, year_request


def _files(folder):
    return sorted(p.name for p in folder.iterdir() if p.name != "server") if folder.exists() else []


def test_a_year_whose_scenes_are_all_too_cloudy_says_how_many_and_the_clearest_and_writes_nothing(stac_server, tmp_path):
    with pytest.raises(QueryError) as error:
        composite_years(CompositeRequest.create(make_source(stac_server.url), BOUNDARY, BOUNDARY_CRS, "2022, 2023", 4, tmp_path))
    message = str(error.value)
    # G_2022 has 3 % cloud cover; over the city in 2023 A, B, C and D have 5, 12, 8 and 80 %: only 2023 is empty
    assert "has 4 sentinel-2-c1-l2a scene(s) over this region in 2023" in message, message
    assert "at or above the 4% threshold (the clearest 5%)" in message
    assert "raise the cloud-cover threshold above 5%" in message and "2022" not in message
    assert _files(tmp_path) == []


def test_a_year_without_any_scene_says_so_and_does_not_advise_raising_the_threshold(stac_server, tmp_path):
    with pytest.raises(QueryError) as error:
        composite_years(CompositeRequest.create(make_source(stac_server.url), BOUNDARY, BOUNDARY_CRS, [2018, 2022], 20, tmp_path))
    message = str(error.value)
    assert message == (f"the STAC API at {stac_server.url} has no sentinel-2-c1-l2a scenes over this region in 2018: "
                       "check the region, the years and the collection name")
    assert "cloud" not in message
    assert _files(tmp_path) == []


def test_a_collection_the_catalogue_does_not_have_is_not_blamed_on_clouds(stac_server, tmp_path):
    with pytest.raises(QueryError) as error:
        composite_years(CompositeRequest.create(make_source(stac_server.url, collection="sentinel-2-l2a-typo"), BOUNDARY, BOUNDARY_CRS,
                                                [2023], 50, tmp_path))
    assert "has no sentinel-2-l2a-typo scenes over this region in 2023" in str(error.value)
    assert "threshold" not in str(error.value)


def test_a_region_with_no_place_in_longitude_latitude_is_refused_before_any_search(stac_server, tmp_path):
    from shapely.geometry import box

    far_out = box(-4e7, -3e7, 4e7, 3e7)  # an EPSG:32632 extent zoomed out to the planet: its corners reproject to infinity
    with pytest.raises(QueryError, match="not numbers"):
        composite_years(CompositeRequest.create(make_source(stac_server.url), far_out, BOUNDARY_CRS, [2023], 20, tmp_path))
    assert stac_server.requests() == [] and _files(tmp_path) == []


def test_scene_missing_a_band_is_left_out_and_reported(stac_server, tmp_path):
    source = make_source(stac_server.url)
    found = {s.id: s for s in search_scenes(source, boundary_wgs84(), 2020, max_cloud=20)}
    report = build_composite(year_request(source, 2020, tmp_path), 2020, [found["NONIR_2020"], found["OK_2020"]], tmp_path / "c.tif")

    assert report.scenes_used == ("OK_2020",)
    assert report.scenes_failed == (("NONIR_2020", "no 'nir' asset"),)
    with rasterio.open(report.path) as dataset:
        median = dataset.read(1)
        x, y = grid_centres(dataset.transform, dataset.shape)
        assert dataset.tags()["SCENES_FAILED"] == "NONIR_2020"
    np.testing.assert_allclose(median, expected_stack(["OK_2020"], x, y)[0], rtol=2e-6, atol=2e-7, equal_nan=True)


def test_unreachable_asset_is_retried_then_reported_and_the_other_scenes_used(stac_catalogue, tmp_path):
    with SampleStacServer(stac_catalogue, log=tmp_path / "log.jsonl", fail_asset_pattern="BROKEN_2020/red") as server:
        source = make_source(server.url, retries=2)
        found = search_scenes(source, boundary_wgs84(), 2020, max_cloud=20)
        found = [s for s in found if s.id != "NONIR_2020"]
        lines = []
        report = build_composite(year_request(source, 2020, tmp_path), 2020, found, tmp_path / "c.tif", log=lines.append)
        broken = [r for r in server.requests(kind="asset") if "BROKEN_2020/red" in r["path"]]

    assert report.scenes_used == ("OK_2020",)
    assert [scene_id for scene_id, _ in report.scenes_failed] == ["BROKEN_2020"]
    reason = report.scenes_failed[0][1]
    assert "BROKEN_2020/red.tif" in reason and "3 attempts" in reason
    assert len(broken) >= 3 and all(r["status"] == 503 for r in broken)
    assert any("BROKEN_2020: left out" in line for line in lines)
    assert "could not be read: BROKEN_2020" in report.summary()
    with rasterio.open(report.path) as dataset:
        x, y = grid_centres(dataset.transform, dataset.shape)
        np.testing.assert_allclose(dataset.read(1), expected_stack(["OK_2020"], x, y)[0], rtol=2e-6, atol=2e-7, equal_nan=True)


def test_when_no_scene_can_be_read_it_is_a_storage_error_and_no_file(stac_catalogue, tmp_path):
    with SampleStacServer(stac_catalogue, fail_asset_pattern="/scenes/") as server:
        source = make_source(server.url, retries=0)
        found = search_scenes(source, boundary_wgs84(), 2023, max_cloud=20)
        with pytest.raises(StorageError, match="none of the 3 scene"):
            build_composite(year_request(source, 2023, tmp_path), 2023, found, tmp_path / "c.tif")
    assert _files(tmp_path) == []


def test_unreachable_stac_api_fails_before_writing(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StorageError, match=url):
        composite_years(CompositeRequest.create(make_source(url, retries=0), BOUNDARY, BOUNDARY_CRS, [2023], 20, tmp_path / "out"))
    assert _files(tmp_path / "out") == []


@pytest.mark.parametrize("years", ["twenty", "1999", "2019, 2o24", ""])
def test_invalid_years_are_refused_before_any_request(stac_server, tmp_path, years):
    with pytest.raises(QueryError, match="year"):
        composite_years(CompositeRequest.create(make_source(stac_server.url), BOUNDARY, BOUNDARY_CRS, years, 20, tmp_path))
    assert stac_server.requests() == []


@pytest.mark.parametrize("crs", [None, "", "EPSG:999999"])
def test_boundary_without_a_usable_crs_is_refused_before_any_request(stac_server, tmp_path, crs):
    with pytest.raises(QueryError, match="coordinate reference system"):
        composite_years(CompositeRequest.create(make_source(stac_server.url), BOUNDARY, crs, [2023], 20, tmp_path))
    assert stac_server.requests() == []


def test_boundary_that_is_not_a_polygon_is_refused(stac_server, tmp_path):
    with pytest.raises(QueryError, match="polygon"):
        composite_years(CompositeRequest.create(make_source(stac_server.url), LineString([(0, 0), (1, 1)]), BOUNDARY_CRS, [2023], 20,
                                                tmp_path))


def test_cancel_leaves_no_file_behind(stac_server, tmp_path):
    source = make_source(stac_server.url)
    found = search_scenes(source, boundary_wgs84(), 2023, max_cloud=20)
    calls = []

    def check_cancel():
        calls.append(1)
        if len(calls) > 2:
            raise Cancelled("cancelled by the user")

    with pytest.raises(Cancelled):
        build_composite(year_request(source, 2023, tmp_path, block_size=32), 2023, found, tmp_path / "c.tif", check_cancel=check_cancel)
    assert _files(tmp_path) == []


def test_cancel_while_writing_leaves_no_file_behind(stac_server, tmp_path):
    """Cancelled in pass 2, after every scene was read: the partial GeoTIFF and the scratch stack go too."""
    source = make_source(stac_server.url)
    found = search_scenes(source, boundary_wgs84(), 2023, max_cloud=20)
    progress = []

    def check_cancel():
        if progress and progress[-1] > 0.85:
            raise Cancelled("cancelled by the user")

    with pytest.raises(Cancelled):
        build_composite(year_request(source, 2023, tmp_path, block_size=32), 2023, found, tmp_path / "c.tif", progress=progress.append,
                        check_cancel=check_cancel)
    assert max(progress) > 0.85
    assert _files(tmp_path) == []


def test_an_existing_composite_is_replaced_only_when_the_new_one_is_complete(stac_server, tmp_path):
    source = make_source(stac_server.url)
    target = tmp_path / "ndvi_composite_2023.tif"
    target.write_bytes(b"previous composite")
    found = search_scenes(source, boundary_wgs84(), 2023, max_cloud=20)

    with pytest.raises(Cancelled):
        build_composite(year_request(source, 2023, target.parent), 2023, found, target,
                        check_cancel=lambda: (_ for _ in ()).throw(Cancelled("stop")))
    assert target.read_bytes() == b"previous composite" and _files(tmp_path) == ["ndvi_composite_2023.tif"]

    build_composite(year_request(source, 2023, target.parent), 2023, found, target)
    with rasterio.open(target) as dataset:
        assert dataset.count == 2


def test_random_server_errors_on_assets_are_retried_and_the_composite_is_exact(stac_catalogue, tmp_path):
    """A fifth of the asset requests answer 500; every read is retried and the pixels are those of a clean run."""
    with SampleStacServer(stac_catalogue) as clean_server:
        source = make_source(clean_server.url)
        found = [s for s in search_scenes(source, boundary_wgs84(), 2020, max_cloud=20) if s.id != "NONIR_2020"]
        clean = build_composite(year_request(source, 2020, tmp_path), 2020, found, tmp_path / "clean.tif")
    with SampleStacServer(stac_catalogue, log=tmp_path / "log.jsonl", fail_rate=0.2, fail_status=500, seed=3) as server:
        source = make_source(server.url, retries=6)
        found = [s for s in search_scenes(source, boundary_wgs84(), 2020, max_cloud=20) if s.id != "NONIR_2020"]
        report = build_composite(year_request(source, 2020, tmp_path), 2020, found, tmp_path / "faulty.tif")
        failures = [r for r in server.requests(kind="asset") if r["status"] == 500]
    assert failures, "no fault was injected"
    assert report.scenes_used == clean.scenes_used and not report.scenes_failed  # seeded: every read got through its retries
    with rasterio.open(report.path) as faulty, rasterio.open(clean.path) as expected:
        np.testing.assert_array_equal(faulty.read(), expected.read())



def test_a_stalled_search_times_out_with_a_clear_error(stac_catalogue, tmp_path):
    import time

    with SampleStacServer(stac_catalogue, stall=20, stall_pattern="search") as server:
        source = make_source(server.url, retries=1, retry_delay_s=0.1, timeout_s=1)
        started = time.monotonic()
        with pytest.raises(StorageError, match=r"did not answer the search .*Read ?Timeout"):
            composite_years(CompositeRequest.create(source, BOUNDARY, BOUNDARY_CRS, [2020], 20, tmp_path / "out"))
        waited = time.monotonic() - started
    assert waited < 15, f"waited {waited:.0f} s: the 20 s stall was not cut off"  # two 1 s attempts and the backoff
    assert not (tmp_path / "out").exists()


def test_an_asset_that_stalls_midway_is_cut_off_retried_then_reported_and_the_other_scenes_used(stac_catalogue, tmp_path):
    """The server answers the first requests for a scene's red band, then stops answering: GDAL's own HTTP
    timeout (the source's timeout_s unless the config sets GDAL_HTTP_TIMEOUT) ends each attempt."""
    import time

    with SampleStacServer(stac_catalogue, log=tmp_path / "log.jsonl", stall=60, stall_pattern="BROKEN_2020/red", stall_after=2) as server:
        source = make_source(server.url, retries=1, retry_delay_s=0.1, timeout_s=2)
        found = [s for s in search_scenes(source, boundary_wgs84(), 2020, max_cloud=20) if s.id != "NONIR_2020"]
        started = time.monotonic()
        report = build_composite(year_request(source, 2020, tmp_path), 2020, found, tmp_path / "c.tif")
        waited = time.monotonic() - started
        answered = [r for r in server.requests(kind="asset") if "BROKEN_2020/red" in r["path"]]

    assert len(answered) >= 2, "the stall did not come after the first reads"
    assert waited < 30, f"waited {waited:.0f} s: the 60 s stall was not cut off"
    assert report.scenes_used == ("OK_2020",)
    assert [scene_id for scene_id, _ in report.scenes_failed] == ["BROKEN_2020"]
    reason = report.scenes_failed[0][1]
    assert "2 attempts" in reason and "BROKEN_2020/red.tif" in reason, reason
    with rasterio.open(report.path) as dataset:
        x, y = grid_centres(dataset.transform, dataset.shape)
        np.testing.assert_allclose(dataset.read(1), expected_stack(["OK_2020"], x, y)[0], rtol=2e-6, atol=2e-7, equal_nan=True)
