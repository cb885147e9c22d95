"""Time the reference package (icesat2db) box by box; JSON lines in, JSON lines out.

Runs inside the reference's own virtualenv (numpy 2, pandas 3, geopandas), started by
bench_query_scaling.py, which interleaves it with the other readers box by box; it
imports nothing from this repository. The first line on stdin opens the database:

    {"storage": "local", "local_path": "/path/db",        # the folder holding array_uri
     "s3": {"bucket": ..., "url": "http://127.0.0.1:PORT", "region": ..., "key": ..., "secret": ...},
     "start": "2020-01-01", "end": "2020-12-31", "variables": ["h_canopy"]}

and is answered with {"versions": {...}}. Every further line is one request on a box,

    {"bounds": [lon_min, lat_min, lon_max, lat_max], "repeats": 3, "warmup": true, "max_seconds": 120}

answered with {"times": [seconds, ...]} plus, after a warm-up, "rows" and "checksum":
an untimed ``IceSat2Provider.get_data(..., return_type="dataframe")`` call (unless
"warmup" is false), then ``repeats`` timed ones, all on the same provider, the way a
user's session would run them (timed runs stop after one exceeds ``max_seconds``).
The benchmark sends one warm-up request per box and then single timed runs, in turn
with its other readers. The checksum is the sum of the returned segment ids modulo
2**61 - 1, order-independent, compared with the engine's.
"""

import json
import logging
import sys
import time

CHECKSUM_MOD = 2**61 - 1


def _checksum(frame) -> int:
    if frame is None or not len(frame):
        return 0
    import numpy as np

    values = frame["segment_id"].to_numpy().astype(np.uint64) % np.uint64(CHECKSUM_MOD)
    return int(np.sum(values, dtype=np.uint64) % np.uint64(CHECKSUM_MOD))


def _provider(job):
    from icesat2db import IceSat2Provider

    if job["storage"] == "local":
        return IceSat2Provider(storage_type="local", local_path=job["local_path"])
    s3 = job["s3"]
    # The reference takes a custom endpoint (url) and credentials; it always sets
    # vfs.s3.scheme=https, which the scheme in an http:// endpoint URL overrides.
    return IceSat2Provider(
        storage_type="s3",
        s3_bucket=s3["bucket"],
        url=s3["url"],
        region=s3["region"],
        credentials={"AccessKeyId": s3["key"], "SecretAccessKey": s3["secret"], "SessionToken": ""},
    )


def main() -> int:
    logging.disable(logging.CRITICAL)  # the reference logs every query at INFO level
    import geopandas as gpd
    import icesat2db
    import numpy as np
    import pandas as pd
    import tiledb
    from shapely.geometry import box

    logging.disable(logging.CRITICAL)
    job = json.loads(sys.stdin.readline())
    provider = _provider(job)
    versions = {"icesat2db": icesat2db.__version__, "tiledb-py": tiledb.__version__, "libtiledb": ".".join(map(str, tiledb.libtiledb.version())),
                "numpy": np.__version__, "pandas": pd.__version__, "geopandas": gpd.__version__, "python": sys.version.split()[0]}
    print(json.dumps({"versions": versions}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        geometry = gpd.GeoDataFrame(geometry=[box(*request["bounds"])], crs="EPSG:4326")

        def run():
            return provider.get_data(
                list(job["variables"]), geometry=geometry, start_time=job["start"], end_time=job["end"],
                return_type="dataframe", use_polygon_filter=False,
            )

        frame = run() if request.get("warmup", True) else None
        times = []
        for _ in range(request["repeats"]):
            started = time.perf_counter()
            frame = run()
            times.append(time.perf_counter() - started)
            if times[-1] > request.get("max_seconds", 1e9):
                break
        answer = {"times": times}
        if request.get("warmup", True):
            answer.update(rows=0 if frame is None else len(frame), checksum=_checksum(frame))
        print(json.dumps(answer), flush=True)
        del frame
    provider.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
