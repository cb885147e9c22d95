"""A database with sample granules placed where the region tests need them, and what a region
holds found by brute force: every segment read with TileDB directly (not through the engine's
query) and tested against the region in the region's own CRS.

    from region_fixtures import region_database, brute_force, assert_same_segments
"""

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import shapely

# name: (lat_min, lat_max, lon_min, lon_max), as generate_granules takes a region
PLACES = {
    "alps": (45.0, 45.3, 7.0, 7.3),
    "mexico": (19.0, 19.3, -99.3, -99.0),  # inside -100..100
    "borneo": (0.5, 0.8, 114.0, 114.3),  # outside -100..100, inside -10..175
    "tuvalu": (-8.3, -8.0, 178.0, 178.3),  # in neither
    "island_176w": (-17.0, -16.7, -176.2, -175.9),
    "fiji_west": (-17.3, -17.0, 179.7, 180.0),
    "fiji_east": (-17.3, -17.0, -180.0, -179.7),
    "greenland": (80.0, 80.3, -45.3, -45.0),
    "arctic_west": (80.0, 80.3, 179.7, 180.0),
    "arctic_east": (80.0, 80.3, -180.0, -179.7),
    "siberia": (84.0, 84.3, 100.0, 100.3),
    "canada": (62.0, 62.3, -100.3, -100.0),
    "antarctica": (-80.0, -79.7, 60.0, 60.3),
    "ross_sea": (-80.0, -79.7, 179.7, 180.0),
}
START, END = dt.date(2020, 1, 1), dt.date(2021, 12, 31)
_BUILT = {}


@pytest.fixture(scope="module")
def region_database(tmp_path_factory):
    """The database (a local config) with two tracks over each of ``PLACES``, built once per session."""
    from canopy_explorer.plugin.core.lidar.config import local_config
    from canopy_explorer.plugin.core.lidar.ingest import ingest_granules
    from canopy_explorer.plugin.core.samples.granules import generate_granules

    base = tmp_path_factory.getbasetemp()
    if base not in _BUILT:
        granules = Path(tmp_path_factory.mktemp("region_granules"))
        paths = []
        for seed, region in enumerate(PLACES.values(), start=200):
            paths += generate_granules(granules, region=region, start=START, end=END, n_tracks=2, seed=seed)
        config = local_config(tmp_path_factory.mktemp("region_db") / "db")
        ingest_granules(config, paths, workers=1)
        _BUILT[base] = config
    return _BUILT[base]


def every_segment(config):
    """Every segment of the database, read with TileDB directly: coordinates, day, id, h_canopy."""
    import tiledb

    with tiledb.open(config.array_uri) as array:
        raw = array.query(attrs=["segment_id", "h_canopy"]).multi_index[:, :, :]
    return {"lon": raw["longitude"], "lat": raw["latitude"], "day": raw["time"].astype(np.int64),
            "segment_id": raw["segment_id"], "h_canopy": raw["h_canopy"]}


def keys(longitude, latitude, segment_id):
    """One key per segment (sample granules of different places may reuse segment ids)."""
    return list(zip(np.asarray(segment_id).tolist(), np.asarray(latitude).tolist(), np.asarray(longitude).tolist()))


def brute_force(segments, region, crs="EPSG:4326", tolerance=0.0):
    """(inside, ambiguous): masks of the segments the region covers, tested one by one in the region's CRS
    (longitudes tried in every turn for an EPSG:4326 region drawn past 180), and of those within
    ``tolerance`` (CRS units) of its outline, where densifying a projected edge may decide either way."""
    from pyproj import Transformer

    if crs == "EPSG:4326":
        x = np.concatenate([segments["lon"] + 360.0 * turn for turn in (-1, 0, 1)])
        y = np.tile(segments["lat"], 3)
    else:
        with np.errstate(all="ignore"):
            x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(segments["lon"], segments["lat"])
        x, y = np.asarray(x), np.asarray(y)
        finite = np.isfinite(x) & np.isfinite(y)
        x, y = np.where(finite, x, 1e30), np.where(finite, y, 1e30)
    inside = shapely.intersects_xy(region, x, y)
    near = np.zeros_like(inside)
    if tolerance:
        near = shapely.dwithin(region.boundary, shapely.points(x, y), tolerance)
    count = len(segments["lon"])
    if crs == "EPSG:4326":
        inside = inside.reshape(3, count).any(axis=0)
        near = near.reshape(3, count).any(axis=0)
    return inside, near


def assert_same_segments(frame, segments, inside, ambiguous=None, at_least=1):
    """The query returned each segment the region covers once, and nothing else (segments on the outline
    within the densification tolerance may go either way)."""
    returned = keys(frame["longitude"], frame["latitude"], frame["segment_id"])
    assert len(returned) == len(set(returned)), "a segment was returned twice"
    expected = set(keys(segments["lon"][inside], segments["lat"][inside], segments["segment_id"][inside]))
    assert len(expected) >= at_least, "the test region covers too few segments to prove anything"
    differ = set(returned) ^ expected
    if ambiguous is not None and ambiguous.any():
        allowed = set(keys(segments["lon"][ambiguous], segments["lat"][ambiguous], segments["segment_id"][ambiguous]))
        differ -= allowed
        assert ambiguous.sum() < 0.01 * max(len(expected), 100), "too many segments lie on the outline to test exactly"
    assert not differ, f"{len(differ)} segments differ, e.g. {sorted(differ)[:3]}"
