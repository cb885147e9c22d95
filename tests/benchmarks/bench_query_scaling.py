"""Query-scaling benchmark: the seed's series, engine vs the reference package vs bare TileDB.

    .venv/bin/python tests/benchmarks/bench_query_scaling.py \\
        --segments 5000000 --workdir build/bench --out docs

The series is the seed document's (``seeds/000_*``, "Query Performance Benchmark"):
bounding boxes centred at 51 N 10 E with half sides 0.25 to 20 degrees in 20 steps,
plus the full extent (-179.9..179.9, -60..80, counted as 150 M km2 as the seed does),
``h_canopy`` for 2020, median of 3 timed runs after one untimed warm-up run per box
(the readers take turns run by run, so bursts of other load hit them alike).
Readers, all on the same array in the same run:

* engine: ``Atl08Database(config).query(SegmentQuery.create(roi=box, ...))`` to a
  DataFrame (one database object per series, as the plugin keeps one);
* bare TileDB: one open array, ``query(attrs=["h_canopy"], dims=[latitude,
  longitude, time]).multi_index[...]`` to numpy, nothing else (the physical limit);
  and the same with exactly the attributes the engine requests ("bare, engine's
  attributes"), which separates what the engine reads from what it does;
* reference: ``icesat2db.IceSat2Provider(...).get_data(..., return_type="dataframe")``
  in its own virtualenv (``<workdir>/refvenv``, created from
  ``reference-requirements.txt``), run by ``reference_runner.py``.

Series: the public layout (capacity 100000, Hilbert, 30-degree write tiles) on local
disk; the same array on a loopback S3 server (moto, in its own process); and a
layout recommended for databases users build themselves (``--recommended-capacity``).
The database (``synthetic_db``: simulated ICESat-2 passes, all attributes) is built
once per parameter set under ``<workdir>/db-<key>/`` and reused.

Outputs: a markdown report on stdout, ``<workdir>/query_scaling.json``, the figure
``<out>/img/query_scaling.png`` and the section between ``<!-- query-scaling:start -->``
and ``<!-- query-scaling:end -->`` of ``<out>/BENCHMARKS.md`` (other sections kept).
Timings are never pass/fail: targets are reported as met or missed. After the series,
a diagnostic pass splits the engine's time into phases (its read, its DataFrame, the
freshness check, and the price of exact times).

Run time on 2 cores: about 7 minutes the first time (building 5.8 M segments in two
layouts takes about 2 minutes, the reference virtualenv about 1, the S3 upload about 1),
about 5 to 6 minutes afterwards. ``--skip-s3``, ``--skip-reference``, ``--skip-recommended``
and ``--skip-diagnostics`` shorten it; ``--max-load 1.0`` first waits for a quiet
machine (other processes make single timings noisy); ``--reference-python`` reuses an
existing interpreter that has icesat2db.
"""

import argparse
import datetime as dt
import gc
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

from benchmarks_md import machine_line, write_section  # noqa: E402

import synthetic_db  # noqa: E402

CENTRE_LON, CENTRE_LAT = 10.0, 51.0
HALF_SIDES = [float(h) for h in np.linspace(0.25, 20.0, 20)]
GLOBAL_BOX = (-179.9, -60.0, 179.9, 80.0)
GLOBAL_AREA_KM2 = 150_000_000
VARIABLES = ["h_canopy"]
START, END = "2020-01-01", "2020-12-31"
BUCKET = "atl08-bench"
S3_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
CHECKSUM_MOD = 2**61 - 1
MARK_START, MARK_END = "<!-- query-scaling:start -->", "<!-- query-scaling:end -->"


def log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- series


def series_boxes() -> List[Dict]:
    boxes = []
    for half in HALF_SIDES:
        area = (2 * half) ** 2 * 111.0 * (111.0 * np.cos(np.radians(CENTRE_LAT)))  # as the seed computes it
        boxes.append({"label": f"{half:.2f}", "half": half, "area_km2": float(area),
                      "bounds": (CENTRE_LON - half, CENTRE_LAT - half, CENTRE_LON + half, CENTRE_LAT + half)})
    boxes.append({"label": "full", "half": None, "area_km2": float(GLOBAL_AREA_KM2), "bounds": GLOBAL_BOX})
    return boxes


def checksum(segment_id) -> int:
    """Order-independent fingerprint of a result (same formula as reference_runner)."""
    if segment_id is None or not len(segment_id):
        return 0
    values = np.asarray(segment_id).astype(np.uint64) % np.uint64(CHECKSUM_MOD)
    return int(np.sum(values, dtype=np.uint64) % np.uint64(CHECKSUM_MOD))


def time_calls(call: Callable[[], object], repeats: int):
    """One untimed warm-up call, then ``repeats`` timed ones; (median seconds, all times, last result)."""
    result = call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times, result


class _Timed:
    def timed(self, bounds) -> float:
        """Seconds for one call (the result is dropped after the clock stops)."""
        started = time.perf_counter()
        result = self(bounds)
        elapsed = time.perf_counter() - started
        del result
        return elapsed


class EngineReader(_Timed):
    name = "engine"

    def __init__(self, config):
        from canopy_explorer.plugin.core.lidar.database import Atl08Database

        self.db = Atl08Database(config)

    def __call__(self, bounds):
        from canopy_explorer.plugin.core.lidar.query import SegmentQuery

        return self.db.query(SegmentQuery.create(roi=tuple(bounds), start=START, end=END, variables=VARIABLES))

    @staticmethod
    def describe(frame):
        return len(frame), checksum(frame["segment_id"].to_numpy())

    def close(self):
        self.db.close()


