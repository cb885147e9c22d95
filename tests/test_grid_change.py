"""Grid change: cells, per-cell statistics from streamed batches, antimeridian, outputs."""

import tracemalloc

import numpy as np
import pytest
import rasterio
import shapely
from osgeo import ogr
from pyproj import Transformer
from scipy.spatial import cKDTree

from canopy_explorer.plugin.core.grid.cell_statistics import CellStatistics
from canopy_explorer.plugin.core.lidar.database import Atl08Database
from canopy_explorer.plugin.core.grid.equal_area_grid import HexGrid, SquareGrid
from canopy_explorer.plugin.core.errors import OutputError, QueryError
from canopy_explorer.plugin.core.grid.change import FIELDS, GridChangeRequest, grid_change, write_cells_geopackage, write_cells_raster
from canopy_explorer.plugin.core.lidar.query import SegmentQuery
from grid_fixtures import PERIODS, PLANTED_CHANGE_M, PLANTED_EAST_OF, SPARSE_POINT, write_planted_database

CELL_KM = 50.0
MIN_SHOTS = 100
EDGE_TOLERANCE_M = 0.05


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    config, periods = write_planted_database(tmp_path_factory.mktemp("planted") / "db")
    return config, periods


@pytest.fixture(scope="module")
def result(planted):
    config, _ = planted
    database = Atl08Database(config)
    return grid_change(GridChangeRequest.create(database, variable="h_canopy", periods=PERIODS, cell_size_km=CELL_KM,
                                                min_shots=MIN_SHOTS, batch_rows=5_000))


def direct_cells(config, grid, polygons, period):
    """Per output polygon, the values of the engine's (unbatched) query for ``period`` inside it (shapely containment;
    a polygon cut at the antimeridian follows the curved map edge with chords a few centimetres inside it)."""
    frame = Atl08Database(config).query(SegmentQuery.create(start=period[0], end=period[1], variables=["h_canopy"]))
    x, y = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True).transform(frame["longitude"].to_numpy(), frame["latitude"].to_numpy())
    values = frame["h_canopy"].to_numpy()
    owner = polygon_of(polygons, x, y)
    return [values[owner == index] for index in range(len(polygons))], frame


def polygon_of(polygons, x, y):
    """Index of the polygon holding each point (-1: none); points outside every polygon but within
    EDGE_TOLERANCE_M of one (the chords of the map edge) go to the nearest."""
    tree = shapely.STRtree(polygons)
    points = shapely.points(x, y)
    owner = np.full(len(points), -1)
    point_index, polygon_index = tree.query(points, predicate="within")
    owner[point_index] = polygon_index
    outside = np.flatnonzero(owner < 0)
    near_point, near_polygon = tree.query_nearest(points[outside], max_distance=EDGE_TOLERANCE_M)
    owner[outside[near_point]] = near_polygon
    return owner


# --------------------------------------------------------------------------- the grid


def test_hexagon_assignment_is_the_nearest_centre():
    grid = HexGrid(100)
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(-180, 180, 200_000), rng.uniform(-85, 85, 200_000)
    keys = grid.cell_keys(lon, lat)
    cells = np.unique(keys)
    cx, cy = grid.centres(cells)
    x, y = grid.project(lon, lat)
    _, nearest = cKDTree(np.column_stack([cx, cy])).query(np.column_stack([x, y]))
    assert np.array_equal(cells[nearest], keys)


def test_hexagons_have_equal_area_and_contain_their_points():
    grid = HexGrid(100)
    rng = np.random.default_rng(1)
    lon, lat = rng.uniform(-20, 20, 5_000), rng.uniform(-60, 70, 5_000)
    keys = grid.cell_keys(lon, lat)
    cells, index = np.unique(keys, return_inverse=True)
    polygons = grid.polygons(cells)
    x, y = grid.project(lon, lat)
    assert shapely.contains_xy(polygons[index], x, y).all() or shapely.intersects_xy(polygons[index], x, y).all()
    np.testing.assert_allclose(shapely.area(polygons), grid.cell_area_m2, rtol=1e-9)
    np.testing.assert_allclose(grid.cell_area_m2, 1.5 * np.sqrt(3) * 50_000**2)


def test_hexagons_at_the_antimeridian_are_clipped_to_the_map_edge():
    grid = HexGrid(100)
    lat = np.linspace(-60, 60, 50)
    cells = np.unique(np.concatenate([grid.cell_keys(np.full(50, 179.99), lat), grid.cell_keys(np.full(50, -179.99), lat)]))
    polygons = grid.polygons(cells)
    assert shapely.is_valid(polygons).all()
    assert (shapely.area(polygons) < grid.cell_area_m2 * (1 - 1e-6)).all()  # every one was cut
    # back in degrees, no cell wraps around the globe
    to_degrees = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    for polygon in polygons:
        lon, _ = to_degrees.transform(*np.asarray(polygon.exterior.coords).T)
        assert np.ptp(lon) < 5


