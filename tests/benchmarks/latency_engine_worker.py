"""Latency benchmark worker: the engine as a user's session runs it, in a new process.

Open: ``Atl08Database(load_config(<configuration file>))`` (a copy of the public
configuration whose endpoint is the latency proxy); query: ``SegmentQuery.create(roi=box,
start, end, variables)`` through ``Atl08Database.query`` to a DataFrame. See latency_phases.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import latency_phases  # noqa: E402
from bench_query_scaling import checksum  # noqa: E402
from canopy_explorer.plugin.core.lidar.config import load_config  # noqa: E402
from canopy_explorer.plugin.core.lidar.database import Atl08Database  # noqa: E402
from canopy_explorer.plugin.core.lidar.query import SegmentQuery  # noqa: E402


def open_reader(spec):
    return Atl08Database(load_config(spec["config"]))


def segment_query(spec, bounds, filters=None):
    return SegmentQuery.create(roi=tuple(bounds), start=spec["start"], end=spec["end"], variables=spec["variables"], **(filters or {}))


def query(database, spec, bounds, filters=None):
    """``filters``: icesat2db's keyword form, {"h_canopy": ">= 5"}."""
    return database.query(segment_query(spec, bounds, filters))


def describe(frame):
    return len(frame), checksum(frame["segment_id"].to_numpy())


def details(database, spec):
    """The attributes the engine asks TileDB for (a private method: reported when it exists)."""
    try:
        return {"attributes": list(database._attributes(segment_query(spec, spec["queries"][0]["bounds"])))}
    except Exception as error:  # the engine is changing under this benchmark; the figure is optional
        return {"attributes_unknown": str(error)}


if __name__ == "__main__":
    raise SystemExit(latency_phases.run(open_reader, query, describe, details=details))
