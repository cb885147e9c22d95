"""Read ATL08 HDF5 granules into columns of the database layout.

Only the datasets needed are read. Float fill values (3.4028235e+38 and the
other ``_FillValue``s) become NaN so that they never reach a user as a height.
A variable the file lacks (a variable subset, an earlier release) is stored as fill
(``granule_layout``); times count from the file's ``atlas_sdp_gps_epoch``, or the product's.
Rows whose coordinates, time or segment id are unusable are marked here (NaN, ``INVALID_TIME``,
``INVALID_SEGMENT_ID``) and dropped before writing by ``segment_checks``; a beam whose
datasets disagree in length makes the whole granule unreadable (a GranuleError naming it).
"""

import datetime as dt
import re
from pathlib import Path
from typing import Dict, Iterable, Optional

import numpy as np

from ...errors import GranuleError
from .catalogue import catalogue
from .granule_identity import NOT_ATL08, beams_of, core_datasets, open_granule, orbit_of
from .granule_layout import PRODUCT_EPOCH_NS, absent_variables, epoch_ns, fill_column
from .schema import BEAM_NUMBERS, attribute_dtypes, encode_segment_id

ATLAS_EPOCH_NS = PRODUCT_EPOCH_NS  # 2018-01-01T00:00:00 UTC, what delta_time counts from

NS_PER_DAY = np.int64(86_400 * 1_000_000_000)
INVALID_TIME = np.iinfo(np.int64).min  # timestamp_ns and time of a row without a valid delta_time
INVALID_SEGMENT_ID = np.int64(-1)  # segment_id of a row whose segment_id_beg is a fill or out of range
MAX_DELTA_TIME_S = 5e9  # seconds since 2018 (158 years): in nanoseconds it still fits an int64
GRANULE_NAME = re.compile(r"ATL08_(\d{4})(\d{2})(\d{2})(\d{6})_(\d{4})(\d{2})(\d{2})_(\d{3})_(\d{2})\.h5$")


def _reference_keep(land, n: int) -> np.ndarray:
    """The reference package's ingest filters: a canopy height and its uncertainty, no urban
    or water segment. Bare ground and water are dropped, which is why they are off by default;
    so is a segment whose file lacks one of these four (it cannot show that it passes)."""
    fill = np.finfo(np.float32).max

    def values(relative, absent):
        return land[relative][:] if relative in land else np.full(n, absent)

    return (
        (values("canopy/h_canopy", fill) < fill)
        & (values("canopy/h_canopy_uncertainty", fill) < fill)
        & (values("urban_flag", -1) == 0)
        & (values("segment_watermask", -1) == 0)
    )


def granule_date(path) -> Optional[dt.date]:
    """Acquisition date from an NSIDC file name, or None for other names."""
    match = GRANULE_NAME.search(Path(path).name)
    if not match:
        return None
    return dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))


def _columns_for(attributes: Optional[Iterable[str]]):
    """Map the wanted attribute names to (variable, [(column index or None, attribute)])."""
    dtypes = attribute_dtypes()
    wanted = set(dtypes) if attributes is None else set(attributes)
    plan = {}
    for variable in catalogue().values():
        if variable.is_derived:
            continue
        names = variable.attribute_names
        chosen = [(None if variable.kind == "scalar" else i, name) for i, name in enumerate(names) if name in wanted]
        if chosen:
            plan[variable] = chosen
    return plan


def _as_column(values: np.ndarray, dtype: np.dtype, fill) -> np.ndarray:
    if dtype.kind == "f":
        values = values.astype(dtype, copy=False)
        invalid = ~np.isfinite(values) | (values >= np.finfo(np.float32).max)
        if fill is not None:
            invalid |= values == np.asarray(fill).astype(dtype)
        if invalid.any():
            values = values.copy()
            values[invalid] = np.nan
        return values
    return values.astype(dtype, copy=False)


