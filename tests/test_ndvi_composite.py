"""NDVI median composites from synthetic COG scenes served over HTTP by a loopback STAC API.

Expected values come from the scenes' reflectance functions (``stac_fixtures.expected_stack``),
never from the engine's own arithmetic.
"""

import numpy as np
import pytest
import rasterio

from canopy_explorer.plugin.core.sentinel2.composites import CompositeRequest, build_composite, composite_years
from canopy_explorer.plugin.core.sentinel2.stac_search import search_scenes
from stac_fixtures import *  # noqa: F401,F403
from stac_fixtures import BOUNDARY, BOUNDARY_CRS, X0, Y0, boundary_wgs84, expected_stack, grid_centres, make_source, year_request


def scenes(server, year, ids, **source_changes):
    found = {s.id: s for s in search_scenes(make_source(server.url, **source_changes), boundary_wgs84(), year, max_cloud=50)}
    return [found[i] for i in ids]


def composite(server, tmp_path, year, ids, name="out.tif", block_size=64, **source_changes):
    """Small blocks (64 pixels) so that every composite here spans several blocks."""
    source = make_source(server.url, **source_changes)
    report = build_composite(year_request(source, year, tmp_path, block_size=block_size), year, scenes(server, year, ids), tmp_path / name)
    with rasterio.open(report.path) as dataset:
        median, count = dataset.read(1), dataset.read(2)
        transform, shape = dataset.transform, dataset.shape
    x, y = grid_centres(transform, shape)
    return report, median, count, x, y


def test_single_scene_ndvi_is_exact_inside_the_boundary_and_nan_outside(stac_server, tmp_path):
    report, median, count, x, y = composite(stac_server, tmp_path, 2023, ["A_2023"])

    expected = expected_stack(["A_2023"], x, y)[0]
    np.testing.assert_allclose(median, expected, rtol=2e-6, atol=2e-7, equal_nan=True)
    assert np.isfinite(median).sum() > 20_000
    outside = np.isnan(expected_stack(["A_2023"], x, y, mask_classes=())[0])
    assert np.isnan(count[outside]).all() and (count[~outside] == 1).all()
    assert report.scenes_used == ("A_2023",) and report.scenes_failed == ()


def test_median_across_scenes_and_observation_count(stac_server, tmp_path):
    ids = ["A_2023", "B_2023", "C_2023"]
    report, median, count, x, y = composite(stac_server, tmp_path, 2023, ids)

    stack = expected_stack(ids, x, y)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmedian(stack, axis=0)
    np.testing.assert_allclose(median, expected, rtol=2e-6, atol=2e-7, equal_nan=True)
    inside = ~np.isnan(expected_stack(["A_2023"], x, y, mask_classes=())[0])
    np.testing.assert_array_equal(count[inside], np.isfinite(stack).sum(axis=0)[inside])
    # all three counts occur: 3 in the west, 2 in the east (C ends at X0 + 1500), fewer under B's clouds
    assert {1.0, 2.0, 3.0} <= set(np.unique(count[inside]).tolist())
    # where all three scenes see the ground, the median is the middle scene's value (nir +0.03: B)
    three = count == 3
    np.testing.assert_allclose(median[three], stack[1][three], rtol=2e-6)
    assert report.scenes_used == tuple(ids)


def test_cloud_and_shadow_pixels_are_masked_by_scl(stac_server, tmp_path):
    _, masked, masked_count, x, y = composite(stac_server, tmp_path, 2023, ["B_2023"], name="masked.tif")
    _, unmasked, _, _, _ = composite(stac_server, tmp_path, 2023, ["B_2023"], name="unmasked.tif", scl_mask_classes=(0,))

    in_cloud = (x > X0 + 1500) & (x < X0 + 2000) & (y > Y0 + 2500) & (y < Y0 + 3000)
    in_shadow = (x > X0 + 600) & (x < X0 + 1000) & (y > Y0 + 2200) & (y < Y0 + 2600)
    inside = np.isfinite(unmasked)
    assert (in_cloud & inside).sum() > 1000 and (in_shadow & inside).sum() > 500
    assert np.isnan(masked[in_cloud & inside]).all() and (masked_count[in_cloud & inside] == 0).all()
    assert np.isnan(masked[in_shadow & inside]).all()
    # without the mask the bright cloud tops come through with their own NDVI
    np.testing.assert_allclose(unmasked[in_cloud & inside], (0.6 - 0.55) / (0.6 + 0.55), rtol=1e-5)
    np.testing.assert_allclose(unmasked, expected_stack(["B_2023"], x, y, mask_classes=(0,))[0], rtol=2e-6, atol=2e-7, equal_nan=True)


