"""Along-track elevation profiles of ATL08 segments: terrain, canopy top and the canopy percentile band of one track.

A track is one pass of one beam over the ground: reference ground track (rgt), cycle and beam, all
decoded from ``segment_id``. Its segments are put in along-track order by their segment number (the
low 32 bits of the id, which ATL03 counts along the reference ground track), and each gets its
geodesic distance from the first one. Heights are ATL08's: terrain is ``h_te_best_fit``; canopy
heights (``h_canopy``, ``canopy_h_metrics``) are relative to the terrain, so the canopy top and the
band are the terrain plus them.

    segments = {"segment_id": ..., "longitude": ..., "latitude": ..., "h_te_best_fit": ..., "h_canopy": ...}
    track = tracks_of(segments)[0]             # the track with the most segments
    profile = along_track_profile(segments, track)
    profile.distance_km, profile.terrain, profile.canopy_top, profile.band
"""

import re
from dataclasses import dataclass
from typing import List, Mapping, Optional, Tuple

import numpy as np

from ...errors import QueryError
from .schema import BEAM_NAMES, BEAM_NUMBERS, decode_segment_id, encode_segment_id

TERRAIN = "h_te_best_fit"
CANOPY = "h_canopy"
CANOPY_PERCENTILE = 98  # h_canopy is the 98th percentile of the canopy's relative heights
PERCENTILE_COLUMN = re.compile(r"^canopy_h_metrics_p(\d+)$")  # canopy_h_metrics:25 is written as canopy_h_metrics_p25
GAP_KM = 0.35  # segments are 100 m apart: a wider step is missing segments, where lines break rather than bridge


@dataclass(frozen=True, order=True)
class Track:
    """One pass of one beam: what a profile follows."""

    rgt: int
    cycle: int
    beam: str
    segments: int = 0  # how many of the given segments lie on it (not part of its identity)

    def same_pass(self, other: "Track") -> bool:
        return (self.rgt, self.cycle, self.beam) == (other.rgt, other.cycle, other.beam)

    @property
    def label(self) -> str:
        count = f", {self.segments:,} segment{'s' if self.segments != 1 else ''}" if self.segments else ""
        return f"Track {self.rgt}, beam {self.beam}, cycle {self.cycle}{count}"


@dataclass(frozen=True)
class Band:
    """The canopy between two percentiles of its relative heights, as heights (terrain plus them)."""

    low_percentile: int
    high_percentile: int
    low: np.ndarray
    high: np.ndarray

    @property
    def label(self) -> str:
        return f"Canopy p{self.low_percentile}–p{self.high_percentile}"


@dataclass(frozen=True)
class Profile:
    """A track's segments in along-track order; heights in metres, NaN where ATL08 has none."""

    track: Track
    segment_id: np.ndarray
    distance_km: np.ndarray  # geodesic distance from the first segment
    terrain: np.ndarray
    canopy_top: Optional[np.ndarray]  # None when h_canopy was not queried
    band: Optional[Band]  # None without two canopy percentiles (canopy_h_metrics, or one of them and h_canopy)

    def __len__(self) -> int:
        return len(self.segment_id)

    def gaps(self) -> np.ndarray:
        """Indices i where the step from segment i-1 to i is wider than ``GAP_KM``: a line should break there."""
        return np.flatnonzero(np.diff(self.distance_km) > GAP_KM) + 1


