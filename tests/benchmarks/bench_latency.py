"""Latency benchmark: the seed's box series over S3 behind a fixed per-request latency,
engine vs the reference package vs bare TileDB, each in a new process per measurement.

    .venv/bin/python tests/benchmarks/bench_latency.py --workdir build/bench --out docs
    .venv/bin/python tests/benchmarks/bench_latency.py --latencies 0 50 --boxes 3 --no-docs   # a quick look

The public database is read over the internet, where every S3 request costs a round trip;
this measures what a user waits for at 0, 50 and 150 ms per request. Set-up:

* a database in the public layout (capacity 100000, Hilbert, 30-degree write tiles) with a
  fragment count like the public database's: one fragment per occupied 30-degree tile per
  annual batch, 2019 to 2023, plus a few small late fragments (the last passes of 2023
  written afterwards, one batch each) (``synthetic_db``; built once under
  ``<workdir>/latency-db-<key>/`` and reused);
* uploaded to a moto S3 server on loopback, read through ``tests/fault_proxy.py`` in front
  of it, which delays every request by the latency, and a new connection's first request by
  two latencies more, its TCP and TLS handshakes (``FaultProxy.set_latency``), and counts
  requests, connections and the bytes of the bodies it sends back;
* the seed's boxes (centred at 51 N 10 E, half sides 0.25 to 20 degrees; ``--boxes`` of
  the 20 steps, the smallest and largest always), ``h_canopy``, 2019-2023.

For each latency, box and reader a new process (``latency_<reader>_worker.py``, one JSON
spec in, one JSON document out) opens the database, queries the box (cold: open + first
query, timed inside the process, and the whole process's wall time separately), queries
the same box again ``WARM_RUNS`` times (warm: their median) and then the box next to it
to the east (nearby: the tile cache's effect). Requests and bytes are counted at the proxy for the open, the first
query and the warm query separately; rows and the segment-id checksum
(``reference_runner``'s) are compared across readers. Readers:

* engine: ``Atl08Database(load_config(file))`` and ``SegmentQuery`` to a DataFrame, the
  file a copy of ``configs/public_atl08_v007.yaml`` (so the public configuration's S3
  settings are measured) with its endpoint at the proxy, the benchmark's bucket and keys;
* icesat2db: ``IceSat2Provider(...).get_data(..., return_type="dataframe")`` in its own
  virtualenv (``<workdir>/refvenv``, made from ``reference-requirements.txt``);
* bare TileDB: ``tiledb.open`` with the engine's context for the same file and one
  ``multi_index`` read of ``segment_id``, the variables and the dimensions, to numpy.

The readers take turns box by box. Outputs: the tables on stdout, ``<workdir>/latency.json``,
``<out>/img/latency.png`` and the section between ``<!-- latency:start -->`` and
``<!-- latency:end -->`` of ``<out>/BENCHMARKS.md``. Timings are never pass/fail: the
issue's targets are reported as met or not met.
"""

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # tests/, for fault_proxy

import bench_first_points  # noqa: E402
import synthetic_db  # noqa: E402
from bench_query_scaling import (BUCKET, S3_KEYS, MotoServer, layout_configs, layout_stats, machine,  # noqa: E402
                                 reference_python, series_boxes, upload)
from benchmarks_md import write_section  # noqa: E402
from fault_proxy import FaultProxy  # noqa: E402

LATENCIES_MS = [0, 50, 150]
FIRST_POINTS_LATENCY_MS = 50
FIRST_POINTS_HALF_SIDE = 11.0  # about a million segments of the benchmark's database
YEARS = (2019, 2020, 2021, 2022, 2023)
START, END = "2019-01-01", "2023-12-31"
VARIABLES = ["h_canopy"]
REGION = "us-east-1"
PUBLIC_CONFIG = REPO / "configs" / "public_atl08_v007.yaml"
READERS = {"engine": "latency_engine_worker.py", "icesat2db": "latency_reference_worker.py", "bare": "latency_bare_worker.py"}
TARGET_LATENCIES_MS = (50, 150)  # the latencies the targets are set for
WARM_RUNS = 3  # warm = the median of this many queries of the box after the cold one, in the same process
FILTERS = {"h_canopy": ">= 5"}  # filtered = then the median of WARM_RUNS queries of the box with this filter (keyword form)
MARK_START, MARK_END = "<!-- latency:start -->", "<!-- latency:end -->"
WORKER_TIMEOUT_S = 900


