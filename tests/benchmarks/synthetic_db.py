"""A multi-million-segment ATL08 database from simulated ICESat-2 passes, for benchmarks.

Generating millions of segments through HDF5 granules and ``ingest_granules`` would
spend most of its time compressing and re-reading HDF5. This module runs the same
simulation the sample granules use (``sample_granules``: orbit geometry inclined at
92 degrees over a rotating Earth, six beams in three pairs, 100 m land segments,
every ATL08 variable from a deterministic landscape, fill values where real
products have none), turns each pass into database columns exactly as
``granule.read_granule`` would (checked by ``check_against_granule``), and writes
them with the engine's own schema and writer (``schema.create_array`` through
``ingest.ensure_database``, ``ingest._write_batch``): one annual batch per year,
one fragment per occupied write tile, all attributes, filters and metadata of the
public layout.

The passes:
* global passes from 60 S to 80 N, kept only over land (coarse continent outlines
  below) and clear sky (along-track cloud runs of ~150 km, about half the track);
* a denser set over Europe (28..74 N, 20 W..40 E), crossing 51 N at longitudes
  spread by a golden-ratio sequence, so that boxes centred at 51 N 10 E hold
  roughly area-proportional row counts; the first ascending and descending
  European pass of each year crosses 51 N 10 E itself (as some reference ground
  track always does in the real mission), so even the smallest box has data.

Passes are generated in rounds (per year: ``EUROPE_PER_ROUND`` European passes and
``GLOBAL_PER_ROUND`` global ones) until the target segment count is reached, so
the years stay balanced and the same parameters always give the same database.
"""

import datetime as dt
import hashlib
import json
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Sequence, Tuple

import numpy as np

EUROPE_REGION = (28.0, 74.0, -20.0, 40.0)  # lat_min, lat_max, lon_min, lon_max
EUROPE_CROSSING_LON = (-16.0, 36.0)  # longitudes at 51 N of the European passes
GLOBAL_REGION = (-60.0, 80.0, -180.0, 180.0)
CENTRE = (10.0, 51.0)  # lon, lat: the seed benchmark's centre
EUROPE_PER_ROUND = 4
GLOBAL_PER_ROUND = 1
CLEAR_RUN_KM = 150.0
CLOUD_RUN_KM = 150.0
GOLDEN = (math.sqrt(5) - 1) / 2
BUILD_VERSION = 1  # bump when the generator changes, so cached databases are rebuilt

