"""Latency benchmark worker: bare TileDB, the physical limit, in a new process.

Open: ``tiledb.open(array, ctx=make_context(config, reading=True))`` with the engine's context settings for
the same configuration file; query: ``query(attrs=["segment_id", *variables], dims=[latitude,
longitude, time]).multi_index[...]`` to numpy, nothing else (segment ids, the requested
variables and the dimensions: what the engine returns; a filter as a TileDB query condition), on
the engine's query context (``make_context(config, querying=True)`` as the array's ``ctx``, as the
engine's queries run).
See latency_phases.py.
"""

import datetime as dt
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import latency_phases  # noqa: E402
import tiledb  # noqa: E402
from bench_query_scaling import checksum  # noqa: E402
from canopy_explorer.plugin.core.lidar.config import load_config  # noqa: E402
from canopy_explorer.plugin.core.lidar.storage import make_context  # noqa: E402

DIMENSIONS = ["latitude", "longitude", "time"]
EPOCH = dt.date(1970, 1, 1)


def open_reader(spec):
    config = load_config(spec["config"])
    array = tiledb.open(config.array_uri, mode="r", ctx=make_context(config, reading=True))
    array.ctx = make_context(config, querying=True)
    return array


def query(array, spec, bounds, filters=None):
    """``filters`` ({"h_canopy": ">= 5"}) as a TileDB query condition, as TileDB offers them."""
    lon_min, lat_min, lon_max, lat_max = bounds
    first, last = ((dt.date.fromisoformat(spec[key]) - EPOCH).days for key in ("start", "end"))
    attrs = list(dict.fromkeys(["segment_id", *spec["variables"]]))
    cond = " and ".join(f"{name} {expression}" for name, expression in filters.items()) if filters else None
    return array.query(attrs=attrs, dims=DIMENSIONS, cond=cond).multi_index[lat_min:lat_max, lon_min:lon_max, first:last]


def describe(raw):
    return len(raw["latitude"]), checksum(raw["segment_id"])


if __name__ == "__main__":
    raise SystemExit(latency_phases.run(open_reader, query, describe))