def log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- database


def ensure_database(workdir: Path, segments: int, late_passes: int, global_passes: int, global_keep: float, workers: int,
                    rebuild: bool) -> Dict:
    """The public-layout database with annual batches and late fragments, built once and reused."""
    spec = synthetic_db.BuildSpec(segments=segments, years=YEARS, global_per_round=global_passes, global_keep=global_keep)
    root = workdir / f"latency-db-{spec.key()}-late{late_passes}"
    config = layout_configs(root, 10000, 6)["public"]
    info_path = root / "build.json"
    if rebuild or not info_path.exists():
        import shutil

        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        log(f"building the latency database ({segments:,}+ segments, {YEARS[0]}-{YEARS[-1]}, {late_passes} late passes) under {root}")
        timings = synthetic_db.build(spec, [config], workers=workers, log=log, late_passes=late_passes)
        info = {"segments": timings["segments"], "write_s": timings[config.array_uri], "generate_s": timings["generate"],
                "years": list(YEARS), "late_passes": late_passes, "segments_requested": segments, "global_passes": global_passes,
                "global_keep": global_keep}
        info.update(layout_stats(config))
        info.pop("column_bytes", None)
        info_path.write_text(json.dumps(info, indent=2))
        built = True
    else:
        info = json.loads(info_path.read_text())
        built = False
    return {"config": config, "root": root, "info": info, "built_now": built}


def engine_config_file(path: Path, proxy_url: str) -> Path:
    """A copy of the public configuration reading the benchmark's bucket through the proxy."""
    import yaml

    document = yaml.safe_load(PUBLIC_CONFIG.read_text())
    settings = document["tiledb"]
    # moto refuses unsigned requests to a private bucket: the benchmark's keys instead of anonymous access
    settings.update(s3_bucket=BUCKET, url=proxy_url, s3_region=REGION, anonymous=False,
                    s3_settings={**(settings.get("s3_settings") or {}), **S3_KEYS})
    path.write_text("# The public configuration (configs/public_atl08_v007.yaml) with the latency benchmark's endpoint, bucket and keys.\n"
                    + yaml.safe_dump(document, sort_keys=False))
    return path


# --------------------------------------------------------------------------- measuring


def chosen_boxes(count: int) -> List[Dict]:
    """``count`` of the seed's 20 boxes, evenly spread, the smallest and the largest always."""
    boxes = [b for b in series_boxes() if b["half"] is not None]
    picks = sorted({int(round(i)) for i in np.linspace(0, len(boxes) - 1, max(1, count))})
    return [boxes[i] for i in picks]


def nearby(bounds) -> List[float]:
    """The box of the same size next to ``bounds`` to the east."""
    lon_min, lat_min, lon_max, lat_max = bounds
    width = lon_max - lon_min
    return [lon_min + width, lat_min, lon_max + width, lat_max]


def run_worker(python: str, script: str, spec: Dict) -> Dict:
    """One measurement in a new process; its JSON answer plus the process's wall time."""
    started = time.perf_counter()
    done = subprocess.run([python, str(HERE / script)], input=json.dumps(spec), capture_output=True, text=True, timeout=WORKER_TIMEOUT_S,
                          cwd=REPO)
    wall = time.perf_counter() - started
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"{script} failed (exit status {done.returncode}):\n{done.stderr[-4000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    answer["process_s"] = wall
    return answer