def test_geographic_grid_crs_and_bad_sizes_are_refused():
    with pytest.raises(QueryError, match="projected in metres"):
        HexGrid(100, "EPSG:4326")
    with pytest.raises(QueryError, match="positive"):
        HexGrid(0)
    with pytest.raises(QueryError, match="unknown grid CRS"):
        SquareGrid(10, "EPSG:999999")


# --------------------------------------------------------------------------- statistics


def test_streamed_statistics_match_numpy_per_cell():
    rng = np.random.default_rng(2)
    cells = rng.integers(0, 50, 30_000)
    values = rng.gamma(3, 6, 30_000)
    values[::97] = np.nan
    statistics = CellStatistics(resolution=0.05, compact_every_rows=500)
    for start in range(0, len(cells), 1_234):
        statistics.add(cells[start:start + 1_234], values[start:start + 1_234])
    table = statistics.result()
    for cell, count, mean, median in zip(table.cell, table.count, table.mean, table.median):
        mine = values[(cells == cell) & np.isfinite(values)]
        assert count == len(mine)
        assert mean == pytest.approx(mine.mean(), rel=1e-12)
        assert abs(median - np.median(mine)) <= 0.025 + 1e-9


# --------------------------------------------------------------------------- grid change


def test_cell_statistics_match_a_direct_computation_from_the_engine_query(planted, result):
    config, _ = planted
    polygons = result.grid.polygons(result.cell)
    for suffix, period in (("p1", PERIODS[0]), ("p2", PERIODS[1])):
        inside, _ = direct_cells(config, result.grid, polygons, period)
        for index, values in enumerate(inside):
            assert result.columns[f"count_{suffix}"][index] == len(values)
            assert result.columns[f"mean_{suffix}"][index] == pytest.approx(values.mean(), rel=1e-6)
            assert abs(result.columns[f"median_{suffix}"][index] - np.median(values)) <= 0.05
    np.testing.assert_allclose(result.columns["change"], result.columns["median_p2"] - result.columns["median_p1"])


def test_the_planted_change_appears_where_it_was_planted(result):
    cx, cy = result.grid.centres(result.cell)
    lon, lat = Transformer.from_crs(result.grid.crs, "EPSG:4326", always_xy=True).transform(cx, cy)
    europe = (lat > 49) & (lat < 53)
    east = europe & (lon > PLANTED_EAST_OF + 0.5)
    west = europe & (lon < PLANTED_EAST_OF - 0.5)
    assert east.sum() >= 3 and west.sum() >= 3
    assert np.abs(result.columns["change"][east] - PLANTED_CHANGE_M).max() < 1.0
    assert np.abs(result.columns["change"][west]).max() < 1.0


def test_cells_under_min_shots_are_absent(planted, result):
    polygons = result.grid.polygons(result.cell)
    x, y = Transformer.from_crs("EPSG:4326", result.grid.crs, always_xy=True).transform(*SPARSE_POINT)
    assert not shapely.contains_xy(polygons, x, y).any()
    assert (result.columns["count_p1"] >= MIN_SHOTS).all() and (result.columns["count_p2"] >= MIN_SHOTS).all()
    assert result.cells_seen[0] > len(result)  # the sparse cell (and thin edge cells) were seen, then dropped


def test_cells_on_both_sides_of_the_antimeridian_hold_their_own_side(planted, result):
    config, _ = planted
    polygons = result.grid.polygons(result.cell)
    cx, _ = result.grid.centres(result.cell)
    edge = np.abs(cx) > 0.9 * np.abs(cx).max()
    assert (cx[edge] > 0).any() and (cx[edge] < 0).any()
    inside, frame = direct_cells(config, result.grid, polygons[edge], PERIODS[0])
    lon = frame["longitude"].to_numpy()
    x, y = Transformer.from_crs("EPSG:4326", result.grid.crs, always_xy=True).transform(lon, frame["latitude"].to_numpy())
    owner = polygon_of(polygons[edge], x, y)
    for index, (values, east_of_map) in enumerate(zip(inside, cx[edge] > 0)):
        sides = lon[owner == index]
        assert len(sides) == len(values) >= MIN_SHOTS
        assert (sides > 0).all() if east_of_map else (sides < 0).all()  # no cell mixes the two sides
        assert abs(np.median(values) - (10.0 if east_of_map else 30.0)) < 1.0


def test_memory_is_bounded_by_the_batch_size(planted):
    config, _ = planted
    database = Atl08Database(config)

    def peak(batch_rows):
        tracemalloc.start()
        try:
            outcome = grid_change(GridChangeRequest.create(database, periods=PERIODS, cell_size_km=CELL_KM, min_shots=MIN_SHOTS,
                                                           batch_rows=batch_rows))
            return tracemalloc.get_traced_memory()[1], outcome
        finally:
            tracemalloc.stop()

    small_peak, small = peak(2_000)
    whole_peak, whole = peak(10_000_000)
    assert small.batches > 20 and whole.batches <= 4
    assert small_peak < whole_peak / 3
    assert np.array_equal(small.cell, whole.cell)
    for name in FIELDS:
        np.testing.assert_allclose(small.columns[name], whole.columns[name])


