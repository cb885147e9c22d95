"""How an ATL08 file differs from the layout the database stores: which variables it lacks, which
product release it is, and the epoch its times count from.

Few people hold whole v7 granules. Subsetting services (NSIDC/Harmony, icepyx and earthaccess orders
with a variable list) keep only the datasets asked for and often drop ``ancillary_data``; granules of
earlier releases lack what later ones added (the terrain and canopy quality scores,
``te_quality_score`` and ``can_quality_score``, came with release 007). Such a file is read all the
same: a variable it lacks is stored as fill (NaN for floats, the dtype's ATL08 fill value -- its
largest value -- for integers) and named in the ingest report. Only the core is required: each
beam's ``latitude``, ``longitude``, ``delta_time`` and ``segment_id_beg``, and ``orbit_info/rgt`` and
``orbit_info/cycle_number``, without which no segment id can be built (``granule_identity``).
"""

import re
from typing import Dict, Optional

import numpy as np

from .catalogue import catalogue

# ancillary_data/atlas_sdp_gps_epoch is "the number of GPS seconds between the GPS epoch
# (1980-01-06T00:00:00 UTC) and the ATLAS Standard Data Product epoch (2018-01-01T00:00:00 UTC)";
# delta_time counts from the latter. Files that lost ancillary_data fall back to the value the
# product defines.
ATLAS_SDP_GPS_EPOCH_S = 1198800018.0
GPS_EPOCH_UNIX_S = 315964800  # 1980-01-06T00:00:00 UTC in seconds since 1970
# GPS time runs ahead of UTC by the leap seconds since 1980: 18 from 2017-01-01, none added since.
GPS_UTC_LEAP_SECONDS = 18
PRODUCT_EPOCH_NS = np.int64((GPS_EPOCH_UNIX_S + int(ATLAS_SDP_GPS_EPOCH_S) - GPS_UTC_LEAP_SECONDS) * 1_000_000_000)
EPOCH_PATH = "ancillary_data/atlas_sdp_gps_epoch"
RELEASE_PATH = "ancillary_data/release"
# ATL08_<yyyymmddhhmmss>_<rgt cycle region>_<release>_<version>, also inside longer names such as
# processed_ATL08_..._006_01.h5 or ..._006_01_subsetted.h5
FILE_NAME_RELEASE = re.compile(r"ATL08_\d{14}_\d{8}_(\d{3})_\d{2}")


def epoch_ns(h5) -> np.int64:
    """The instant ``delta_time`` counts from, in nanoseconds since 1970 (UTC): the file's
    ``atlas_sdp_gps_epoch`` when it has a usable one, otherwise the product's (2018-01-01T00:00:00)."""
    if EPOCH_PATH not in h5:
        return PRODUCT_EPOCH_NS
    try:
        seconds = float(np.asarray(h5[EPOCH_PATH][()]).ravel()[0])
    except (IndexError, TypeError, ValueError, OSError):
        return PRODUCT_EPOCH_NS
    if not (np.isfinite(seconds) and 0 < seconds < 1e10):  # a fill value
        return PRODUCT_EPOCH_NS
    whole = int(seconds)  # in integers: a float of nanoseconds since 1970 would lose the last few hundred
    return np.int64((GPS_EPOCH_UNIX_S + whole - GPS_UTC_LEAP_SECONDS) * 1_000_000_000 + round((seconds - whole) * 1e9))


def _text(value) -> str:
    value = np.asarray(value).ravel()
    if not len(value):
        return ""
    item = value[0]
    return (item.decode(errors="replace") if isinstance(item, bytes) else str(item)).strip()


def _release(text: str) -> str:
    """``"006"`` from ``"006"``, ``"6"`` or ``"006 "``; "" for anything else."""
    return f"{int(text):03d}" if text.isdigit() and 0 < int(text) < 1000 else ""


def product_release(h5, file_name: str) -> str:
    """The product release (``"006"``, ``"007"``) as the file states it: ``ancillary_data/release``,
    else ``METADATA/DatasetIdentification``'s ``VersionID``, else the release part of an NSIDC file
    name; "" when none says. (``identifier_product_format_version`` is the format's version, not the
    release.)"""
    try:
        if RELEASE_PATH in h5:
            found = _release(_text(h5[RELEASE_PATH][()]))
            if found:
                return found
        identification = h5.get("METADATA/DatasetIdentification")
        if identification is not None and "VersionID" in identification.attrs:
            found = _release(_text(identification.attrs["VersionID"]))
            if found:
                return found
    except (OSError, KeyError, TypeError, ValueError):
        pass  # a damaged metadata item is no reason to refuse the data; the name may still say
    match = FILE_NAME_RELEASE.search(file_name)
    return match.group(1) if match else ""


def absent_variables(h5, land) -> Dict[str, str]:
    """Catalogue variables one beam's ``land_segments`` (and the file's ``orbit_info``) cannot supply,
    by name: "" when the dataset is absent, or why it cannot be stored as it is (a profile whose
    width differs from the database's)."""
    absent: Dict[str, str] = {}
    for variable in catalogue().values():
        if variable.is_derived:
            continue
        if variable.is_orbit_info:
            if variable.hdf5_path not in h5:
                absent[variable.name] = ""
            continue
        dataset = land.get(variable.hdf5_path.split("/", 1)[1])
        if dataset is None:
            absent[variable.name] = ""
        elif variable.kind != "scalar":
            width = dataset.shape[1] if len(dataset.shape) == 2 else None
            if width != variable.length:
                absent[variable.name] = f"{width or 1} column{'s' if width != 1 else ''} where the database has {variable.length}"
    return absent


def fill_column(dtype: np.dtype, rows: int) -> np.ndarray:
    """``rows`` fill values of ``dtype``: NaN for floats, the largest value (ATL08's integer fill) otherwise."""
    dtype = np.dtype(dtype)
    value: Optional[object] = np.nan if dtype.kind == "f" else np.iinfo(dtype).max
    return np.full(rows, value, dtype=dtype)


def describe_absent(absent: Dict[str, str]) -> str:
    """``"can_quality_score, canopy_h_metrics (9 columns where the database has 18)"``."""
    return ", ".join(f"{name} ({why})" if why else name for name, why in absent.items())
