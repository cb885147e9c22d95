"""Latency benchmark worker: the reference package (icesat2db), in its own virtualenv, in a new process.

Open: ``IceSat2Provider(storage_type="s3", url=<proxy>, ...)`` as reference_runner.py makes it;
query: ``get_data(variables, geometry=box, start_time, end_time, return_type="dataframe",
use_polygon_filter=False)``. Imports nothing from the repository but the benchmark's own
stdlib-only helpers. See latency_phases.py.
"""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

logging.disable(logging.CRITICAL)  # the reference logs every query at INFO level
import geopandas as gpd  # noqa: E402
import icesat2db  # noqa: E402
import latency_phases  # noqa: E402
import tiledb  # noqa: E402
from reference_runner import _checksum, _provider  # noqa: E402
from shapely.geometry import box  # noqa: E402

logging.disable(logging.CRITICAL)
VERSIONS = {"icesat2db": icesat2db.__version__, "tiledb-py": tiledb.__version__, "libtiledb": ".".join(map(str, tiledb.libtiledb.version())),
            "geopandas": gpd.__version__, "python": sys.version.split()[0]}


def open_reader(spec):
    return _provider(spec["reference"])


def query(provider, spec, bounds, filters=None):
    """``filters``: its keyword quality filters, {"h_canopy": ">= 5"}."""
    geometry = gpd.GeoDataFrame(geometry=[box(*bounds)], crs="EPSG:4326")
    return provider.get_data(list(spec["variables"]), geometry=geometry, start_time=spec["start"], end_time=spec["end"],
                             return_type="dataframe", use_polygon_filter=False, **(filters or {}))


def describe(frame):
    return (0 if frame is None else len(frame)), _checksum(frame)


if __name__ == "__main__":
    raise SystemExit(latency_phases.run(open_reader, query, describe, versions=VERSIONS))
