"""District zonal statistics benchmark: embedded vs PostGIS (raster loading included) vs exactextract, same run.

    .venv/bin/python tests/benchmarks/bench_zonal_stats.py [--size 4000] [--districts 300] [--rounds 3]
        [--workdir build/bench] [--markdown docs/BENCHMARKS.md]

Data (made here, deterministic): one composite as the engine writes it (``ndvi_composite_2021.tif``:
``--size`` x ``--size`` pixels of 10 m in UTM 32N, band 1 NDVI float32 with NaN outside a
rounded boundary, band 2 a count, Cloud-Optimised GeoTIFF with DEFLATE, 256-pixel blocks
and overviews) and ``--districts`` Voronoi districts over it (a tenth of them reach past
its edges), in a GeoPackage with a text id field.

Contenders, each timed as the wall time of the work in its own fresh process (imports
excluded, reading the districts included), taking turns over ``--rounds`` rounds:

* embedded: ``district_stats_embedded`` (rasterio + numpy, GDAL's rasterizer for the
  pixel-centre rule), writing the styled-ready GeoPackage.
* PostGIS: ``district_stats_postgis`` into a fresh schema on a throw-away PostgreSQL 15 +
  PostGIS 3 server on loopback (the tests' server, ``tests/postgis_fixtures.py``):
  loading the districts and the raster (256 x 256 tiles, constraints, GiST index), the
  ``ST_SummaryStatsAgg(ST_Clip(...))`` query, the latest and change tables, and the copy into
  the GeoPackage; once with ``raster2pgsql`` encoding the tiles, once with the Python encoder.
  The split between loading and statistics comes from the engine's log.
* exactextract (``exact_extract(raster, layer, ["count", "min", "max", "mean", "stdev"])`` on
  band 1) in its own virtualenv (``<workdir>/zonal-bench-venv``, on Debian's Python with its
  GDAL through system site packages, exactextract installed with ``--no-deps``). It weights
  pixels by the fraction of their area inside the polygon rather than taking pixel centres,
  so its numbers are compared loosely and only for information.

Correctness is checked in the same run: the PostGIS tables must equal the embedded ones
(counts exactly, statistics within 1e-6). Figures go to stdout, ``<workdir>/zonal_stats.json``
and the section between ``<!-- zonal-stats:start -->`` and ``<!-- zonal-stats:end -->`` of
``--markdown`` (other sections kept). Timings are reported, never asserted.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchmarks_md import machine_line, write_section  # noqa: E402
REPO = HERE.parent.parent
MARK_START, MARK_END = "<!-- zonal-stats:start -->", "<!-- zonal-stats:end -->"
EXACTEXTRACT = "exactextract==0.3.0"
YEAR = 2021
SCHEMA = "bench"
MODES = ("embedded", "postgis-raster2pgsql", "postgis-python", "exactextract")


def log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- data


def make_data(folder: Path, size: int, count: int, seed: int = 3) -> dict:
    import numpy as np
    import rasterio
    import rasterio.shutil
    import shapely
    from osgeo import ogr, osr
    from rasterio.transform import from_origin

    folder.mkdir(parents=True, exist_ok=True)
    composite = folder / f"ndvi_composite_{YEAR}.tif"
    districts = folder / "districts.gpkg"
    x0, y0, res = 340000.0, 5790000.0, 10.0
    if composite.exists() and districts.exists():
        return {"composite": str(composite), "districts": str(districts)}
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    values = (0.4 + 0.25 * np.sin(rows / 157.0) * np.cos(cols / 211.0)
              + rng.normal(0, 0.1, size=(size, size)).astype(np.float32)).astype(np.float32)
    centre = (size - 1) / 2
    outside = np.hypot((rows - centre) / centre, (cols - centre) / centre) > 1.3  # NaN corners, like a clipped composite
    values[outside] = np.nan
    counts = np.where(outside, 0, 7).astype(np.float32)
    plain = folder / "plain.tif"
    profile = dict(driver="GTiff", width=size, height=size, count=2, dtype="float32", crs="EPSG:32632",
                   transform=from_origin(x0, y0, res, res), nodata=float("nan"), tiled=True, blockxsize=256,
                   blockysize=256)
    with rasterio.open(plain, "w", **profile) as dataset:
        dataset.write(values, 1)
        dataset.write(counts, 2)
    rasterio.shutil.copy(str(plain), str(composite), driver="COG", COMPRESS="DEFLATE", PREDICTOR="YES",
                         BLOCKSIZE="256", OVERVIEW_RESAMPLING="AVERAGE", NUM_THREADS="ALL_CPUS")
    plain.unlink()
    extent = size * res
    seeds = shapely.points(rng.uniform(x0 - 0.05 * extent, x0 + 1.05 * extent, count),
                           rng.uniform(y0 - 1.05 * extent, y0 + 0.05 * extent, count))
    frame = shapely.box(x0 - 0.05 * extent, y0 - 1.05 * extent, x0 + 1.05 * extent, y0 + 0.05 * extent)
    cells = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=frame)
    cells = [shapely.intersection(cell, frame) for cell in cells.geoms]
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(districts))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32632)
    layer = dataset.CreateLayer("districts", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("code", ogr.OFTString))
    layer.StartTransaction()
    for index, cell in enumerate(cells):
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("code", f"WK{index:04d}")
        # densified: real district boundaries have many vertices
        feature.SetGeometry(ogr.CreateGeometryFromWkb(shapely.to_wkb(shapely.segmentize(cell, 50.0))))
        layer.CreateFeature(feature)
    layer.CommitTransaction()
    dataset = None
    return {"composite": str(composite), "districts": str(districts)}


# --------------------------------------------------------------------------- children


def child(args) -> dict:
    """One contender's run, in this process; prints its figures as JSON."""
    work = Path(args.output)
    if args.child == "exactextract":
        from exactextract import exact_extract
        from osgeo import gdal, ogr

        band_1 = str(work / "band1.vrt")
        gdal.Translate(band_1, args.composite, format="VRT", bandList=[1]).FlushCache()  # written before it is read
        started = time.perf_counter()
        dataset = ogr.Open(args.districts_file)
        frame = exact_extract(band_1, dataset.GetLayer(0), ["count", "min", "max", "mean", "stdev"],
                              include_cols=["code"], output="pandas")
        seconds = time.perf_counter() - started
        means = {row.code: (None if row.mean != row.mean else float(row.mean)) for row in frame.itertuples()}
        return {"seconds": seconds, "means": means}

    import pyproj  # noqa: F401  (imports are not part of the timed work)
    import rasterio  # noqa: F401
    import shapely  # noqa: F401
    from osgeo import gdal, ogr  # noqa: F401

    from canopy_explorer.plugin.core.districts.statistics import Districts, DistrictStatsRequest

    output = work / f"{args.child}.gpkg"
    if output.exists():
        output.unlink()
    marks = []

    def note(message):
        marks.append((time.perf_counter(), message))

    if args.child == "embedded":
        from canopy_explorer.plugin.core.districts.embedded import district_stats_embedded

        started = time.perf_counter()
        districts = Districts.from_file(args.districts_file, "code")
        district_stats_embedded(DistrictStatsRequest.create(districts, [args.composite], output), log=note)
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "output": str(output)}

    import psycopg
    from psycopg import sql

    from canopy_explorer.plugin.core.districts.postgis import district_stats_postgis

    with psycopg.connect(args.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    loader = args.child.split("-", 1)[1]
    started = time.perf_counter()
    districts = Districts.from_file(args.districts_file, "code")
    district_stats_postgis(DistrictStatsRequest.create(districts, [args.composite], connection=args.conninfo, schema=SCHEMA,
                                                       output_gpkg=output, loader=loader), log=note)
    seconds = time.perf_counter() - started
    load = next(float(m.rsplit(" in ", 1)[1].split()[0]) for _, m in marks if " loaded as " in m)
    query = next(float(m.rsplit(" in ", 1)[1].split()[0]) for _, m in marks if ": statistics of " in m)
    tiles = next(int(m.split(" loaded as ")[1].split()[0]) for _, m in marks if " loaded as " in m)
    return {"seconds": seconds, "load_seconds": load, "query_seconds": query, "tiles": tiles, "output": str(output)}


def run_child(mode: str, python: str, data: dict, work: Path, conninfo: str) -> dict:
    command = [python, str(Path(__file__).resolve()), "--child", mode, "--composite", data["composite"],
               "--districts-file", data["districts"], "--output", str(work), "--conninfo", conninfo]
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def exactextract_python(workdir: Path) -> tuple:
    """(python of the benchmark virtualenv, None) or (None, reason it could not be made)."""
    venv = workdir / "zonal-bench-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)], check=True)
    check = subprocess.run([str(python), "-c", "import exactextract"], capture_output=True)
    if check.returncode != 0:
        install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                                  "--no-deps", EXACTEXTRACT], capture_output=True, text=True)
        if install.returncode != 0:
            return None, install.stderr.strip().splitlines()[-1] if install.stderr.strip() else "pip failed"
    return str(python), None


