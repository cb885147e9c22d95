"""Synthetic ATL08 granules in the real HDF5 layout (release 007, or 006 for older files).

Used by the tests, ``make demo``, ``make sample-data`` and the benchmarks. The
files are structurally indistinguishable from real ATL08 granules: six beam
groups with ``land_segments/...`` datasets at the catalogue's paths, dtypes and
shapes, ``orbit_info`` and ``ancillary_data``, ``_FillValue`` attributes, and the
float fill value 3.4028235e+38 wherever real products have no retrieval
(bare ground, water, too few canopy photons).

Geometry follows ICESat-2: a circular orbit inclined at 92 degrees over a
rotating Earth, 100 m land segments along track, three beam pairs about 3.3 km
apart with the two beams of a pair 90 m apart, one strong and one weak beam per
pair depending on the spacecraft orientation. Values come from a deterministic
landscape (smooth terrain, forest patches, water, settlements) so that queries
return plausible canopy heights and the same seed always gives the same files.
"""

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..lidar.atl08.catalogue import catalogue, granule_variables
from ..lidar.variables import PROFILE
from ..lidar.atl08.presets import FOREST_CLASSES

FLOAT32_FILL = np.float32(3.4028235e38)
FLOAT64_FILL = np.float64(1.7976931348623157e308)

BEAMS = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")
ATLAS_SDP_EPOCH = dt.datetime(2018, 1, 1, tzinfo=dt.timezone.utc)
ATLAS_SDP_GPS_EPOCH_SECONDS = 1198800018.0  # the value real granules carry in ancillary_data
CYCLE_1_START = dt.datetime(2018, 10, 13, tzinfo=dt.timezone.utc)
REPEAT_CYCLE_DAYS = 91
REFERENCE_GROUND_TRACKS = 1387
RELEASE = "007"
# Variables of the catalogue each release introduced (NSIDC's ATL08 version summary for 007: "added a
# terrain and canopy quality score"); a granule of an earlier release is written without them.
ADDED_IN_RELEASE = {"007": ("can_quality_score", "te_quality_score")}

INCLINATION_DEG = 92.0
ORBIT_PERIOD_S = 5656.8  # 94.28 minutes
EARTH_RADIUS_M = 6371008.8
EARTH_ROTATION_RAD_S = 7.2921159e-5
SEGMENT_LENGTH_M = 100.0
GEOSEGMENT_LENGTH_M = 20.0
PAIR_SPACING_M = 3300.0
BEAM_SPACING_M = 90.0

# Copernicus land-cover codes for what is not forest in the synthetic landscape.
SHRUBS, HERBACEOUS, CROPLAND, URBAN, BARE, WATER = 20, 30, 40, 50, 60, 80

PERCENTILES = np.array(catalogue()["canopy_h_metrics"].labels, dtype=np.float64)


def fill_value(dtype) -> np.generic:
    """The ATL08 fill value for a dtype: float max for floats, integer max for integers."""
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return FLOAT32_FILL
    if dtype == np.float64:
        return FLOAT64_FILL
    return dtype.type(np.iinfo(dtype).max)


def granule_name(start: dt.datetime, rgt: int, cycle: int, region: int, release: str = RELEASE) -> str:
    """``ATL08_YYYYMMDDhhmmss_RRRRCCSS_007_01.h5`` as NSIDC names them."""
    return f"ATL08_{start:%Y%m%d%H%M%S}_{rgt:04d}{cycle:02d}{region:02d}_{release}_01.h5"


def release_variables(release: str = RELEASE):
    """The catalogue's granule variables a granule of ``release`` holds."""
    later = {name for added, names in ADDED_IN_RELEASE.items() if added > release for name in names}
    return tuple(v for v in granule_variables() if v.name not in later)


# --------------------------------------------------------------------------- landscape


# A disturbance in the sample's second period (lat, lon, radius in degrees of latitude).
DIEBACK_AREA = (51.22, 10.22, 0.14)
DIEBACK_START = np.datetime64("2022-01-01")
DIEBACK_REMAINING = 0.4  # share of the canopy height left


