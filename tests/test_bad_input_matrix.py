"""Every Processing algorithm against a table of bad inputs: each gives a clear error and writes nothing,
or, for input that can be partly used (a copy of a granule, fill values, a stale lock), completes and
says what it left out.

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
    message: str  # a regular expression the error (or, for "reported" cases, the Processing log) must match
    output: str = "tmp"  # where nothing may appear: "tmp", "read_only" or "full"; "database" for "reported" cases
    outcome: str = "error"  # or "reported": the algorithm completes, and its output holds every good segment exactly once


@dataclass
class Places:
    tmp: Path
    read_only: Path = None
    full: Path = None
    database: object = None
    granules: Path = None
    stac_url: str = ""
    composites: dict = None
    processes: list = None  # started by a case (a concurrent ingest), waited for after the run


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


def _config(folder: Path, database: Path, **keys) -> Path:
    """A database configuration YAML in ``folder`` for a database at ``database`` (and more ``tiledb:`` keys)."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"config_{abs(hash((str(database), repr(keys))))}.yaml"
    path.write_text(yaml.safe_dump({"tiledb": {"storage_type": "local", "local_path": str(database), **keys}}))
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
    Case("atl08_query", "dates outside the data (1850)", lambda p: {"START": "1850-01-01", "END": "1850-12-31"},
         r"no segments match .*: the region holds [\d,]+ segments in this database, none of them from 1850-01-01 to 1850-12-31 "
         r"\(the database holds 20"),
    Case("atl08_query", "unknown variable", lambda p: {"VARIABLES": "h_canopi"}, r"did you mean 'h_canopy'"),
    Case("atl08_query", "no variable", lambda p: {"VARIABLES": " , "}, r"no variables"),
    Case("atl08_query", "malformed filter", lambda p: {"FILTERS": "h_canopy >> 5"}, r"h_canopy >> 5"),
    Case("atl08_query", "filter on an unknown variable", lambda p: {"FILTERS": "canopy_heigth > 5"}, r"canopy_heigth"),
    Case("atl08_query", "missing database", lambda p: {"CONFIG": str(p.tmp / "no_such_db")}, r"does not exist|no ATL08 database"),
    Case("atl08_query", "a file that is not a database", lambda p: {"CONFIG": str(ROOT / "README.md")}, r"README.md"),
    Case("atl08_query", "output folder missing", lambda p: {"OUTPUT": "/nonexistent/dir/out.gpkg"}, r"does not exist"),
    Case("atl08_query", "read-only output folder", lambda p: {"OUTPUT": str(p.read_only / "q.gpkg")}, r"read-only|not writable|cannot write", "read_only"),
    Case("atl08_query", "full disk", lambda p: {"OUTPUT": str(p.full / "q.gpkg")}, r"No space|full|cannot write", "full"),
    # atl08_query: hostile or careless input (limits, with the message that names the parameter, key or file)
    Case("atl08_query", "filter nested 1,000 parentheses deep", lambda p: {"FILTERS": "(" * 1000 + "h_canopy > 5" + ")" * 1000},
         r"line 1: parentheses are nested more than 32 deep at column 33"),
    Case("atl08_query", "filter of 1,000 'not's", lambda p: {"FILTERS": "not " * 1000 + "h_canopy > 5"},
         r"parentheses and 'not' are nested more than 32 deep"),
    Case("atl08_query", "filter of 5,000 'not's", lambda p: {"FILTERS": "not " * 5000 + "h_canopy > 5"},
         r"the quality filters are 20,012 characters long; at most 20,000"),
    Case("atl08_query", "'and'/'or' nested 250 deep", lambda p: {"FILTERS": _nested_filter(250)}, r"nested more than 32 deep"),
    Case("atl08_query", "filter of 300 comparisons", lambda p: {"FILTERS": " or ".join(f"h_canopy > {i}" for i in range(300))},
         r"hold 300 comparisons .* at most 256"),
    Case("atl08_query", "filter of 8,000 clauses", lambda p: {"FILTERS": " and ".join(f"h_canopy > {i}" for i in range(8000))},
         r"characters long; at most 20,000"),
    Case("atl08_query", "1 MB filter", lambda p: {"FILTERS": ("h_canopy > 5 and " * 62_000) + "h_canopy > 5"},
         r"the quality filters are 1,054,012 characters long"),
    Case("atl08_query", "END in the year 3000", lambda p: {"END": "3000-01-01"},
         r"end time \(END\) 3000-01-01 is outside the times Canopy Explorer can represent \(1677-09-22 to 2262-04-10"),
    Case("atl08_query", "START in 2300 and no END", lambda p: {"START": "2300-01-01", "END": ""}, r"start time \(START\) 2300-01-01 is outside"),
    Case("atl08_query", "END in the year 1 and no START", lambda p: {"START": "", "END": "0001-01-01"},
         r"end time \(END\) 0001-01-01 is outside"),
    Case("atl08_query", "configuration with dimensions: 5", lambda p: {"CONFIG": _config_text(p, _LOCAL + "  dimensions: 5\n")},
         r"tiledb.dimensions in .*config.yaml must be the list \['latitude', 'longitude', 'time'\], not 5"),
    Case("atl08_query", "configuration with dimensions: null", lambda p: {"CONFIG": _config_text(p, _LOCAL + "  dimensions:\n")},
         r"tiledb.dimensions in .* not None"),
    Case("atl08_query", "configuration with a time of day in start_time",
         lambda p: {"CONFIG": _config_text(p, _LOCAL + "  time_range:\n    start_time: 2018-01-01 12:00:00\n")},
         r"tiledb.time_range.start_time in .*config.yaml must be a date like 2018-01-01, not a date and time"),
    Case("atl08_query", "binary configuration file", lambda p: {"CONFIG": _config_text(p, bytes(range(256)) * 4)}, r"holds NUL bytes: it is a binary file"),
    Case("atl08_query", "UTF-16 configuration file", lambda p: {"CONFIG": _config_text(p, _LOCAL.encode("utf-16"))}, r"is saved as UTF-16"),
    Case("atl08_query", "Latin-1 configuration file",
         lambda p: {"CONFIG": _config_text(p, (_LOCAL + "  s3_region: 'r\u00e9gion'\n").encode("latin-1"))},
         r"is not UTF-8 text: byte 0xe9 at line 4"),
    Case("atl08_query", "configuration that is a symbolic link loop", lambda p: {"CONFIG": _link_loop(p)},
         r"cannot read configuration .*loop_a.yaml: Too many levels of symbolic links"),
    Case("atl08_query", "database '~nosuchuser/db'", lambda p: {"CONFIG": "~nosuchuser/db"},
         r"the database location is '~nosuchuser/db': '~nosuchuser' names no user"),
    Case("atl08_query", "configuration with local_path ~nosuchuser/db",
         lambda p: {"CONFIG": _config_text(p, "tiledb:\n  storage_type: local\n  local_path: ~nosuchuser/db\n")},
         r"tiledb.local_path in .*config.yaml is '~nosuchuser/db'"),
    Case("atl08_query", "configuration with a YAML alias bomb in a key of the wrong type", lambda p: {"CONFIG": _config_text(p, _ALIAS_BOMB)},
         r"config.yaml, line 2: anchors and aliases \(&a, \*a\) are not allowed"),
    Case("atl08_query", "configuration with a key given twice",
         lambda p: {"CONFIG": _config_text(p, _LOCAL + "  capacity: 5\n  capacity: 6\n")}, r"line 5: the key 'capacity' appears twice"),
    Case("atl08_query", "configuration with an unknown block", lambda p: {"CONFIG": _config_text(p, _LOCAL + "ingest:\n  workers: 4\n")},
         r"unknown block 'ingest' in .*config.yaml"),
    Case("atl08_query", "output .geojson that is an existing folder", lambda p: {"OUTPUT": _folder(p.tmp / "out.geojson")},
         r"out.geojson is a folder: choose a file name"),
    Case("atl08_query", "output name longer than the filesystem allows", lambda p: {"OUTPUT": str(p.tmp / ("n" * 300 + ".geojson"))},
         r"the output name n{40}\.\.\. is 308 bytes long; files in .* may have at most 255"),
    Case("atl08_query", "ROI polygon with a NaN coordinate", lambda p: {"ROI": _nan_layer()},
         r"feature 1 of layer 'nan' has a vertex whose coordinates are not numbers \(nan, 45.0\)"),
    Case("atl08_query", "ROI extent wholly off the Earth", lambda p: {"ROI": "500,600,100,120 [EPSG:4326]"},
         r"the ROI extent lies outside the Earth \(lon 500 to 600, lat 100 to 120\): give an extent that lies on the Earth"),
    Case("atl08_query", "region without segments", lambda p: {"ROI": "20,20.1,60,60.1 [EPSG:4326]"},
         r"no segments match .*: the region holds no segments in this database \(its segments lie within lon 7"),
    Case("atl08_query", "a filter line that removes the last segments", lambda p: {"FILTERS": "h_canopy between 5 60\nh_canopy > 1000"},
         r"; line 1 'h_canopy between 5 60' keeps [\d,]+; line 2 'h_canopy > 1000' removes the remaining [\d,]+$"),
    # atl08_nearest
    Case("atl08_nearest", "point outside longitude/latitude", lambda p: {"POINT": "500,100 [EPSG:4326]"}, r"longitude/latitude"),
    Case("atl08_nearest", "radius that is not a number", lambda p: {"RADIUS_M": "far"}, r"RADIUS_M|radius"),
    Case("atl08_nearest", "unknown variable", lambda p: {"VARIABLES": "h_canopi"}, r"did you mean 'h_canopy'"),
    Case("atl08_nearest", "no segment within the radius", lambda p: {"POINT": "20,10 [EPSG:4326]", "RADIUS_M": 10},
         r"no segments match the time range and filters within 10 m of the point, so nothing was written: the circle of 10 m round "
         r"the point holds no segments in this database"),
    Case("atl08_nearest", "filters that leave no segment within the radius", lambda p: {"FILTERS": "h_canopy > 1000"},
         r"the circle of 5000 m round the point holds [\d,]+ segments in this database; line 1 'h_canopy > 1000' removes"),
    Case("atl08_nearest", "END in the year 3000", lambda p: {"END": "3000-01-01"}, r"end time \(END\) 3000-01-01 is outside"),
    Case("atl08_nearest", "missing database", lambda p: {"CONFIG": str(p.tmp / "no_such_db")}, r"does not exist|no ATL08 database"),
    Case("atl08_nearest", "read-only output folder", lambda p: {"OUTPUT": str(p.read_only / "n.gpkg")}, r"read-only|not writable|cannot write", "read_only"),
    # atl08_ingest
    Case("atl08_ingest", "missing granule folder", lambda p: {"INPUT": str(p.tmp / "no_granules")}, r"INPUT|no_granules"),
    Case("atl08_ingest", "folder without granules", lambda p: {"INPUT": str(ROOT / "configs")}, r"no ATL08 granules|no granule"),
    Case("atl08_ingest", "configuration with a wrong type", lambda p: {"CONFIG": str(_bad_yaml(p.tmp / "inputs"))}, r"capacity"),
    Case("atl08_ingest", "configuration with a YAML alias bomb", lambda p: {"CONFIG": _config_text(p, _ALIAS_BOMB)},
         r"config.yaml, line 2: anchors and aliases \(&a, \*a\) are not allowed"),
    Case("atl08_ingest", "read-only database folder", lambda p: {"CONFIG": str(_config(p.tmp / "inputs", p.read_only / "db"))},
         r"read-only|not writable|cannot", "read_only"),
    Case("atl08_ingest", "full disk", lambda p: {"CONFIG": str(_config(p.tmp / "inputs", p.full / "db"))}, r"space|full|cannot", "full"),
    Case("atl08_ingest", "capacity beyond what TileDB accepts (2^64)", lambda p: {"CONFIG": str(_config(p.tmp / "inputs", p.tmp / "db",
                                                                                                     capacity=2**64))},
         r"tiledb\.capacity in .* is 18446744073709551616: it must be at most 100000000"),
    Case("atl08_ingest", "every granule unreadable (a beam's longitude shorter than its latitude)",
         lambda p: {"INPUT": str(_bad_granules(p, "short_longitude", with_good=False))},
         r"none of the 1 granules could be ingested, nothing was written: .*beam gt2l cannot be read consistently"),
    Case("atl08_ingest", "database being written by another ingest (LOCK_WAIT 1 s)", lambda p: _locked(p, live=True),
         r"is being written by another ingest \(process 4242 on other-host; waited \d+ s\)"),
    Case("atl08_ingest", "the same granule saved under a second name", lambda p: {"INPUT": str(_bad_granules(p, "second_name"))},
         r"duplicate ATL08_\w+_02\.h5: same granule as ATL08_\w+_01\.h5, read in this run", "database", "reported"),
    Case("atl08_ingest", "a hand-edited copy (fill values) beside its original", lambda p: {"INPUT": str(_bad_granules(p, "edited_copy"))},
         r"skipped ATL08_\w+_01_edited\.h5: holds only segments stored from ATL08_\w+_01\.h5, read in this run", "database", "reported"),
    Case("atl08_ingest", "two different granules with one file name in two folders", lambda p: {"INPUT": str(_bad_granules(p, "one_name"))},
         r"^2 granules written \(\d+ segments.*0 duplicate files", "database", "reported"),
    Case("atl08_ingest", "fill values (3.4028235e38) in latitude", lambda p: {"INPUT": str(_bad_granules(p, "fill_latitude"))},
         r"ATL08_\w+\.h5: dropped 10 of \d+ segments: 10 fill, NaN or out-of-range latitude/longitude", "database", "reported"),
    Case("atl08_ingest", "a latitude of 95 among good granules of its year", lambda p: {"INPUT": str(_bad_granules(p, "latitude_95"))},
         r"ATL08_\w+\.h5: dropped 1 of \d+ segments: 1 fill, NaN or out-of-range latitude/longitude", "database", "reported"),
    Case("atl08_ingest", "a beam's longitude shorter than its latitude, among good granules",
         lambda p: {"INPUT": str(_bad_granules(p, "short_longitude"))},
         r"skipped ATL08_\w+\.h5: beam gt2l cannot be read consistently: longitude has \d+ rows but latitude has \d+", "database",
         "reported"),
    Case("atl08_ingest", "granules outside the configuration's time_range and spatial_range",
         lambda p: {"CONFIG": str(_config(p.tmp / "inputs", p.tmp / "db", time_range={"start_time": "2020-06-01", "end_time": "2021-06-30"},
                                          spatial_range={"lat_min": 45.08, "lat_max": 45.22}))},
         r"dropped \d+ of \d+ segments: \d+ outside the configuration's time_range", "database", "reported"),
    Case("atl08_ingest", "a lock left behind by a killed ingest", lambda p: _locked(p, live=False),
         r"removed a stale ingest lock of process \d+ on [^:]+: its process no longer runs", "database", "reported"),
    Case("atl08_ingest", "a second ingest started while one runs", lambda p: _concurrent_ingest(p),
         r"waiting for another ingest into .* to finish \(process \d+ on", "database", "reported"),
    Case("atl08_query", "database with a NaN fragment extent written by an earlier version", lambda p: {"CONFIG": str(_poisoned_database(p))},
         r"\d+ segments written to", "database", "reported"),
    # atl08_grid_change
    Case("atl08_grid_change", "unknown variable", lambda p: {"VARIABLE": "h_canopyy"}, r"did you mean 'h_canopy'"),
    Case("atl08_grid_change", "malformed filter", lambda p: {"FILTERS": "h_canopy >>= 3"}, r"h_canopy >>= 3"),
    Case("atl08_grid_change", "missing database", lambda p: {"CONFIG": str(p.tmp / "no_such_db")}, r"does not exist|no ATL08 database"),
    Case("atl08_grid_change", "profile variable without a label", lambda p: {"VARIABLE": "canopy_h_metrics"}, r"name one with a label"),
    Case("atl08_grid_change", "impossible date", lambda p: {"PERIOD1_START": "2020-02-30"}, r"2020-02-30"),
    Case("atl08_grid_change", "period ending before it starts", lambda p: {"PERIOD2_END": "2020-01-01"},
         r"end time \(PERIOD2_END\) 2020-01-01 is before start time \(PERIOD2_START\) 2021-01-01"),
    Case("atl08_grid_change", "MIN_SHOTS no cell reaches", lambda p: {"MIN_SHOTS": 10_000_000}, r"no cell has at least"),
    Case("atl08_grid_change", "cell size that is not a number", lambda p: {"CELL_SIZE_KM": "big"}, r"CELL_SIZE_KM|cell size"),
    Case("atl08_grid_change", "geographic grid CRS", lambda p: {"GRID_CRS": "EPSG:4326"}, r"projected in metres"),
    Case("atl08_grid_change", "output neither GeoPackage nor GeoTIFF", lambda p: {"OUTPUT": str(p.tmp / "grid.shp")}, r"GeoPackage|GeoTIFF"),
    Case("atl08_grid_change", "read-only output folder", lambda p: {"OUTPUT": str(p.read_only / "g.gpkg")}, r"read-only|not writable|cannot write", "read_only"),
    Case("atl08_grid_change", "PERIOD2_END in the year 3000", lambda p: {"PERIOD2_END": "3000-01-01"},
         r"end time \(PERIOD2_END\) 3000-01-01 is outside the times"),
    Case("atl08_grid_change", "a period without segments", lambda p: {"PERIOD2_START": "2024-01-01", "PERIOD2_END": "2024-12-31"},
         r"\(\d+ and 0 cells had segments\); period 2 \(2024-01-01 to 2024-12-31\): the database holds [\d,]+ segments, none of them "
         r"from 2024-01-01 to 2024-12-31"),
    Case("atl08_grid_change", "filter nested 1,000 parentheses deep", lambda p: {"FILTERS": "(" * 1000 + "h_canopy > 5" + ")" * 1000},
         r"nested more than 32 deep"),
    Case("atl08_grid_change", "output .gpkg that is an existing folder", lambda p: {"OUTPUT": _folder(p.tmp / "grid.gpkg")},
         r"grid.gpkg is a folder"),
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