def track_parts(segment_id) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rgt, cycle, beam name, segment number along the track) for each segment id."""
    rgt, cycle, beam, number = decode_segment_id(np.asarray(segment_id, dtype=np.int64))
    return rgt, cycle, BEAM_NAMES.take(beam, mode="clip"), number


def tracks_of(segments: Mapping[str, np.ndarray]) -> List[Track]:
    """Every track the segments lie on, the one with the most segments first (then by rgt, cycle, beam)."""
    ids = _column(segments, "segment_id", "int64")
    if not len(ids):
        return []
    rgt, cycle, beam, _ = track_parts(ids)
    keys = np.rec.fromarrays([rgt, cycle, beam.astype(str)], names="rgt,cycle,beam")
    unique, counts = np.unique(keys, return_counts=True)
    found = [Track(int(k.rgt), int(k.cycle), str(k.beam), int(n)) for k, n in zip(unique, counts)]
    return sorted(found, key=lambda t: (-t.segments, t.rgt, t.cycle, t.beam))


def track_of(segment_id: int) -> Track:
    """The track one segment lies on (the track of a selected point)."""
    rgt, cycle, beam, _ = track_parts([segment_id])
    return Track(int(rgt[0]), int(cycle[0]), str(beam[0]))


def segment_id_range(track: Track) -> Tuple[int, int]:
    """[first, end) of the segment ids on ``track``: its rgt, cycle and beam are the ids' high 32 bits, so a
    layer can fetch one track with a range on ``segment_id`` rather than decoding every id."""
    first = int(encode_segment_id(track.rgt, track.cycle, BEAM_NUMBERS[track.beam], 0))
    return first, first + (1 << 32)


def percentile_columns(columns) -> List[Tuple[int, str]]:
    """(percentile, column) of the canopy_h_metrics columns among ``columns``, lowest percentile first."""
    found = []
    for name in columns:
        match = PERCENTILE_COLUMN.match(name)
        if match:
            found.append((int(match.group(1)), name))
    return sorted(found)


def along_track_profile(segments: Mapping[str, np.ndarray], track: Track) -> Profile:
    """The profile of ``track`` through ``segments`` (columns as plain arrays: segment_id, longitude, latitude,
    h_te_best_fit, and h_canopy and canopy_h_metrics_pNN where queried)."""
    for required in ("segment_id", "longitude", "latitude", TERRAIN):
        if required not in segments:
            raise QueryError(f"an elevation profile needs the column '{required}'"
                             + (": query h_te_best_fit too" if required == TERRAIN else ""))
    ids = _column(segments, "segment_id", "int64")
    rgt, cycle, beam, number = track_parts(ids)
    on_track = (rgt == track.rgt) & (cycle == track.cycle) & (beam == track.beam)
    if not on_track.any():
        raise QueryError(f"no segment lies on track {track.rgt}, beam {track.beam}, cycle {track.cycle}")
    rows = np.flatnonzero(on_track)
    rows = rows[np.argsort(number[rows], kind="stable")]

    def heights(name: str) -> np.ndarray:
        return _column(segments, name, "float64")[rows]

    longitude, latitude = heights("longitude"), heights("latitude")
    terrain = heights(TERRAIN)
    canopy_top = terrain + heights(CANOPY) if CANOPY in segments else None
    band = None
    percentiles = percentile_columns(segments.keys())
    if len(percentiles) >= 2:
        (low_p, low_name), (high_p, high_name) = percentiles[0], percentiles[-1]
        band = Band(low_p, high_p, terrain + heights(low_name), terrain + heights(high_name))
    elif len(percentiles) == 1 and canopy_top is not None:
        (low_p, low_name), = percentiles
        band = Band(low_p, CANOPY_PERCENTILE, terrain + heights(low_name), canopy_top)
    found = Track(track.rgt, track.cycle, track.beam, len(rows))
    return Profile(found, ids[rows], geodesic_distance_km(longitude, latitude), terrain, canopy_top, band)


def geodesic_distance_km(longitude: np.ndarray, latitude: np.ndarray) -> np.ndarray:
    """Distance on the WGS84 ellipsoid from the first point to each point, in kilometres."""
    from pyproj import Geod

    count = len(longitude)
    if count < 2:  # pyproj takes one-element arrays for a single point, with numpy 2's deprecation warning
        return np.zeros(count)
    _, _, metres = Geod(ellps="WGS84").inv(np.full(count, longitude[0]), np.full(count, latitude[0]), longitude, latitude)
    return np.asarray(metres, dtype=np.float64) / 1000.0


def _column(segments: Mapping[str, np.ndarray], name: str, dtype: str) -> np.ndarray:
    values = np.asarray(segments[name])
    if dtype == "float64":
        # NULLs from a layer arrive as None: they are missing heights
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64) if values.dtype == object \
            else values.astype(np.float64)
    return values.astype(dtype)