class BareReader(_Timed):
    """One open array, one multi_index read of the given attributes; numpy dicts, nothing else."""

    def __init__(self, config, attrs, name):
        import tiledb
        from canopy_explorer.plugin.core.lidar.storage import make_context

        self.name = name
        self.attrs = list(attrs)
        self.array = tiledb.open(config.array_uri, mode="r", ctx=make_context(config, reading=True))
        self.days = _day_range()

    def __call__(self, bounds):
        lon_min, lat_min, lon_max, lat_max = bounds
        query = self.array.query(attrs=self.attrs, dims=["latitude", "longitude", "time"])
        return query.multi_index[lat_min:lat_max, lon_min:lon_max, self.days[0]:self.days[1]]

    @staticmethod
    def describe(raw):
        return len(raw["latitude"]), (checksum(raw["segment_id"]) if "segment_id" in raw else None)

    def close(self):
        self.array.close()


def _day_range():
    epoch = dt.date(1970, 1, 1)
    return (dt.date.fromisoformat(START) - epoch).days, (dt.date.fromisoformat(END) - epoch).days


def engine_attributes(config) -> List[str]:
    """The attributes the engine asks TileDB for in this series (its own list, not a copy)."""
    from canopy_explorer.plugin.core.lidar.database import Atl08Database
    from canopy_explorer.plugin.core.lidar.query import SegmentQuery

    db = Atl08Database(config)
    try:
        return db._attributes(SegmentQuery.create(roi=series_boxes()[0]["bounds"], start=START, end=END, variables=VARIABLES))
    finally:
        db.close()


def run_series(config, boxes, repeats, reference=None) -> Dict[str, List[Dict]]:
    """Engine, bare, bare with the engine's attributes and (if given) the reference on every box:
    each reader answers the box once untimed (warm-up), then the readers take turns for
    ``repeats`` timed rounds, so that a burst of other load on the machine hits them alike."""
    readers = [
        EngineReader(config),
        BareReader(config, ["h_canopy"], "bare"),
        BareReader(config, engine_attributes(config), "bare_engine_attrs"),
    ]
    if reference is not None:
        readers.append(reference)
    results = {reader.name: [] for reader in readers}
    try:
        for box in boxes:
            times = {reader.name: [] for reader in readers}
            described = {}
            for reader in readers:
                described[reader.name] = reader.describe(reader(box["bounds"]))
            for _ in range(repeats):
                for reader in readers:
                    gc.collect()
                    times[reader.name].append(reader.timed(box["bounds"]))
            for reader in readers:
                rows, digest = described[reader.name]
                results[reader.name].append({"median_s": statistics.median(times[reader.name]), "times": times[reader.name], "rows": rows, "checksum": digest})
            log(f"    {box['label']:>5}: " + "  ".join(f"{n} {r[-1]['median_s'] * 1000:.1f} ms" for n, r in results.items()) + f"  ({results['engine'][-1]['rows']:,} rows)")
    finally:
        for reader in readers[:3]:
            reader.close()
    return results


# --------------------------------------------------------------------------- reference


