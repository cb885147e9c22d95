"""Every Processing algorithm against a table of bad inputs: each gives a clear error and writes nothing.

The table (``CASES``) is also the source of ``docs/ROBUSTNESS.md`` (``scripts/robustness_doc.py``);
``test_robustness_doc_lists_every_case`` keeps the two in step.

Output places that cannot be written: a folder that does not exist, a read-only filesystem
and a full one (small tmpfs mounts; those cases are skipped where mounting is not allowed).
"""

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict

import pytest
import shapely
from qgis.core import QgsFeature, QgsGeometry, QgsProcessingException, QgsProcessingFeedback, QgsRasterLayer, QgsVectorLayer

from stac_fixtures import *  # noqa: F401,F403
from stac_fixtures import BOUNDARY, BOUNDARY_CRS, COLLECTION
from zonal_fixtures import CRS as DISTRICTS_CRS, district_shapes, write_composites

ROOT = Path(__file__).resolve().parent.parent
REGION = "7.05,7.25,45.05,45.25 [EPSG:4326]"


@dataclass(frozen=True)
class Case:
    algorithm: str
    name: str  # what is wrong, as ROBUSTNESS.md lists it
    changes: Callable[["Places"], Dict]  # parameter changes, given the places and layers of the test
    message: str  # a regular expression the error must match
    output: str = "tmp"  # where nothing may appear: "tmp", "read_only" or "full"


@dataclass
class Places:
    tmp: Path
    read_only: Path = None
    full: Path = None
    database: object = None
    granules: Path = None
    stac_url: str = ""
    composites: dict = None


# --------------------------------------------------------------------------- layers


def polygon_layer(wkts=(), crs="EPSG:4326", fields=()):
    layer = QgsVectorLayer(f"MultiPolygon?crs={crs}" if crs else "MultiPolygon", "polygons", "memory")
    if fields:
        from canopy_explorer.plugin.qgis_compat import new_field

        layer.dataProvider().addAttributes([new_field(name, "string") for name in fields])
        layer.updateFields()
    features = []
    for index, wkt in enumerate(wkts):
        feature = QgsFeature(layer.fields())
        if fields:
            feature.setAttributes([f"d{index}"] * len(fields))
        feature.setGeometry(QgsGeometry.fromWkt(wkt))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    return layer


def crsless_layer(folder: Path, wkts, fields=()):
    """A GeoPackage layer whose features have no CRS at all (a memory layer would default to EPSG:4326)."""
    from osgeo import ogr

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "no_crs.gpkg"
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = dataset.CreateLayer("no_crs", None, ogr.wkbMultiPolygon)
    for name in fields:
        layer.CreateField(ogr.FieldDefn(name, ogr.OFTString))
    for index, wkt in enumerate(wkts):
        feature = ogr.Feature(layer.GetLayerDefn())
        for name in fields:
            feature.SetField(name, f"d{index}")
        feature.SetGeometry(ogr.ForceToMultiPolygon(ogr.CreateGeometryFromWkt(wkt)))
        layer.CreateFeature(feature)
    dataset = None
    qgis_layer = QgsVectorLayer(f"{path}|layername=no_crs", "no crs", "ogr")
    assert qgis_layer.isValid() and not qgis_layer.crs().authid()  # QGIS calls it "Undefined geographic SRS"
    return qgis_layer


def districts_layer(crs=DISTRICTS_CRS, shapes=None):
    wkts = [geometry.wkt for _, geometry in (district_shapes() if shapes is None else shapes)]
    return polygon_layer(wkts, crs, fields=("district code",))


def city_layer(crs=BOUNDARY_CRS, wkt=BOUNDARY.wkt):
    return polygon_layer([wkt], crs)


