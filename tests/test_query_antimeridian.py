"""Regions crossing the antimeridian are read on both sides."""

import datetime as dt

import numpy as np
import pytest
import shapely

from canopy_explorer.plugin.core.lidar.config import local_config
from canopy_explorer.plugin.core.lidar.database import Atl08Database
from canopy_explorer.plugin.core.lidar.ingest import ingest_granules
from canopy_explorer.plugin.core.lidar.query import SegmentQuery
from canopy_explorer.plugin.core.samples.granules import generate_granules
from granule_truth import segments


@pytest.fixture(scope="module")
def pacific(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pacific")
    west = generate_granules(folder, region=(-17.3, -17.0, 179.7, 180.0), start=dt.date(2021, 1, 1), end=dt.date(2021, 6, 1), n_tracks=2, seed=11)
    east = generate_granules(folder, region=(-17.3, -17.0, -180.0, -179.7), start=dt.date(2021, 1, 1), end=dt.date(2021, 6, 1), n_tracks=2, seed=12)
    config = local_config(tmp_path_factory.mktemp("pacific_db") / "db")
    ingest_granules(config, west + east, workers=1)
    return config, segments(west + east)


def test_box_from_east_to_west_reads_both_sides(pacific):
    config, truth = pacific
    frame = Atl08Database(config).query(SegmentQuery.create(roi=(179.8, -17.25, -179.72, -17.05)))
    inside = ((truth["lon"] >= 179.8) | (truth["lon"] <= -179.72)) & (truth["lat"] >= -17.25) & (truth["lat"] <= -17.05)
    assert (frame["longitude"] > 0).any() and (frame["longitude"] < 0).any()
    assert sorted(frame["segment_id"]) == sorted(truth["segment_id"][inside])


def test_polygon_past_180_is_split(pacific):
    config, truth = pacific
    polygon = shapely.Polygon([(179.8, -17.25), (180.26, -17.25), (180.26, -17.05), (179.8, -17.05)])
    frame = Atl08Database(config).query(SegmentQuery.create(roi=polygon))
    wrapped = np.where(truth["lon"] < 0, truth["lon"] + 360, truth["lon"])
    inside = (wrapped >= 179.8) & (wrapped <= 180.26) & (truth["lat"] >= -17.25) & (truth["lat"] <= -17.05)
    assert sorted(frame["segment_id"]) == sorted(truth["segment_id"][inside])


def test_projected_polygon_across_the_antimeridian(pacific):
    from pyproj import Transformer

    config, truth = pacific
    to_fiji = Transformer.from_crs("EPSG:4326", "EPSG:3460", always_xy=True)  # Fiji 1986 / Fiji Map Grid
    corners = [to_fiji.transform(x, y) for x, y in [(179.8, -17.25), (-179.72, -17.25), (-179.72, -17.05), (179.8, -17.05)]]
    frame = Atl08Database(config).query(SegmentQuery.create(roi=shapely.Polygon(corners), roi_crs="EPSG:3460"))
    assert (frame["longitude"] > 0).any() and (frame["longitude"] < 0).any()
    assert frame["longitude"].abs().min() > 179.7
