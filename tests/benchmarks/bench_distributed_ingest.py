#!/usr/bin/env python3
"""Ingest on a Dask cluster against the single-process path, measured in the same run, and what the measured
per-worker rate means for the global ATL08 v7 archive. Writes its section of docs/BENCHMARKS.md.

    .venv/bin/python tests/benchmarks/bench_distributed_ingest.py [--granules 40] [--out docs/BENCHMARKS.md]

Granules are the sample generator's (``samples.granules``), written once into build/bench. Each build starts from
an empty database on local disk. The clusters are LocalClusters of separate worker processes (one thread each) on
loopback; peak memory per worker is each worker process's maximum resident set after its build.
"""

import argparse
import datetime as dt
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

from benchmarks_md import machine_line, write_section  # noqa: E402

MARK_START, MARK_END = "<!-- bench:distributed-ingest:start -->", "<!-- bench:distributed-ingest:end -->"
ARCHIVE_GRANULES = 330_000  # ATL08 v7, the whole mission so far (an estimate: ~14 granules per orbit, ~1,387 orbits per 91-day cycle)
WORKER_COUNTS = (1, 8, 32, 128, 512)


def granules(workdir: Path, count: int):
    from canopy_explorer.plugin.core.samples.granules import generate_granules

    folder = workdir / f"distributed_ingest_granules_{count}"
    existing = sorted(folder.glob("*.h5"))
    if len(existing) >= count:
        return existing[:count]
    return generate_granules(folder, region=(40.0, 50.0, 0.0, 20.0), start=dt.date(2020, 1, 1), end=dt.date(2021, 12, 31),
                             n_tracks=count, seed=11)[:count]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _single_process(paths, folder, answer):
    from canopy_explorer.plugin.core.lidar.config import local_config
    from canopy_explorer.plugin.core.lidar.ingest import ingest_granules

    started = time.perf_counter()
    report = ingest_granules(local_config(folder), paths, workers=1)
    answer.put((time.perf_counter() - started, report.segments, peak_rss_mib()))


def single_process(paths, folder):
    """The existing path (one process reads and writes), in a fresh process so its peak memory is its own."""
    context = multiprocessing.get_context("spawn")
    answer = context.Queue()
    process = context.Process(target=_single_process, args=(paths, folder, answer))
    process.start()
    result = answer.get()
    process.join()
    return result


def on_cluster(paths, folder, workers: int):
    from dask.distributed import Client, LocalCluster

    from canopy_explorer.plugin.core.lidar.config import local_config
    from canopy_explorer.plugin.core.lidar.ingest import ingest_granules

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0",
                      silence_logs=40) as cluster:
        started = time.perf_counter()
        report = ingest_granules(local_config(folder), paths, scheduler=cluster.scheduler_address)
        seconds = time.perf_counter() - started
        with Client(cluster) as client:
            peaks = client.run(peak_rss_mib)
    return seconds, report.segments, max(peaks.values())


def projection(rate_per_worker: float, efficiency: float, segments_per_granule: float, measured_segments: float) -> str:
    """Hours to build the archive with N workers, from the one-worker segment rate."""
    segments_per_s = rate_per_worker  # segments/s of one worker
    rows = []
    for n in WORKER_COUNTS:
        scale = n * (efficiency if n > 1 else 1.0)
        hours = ARCHIVE_GRANULES * segments_per_granule / (segments_per_s * scale) / 3600
        rows.append(f"| {n} | {hours:,.1f} | {hours / 24:,.1f} |")
    return "\n".join(["| workers | hours | days |", "|---:|---:|---:|"] + rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--granules", type=int, default=40)
    parser.add_argument("--workdir", type=Path, default=REPO / "build" / "bench")
    parser.add_argument("--segments-per-granule", type=float, default=60_000,
                        help="land segments in a real ATL08 v7 granule, for the projection (an assumption)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    paths = granules(args.workdir, args.granules)
    runs = {}
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        runs["single process"] = single_process(paths, Path(scratch) / "single")
        for workers in (1, 2):
            runs[f"Dask, {workers} worker{'s' if workers > 1 else ''}"] = on_cluster(paths, Path(scratch) / f"dask{workers}", workers)
    base = runs["single process"][0]
    lines = []
    for name, (seconds, segments, peak) in runs.items():
        lines.append(f"| {name} | {seconds:.1f} | {len(paths) / seconds:.2f} | {segments / seconds:,.0f} | {base / seconds:.2f} | {peak:,.0f} |")
        print(f"{name}: {seconds:.1f} s, {len(paths) / seconds:.2f} granules/s, {segments / seconds:,.0f} segments/s, peak {peak:,.0f} MiB")
    one = runs["Dask, 1 worker"]
    two = runs["Dask, 2 workers"]
    per_worker = one[1] / one[0]
    efficiency = min(1.0, (one[0] / two[0]) / 2)
    import dask
    import tiledb

    section = "\n".join([
        MARK_START, "## Distributed ingest (Dask)", "",
        f"`bench_distributed_ingest.py` ({time.strftime('%Y-%m-%d')}): {len(paths)} synthetic granules "
        f"({runs['single process'][1]:,} segments) ingested into an empty local database by the single-process path "
        "(`ingest_granules(..., workers=1)`: one process reads and writes) and on LocalClusters of 1 and 2 worker "
        "processes (one thread each) on loopback, where each worker reads its granules and writes its own fragments. "
        f"Machine: {machine_line(dask=dask.__version__, tiledb=tiledb.__version__)}.", "",
        "| path | seconds | granules/s | segments/s | speed vs single process | peak memory per worker (MiB) |",
        "|---|---:|---:|---:|---:|---:|", *lines, "",
        "Peak memory is the process's maximum resident set (the single process: the whole ingest; a worker: its own "
        "process). On this 2-core machine the client, the scheduler and both workers share the cores, so 2 workers "
        f"scale by {one[0] / two[0]:.2f}x over 1 (a parallel efficiency of {efficiency:.0%}).", "",
        f"### Projection: the global ATL08 v7 archive ({ARCHIVE_GRANULES:,} granules)", "",
        f"From the measured rate of one worker ({per_worker:,.0f} segments/s), the 2-worker efficiency measured here "
        f"({efficiency:.0%}) for every N > 1, and {args.segments_per_granule:,.0f} land segments per real granule:",
        "", projection(per_worker, efficiency, args.segments_per_granule, runs["single process"][1]), "",
        "Assumptions: a real granule is read at the synthetic granules' rate per segment (real files are compressed "
        "HDF5 with 153 datasets per beam: reading them is likely slower); granule files are on a shared file system "
        "and the database on S3 keep up with N writers (one fragment per write tile per task; each task also lists "
        "the lock folder once); the client and scheduler are not the bottleneck (the client only plans and records "
        "a ledger batch every few seconds). Each figure should be checked with a few hundred real granules first.",
        MARK_END,
    ])
    write_section(args.out, section, MARK_START, MARK_END)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