class Landscape:
    """A deterministic terrain, canopy and land-cover model as smooth functions of position."""

    def __init__(self, seed: int):
        rng = np.random.default_rng([seed, 0x1A4D])
        # Wavelengths in degrees: hills of ~5-30 km, forest patches of ~2-10 km.
        self._terrain = self._field(rng, 6, 0.05, 0.35)
        self._forest = self._field(rng, 6, 0.02, 0.12)
        self._height = self._field(rng, 4, 0.03, 0.2)
        self._water = self._field(rng, 4, 0.03, 0.15)
        self._urban = self._field(rng, 3, 0.02, 0.08)
        self._crops = self._field(rng, 3, 0.04, 0.2)
        self.forest_classes = np.array(FOREST_CLASSES, dtype=np.int16)

    @staticmethod
    def _field(rng, terms, shortest, longest):
        wavelengths = rng.uniform(shortest, longest, size=terms)
        angles = rng.uniform(0, np.pi, size=terms)
        phases = rng.uniform(0, 2 * np.pi, size=terms)
        kx = 2 * np.pi * np.cos(angles) / wavelengths
        ky = 2 * np.pi * np.sin(angles) / wavelengths
        return kx, ky, phases

    @staticmethod
    def _evaluate(params, lat, lon):
        kx, ky, phases = params
        values = np.zeros(np.broadcast(lat, lon).shape, dtype=np.float64)
        for a, b, p in zip(kx, ky, phases):
            values += np.sin(a * lon + b * lat + p)
        return values / np.sqrt(len(kx) / 2.0)  # roughly unit variance

    def terrain(self, lat, lon):
        return 350.0 + 120.0 * self._evaluate(self._terrain, lat, lon)

    def land_cover(self, lat, lon):
        water = self._evaluate(self._water, lat, lon) > 1.6
        urban = (self._evaluate(self._urban, lat, lon) > 1.4) & ~water
        forest = (self._evaluate(self._forest, lat, lon) > -0.1) & ~water & ~urban
        crops = self._evaluate(self._crops, lat, lon)
        cover = np.where(crops > 0.3, CROPLAND, np.where(crops > -0.6, HERBACEOUS, SHRUBS))
        cover = np.where(forest, 0, cover)
        cover = np.where(urban, URBAN, cover)
        cover = np.where(water, WATER, cover)
        forest_index = np.abs(np.floor(self._evaluate(self._height, lat, lon) * 5)).astype(int)
        forest_codes = self.forest_classes[forest_index % len(self.forest_classes)]
        return np.where(cover == 0, forest_codes, cover).astype(np.int16)

    def canopy_height(self, lat, lon, when=None):
        """Expected canopy top height (m): 12-45 m in forest, low vegetation elsewhere.

        From ``DIEBACK_START`` on, the forest inside ``DIEBACK_AREA`` has lost most of its
        canopy (as after a bark-beetle outbreak), so a change map of the sample shows it.
        """
        forest_height = np.clip(28.0 + 9.0 * self._evaluate(self._height, lat, lon), 8.0, 45.0)
        if when is None:
            return forest_height
        lat0, lon0, radius = DIEBACK_AREA
        inside = np.hypot(np.asarray(lat) - lat0, (np.asarray(lon) - lon0) * np.cos(np.radians(lat0))) < radius
        dead = inside & (np.asarray(when) >= DIEBACK_START)
        return np.where(dead, forest_height * DIEBACK_REMAINING, forest_height)


# --------------------------------------------------------------------------- orbit geometry


@dataclass(frozen=True)
class Track:
    """One pass of ICESat-2 over the sample region."""

    start: dt.datetime  # UTC time of the first segment in the granule
    crossing_lat: float
    crossing_lon: float
    ascending: bool
    rgt: int
    cycle: int
    sc_orient: int  # 0 backward (left beams strong), 1 forward (right beams strong)

    @property
    def region(self) -> int:
        """ATL08 granule region 1-14 (ascending passes 1-7 on the way north, then 8-14)."""
        if self.ascending:
            return 3 if self.crossing_lat >= 0 else 1
        return 5 if self.crossing_lat >= 0 else 7

    @property
    def file_name(self) -> str:
        return granule_name(self.start, self.rgt, self.cycle, self.region)


