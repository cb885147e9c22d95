"""Grid-change benchmark: the engine's streamed hexagon statistics vs the seed's pandas + KD-tree approach.

    .venv/bin/python tests/benchmarks/bench_grid_change.py --segments 10000000 --workdir build/bench --out docs

Data: a synthetic global ATL08 database (``synthetic_db``: simulated ICESat-2 passes over
land, all attributes, public layout) of at least ``--segments`` segments over the years
2019, 2020, 2022 and 2023, so that the seed's two periods (2018-10-01..2021-12-31 and
2022-01-01..2025-12-31) each hold half. Built once under ``<workdir>/grid-<key>/``.

Contenders, each in a fresh process, in turns, ``--rounds`` times:

* engine: ``grid_change`` (``plugin/core/grid/change.py``) over the seed's global box with
  the seed's quality filters, 100 km Equal Earth hexagons and MIN_SHOTS 100, batches of
  ``--batch-rows`` segments, then the styled-less GeoPackage of the kept cells;
* seed: the seed's code path (``seeds/000_*``, "Global Canopy Height Dynamics"): each
  period loaded whole into a pandas DataFrame (through the engine's ``query``, which is
  faster than the reference package, so the comparison isolates the approach), projected
  with pyproj, assigned to the nearest hexagon centre with a ``cKDTree`` built over the
  whole projected extent, ``groupby(...).agg(median, count)``, MIN_SHOTS, inner join,
  and shapely polygons for the surviving cells. Its lattice is anchored like the
  engine's so that cells compare one to one.

Measured: wall time of the work (after imports), and resident memory sampled every
20 ms by the parent from ``/proc/<pid>/status`` (peak = ``VmHWM``; "work" subtracts the
resident size after imports). The cells and medians of both are compared. Writes the
``grid-change`` section of ``<out>/BENCHMARKS.md`` and ``<out>/img/grid_change_memory.png``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

from benchmarks_md import machine_line, write_section  # noqa: E402

import synthetic_db  # noqa: E402

YEARS = (2019, 2020, 2022, 2023)
GLOBAL_BOX = (-179.9, -60.0, 179.9, 80.0)
PERIODS = (("2018-10-01", "2021-12-31"), ("2022-01-01", "2025-12-31"))
CELL_KM = 100.0
MIN_SHOTS = 100
MARK_START, MARK_END = "<!-- grid-change:start -->", "<!-- grid-change:end -->"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- contenders (run in child processes)


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def run_engine(job: Dict) -> Dict:
    from canopy_explorer.plugin.core.lidar.config import local_config
    from canopy_explorer.plugin.core.lidar.database import Atl08Database
    from canopy_explorer.plugin.core.grid.change import GridChangeRequest, grid_change, write_cells_geopackage
    from canopy_explorer.plugin.core.lidar.atl08.presets import GOOD_CANOPY

    baseline = _rss_kb("VmRSS")
    started = time.perf_counter()
    database = Atl08Database(local_config(job["database"]))
    result = grid_change(GridChangeRequest.create(database, roi=GLOBAL_BOX, periods=PERIODS, cell_size_km=CELL_KM,
                                                  min_shots=MIN_SHOTS, filters=GOOD_CANOPY, batch_rows=job["batch_rows"]))
    write_cells_geopackage(result, job["output"])
    return {"seconds": time.perf_counter() - started, "baseline_kb": baseline, "cells": [int(c) for c in result.cell],
            "median_p1": result.columns["median_p1"].tolist(), "median_p2": result.columns["median_p2"].tolist(),
            "segments": list(result.segments), "batches": result.batches}


def run_seed(job: Dict) -> Dict:
    import pandas as pd
    import shapely
    from pyproj import Transformer
    from scipy.spatial import cKDTree

    from canopy_explorer.plugin.core.lidar.config import local_config
    from canopy_explorer.plugin.core.lidar.database import Atl08Database
    from canopy_explorer.plugin.core.grid.equal_area_grid import pack
    from canopy_explorer.plugin.core.lidar.atl08.presets import GOOD_CANOPY
    from canopy_explorer.plugin.core.lidar.query import SegmentQuery

    baseline = _rss_kb("VmRSS")
    started = time.perf_counter()
    proj = "EPSG:8857"
    r = CELL_KM * 1000 / 2
    dx, dy = 1.5 * r, np.sqrt(3) * r
    to_proj = Transformer.from_crs("EPSG:4326", proj, always_xy=True)
    xs, _ = to_proj.transform(np.linspace(-179.9, 179.9, 720), np.zeros(720))
    _, ymin = to_proj.transform(0, -60)
    _, ymax = to_proj.transform(0, 80)
    xmin, xmax = xs.min(), xs.max()
    # the seed's lattice, anchored at an even column and a whole row so its cells are the engine's
    first_col = int(np.floor(xmin / dx / 2) * 2)
    first_row = int(np.floor(ymin / dy))
    cols = int((xmax - first_col * dx) / dx) + 2
    rows = int((ymax - first_row * dy) / dy) + 2
    col_flat, row_flat = (a.ravel() for a in np.meshgrid(np.arange(cols), np.arange(rows)))
    cx = (first_col + col_flat) * dx
    cy = (first_row + row_flat) * dy + np.where(col_flat % 2 == 1, dy / 2, 0.0)
    centers = np.column_stack([cx, cy])
    q = first_col + col_flat
    hex_ids = pack(q, first_row + row_flat - (q - (q & 1)) // 2)  # axial (q, r) of each centre, as the engine names cells
    tree = cKDTree(centers)
    database = Atl08Database(local_config(job["database"]))

    def fetch_and_aggregate(start, end):
        frame = database.query(SegmentQuery.create(roi=GLOBAL_BOX, start=start, end=end, variables=["h_canopy"], filters=GOOD_CANOPY))
        df = frame[["latitude", "longitude", "h_canopy"]].dropna(subset=["h_canopy"]).astype(
            {"h_canopy": "float32", "latitude": "float32", "longitude": "float32"})
        del frame
        px, py = to_proj.transform(df["longitude"].values, df["latitude"].values)
        _, nn = tree.query(np.column_stack([px, py]), workers=-1)
        agg = pd.DataFrame({"hex_id": hex_ids[nn], "h_canopy": df["h_canopy"].values}).groupby("hex_id")["h_canopy"].agg(
            h_canopy="median", n_shots="count")
        return agg[agg["n_shots"] >= MIN_SHOTS][["h_canopy"]], len(df)

    agg1, n1 = fetch_and_aggregate(*PERIODS[0])
    agg2, n2 = fetch_and_aggregate(*PERIODS[1])
    hex_df = agg1.rename(columns={"h_canopy": "h_canopy_p1"}).join(agg2.rename(columns={"h_canopy": "h_canopy_p2"}), how="inner")
    hex_df["delta_h_canopy"] = (hex_df["h_canopy_p2"] - hex_df["h_canopy_p1"]).astype("float32")
    angles = np.linspace(0, 2 * np.pi, 7)[:-1]
    offsets = np.stack([r * np.cos(angles), r * np.sin(angles)], axis=1)
    surviving = np.isin(hex_ids, hex_df.index.values)
    vertices = centers[surviving][:, np.newaxis, :] + offsets[np.newaxis, :, :]
    polygons = [shapely.Polygon(v) for v in vertices]
    hex_df = hex_df.reindex(hex_ids[surviving])
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "baseline_kb": baseline, "cells": [int(c) for c in hex_df.index], "polygons": len(polygons),
            "median_p1": hex_df["h_canopy_p1"].astype(float).tolist(), "median_p2": hex_df["h_canopy_p2"].astype(float).tolist(),
            "segments": [n1, n2]}


def child_main(kind: str, job_path: str) -> None:
    # Both contenders import the same libraries before their baseline is taken.
    import osgeo.ogr  # noqa: F401
    import pandas  # noqa: F401
    import pyproj  # noqa: F401
    import scipy.spatial  # noqa: F401
    import shapely  # noqa: F401
    import tiledb  # noqa: F401

    job = json.loads(Path(job_path).read_text())
    outcome = (run_engine if kind == "engine" else run_seed)(job)
    outcome["peak_kb"] = _rss_kb("VmHWM")
    Path(job["result"]).write_text(json.dumps(outcome))


# --------------------------------------------------------------------------- parent


def measure(kind: str, job: Dict, workdir: Path) -> Dict:
    """Run one contender in its own process, sampling its resident memory."""
    job_path = workdir / f"job-{kind}.json"
    job = dict(job, result=str(workdir / f"result-{kind}.json"))
    job_path.write_text(json.dumps(job))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO.parent), os.environ.get("PYTHONPATH", "")])))
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, __file__, "--child", kind, str(job_path)], env=env)
    samples = []
    status = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    samples.append((time.perf_counter() - started, int(line.split()[1]) / 1024))
        except OSError:
            pass
        time.sleep(0.02)
    if process.returncode != 0:
        raise RuntimeError(f"the {kind} contender failed with exit code {process.returncode}")
    outcome = json.loads(Path(job["result"]).read_text())
    outcome["memory_mb"] = samples
    return outcome


def build_database(workdir: Path, segments: int, workers: int):
    from canopy_explorer.plugin.core.lidar.config import local_config

    spec = synthetic_db.BuildSpec(segments=segments, years=YEARS)
    folder = workdir / f"grid-{spec.key()}" / "db"
    marker = folder.parent / "build.json"
    if not marker.exists():
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        log(f"building a {segments:,}+ segment database under {folder} (cached for later runs)")
        timings = synthetic_db.build(spec, [local_config(folder)], workers=workers, log=log)
        marker.write_text(json.dumps({"segments": timings["segments"], "generate_s": timings["generate"]}))
    return folder, json.loads(marker.read_text())


def machine() -> str:
    import tiledb

    return machine_line(numpy=np.__version__, **{"TileDB-Py": tiledb.__version__})


def compare(engine: Dict, seed: Dict) -> Dict:
    e = {c: (a, b) for c, a, b in zip(engine["cells"], engine["median_p1"], engine["median_p2"])}
    s = {c: (a, b) for c, a, b in zip(seed["cells"], seed["median_p1"], seed["median_p2"])}
    common = sorted(set(e) & set(s))
    differences = [abs(e[c][i] - s[c][i]) for c in common for i in (0, 1)]
    return {"engine_cells": len(e), "seed_cells": len(s), "common": len(common), "max_median_difference": max(differences, default=0.0)}


def plot(results: Dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    largest = results["sizes"][-1]
    runs = largest["runs"]
    figure, axis = plt.subplots(figsize=(8, 4.5), dpi=110)
    for kind, colour in (("seed", "#b2182b"), ("engine", "#2166ac")):
        run = runs[kind][0]
        t, mb = zip(*run["memory_mb"]) if run["memory_mb"] else ((0,), (0,))
        axis.plot(t, mb, color=colour, label=f"{kind} (peak {run['peak_kb'] / 1024:.0f} MB, {run['seconds']:.1f} s of work)")
    axis.set_xlabel("time since the process started (s)")
    axis.set_ylabel("resident memory (MB)")
    axis.set_title(f"Grid change over {largest['database']['segments']:,} synthetic segments: memory over time")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)


def _summary(size: Dict) -> Dict:
    runs = size["runs"]

    def med(kind, key):
        return statistics.median(r[key] for r in runs[kind])

    out = {}
    for kind in ("engine", "seed"):
        out[kind] = {"seconds": med(kind, "seconds"), "peak": med(kind, "peak_kb") / 1024,
                     "work": (med(kind, "peak_kb") - med(kind, "baseline_kb")) / 1024}
    return out


def report(results: Dict) -> str:
    largest = results["sizes"][-1]
    lines = [
        MARK_START,
        "## Grid change: streamed hexagon statistics vs the seed's pandas + KD-tree",
        "",
        f"Generated by `tests/benchmarks/bench_grid_change.py` on {results['date']} "
        f"(`--segments {' '.join(str(s['segments_asked']) for s in results['sizes'])} --batch-rows {results['batch_rows']} "
        f"--rounds {results['rounds']}`).",
        "",
        f"**Machine**: {results['machine']}.",
        "",
        "**Data**: synthetic global ATL08 databases (all attributes, public layout, `synthetic_db`: global passes over land plus a "
        "denser European set) over 2019, 2020, 2022 and 2023. Both contenders answer the seed's question: `h_canopy`, the seed's "
        "quality filters, periods 2018-10-01..2021-12-31 and 2022-01-01..2025-12-31, the global box, 100 km Equal Earth hexagons, "
        "MIN_SHOTS 100. Each run is a fresh process (median of the rounds); the engine also writes the GeoPackage. \"Work\" is the "
        "peak resident memory minus the resident memory after importing the same libraries.",
        "",
        "| segments | passing the filters | contender | wall time (s) | peak memory (MB) | work memory (MB) | cells |",
        "|---:|---:|---|---:|---:|---:|---:|",
    ]
    verdicts = []
    for size in results["sizes"]:
        summary, c = _summary(size), size["comparison"]
        passing = sum(size["runs"]["engine"][0]["segments"])
        for kind, name in (("seed", "seed: pandas, cKDTree, groupby"), ("engine", f"engine: `grid_change`, {results['batch_rows']:,}-row batches")):
            m = summary[kind]
            lines.append(f"| {size['database']['segments']:,} | {passing:,} | {name} | {m['seconds']:.1f} | {m['peak']:.0f} | {m['work']:.0f} | "
                         f"{c[kind + '_cells']:,} |")
        e, s_ = summary["engine"], summary["seed"]
        verdicts.append(
            f"- {size['database']['segments']:,} segments: {s_['seconds'] / e['seconds']:.2f}x faster "
            f"({'met' if e['seconds'] < s_['seconds'] else '**not met**'}); peak memory {s_['peak'] / e['peak']:.1f}x lower, work memory "
            f"{s_['work'] / max(e['work'], 1):.1f}x lower (target 5x: {'met' if s_['peak'] / e['peak'] >= 5 else ('met for the work memory' if s_['work'] / max(e['work'], 1) >= 5 else '**not met**')}); "
            f"{c['common']:,} cells in both, largest median difference {c['max_median_difference']:.4f} m.")
    growth = ""
    if len(results["sizes"]) > 1:
        first, last = results["sizes"][0], results["sizes"][-1]
        a, b = _summary(first), _summary(last)
        growth = (f" From {first['database']['segments']:,} to {last['database']['segments']:,} segments "
                  f"({last['database']['segments'] / first['database']['segments']:.1f}x), the seed's work memory grew "
                  f"{b['seed']['work'] / a['seed']['work']:.1f}x and the engine's {b['engine']['work'] / max(a['engine']['work'], 1):.1f}x "
                  f"(cells with data: {first['comparison']['engine_cells']:,} and {last['comparison']['engine_cells']:,} kept).")
    lines += ["", "Targets (faster, and peak memory at least 5x lower) and correctness, per size:", ""] + verdicts + [
        "",
        "The seed holds every segment of a period at once (a DataFrame, then projected coordinates and KD-tree indexes), so its "
        "memory grows with the segments. The engine holds one batch, the per-cell histograms (they grow with the number of "
        "cells and of distinct 0.05 m values per cell, not with the segments) and TileDB's fragment metadata (it grows with "
        "the number of fragments)." + growth + " The engine's medians are within 0.025 m of exact by design (values are "
        "binned at 0.05 m); the seed's are exact.",
        "",
        f"![resident memory over time, {largest['database']['segments']:,} segments](img/grid_change_memory.png)",
        MARK_END,
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, nargs="+", default=[10_000_000, 25_000_000],
                        help="database sizes (at least this many segments each; default 10000000 25000000)")
    parser.add_argument("--workdir", type=Path, default=REPO / "build" / "bench")
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    parser.add_argument("--batch-rows", type=int, default=250_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(*args.child)
        return 0
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    import datetime as dt

    results = {"date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "machine": machine(), "batch_rows": args.batch_rows,
               "rounds": args.rounds, "sizes": []}
    for segments in args.segments:
        folder, database = build_database(workdir, segments, args.workers)
        job = {"database": str(folder), "batch_rows": args.batch_rows, "output": str(workdir / "grid_change_engine.gpkg")}
        runs = {"engine": [], "seed": []}
        for round_number in range(args.rounds):
            for kind in ("seed", "engine"):
                (workdir / "grid_change_engine.gpkg").unlink(missing_ok=True)
                outcome = measure(kind, job, workdir)
                runs[kind].append(outcome)
                log(f"{database['segments']:,} segments, round {round_number + 1} {kind}: {outcome['seconds']:.1f} s, "
                    f"peak {outcome['peak_kb'] / 1024:.0f} MB, {len(outcome['cells'])} cells")
        results["sizes"].append({"segments_asked": segments, "database": database, "runs": runs,
                                 "comparison": compare(runs["engine"][0], runs["seed"][0])})
    (workdir / "grid_change.json").write_text(json.dumps(results))
    section = report(results)
    print(section)
    if not args.no_docs:
        plot(results, args.out / "img" / "grid_change_memory.png")
        write_section(args.out / "BENCHMARKS.md", section, MARK_START, MARK_END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