# Coarse land outlines (lon, lat): enough to keep oceans free of segments and make
# the fragment layout (occupied 30-degree tiles) look like the real database's.
LAND = {
    "eurasia": [
        (-9.5, 43.5), (-1.5, 43.4), (-1.3, 46.0), (-4.5, 47.8), (-1.5, 49.7), (1.6, 50.9), (4.5, 52.5),
        (8.5, 53.6), (8.3, 55.5), (8.6, 57.1), (10.5, 57.7), (10.9, 56.3), (12.5, 55.6), (11.0, 54.0),
        (14.0, 54.0), (18.5, 54.8), (21.0, 55.0), (21.0, 57.0), (24.0, 57.8), (23.5, 59.3), (30.0, 59.9),
        (25.0, 60.2), (22.0, 60.2), (21.5, 61.5), (25.0, 65.0), (24.0, 65.8), (21.5, 65.0), (17.5, 62.5),
        (18.8, 60.0), (18.5, 59.3), (16.5, 57.0), (14.2, 55.4), (12.8, 55.6), (11.8, 58.0), (11.0, 59.0),
        (10.5, 59.5), (10.0, 59.0), (8.0, 58.0), (6.0, 58.2), (5.0, 60.0), (5.0, 62.0), (10.0, 64.0),
        (13.0, 67.0), (16.0, 69.0), (20.0, 70.0), (25.0, 71.0), (30.0, 70.0), (33.0, 69.3), (41.0, 67.5),
        (44.0, 68.5), (53.0, 68.5), (60.0, 69.0), (67.0, 69.0), (73.0, 72.0), (80.0, 73.0), (90.0, 75.0),
        (105.0, 77.5), (112.0, 73.5), (130.0, 71.0), (140.0, 72.0), (160.0, 70.0), (170.0, 70.0),
        (180.0, 68.5), (180.0, 65.0), (177.0, 62.0), (163.0, 59.0), (163.0, 56.0), (156.0, 51.0),
        (142.0, 53.0), (141.0, 48.0), (135.0, 43.0), (130.0, 42.5), (129.5, 35.2), (126.5, 34.5),
        (126.0, 37.7), (121.5, 39.0), (122.0, 37.0), (119.0, 35.0), (121.5, 31.0), (119.5, 26.0),
        (114.0, 22.3), (110.0, 21.0), (108.0, 21.5), (106.0, 18.0), (109.0, 12.0), (105.0, 8.6),
        (100.5, 13.5), (99.0, 10.0), (100.3, 6.0), (103.5, 1.3), (101.0, 3.0), (98.5, 8.0), (98.0, 16.0),
        (94.5, 16.0), (92.0, 21.0), (90.0, 22.0), (87.0, 21.5), (80.2, 15.5), (80.0, 10.0), (77.5, 8.0),
        (76.0, 10.0), (73.0, 17.0), (72.6, 21.0), (70.0, 22.5), (67.0, 24.8), (61.5, 25.2), (57.0, 25.7),
        (51.0, 28.0), (48.5, 30.0), (48.0, 28.0), (50.5, 25.5), (52.0, 24.0), (56.0, 26.0), (58.5, 23.5),
        (59.8, 22.5), (57.0, 18.5), (52.0, 16.0), (45.0, 13.0), (43.3, 12.7), (42.8, 16.0), (39.0, 21.5),
        (35.0, 28.0), (34.5, 29.5), (34.2, 31.3), (35.0, 33.0), (36.0, 35.5), (36.0, 36.8), (30.0, 36.2),
        (27.3, 37.0), (26.2, 39.5), (26.5, 40.6), (23.0, 40.5), (22.5, 38.0), (21.0, 38.0), (20.0, 39.6),
        (19.5, 41.8), (15.5, 43.5), (13.6, 45.7), (12.3, 45.3), (12.5, 44.0), (14.0, 42.5), (16.0, 41.4),
        (18.5, 40.1), (17.0, 39.0), (16.0, 38.0), (15.7, 40.0), (13.8, 41.2), (12.2, 41.8), (10.5, 42.9),
        (10.0, 44.0), (8.5, 44.3), (7.5, 43.8), (5.0, 43.3), (3.2, 43.0), (3.2, 42.2), (0.8, 41.0),
        (0.0, 39.5), (-0.5, 38.3), (-1.5, 37.3), (-4.5, 36.7), (-5.6, 36.0), (-6.3, 36.5), (-7.5, 37.2),
        (-9.0, 37.0), (-9.5, 38.8), (-8.8, 41.0),
    ],
    "africa": [
        (-5.8, 35.8), (-1.0, 35.3), (3.0, 36.8), (10.0, 37.3), (11.0, 35.0), (10.0, 33.8), (13.0, 32.9),
        (15.5, 31.5), (19.0, 30.3), (20.0, 32.0), (23.0, 32.6), (25.0, 31.7), (29.9, 31.2), (32.3, 31.3),
        (32.5, 30.0), (35.5, 23.9), (37.3, 21.0), (38.6, 18.0), (39.7, 15.5), (42.5, 13.0), (43.3, 11.6),
        (44.5, 10.4), (51.2, 11.8), (51.0, 10.4), (48.0, 4.5), (42.5, -0.5), (40.0, -3.0), (39.0, -6.5),
        (40.5, -10.5), (40.6, -15.3), (35.5, -22.0), (32.9, -25.9), (32.5, -28.5), (30.0, -31.3),
        (25.7, -34.0), (22.0, -34.2), (20.0, -34.8), (18.4, -34.1), (17.9, -31.5), (16.5, -28.6),
        (15.0, -26.5), (14.4, -22.5), (11.8, -17.0), (13.5, -11.5), (12.0, -5.0), (9.0, -1.0), (9.5, 3.0),
        (8.5, 4.6), (6.0, 4.3), (3.0, 6.4), (-2.0, 4.8), (-7.5, 4.4), (-11.5, 6.9), (-13.3, 9.0),
        (-15.5, 11.5), (-16.7, 13.5), (-17.5, 14.7), (-16.0, 18.0), (-16.2, 20.5), (-17.0, 21.0),
        (-15.0, 24.0), (-13.0, 27.8), (-10.0, 29.5), (-9.5, 32.5), (-6.8, 34.0),
    ],
    "north_america": [
        (-168.0, 66.0), (-162.0, 70.0), (-140.0, 70.0), (-125.0, 72.0), (-95.0, 72.0), (-80.0, 73.0),
        (-62.0, 66.0), (-55.0, 52.0), (-66.0, 45.0), (-70.0, 41.0), (-76.0, 35.0), (-81.0, 31.0),
        (-80.0, 25.0), (-82.0, 28.0), (-84.0, 30.0), (-90.0, 29.0), (-97.0, 27.0), (-97.0, 22.0),
        (-92.0, 18.0), (-88.0, 21.0), (-87.0, 16.0), (-83.0, 15.0), (-83.0, 10.0), (-79.0, 9.0),
        (-77.0, 8.0), (-80.0, 7.0), (-86.0, 12.0), (-92.0, 14.0), (-105.0, 20.0), (-110.0, 24.0),
        (-115.0, 30.0), (-117.0, 33.0), (-121.0, 35.0), (-124.0, 40.0), (-124.0, 48.0), (-130.0, 55.0),
        (-140.0, 60.0), (-152.0, 58.0), (-158.0, 56.0), (-165.0, 54.0), (-160.0, 59.0), (-166.0, 62.0),
    ],
    "south_america": [
        (-77.0, 8.0), (-72.0, 12.0), (-62.0, 11.0), (-52.0, 5.0), (-50.0, 0.0), (-35.0, -5.0),
        (-39.0, -14.0), (-41.0, -22.0), (-48.0, -26.0), (-53.0, -34.0), (-58.0, -38.0), (-62.0, -39.0),
        (-65.0, -45.0), (-68.0, -52.0), (-70.0, -55.0), (-75.0, -50.0), (-73.0, -40.0), (-71.0, -30.0),
        (-70.0, -18.0), (-76.0, -14.0), (-81.0, -5.0), (-80.0, 0.0), (-78.0, 3.0),
    ],
    "australia": [
        (113.5, -22.0), (114.0, -26.5), (115.7, -31.6), (115.0, -33.6), (118.0, -35.0), (123.5, -33.9),
        (129.0, -31.7), (131.5, -31.5), (134.0, -32.8), (137.7, -35.6), (139.6, -37.3), (141.5, -38.4),
        (146.3, -39.1), (150.0, -37.5), (151.3, -33.8), (153.6, -28.2), (153.0, -25.5), (149.0, -21.5),
        (146.0, -18.5), (145.3, -15.0), (142.5, -10.7), (141.5, -13.0), (141.5, -16.5), (139.0, -17.5),
        (136.0, -15.5), (137.0, -12.2), (132.5, -11.5), (130.0, -12.5), (129.5, -15.0), (126.0, -14.0),
        (122.0, -17.5), (121.0, -19.5), (116.7, -20.6),
    ],
    "great_britain": [
        (-5.7, 50.05), (-3.0, 50.7), (1.4, 51.2), (1.7, 52.7), (0.2, 53.5), (-1.6, 55.6), (-2.0, 57.7),
        (-3.2, 58.6), (-5.0, 58.6), (-6.2, 56.8), (-5.6, 55.3), (-3.0, 54.9), (-3.3, 54.0), (-3.0, 53.3),
        (-4.6, 53.2), (-4.1, 52.3), (-5.3, 51.8), (-3.4, 51.4), (-5.2, 50.6),
    ],
    "ireland": [(-6.0, 52.2), (-6.2, 54.0), (-5.6, 54.8), (-7.2, 55.3), (-8.5, 54.6), (-10.0, 54.2), (-9.8, 53.4), (-10.3, 51.8), (-8.5, 51.6)],
    "iceland": [(-22.5, 63.9), (-24.0, 65.5), (-22.0, 66.4), (-16.0, 66.5), (-13.5, 65.3), (-14.5, 64.3), (-18.8, 63.4)],
    "sicily": [(12.4, 37.8), (15.6, 38.3), (15.1, 36.7)],
    "sardinia": [(8.2, 39.0), (9.6, 39.1), (9.8, 41.0), (8.3, 41.0)],
    "corsica": [(8.6, 41.4), (9.3, 41.4), (9.5, 43.0), (8.6, 42.3)],
    "honshu": [
        (130.2, 31.2), (131.7, 32.9), (132.5, 34.2), (135.2, 33.8), (136.9, 34.4), (138.8, 34.6), (140.9, 35.7),
        (141.0, 38.3), (142.0, 39.6), (141.4, 41.4), (140.0, 40.6), (139.7, 38.5), (137.3, 37.0), (136.0, 35.7),
        (133.0, 35.5), (130.9, 34.0), (129.7, 33.3),
    ],
    "hokkaido": [(140.0, 41.5), (141.7, 42.5), (143.3, 42.0), (145.5, 43.3), (144.5, 44.0), (141.8, 45.4), (141.2, 43.3)],
    "sri_lanka": [(79.8, 6.2), (79.9, 9.6), (81.9, 7.5), (81.3, 6.2)],
    "taiwan": [(120.1, 23.0), (121.0, 25.2), (122.0, 25.0), (120.9, 22.0)],
    "borneo": [(109.0, 1.5), (110.5, -3.0), (114.5, -4.1), (116.5, -3.2), (118.0, 1.0), (119.0, 5.0), (116.5, 7.0), (115.0, 5.0), (113.0, 3.0), (111.0, 1.7)],
    "sumatra": [(95.3, 5.6), (98.3, 4.0), (103.8, -1.0), (106.0, -5.9), (104.5, -5.9), (100.3, -1.0), (97.5, 2.3)],
    "java": [(105.2, -6.8), (106.8, -6.0), (111.0, -6.4), (114.5, -7.7), (114.4, -8.7), (109.0, -7.8), (106.3, -7.4)],
    "new_guinea": [
        (131.0, -1.5), (134.0, -0.8), (137.5, -1.5), (141.0, -2.6), (145.8, -5.3), (147.5, -6.3), (150.5, -10.5),
        (147.0, -10.1), (144.0, -7.6), (141.0, -9.1), (138.0, -8.4), (138.8, -6.8), (135.0, -4.4), (132.5, -4.0),
    ],
    "philippines": [(120.0, 18.5), (122.3, 18.5), (124.0, 13.0), (126.0, 9.0), (126.5, 6.5), (125.5, 5.6), (122.0, 6.9), (121.5, 12.5), (120.0, 14.5)],
    "madagascar": [(49.3, -12.0), (50.5, -15.5), (49.5, -17.5), (48.0, -22.0), (47.1, -24.9), (45.0, -25.5), (43.6, -23.5), (43.3, -21.5), (44.4, -18.0), (44.0, -16.8), (46.4, -15.8), (48.0, -13.6)],
    "new_zealand_north": [(172.7, -34.4), (174.5, -36.0), (176.0, -37.5), (178.5, -37.7), (177.9, -39.2), (176.9, -39.6), (174.8, -41.3), (174.6, -39.8), (173.8, -39.2), (174.5, -37.0)],
    "new_zealand_south": [(172.7, -40.5), (174.3, -41.7), (173.0, -43.8), (171.2, -44.5), (169.3, -46.6), (166.5, -46.0), (168.2, -44.0), (171.2, -42.0)],
    "greenland": [(-73.0, 78.3), (-60.0, 82.0), (-35.0, 83.5), (-20.0, 82.0), (-18.0, 77.0), (-22.0, 70.5), (-32.0, 68.3), (-40.0, 65.0), (-43.5, 60.0), (-48.5, 61.0), (-53.0, 66.0), (-54.0, 70.0), (-58.0, 75.5)],
    "baffin": [(-80.0, 63.5), (-77.0, 65.0), (-74.0, 68.5), (-82.0, 70.0), (-90.0, 73.0), (-80.0, 73.7), (-71.0, 71.0), (-62.0, 66.5), (-65.0, 62.7)],
    "svalbard": [(11.0, 78.5), (16.0, 76.5), (22.0, 77.5), (27.0, 80.0), (18.0, 80.0), (11.0, 79.7)],
}
WATER = {
    "black_sea": [(28.0, 41.2), (28.0, 43.5), (29.7, 45.2), (31.5, 46.6), (33.5, 46.0), (36.5, 45.3), (38.0, 47.1), (39.5, 47.0), (38.0, 45.0), (41.7, 41.6), (36.0, 41.7), (33.0, 42.0), (29.0, 41.2)],
    "caspian": [(47.0, 44.5), (50.0, 46.5), (53.0, 47.0), (53.2, 42.0), (54.0, 40.0), (53.0, 37.2), (49.0, 37.5), (49.0, 40.5), (47.5, 42.5)],
    "hudson_bay": [(-95.0, 59.0), (-94.0, 61.0), (-88.0, 64.0), (-82.0, 64.5), (-78.0, 62.5), (-77.5, 58.0), (-76.5, 56.0), (-79.5, 51.5), (-82.5, 52.9), (-85.0, 55.3), (-92.5, 57.0)],
}


