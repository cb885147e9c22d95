"""NDVI arithmetic: reflectance from DN, the processing-baseline offset, the SCL mask, the median."""

import numpy as np
import pytest

from canopy_explorer.plugin.core.errors import ConfigurationError
from canopy_explorer.plugin.core.sentinel2.ndvi import band_scaling, baseline_offset, cloud_mask, median_and_count, ndvi, reflectance


def test_reflectance_is_dn_times_scale_plus_offset_and_nodata_becomes_nan():
    dn = np.array([[0, 1000, 1500], [2500, 11000, 65535]], dtype=np.uint16)
    values = reflectance(dn, 0.0001, -0.1, nodata=0)
    assert values.dtype == np.float32
    assert np.isnan(values[0, 0])
    np.testing.assert_allclose(values.ravel()[1:], [0.0, 0.05, 0.15, 1.0, 6.4535], atol=1e-6)


@pytest.mark.parametrize("baseline, offset", [("02.14", 0.0), ("03.01", 0.0), ("04.00", -0.1), ("05.00", -0.1), ("05.10", -0.1), ((4, 0), -0.1)])
def test_offset_is_minus_a_tenth_from_baseline_04_00_on(baseline, offset):
    assert baseline_offset(baseline) == offset


def test_unknown_baseline_is_refused_rather_than_guessed():
    with pytest.raises(ConfigurationError, match="processing baseline"):
        baseline_offset("N/A")
    with pytest.raises(ConfigurationError):
        baseline_offset(None)


def test_scaling_policies_choose_between_the_catalogue_and_the_baseline_rule():
    # a mislabelled 05.00 asset: raster:bands lists offset 0
    assert band_scaling(0.0001, 0.0, "05.00", "auto") == (0.0001, 0.0)
    assert band_scaling(0.0001, 0.0, "05.00", "baseline") == (0.0001, -0.1)
    assert band_scaling(0.0001, -0.1, "05.00", "none") == (0.0001, 0.0)
    # nothing listed: the rule fills in, scale defaults to 0.0001
    assert band_scaling(None, None, "05.00", "auto") == (0.0001, -0.1)
    assert band_scaling(None, None, "02.14", "auto") == (0.0001, 0.0)
    with pytest.raises(ConfigurationError, match="offset policy"):
        band_scaling(0.0001, 0.0, "05.00", "guess")


def test_same_reflectance_gives_same_ndvi_on_both_baselines():
    red_reflectance, nir_reflectance = np.array([0.0312, 0.05]), np.array([0.2871, 0.41])
    old = ndvi(reflectance(np.round(red_reflectance / 1e-4).astype(np.uint16), *band_scaling(1e-4, 0.0, "02.14")),
               reflectance(np.round(nir_reflectance / 1e-4).astype(np.uint16), *band_scaling(1e-4, 0.0, "02.14")))
    new = ndvi(reflectance(np.round((red_reflectance + 0.1) / 1e-4).astype(np.uint16), *band_scaling(1e-4, -0.1, "05.00")),
               reflectance(np.round((nir_reflectance + 0.1) / 1e-4).astype(np.uint16), *band_scaling(1e-4, -0.1, "05.00")))
    expected = (nir_reflectance - red_reflectance) / (nir_reflectance + red_reflectance)
    np.testing.assert_allclose(old, expected, rtol=1e-5)
    np.testing.assert_allclose(new, expected, rtol=1e-5)


def test_ndvi_is_float32_and_invalid_where_a_band_is_missing_or_the_sum_is_zero():
    red = np.array([0.05, np.nan, 0.1, 0.2, -0.05], dtype=np.float32)
    nir = np.array([0.45, 0.3, np.nan, -0.2, 0.05], dtype=np.float32)
    values = ndvi(red, nir)
    assert values.dtype == np.float32
    assert values[0] == pytest.approx(0.8)
    assert np.isnan(values[1:]).all()


@pytest.mark.parametrize("classes", [(0, 1, 3, 8, 9, 10), (9,)])
def test_cloud_mask_flags_exactly_the_configured_scl_classes(classes):
    scl = np.arange(12, dtype=np.uint8).reshape(3, 4)
    mask = cloud_mask(scl, classes)
    assert sorted(scl[mask].tolist()) == sorted(classes)


def test_median_and_count_agree_with_numpy_on_gappy_stacks():
    rng = np.random.default_rng(3)
    stack = rng.uniform(-1, 1, size=(7, 40, 30)).astype(np.float32)
    stack[rng.random(stack.shape) < 0.4] = np.nan
    stack[:, 0, 0] = np.nan  # no observation at all
    stack[:, 0, 1] = [np.nan, 0.2, np.nan, 0.4, np.nan, np.nan, np.nan]  # even count: mean of the middle two
    median, count = median_and_count(stack)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmedian(stack.astype(np.float64), axis=0)
    np.testing.assert_allclose(median, expected, rtol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(count, np.isfinite(stack).sum(axis=0))
    assert np.isnan(median[0, 0]) and count[0, 0] == 0
    assert median[0, 1] == pytest.approx(0.3)


def test_median_of_three_scenes_is_the_middle_one():
    stack = np.array([[[0.7]], [[0.2]], [[0.5]]], dtype=np.float32)
    median, count = median_and_count(stack)
    assert median[0, 0] == pytest.approx(0.5) and count[0, 0] == 3