def measure(readers: Dict[str, Dict], boxes: List[Dict], latencies_ms: List[int], repeats: int, proxy: FaultProxy) -> Dict:
    """Every latency, box, repeat and reader (readers in turn); medians of the times over repeats."""
    results = {}
    for latency in latencies_ms:
        proxy.set_latency(latency / 1000)
        log(f"latency {latency} ms per request")
        rows = []
        for box in boxes:
            queries = [{"name": "cold", "bounds": list(box["bounds"])},
                       *[{"name": "warm", "bounds": list(box["bounds"])}] * WARM_RUNS,
                       {"name": "nearby", "bounds": nearby(box["bounds"])},
                       *[{"name": "filtered", "bounds": list(box["bounds"]), "filters": FILTERS}] * WARM_RUNS]
            runs = {name: [] for name in readers}
            for _ in range(repeats):
                for name, reader in readers.items():
                    proxy.reset()
                    runs[name].append(run_worker(reader["python"], reader["script"], dict(reader["spec"], queries=queries)))
            row = {"box": box, "readers": {name: summarise(answers) for name, answers in runs.items()}}
            rows.append(row)
            log(f"  half side {box['label']:>5}: " + "  ".join(
                f"{name} cold {r['cold_s']:.3f} s warm {r['warm_s']:.3f} s filtered {r['filtered_s']:.3f} s ({r['requests']['open']}+{r['requests']['cold']} req)"
                for name, r in row["readers"].items()) + f"  ({row['readers']['engine']['rows']:,} rows)")
        results[str(latency)] = rows
    return results


REPEATED_STEPS = ("warm", "filtered")  # steps run WARM_RUNS times in each process: their median over every run


def summarise(answers: List[Dict]) -> Dict:
    """One reader's measurements of one box: median times over the repeats (repeated steps: over each of their
    queries in every repeat), counts and results of the first."""
    def median(get):
        return statistics.median(get(a) for a in answers)

    def step(answer, name):
        return next(q for q in answer["queries"] if q["name"] == name)

    def seconds_of(answer, name):
        return [q["seconds"] for q in answer["queries"] if q["name"] == name]

    def per_step(key):
        """``key`` (requests, bytes, connections) of the open and each step of the first run (a repeated step's last)."""
        return {"open": first["open"][key], **{q["name"]: q[key] for q in first["queries"]}}

    first = answers[0]
    out = {
        "open_s": median(lambda a: a["open"]["seconds"]),
        "first_query_s": median(lambda a: step(a, "cold")["seconds"]),
        "cold_s": median(lambda a: a["open"]["seconds"] + step(a, "cold")["seconds"]),
        "process_s": median(lambda a: a["process_s"]),
        **{f"{name}_s": statistics.median(t for a in answers for t in seconds_of(a, name)) for name in REPEATED_STEPS},
        "nearby_s": median(lambda a: step(a, "nearby")["seconds"]),
        "requests": per_step("requests"), "bytes": per_step("bytes"), "connections": per_step("connections"),
        "rows": step(first, "cold")["rows"], "checksum": step(first, "cold")["checksum"],
        "results": {q["name"]: [q["rows"], q["checksum"]] for a in answers for q in a["queries"]},
        "consistent": all([q["rows"], q["checksum"]] == [step(first, q["name"])["rows"], step(first, q["name"])["checksum"]]
                          for a in answers for q in a["queries"]),
        "times": [{"open": a["open"]["seconds"], **{q["name"]: q["seconds"] for q in a["queries"] if q["name"] not in REPEATED_STEPS},
                   **{name: seconds_of(a, name) for name in REPEATED_STEPS}, "process": a["process_s"]} for a in answers],
    }
    for key in ("versions", "details"):
        if first.get(key):
            out[key] = first[key]
    return out