_LOCAL = "tiledb:\n  storage_type: local\n  local_path: db\n"
# the 'billion laughs': nine levels of nine aliases, 424 bytes that expand to 387 million strings (55 s and 2.1 GB before)
_ALIAS_BOMB = "laughs:\n" + "".join(
    f"  {name}: &{name} [{', '.join([f'*{previous}'] * 9) if previous else ', '.join(['lol'] * 9)}]\n"
    for previous, name in zip([None, "a", "b", "c", "d", "e", "f", "g", "h"], "abcdefghi")
) + _LOCAL + "  capacity: *i\n"


def _config_text(places: Places, content) -> str:
    """A configuration file of ``content`` (text or bytes) under ``inputs``."""
    folder = places.tmp / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


def _link_loop(places: Places) -> str:
    folder = places.tmp / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "loop_a.yaml").symlink_to(folder / "loop_b.yaml")
    (folder / "loop_b.yaml").symlink_to(folder / "loop_a.yaml")
    return str(folder / "loop_a.yaml")


def _folder(path: Path) -> str:
    path.mkdir(parents=True)
    return str(path)


def _nested_filter(depth: int) -> str:
    text = "h_canopy > 0"
    for level in range(depth):
        text = f"(h_canopy > {level + 1} {'or' if level % 2 else 'and'} {text})"
    return text