def test_partial_footprint_contributes_only_where_it_has_data(stac_server, tmp_path):
    _, median, count, x, y = composite(stac_server, tmp_path, 2023, ["C_2023"])

    inside = np.isfinite(count)
    east = x > X0 + 1500
    assert (east & inside).any() and (~east & inside).any()
    assert (count[east & inside] == 0).all() and np.isnan(median[east & inside]).all()
    assert (count[~east & inside] == 1).all()
    np.testing.assert_allclose(median, expected_stack(["C_2023"], x, y)[0], rtol=2e-6, atol=2e-7, equal_nan=True)


def test_both_processing_baselines_give_the_same_ndvi_for_the_same_reflectance(stac_server, tmp_path):
    _, old, _, x, y = composite(stac_server, tmp_path, 2021, ["OLD_2021"], name="old.tif")
    _, new, _, _, _ = composite(stac_server, tmp_path, 2021, ["NEW_2021"], name="new.tif")

    np.testing.assert_allclose(new, old, rtol=2e-6, atol=2e-7, equal_nan=True)
    np.testing.assert_allclose(new, expected_stack(["NEW_2021"], x, y)[0], rtol=2e-6, atol=2e-7, equal_nan=True)


def test_mislabelled_offset_is_corrected_by_the_baseline_policy(stac_server, tmp_path):
    _, trusting, _, x, y = composite(stac_server, tmp_path, 2021, ["MISLABELLED_2021"], name="auto.tif")
    _, corrected, _, _, _ = composite(stac_server, tmp_path, 2021, ["MISLABELLED_2021"], name="rule.tif", offset_policy="baseline")

    expected = expected_stack(["MISLABELLED_2021"], x, y)[0]
    np.testing.assert_allclose(corrected, expected, rtol=2e-6, atol=2e-7, equal_nan=True)
    # trusting the label adds 0.1 to both bands: NDVI drops by a lot, and the test must see it
    assert np.nanmean(expected - trusting) > 0.1


def test_grid_crs_nodata_and_cloud_optimised_layout(stac_server, tmp_path):
    report, _, _, _, _ = composite(stac_server, tmp_path, 2023, ["A_2023"])

    minx, miny, maxx, maxy = BOUNDARY.bounds
    with rasterio.open(report.path) as dataset:
        assert dataset.crs.to_epsg() == 32632
        assert dataset.transform.a == 10.0 and dataset.transform.e == -10.0
        left, top = np.floor(minx / 10) * 10, np.ceil(maxy / 10) * 10
        assert (dataset.transform.c, dataset.transform.f) == (left, top)
        assert dataset.shape == (int(np.ceil((top - miny) / 10)), int(np.ceil((maxx - left) / 10))) == report.shape
        assert dataset.count == 2 and dataset.dtypes == ("float32", "float32")
        assert np.isnan(dataset.nodata) and all(np.isnan(v) for v in dataset.nodatavals)
        assert dataset.descriptions == ("median_ndvi", "valid_observations")
        assert dataset.overviews(1), "a COG with overviews"
        assert dataset.profile["tiled"] and dataset.profile["compress"] == "deflate"
        assert dataset.tags()["SCENES_USED"] == "A_2023" and dataset.tags()["NDVI_YEAR"] == "2023"
        assert dataset.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    assert report.crs == "EPSG:32632"


def test_boundary_in_degrees_gets_a_utm_grid_and_the_same_values(stac_server, tmp_path):
    source = make_source(stac_server.url)
    utm = build_composite(year_request(source, 2022, tmp_path), 2022, scenes(stac_server, 2022, ["G_2022"]), tmp_path / "utm.tif")
    degrees = build_composite(year_request(source, 2022, tmp_path, boundary=boundary_wgs84(), boundary_crs="EPSG:4326"), 2022,
                              scenes(stac_server, 2022, ["G_2022"]), tmp_path / "deg.tif")

    assert degrees.crs == "EPSG:32632"
    with rasterio.open(utm.path) as a, rasterio.open(degrees.path) as b:
        # the reprojected boundary is the same shape give or take a pixel at the edges
        assert abs(a.width - b.width) <= 1 and abs(a.height - b.height) <= 1
        assert (a.transform.a, b.transform.a) == (10.0, 10.0)
        core_a, core_b = a.read(1)[20:-20, 20:-20], b.read(1)[20:-20, 20:-20]
        dx, dy = int(round((b.transform.c - a.transform.c) / 10)), int(round((a.transform.f - b.transform.f) / 10))
        assert (dx, dy) == (0, 0)
        np.testing.assert_array_equal(core_a, core_b)