def _ground_track(track: Track, lat_min: float, lat_max: float):
    """Centre-line positions (lat, lon), times and along-track distances every 100 m."""
    inc = np.radians(INCLINATION_DEG)
    margin = 0.2
    lat_lo, lat_hi = max(lat_min - margin, -86.0), min(lat_max + margin, 86.0)
    u_lo = np.arcsin(np.clip(np.sin(np.radians(lat_lo)) / np.sin(inc), -1, 1))
    u_hi = np.arcsin(np.clip(np.sin(np.radians(lat_hi)) / np.sin(inc), -1, 1))
    if not track.ascending:  # descending passes run from high to low latitude with u in (90, 270)
        u_lo, u_hi = np.pi - u_hi, np.pi - u_lo
    u = np.linspace(u_lo, u_hi, 4000)
    n = 2 * np.pi / ORBIT_PERIOD_S
    t = u / n
    lat = np.degrees(np.arcsin(np.sin(inc) * np.sin(u)))
    lon_inertial = np.arctan2(np.cos(inc) * np.sin(u), np.cos(u))
    lon = np.degrees(lon_inertial - EARTH_ROTATION_RAD_S * t)
    # Shift so the pass crosses the requested latitude at the requested longitude and time.
    u_cross = np.arcsin(np.sin(np.radians(track.crossing_lat)) / np.sin(inc))
    if not track.ascending:
        u_cross = np.pi - u_cross
    lon_cross = np.degrees(
        np.arctan2(np.cos(inc) * np.sin(u_cross), np.cos(u_cross)) - EARTH_ROTATION_RAD_S * u_cross / n
    )
    lon = (lon - lon_cross + track.crossing_lon + 540.0) % 360.0 - 180.0
    t = t - t[0]
    # Along-track ground distance, then resample at segment spacing.
    lat_r, lon_r = np.radians(lat), np.radians(lon)
    dlat, dlon = np.diff(lat_r), np.diff(np.unwrap(lon_r))
    step = 2 * np.arcsin(np.sqrt(np.sin(dlat / 2) ** 2 + np.cos(lat_r[:-1]) * np.cos(lat_r[1:]) * np.sin(dlon / 2) ** 2))
    distance = np.concatenate([[0.0], np.cumsum(step) * EARTH_RADIUS_M])
    centres = np.arange(SEGMENT_LENGTH_M / 2, distance[-1], SEGMENT_LENGTH_M)
    lon_unwrapped = np.degrees(np.unwrap(lon_r))
    seg_lat = np.interp(centres, distance, lat)
    seg_lon = np.interp(centres, distance, lon_unwrapped)
    seg_t = np.interp(centres, distance, t)
    # Distance from the ascending node, for geolocation segment numbers.
    u_seg = np.interp(centres, distance, u)
    # along-track distance from the ascending node, always positive (segment_id_beg is unsigned in ATL08)
    return seg_lat, seg_lon, seg_t, np.mod(u_seg, 2 * np.pi) * EARTH_RADIUS_M


def _offset(lat, lon, east_m, north_m):
    lat2 = lat + np.degrees(north_m / EARTH_RADIUS_M)
    lon2 = lon + np.degrees(east_m / (EARTH_RADIUS_M * np.cos(np.radians(lat))))
    return lat2, lon2


def _wrap(lon):
    """Longitudes into [-180, 180), as products store them."""
    return (np.asarray(lon) + 180.0) % 360.0 - 180.0


def _beam_offsets_m() -> Dict[str, float]:
    """Cross-track offset of each beam from the centre line (negative = left of travel)."""
    offsets = {}
    for pair, centre in zip((1, 2, 3), (-PAIR_SPACING_M, 0.0, PAIR_SPACING_M)):
        offsets[f"gt{pair}l"] = centre - BEAM_SPACING_M / 2
        offsets[f"gt{pair}r"] = centre + BEAM_SPACING_M / 2
    return offsets


def is_strong_beam(beam: str, sc_orient: int) -> bool:
    """Backward orientation (0) makes the left beams strong; forward (1) the right ones."""
    return beam.endswith("l") if sc_orient == 0 else beam.endswith("r")


