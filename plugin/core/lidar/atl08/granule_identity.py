"""Which granule a file holds, from its content rather than its name.

A granule saved under a second name, or moved to another folder, is the same granule; two
different granules may share a file name. The identity is therefore read from the data:

    atl08-<rgt>-<cycle>-<first segment>-<last segment>-<digest>

where the digest is a BLAKE2b hash of every beam's ``segment_id_beg``, ``latitude``,
``longitude`` and ``delta_time`` as stored in the file (before fill values are dropped, so the
identity does not depend on the database's ranges or the reference filters). Reading these four
datasets costs a fraction of reading the granule, so a re-run recognises every granule
without reading it whole.

The product's own granule id (``identifier_file_uuid`` or ``METADATA/DatasetIdentification``)
is kept beside it for messages, but is not the identity: subsetting services (Harmony, icepyx)
copy it into files that hold only part of the granule, and an edited copy keeps it too, so
keying on it would skip data the database does not have.
"""

import datetime as dt
import hashlib
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from ...errors import GranuleError
from ..granule_identity import GranuleIdentity, identity_key
from .granule_layout import absent_variables, epoch_ns, product_release
from .schema import BEAM_NUMBERS

BEAMS = tuple(BEAM_NUMBERS)
CORE_DATASETS = ("latitude", "longitude", "delta_time", "segment_id_beg")
MAX_RGT = 1387  # reference ground tracks of the ICESat-2 repeat orbit
MAX_CYCLE = 255  # 8 bits of the public layout's segment_id
_UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
NOT_ATL08 = "not an ATL08 granule (no gt*/land_segments or orbit_info)"


def orbit_of(h5, name: str) -> Tuple[int, int]:
    """(rgt, cycle) from ``orbit_info``, checked against what the segment_id layout can hold."""
    if "orbit_info" not in h5:
        raise GranuleError(f"{name}: {NOT_ATL08}")
    for field in ("rgt", "cycle_number"):
        if f"orbit_info/{field}" not in h5:
            raise GranuleError(f"{name}: orbit_info/{field} is missing, and the segment ids cannot be built without it")
    rgt = int(h5["orbit_info/rgt"][0])
    cycle = int(h5["orbit_info/cycle_number"][0])
    if not 1 <= rgt <= MAX_RGT:
        raise GranuleError(f"{name}: orbit_info/rgt is {rgt}, not a reference ground track (1..{MAX_RGT})")
    if not 1 <= cycle <= MAX_CYCLE:
        raise GranuleError(f"{name}: orbit_info/cycle_number is {cycle}, outside 1..{MAX_CYCLE}")
    return rgt, cycle


def open_granule(path: Path):
    """The HDF5 file at ``path``, open for reading, or a GranuleError naming it."""
    import h5py

    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as error:
        raise GranuleError(f"{path.name}: not a readable HDF5 file ({error})") from None


def beams_of(h5) -> list:
    """The beams the file holds (a clip or a subset may hold only some)."""
    return [b for b in BEAMS if f"{b}/land_segments" in h5]


def core_datasets(land, beam: str, name: str, datasets=CORE_DATASETS) -> dict:
    """The beam's core datasets by name; a GranuleError naming them when one is missing or their
    lengths differ (such a beam cannot be read consistently: rows would pair the wrong values)."""
    found = {}
    for dataset in datasets:
        item = land.get(dataset)
        if item is None:
            raise GranuleError(f"{name}: dataset {beam}/land_segments/{dataset} is missing, and no segment can be stored "
                               f"without it ({', '.join(datasets)} are required)")
        found[dataset] = item
    lengths = {dataset: (item.shape[0] if item.shape else 0) for dataset, item in found.items()}
    n = lengths[datasets[0]]
    odd = [f"{d} has {m}" for d, m in lengths.items() if m != n]
    if odd:
        raise GranuleError(
            f"{name}: beam {beam} cannot be read consistently: {', '.join(odd)} rows but {datasets[0]} has {n}"
        )
    return found


def product_id(h5) -> str:
    for holder, attribute in ((h5, "identifier_file_uuid"), (h5.get("METADATA/DatasetIdentification"), "uuid")):
        if holder is not None and attribute in holder.attrs:
            value = holder.attrs[attribute]
            value = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            if value.strip():
                return value.strip()
    return ""


def identify_granule(path) -> GranuleIdentity:
    """The identity of the granule in ``path`` (a GranuleError when it cannot be read consistently)."""
    path = Path(path)
    h5 = open_granule(path)
    try:
        with h5:
            beams = beams_of(h5)
            if not beams:
                raise GranuleError(f"{path.name}: {NOT_ATL08}")
            rgt, cycle = orbit_of(h5, path.name)
            epoch = _UNIX_EPOCH + dt.timedelta(microseconds=int(epoch_ns(h5)) // 1000)
            missing: Dict[str, str] = {}
            digest = hashlib.blake2b(digest_size=16)
            first = last = None
            rows = 0
            ranges = []
            lat_range, lon_range, time_range = [], [], []
            for beam in beams:
                land = h5[f"{beam}/land_segments"]
                core = core_datasets(land, beam, path.name)
                n = core["latitude"].shape[0] if core["latitude"].shape else 0
                if n == 0:
                    continue
                for variable, why in absent_variables(h5, land).items():
                    missing.setdefault(variable, why)
                segment = core["segment_id_beg"][:].astype("<i8")
                latitude = core["latitude"][:].astype("<f8")
                longitude = core["longitude"][:].astype("<f8")
                delta_time = core["delta_time"][:].astype("<f8")
                digest.update(f"{beam}:{n};".encode())
                for values in (segment, latitude, longitude, delta_time):
                    digest.update(values.tobytes())
                rows += n
                first = int(segment.min()) if first is None else min(first, int(segment.min()))
                last = int(segment.max()) if last is None else max(last, int(segment.max()))
                fill = core["segment_id_beg"].attrs.get("_FillValue")
                valid = segment[(segment >= 0) & (segment <= 0xFFFFFFFF)
                                & (segment != (np.int64(np.asarray(fill).item()) if fill is not None else -1))]
                if len(valid):
                    ranges.append((BEAM_NUMBERS[beam], int(valid.min()), int(valid.max())))
                good = (np.abs(latitude) <= 90) & (np.abs(longitude) <= 180)
                if good.any():
                    lat_range += [latitude[good].min(), latitude[good].max()]
                    lon_range += [longitude[good].min(), longitude[good].max()]
                seconds = delta_time[np.isfinite(delta_time) & (delta_time >= 0) & (delta_time < 5e9)]
                if len(seconds):
                    time_range += [seconds.min(), seconds.max()]
            granule_id = product_id(h5)
            version = product_release(h5, path.name)
    except GranuleError:
        raise
    except (OSError, KeyError, ValueError, IndexError, RuntimeError, TypeError) as error:
        raise GranuleError(f"{path.name}: unreadable or truncated ({error})") from None
    first, last = first or 0, last or 0
    year = extent = None
    if time_range:
        start = epoch + dt.timedelta(seconds=float(min(time_range)))
        end = epoch + dt.timedelta(seconds=float(max(time_range)))
        year = start.year
        if lat_range:
            extent = (float(min(lat_range)), float(max(lat_range)), float(min(lon_range)), float(max(lon_range)),
                      (start.date() - _UNIX_EPOCH.date()).days, (end.date() - _UNIX_EPOCH.date()).days)
    key = identity_key("atl08", rgt, cycle, first, last, digest.hexdigest())
    return GranuleIdentity(key, rgt, cycle, first, last, rows, granule_id, year, extent, tuple(ranges), version,
                           tuple(missing.items()))