# --------------------------------------------------------------------------- comparison and report


def compare(embedded_gpkg: str, other_gpkg: str) -> dict:
    sys.path.insert(0, str(REPO / "tests"))
    from zonal_fixtures import read_table

    a, b = read_table(embedded_gpkg, f"ndvi_stats_{YEAR}"), read_table(other_gpkg, f"ndvi_stats_{YEAR}")
    worst, counts_equal = 0.0, set(a) == set(b)
    for key in a:
        counts_equal &= a[key]["pixel_count"] == b[key]["pixel_count"]
        for field in ("min_ndvi", "max_ndvi", "mean_ndvi", "stddev_ndvi"):
            if (a[key][field] is None) != (b[key][field] is None):
                counts_equal = False
            elif a[key][field] is not None:
                worst = max(worst, abs(a[key][field] - b[key][field]))
    return {"same_ids_and_counts": counts_equal, "max_abs_difference": worst}


def versions(exactextract_py) -> str:
    import numpy
    import psycopg
    import rasterio
    import shapely
    from osgeo import gdal

    parts = [f"python {platform.python_version()}", f"numpy {numpy.__version__}", f"rasterio {rasterio.__version__}",
             f"GDAL {gdal.__version__}", f"shapely {shapely.__version__}", f"psycopg {psycopg.__version__}"]
    sys.path.insert(0, str(REPO / "tests"))
    from postgis_fixtures import server_binaries  # the distribution's PostgreSQL, as the tests find it

    server = subprocess.run([str(server_binaries() / "postgres"), "--version"], capture_output=True, text=True).stdout.strip()
    parts.append(server or "PostgreSQL ?")
    if exactextract_py:
        parts.append(EXACTEXTRACT.replace("==", " "))
    return ", ".join(parts)