def _config(folder: Path, database: Path) -> Path:
    """A database configuration YAML in ``folder`` for a database at ``database``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"config_{abs(hash(str(database)))}.yaml"
    path.write_text(f"tiledb:\n  storage_type: local\n  local_path: {database}\n")
    return path


# --------------------------------------------------------------------------- good parameters per algorithm


def good(algorithm: str, places: Places, out: Path) -> Dict:
    if algorithm == "atl08_query":
        return {"CONFIG": places.database.local_path, "ROI": REGION, "START": "2020-01-01", "END": "2021-12-31",
                "VARIABLES": "h_canopy", "FILTERS": "h_canopy between 5 60", "OUTPUT": str(out / "query.gpkg")}
    if algorithm == "atl08_nearest":
        return {"CONFIG": places.database.local_path, "POINT": "7.15,45.15 [EPSG:4326]", "NUM_SHOTS": 20, "RADIUS_M": 5000,
                "VARIABLES": "h_canopy", "OUTPUT": str(out / "nearest.gpkg")}
    if algorithm == "atl08_ingest":
        return {"INPUT": str(places.granules), "CONFIG": str(_config(out / "inputs", out / "db"))}
    if algorithm == "atl08_grid_change":
        return {"CONFIG": places.database.local_path, "VARIABLE": "h_canopy", "PERIOD1_START": "2020-01-01",
                "PERIOD1_END": "2020-12-31", "PERIOD2_START": "2021-01-01", "PERIOD2_END": "2021-12-31", "CELL_SIZE_KM": 20,
                "MIN_SHOTS": 5, "OUTPUT": str(out / "grid.gpkg")}
    if algorithm == "atl08_district_stats":
        return {"DISTRICTS": polygon_layer([REGION_WKT], "EPSG:4326", fields=("district code",)), "ID_FIELD": "district code",
                "CONFIG": places.database.local_path, "VARIABLE": "h_canopy", "OUTPUT": str(out / "districts.gpkg")}
    if algorithm == "ndvi_composite":
        return {"ROI": city_layer(), "YEARS": "2022", "STAC_URL": places.stac_url, "COLLECTION": COLLECTION, "MAX_CLOUD": 50,
                "OUTPUT_FOLDER": str(out / "ndvi")}
    if algorithm == "zonal_stats":
        return {"DISTRICTS": districts_layer(), "ID_FIELD": "district code",
                "RASTERS": [QgsRasterLayer(str(p), p.stem) for p in places.composites.values()], "DATABASE": "",
                "OUTPUT": str(out / "stats.gpkg")}
    raise KeyError(algorithm)


REGION_WKT = "POLYGON((7.05 45.05, 7.25 45.05, 7.25 45.25, 7.05 45.25, 7.05 45.05))"


def _sliver(polygon) -> str:
    """An invalid polygon with no area along ``polygon``'s southern edge (a ring that folds back on one line)."""
    x0, y0, x1, _ = polygon.bounds
    return f"POLYGON(({x0} {y0}, {x1} {y0}, {(x0 + x1) / 2} {y0}, {x0} {y0}))"


SLIVER_WKT = _sliver(shapely.from_wkt(REGION_WKT))
ATL08 = ("atl08_query", "atl08_grid_change", "atl08_district_stats")

