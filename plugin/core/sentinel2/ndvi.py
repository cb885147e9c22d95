"""NDVI from Sentinel-2 L2A digital numbers: reflectance, the baseline offset, the SCL cloud mask.

Pure numpy, no I/O. Sentinel-2 L2A stores surface reflectance as integer digital
numbers (DN): ``reflectance = DN * scale + offset``. Since processing baseline
04.00 (January 2022, and the whole reprocessed Collection 1) ESA adds 1000 to
every DN so that dark surfaces keep negative reflectances, which makes the offset
-0.1; products of older baselines have offset 0. STAC catalogues publish scale and
offset per asset in ``raster:bands``, but not every catalogue gets the offset right,
so the rule is written down here once (:func:`baseline_offset`) and the policy that
chooses between the catalogue's value and the rule is explicit (:func:`band_scaling`).
An offset error does not cancel out of NDVI: 0.1 of reflectance moves a typical
vegetation NDVI by 0.1 or more.
"""

from typing import Iterable, Optional, Tuple

import numpy as np

from ..errors import ConfigurationError

DEFAULT_SCALE = 0.0001
BASELINE_OFFSET = -0.1
OFFSET_SINCE_BASELINE = (4, 0)
# Scene classification (SCL) classes that are not clear ground: 0 no data, 1 saturated or
# defective, 3 cloud shadow, 8 cloud medium probability, 9 cloud high probability, 10 thin cirrus.
DEFAULT_SCL_MASK_CLASSES = (0, 1, 3, 8, 9, 10)
OFFSET_POLICIES = ("auto", "baseline", "none")


def parse_baseline(baseline) -> Optional[Tuple[int, int]]:
    """``"05.00"`` -> (5, 0); None when the baseline is missing or not of that form."""
    if baseline is None:
        return None
    text = str(baseline).strip()
    try:
        major, _, minor = text.partition(".")
        return int(major), int(minor or 0)
    except ValueError:
        return None


def baseline_offset(baseline) -> float:
    """The reflectance offset ESA applies for a processing baseline: -0.1 from 04.00 on, 0 before.

    ``baseline`` is the ``s2:processing_baseline`` text ("02.14", "05.00") or a (major, minor)
    tuple. An unknown baseline raises: guessing would silently bias every NDVI value.
    """
    parsed = baseline if isinstance(baseline, tuple) else parse_baseline(baseline)
    if parsed is None:
        raise ConfigurationError(f"unknown Sentinel-2 processing baseline {baseline!r}: cannot tell the reflectance offset")
    return BASELINE_OFFSET if tuple(parsed) >= OFFSET_SINCE_BASELINE else 0.0


def band_scaling(listed_scale: Optional[float], listed_offset: Optional[float], baseline, policy: str = "auto") -> Tuple[float, float]:
    """(scale, offset) to turn DN into reflectance for one asset.

    ``listed_*`` come from the asset's ``raster:bands`` (None when absent). Policies:

    * ``auto``: the catalogue's values; where the offset is not listed, the baseline rule;
    * ``baseline``: the scale listed (or 0.0001) and the offset from the baseline rule,
      whatever the catalogue says (for catalogues known to mislabel it);
    * ``none``: the scale listed (or 0.0001) and no offset (for DN already harmonised).
    """
    if policy not in OFFSET_POLICIES:
        raise ConfigurationError(f"offset policy must be one of {', '.join(OFFSET_POLICIES)}, not {policy!r}")
    scale = DEFAULT_SCALE if listed_scale is None else float(listed_scale)
    if policy == "none":
        return scale, 0.0
    if policy == "baseline" or listed_offset is None:
        return scale, baseline_offset(baseline)
    return scale, float(listed_offset)


def reflectance(dn: np.ndarray, scale: float, offset: float, nodata=None) -> np.ndarray:
    """Surface reflectance (float32) from DN; NaN where the DN is the nodata value."""
    values = dn.astype(np.float32) * np.float32(scale) + np.float32(offset)
    if nodata is not None:
        values[dn == nodata] = np.nan
    return values


def cloud_mask(scl: np.ndarray, classes: Iterable[int] = DEFAULT_SCL_MASK_CLASSES) -> np.ndarray:
    """True where the scene classification says the pixel is not clear (cloud, shadow, no data...)."""
    return np.isin(scl, np.asarray(list(classes), dtype=scl.dtype if scl.dtype.kind in "iu" else np.int64))


def ndvi(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """(nir - red) / (nir + red) in float32; NaN where either band is NaN or the sum is 0."""
    red = np.asarray(red, dtype=np.float32)
    nir = np.asarray(nir, dtype=np.float32)
    total = nir + red
    with np.errstate(divide="ignore", invalid="ignore"):
        values = (nir - red) / total
    values[total == 0] = np.nan
    return values


def median_and_count(stack: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per-pixel median of the finite values along axis 0, and how many there were.

    Sorting puts NaN last, so the median of the ``count`` valid values sits at positions
    (count - 1) // 2 and count // 2: much faster than ``np.nanmedian`` for the few to few
    hundred scenes of a year, and exact (the mean of the two middle values when even).
    """
    if stack.shape[0] == 0:
        shape = stack.shape[1:]
        return np.full(shape, np.nan, dtype=np.float32), np.zeros(shape, dtype=np.float32)
    ordered = np.sort(stack, axis=0)
    count = np.isfinite(ordered).sum(axis=0)
    low = np.take_along_axis(ordered, np.maximum((count - 1) // 2, 0)[None], axis=0)[0]
    high = np.take_along_axis(ordered, np.maximum(count // 2, 0)[None], axis=0)[0]
    median = ((low.astype(np.float64) + high) / 2).astype(np.float32)
    median[count == 0] = np.nan
    return median, count.astype(np.float32)
