"""Layer-loading benchmark: a query result (pandas DataFrame) to a loaded QGIS layer.

    .venv/bin/python tests/benchmarks/bench_layer_loading.py --rows 500000 1000000 --out docs/BENCHMARKS.md

Requirement: loading must reach at least 5x the throughput of building features one
by one in a memory layer (about 70k features/s on QGIS 3.22), both measured here, in
the same run, from the same DataFrame.

The DataFrame is a real engine result: every segment of the sample database
(``make demo``'s, rebuilt in a temporary folder if absent) with ``h_canopy``,
``canopy_h_metrics:95`` and ``h_te_best_fit``, i.e. the columns latitude,
longitude, time (UTC datetime), segment_id (int64), beam_id (string) and three
float32 heights, with NaN where a segment has no retrieval. It is replicated to the
requested row count with positions jittered by up to ~500 m and segment ids made
unique.

Paths timed end to end, DataFrame in, ``featureCount()`` of a valid layer out:

* baseline, feature by feature (the usual PyQGIS way): a ``memory`` point layer with
  the same typed fields (``QDateTime`` time, ``LongLong`` id, ``String`` beam,
  ``Double`` heights), one ``QgsFeature`` per row with
  ``setGeometry(QgsGeometry.fromPointXY(...))`` and ``setAttributes(...)``, added with
  ``dataProvider().addFeatures`` in chunks of 50,000. Columns are converted to Python
  lists once beforehand (``tolist()``), which is kinder to the baseline than
  ``iterrows``; the same loop over ``itertuples`` with per-value conversions is timed
  too, to show that the way the loop is written hardly matters;
* GeoPackage (the candidate): ``segment_files.write_segments([frame], path.gpkg, name)``
  then ``QgsVectorLayer(path|layername=name, name, "ogr")``;
* styled GeoPackage: ``segment_layer.write_styled_segments`` (what ``write_query_output``
  runs after the database read: natural breaks on a sample, style saved in
  ``layer_styles``) then ``load_query_layer``;
* for information: FlatGeobuf, GeoJSON and CSV through ``write_segments``, opened
  with the providers ``load_query_layer`` uses.

Each path runs ``--repeats`` times, round robin across paths so that changes in
machine load hit all of them alike (median reported), files in a fresh temporary
folder each time. The GeoPackage path is also timed step by step (``--profile``),
and so are the steps the styled path adds. ``proposed`` times a prototype of a
change suggested for ``segment_files`` (DATETIME text formatted once per distinct
second; checked to write the same rows, missing times included), swapped in only
for that path. Timings are never pass/fail.
"""

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchmarks_md import machine_line, write_section  # noqa: E402
REPO = HERE.parent.parent
MARK_START, MARK_END = "<!-- layer-loading:start -->", "<!-- layer-loading:end -->"
VARIABLES = ["h_canopy", "canopy_h_metrics:95", "h_te_best_fit"]
LAYER_NAME = "ATL08 segments"
TARGET_RATIO = 5.0
BASELINE_CHUNK = 50_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- data


def sample_frame(config_path: Optional[Path], scratch: Path):
    """Every segment of the sample database as the engine returns it."""
    import shapely

    from canopy_explorer.plugin.core.lidar.config import load_config
    from canopy_explorer.plugin.core.lidar.database import Atl08Database
    from canopy_explorer.plugin.core.lidar.ingest import ingest_granules
    from canopy_explorer.plugin.core.lidar.query import SegmentQuery
    from canopy_explorer.plugin.core.samples.granules import SAMPLE_REGION, generate_granules

    config = load_config(config_path or REPO / "configs" / "sample_local.yaml")
    if not Path(config.array_uri).exists():
        log(f"no sample database at {config.array_uri}: building one in {scratch}")
        generate_granules(scratch / "atl08")
        config = config.with_changes(local_path=str(scratch / "atl08_db"))
        ingest_granules(config, scratch / "atl08")
    lat_min, lat_max, lon_min, lon_max = SAMPLE_REGION
    spec = SegmentQuery.create(roi=shapely.box(lon_min - 1, lat_min - 1, lon_max + 1, lat_max + 1),
                               start="2018-01-01", end="2030-12-31", variables=VARIABLES)
    return Atl08Database(config).query(spec)


