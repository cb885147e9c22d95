"""Grid change in one process against the same request on a 2-worker Dask LocalCluster.

    .venv/bin/python tests/benchmarks/bench_grid_change_cluster.py --segments 10000000 --workdir build/bench

The database and the request are those of ``bench_grid_change.py`` (the seed's global box,
quality filters, periods, 100 km hexagons, MIN_SHOTS 100, 250,000-row batches). The cluster
runs once unmeasured so that the workers have imported the engine; then both contenders run
in turns, ``--rounds`` times, in this process. Prints the wall times, the load average and
whether the two results are identical (every field of every cell). Needs ``dask[distributed]``.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_grid_change as bench  # noqa: E402


def main(argv=None) -> int:
    import distributed

    from canopy_explorer.plugin.core.grid.change import FIELDS, GridChangeRequest, grid_change
    from canopy_explorer.plugin.core.lidar.atl08.presets import GOOD_CANOPY
    from canopy_explorer.plugin.core.lidar.config import local_config

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, default=10_000_000)
    parser.add_argument("--workdir", type=Path, default=bench.REPO / "build" / "bench")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    folder, info = bench.build_database(args.workdir, args.segments, workers=2)
    config = local_config(folder)

    def request(**scheduler):
        return GridChangeRequest.create(config, roi=bench.GLOBAL_BOX, periods=bench.PERIODS, cell_size_km=bench.CELL_KM,
                                        min_shots=bench.MIN_SHOTS, filters=GOOD_CANOPY, batch_rows=250_000, **scheduler)

    with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=40) as cluster:
        on_cluster = request(scheduler=cluster.scheduler_address)
        grid_change(on_cluster)
        seconds, results = {"one process": [], f"{args.workers} workers": []}, {}
        for _ in range(args.rounds):
            for name, each in zip(seconds, (request(), on_cluster)):
                started = time.perf_counter()
                results[name] = grid_change(each)
                seconds[name].append(round(time.perf_counter() - started, 2))
    here, there = results.values()
    identical = np.array_equal(here.cell, there.cell) and all(np.array_equal(here.columns[f], there.columns[f]) for f in FIELDS)
    print(json.dumps({"segments": info["segments"], "with a value": list(here.segments), "cells": len(here),
                      "identical": bool(identical), "seconds": seconds, "load average": os.getloadavg()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