def solar_position(when: np.ndarray, lat: np.ndarray, lon: np.ndarray):
    """Approximate solar elevation and azimuth (degrees) for UTC datetime64 times.

    The NOAA low-precision formulae: good to a fraction of a degree, enough to
    set ``night_flag`` the way the product does (solar elevation below 0).
    """
    days = (when - np.datetime64("2000-01-01T12:00:00")) / np.timedelta64(1, "D")
    mean_lon = np.radians((280.460 + 0.9856474 * days) % 360)
    anomaly = np.radians((357.528 + 0.9856003 * days) % 360)
    ecl_lon = mean_lon + np.radians(1.915) * np.sin(anomaly) + np.radians(0.020) * np.sin(2 * anomaly)
    obliquity = np.radians(23.439 - 0.0000004 * days)
    declination = np.arcsin(np.sin(obliquity) * np.sin(ecl_lon))
    right_ascension = np.arctan2(np.cos(obliquity) * np.sin(ecl_lon), np.cos(ecl_lon))
    gmst = np.radians((280.46061837 + 360.98564736629 * days) % 360)
    hour_angle = gmst + np.radians(lon) - right_ascension
    lat_r = np.radians(lat)
    sin_el = np.sin(lat_r) * np.sin(declination) + np.cos(lat_r) * np.cos(declination) * np.cos(hour_angle)
    elevation = np.degrees(np.arcsin(np.clip(sin_el, -1, 1)))
    azimuth = np.degrees(
        np.arctan2(
            -np.sin(hour_angle),
            np.tan(declination) * np.cos(lat_r) - np.sin(lat_r) * np.cos(hour_angle),
        )
    ) % 360
    return elevation, azimuth


# --------------------------------------------------------------------------- segment values


@dataclass
class BeamSegments:
    """The land-segment datasets of one beam, keyed by catalogue variable name."""

    beam: str
    strong: bool
    latitude: np.ndarray
    longitude: np.ndarray
    values: Dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.latitude)


def _masked(array: np.ndarray, invalid: np.ndarray) -> np.ndarray:
    """Put the fill value where ``invalid`` (rows, or cells for 2-D arrays) is true."""
    out = array.copy()
    out[invalid] = fill_value(out.dtype)
    return out