def same_results(row: Dict, name: str) -> bool:
    """Whether ``name`` gave the engine's rows and ids for every query of the row, and the same on every repeat,
    and its warm query what its cold one gave."""
    mine, engine = row["readers"][name], row["readers"]["engine"]
    return mine["consistent"] and mine["results"] == engine["results"] and mine["results"]["warm"] == mine["results"]["cold"]


# --------------------------------------------------------------------------- verdicts


def verdicts(results: Dict) -> List[Dict]:
    """The issue's targets at each latency that has one, from this run's medians."""
    out = []
    for latency, rows in results["series"].items():
        if "icesat2db" not in rows[0]["readers"]:
            continue
        target = int(latency) in TARGET_LATENCIES_MS

        def ratio(row, a, b, key):
            return row["readers"][a][key] / row["readers"][b][key]

        small = ratio(rows[0], "icesat2db", "engine", "cold_s")
        cold = [ratio(r, "icesat2db", "engine", "cold_s") for r in rows]
        warm = [ratio(r, "icesat2db", "engine", "warm_s") for r in rows]
        bare = [ratio(r, "engine", "bare", "warm_s") for r in rows]
        out.append({"latency_ms": int(latency), "target": target, "small_cold": small, "small_cold_met": small >= 1.25,
                    "cold_min": min(cold), "warm_min": min(warm), "faster_met": min(cold) > 1 and min(warm) > 1,
                    "bare_warm_max": max(bare), "bare_warm_met": max(bare) <= 1.2})
    return out


def verdict_lines(results: Dict) -> List[str]:
    def yes(ok, target):
        return ("met" if ok else "**not met**") if target else ("would be met" if ok else "would not be met") + " (no target at this latency)"

    lines = []
    smallest = results["series"][next(iter(results["series"]))][0]["box"]["label"]
    for v in verdicts(results):
        t = v["target"]
        lines.append(f"- **{v['latency_ms']} ms**: icesat2db/engine cold for the smallest box (half side {smallest}°) {v['small_cold']:.2f}, "
                     f"target >= 1.25: {yes(v['small_cold_met'], t)}. icesat2db/engine at every size, smallest ratio cold {v['cold_min']:.2f} "
                     f"and warm {v['warm_min']:.2f}, target > 1: {yes(v['faster_met'], t)}. Engine warm / bare warm, largest "
                     f"{v['bare_warm_max']:.2f}, target <= 1.2: {yes(v['bare_warm_met'], t)}.")
    return lines or ["- icesat2db was not run (`--skip-reference`): no ratios."]


# --------------------------------------------------------------------------- report


def _s(seconds: float) -> str:
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:.1f}"


def _kb(size: int) -> str:
    return f"{size / 1e3:,.0f}" if size < 10e6 else f"{size / 1e6:,.1f} M"


def latency_table(rows: List[Dict]) -> str:
    lines = ["| half side (°) | area (km²) | reader | rows | open (s) | first query (s) | **cold** (s) | process (s) | **warm** (s) | "
             "nearby (s) | filtered (s) | requests (new connections) open / first / warm / filtered | kB open / first / warm | same rows & ids |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"]
    for row in rows:
        box = row["box"]
        for name, r in row["readers"].items():
            q, b, c = r["requests"], r["bytes"], r["connections"]
            lines.append(f"| {box['label']} | {box['area_km2']:,.0f} | {name} | {r['rows']:,} | {_s(r['open_s'])} | {_s(r['first_query_s'])} | "
                         f"**{_s(r['cold_s'])}** | {_s(r['process_s'])} | **{_s(r['warm_s'])}** | {_s(r['nearby_s'])} | {_s(r['filtered_s'])} | "
                         f"{q['open']} ({c['open']}) / {q['cold']} ({c['cold']}) / {q['warm']} ({c['warm']}) / {q['filtered']} ({c['filtered']}) | {_kb(b['open'])} / {_kb(b['cold'])} / {_kb(b['warm'])} | "
                         f"{'yes' if same_results(row, name) else '**NO**'} |")
    return "\n".join(lines)


