"""Independent ground truth read straight from granules with h5py and numpy (not the engine)."""

import datetime as dt

import h5py
import numpy as np

BEAMS = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")
BEAM_CODE = {b: i for i, b in enumerate(BEAMS)}
FILL = np.float32(3.4028235e38)
EPOCH = np.datetime64("2018-01-01T00:00:00", "ns")


def segments(paths, datasets=("canopy/h_canopy",)):
    """One record array-like dict over all beams of all granules."""
    out = {k: [] for k in ("lat", "lon", "time", "segment_id", "beam") + tuple(datasets)}
    for path in paths:
        with h5py.File(path, "r") as h5:
            rgt = int(h5["orbit_info/rgt"][0])
            cycle = int(h5["orbit_info/cycle_number"][0])
            for beam in BEAMS:
                land = h5[f"{beam}/land_segments"]
                n = land["latitude"].shape[0]
                out["lat"].append(land["latitude"][:].astype(float))
                out["lon"].append(land["longitude"][:].astype(float))
                out["time"].append(EPOCH + (land["delta_time"][:] * 1e9).round().astype("timedelta64[ns]"))
                seg = land["segment_id_beg"][:].astype(np.int64)
                out["segment_id"].append((rgt << 43) | (cycle << 35) | (BEAM_CODE[beam] << 32) | seg)
                out["beam"].append(np.full(n, beam))
                for name in datasets:
                    values = land[name][:]
                    if values.dtype.kind == "f":
                        values = np.where(values == FILL, np.nan, values)
                    out[name].append(values)
    return {k: np.concatenate(v) for k, v in out.items()}


def day(date_text):
    return np.datetime64(date_text, "ns")


def since(date: dt.date):
    return np.datetime64(date.isoformat(), "ns")