def report(figures: dict, args) -> str:
    rows = []
    embedded = statistics.median(figures["runs"]["embedded"])
    labels = {"embedded": "embedded (rasterio + numpy)", "postgis-raster2pgsql": "PostGIS, tiles by raster2pgsql",
              "postgis-python": "PostGIS, tiles by the Python encoder", "exactextract": "exactextract (coverage-weighted)"}
    for mode in MODES:
        runs = figures["runs"].get(mode)
        if not runs:
            continue
        median = statistics.median(runs)
        detail = ""
        if mode.startswith("postgis"):
            load = statistics.median(figures["load"][mode])
            query = statistics.median(figures["query"][mode])
            detail = f"raster load {load:.1f} s ({figures['tiles'][mode]} tiles), ST_Clip statistics {query:.1f} s"
        rows.append(f"| {labels[mode]} | {median:.2f} | {min(runs):.2f} | {median / embedded:.2f} | {detail} |")
    same = figures["checks"]
    checks = "; ".join(f"{mode}: {'same ids and pixel counts' if c['same_ids_and_counts'] else 'DIFFERENT ids or counts'}, "
                       f"largest statistic difference {c['max_abs_difference']:.1e}" for mode, c in same.items())
    exact = figures.get("exactextract_vs_embedded")
    exact_text = (f" exactextract's coverage-weighted means differ from the pixel-centre means by {exact['median']:.1e} "
                  f"(median) and {exact['max']:.1e} (largest, in a district of {exact['max_pixels']} pixels, where the "
                  "partly covered pixels along its edge weigh most) over the districts with data."
                  if exact else f" exactextract could not be installed: {figures.get('exactextract_error')}.")
    return "\n".join([
        "## District zonal statistics (embedded vs PostGIS vs exactextract)",
        "",
        f"Generated by `tests/benchmarks/bench_zonal_stats.py` on {time.strftime('%Y-%m-%d %H:%M')} "
        f"({figures['total_minutes']:.1f} min for the whole run). Re-run with `.venv/bin/python "
        f"tests/benchmarks/bench_zonal_stats.py --size {args.size} --districts {args.districts} --rounds {args.rounds}`.",
        "",
        f"**Machine**: {figures['machine']}; 1-minute load average {figures['load_start']:.2f} at the start and "
        f"{figures['load_end']:.2f} at the end. **Software**: {figures['versions']}.",
        "",
        f"**Data**: one composite of {args.size} x {args.size} pixels (10 m, UTM 32N, float32 NDVI with NaN outside a "
        f"rounded boundary plus a count band, COG with DEFLATE and 256-pixel blocks, "
        f"{figures['composite_mb']:.0f} MB), {args.districts} Voronoi districts (densified to 50 m vertices; a tenth "
        "reach past the raster's edges). Each contender runs in its own process, in turns, "
        f"{args.rounds} round(s); wall time of the work (reading the districts, computing, writing the GeoPackage; "
        "for PostGIS also loading the districts and the raster into a fresh schema on a loopback PostgreSQL 15 + "
        "PostGIS 3.3 server, the latest and change tables, and the copy back into the GeoPackage).",
        "",
        "| contender | median (s) | best (s) | median / embedded | PostGIS steps (medians) |",
        "|---|---:|---:|---:|---|",
        *rows,
        "",
        f"**Correctness** (same run): {checks}.{exact_text}",
        "",
        f"**Reading**: {figures['conclusion']}",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4000)
    parser.add_argument("--districts", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", default=str(REPO / "build" / "bench"))
    parser.add_argument("--markdown", default=str(REPO / "docs" / "BENCHMARKS.md"))
    parser.add_argument("--child", choices=MODES)
    parser.add_argument("--composite")
    parser.add_argument("--districts-file")
    parser.add_argument("--output")
    parser.add_argument("--conninfo", default="")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    began = time.time()
    load_start = os.getloadavg()[0]
    workdir = Path(args.workdir).resolve()
    work = workdir / f"zonal-{args.size}-{args.districts}"
    work.mkdir(parents=True, exist_ok=True)
    log(f"data in {work}")
    data = make_data(work, args.size, args.districts)
    data_args = {"composite": data["composite"], "districts": data["districts"]}
    exact_python, exact_error = exactextract_python(workdir)
    if exact_error:
        log(f"exactextract unavailable: {exact_error}")
    sys.path.insert(0, str(REPO / "tests"))
    from postgis_fixtures import running_postgis

    figures = {"runs": {}, "load": {}, "query": {}, "tiles": {}, "checks": {}}
    modes = [m for m in MODES if m != "exactextract" or exact_python]
    with running_postgis("-c maintenance_work_mem=256MB -c work_mem=64MB -c max_wal_size=4GB") as server:
        outputs = {}
        for round_number in range(args.rounds):
            order = modes[round_number % len(modes):] + modes[:round_number % len(modes)]
            for mode in order:
                python = exact_python if mode == "exactextract" else sys.executable
                result = run_child(mode, python, data_args, work, server.conninfo)
                figures["runs"].setdefault(mode, []).append(result["seconds"])
                if mode.startswith("postgis"):
                    figures["load"].setdefault(mode, []).append(result["load_seconds"])
                    figures["query"].setdefault(mode, []).append(result["query_seconds"])
                    figures["tiles"][mode] = result["tiles"]
                outputs[mode] = result
                log(f"round {round_number + 1}: {mode} {result['seconds']:.2f} s")
    for mode in ("postgis-raster2pgsql", "postgis-python"):
        figures["checks"][mode] = compare(outputs["embedded"]["output"], outputs[mode]["output"])
    if exact_python:
        sys.path.insert(0, str(REPO / "tests"))
        from zonal_fixtures import read_table

        embedded = read_table(outputs["embedded"]["output"], f"ndvi_stats_{YEAR}")
        differences = sorted((abs(outputs["exactextract"]["means"][key] - row["mean_ndvi"]), row["pixel_count"])
                             for key, row in embedded.items()
                             if row["mean_ndvi"] is not None and outputs["exactextract"]["means"].get(key) is not None)
        figures["exactextract_vs_embedded"] = {"median": statistics.median(d for d, _ in differences),
                                               "max": differences[-1][0], "max_pixels": differences[-1][1]}
    else:
        figures["exactextract_error"] = exact_error
    medians = {mode: statistics.median(runs) for mode, runs in figures["runs"].items()}
    fastest_postgis = min(medians["postgis-raster2pgsql"], medians["postgis-python"])
    text = (f"the embedded mode takes {medians['embedded']:.1f} s against {fastest_postgis:.1f} s for the faster PostGIS "
            f"run including the raster load ({fastest_postgis / medians['embedded']:.1f} times as long)")
    if "exactextract" in medians:
        text += f"; exactextract takes {medians['exactextract']:.1f} s for its coverage-weighted statistics"
    figures["conclusion"] = text + "."
    figures.update(machine=machine_line(), versions=versions(exact_python), load_start=load_start, load_end=os.getloadavg()[0],
                   total_minutes=(time.time() - began) / 60, composite_mb=Path(data["composite"]).stat().st_size / 1e6,
                   size=args.size, districts=args.districts, rounds=args.rounds)
    (workdir / "zonal_stats.json").write_text(json.dumps({k: v for k, v in figures.items()}, indent=2, default=str))
    section = report(figures, args)
    print(section)
    write_section(Path(args.markdown), f"{MARK_START}\n{section}\n{MARK_END}", MARK_START, MARK_END)
    log(f"section written to {args.markdown}")


if __name__ == "__main__":
    main()