def test_progress_and_cancel(planted):
    from canopy_explorer.plugin.core.errors import Cancelled

    config, _ = planted
    seen = []

    def check_cancel():
        if len(seen) > 3:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        grid_change(GridChangeRequest.create(Atl08Database(config), periods=PERIODS, cell_size_km=CELL_KM, batch_rows=2_000),
                    progress=seen.append, check_cancel=check_cancel)
    assert seen and all(0 <= p <= 1 for p in seen)


def test_any_variable_filter_and_region(planted):
    config, periods = planted
    region = shapely.box(9.0, 50.2, 11.0, 51.8)
    outcome = grid_change(GridChangeRequest.create(Atl08Database(config), roi=region, variable="h_canopy", periods=PERIODS,
                                                   cell_size_km=CELL_KM, min_shots=10, filters="h_canopy >= 21"))
    polygons = outcome.grid.polygons(outcome.cell)
    x, y = Transformer.from_crs("EPSG:4326", outcome.grid.crs, always_xy=True).transform(periods[0]["longitude"], periods[0]["latitude"])
    keep = shapely.contains_xy(region, periods[0]["longitude"], periods[0]["latitude"]) & (periods[0]["h_canopy"] >= 21)
    for polygon, count in zip(polygons, outcome.columns["count_p1"]):
        assert count == (keep & shapely.contains_xy(polygon, x, y)).sum()
    assert (outcome.columns["median_p1"] >= 21).all()


@pytest.mark.parametrize("variable, message", [("canopy_h_metrics", "name one with a label"), ("h_canopee", "h_canopy")])
def test_bad_variables_are_explained(planted, variable, message):
    with pytest.raises(QueryError, match=message):
        grid_change(GridChangeRequest.create(Atl08Database(planted[0]), variable=variable, periods=PERIODS))


def test_a_period_ending_before_it_starts_is_refused_before_any_read(planted):
    with pytest.raises(QueryError, match="before start"):
        grid_change(GridChangeRequest.create(Atl08Database(planted[0]), periods=(PERIODS[0], ("2023-01-01", "2022-01-01"))))


# --------------------------------------------------------------------------- outputs


def test_geopackage_holds_the_cells_in_the_grid_crs(result, tmp_path):
    path = write_cells_geopackage(result, tmp_path / "change.gpkg")
    dataset = ogr.Open(str(path))
    layer = dataset.GetLayerByName("grid_change")
    assert layer.GetFeatureCount() == len(result)
    assert layer.GetSpatialRef().GetAuthorityCode(None) == "8857"
    names = [layer.GetLayerDefn().GetFieldDefn(i).GetName() for i in range(layer.GetLayerDefn().GetFieldCount())]
    assert names == ["cell_id", *FIELDS]
    by_cell = {int(f["cell_id"]): f for f in layer}
    for index, cell in enumerate(result.cell):
        feature = by_cell[int(cell)]
        assert feature["count_p1"] == result.columns["count_p1"][index]
        assert feature["change"] == pytest.approx(result.columns["change"][index])
    assert [p.name for p in tmp_path.iterdir()] == ["change.gpkg"]  # no temporary left


def test_raster_option_writes_square_cells(planted, tmp_path):
    outcome = grid_change(GridChangeRequest.create(Atl08Database(planted[0]), periods=PERIODS, cell_size_km=CELL_KM,
                                                   cells="square", min_shots=MIN_SHOTS))
    path = write_cells_raster(outcome, tmp_path / "change.tif")
    with rasterio.open(path) as raster:
        assert raster.count == len(FIELDS) and raster.descriptions == FIELDS
        assert raster.res == (CELL_KM * 1000, CELL_KM * 1000)
        change = raster.read(FIELDS.index("change") + 1)
        cx = (outcome.grid.columns_rows(outcome.cell)[0] + 0.5) * outcome.grid.size_m
        cy = (outcome.grid.columns_rows(outcome.cell)[1] + 0.5) * outcome.grid.size_m
        rows, cols = rasterio.transform.rowcol(raster.transform, cx, cy)
        np.testing.assert_allclose(change[rows, cols], outcome.columns["change"], rtol=1e-6)
        assert np.isfinite(change).sum() == len(outcome)


def test_hexagons_cannot_be_written_as_a_raster(result, tmp_path):
    with pytest.raises(OutputError, match="square grid"):
        write_cells_raster(result, tmp_path / "x.tif")
    assert not list(tmp_path.iterdir())