def _nan_layer():
    from qgis.core import QgsPointXY

    layer = QgsVectorLayer("Polygon?crs=EPSG:4326", "nan", "memory")
    feature = QgsFeature()
    ring = [QgsPointXY(7.05, 45.05), QgsPointXY(float("nan"), 45.0), QgsPointXY(7.25, 45.25), QgsPointXY(7.05, 45.05)]
    feature.setGeometry(QgsGeometry.fromPolygonXY([ring]))
    layer.dataProvider().addFeatures([feature])
    return layer


def _bad_yaml(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bad_config.yaml"
    path.write_text(f"tiledb:\n  storage_type: local\n  local_path: {folder / 'db'}\n  capacity: lots\n")
    return path


def _bad_granules(places: Places, kind: str, with_good: bool = True) -> Path:
    """A folder of granules (under ``inputs``) with one made bad as ``kind`` says, from the sample granules."""
    import numpy as np

    from bad_granules import FILL, copy_as, set_values, shorten

    samples = sorted(places.granules.glob("*.h5"))
    folder = places.tmp / "inputs" / f"granules_{kind}"
    first = samples[0]
    if kind == "second_name":
        copy_as(first, folder / first.name)
        copy_as(first, folder / first.name.replace("_01.h5", "_02.h5"))
    elif kind == "edited_copy":
        copy_as(first, folder / first.name)
        set_values(copy_as(first, folder / first.name.replace(".h5", "_edited.h5")), "gt1l", "latitude", slice(10, 20), FILL)
    elif kind == "one_name":
        copy_as(samples[0], folder / "2019" / first.name)
        copy_as(samples[2], folder / "2020" / first.name)
        return folder
    elif kind == "fill_latitude":
        set_values(copy_as(first, folder / first.name), "gt1l", "latitude", slice(10, 20), FILL)
    elif kind == "latitude_95":
        set_values(copy_as(first, folder / first.name), "gt2r", "latitude", 3, np.float32(95.0))
    elif kind == "short_longitude":
        shorten(copy_as(first, folder / first.name), "gt2l", "longitude", by=5)
    else:
        raise KeyError(kind)
    if with_good:
        copy_as(samples[1], folder / samples[1].name)  # the same year as the first: one annual batch
    return folder


def _locked(places: Places, live: bool) -> Dict:
    """A claim on the database's ingest lock: live and held on another machine, or left by a process
    of this machine that no longer runs."""
    import sys
    import time

    from canopy_explorer.plugin.core.lidar.ingest_lock import LOCK_NAME, MACHINE

    folder = places.tmp / "db" / LOCK_NAME
    folder.mkdir(parents=True)
    if live:
        name = f"claim.{int((time.time() + 600) * 1000)}.0123456789abcdef.4242.other-host~1a2b3c4d"
    else:
        finished = subprocess.Popen([sys.executable, "-c", "pass"])
        finished.wait()  # its process id no longer runs
        name = f"claim.{int((time.time() + 600) * 1000)}.fedcba9876543210.{finished.pid}.{MACHINE}"
    (folder / name).write_text("{}")
    return {"LOCK_WAIT": 1} if live else {}


def _concurrent_ingest(places: Places) -> Dict:
    """The command-line ingest into the same database, started first; returns when it holds the lock."""
    import sys
    import time

    from canopy_explorer.plugin.core.lidar.ingest_lock import LOCK_NAME

    config = _config(places.tmp / "inputs", places.tmp / "db", flush_every=1)
    process = subprocess.Popen([sys.executable, "-m", "canopy_explorer.plugin.core.lidar.ingest", str(config), str(places.granules),
                                "--workers", "1", "--executor", "thread"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    places.processes.append(process)
    deadline = time.monotonic() + 120
    while not (places.tmp / "db" / LOCK_NAME).is_dir() or not any((places.tmp / "db" / LOCK_NAME).iterdir()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError("the concurrent ingest did not start")
        time.sleep(0.02)
    return {"CONFIG": str(config)}


def _poisoned_database(places: Places) -> Path:
    """A database with a fragment of NaN latitudes, as versions before the row checks wrote from fill values."""
    from bad_granules import write_poisoned_fragment
    from canopy_explorer.plugin.core.lidar.config import local_config
    from canopy_explorer.plugin.core.lidar.ingest import ingest_granules

    samples = sorted(places.granules.glob("*.h5"))
    config = local_config(places.tmp / "inputs" / "poisoned_db")
    ingest_granules(config, samples[:2], workers=1, executor="thread")
    write_poisoned_fragment(config, samples[2])
    return places.tmp / "inputs" / "poisoned_db"


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
    read_only, full = mounts
    if case.output == "read_only" and read_only is None or case.output == "full" and full is None:
        pytest.skip("mounting a tmpfs is not allowed here")
    places = Places(tmp=tmp_path / "work", read_only=read_only, full=full, database=local_database,
                    granules=Path(sample_granules[0]).parent, processes=[])
    places.tmp.mkdir()
    if case.algorithm == "ndvi_composite":
        places.stac_url = request.getfixturevalue("stac_server").url
    if case.algorithm == "zonal_stats":
        places.composites = write_composites(tmp_path / "composites")
    parameters = good(case.algorithm, places, places.tmp)
    try:
        parameters.update(case.changes(places))
        if case.outcome == "reported":
            message = _completes_and_reports(case, parameters, places)
        else:
            message = _fails_and_leaves_nothing(case, parameters, {"tmp": places.tmp, "read_only": read_only, "full": full}[case.output])
    finally:
        for process in places.processes:
            process.wait(300)
    if os.environ.get("ROBUSTNESS_RECORD"):  # scripts/robustness_doc.py collects the messages for docs/ROBUSTNESS.md
        with open(os.environ["ROBUSTNESS_RECORD"], "a", encoding="utf-8") as record:
            record.write(json.dumps({"case": f"{case.algorithm}: {case.name}", "message": message}) + "\n")


def _fails_and_leaves_nothing(case: Case, parameters: Dict, watched: Path) -> str:
    from qgis import processing

    before = _contents(watched)
    with pytest.raises(QgsProcessingException) as raised:
        processing.run(f"canopyexplorer:{case.algorithm}", parameters, feedback=QgsProcessingFeedback())
    message = str(raised.value)
    assert re.search(case.message, message, re.IGNORECASE), message
    assert "Traceback" not in message
    left = [name for name in _contents(watched) if name not in before and not name.startswith("inputs")]
    assert left == [], f"{case.algorithm} left {left} behind"
    return message


class RecordingFeedback(QgsProcessingFeedback):
    """The Processing log as the user reads it, line by line."""

    def __init__(self):
        super().__init__()
        self.lines = []

    def pushInfo(self, info):  # noqa: N802
        self.lines.extend(str(info).splitlines())
        super().pushInfo(info)

    def reportError(self, error, fatalError=False):  # noqa: N802, N803
        self.lines.extend(str(error).splitlines())
        super().reportError(error, fatalError)


def _completes_and_reports(case: Case, parameters: Dict, places: Places) -> str:
    """Run a case the algorithm can partly use: it completes, its log says what was left out, and its
    output holds every good segment exactly once. Returns the log lines that say so."""
    import numpy as np
    import tiledb
    from qgis import processing

    from canopy_explorer.plugin.core.lidar.config import config_from_source

    feedback = RecordingFeedback()
    result = processing.run(f"canopyexplorer:{case.algorithm}", parameters, feedback=feedback)
    said = [line.strip() for line in feedback.lines if re.search(case.message, line.strip(), re.IGNORECASE)]
    assert said, f"the log does not say {case.message!r}: {feedback.lines}"
    assert not any("Traceback" in line for line in feedback.lines)
    if case.algorithm == "atl08_ingest":
        config = config_from_source(parameters["CONFIG"])
        for process in places.processes:  # a concurrent ingest: both must have finished for the check
            assert process.wait(300) == 0
        with tiledb.open(config.array_uri) as array:
            ids = array.query(attrs=["segment_id"])[:]["segment_id"]
        assert len(ids) > 0 and len(ids) == len(np.unique(ids)), "a segment is stored twice"
    else:
        assert result["SEGMENTS"] > 0 and Path(result["OUTPUT"]).exists()
    return " / ".join(dict.fromkeys(said))


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