def reference_python(workdir: Path, given: Optional[str]) -> str:
    """The reference virtualenv's interpreter, creating ``<workdir>/refvenv`` when needed."""
    if given:
        return given
    requirements = HERE / "reference-requirements.txt"
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    venv = workdir / "refvenv"
    python = venv / "bin" / "python"
    stamp = venv / ".requirements-sha256"
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return str(python)
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    log(f"creating the reference virtualenv {venv} ({base}, {requirements.name})")
    subprocess.run([str(base), "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(requirements)], check=True)
    stamp.write_text(wanted)
    return str(python)


class ReferenceProcess:
    """reference_runner.py in the reference's virtualenv, answering one box per request."""

    def __init__(self, python: str, job: Dict):
        self.process = subprocess.Popen([python, str(HERE / "reference_runner.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, bufsize=1)
        self.versions = self._ask(dict(job, start=START, end=END, variables=VARIABLES))["versions"]

    def _ask(self, message: Dict) -> Dict:
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(30)
            raise RuntimeError(f"the reference runner stopped:\n{self.process.stderr.read()[-4000:]}")
        return json.loads(line)

    name = "reference"

    def __call__(self, bounds) -> Dict:
        """One untimed call (the warm-up); its answer carries the rows and checksum."""
        return self._ask({"bounds": list(bounds), "repeats": 0})

    def timed(self, bounds) -> float:
        return self._ask({"bounds": list(bounds), "repeats": 1, "warmup": False})["times"][0]

    @staticmethod
    def describe(answer):
        return answer["rows"], answer["checksum"]

    def close(self):
        self.process.stdin.close()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


# --------------------------------------------------------------------------- S3


class MotoServer:
    """A loopback S3 server (moto) in its own process."""

    def __enter__(self):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{port}"
        self.log = open(os.devnull, "w")
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(200):
            try:
                urllib.request.urlopen(self.endpoint, timeout=1)
                return self
            except OSError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("the moto S3 server did not start")

    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def upload(endpoint: str, folder: Path, bucket: str) -> Dict:
    """Copy a database folder (array and ledger) into a new bucket; returns files, bytes, seconds."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **S3_KEYS)
    client.create_bucket(Bucket=bucket)
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: client.upload_file(str(p), bucket, p.relative_to(folder).as_posix()), files))
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files), "seconds": time.perf_counter() - started}


def s3_database_config(endpoint: str, bucket: str):
    from canopy_explorer.plugin.core.lidar.config import DatabaseConfig

    return DatabaseConfig(storage_type="s3", s3_bucket=bucket, url=endpoint, s3_region="us-east-1", s3_settings=dict(S3_KEYS), source="benchmark").with_changes()


# --------------------------------------------------------------------------- diagnostics


PHASES = {
    "engine": "engine query",
    "engine_exact": "engine query, exact times",
    "read_engine_attrs": "TileDB read, engine's attributes",
    "read_exact_attrs": "TileDB read, exact-times attributes",
    "to_frame": "`_to_frame`",
    "read_h_canopy": "TileDB read, h_canopy only",
    "list_commits": "commit listing",
    "reopen": "reopen",
}


def diagnose(config, boxes, repeats) -> List[Dict]:
    """Where the engine's time goes, for the smallest box and the full extent.

    Measured on the engine's own objects: its query with day times (the default, what the
    series times) and with exact times; the bare TileDB reads of exactly the attributes and
    dimensions each of those issues (``_attributes``); ``_to_frame``; the bare ``h_canopy``
    read; the commit listing that detects new fragments (overlapped with the read on S3);
    and a reopen (paid only when fragments have landed).
    """
    from canopy_explorer.plugin.core.lidar.database import Atl08Database
    from canopy_explorer.plugin.core.lidar.query import SegmentQuery

    db = Atl08Database(config)
    rows = []
    try:
        for box in (boxes[0], boxes[-1]):
            spec = SegmentQuery.create(roi=tuple(box["bounds"]), start=START, end=END, variables=VARIABLES)
            exact = SegmentQuery.create(roi=tuple(box["bounds"]), start=START, end=END, variables=VARIABLES, exact_times=True)
            (lon_min, lat_min, lon_max, lat_max), = spec.parts
            first_day, last_day = spec.day_range
            array = db._array()

            def bare(attrs, dims):
                return lambda: array.query(attrs=attrs, dims=dims).multi_index[lat_min:lat_max, lon_min:lon_max, first_day:last_day]

            phases = {}
            phases["engine"], _, frame = time_calls(lambda: db.query(spec), repeats)
            phases["engine_exact"], _, _ = time_calls(lambda: db.query(exact), repeats)
            phases["read_engine_attrs"], _, raw = time_calls(bare(db._attributes(spec), ["latitude", "longitude", "time"]), repeats)
            phases["read_exact_attrs"], _, _ = time_calls(bare(db._attributes(exact), ["latitude", "longitude"]), repeats)
            phases["to_frame"], _, _ = time_calls(lambda: db._to_frame(spec, raw), repeats)
            phases["read_h_canopy"], _, _ = time_calls(bare(["h_canopy"], ["latitude", "longitude", "time"]), repeats)
            phases["list_commits"], _, _ = time_calls(db._commits, repeats)
            phases["reopen"], _, _ = time_calls(lambda: array.reopen(), repeats)
            rows.append({"box": box["label"], "rows": len(frame), "phases_s": phases, "attributes": db._attributes(spec),
                         "exact_attributes": db._attributes(exact)})
            log(f"    {box['label']:>5}: " + ", ".join(f"{PHASES[k]} {v * 1000:.1f} ms" for k, v in phases.items()))
    finally:
        db.close()
    return rows


def open_costs(config, repeats) -> Dict[str, float]:
    """Medians of opening the array, reopening an open handle, and listing its ``__commits``
    (the cheap freshness probe the engine runs before answering)."""
    import tiledb
    from canopy_explorer.plugin.core.lidar.storage import make_context

    ctx = make_context(config, reading=True)
    open_s, _, _ = time_calls(lambda: tiledb.open(config.array_uri, mode="r", ctx=ctx).close(), repeats)
    array = tiledb.open(config.array_uri, mode="r", ctx=ctx)
    reopen_s, _, _ = time_calls(lambda: array.reopen(), repeats)
    vfs = tiledb.VFS(ctx=ctx)
    list_s, _, _ = time_calls(lambda: vfs.ls(config.array_uri.rstrip("/") + "/__commits"), repeats)
    array.close()
    return {"open_s": open_s, "reopen_s": reopen_s, "list_commits_s": list_s}


def consolidate_fragment_metadata(config) -> float:
    import tiledb
    from canopy_explorer.plugin.core.lidar.storage import make_context

    ctx = make_context(config)
    settings = dict(ctx.config().items())
    settings["sm.consolidation.mode"] = "fragment_meta"
    started = time.perf_counter()
    tiledb.consolidate(config.array_uri, config=tiledb.Config(settings), ctx=ctx)
    return time.perf_counter() - started


# --------------------------------------------------------------------------- databases


def layout_configs(root: Path, recommended_capacity: int, recommended_tile: int):
    from canopy_explorer.plugin.core.lidar.config import local_config

    public = local_config(root / "public_cap100000_tile30", capacity=100000, latitude_tile=6, longitude_tile=6, cell_order="hilbert")
    recommended = local_config(root / f"recommended_cap{recommended_capacity}_tile{recommended_tile * 5}",
                               capacity=recommended_capacity, latitude_tile=recommended_tile, longitude_tile=recommended_tile, cell_order="hilbert")
    return {"public": public, "recommended": recommended}


def ensure_databases(spec, configs: Dict, root: Path, workers: int, rebuild: bool) -> Dict:
    """Build the databases that are missing (all layouts from one generation); returns build info."""
    info_path = root / "build.json"
    info = json.loads(info_path.read_text()) if info_path.exists() and not rebuild else {"spec": asdict(spec), "layouts": {}}
    missing = {name: config for name, config in configs.items() if Path(config.local_path).name not in info["layouts"]}
    if missing:
        root.mkdir(parents=True, exist_ok=True)
        for config in missing.values():
            shutil.rmtree(config.local_path, ignore_errors=True)
        log(f"building {', '.join(missing)} database(s) with {spec.segments:,}+ segments under {root} (cached for later runs)")
        synthetic_db.check_against_granule(root)
        timings = synthetic_db.build(spec, list(missing.values()), workers=workers, log=log)
        for name, config in missing.items():
            info["layouts"][Path(config.local_path).name] = {
                "write_s": timings[config.array_uri], "generate_s": timings["generate"], "segments": timings["segments"],
                "capacity": config.capacity, "tile_degrees": config.tile_degrees[0]}
        info_path.write_text(json.dumps(info, indent=2))
    out = {}
    for name, config in configs.items():
        entry = dict(info["layouts"][Path(config.local_path).name])
        entry.update(layout_stats(config))
        out[name] = entry
    return out


def layout_stats(config) -> Dict:
    array = Path(config.array_uri)
    fragments = [p for p in (array / "__fragments").iterdir() if p.is_dir()]
    meta = sum((p / "__fragment_metadata.tdb").stat().st_size for p in fragments if (p / "__fragment_metadata.tdb").exists())
    size = sum(p.stat().st_size for p in array.rglob("*") if p.is_file())
    return {"fragments": len(fragments), "fragment_metadata_bytes": meta, "array_bytes": size, "column_bytes": column_bytes(config, fragments)}


def column_bytes(config, fragments) -> Dict[str, int]:
    """Bytes on disk (compressed) of the dimensions and attributes the readers ask for."""
    import tiledb

    with tiledb.open(config.array_uri, mode="r") as array:
        schema = array.schema
        names = {f"d{i}": schema.domain.dim(i).name for i in range(schema.domain.ndim)}
        names.update({f"a{i}": schema.attr(i).name for i in range(schema.nattr)})
    wanted = {"latitude", "longitude", "time", "h_canopy", "segment_id", "timestamp_ns", "beam_id"}
    sizes: Dict[str, int] = {}
    for fragment in fragments:
        for path in fragment.iterdir():
            stem = path.name.split(".")[0]
            name = names.get(stem.split("_")[0])
            if name in wanted:
                sizes[name] = sizes.get(name, 0) + path.stat().st_size
    return sizes


# --------------------------------------------------------------------------- machine


def machine() -> Dict:
    import matplotlib
    import pandas as pd
    import shapely
    import tiledb

    versions = {"tiledb-py": tiledb.__version__, "libtiledb": ".".join(map(str, tiledb.libtiledb.version())),
                "numpy": np.__version__, "pandas": pd.__version__, "shapely": shapely.__version__, "matplotlib": matplotlib.__version__}
    for module in ("moto", "boto3"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            pass
    return {"line": machine_line(), "versions": versions, "load_average_start": round(os.getloadavg()[0], 2)}


# --------------------------------------------------------------------------- report


def _ms(seconds: Optional[float]) -> str:
    return "-" if seconds is None else (f"{seconds * 1000:.1f}" if seconds < 10 else f"{seconds:.1f} s")


def _ratio(a: Optional[float], b: Optional[float]) -> str:
    return "-" if (a is None or b is None or b == 0) else f"{a / b:.2f}"


def series_table(series: Dict) -> str:
    boxes = series["boxes"]
    engine, bare, attrs = series["engine"], series["bare"], series["bare_engine_attrs"]
    reference = series.get("reference")
    lines = [
        "| half side (deg) | area (km²) | rows | engine (ms) | bare h_canopy (ms) | bare, engine's attributes (ms) | reference (ms) | engine / bare | engine / bare (engine's attrs) | reference / engine | same rows & ids |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for i, box in enumerate(boxes):
        ref = reference[i] if reference else None
        same = engine[i]["rows"] == bare[i]["rows"] == attrs[i]["rows"] and engine[i]["checksum"] == attrs[i]["checksum"]
        if ref is not None:
            same = same and ref["rows"] == engine[i]["rows"] and ref["checksum"] == engine[i]["checksum"]
        lines.append(
            f"| {box['label']} | {box['area_km2']:,.0f} | {engine[i]['rows']:,} | {_ms(engine[i]['median_s'])} | {_ms(bare[i]['median_s'])} | "
            f"{_ms(attrs[i]['median_s'])} | {_ms(ref['median_s'] if ref else None)} | {_ratio(engine[i]['median_s'], bare[i]['median_s'])} | "
            f"{_ratio(engine[i]['median_s'], attrs[i]['median_s'])} | {_ratio(ref['median_s'] if ref else None, engine[i]['median_s'])} | {'yes' if same else '**NO**'} |"
        )
    return "\n".join(lines)


def evaluate(series: Dict) -> Dict:
    """Targets: engine within 1.2x of bare at every size; faster than the reference at every
    size; at least 2x faster where the reference's fixed per-query cost dominates (boxes the
    reference answers in less than twice its smallest-box time)."""
    engine = [r["median_s"] for r in series["engine"]]
    bare = [r["median_s"] for r in series["bare"]]
    verdict = {"engine_vs_bare_max": max(e / b for e, b in zip(engine, bare))}
    verdict["engine_vs_bare_met"] = verdict["engine_vs_bare_max"] <= 1.2
    attrs = [r["median_s"] for r in series["bare_engine_attrs"]]
    verdict["engine_vs_bare_engine_attrs_max"] = max(e / b for e, b in zip(engine, attrs))
    if series.get("reference"):
        ref = [r["median_s"] for r in series["reference"]]
        speedup = [r / e for r, e in zip(ref, engine)]
        small = [i for i, r in enumerate(ref) if r < 2 * ref[0]]
        verdict.update({
            "reference_over_engine_min": min(speedup),
            "faster_everywhere_met": min(speedup) > 1.0,
            "small_boxes": [series["boxes"][i]["label"] for i in small],
            "small_box_speedup_min": min(speedup[i] for i in small),
            "small_box_2x_met": min(speedup[i] for i in small) >= 2.0,
        })
    return verdict


def verdict_lines(name: str, v: Dict) -> List[str]:
    yes = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    lines = [f"- {name}: engine within 1.2x of bare `h_canopy` read at every size: {yes(v['engine_vs_bare_met'])} "
             f"(worst {v['engine_vs_bare_max']:.2f}x; against a bare read of the engine's own attributes, worst {v['engine_vs_bare_engine_attrs_max']:.2f}x)."]
    if "reference_over_engine_min" in v:
        lines.append(f"  Faster than the reference at every size: {yes(v['faster_everywhere_met'])} (smallest reference/engine ratio {v['reference_over_engine_min']:.2f}). "
                     f"At least 2x where the reference's per-query overhead dominates (half sides {', '.join(v['small_boxes'])}): "
                     f"{yes(v['small_box_2x_met'])} (smallest ratio there {v['small_box_speedup_min']:.2f}).")
    return lines


def plot(results: Dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    panels = [(k, t) for k, t in (("local_public", "Local disk, public layout"), ("s3_public", "Loopback S3 (moto), public layout"),
                                  ("local_recommended", "Local disk, recommended layout")) if k in results["series"]]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.8), sharey=True, squeeze=False)
    every = [r["median_s"] for key, _ in panels for reader in ("engine", "reference", "bare", "bare_engine_attrs")
             for r in results["series"][key].get(reader) or []]
    styles = {"engine": ("steelblue", "-", "o", "engine (DataFrame)"), "reference": ("darkorange", "-", "s", "reference icesat2db (DataFrame)"),
              "bare": ("dimgray", "--", "^", "bare TileDB read, h_canopy"), "bare_engine_attrs": ("silver", ":", "v", "bare TileDB read, engine's attributes")}
    for ax, (key, title) in zip(axes[0], panels):
        series = results["series"][key]
        areas = [b["area_km2"] for b in series["boxes"]]
        for reader, (colour, line, marker, label) in styles.items():
            if not series.get(reader):
                continue
            times = [r["median_s"] for r in series[reader]]
            ax.plot(areas[:-1], times[:-1], color=colour, linestyle=line, linewidth=1.2, alpha=0.8, marker=marker, markersize=4, label=label)
            ax.scatter(areas[-1:], times[-1:], color=colour, marker="*", s=160, zorder=4)
        if key == "local_recommended" and "local_public" in results["series"]:
            public = results["series"]["local_public"]["engine"]
            ax.plot(areas[:-1], [r["median_s"] for r in public[:-1]], color="steelblue", linestyle="-.", linewidth=1, alpha=0.5, label="engine on the public layout (left panel)")
            ax.legend(fontsize=7, loc="upper left")
        x_break = (areas[-2] * areas[-1]) ** 0.5
        ax.axvline(x_break, color="grey", linestyle=(0, (4, 4)), linewidth=0.8, alpha=0.7)
        ax.set_title(title, fontsize=10)
        ax.set_xscale("log")
        ax.set_yscale("log")
        low, high = min(every) / 1.5, max(every) * 1.6
        ax.set_ylim(low, high)
        ticks = [t for t in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 60, 300) if low <= t <= high]
        ax.set_yticks(ticks)
        ax.set_yticklabels([f"{t * 1000:.0f} ms" if t < 1 else (f"{t:.0f} s" if t < 60 else f"{t / 60:.0f} min") for t in ticks])
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("Bounding box area (km²); stars: full extent (plotted at 150 M km²)")
        ax.grid(True, which="both", linestyle="--", linewidth=0.4, alpha=0.6)
    axes[0][0].set_ylabel("Query time (s), median of 3")
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"h_canopy over 2020, boxes centred at 51°N 10°E ({results['data']['segments']:,} segments)", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def report(results: Dict, image: str) -> str:
    m = results["machine"]
    d = results["data"]
    layouts = results["layouts"]
    ref_versions = results.get("reference_versions") or {}
    out = [MARK_START, "## Query scaling (engine vs reference vs bare TileDB)", "",
           f"Generated by `tests/benchmarks/bench_query_scaling.py` on {results['finished']} ({results['runtime_s'] / 60:.1f} min for the whole run, "
           f"{'including' if results.get('built_now') else 'not including'} building the databases"
           + (f", after waiting {results['waited_s'] / 60:.0f} min for a quieter machine" if results.get("waited_s", 0) >= 60 else "") + "). Re-run with "
           f"`.venv/bin/python tests/benchmarks/bench_query_scaling.py --segments {d['segments_requested']} --workdir build/bench --out docs`.", "",
           f"**Machine**: {m['line']}; "
           f"1-minute load average {m['load_average_start']} at the start and {m.get('load_average_end', '?')} at the end of the run "
           f"(other work on the machine makes single timings noisy; every reader is timed box by box in turn to share it). "
           + "Engine side: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ". "
           + ("Reference side (own virtualenv): " + ", ".join(f"{k} {v}" for k, v in ref_versions.items()) + "." if ref_versions else "Reference not run."), "",
           "**Series** (the seed's): boxes centred at 51°N 10°E, half sides 0.25° to 20° in 20 steps, plus the full extent "
           "(-179.9..179.9°, -60..80°, plotted at 150 M km² as in the seed); `h_canopy` for 2020; every reader answers each box once untimed "
           f"(warm-up), then the readers take turns for {results['repeats']} timed rounds and each reader's median is reported. Engine: `Atl08Database.query(SegmentQuery.create(...))` to a DataFrame, "
           "one database object per series. Bare: one open TileDB array, `query(attrs=[...], dims=[latitude, longitude, time]).multi_index[...]`, "
           "numpy only, same context settings as the engine. Reference: `IceSat2Provider(...).get_data(..., return_type=\"dataframe\", "
           "use_polygon_filter=False)`, one provider per series, in its own virtualenv. Every box's row count and segment-id checksum is "
           "compared across all readers (column \"same rows & ids\").", "",
           f"**Data**: {d['segments']:,} simulated ATL08 segments (all {d['attributes']} attributes of the public layout, written with the "
           f"engine's schema and writer, one annual batch per year {', '.join(map(str, d['years']))}), from ICESat-2-like passes over land and "
           f"clear sky: global passes (60°S..80°N) plus a denser European set; 2020 holds {d['rows_2020_full']:,} of them. "
           f"See `tests/benchmarks/synthetic_db.py`.", "",
           "| layout | capacity | write tiles | fragments | fragment metadata | array on disk | write time |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, info in layouts.items():
        out.append(f"| {name} | {info['capacity']:,} | {info['tile_degrees']:.0f}° | {info['fragments']} | {info['fragment_metadata_bytes'] / 1e6:.2f} MB | "
                   f"{info['array_bytes'] / 1e9:.2f} GB | {info['write_s']:.0f} s |")
    out += [""] + summary(results) + ["", f"![query time against box area]({image})", ""]
    titles = {"local_public": "Local disk, public layout (capacity 100000, Hilbert, 30° write tiles)",
              "s3_public": "Loopback S3 (moto), the same public-layout array",
              "local_recommended": f"Local disk, recommended layout for user-built databases (capacity {layouts['recommended']['capacity']:,}, "
                                   f"{layouts['recommended']['tile_degrees']:.0f}° write tiles)" if "recommended" in layouts else ""}
    for key, series in results["series"].items():
        out += [f"### {titles[key]}", ""]
        if key == "s3_public" and results.get("s3_upload"):
            u = results["s3_upload"]
            out += [f"Uploaded {u['files']:,} files ({u['bytes'] / 1e9:.2f} GB) in {u['seconds']:.0f} s. The reference is pointed at the server "
                    "with its `url` argument (an `http://` endpoint overrides its fixed `vfs.s3.scheme=https`) and credentials.", ""]
        out += [series_table(series), ""]
    out += ["### Targets", ""]
    for key, v in results["verdicts"].items():
        out += verdict_lines(titles[key].split(" (")[0], v)
    out += [""]
    if results.get("diagnostics"):
        out += ["### Where the engine's time goes", "",
                "Phases measured on the engine's own objects: its query with day times (the default, what the series above times) and "
                "with `exact_times=True` (times from `timestamp_ns`); bare TileDB reads of exactly the attributes and dimensions each of "
                "those issues; `_to_frame`; the bare `h_canopy` read; the `__commits` listing that detects new fragments (on S3 it runs "
                "on a helper thread while the read runs); and a reopen of the handle (paid only when fragments have landed).", "",
                "| series | box | rows | " + " | ".join(f"{PHASES[p]} (ms)" for p in results["diagnostics"][0]["rows"][0]["phases_s"]) + " |",
                "|---|---|---:|" + "---:|" * len(results["diagnostics"][0]["rows"][0]["phases_s"])]
        for diag in results["diagnostics"]:
            for row in diag["rows"]:
                out.append(f"| {diag['series']} | {row['box']} | {row['rows']:,} | " + " | ".join(_ms(v) for v in row["phases_s"].values()) + " |")
        out += [""]
    if results.get("open_costs"):
        out += ["Opening the array (median of 3): " + "; ".join(
            f"{name}: open {_ms(c['open_s'])} ms, reopen {_ms(c['reopen_s'])} ms, listing `__commits` {_ms(c['list_commits_s'])} ms"
            for name, c in results["open_costs"].items()) + ".", ""]
    out += [results.get("diagnosis", ""), "", results.get("discussion", ""), MARK_END]
    return "\n".join(out)


def summary(results: Dict) -> List[str]:
    """Headline figures: smallest box and full extent of every series, and the correctness check."""
    names = {"local_public": "Local disk, public layout", "s3_public": "Loopback S3, public layout", "local_recommended": "Local disk, recommended layout"}
    lines = ["**Summary** (medians in ms):", ""]
    all_same = True
    for key, series in results["series"].items():
        parts = []
        for i, label in ((0, "smallest box"), (len(series["boxes"]) - 1, "full extent")):
            e, b = series["engine"][i], series["bare"][i]
            r = series["reference"][i] if series.get("reference") else None
            parts.append(f"{label} ({e['rows']:,} rows): engine {_ms(e['median_s'])}, reference {_ms(r['median_s'] if r else None)}, "
                         f"bare {_ms(b['median_s'])} (reference/engine {_ratio(r['median_s'] if r else None, e['median_s'])}, "
                         f"engine/bare {_ratio(e['median_s'], b['median_s'])})")
        lines.append(f"- {names[key]}: " + "; ".join(parts) + ".")
        for i in range(len(series["boxes"])):
            e, b, a = series["engine"][i], series["bare"][i], series["bare_engine_attrs"][i]
            same = e["rows"] == b["rows"] == a["rows"] and e["checksum"] == a["checksum"]
            if series.get("reference"):
                r = series["reference"][i]
                same = same and r["rows"] == e["rows"] and r["checksum"] == e["checksum"]
            all_same = all_same and same
    lines.append("- Correctness: " + ("every box returned the same rows and segment ids from every reader." if all_same
                                      else "**some boxes differ between readers** (see the tables)."))
    return lines


def discussion(results: Dict) -> str:
    """The trade-off paragraph, every number taken from this run."""
    series = results["series"]
    if "local_recommended" not in series:
        return ""
    pub, rec = series["local_public"], series["local_recommended"]
    layouts = results["layouts"]

    def at(s, reader, i):
        return s[reader][i]["median_s"]

    small = [i for i in range(len(pub["boxes"])) if pub["boxes"][i]["half"] is not None and pub["boxes"][i]["half"] <= 2.5]
    bare_gain = statistics.median(at(pub, "bare", i) / at(rec, "bare", i) for i in small)
    engine_gain = statistics.median(at(pub, "engine", i) / at(rec, "engine", i) for i in small)
    full = len(pub["boxes"]) - 1
    p, r = layouts["public"], layouts["recommended"]
    full_bare = at(rec, "bare", full) / at(pub, "bare", full)
    full_engine = at(rec, "engine", full) / at(pub, "engine", full)

    def compare(ratio):
        return f"{1 / ratio:.2f}x as fast" if ratio < 1 else f"{ratio:.2f}x as slow"

    return (
        f"**Layout trade-off.** With capacity {r['capacity']:,} instead of {p['capacity']:,} a data tile holds a tenth of the cells, so a "
        f"small box decompresses less: on the boxes up to 2.5° half side the bare read is {bare_gain:.2f}x and the engine {engine_gain:.2f}x "
        f"as fast as on the public layout (median over those boxes). At the full extent the bare read is {compare(full_bare)} and the "
        f"engine {compare(full_engine)} "
        f"({at(rec, 'bare', full) * 1000:.0f} and {at(rec, 'engine', full) * 1000:.0f} ms against {at(pub, 'bare', full) * 1000:.0f} and "
        f"{at(pub, 'engine', full) * 1000:.0f} ms). The fragment metadata (bounding rectangles and offsets of every tile, loaded when a query "
        f"first touches a fragment) takes {r['fragment_metadata_bytes'] / 1e6:.2f} MB against {p['fragment_metadata_bytes'] / 1e6:.2f} MB "
        f"for {r['fragments']} fragments; the array takes {r['array_bytes'] / 1e9:.2f} GB against {p['array_bytes'] / 1e9:.2f} GB "
        f"and writing it took {r['write_s']:.0f} s against {p['write_s']:.0f} s. "
        f"Over S3 every extra metadata byte and request costs more than on disk, and the shared public database is read over "
        f"continents, so its capacity stays; a database a user builds for a study area on local disk, queried mostly with boxes "
        f"of a few degrees, is better served by the smaller capacity."
    )


def diagnosis(results: Dict) -> str:
    """What the diagnostics say, in words; every number from this run."""
    diags = {d["series"]: d["rows"] for d in results.get("diagnostics", [])}
    costs = results.get("open_costs", {})
    text = []
    local = diags.get("local, public layout")
    if local:
        small, full = local
        p = full["phases_s"]
        text.append(
            f"**Diagnosis.** Locally, at the full extent ({full['rows']:,} rows), the engine's query takes {_ms(p['engine'])} ms; "
            f"the bare read of what it asks for ({', '.join('`' + a + '`' for a in full['attributes'])} and the three dimensions, "
            f"the same data the reference reads) takes {_ms(p['read_engine_attrs'])} ms, so the engine's own work (building the "
            f"DataFrame: {_ms(p['to_frame'])} ms for `_to_frame`) is {p['engine'] / p['read_engine_attrs']:.2f}x that read. "
            f"The `h_canopy`-only read ({_ms(p['read_h_canopy'])} ms) is "
            f"{p['read_engine_attrs'] / p['read_h_canopy']:.2f}x faster than the read of the engine's attributes: "
            "a DataFrame that carries segment ids (which the reference returns too) cannot come within 1.2x of a read that leaves them out. "
            f"For the smallest box ({small['rows']:,} rows) the engine takes {_ms(small['phases_s']['engine'])} ms against "
            f"{_ms(small['phases_s']['read_engine_attrs'])} ms for the bare read of its attributes: whole 100000-cell tiles are "
            f"decompressed for every reader.")
        s3_rows = diags.get("loopback S3, public layout")
        s3_full = s3_rows[1]["phases_s"] if s3_rows else None
        text.append(
            f"Exact times (`exact_times=True`, the `time` column from `timestamp_ns` instead of the day) took {_ms(p['engine_exact'])} ms "
            f"against {_ms(p['engine'])} ms at the full extent locally ({p['engine_exact'] / p['engine']:.2f}x): decoding the `time` "
            "dimension costs about as much CPU as decoding `timestamp_ns`, although it is far smaller on disk"
            + (f"; over S3, where bytes are the cost, {_ms(s3_full['engine_exact'])} ms against {_ms(s3_full['engine'])} ms "
               f"({s3_full['engine_exact'] / s3_full['engine']:.2f}x)" if s3_full else "")
            + ". Day times, what the reference returns, are therefore the default; exact times are read on request (a dialog check box "
            "and the `EXACT_TIMES` parameter of `atl08_query`) and whenever the query has sub-day bounds.")
        sizes = results["layouts"]["public"].get("column_bytes") or {}
        segments = results["data"]["segments"]
        if sizes:
            per = {k: v / segments for k, v in sizes.items()}
            text.append("Compressed bytes per segment on disk: " + ", ".join(f"`{k}` {v:.2f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1])) + ".")
    s3 = diags.get("loopback S3, public layout")
    if s3:
        small, full = s3
        p = small["phases_s"]
        fragments = results["layouts"]["public"]["fragments"]
        line = (f"Over loopback S3, for the smallest box, the engine takes {_ms(p['engine'])} ms against {_ms(p['read_engine_attrs'])} ms "
                f"for the bare read of its attributes. Listing `__commits` to detect new fragments takes {_ms(p['list_commits'])} ms and runs "
                f"while the read runs; a reopen ({_ms(p['reopen'])} ms: one request per fragment, {fragments} fragments) is paid only "
                f"after fragments have landed. The reference keeps one handle for its lifetime and never sees new data.")
        consolidated = costs.get("loopback S3, fragment metadata consolidated")
        if consolidated:
            line += (f" After consolidating the fragment metadata into one file (as the engine's ingest does), opening the array costs "
                     f"{_ms(consolidated['open_s'])} ms instead of {_ms(costs['loopback S3, public layout']['open_s'])} ms.")
        text.append(line)
    return "\n\n".join(text)


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, default=5_000_000, help="at least this many segments in the database (default 5000000)")
    parser.add_argument("--workdir", type=Path, default=REPO / "build" / "bench", help="databases, the reference virtualenv, results JSON")
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="folder of BENCHMARKS.md and img/ (default docs/)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per box, after one warm-up (default 3)")
    parser.add_argument("--recommended-capacity", type=int, default=10000)
    parser.add_argument("--recommended-tile", type=int, default=6, help="write tile in units of 5 degrees (default 6 = 30 degrees)")
    parser.add_argument("--reference-python", help="an existing interpreter with icesat2db (default: create <workdir>/refvenv)")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument("--skip-recommended", action="store_true")
    parser.add_argument("--skip-diagnostics", action="store_true")
    parser.add_argument("--no-docs", action="store_true", help="print the report only, do not touch BENCHMARKS.md or the figure")
    parser.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)), help="processes generating segments")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached databases")
    parser.add_argument("--max-load", type=float, help="first wait until the 1-minute load average is below this")
    parser.add_argument("--max-wait", type=float, default=900, help="seconds to wait at most for --max-load (default 900)")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report, figure and section from <workdir>/query_scaling.json")
    args = parser.parse_args(argv)

    workdir = args.workdir.resolve()
    image = "img/query_scaling.png"
    if args.report_only:
        results = json.loads((workdir / "query_scaling.json").read_text())
        results["discussion"], results["diagnosis"] = discussion(results), diagnosis(results)  # the wording may have changed
        return publish(results, args, image)
    waited = time.perf_counter()
    if args.max_load is not None:
        deadline = time.time() + args.max_wait
        while os.getloadavg()[0] > args.max_load and time.time() < deadline:
            log(f"waiting for the 1-minute load average ({os.getloadavg()[0]:.2f}) to drop below {args.max_load}")
            time.sleep(30)
    started = time.perf_counter()
    waited = started - waited
    workdir.mkdir(parents=True, exist_ok=True)
    spec = synthetic_db.BuildSpec(segments=args.segments)
    root = workdir / f"db-{spec.key()}"
    configs = layout_configs(root, args.recommended_capacity, args.recommended_tile)
    if args.skip_recommended:
        configs.pop("recommended")
    built_before = (root / "build.json").exists()
    layouts = ensure_databases(spec, configs, root, args.workers, args.rebuild)
    boxes = series_boxes()
    results = {"machine": machine(), "layouts": layouts, "series": {}, "verdicts": {}, "built_now": not built_before or args.rebuild,
               "repeats": args.repeats}
    from canopy_explorer.plugin.core.lidar.atl08.schema import attribute_dtypes

    python = None if args.skip_reference else reference_python(workdir, args.reference_python)

    runs = [("local_public", configs["public"], {"storage": "local", "local_path": configs["public"].local_path})]
    if "recommended" in configs:
        runs.append(("local_recommended", configs["recommended"], {"storage": "local", "local_path": configs["recommended"].local_path}))
    diagnostics, open_cost = [], {}

    def series_with_reference(key, config, job):
        log(f"series {key}")
        reference = ReferenceProcess(python, job) if python else None
        try:
            series = {"boxes": boxes, **run_series(config, boxes, args.repeats, reference)}
        finally:
            if reference is not None:
                reference.close()
                results["reference_versions"] = reference.versions
        results["series"][key] = series

    for key, config, job in runs:
        series_with_reference(key, config, job)
        if key == "local_public":
            open_cost["local, public layout"] = open_costs(config, args.repeats)
            if not args.skip_diagnostics:
                log("  diagnostics")
                diagnostics.append({"series": "local, public layout", "rows": diagnose(config, boxes, max(5, args.repeats))})

    if not args.skip_s3:
        with MotoServer() as server:
            log(f"uploading the public-layout database to {server.endpoint}")
            results["s3_upload"] = upload(server.endpoint, Path(configs["public"].local_path), BUCKET)
            s3_config = s3_database_config(server.endpoint, BUCKET)
            job = {"storage": "s3", "s3": {"bucket": BUCKET, "url": server.endpoint, "region": "us-east-1",
                                           "key": S3_KEYS["aws_access_key_id"], "secret": S3_KEYS["aws_secret_access_key"]}}
            series_with_reference("s3_public", s3_config, job)
            open_cost["loopback S3, public layout"] = open_costs(s3_config, args.repeats)
            if not args.skip_diagnostics:
                log("  diagnostics")
                diagnostics.append({"series": "loopback S3, public layout", "rows": diagnose(s3_config, boxes, max(5, args.repeats))})
                # The same array with its fragment metadata consolidated into one file (an ingest option).
                results["fragment_meta_consolidation_s"] = consolidate_fragment_metadata(s3_config)
                open_cost["loopback S3, fragment metadata consolidated"] = open_costs(s3_config, args.repeats)
    # Series order in the report: local public, S3, local recommended.
    order = ["local_public", "s3_public", "local_recommended"]
    results["series"] = {k: results["series"][k] for k in order if k in results["series"]}
    for key, series in results["series"].items():
        results["verdicts"][key] = evaluate(series)
    results["diagnostics"] = diagnostics
    results["open_costs"] = open_cost
    public = results["series"]["local_public"]
    results["data"] = {"segments": layouts["public"]["segments"], "segments_requested": args.segments, "years": list(spec.years),
                       "attributes": len(attribute_dtypes()) + 1, "rows_2020_full": public["engine"][-1]["rows"]}
    results["discussion"] = discussion(results)
    results["diagnosis"] = diagnosis(results)
    results["finished"] = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    results["runtime_s"] = time.perf_counter() - started
    results["machine"]["load_average_end"] = round(os.getloadavg()[0], 2)

    results["waited_s"] = waited
    json_path = workdir / "query_scaling.json"
    json_path.write_text(json.dumps(results, indent=1, default=str))
    log(f"results: {json_path} ({results['runtime_s'] / 60:.1f} min)")
    return publish(results, args, image)


def publish(results: Dict, args, image: str) -> int:
    """Print the report; write the figure and the BENCHMARKS.md section unless --no-docs."""
    section = report(results, image)
    print(section)
    if not args.no_docs:
        plot(results, args.out / image)
        write_section(args.out / "BENCHMARKS.md", section, MARK_START, MARK_END)
        log(f"wrote {args.out / 'BENCHMARKS.md'} and {args.out / image}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