def _union(outlines):
    import shapely
    from shapely.geometry import Polygon

    geometry = shapely.union_all([Polygon(p).buffer(0) for p in outlines.values()])
    shapely.prepare(geometry)
    return geometry


_MASKS = {}


def is_land(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    import shapely

    if not _MASKS:
        _MASKS["land"], _MASKS["water"] = _union(LAND), _union(WATER)
    return shapely.contains_xy(_MASKS["land"], lon, lat) & ~shapely.contains_xy(_MASKS["water"], lon, lat)


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class BuildSpec:
    """Everything that determines the generated data (the cache key)."""

    segments: int = 5_000_000
    years: Tuple[int, ...] = (2019, 2020, 2021)
    seed: int = 2020
    version: int = BUILD_VERSION
    # Global passes per year and round, and the share of their segments kept: many thinned
    # global passes occupy as many 30-degree tiles per year as the public database does
    # (one fragment each per annual batch) without many segments far from the benchmarks' boxes.
    global_per_round: int = GLOBAL_PER_ROUND
    global_keep: float = 1.0

    def key(self) -> str:
        fields = asdict(self)
        for name, default in (("global_per_round", GLOBAL_PER_ROUND), ("global_keep", 1.0)):
            if fields[name] == default:  # added later: the keys of databases built before stay valid
                del fields[name]
        text = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class PassPlan:
    index: int  # position in the plan, seeds the pass's random numbers
    year: int
    kind: str  # "europe" or "global"
    start: dt.datetime
    crossing_lat: float
    crossing_lon: float
    ascending: bool
    rgt: int
    sc_orient: int
    keep: float = 1.0  # share of the segments kept (one 10 km stretch in every 10 km / keep)


def plan_round(spec: BuildSpec, round_number: int) -> List[PassPlan]:
    """The passes of one round: per year, EUROPE_PER_ROUND European and ``spec.global_per_round`` global."""
    from canopy_explorer.plugin.core.samples.granules import REFERENCE_GROUND_TRACKS

    plans = []
    per_year = EUROPE_PER_ROUND + spec.global_per_round
    for y, year in enumerate(spec.years):
        rng = np.random.default_rng([spec.seed, year, round_number])
        first = dt.datetime(year, 1, 1, tzinfo=dt.timezone.utc)
        days = (dt.datetime(year + 1, 1, 1, tzinfo=dt.timezone.utc) - first).days
        for j in range(per_year):
            index = (round_number * len(spec.years) + y) * per_year + j
            start = first + dt.timedelta(seconds=float(rng.uniform(0, days * 86400 - 3600)))
            if j < EUROPE_PER_ROUND:
                k = round_number * EUROPE_PER_ROUND + j  # k-th European pass of this year
                if k < 2:  # one ascending and one descending pass through the centre every year
                    lon = CENTRE[0]
                else:
                    lo, hi = EUROPE_CROSSING_LON
                    lon = lo + (hi - lo) * ((0.5 + k * GOLDEN + y * 0.1) % 1.0)
                plans.append(PassPlan(index, year, "europe", start, CENTRE[1], lon, k % 2 == 0, 1 + (index * 389) % REFERENCE_GROUND_TRACKS, int(rng.integers(0, 2))))
            else:
                g = round_number * spec.global_per_round + (j - EUROPE_PER_ROUND)
                lon = -180.0 + 360.0 * ((0.25 + g * GOLDEN + y * 0.37) % 1.0)
                plans.append(PassPlan(index, year, "global", start, 0.0, lon, g % 2 == 0, 1 + (index * 389) % REFERENCE_GROUND_TRACKS, int(rng.integers(0, 2)), spec.global_keep))
    return plans


# --------------------------------------------------------------------------- one pass


def _clear_sky(seconds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Along-track runs of clear and cloudy sky (one mask for all six beams)."""
    speed_km_s = 6.9
    total = float(seconds[-1] - seconds[0]) * speed_km_s if len(seconds) else 0.0
    edges, clear, position = [0.0], [bool(rng.random() < 0.5)], 0.0
    while position < total:
        position += rng.exponential(CLEAR_RUN_KM if clear[-1] else CLOUD_RUN_KM)
        edges.append(position)
        clear.append(not clear[-1])
    run = np.searchsorted(np.array(edges), (seconds - seconds[0]) * speed_km_s, side="right") - 1
    return np.array(clear)[np.clip(run, 0, len(clear) - 1)]


def simulate_pass(plan: PassPlan, seed: int) -> Dict[str, np.ndarray]:
    """Database columns (as ``read_granule`` returns them) for one pass over land and clear sky."""
    from canopy_explorer.plugin.core.samples import granules as sg

    landscape = _landscape(seed)
    region = EUROPE_REGION if plan.kind == "europe" else GLOBAL_REGION
    cycle = max(1, int((plan.start - sg.CYCLE_1_START).days // sg.REPEAT_CYCLE_DAYS) + 1)
    track = sg.Track(plan.start.replace(microsecond=0), plan.crossing_lat, plan.crossing_lon, plan.ascending, plan.rgt, cycle, plan.sc_orient)
    lat, lon, seconds, along = sg._ground_track(track, region[0], region[1])
    # Distance from the ascending node within [0, one orbit), as real segment numbers count
    # (the sample generator's is negative for ascending passes south of the equator).
    along = np.mod(along, 2 * np.pi * sg.EARTH_RADIUS_M)
    rng = np.random.default_rng([seed, plan.index])
    keep = is_land(sg._wrap(lon), lat) & _clear_sky(seconds, rng)
    if plan.keep < 1.0:  # whole 10 km stretches, so that every beam keeps runs of segments
        keep &= (along // 10_000.0) % round(1 / plan.keep) == 0
    lat, lon, seconds, along = lat[keep], lon[keep], seconds[keep], along[keep]
    if len(lat) < 3:  # nothing, or too little for the terrain's slopes
        return {}
    beams = [sg.simulate_beam(track, beam, landscape, rng, lat, lon, seconds, along, region, 0.05) for beam in sg.BEAMS]
    return beams_to_columns(track, beams)


_LANDSCAPES = {}


def _landscape(seed: int):
    from canopy_explorer.plugin.core.samples.granules import Landscape

    if seed not in _LANDSCAPES:
        _LANDSCAPES[seed] = Landscape(seed)
    return _LANDSCAPES[seed]


def beams_to_columns(track, beams) -> Dict[str, np.ndarray]:
    """The columns ``granule.read_granule`` makes of a granule holding ``beams`` (no HDF5 round trip)."""
    from canopy_explorer.plugin.core.lidar.atl08.granule import ATLAS_EPOCH_NS, NS_PER_DAY, _as_column, _columns_for
    from canopy_explorer.plugin.core.samples.granules import fill_value
    from canopy_explorer.plugin.core.lidar.atl08.schema import BEAM_NUMBERS, attribute_dtypes, encode_segment_id

    dtypes = attribute_dtypes()
    plan = _columns_for(None)
    parts = []
    for segments in beams:
        n = len(segments)
        if n == 0:
            continue
        columns = {
            "latitude": segments.latitude.astype(np.float64),
            "longitude": segments.longitude.astype(np.float64),
        }
        delta_time = segments.values["delta_time"].astype(np.float64)
        timestamp = ATLAS_EPOCH_NS + np.round(delta_time * 1e9).astype(np.int64)
        columns["timestamp_ns"] = timestamp
        columns["time"] = timestamp // NS_PER_DAY
        columns["segment_id"] = encode_segment_id(track.rgt, track.cycle, BEAM_NUMBERS[segments.beam], segments.values["segment_id_beg"])
        columns["beam_id"] = np.full(n, segments.beam, dtype=object)
        for variable, chosen in plan.items():
            if variable.is_orbit_info:
                value = {"rgt": track.rgt, "cycle_number": track.cycle, "sc_orient": track.sc_orient}[variable.name]
                for _, name in chosen:
                    columns[name] = np.full(n, value, dtype=dtypes[name])
                continue
            data = np.asarray(segments.values[variable.name]).astype(variable.dtype)
            fill = fill_value(variable.dtype)
            for index, name in chosen:
                values = data if index is None else data[:, index]
                columns[name] = _as_column(values, dtypes[name], fill)
        parts.append(columns)
    if not parts:
        return {}
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def check_against_granule(workdir: Path, seed: int = 7) -> None:
    """Assert that ``beams_to_columns`` gives what ingesting the same pass as an HDF5 granule gives."""
    from canopy_explorer.plugin.core.samples import granules as sg
    from canopy_explorer.plugin.core.lidar.atl08.granule import read_granule

    region = (50.9, 51.1, 9.9, 10.1)
    track = sg.plan_tracks(region, dt.date(2020, 1, 1), dt.date(2020, 12, 31), 1, seed)[0]
    beams = sg.simulate_track(track, sg.Landscape(seed), region, seed, 0.05)
    path = sg.write_granule(Path(workdir) / track.file_name, track, beams)
    try:
        expected = read_granule(path)
        actual = beams_to_columns(track, beams)
    finally:
        path.unlink()
    assert set(expected) == set(actual), set(expected) ^ set(actual)
    for key, value in expected.items():
        same = np.array_equal(value, actual[key], equal_nan=value.dtype.kind == "f")
        assert same and value.dtype == actual[key].dtype, f"column {key} differs from the granule reader's"


# --------------------------------------------------------------------------- generation


def generate(spec: BuildSpec, workers: int = 2, log: Callable[[str], None] = print) -> Iterator[Tuple[int, Dict[str, np.ndarray]]]:
    """(year, columns) for every year, generated in rounds until ``spec.segments`` is reached."""
    by_year: Dict[int, List[Dict[str, np.ndarray]]] = {year: [] for year in spec.years}
    total, round_number = 0, 0
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        while total < spec.segments:
            plans = plan_round(spec, round_number)
            for plan, columns in zip(plans, pool.map(simulate_pass, plans, [spec.seed] * len(plans))):
                if columns:
                    by_year[plan.year].append(columns)
                    total += len(columns["latitude"])
            round_number += 1
            log(f"  round {round_number}: {total:,} segments ({time.perf_counter() - started:.0f} s)")
    for year in spec.years:
        parts = by_year.pop(year)
        yield year, {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def split_late_passes(columns: Dict[str, np.ndarray], late_passes: int) -> List[Dict[str, np.ndarray]]:
    """``columns`` without its last ``late_passes`` passes, then each of those passes on its own
    (a pass is a run of segments with no gap of 10 minutes or more in time)."""
    order = np.argsort(columns["timestamp_ns"], kind="stable")
    times = columns["timestamp_ns"][order]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(times) >= 600 * 10**9) + 1, [len(times)]])
    late_passes = min(late_passes, len(starts) - 2)  # keep at least one pass in the main batch
    if late_passes <= 0:
        return [columns]
    cuts = starts[-late_passes - 1:]
    pieces = [order[:cuts[0]]] + [order[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
    return [{key: value[index] for key, value in columns.items()} for index in pieces]


def build(spec: BuildSpec, configs: Sequence, workers: int = 2, log: Callable[[str], None] = print,
          late_passes: int = 0) -> Dict[str, float]:
    """Write the generated segments into every database in ``configs`` (DatabaseConfig list),
    one annual batch per year as ``ingest_granules`` does. ``late_passes``: the last year's last
    passes are left out of its annual batch and written after it, one batch each, as the public
    database's small late fragments (granules ingested after their year's batch). Returns seconds
    spent per database and on generation."""
    from canopy_explorer.plugin.core.lidar.ingest import _record, _write_batch, ensure_database
    from canopy_explorer.plugin.core.lidar.storage import make_context

    timings = {"generate": 0.0}
    contexts = []
    for config in configs:
        ctx = make_context(config)
        ensure_database(config, ctx)
        contexts.append(ctx)
        timings[config.array_uri] = 0.0
    stamp = int(time.time() * 1000)
    segments = 0
    started = time.perf_counter()
    for year, columns in generate(spec, workers, log):
        timings["generate"] += time.perf_counter() - started
        batches = [columns]
        if late_passes and year == spec.years[-1]:
            batches = split_late_passes(columns, late_passes)
        for number, batch in enumerate(batches):
            stamp += 1
            n = len(batch["latitude"])
            segments += n
            label = f"synthetic_{spec.key()}_{year}" + (f"_late{number}" if number else "")
            for config, ctx in zip(configs, contexts):
                t = time.perf_counter()
                fragments = _write_batch(config.array_uri, ctx, batch, stamp, config)
                _record(config.ledger_uri, ctx, [(label, stamp, n)])
                timings[config.array_uri] += time.perf_counter() - t
                log(f"  {year}{' late pass ' + str(number) if number else ''}: {n:,} segments, {fragments} fragments -> "
                    f"{config.array_uri} ({time.perf_counter() - t:.0f} s)")
        started = time.perf_counter()
    timings["segments"] = segments
    return timings