def _segment_ids(dataset, rgt: int, cycle: int, beam_number: int) -> np.ndarray:
    """The public layout's segment ids; ``INVALID_SEGMENT_ID`` where ``segment_id_beg`` is a fill
    or does not fit the layout's 32 bits (it would corrupt the rgt, cycle and beam bits)."""
    raw = dataset[:].astype(np.int64)
    fill = dataset.attrs.get("_FillValue")
    valid = (raw >= 0) & (raw <= 0xFFFFFFFF)
    if fill is not None:
        valid &= raw != np.int64(np.asarray(fill).item())
    return np.where(valid, encode_segment_id(rgt, cycle, beam_number, np.where(valid, raw, 0)), INVALID_SEGMENT_ID)


def read_granule(path, attributes: Optional[Iterable[str]] = None, reference_filters: bool = False) -> Dict[str, np.ndarray]:
    """All beams of one granule as columns: coordinates, ``time``, ``timestamp_ns``,
    ``segment_id``, ``beam_id`` and the wanted attributes (all when ``attributes`` is None).

    ``reference_filters`` reproduces the reference package's ingest, which drops
    segments without a canopy height (bare ground, water); by default they are kept.
    """
    path = Path(path)
    dtypes = attribute_dtypes()
    plan = _columns_for(attributes)
    h5 = open_granule(path)
    try:
        with h5:
            beams = beams_of(h5)
            if not beams:
                raise GranuleError(f"{path.name}: {NOT_ATL08}")
            rgt, cycle = orbit_of(h5, path.name)
            epoch = epoch_ns(h5)
            parts = []
            for beam in beams:
                land = h5[f"{beam}/land_segments"]
                core = core_datasets(land, beam, path.name)
                n = core["latitude"].shape[0] if core["latitude"].shape else 0
                if n == 0:
                    continue
                columns: Dict[str, np.ndarray] = {
                    name: _as_column(core[name][:], np.dtype(np.float64), core[name].attrs.get("_FillValue"))
                    for name in ("latitude", "longitude")
                }
                delta_time = _as_column(core["delta_time"][:], np.dtype(np.float64), core["delta_time"].attrs.get("_FillValue"))
                valid_time = np.isfinite(delta_time) & (np.abs(delta_time) < MAX_DELTA_TIME_S)
                timestamp = np.full(n, INVALID_TIME, dtype=np.int64)
                timestamp[valid_time] = epoch + np.round(delta_time[valid_time] * 1e9).astype(np.int64)
                columns["timestamp_ns"] = timestamp
                columns["time"] = np.where(valid_time, timestamp // NS_PER_DAY, INVALID_TIME)
                columns["segment_id"] = _segment_ids(core["segment_id_beg"], rgt, cycle, BEAM_NUMBERS[beam])
                columns["beam_id"] = np.full(n, beam, dtype=object)
                absent = absent_variables(h5, land)
                for variable, chosen in plan.items():
                    if variable.name in absent:
                        for _, name in chosen:
                            columns[name] = fill_column(dtypes[name], n)
                        continue
                    if variable.is_orbit_info:
                        value = h5[variable.hdf5_path][0]
                        for _, name in chosen:
                            columns[name] = np.full(n, value, dtype=dtypes[name])
                        continue
                    dataset = land[variable.hdf5_path.split("/", 1)[1]]
                    fill = dataset.attrs.get("_FillValue")
                    data = dataset[:]
                    if data.shape[0] != n:
                        raise GranuleError(f"{path.name}: beam {beam} cannot be read consistently: "
                                           f"{variable.hdf5_path} has {data.shape[0]} rows but latitude has {n}")
                    for index, name in chosen:
                        values = data if index is None else data[:, index]
                        columns[name] = _as_column(values, dtypes[name], fill)
                if reference_filters:
                    keep = _reference_keep(land, n)
                    columns = {k: v[keep] for k, v in columns.items()}
                parts.append(columns)
    except GranuleError:
        raise
    except (OSError, KeyError, ValueError, IndexError, RuntimeError) as error:
        raise GranuleError(f"{path.name}: unreadable or truncated ({error})") from None
    if not parts:
        return {}
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