def report(results: Dict, image: str) -> str:
    m, d = results["machine"], results["database"]
    ref = results.get("reference_versions") or {}
    attributes = results.get("engine_attributes")
    out = [MARK_START, "## Latency over S3 (engine vs icesat2db vs bare TileDB, new process per measurement)", "",
           f"Generated by `tests/benchmarks/bench_latency.py` on {results['finished']} ({results['runtime_s'] / 60:.1f} min for the whole run, "
           f"{'including' if results['built_now'] else 'not including'} building the database). Re-run with "
           f"`.venv/bin/python tests/benchmarks/bench_latency.py {results['command']}`.", "",
           f"**Machine**: {m['line']}; 1-minute load average {m['load_average_start']} at the start and {m.get('load_average_end', '?')} at the end. "
           "Engine side: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ". "
           + ("icesat2db side (own virtualenv): " + ", ".join(f"{k} {v}" for k, v in ref.items()) + "." if ref else "icesat2db not run."), "",
           f"**Data**: {d['segments']:,} simulated ATL08 segments in the public layout (capacity 100000, Hilbert, 30° write tiles), one annual "
           f"batch per year {d['years'][0]}-{d['years'][-1]} (a dense set of passes over Europe and {d.get('global_passes', 1)} global passes per year and round, "
           f"{d.get('global_keep', 1.0):.0%} of their segments kept, so that most land tiles hold a fragment every year) and the last {d['late_passes']} passes of {d['years'][-1]} written afterwards, one "
           f"batch each: {d['fragments']} fragments ({d['fragment_metadata_bytes'] / 1e6:.2f} MB of fragment metadata, "
           f"{d['array_bytes'] / 1e9:.2f} GB), uploaded to a moto S3 server on loopback ({results['s3_upload']['files']:,} objects). "
           "See `tests/benchmarks/synthetic_db.py`.", "",
           "**Method**: every request goes through `tests/fault_proxy.py`, which waits the latency before forwarding each request "
           "(`FaultProxy.set_latency`; requests in parallel wait in parallel, as round trips do), and a new connection's first request "
           "two latencies more (the TCP and TLS 1.3 handshakes of an https connection; it listens with a backlog of 128), and "
           "counts the requests, the new connections and the bytes of the bodies it sends back. For each latency, box and reader a new process opens the "
           "database and queries the box: **cold** = open + first query, timed inside the process from before the open to the result "
           "(imports excluded); *process* = the whole process's wall time (interpreter start, imports, open, every query); "
           f"**warm** = the median of {WARM_RUNS} more queries of the same box in the same process (of every run); *nearby* = then the box of the same size next to it to the east; *filtered* = then the median of {WARM_RUNS} queries of the first box with the "
           f"filter `{', '.join(f'{k} {v}' for k, v in FILTERS.items())}` (the engine's and icesat2db's keyword form; bare TileDB: a query condition). "
           "Requests and bytes are counted for the open, the first query and the warm query separately. "
           f"Boxes centred at 51°N 10°E (the seed's series, {len(results['series'][next(iter(results['series']))])} of its 20 half sides), "
           f"`{', '.join(VARIABLES)}`, {START[:4]}-{END[:4]}; {results['repeats']} run(s) per reader and box, readers in turn, medians. "
           "Engine: `Atl08Database(load_config(file))` and `SegmentQuery.create(...)` to a DataFrame, the file a copy of "
           "`configs/public_atl08_v007.yaml` with its endpoint at the proxy (and the server's keys: moto refuses unsigned requests). icesat2db: `IceSat2Provider(..., url=<proxy>)`, "
           "`get_data(..., return_type=\"dataframe\", use_polygon_filter=False)`, in its own virtualenv. Bare: `tiledb.open` with the "
           "engine's context settings and, on the engine's query context (see `plugin/core/lidar/storage.py`), one `multi_index` read of `segment_id`, the variables and the three dimensions, to numpy"
           + (f" (the engine asks TileDB for {', '.join('`' + a + '`' for a in attributes)} and the dimensions)" if attributes else "")
           + ". Same rows & ids: row count and segment-id checksum (as `reference_runner.py`) of every query equal to the engine's, "
           "and the warm query's equal to the cold one's.", "",
           "**Targets** (issue 18; at 50 and 150 ms):", ""]
    out += verdict_lines(results) + ["", f"![query time against box area at each latency]({image})", ""]
    for latency, rows in results["series"].items():
        out += [f"### {latency} ms per request", "", latency_table(rows), ""]
    out += [MARK_END]
    return "\n".join(out)