def simulate_beam(
    track: Track,
    beam: str,
    landscape: Landscape,
    rng: np.random.Generator,
    centre_lat,
    centre_lon,
    seconds,
    along_m,
    region: Tuple[float, float, float, float],
    gap_fraction: float,
) -> BeamSegments:
    """Values for every land-segment variable of one beam along one pass."""
    lat_min, lat_max, lon_min, lon_max = region
    # Travel direction in a local east/north frame, and the beam's cross-track offset.
    east = np.gradient(centre_lon) * np.cos(np.radians(centre_lat))
    north = np.gradient(centre_lat)
    norm = np.hypot(east, north)
    east, north = east / norm, north / norm
    offset = _beam_offsets_m()[beam]
    lat, lon = _offset(centre_lat, centre_lon, north * offset, -east * offset)  # right-hand normal
    lon = _wrap(lon)

    keep = (lat >= lat_min) & (lat <= lat_max) & (lon >= lon_min) & (lon <= lon_max)
    # Cloud gaps: stretches of a few km without any land segment, commoner on weak beams.
    strong = is_strong_beam(beam, track.sc_orient)
    for _ in range(rng.integers(0, 3 if strong else 5)):
        start = rng.integers(0, max(len(lat), 1))
        keep[start : start + rng.integers(5, 40)] = False
    lat, lon = lat[keep], lon[keep]
    seconds, along_m = seconds[keep], along_m[keep]
    n = len(lat)
    segments = BeamSegments(beam=beam, strong=strong, latitude=lat.astype(np.float32), longitude=lon.astype(np.float32))
    if n == 0:
        for variable in granule_variables():
            shape = (0,) if variable.kind == "scalar" else (0, variable.length)
            segments.values[variable.name] = np.zeros(shape, dtype=variable.dtype)
        return segments

    start_seconds = (track.start - ATLAS_SDP_EPOCH).total_seconds()
    delta_time = start_seconds + seconds
    when = np.datetime64(ATLAS_SDP_EPOCH.replace(tzinfo=None)) + (delta_time * 1e6).astype("timedelta64[us]")
    solar_el, solar_az = solar_position(when, lat, lon)
    night = (solar_el < 0).astype(np.int32)

    cover = landscape.land_cover(lat, lon)
    forest = np.isin(cover, FOREST_CLASSES)
    water = cover == WATER
    terrain = landscape.terrain(lat, lon)
    slope = np.abs(np.gradient(terrain)) / SEGMENT_LENGTH_M

    # Photon budget: strong beams about four times the weak ones, more signal at night.
    signal = (160.0 if strong else 40.0) * np.where(night == 1, 1.2, 1.0) * np.where(water, 0.3, 1.0)
    n_seg_ph = rng.poisson(signal + (60.0 if night.all() else 90.0)).astype(np.int32) + 5
    canopy_fraction = np.where(forest, rng.uniform(0.3, 0.7, n), np.where(water, 0.0, rng.uniform(0.0, 0.1, n)))
    n_ca = rng.binomial(np.maximum(n_seg_ph - 20, 0), canopy_fraction * 0.6).astype(np.int32)
    n_te = rng.binomial(np.maximum(n_seg_ph - n_ca, 0), np.where(forest, 0.35, 0.7)).astype(np.int32)
    n_toc = rng.binomial(n_ca, 0.3).astype(np.int32)

    # Canopy: forest grows to the landscape height, low vegetation elsewhere; no retrieval
    # over water, bare or built-up ground, with too few canopy photons, or at random gaps.
    expected = np.where(forest, landscape.canopy_height(lat, lon, when), rng.uniform(1.0, 4.0, n))
    h_canopy = np.maximum(expected + rng.normal(0, 1.5, n), 0.5)
    no_canopy = water | (cover == URBAN) | (cover == BARE) | (n_ca < 5) | (~forest & (rng.random(n) < 0.6))
    no_canopy |= rng.random(n) < gap_fraction
    n_ca = np.where(no_canopy, 0, n_ca).astype(np.int32)
    n_toc = np.where(no_canopy, 0, n_toc).astype(np.int32)
    # Terrain: a few segments have too few ground photons for a terrain estimate.
    no_terrain = (n_te < 3) | (rng.random(n) < gap_fraction / 5)

    # Monotonic canopy height profile below the 98th percentile (h_canopy).
    base = 0.15 + 0.8 * (PERCENTILES - 10) / 85.0
    jitter = rng.normal(0, 0.02, (n, len(PERCENTILES)))
    fractions = np.clip(np.sort(base[None, :] + jitter, axis=1), 0.05, 0.99)
    profile = (fractions * h_canopy[:, None]).astype(np.float32)

    ground = terrain + rng.normal(0, 0.3, n)
    terrain_std = 0.2 + slope * 20 + rng.uniform(0, 0.3, n)
    h_te_20m = ground[:, None] + (np.arange(5) - 2)[None, :] * slope[:, None] * GEOSEGMENT_LENGTH_M
    h_canopy_20m = h_canopy[:, None] + rng.normal(0, 1.0, (n, 5))
    sub_gap = rng.random((n, 5)) < 0.1
    heading_offsets = (np.arange(5) * GEOSEGMENT_LENGTH_M + 10 - SEGMENT_LENGTH_M / 2)
    lat_20m, lon_20m = _offset(lat[:, None], lon[:, None], east[keep][:, None] * heading_offsets, north[keep][:, None] * heading_offsets)
    lon_20m = _wrap(lon_20m)

    segment_id_beg = (np.floor(along_m / GEOSEGMENT_LENGTH_M) + 1).astype(np.int32)
    duration = SEGMENT_LENGTH_M / 6900.0  # ground speed of about 6.9 km/s
    ph_ndx_beg = np.concatenate([[1], 1 + np.cumsum(n_seg_ph[:-1].astype(np.int64))])
    surf_type = np.zeros((n, 5), dtype=np.int8)
    surf_type[:, 0] = 1  # land
    surf_type[:, 4] = water.astype(np.int8)  # inland water

    v = {
        "asr": rng.uniform(0.1, 0.6, n),
        "atlas_pa": np.full(n, 0.0052) + rng.normal(0, 1e-4, n),
        "beam_azimuth": np.radians((np.degrees(np.arctan2(east, north))[keep] + 90) % 360),
        "beam_coelev": np.full(n, 1.5655) + rng.normal(0, 1e-4, n),
        "brightness_flag": np.zeros(n),
        "can_noise": rng.uniform(0.01, 0.3, n),
        "can_quality_score": rng.integers(40, 100, n),
        "canopy_h_metrics": profile,
        "canopy_h_metrics_abs": profile + ground[:, None],
        "canopy_openness": rng.uniform(0.5, 8.0, n),
        "canopy_rh_conf": np.where(no_canopy, 0, 2),
        "centroid_height": ground + 0.4 * h_canopy,
        "h_canopy": h_canopy,
        "h_canopy_20m": h_canopy_20m,
        "h_canopy_abs": h_canopy + ground,
        "h_canopy_quad": h_canopy * 0.7,
        "h_canopy_uncertainty": rng.uniform(0.5, 4.0, n),
        "h_dif_canopy": h_canopy - profile[:, 8],
        "h_max_canopy": h_canopy * 1.03,
        "h_max_canopy_abs": h_canopy * 1.03 + ground,
        "h_mean_canopy": h_canopy * 0.62,
        "h_mean_canopy_abs": h_canopy * 0.62 + ground,
        "h_median_canopy": profile[:, 8],
        "h_median_canopy_abs": profile[:, 8] + ground,
        "h_min_canopy": profile[:, 0] * 0.5,
        "h_min_canopy_abs": profile[:, 0] * 0.5 + ground,
        "n_ca_photons": n_ca,
        "n_toc_photons": n_toc,
        "photon_rate_can": n_ca / 140.0,
        "photon_rate_can_nr": n_ca / 150.0,
        "segment_cover": np.where(forest, rng.integers(40, 100, n), rng.integers(0, 20, n)),
        "subset_can_flag": (~sub_gap & ~no_canopy[:, None]).astype(np.int8),
        "toc_roughness": rng.uniform(0.5, 5.0, n),
        "cloud_flag_atm": rng.choice([0, 0, 0, 0, 1, 2, 3], n),
        "cloud_fold_flag": np.zeros(n),
        "delta_time": delta_time,
        "delta_time_beg": delta_time - duration / 2,
        "delta_time_end": delta_time + duration / 2,
        "dem_flag": np.full(n, 2),
        "dem_h": terrain + rng.normal(0, 2.0, n),
        "dem_removal_flag": np.zeros(n),
        "h_dif_ref": rng.normal(0, 2.0, n),
        "last_seg_extend": np.zeros(n),
        "latitude_20m": lat_20m,
        "longitude_20m": lon_20m,
        "layer_flag": (rng.random(n) < 0.05),
        "msw_flag": rng.choice([-1, 0, 0, 0, 1, 2], n),
        "n_seg_ph": n_seg_ph,
        "night_flag": night,
        "ph_ndx_beg": ph_ndx_beg,
        "ph_removal_flag": np.zeros(n),
        "psf_flag": np.zeros(n),
        "rgt": np.full(n, track.rgt),
        "sat_flag": np.zeros(n),
        "segment_id_beg": segment_id_beg,
        "segment_id_end": segment_id_beg + 4,
        "segment_landcover": cover,
        "segment_snowcover": np.ones(n),
        "segment_watermask": water.astype(np.int32),
        "sigma_across": np.full(n, 5.0),
        "sigma_along": np.full(n, 5.0),
        "sigma_atlas_land": 0.3 + slope * 5,
        "sigma_h": rng.uniform(0.2, 0.6, n),
        "sigma_topo": 0.3 + slope * 5,
        "snr": signal / 60.0 + rng.uniform(0, 1, n),
        "solar_azimuth": solar_az,
        "solar_elevation": solar_el,
        "surf_type": surf_type,
        "h_te_best_fit": ground,
        "h_te_best_fit_20m": h_te_20m,
        "h_te_interp": ground + rng.normal(0, 0.1, n),
        "h_te_max": ground + terrain_std * 2,
        "h_te_mean": ground + rng.normal(0, 0.05, n),
        "h_te_median": ground + rng.normal(0, 0.05, n),
        "h_te_min": ground - terrain_std * 2,
        "h_te_mode": ground + rng.normal(0, 0.1, n),
        "h_te_rh25": ground - terrain_std * 0.6,
        "h_te_skew": rng.normal(0, 0.5, n),
        "h_te_std": terrain_std,
        "h_te_uncertainty": rng.uniform(0.1, 1.5, n),
        "n_te_photons": n_te,
        "photon_rate_te": n_te / 140.0,
        "subset_te_flag": np.ones((n, 5)),
        "te_quality_score": rng.integers(50, 100, n),
        "terrain_slope": slope,
        "terrain_flg": np.zeros(n),
        "urban_flag": (cover == URBAN).astype(np.int32),
    }
    canopy_floats = {
        name
        for name, var in catalogue().items()
        if var.category == "Canopy" and var.dtype.startswith("float") and var.kind != "subsegment"
    }
    terrain_floats = {
        name
        for name, var in catalogue().items()
        if var.category == "Terrain" and var.dtype.startswith("float") and var.kind == "scalar"
    } - {"photon_rate_te"}
    for variable in granule_variables():
        array = np.asarray(v[variable.name]).astype(variable.dtype)
        if variable.name in canopy_floats:
            array = _masked(array, no_canopy)
        elif variable.name == "h_canopy_20m":
            array = _masked(array, no_canopy[:, None] | sub_gap)
        elif variable.name in terrain_floats:
            array = _masked(array, no_terrain)
        elif variable.name == "h_te_best_fit_20m":
            array = _masked(array, np.broadcast_to(no_terrain[:, None], array.shape))
        segments.values[variable.name] = array
    return segments


