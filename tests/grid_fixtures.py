"""A database with a planted canopy change, written in the public layout, for the grid tests.

* Europe (8..12 E, 50..52 N): segments in both periods, canopy 20 m +- noise; in period 2
  the canopy is 3 m taller east of 10 E.
* The antimeridian (179.6 E .. 179.6 W, 16..18 S): segments on both sides, both periods;
  canopy 10 m west of 180 (east longitudes) and 30 m east of it (west longitudes).
* A sparse spot (30 E, 0 N): 20 segments per period, under any reasonable MIN_SHOTS.
"""

from pathlib import Path

import numpy as np

PERIODS = (("2019-01-01", "2020-12-31"), ("2022-01-01", "2023-12-31"))
PLANTED_CHANGE_M = 3.0
PLANTED_EAST_OF = 10.0
SPARSE_POINT = (30.0, 0.0)
NS_PER_DAY = 86_400 * 10**9


def _days(text: str) -> int:
    return int(np.datetime64(text, "D").astype(np.int64))


def planted_segments(seed: int = 3, europe: int = 40_000, antimeridian: int = 4_000):
    """Per period: longitude, latitude, time_ns and h_canopy arrays (the values the test expects)."""
    rng = np.random.default_rng(seed)
    columns = []
    for period, (start, end) in enumerate(PERIODS):
        lon = np.concatenate([
            rng.uniform(8.0, 12.0, europe),
            np.where(rng.random(antimeridian) < 0.5, rng.uniform(179.6, 180.0, antimeridian), rng.uniform(-180.0, -179.6, antimeridian)),
            np.full(20, SPARSE_POINT[0]) + rng.uniform(-0.01, 0.01, 20),
        ])
        lat = np.concatenate([rng.uniform(50.0, 52.0, europe), rng.uniform(-18.0, -16.0, antimeridian),
                              np.full(20, SPARSE_POINT[1]) + rng.uniform(-0.01, 0.01, 20)])
        h = np.concatenate([20.0 + rng.normal(0, 4, europe), np.where(lon[europe:europe + antimeridian] > 0, 10.0, 30.0)
                            + rng.normal(0, 2, antimeridian), np.full(20, 15.0)])
        if period == 1:
            h[:europe] += np.where(lon[:europe] > PLANTED_EAST_OF, PLANTED_CHANGE_M, 0.0)
        day0, day1 = _days(start), _days(end)
        time_ns = rng.integers(day0 * NS_PER_DAY, (day1 + 1) * NS_PER_DAY, len(lon))
        columns.append({"longitude": lon, "latitude": lat, "time_ns": time_ns, "h_canopy": h.astype(np.float32)})
    return columns


def write_planted_database(folder: Path, seed: int = 3, **sizes):
    """The planted segments in an engine-created database under ``folder``; returns (config, per-period truth)."""
    from canopy_explorer.plugin.core.lidar.config import local_config
    from canopy_explorer.plugin.core.lidar.ingest import _write_batch, ensure_database
    from canopy_explorer.plugin.core.lidar.atl08.schema import attribute_dtypes, encode_segment_id
    from canopy_explorer.plugin.core.lidar.storage import make_context

    config = local_config(folder)
    ctx = make_context(config)
    ensure_database(config, ctx)
    periods = planted_segments(seed, **sizes)
    offset = 0
    for stamp, period in enumerate(periods, start=1):
        n = len(period["longitude"])
        columns = {}
        for name, dtype in attribute_dtypes().items():
            columns[name] = np.full(n, np.nan, dtype=dtype) if dtype.kind == "f" else np.zeros(n, dtype=dtype)
        columns["beam_id"] = np.full(n, "gt1l", dtype=object)
        columns["latitude"], columns["longitude"] = period["latitude"], period["longitude"]
        columns["timestamp_ns"] = period["time_ns"]
        columns["time"] = period["time_ns"] // NS_PER_DAY
        columns["segment_id"] = encode_segment_id(1, 1, 0, np.arange(offset, offset + n))
        columns["h_canopy"] = period["h_canopy"]
        columns["segment_landcover"] = np.full(n, 111, dtype=columns["segment_landcover"].dtype)
        _write_batch(config.array_uri, ctx, columns, stamp, config)
        offset += n
    return config, periods