def plot(results: Dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = results["series"]
    fig, axes = plt.subplots(1, len(series), figsize=(5.6 * len(series), 4.6), sharey=True, squeeze=False)
    colours = {"engine": "steelblue", "icesat2db": "darkorange", "bare": "dimgray"}
    every = [r["readers"][n][k] for rows in series.values() for r in rows for n in r["readers"] for k in ("cold_s", "warm_s")]
    for ax, (latency, rows) in zip(axes[0], series.items()):
        areas = [r["box"]["area_km2"] for r in rows]
        for name in rows[0]["readers"]:
            colour = colours.get(name, "black")
            ax.plot(areas, [r["readers"][name]["cold_s"] for r in rows], color=colour, marker="o", markersize=4, label=f"{name}, cold (open + query)")
            ax.plot(areas, [r["readers"][name]["warm_s"] for r in rows], color=colour, marker="x", markersize=5, linestyle="--", label=f"{name}, warm")
        ax.set_title(f"{latency} ms per request", fontsize=10)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(min(every) / 1.5, max(every) * 1.6)
        ax.set_xlabel("Bounding box area (km²)")
        ax.grid(True, which="both", linestyle="--", linewidth=0.4, alpha=0.6)
    axes[0][0].set_ylabel("Time (s)")
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"h_canopy {START[:4]}-{END[:4]}, boxes centred at 51°N 10°E, S3 through a fixed-latency proxy "
                 f"({results['database']['segments']:,} segments, {results['database']['fragments']} fragments)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    fig.savefig(temporary, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(temporary, path)


def publish(results: Dict, args, image: str) -> int:
    section = report(results, image)
    print(section)
    if not args.no_docs:
        plot(results, args.out / image)
        write_section(args.out / "BENCHMARKS.md", section, MARK_START, MARK_END)
        if results.get("first_points"):
            points = bench_first_points.section(results["first_points"], FIRST_POINTS_LATENCY_MS, FIRST_POINTS_HALF_SIDE,
                                                "the latency benchmark's database (below)")
            print(points)
            write_section(args.out / "BENCHMARKS.md", points, bench_first_points.MARK_START, bench_first_points.MARK_END)
        log(f"wrote {args.out / 'BENCHMARKS.md'} and {args.out / image}")
    return 0


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, default=2_000_000, help="at least this many segments in the database (default 2000000)")
    parser.add_argument("--global-passes", type=int, default=12, help="global passes per year and round (default 12: most land tiles occupied)")
    parser.add_argument("--global-keep", type=float, default=0.1, help="share of the global passes' segments kept (default 0.1)")
    parser.add_argument("--late-passes", type=int, default=3, help="passes of the last year written as late batches (default 3)")
    parser.add_argument("--latencies", type=int, nargs="+", default=LATENCIES_MS, help="milliseconds per request (default 0 50 150)")
    parser.add_argument("--boxes", type=int, default=6, help="how many of the seed's 20 boxes, smallest and largest always (default 6)")
    parser.add_argument("--repeats", type=int, default=1, help="new processes per reader and box (medians reported; default 1)")
    parser.add_argument("--workdir", type=Path, default=REPO / "build" / "bench", help="database, reference virtualenv, results JSON")
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="folder of BENCHMARKS.md and img/ (default docs/)")
    parser.add_argument("--reference-python", help="an existing interpreter with icesat2db (default: create <workdir>/refvenv)")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--no-docs", action="store_true", help="print the report only, do not touch BENCHMARKS.md or the figure")
    parser.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)), help="processes generating segments")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached database")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report, figure and section from <workdir>/latency.json")
    parser.add_argument("--first-points-runs", type=int, default=2,
                        help="runs of bench_first_points.py on the same database at 50 ms (0: none; default 2)")
    args = parser.parse_args(argv)

    workdir = args.workdir.resolve()
    image = "img/latency.png"
    if args.report_only:
        return publish(json.loads((workdir / "latency.json").read_text()), args, image)
    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    built = ensure_database(workdir, args.segments, args.late_passes, args.global_passes, args.global_keep, args.workers, args.rebuild)
    config, info = built["config"], built["info"]
    results = {"machine": machine(), "database": info, "built_now": built["built_now"], "repeats": args.repeats,
               "command": " ".join(["--segments", str(args.segments), "--global-passes", str(args.global_passes), "--global-keep",
                                    str(args.global_keep), "--late-passes", str(args.late_passes), "--latencies",
                                    *map(str, args.latencies), "--boxes", str(args.boxes), "--repeats", str(args.repeats),
                                    "--workdir", os.path.relpath(workdir, REPO), "--out", os.path.relpath(args.out.resolve(), REPO)])}
    reference = None if args.skip_reference else reference_python(workdir, args.reference_python)
    boxes = chosen_boxes(args.boxes)
    with MotoServer() as server:
        log(f"uploading the database to {server.endpoint}")
        results["s3_upload"] = upload(server.endpoint, Path(config.local_path), BUCKET)
        with FaultProxy(server.endpoint) as proxy:
            config_file = engine_config_file(workdir / "latency-engine.yaml", proxy.url)
            common = {"proxy": proxy.url, "start": START, "end": END, "variables": VARIABLES}
            readers = {"engine": {"python": sys.executable, "script": READERS["engine"], "spec": dict(common, config=str(config_file))}}
            if reference:
                job = {"storage": "s3", "s3": {"bucket": BUCKET, "url": proxy.url, "region": REGION,
                                               "key": S3_KEYS["aws_access_key_id"], "secret": S3_KEYS["aws_secret_access_key"]}}
                readers["icesat2db"] = {"python": reference, "script": READERS["icesat2db"], "spec": dict(common, reference=job)}
            readers["bare"] = {"python": sys.executable, "script": READERS["bare"], "spec": dict(common, config=str(config_file))}
            results["series"] = measure(readers, boxes, args.latencies, args.repeats, proxy)
            if args.first_points_runs:
                # the dialog's path on a box of about a million segments: first points against the whole layer
                proxy.set_latency(FIRST_POINTS_LATENCY_MS / 1000)
                log(f"first points: {args.first_points_runs} runs at {FIRST_POINTS_LATENCY_MS} ms")
                results["first_points"] = bench_first_points.measure_first_points(
                    proxy.url, BUCKET, S3_KEYS["aws_access_key_id"], S3_KEYS["aws_secret_access_key"], FIRST_POINTS_HALF_SIDE,
                    args.first_points_runs)
    first = results["series"][str(args.latencies[0])][0]["readers"]
    results["reference_versions"] = first.get("icesat2db", {}).get("versions")
    results["engine_attributes"] = first["engine"].get("details", {}).get("attributes")
    results["finished"] = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    results["runtime_s"] = time.perf_counter() - started
    results["machine"]["load_average_end"] = round(os.getloadavg()[0], 2)
    json_path = workdir / "latency.json"
    json_path.write_text(json.dumps(results, indent=1, default=str))
    log(f"results: {json_path} ({results['runtime_s'] / 60:.1f} min)")
    return publish(results, args, image)


if __name__ == "__main__":
    raise SystemExit(main())