def replicate(frame, rows: int, seed: int = 0):
    """``rows`` rows made from copies of ``frame``, positions jittered, segment ids unique."""
    import pandas as pd

    copies = -(-rows // len(frame))
    rng = np.random.default_rng(seed)
    big = pd.concat([frame] * copies, ignore_index=True).iloc[:rows].copy()
    big["latitude"] += rng.uniform(-0.005, 0.005, rows)
    big["longitude"] += rng.uniform(-0.005, 0.005, rows)
    big["segment_id"] = big["segment_id"].to_numpy() + (np.arange(rows) // len(frame)).astype(np.int64)
    return big.reset_index(drop=True)


# --------------------------------------------------------------------------- loaders


def load_feature_by_feature(frame, folder: Path):
    """The baseline: a memory layer built one QgsFeature at a time."""
    from qgis.core import QgsFeature, QgsFields, QgsGeometry, QgsPointXY, QgsVectorLayer
    from qgis.PyQt.QtCore import QDateTime, Qt

    from canopy_explorer.plugin.qgis_compat import new_field

    columns = [name for name in frame.columns if name not in ("longitude", "latitude")]
    fields = QgsFields()
    for name in columns:
        kind = frame[name].dtype
        if hasattr(kind, "tz") or kind.kind == "M":
            fields.append(new_field(name, "datetime"))
        elif kind.kind == "f":
            fields.append(new_field(name, "real"))
        elif kind.kind in "iu":
            fields.append(new_field(name, "integer64"))
        else:
            fields.append(new_field(name, "string"))
    layer = QgsVectorLayer("Point?crs=EPSG:4326", LAYER_NAME, "memory")
    provider = layer.dataProvider()
    provider.addAttributes(fields.toList())
    layer.updateFields()

    values = []
    for name in columns:
        series = frame[name]
        if hasattr(series.dtype, "tz") or series.dtype.kind == "M":
            milliseconds = (series.array.asi8 // 1_000_000).tolist()
            values.append([QDateTime.fromMSecsSinceEpoch(ms, Qt.TimeSpec.UTC) for ms in milliseconds])
        else:
            values.append(series.tolist())
    longitude, latitude = frame["longitude"].tolist(), frame["latitude"].tolist()
    batch = []
    for x, y, *attributes in zip(longitude, latitude, *values):
        feature = QgsFeature(fields)
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
        feature.setAttributes(attributes)
        batch.append(feature)
        if len(batch) == BASELINE_CHUNK:
            provider.addFeatures(batch)
            batch = []
    if batch:
        provider.addFeatures(batch)
    layer.updateExtents()
    return layer


def load_feature_by_feature_itertuples(frame, folder: Path):
    """The same memory layer, written as most PyQGIS scripts do it: a loop over ``itertuples``."""
    from qgis.core import QgsFeature, QgsGeometry, QgsPointXY
    from qgis.PyQt.QtCore import QDateTime, Qt

    layer = load_feature_by_feature(frame.iloc[:0], folder)  # same fields, no rows
    fields, provider = layer.fields(), layer.dataProvider()
    converters = []
    for name in frame.columns:
        kind = frame[name].dtype
        if name in ("longitude", "latitude"):
            continue
        if hasattr(kind, "tz") or kind.kind == "M":
            converters.append(lambda value: QDateTime.fromMSecsSinceEpoch(value.value // 1_000_000, Qt.TimeSpec.UTC))
        elif kind.kind == "f":
            converters.append(float)
        elif kind.kind in "iu":
            converters.append(int)
        else:
            converters.append(str)
    positions = [i for i, name in enumerate(frame.columns) if name not in ("longitude", "latitude")]
    x_at, y_at = list(frame.columns).index("longitude"), list(frame.columns).index("latitude")
    batch = []
    for row in frame.itertuples(index=False, name=None):
        feature = QgsFeature(fields)
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(row[x_at], row[y_at])))
        feature.setAttributes([convert(row[i]) for convert, i in zip(converters, positions)])
        batch.append(feature)
        if len(batch) == BASELINE_CHUNK:
            provider.addFeatures(batch)
            batch = []
    if batch:
        provider.addFeatures(batch)
    layer.updateExtents()
    return layer


def load_written(suffix: str) -> Callable:
    """write_segments to a file of this type, then open it the way load_query_layer does."""

    def load(frame, folder: Path):
        from qgis.core import QgsVectorLayer

        from canopy_explorer.plugin.core.segment_files import write_segments
        from canopy_explorer.plugin.layers.segment_layer import layer_uri

        written = write_segments([frame], folder / f"segments{suffix}", LAYER_NAME)
        uri, provider = layer_uri(str(written.path), written.format, LAYER_NAME)
        return QgsVectorLayer(uri, LAYER_NAME, provider)

    return load


def load_styled_geopackage(frame, folder: Path):
    """write_query_output's file step (natural breaks, style in layer_styles) and load_query_layer."""
    from canopy_explorer.plugin.layers.segment_layer import load_query_layer, write_styled_segments

    output = write_styled_segments([frame], str(folder / "styled.gpkg"), LAYER_NAME, {"variables": ", ".join(VARIABLES)},
                                   "h_canopy", "h_canopy", 5)
    layer = load_query_layer(output)
    assert layer.renderer().type() == "graduatedSymbol", layer.renderer().type()
    return layer


# ---- a prototype of a change proposed for segment_files, measured here only (the engine is not
# changed by this benchmark); remove once the engine has it.


def _datetime_text_by_runs(series) -> list:
    """GeoPackage DATETIME text, formatting each distinct second once: segments are 14 ms apart along a track."""
    nanoseconds = series.array.asi8
    missing = nanoseconds == np.iinfo(np.int64).min
    milliseconds = np.where(missing, 0, nanoseconds) // 1_000_000
    seconds, millis = np.divmod(milliseconds, 1000)
    new_second = np.concatenate([[True], seconds[1:] != seconds[:-1]])
    prefixes = [text + "." for text in np.datetime_as_string(seconds[new_second].astype("datetime64[s]"), unit="s").tolist()]
    suffixes = [f"{value:03d}Z" for value in range(1000)]
    text = [prefixes[run] + suffixes[milli] for run, milli in zip((np.cumsum(new_second) - 1).tolist(), millis.tolist())]
    for index in np.flatnonzero(missing).tolist():
        text[index] = None
    return text


def load_proposed_geopackage(frame, folder: Path):
    """The candidate with datetime columns formatted by _datetime_text_by_runs, swapped in for this call only."""
    from canopy_explorer.plugin.core import segment_files

    original = segment_files._column_values

    def column_values(series):
        if hasattr(series.dtype, "tz") or series.dtype.kind == "M":
            return _datetime_text_by_runs(series)
        return original(series)

    segment_files._column_values = column_values
    try:
        return load_written(".gpkg")(frame, folder)
    finally:
        segment_files._column_values = original


def check_proposed_writes_the_same_rows(frame, folder: Path) -> None:
    import sqlite3

    current = load_written(".gpkg")(frame, folder / "current")
    proposed = load_proposed_geopackage(frame, folder / "proposed")
    rows = []
    for layer in (current, proposed):
        path = layer.source().split("|")[0]
        with sqlite3.connect(path) as connection:
            rows.append(connection.execute(f'SELECT * FROM "{LAYER_NAME}" ORDER BY fid').fetchall())
    if rows[0] != rows[1] or len(rows[0]) != len(frame):
        raise RuntimeError("the proposed writer does not write the same rows as segment_files")


LOADERS: Dict[str, Callable] = {
    "memory layer, feature by feature (baseline)": load_feature_by_feature,
    "memory layer, feature by feature over itertuples": load_feature_by_feature_itertuples,
    "GeoPackage: write_segments + ogr layer": load_written(".gpkg"),
    "styled GeoPackage: write_styled_segments + load_query_layer": load_styled_geopackage,
    "GeoPackage, proposed datetime text (prototype, see below)": load_proposed_geopackage,
    "FlatGeobuf: write_segments + ogr layer": load_written(".fgb"),
    "GeoJSON: write_segments + ogr layer": load_written(".geojson"),
    "CSV: write_segments + delimitedtext layer": load_written(".csv"),
}
PATH_KEYS = ["baseline", "itertuples", "gpkg", "styled", "proposed", "fgb", "geojson", "csv"]  # command-line names, LOADERS' order
LOADERS_BY_KEY = dict(zip(PATH_KEYS, LOADERS))
PROPOSED = "GeoPackage, proposed datetime text (prototype, see below)"
INSERT_STEP = "insert: sqlite3 executemany (binding in Python's sqlite3, SQLite's own work)"
APPEND_REST = "append's other Python work: row tuples, multi-row chunks"
SQLITE_ONLY = "for comparison, not in the total: the same insert inside SQLite (INSERT ... SELECT), no Python per row"
BASELINE = "memory layer, feature by feature (baseline)"
CANDIDATE = "GeoPackage: write_segments + ogr layer"


def time_once(loader: Callable, frame, scratch: Path) -> float:
    gc.collect()
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        started = time.perf_counter()
        layer = loader(frame, Path(folder))
        count = layer.featureCount() if layer.isValid() else -1
        seconds = time.perf_counter() - started
        del layer
    if count != len(frame):
        raise RuntimeError(f"{loader.__name__}: layer has {count} features, expected {len(frame)}")
    return seconds


class _TimedConnection:
    """Stands in for the writer's sqlite3 connection and times its executemany calls."""

    def __init__(self, connection, phases: Dict[str, float]):
        self._connection, self._phases = connection, phases

    def executemany(self, statement, parameters):
        started = time.perf_counter()
        cursor = self._connection.executemany(statement, parameters)
        self._phases[INSERT_STEP] = self._phases.get(INSERT_STEP, 0.0) + time.perf_counter() - started
        return cursor

    def __getattr__(self, name):
        return getattr(self._connection, name)


def profile_geopackage(frame, folder: Path) -> Dict[str, float]:
    """Seconds per step of the GeoPackage path: the engine's own GeoPackagePointWriter, instrumented.

    ``point_blobs`` and ``_column_values`` are wrapped with timers for the call and the
    connection's ``executemany`` is timed (which includes consuming the parameter
    generator); what ``append`` spends besides those is reported as its own Python work.
    """
    from qgis.core import QgsVectorLayer

    from canopy_explorer.plugin.core import segment_files

    phases: Dict[str, float] = {}

    def timed(name, function):
        def wrapper(*arguments, **keywords):
            started = time.perf_counter()
            result = function(*arguments, **keywords)
            phases[name] = phases.get(name, 0.0) + time.perf_counter() - started
            return result
        return wrapper

    def column_step(series):
        kind = series.dtype
        label = "datetime" if (hasattr(kind, "tz") or kind.kind == "M") else ("string" if kind.kind == "O" else "numeric")
        return timed(f"attributes: _column_values, {label} columns", original_columns)(series)

    path = folder / "profile.gpkg"
    writer = segment_files.GeoPackagePointWriter(path, LAYER_NAME)
    timed("create: OGR creates the file, tables and fields; AUTOINCREMENT dropped", writer._create)(frame)
    writer._connection = _TimedConnection(writer._connection, phases)
    original_blobs, original_columns = segment_files.point_blobs, segment_files._column_values
    segment_files.point_blobs = timed("geometry: point_blobs", original_blobs)
    segment_files._column_values = column_step
    try:
        started = time.perf_counter()
        writer.append(frame)
        whole = time.perf_counter() - started
    finally:
        segment_files.point_blobs, segment_files._column_values = original_blobs, original_columns
    inside = sum(seconds for name, seconds in phases.items() if not name.startswith("create"))
    phases[APPEND_REST] = whole - inside
    writer._connection = writer._connection._connection
    timed("close: extent, feature count, COMMIT", writer.close)()

    def open_layer():
        layer = QgsVectorLayer(f"{path}|layername={LAYER_NAME}", LAYER_NAME, "ogr")
        return layer.featureCount()

    count = timed("QGIS: open the layer, featureCount()", open_layer)()
    if count != len(frame):
        raise RuntimeError(f"profile: {count} features, expected {len(frame)}")
    phases[SQLITE_ONLY] = sqlite_only_insert(path, folder / "copy.sqlite")
    return phases


def sqlite_only_insert(source: Path, target: Path) -> float:
    """Seconds SQLite itself takes to insert the same rows (INSERT ... SELECT, no Python per row): the insert's floor."""
    import sqlite3

    connection = sqlite3.connect(str(target), isolation_level=None)
    try:
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("ATTACH DATABASE ? AS source", (str(source),))
        (ddl,) = connection.execute("SELECT sql FROM source.sqlite_master WHERE type = 'table' AND name = ?", (LAYER_NAME,)).fetchone()
        connection.execute(ddl)  # same table, created in the main database
        columns = [row[1] for row in connection.execute(f'PRAGMA main.table_info("{LAYER_NAME}")') if row[1] != "fid"]
        names = ", ".join(f'"{name}"' for name in columns)
        connection.execute("BEGIN")
        started = time.perf_counter()
        connection.execute(f'INSERT INTO main."{LAYER_NAME}" ({names}) SELECT {names} FROM source."{LAYER_NAME}" ORDER BY fid')
        connection.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        connection.close()


def profile_styling(frame, folder: Path) -> Dict[str, float]:
    """Seconds per step that the styled path (write_styled_segments + load_query_layer) adds to the plain file."""
    from canopy_explorer.plugin.core.natural_breaks import BreaksSample
    from canopy_explorer.plugin.core.segment_files import write_segments
    from canopy_explorer.plugin.layers import segment_layer
    from canopy_explorer.plugin.layers.symbology import graduated_renderer

    phases: Dict[str, float] = {}

    def timed(name, function, *arguments):
        started = time.perf_counter()
        result = function(*arguments)
        phases[name] = time.perf_counter() - started
        return result

    written = write_segments([frame], folder / "styled.gpkg", LAYER_NAME)
    sample = BreaksSample()
    timed("BreaksSample.add: keep a 3,000-value sample of h_canopy", sample.add, frame["h_canopy"].to_numpy())
    breaks = timed("BreaksSample.breaks: Fisher-Jenks, 5 classes on the sample", sample.breaks, 5)
    renderer = timed("graduated_renderer: QGIS renderer from the breaks", graduated_renderer, "h_canopy", "h_canopy",
                     sample.minimum, breaks)
    timed("save_default_style: renderer into layer_styles (QGIS)", segment_layer.save_default_style,
          written.path, "GPKG", renderer, "Natural breaks on h_canopy")
    output = segment_layer.QueryOutput(str(written.path), "GPKG", LAYER_NAME, written.rows, "h_canopy", sample.minimum,
                                       breaks, {}, colour_variable="h_canopy")
    timed("load_query_layer: open, style from the file, metadata", lambda: segment_layer.load_query_layer(output).featureCount())
    return phases


# --------------------------------------------------------------------------- report


def machine() -> str:
    import sqlite3

    from osgeo import gdal
    from qgis.core import Qgis

    return machine_line(QGIS=Qgis.QGIS_VERSION, GDAL=gdal.__version__, SQLite=sqlite3.sqlite_version)


def report(results: Dict[int, Dict[str, List[float]]], profiles: Dict[int, Dict[str, float]],
           styling: Dict[int, Dict[str, float]], info: str, repeats: int, source_rows: int) -> str:
    lines = [
        MARK_START,
        "## Layer loading: query result to a QGIS layer",
        "",
        "Generated by `tests/benchmarks/bench_layer_loading.py` "
        f"(`--rows {' '.join(str(r) for r in results)} --repeats {repeats}`); median of {repeats} runs. "
        "Each path starts from the same pandas DataFrame (an engine query result: time, segment_id, beam_id, "
        f"h_canopy, canopy_h_metrics_p95, h_te_best_fit; {source_rows:,} sample segments replicated with jitter) "
        "and ends with `featureCount()` of a valid QGIS layer. The baseline builds a memory layer one "
        "`QgsFeature` at a time (`setGeometry(QgsGeometry.fromPointXY(...))`, `setAttributes`, "
        f"`addFeatures` in chunks of {BASELINE_CHUNK:,}); the candidate writes a GeoPackage with "
        "`segment_files.write_segments` and opens it with the `ogr` provider. Requirement: at least "
        f"{TARGET_RATIO:g}x the baseline's throughput. The styled GeoPackage is what the dialog and Processing "
        "produce (natural breaks, style stored in the file); \"proposed datetime text\" is a prototype of the change "
        "suggested below, swapped in by the benchmark only (the engine is unchanged; the benchmark checks that "
        "it writes the same rows).",
        "",
        f"Machine: {info}.",
        "",
    ]
    header = "| path | " + " | ".join(f"{rows:,} rows: s | features/s | vs baseline" for rows in results) + " |"
    lines.append(header)
    lines.append("|---|" + "---:|---:|---:|" * len(results))
    for name in LOADERS:
        if not any(name in timings for timings in results.values()):
            continue
        cells = []
        for rows, timings in results.items():
            if name not in timings:
                cells.append("– | – | –")
                continue
            seconds = statistics.median(timings[name])
            base = statistics.median(timings[BASELINE])
            cells.append(f"{seconds:.2f} | {rows / seconds:,.0f} | {base / seconds:.1f}x")
        label = f"**{name}**" if name == CANDIDATE else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    verdicts = []
    for rows, timings in results.items():
        ratio = statistics.median(timings[BASELINE]) / statistics.median(timings[CANDIDATE])
        verdicts.append(f"{rows:,} rows: {ratio:.1f}x ({'met' if ratio >= TARGET_RATIO else 'missed'})")
    lines.append(f"Target {TARGET_RATIO:g}x the per-feature baseline: " + "; ".join(verdicts) + ".")
    for rows, phases in profiles.items():
        floor = phases.get(SQLITE_ONLY)
        phases = {name: seconds for name, seconds in phases.items() if name != SQLITE_ONLY}
        total = sum(phases.values())
        budget = statistics.median(results[rows][BASELINE]) / TARGET_RATIO
        lines += [
            "",
            f"Where the GeoPackage path's time goes at {rows:,} rows (`--profile`: the engine's `GeoPackagePointWriter` "
            f"with timers around its steps, median of {repeats}); {TARGET_RATIO:g}x the baseline needs at most "
            f"{budget:.2f} s in all:",
            "",
            "| step | s | share |",
            "|---|---:|---:|",
        ]
        lines += [f"| {name} | {seconds:.3f} | {100 * seconds / total:.0f}% |" for name, seconds in phases.items()]
        lines.append(f"| total | {total:.3f} | 100% |")
        if floor is not None:
            lines.append(f"| *{SQLITE_ONLY}* | *{floor:.3f}* | |")
    for rows, phases in styling.items():
        lines += [
            "",
            f"What the styled path adds at {rows:,} rows (median of {repeats}):",
            "",
            "| step | s |",
            "|---|---:|",
        ]
        lines += [f"| {name} | {seconds:.3f} |" for name, seconds in phases.items()]
    if any(PROPOSED in timings for timings in results.values()):
        lines += [
            "",
            "The prototype (\"proposed datetime text\") changes one thing in `segment_files`: DATETIME text is "
            "formatted once per distinct second (segments along a track are 14 ms apart) and completed from a table "
            "of the 1,000 millisecond suffixes, instead of `np.datetime_as_string` on every row.",
        ]
    lines.append(MARK_END)
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[500_000, 1_000_000], help="DataFrame sizes (default 500000 1000000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per path and size (default 3)")
    parser.add_argument("--paths", nargs="+", choices=PATH_KEYS, default=PATH_KEYS, help="which paths to time (default all)")
    parser.add_argument("--config", type=Path, default=None, help="database configuration (default configs/sample_local.yaml)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the section into this BENCHMARKS.md (or <folder>/BENCHMARKS.md); default: print only")
    parser.add_argument("--scratch", type=Path, default=None, help="folder for temporary files (default: the system's)")
    parser.add_argument("--max-load", type=float, help="first wait until the 1-minute load average is below this")
    parser.add_argument("--max-wait", type=float, default=900, help="seconds to wait at most for --max-load (default 900)")
    parser.add_argument("--profile", choices=["auto", "always", "never"], default="always",
                        help="time the GeoPackage path step by step (default always; auto: when the target is missed)")
    args = parser.parse_args(argv)
    chosen = [LOADERS_BY_KEY[p] for p in args.paths]
    for required in ("baseline", "gpkg"):
        if required not in args.paths:
            parser.error(f"--paths must include {required}: the ratio compares them")

    if args.max_load is not None:  # other processes make timings noisy: start on a quiet machine
        deadline = time.time() + args.max_wait
        while os.getloadavg()[0] > args.max_load and time.time() < deadline:
            log(f"waiting for the 1-minute load average ({os.getloadavg()[0]:.2f}) to drop below {args.max_load}")
            time.sleep(30)

    from qgis.core import QgsApplication

    QgsApplication.setPrefixPath("/usr", True)
    application = QgsApplication([], False)
    application.initQgis()
    info = machine()
    load_at_start = os.getloadavg()[0]
    log(f"machine: {info}")
    results: Dict[int, Dict[str, List[float]]] = {}
    profiles: Dict[int, Dict[str, float]] = {}
    styling: Dict[int, Dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-layer-loading-", dir=args.scratch) as scratch:
        source = sample_frame(args.config, Path(scratch))
        if LOADERS_BY_KEY["proposed"] in chosen:
            folder = Path(scratch) / "check"
            (folder / "current").mkdir(parents=True)
            (folder / "proposed").mkdir()
            sample = source.iloc[:20_011].copy()
            sample.loc[sample.index[[0, 5, 17, -1]], "time"] = None  # NaT must stay NULL
            check_proposed_writes_the_same_rows(sample.iloc[::-1], folder)  # order must not matter
            log("proposed writer: same rows as segment_files on 20,011 segments")
        log(f"source: {len(source):,} segments from the sample database, columns {', '.join(source.columns)}")
        for rows in args.rows:
            frame = replicate(source, rows)
            results[rows] = {name: [] for name in chosen}
            # Round robin (every path once, then again) so that a change in machine load hits all paths alike.
            for _ in range(args.repeats):
                for name in chosen:
                    results[rows][name].append(time_once(LOADERS[name], frame, Path(scratch)))
            for name in chosen:
                timings = results[rows][name]
                median = statistics.median(timings)
                log(f"{rows:>9,} rows  {name:<62} {median:7.2f} s  {rows / median:>10,.0f} features/s  "
                    f"(runs: {', '.join(f'{t:.2f}' for t in timings)})")
            ratio = statistics.median(results[rows][BASELINE]) / statistics.median(results[rows][CANDIDATE])
            log(f"{rows:>9,} rows  GeoPackage vs feature by feature: {ratio:.1f}x (target {TARGET_RATIO:g}x)")
            if args.profile == "always" or (args.profile == "auto" and ratio < TARGET_RATIO):
                runs = []
                for _ in range(args.repeats):
                    gc.collect()
                    with tempfile.TemporaryDirectory(dir=scratch) as folder:
                        runs.append(profile_geopackage(frame, Path(folder)))
                profiles[rows] = {name: statistics.median(run[name] for run in runs) for name in runs[0]}
                for name, seconds in profiles[rows].items():
                    log(f"{rows:>9,} rows    {name:<72} {seconds:7.3f} s")
                if LOADERS_BY_KEY["styled"] in chosen:
                    runs = []
                    for _ in range(args.repeats):
                        with tempfile.TemporaryDirectory(dir=scratch) as folder:
                            runs.append(profile_styling(frame, Path(folder)))
                    styling[rows] = {name: statistics.median(run[name] for run in runs) for name in runs[0]}
                    for name, seconds in styling[rows].items():
                        log(f"{rows:>9,} rows    {name:<72} {seconds:7.3f} s")
            del frame
    info += "; 1-minute load average {:.2f} at the start and {:.2f} at the end".format(load_at_start, os.getloadavg()[0])
    section = report(results, profiles, styling, info, args.repeats, len(source))
    print(section)
    if args.out is not None:
        target = args.out / "BENCHMARKS.md" if args.out.is_dir() else args.out
        write_section(target, section, MARK_START, MARK_END)
        log(f"wrote the layer-loading section of {target}")
    application.exitQgis()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
