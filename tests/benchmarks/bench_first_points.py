#!/usr/bin/env python3
"""Points before the whole result: how long a large query over S3 takes to put its first points on the
map, against the time to its whole, styled layer, at a fixed latency per request.

    .venv/bin/python tests/benchmarks/bench_first_points.py --endpoint http://127.0.0.1:9000 --bucket latency \\
        --key testing --secret testing [--latency-ms 50] [--half-side 15] [--out docs/BENCHMARKS.md]

The database is one the latency benchmark builds (bench_latency.py: the public layout, one fragment per
30-degree tile per year); the endpoint is its S3 server, put behind tests/fault_proxy.py with
``--latency-ms`` added to every request (twice that more to a new connection's first). Each run is a
new process (the database is opened by the query, as on a user's first query), driving what the
dialog drives: a QueryTask in QGIS's task manager, its batches into a PreviewLayer, then the finished
layer loaded. Reported: the time to the first points on the map, the time to the whole result, rows,
batches and preview points.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

MARK_START, MARK_END = "<!-- first-points:start -->", "<!-- first-points:end -->"


def one_run(args) -> dict:
    """In this process: the query as the dialog runs it; the times from the task's start."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import QgsApplication, QgsProject

    app = QgsApplication([], False)
    app.initQgis()
    from qgis.PyQt.QtCore import QCoreApplication

    from canopy_explorer.plugin.core.lidar.config import DatabaseConfig
    from canopy_explorer.plugin.core.lidar.open_databases import shared_database
    from canopy_explorer.plugin.core.lidar.query import SegmentQuery
    from canopy_explorer.plugin.layers.preview_layer import PreviewLayer
    from canopy_explorer.plugin.layers.segment_layer import QueryRequest
    from canopy_explorer.plugin.tasks.query_task import QueryTask

    config = DatabaseConfig(storage_type="s3", s3_bucket=args.bucket, url=args.proxy, s3_region="us-east-1",
                            s3_settings={"aws_access_key_id": args.key, "aws_secret_access_key": args.secret},
                            source="bench").with_changes()
    h = args.half_side
    spec = SegmentQuery.create((10 - h, 51 - h, 10 + h, 51 + h), start="2019-01-01", end="2023-12-31", variables=["h_canopy"])
    request = QueryRequest(config, spec, ("h_canopy",))
    if args.chosen_first:
        # as in the dialog: the database was chosen (its connection test opened and prepared it) before Run
        from canopy_explorer.plugin.tasks.connection_task import connection_summary

        connection_summary(config)
        shared_database(config).prepare().result()
    times, points, batches = {}, [0], [0]
    task = QueryTask(request)
    preview = PreviewLayer(request.layer_name, "h_canopy", "h_canopy")

    def shown(batch):
        times.setdefault("first_points", time.perf_counter() - started)
        points[0] += len(batch.features)
        batches[0] += 1

    def completed(output):
        if task.layer is not None:
            QgsProject.instance().addMapLayer(task.layer)
        times["whole"] = time.perf_counter() - started
        times["rows"] = output.rows

    preview.shown.connect(shown)
    task.batchRead.connect(preview.add)
    task.completed.connect(completed)
    task.failed.connect(lambda message: times.setdefault("error", message))
    task.taskCompleted.connect(preview.end)
    started = time.perf_counter()
    QgsApplication.taskManager().addTask(task)
    while "whole" not in times and "error" not in times:
        QCoreApplication.processEvents()
        time.sleep(0.002)
    times.update(preview_points=points[0], batches=batches[0])
    return times


def measure_first_points(proxy_url: str, bucket: str, key: str, secret: str, half_side: float, runs: int) -> list:
    """``runs`` new processes for each of the two starts (the query opens the database; the database was chosen
    first, as in the dialog), each running the query through ``proxy_url`` (its latency already set)."""
    answers = []
    for chosen_first in (False, True):
        for _ in range(runs):
            command = [sys.executable, __file__, "--child", "--proxy", proxy_url, "--endpoint", proxy_url, "--bucket", bucket,
                       "--key", key, "--secret", secret, "--half-side", str(half_side)] + (["--chosen-first"] if chosen_first else [])
            answer = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO)
            answers.append(dict(json.loads(answer.stdout.strip().splitlines()[-1]), chosen_first=chosen_first))
            print(answers[-1], flush=True)
    failed = [run["error"] for run in answers if "error" in run]
    if failed:
        raise RuntimeError(f"the query failed: {failed[0]}")
    return answers


def section(runs: list, latency_ms: float, half_side: float, database: str) -> str:
    from benchmarks_md import machine_line

    lines = []
    for chosen_first, start in ((False, "the query opens the database"), (True, "the database chosen first, as in the dialog")):
        group = [run for run in runs if run.get("chosen_first", False) == chosen_first]
        if not group:
            continue
        first = statistics.median(run["first_points"] for run in group)
        whole = statistics.median(run["whole"] for run in group)
        lines.append(f"- {start}: first points on the map after **{first:.2f} s**, the whole styled layer after **{whole:.2f} s** "
                     f"({whole / first:.1f}x later; median of {len(group)} runs)")
    rows = "\n".join(f"| {'chosen first' if run.get('chosen_first') else 'opened by the query'} | {run['first_points']:.2f} | "
                     f"{run['whole']:.2f} | {run['rows']:,} | {run['batches']} | {run['preview_points']:,} |" for run in runs)
    return "\n".join([
        MARK_START, "## Points before the whole result", "",
        f"Generated by `tests/benchmarks/bench_first_points.py` on {time.strftime('%Y-%m-%d %H:%M')}. Machine: {machine_line()}.", "",
        "A query runs as the dialog runs it (a `QueryTask` in QGIS's task manager, each batch of 262,144 segments thinned "
        "to at most 25,000 preview points in the task thread and added to a `PreviewLayer` on the main thread, then the "
        f"finished GeoPackage layer loaded), against {database} on a loopback S3 server behind a proxy that adds "
        f"{latency_ms:g} ms to every request (and twice that to a new connection's first, its TCP and TLS handshakes); {runs[0]['rows']:,} segments ({half_side:g}-degree half side round 51 N 10 E, "
        "h_canopy, 2019-2023), each run a new process, times from the task's start. Two starts: the query opens the "
        "database (a script's first query), or the database was chosen first (the dialog tests, opens and prepares it "
        "when it is chosen, so Run finds it open).", "",
        *lines, "",
        "| start | first points (s) | whole result (s) | rows | batches | preview points |", "|---|---:|---:|---:|---:|---:|",
        rows, MARK_END,
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True, help="an S3 server holding the database (the latency benchmark's)")
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--key", default="testing")
    parser.add_argument("--secret", default="testing")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--half-side", type=float, default=15.0, help="half side of the box centred at 51 N 10 E (degrees)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", help="write the section into this Markdown file (docs/BENCHMARKS.md)")
    parser.add_argument("--proxy", help=argparse.SUPPRESS)  # set for the child runs
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--chosen-first", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(one_run(args)))
        return 0
    from fault_proxy import FaultProxy

    with FaultProxy(args.endpoint) as proxy:
        proxy.set_latency(args.latency_ms / 1000)
        runs = measure_first_points(proxy.url, args.bucket, args.key, args.secret, args.half_side, args.runs)
    text = section(runs, args.latency_ms, args.half_side, f"the database in bucket {args.bucket}")
    print(text)
    if args.out:
        from benchmarks_md import write_section

        write_section(Path(args.out), text, MARK_START, MARK_END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