CASES = [
    # atl08_query
    Case("atl08_query", "ROI neither an extent nor a layer", lambda p: {"ROI": "somewhere nice"}, r"ROI|region of interest"),
    Case("atl08_query", "empty polygon layer as ROI", lambda p: {"ROI": polygon_layer()}, r"no features|empty"),
    Case("atl08_query", "CRS-less polygon layer as ROI", lambda p: {"ROI": crsless_layer(p.tmp / "inputs", [REGION_WKT])}, r"no coordinate reference system"),
    Case("atl08_query", "ROI polygon with no area (invalid geometry)", lambda p: {"ROI": polygon_layer([SLIVER_WKT])}, r"feature \d+ has no area: it is an invalid polygon"),
    Case("atl08_query", "ROI that is a point layer", lambda p: {"ROI": _point_layer()}, r"has no polygons"),
    Case("atl08_query", "impossible date", lambda p: {"START": "2020-13-45"}, r"2020-13-45"),
    Case("atl08_query", "end before start", lambda p: {"START": "2021-06-01", "END": "2020-01-01"}, r"before start"),
    Case("atl08_query", "dates outside the data (1850)", lambda p: {"START": "1850-01-01", "END": "1850-12-31"}, r"no segments"),
    Case("atl08_query", "unknown variable", lambda p: {"VARIABLES": "h_canopi"}, r"did you mean 'h_canopy'"),
    Case("atl08_query", "no variable", lambda p: {"VARIABLES": " , "}, r"no variables"),
    Case("atl08_query", "malformed filter", lambda p: {"FILTERS": "h_canopy >> 5"}, r"h_canopy >> 5"),
    Case("atl08_query", "filter on an unknown variable", lambda p: {"FILTERS": "canopy_heigth > 5"}, r"canopy_heigth"),
    Case("atl08_query", "missing database", lambda p: {"CONFIG": str(p.tmp / "no_such_db")}, r"does not exist|no ATL08 database"),
    Case("atl08_query", "a file that is not a database", lambda p: {"CONFIG": str(ROOT / "README.md")}, r"README.md"),
    Case("atl08_query", "output folder missing", lambda p: {"OUTPUT": "/nonexistent/dir/out.gpkg"}, r"does not exist"),
    Case("atl08_query", "read-only output folder", lambda p: {"OUTPUT": str(p.read_only / "q.gpkg")}, r"read-only|not writable|cannot write", "read_only"),
    Case("atl08_query", "full disk", lambda p: {"OUTPUT": str(p.full / "q.gpkg")}, r"No space|full|cannot write", "full"),
    # atl08_nearest
    Case("atl08_nearest", "point outside longitude/latitude", lambda p: {"POINT": "500,100 [EPSG:4326]"}, r"longitude/latitude"),
    Case("atl08_nearest", "radius that is not a number", lambda p: {"RADIUS_M": "far"}, r"RADIUS_M|radius"),
    Case("atl08_nearest", "unknown variable", lambda p: {"VARIABLES": "h_canopi"}, r"did you mean 'h_canopy'"),
    Case("atl08_nearest", "no segment within the radius", lambda p: {"POINT": "20,10 [EPSG:4326]", "RADIUS_M": 10}, r"no segment"),
    Case("atl08_nearest", "missing database", lambda p: {"CONFIG": str(p.tmp / "no_such_db")}, r"does not exist|no ATL08 database"),
    Case("atl08_nearest", "read-only output folder", lambda p: {"OUTPUT": str(p.read_only / "n.gpkg")}, r"read-only|not writable|cannot write", "read_only"),
    # atl08_ingest
    Case("atl08_ingest", "missing granule folder", lambda p: {"INPUT": str(p.tmp / "no_granules")}, r"INPUT|no_granules"),
    Case("atl08_ingest", "folder without granules", lambda p: {"INPUT": str(ROOT / "configs")}, r"no ATL08 granules|no granule"),
    Case("atl08_ingest", "configuration with a wrong type", lambda p: {"CONFIG": str(_bad_yaml(p.tmp / "inputs"))}, r"capacity"),
    Case("atl08_ingest", "read-only database folder", lambda p: {"CONFIG": str(_config(p.tmp / "inputs", p.read_only / "db"))},
         r"read-only|not writable|cannot", "read_only"),
    Case("atl08_ingest", "full disk", lambda p: {"CONFIG": str(_config(p.tmp / "inputs", p.full / "db"))}, r"space|full|cannot", "full"),
    # atl08_grid_change
    Case("atl08_grid_change", "unknown variable", lambda p: {"VARIABLE": "h_canopyy"}, r"did you mean 'h_canopy'"),
    Case("atl08_grid_change", "malformed filter", lambda p: {"FILTERS": "h_canopy >>= 3"}, r"h_canopy >>= 3"),
    Case("atl08_grid_change", "missing database", lambda p: {"CONFIG": str(p.tmp / "no_such_db")}, r"does not exist|no ATL08 database"),
    Case("atl08_grid_change", "profile variable without a label", lambda p: {"VARIABLE": "canopy_h_metrics"}, r"name one with a label"),
    Case("atl08_grid_change", "impossible date", lambda p: {"PERIOD1_START": "2020-02-30"}, r"2020-02-30"),
    Case("atl08_grid_change", "period ending before it starts", lambda p: {"PERIOD2_END": "2020-01-01"}, r"before start"),
    Case("atl08_grid_change", "MIN_SHOTS no cell reaches", lambda p: {"MIN_SHOTS": 10_000_000}, r"no cell has at least"),
    Case("atl08_grid_change", "cell size that is not a number", lambda p: {"CELL_SIZE_KM": "big"}, r"CELL_SIZE_KM|cell size"),
    Case("atl08_grid_change", "geographic grid CRS", lambda p: {"GRID_CRS": "EPSG:4326"}, r"projected in metres"),
    Case("atl08_grid_change", "output neither GeoPackage nor GeoTIFF", lambda p: {"OUTPUT": str(p.tmp / "grid.shp")}, r"GeoPackage|GeoTIFF"),
    Case("atl08_grid_change", "read-only output folder", lambda p: {"OUTPUT": str(p.read_only / "g.gpkg")}, r"read-only|not writable|cannot write", "read_only"),
    # atl08_district_stats
    Case("atl08_district_stats", "empty districts layer", lambda p: {"DISTRICTS": polygon_layer(fields=("district code",))}, r"has no features"),
    Case("atl08_district_stats", "CRS-less districts", lambda p: {"DISTRICTS": crsless_layer(p.tmp / "inputs", [REGION_WKT], ("district code",))},
         r"no coordinate reference system"),
    Case("atl08_district_stats", "districts with no area (invalid geometries)",
         lambda p: {"DISTRICTS": polygon_layer([SLIVER_WKT], "EPSG:4326", fields=("district code",))}, r"no district has an area \(district .d0. is an invalid polygon"),
    Case("atl08_district_stats", "id field missing", lambda p: {"ID_FIELD": "fid"}, r"fid"),
    Case("atl08_district_stats", "unknown variable", lambda p: {"VARIABLE": "h_canopi"}, r"did you mean 'h_canopy'"),
    Case("atl08_district_stats", "malformed filter", lambda p: {"FILTERS": "h_canopy between 5"}, r"between"),
    Case("atl08_district_stats", "read-only output folder", lambda p: {"OUTPUT": str(p.read_only / "d.gpkg")}, r"read-only|not writable|cannot write", "read_only"),
    # ndvi_composite
    Case("ndvi_composite", "empty boundary layer", lambda p: {"ROI": polygon_layer(crs=BOUNDARY_CRS)}, r"no polygon features"),
    Case("ndvi_composite", "CRS-less boundary", lambda p: {"ROI": crsless_layer(p.tmp / "inputs", [BOUNDARY.wkt])}, r"no coordinate reference system"),
    Case("ndvi_composite", "boundary with no area (invalid geometry)", lambda p: {"ROI": city_layer(wkt=_sliver(BOUNDARY))}, r"feature \d+ has no area: it is an invalid polygon"),
    Case("ndvi_composite", "metres in a layer that says degrees", lambda p: {"ROI": city_layer(crs="EPSG:4326")}, r"not longitudes and latitudes"),
    Case("ndvi_composite", "years that are not years", lambda p: {"YEARS": "2022, twenty"}, r"twenty"),
    Case("ndvi_composite", "a year before Sentinel-2", lambda p: {"YEARS": "1999"}, r"1999"),
    Case("ndvi_composite", "unreachable STAC API", lambda p: {"STAC_URL": "http://127.0.0.1:9/stac"}, r"127.0.0.1:9|reach|connect"),
    Case("ndvi_composite", "read-only output folder", lambda p: {"OUTPUT_FOLDER": str(p.read_only / "ndvi")}, r"read-only|not writable|cannot", "read_only"),
    Case("ndvi_composite", "full disk", lambda p: {"OUTPUT_FOLDER": str(p.full / "ndvi")}, r"No space|full|cannot|write", "full"),
    # zonal_stats
    Case("zonal_stats", "empty districts layer", lambda p: {"DISTRICTS": districts_layer(shapes=[])}, r"has no features"),
    Case("zonal_stats", "CRS-less districts", lambda p: {"DISTRICTS": crsless_layer(p.tmp / "inputs", [g.wkt for _, g in district_shapes()], ("district code",))},
         r"no coordinate reference system"),
    Case("zonal_stats", "districts with no area (invalid geometries)",
         lambda p: {"DISTRICTS": polygon_layer([_sliver(g) for _, g in district_shapes()], DISTRICTS_CRS, fields=("district code",))},
         r"no district has an area \(district .d0. is an invalid polygon"),
    Case("zonal_stats", "a vector layer given as a composite", lambda p: {"RASTERS": [districts_layer()]}, r"'polygons' is not a raster"),
    Case("zonal_stats", "no composites", lambda p: {"RASTERS": []}, r"composite|raster"),
    Case("zonal_stats", "raster without a year in its name", lambda p: {"RASTERS": [_renamed_composite(p)]}, r"year"),
    Case("zonal_stats", "unknown PostgreSQL connection", lambda p: {"DATABASE": "no such connection"}, r"no such connection"),
    Case("zonal_stats", "output not a GeoPackage", lambda p: {"OUTPUT": str(p.tmp / "stats.csv")}, r"GeoPackage"),
    Case("zonal_stats", "read-only output folder", lambda p: {"OUTPUT": str(p.read_only / "s.gpkg")}, r"read-only|not writable|cannot write", "read_only"),
    Case("zonal_stats", "full disk", lambda p: {"OUTPUT": str(p.full / "s.gpkg")}, r"No space|full|cannot write", "full"),
]