# --------------------------------------------------------------------------- files


def simulate_track(track: Track, landscape: Landscape, region, seed: int, gap_fraction: float) -> List[BeamSegments]:
    """All six beams of one pass, clipped to ``region`` (lat_min, lat_max, lon_min, lon_max)."""
    lat, lon, seconds, along = _ground_track(track, region[0], region[1])
    rng = np.random.default_rng([seed, track.rgt, track.cycle])
    return [simulate_beam(track, beam, landscape, rng, lat, lon, seconds, along, region, gap_fraction) for beam in BEAMS]


def write_granule(path: Path, track: Track, beams: Sequence[BeamSegments], release: str = RELEASE) -> Path:
    """Write one ATL08 granule of ``release`` (to a temporary name, renamed when complete)."""
    import h5py

    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    variables = release_variables(release)
    start_seconds = (track.start - ATLAS_SDP_EPOCH).total_seconds()
    with h5py.File(tmp, "w", track_order=True) as h5:
        h5.attrs["short_name"] = "ATL08"
        h5.attrs["identifier_product_type"] = "ATL08"
        h5.attrs["identifier_product_format_version"] = "007"
        h5.attrs["level"] = "L3A"
        h5.attrs["title"] = "ATLAS/ICESat-2 L3A Land and Vegetation Height"
        h5.attrs["granule_type"] = "ATL08"
        ancillary = h5.create_group("ancillary_data")
        ancillary.create_dataset("atlas_sdp_gps_epoch", data=np.array([ATLAS_SDP_GPS_EPOCH_SECONDS]))
        ancillary.create_dataset("release", data=np.array([release.encode()]))
        ancillary.create_dataset("version", data=np.array([b"01"]))
        ancillary.create_dataset("data_start_utc", data=np.array([f"{track.start:%Y-%m-%dT%H:%M:%S.000000Z}".encode()]))
        ancillary.create_dataset("start_rgt", data=np.array([track.rgt], dtype=np.int16))
        ancillary.create_dataset("start_cycle", data=np.array([track.cycle], dtype=np.int8))
        orbit = h5.create_group("orbit_info")
        orbit.create_dataset("rgt", data=np.array([track.rgt], dtype=np.int16))
        orbit.create_dataset("cycle_number", data=np.array([track.cycle], dtype=np.int8))
        orbit.create_dataset("sc_orient", data=np.array([track.sc_orient], dtype=np.int8))
        orbit.create_dataset("sc_orient_time", data=np.array([start_seconds]))
        for segments in beams:
            group = h5.create_group(segments.beam)
            group.attrs["atlas_beam_type"] = "strong" if segments.strong else "weak"
            group.attrs["groundtrack_id"] = segments.beam
            group.attrs["sc_orientation"] = "forward" if track.sc_orient == 1 else "backward"
            land = group.create_group("land_segments")
            for name, data in (("latitude", segments.latitude), ("longitude", segments.longitude)):
                dset = land.create_dataset(name, data=data, dtype="float32", track_times=False)
                dset.attrs["_FillValue"] = FLOAT32_FILL
                dset.attrs["units"] = "degrees_north" if name == "latitude" else "degrees_east"
            for variable in variables:
                data = segments.values[variable.name]
                fill = fill_value(variable.dtype)
                relative = variable.hdf5_path.split("/", 1)[1]
                # Chunked and gzip-compressed like the real product (empty beams cannot be chunked).
                storage = {"chunks": (min(len(data), 10000),) + data.shape[1:], "compression": "gzip", "compression_opts": 4} if len(data) else {}
                dset = land.create_dataset(relative, data=data, dtype=variable.dtype, fillvalue=fill, track_times=False, **storage)
                dset.attrs["_FillValue"] = fill
                dset.attrs["units"] = variable.units
                dset.attrs["long_name"] = variable.name
                dset.attrs["description"] = variable.description
                if variable.kind == PROFILE:
                    dset.attrs["percentiles"] = np.array(variable.labels, dtype=np.int16)
    tmp.replace(path)
    return path