def test_an_explicit_output_crs_is_honoured(stac_server, tmp_path):
    source = make_source(stac_server.url)
    report = build_composite(year_request(source, 2022, tmp_path, crs="EPSG:3035", resolution=20.0), 2022,
                             scenes(stac_server, 2022, ["G_2022"]), tmp_path / "laea.tif")
    with rasterio.open(report.path) as dataset:
        assert dataset.crs.to_epsg() == 3035 and dataset.res == (20.0, 20.0)
        values = dataset.read(1)
    finite = values[np.isfinite(values)]
    assert finite.size > 2000 and (-1 <= finite).all() and (finite <= 1).all()


def test_only_the_window_under_the_boundary_is_fetched(stac_server, tmp_path):
    # default blocks: with 64-pixel ones GDAL's read-ahead for sequential reads fetches a little more
    composite(stac_server, tmp_path, 2023, ["A_2023"], block_size=512)

    red = [r for r in stac_server.requests(kind="asset") if r["path"] == "/scenes/A_2023/red.tif"]
    size = (next(stac_server.folder.glob("scenes/A_2023/red.tif"))).stat().st_size
    fetched = sum(r["bytes"] for r in red if r["method"] == "GET")
    assert red and all(r["range"] for r in red if r["method"] == "GET"), "range requests only"
    assert fetched < 0.5 * size, f"{fetched} of {size} bytes fetched"


def test_composite_years_writes_one_named_file_per_year_with_progress(stac_server, tmp_path):
    fractions, lines = [], []
    request = CompositeRequest.create(make_source(stac_server.url), BOUNDARY, BOUNDARY_CRS, "2022, 2023", 20, tmp_path / "out")
    reports = composite_years(request, progress=fractions.append, log=lines.append)

    assert [r.path.name for r in reports] == ["ndvi_composite_2022.tif", "ndvi_composite_2023.tif"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ndvi_composite_2022.tif", "ndvi_composite_2023.tif"]
    assert reports[1].scenes_used == ("A_2023", "B_2023", "C_2023")
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    with rasterio.open(reports[0].path) as dataset:
        assert dataset.tags()["MAX_CLOUD"] == "20"
    assert any("2023: 3 scene(s)" in line for line in lines)


def test_cover_whole_leaves_partial_scenes_out_of_the_composite(stac_server, tmp_path):
    request = CompositeRequest.create(make_source(stac_server.url), BOUNDARY, BOUNDARY_CRS, [2023], 20, tmp_path, cover_whole=True)
    reports = composite_years(request)
    assert reports[0].scenes_used == ("A_2023", "B_2023")


def test_aligned_reads_and_the_warper_give_the_same_composite(stac_server, tmp_path, monkeypatch):
    """Bands on the output lattice are read directly (SCL upsampled by repetition); forcing them
    through the WarpedVRT path must not change a single pixel."""
    from canopy_explorer.plugin.core.sentinel2 import composites as ndvi_composite

    ids = ["A_2023", "B_2023", "C_2023"]
    _, direct, direct_count, _, _ = composite(stac_server, tmp_path, 2023, ids, name="direct.tif")
    calls = []
    original = ndvi_composite._aligned_factor
    monkeypatch.setattr(ndvi_composite, "_aligned_factor", lambda dataset, grid: calls.append(original(dataset, grid)))
    _, warped, warped_count, _, _ = composite(stac_server, tmp_path, 2023, ids, name="warped.tif")

    assert sorted(set(calls)) == [1, 2]  # red and nir at 10 m, SCL at 20 m: all on the lattice
    np.testing.assert_array_equal(direct, warped)
    np.testing.assert_array_equal(direct_count, warped_count)


@pytest.mark.parametrize("positional_io", [True, False], ids=["pread", "seek (Windows)"])
def test_scratch_stack_returns_what_each_scene_wrote(tmp_path, monkeypatch, positional_io):
    from canopy_explorer.plugin.core.sentinel2.composites import CompositeGrid, _SceneStack
    from affine import Affine

    if not positional_io:
        monkeypatch.delattr("os.pread", raising=False)
        monkeypatch.delattr("os.pwrite", raising=False)
    grid = CompositeGrid(crs=None, transform=Affine(10, 0, 0, 0, -10, 0), width=70, height=45)
    blocks = grid.blocks(32)
    stack = _SceneStack(tmp_path / "stack", blocks, slots=3)
    rng = np.random.default_rng(0)
    written = {(b, s): rng.random((int(w.height), int(w.width))).astype(np.float32) for b, w in enumerate(blocks) for s in range(3)}
    for (block, slot), values in written.items():
        stack.write(block, slot, values)
    for block in range(len(blocks)):
        rows = int(blocks[block].height)
        np.testing.assert_array_equal(stack.read(block, [2, 0], 1, rows), np.stack([written[block, 2][1:], written[block, 0][1:]]))
    stack.close()
    assert not (tmp_path / "stack").exists()