def _point_layer():
    layer = QgsVectorLayer("Point?crs=EPSG:4326", "points", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromWkt("POINT(7.1 45.1)"))
    layer.dataProvider().addFeatures([feature])
    return layer


def _bad_yaml(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bad_config.yaml"
    path.write_text(f"tiledb:\n  storage_type: local\n  local_path: {folder / 'db'}\n  capacity: lots\n")
    return path


def _renamed_composite(places: Places):
    import shutil

    source = next(iter(places.composites.values()))
    target = places.tmp / "inputs" / "composite_latest.tif"
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(source, target)
    return QgsRasterLayer(str(target), target.stem)


# --------------------------------------------------------------------------- places


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def mounts(tmp_path_factory):
    """A read-only filesystem and a 64 kB one (None where mounting is not allowed)."""
    base = tmp_path_factory.mktemp("mounts")
    read_only = base / "read_only" if _mount_tmpfs(base / "read_only", "size=1m,ro") else None
    full = base / "full" if _mount_tmpfs(base / "full", "size=64k") else None
    yield read_only, full
    for path in (read_only, full):
        if path is not None:
            subprocess.run(["umount", str(path)], capture_output=True)


def _contents(path: Path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path and path.exists() else []


@pytest.mark.parametrize("case", CASES, ids=[f"{c.algorithm}: {c.name}" for c in CASES])
def test_bad_input_gives_a_clear_error_and_writes_nothing(case, loaded_plugin, local_database, sample_granules, mounts,
                                                          request, tmp_path):
    from qgis import processing

    read_only, full = mounts
    if case.output == "read_only" and read_only is None or case.output == "full" and full is None:
        pytest.skip("mounting a tmpfs is not allowed here")
    places = Places(tmp=tmp_path / "work", read_only=read_only, full=full, database=local_database,
                    granules=Path(sample_granules[0]).parent)
    places.tmp.mkdir()
    if case.algorithm == "ndvi_composite":
        places.stac_url = request.getfixturevalue("stac_server").url
    if case.algorithm == "zonal_stats":
        places.composites = write_composites(tmp_path / "composites")
    parameters = good(case.algorithm, places, places.tmp)
    parameters.update(case.changes(places))
    watched = {"tmp": places.tmp, "read_only": read_only, "full": full}[case.output]
    before = _contents(watched)
    with pytest.raises(QgsProcessingException) as raised:
        processing.run(f"canopyexplorer:{case.algorithm}", parameters, feedback=QgsProcessingFeedback())
    message = str(raised.value)
    assert re.search(case.message, message, re.IGNORECASE), message
    assert "Traceback" not in message
    left = [name for name in _contents(watched) if name not in before and not name.startswith("inputs")]
    assert left == [], f"{case.algorithm} left {left} behind"
    if os.environ.get("ROBUSTNESS_RECORD"):  # scripts/robustness_doc.py collects the messages for docs/ROBUSTNESS.md
        with open(os.environ["ROBUSTNESS_RECORD"], "a", encoding="utf-8") as record:
            record.write(json.dumps({"case": f"{case.algorithm}: {case.name}", "message": message}) + "\n")


def test_robustness_doc_lists_every_case():
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import robustness_doc
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    text = (ROOT / "docs" / "ROBUSTNESS.md").read_text(encoding="utf-8")
    missing = [f"{c.algorithm}: {c.name}" for c in CASES if robustness_doc.row_key(c) not in text]
    assert not missing, f"docs/ROBUSTNESS.md lacks {missing}: run scripts/robustness_doc.py"