def plan_tracks(
    region: Tuple[float, float, float, float],
    start: dt.date,
    end: dt.date,
    n_tracks: int,
    seed: int,
) -> List[Track]:
    """Passes spread over [start, end], at all times of day, ascending and descending."""
    rng = np.random.default_rng([seed, 0x7EAC])
    lat_min, lat_max, lon_min, lon_max = region
    first = dt.datetime(start.year, start.month, start.day, tzinfo=dt.timezone.utc)
    span = (dt.datetime(end.year, end.month, end.day, tzinfo=dt.timezone.utc) - first).total_seconds()
    tracks = []
    for i in range(n_tracks):
        moment = first + dt.timedelta(seconds=float(span * (i + rng.uniform(0.1, 0.9)) / n_tracks))
        cycle = max(1, int((moment - CYCLE_1_START).days // REPEAT_CYCLE_DAYS) + 1)
        tracks.append(
            Track(
                start=moment.replace(microsecond=0),
                crossing_lat=(lat_min + lat_max) / 2,
                crossing_lon=float(rng.uniform(lon_min, lon_max)),
                ascending=bool(rng.random() < 0.5),
                rgt=int(rng.integers(1, REFERENCE_GROUND_TRACKS + 1)),
                cycle=cycle,
                sc_orient=int(rng.integers(0, 2)),
            )
        )
    return tracks


SAMPLE_REGION = (50.5, 51.5, 9.5, 10.5)  # central Germany, around the benchmark centre 51N 10E


def generate_granules(
    out_dir,
    region: Tuple[float, float, float, float] = SAMPLE_REGION,
    start: dt.date = dt.date(2019, 1, 1),
    end: dt.date = dt.date(2023, 12, 31),
    n_tracks: int = 16,
    seed: int = 42,
    gap_fraction: float = 0.05,
    progress: Optional[Callable[[float], None]] = None,
    release: str = RELEASE,
) -> List[Path]:
    """Write ``n_tracks`` ATL08 granules of ``release`` over ``region`` into ``out_dir``; returns the paths."""
    lat_min, lat_max, lon_min, lon_max = region
    if not (-86 <= lat_min < lat_max <= 86 and -180 <= lon_min < lon_max <= 180):
        raise ValueError(f"invalid sample region {region}: need lat_min < lat_max and lon_min < lon_max")
    if end < start:
        raise ValueError(f"end date {end} is before start date {start}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    landscape = Landscape(seed)
    paths = []
    tracks = plan_tracks(region, start, end, n_tracks, seed)
    for i, track in enumerate(tracks):
        beams = simulate_track(track, landscape, region, seed, gap_fraction)
        name = granule_name(track.start, track.rgt, track.cycle, track.region, release)
        paths.append(write_granule(out_dir / name, track, beams, release))
        if progress:
            progress((i + 1) / len(tracks))
    return paths


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Write deterministic synthetic ATL08 v7 granules.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--region", type=float, nargs=4, default=SAMPLE_REGION, metavar=("LAT_MIN", "LAT_MAX", "LON_MIN", "LON_MAX"))
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2019, 1, 1))
    parser.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2023, 12, 31))
    parser.add_argument("--tracks", type=int, default=16)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    paths = generate_granules(args.out_dir, tuple(args.region), args.start, args.end, args.tracks, args.seed)
    segments = 0
    import h5py

    for path in paths:
        with h5py.File(path, "r") as h5:
            segments += sum(h5[f"{beam}/land_segments/latitude"].shape[0] for beam in BEAMS)
    size = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} ATL08 granules ({segments} land segments, {size / 1e6:.1f} MB) to {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
