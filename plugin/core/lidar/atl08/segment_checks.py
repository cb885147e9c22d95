"""Which rows of a granule may be written, and why the others are not.

Checked per row before anything is written, so that one bad value never blocks a batch:
a fill value or NaN in the coordinates would give a fragment a NaN extent (on which every
size estimate of the database failed), a latitude of 95 made TileDB refuse the whole annual
batch. Rows are dropped and counted by reason; the caller reports the counts per granule.
The configuration's ``time_range`` and ``spatial_range`` are honoured the same way.
"""

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

from ..config import DatabaseConfig
from ..segment_coverage import ALREADY_STORED
from .schema import TIME_DOMAIN

INVALID_COORDINATES = "fill, NaN or out-of-range latitude/longitude"
INVALID_TIME = "fill or out-of-range acquisition time"
INVALID_SEGMENT_ID = "fill or out-of-range segment_id_beg"
REPEATED_SEGMENT = "segment id repeated within the granule"
OUTSIDE_TIME_RANGE = "outside the configuration's time_range"
OUTSIDE_SPATIAL_RANGE = "outside the configuration's spatial_range"
REASONS = (INVALID_COORDINATES, INVALID_TIME, INVALID_SEGMENT_ID, REPEATED_SEGMENT, ALREADY_STORED, OUTSIDE_TIME_RANGE,
           OUTSIDE_SPATIAL_RANGE)


@dataclass(frozen=True)
class SegmentBounds:
    """What a row must satisfy to be written (plain numbers, cheap to send to reader processes)."""

    first_day: int = TIME_DOMAIN[0]
    last_day: int = TIME_DOMAIN[1]
    lat_min: float = -90.0
    lat_max: float = 90.0
    lon_min: float = -180.0
    lon_max: float = 180.0

    @classmethod
    def from_config(cls, config: DatabaseConfig) -> "SegmentBounds":
        first_day, last_day = config.time_domain
        return cls(first_day, last_day, config.lat_min, config.lat_max, config.lon_min, config.lon_max)


def check_segments(columns: Dict[str, np.ndarray], bounds: SegmentBounds) -> Tuple[Dict[str, np.ndarray], Dict[str, int]]:
    """The rows that may be written, and the number dropped per reason (each row counted once,
    under the first reason in ``REASONS`` that applies)."""
    if not columns:
        return columns, {}
    latitude, longitude = columns["latitude"], columns["longitude"]
    day, segment_id = columns["time"], columns["segment_id"]
    with np.errstate(invalid="ignore"):
        rules = [
            (INVALID_COORDINATES, ~(np.isfinite(latitude) & np.isfinite(longitude) & (np.abs(latitude) <= 90) & (np.abs(longitude) <= 180))),
            (INVALID_TIME, (day < TIME_DOMAIN[0]) | (day > TIME_DOMAIN[1])),
            (INVALID_SEGMENT_ID, segment_id < 0),
            (REPEATED_SEGMENT, _repeats(segment_id)),
            (OUTSIDE_TIME_RANGE, (day < bounds.first_day) | (day > bounds.last_day)),
            (OUTSIDE_SPATIAL_RANGE, (latitude < bounds.lat_min) | (latitude > bounds.lat_max)
             | (longitude < bounds.lon_min) | (longitude > bounds.lon_max)),
        ]
    dropped: Dict[str, int] = {}
    drop = np.zeros(len(latitude), dtype=bool)
    for reason, bad in rules:
        new = bad & ~drop
        count = int(new.sum())
        if count:
            dropped[reason] = count
            drop |= new
    if not drop.any():
        return columns, dropped
    keep = ~drop
    return {name: values[keep] for name, values in columns.items()}, dropped


def _repeats(segment_id: np.ndarray) -> np.ndarray:
    """True for the second and later rows of a segment id seen before in the same granule."""
    if len(segment_id) < 2:
        return np.zeros(len(segment_id), dtype=bool)
    order = np.argsort(segment_id, kind="stable")
    ordered = segment_id[order]
    repeated = np.zeros(len(segment_id), dtype=bool)
    repeated[order[1:]] = (ordered[1:] == ordered[:-1]) & (ordered[1:] >= 0)
    return repeated


def describe(dropped: Dict[str, int], rows: int) -> str:
    """``'dropped 12 of 4000 segments: 10 fill, NaN or ..., 2 outside ...'``."""
    total = sum(dropped.values())
    parts = ", ".join(f"{dropped[r]} {r}" for r in REASONS if dropped.get(r))
    return f"dropped {total} of {rows} segments: {parts}"
