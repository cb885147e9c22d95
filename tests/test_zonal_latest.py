"""The latest table (newest year with data wins, never an older one), the change table, re-runs, natural breaks.

Every rule is checked in both modes: the embedded GeoPackage and the PostGIS tables
(read back from the server, not from the GeoPackage copy).
"""

import math
import zlib

import pytest

from natural_breaks_reference import brute_force_jenks
from postgis_fixtures import *  # noqa: F401,F403
from zonal_fixtures import ID_FIELD, YEARS, district_shapes, districts, read_table, write_composites

from canopy_explorer.plugin.core.districts.postgis import district_stats_postgis
from canopy_explorer.plugin.core.districts.embedded import district_stats_embedded
from canopy_explorer.plugin.core.districts.statistics import NDVI_LAYOUT, DistrictStatsRequest

IDS = [i for i, _ in district_shapes()]
NO_DATA = {"C; DROP TABLE districts; --", "H tiny"}
OLD_ONLY = "G old only"


@pytest.fixture(scope="module")
def composites(tmp_path_factory):
    return write_composites(tmp_path_factory.mktemp("composites"))


class Runner:
    """Runs one mode into one output (a GeoPackage, or a schema and prefix) and reads its tables back."""

    def __init__(self, mode, folder, server=None, prefix=""):
        self.mode, self.server, self.prefix = mode, server, prefix
        self.output = folder / f"{mode}.gpkg"

    def run(self, composites, years, **options):
        rasters = {year: composites[year] for year in years}
        if self.mode == "embedded":
            return district_stats_embedded(DistrictStatsRequest.create(districts(), rasters, self.output, **options))
        return district_stats_postgis(DistrictStatsRequest.create(districts(), rasters, connection=self.server.conninfo,
                                                                  schema="latest rules", prefix=self.prefix, output_gpkg=self.output, **options))

    def table(self, name):
        if self.mode == "embedded":
            return read_table(self.output, name)
        import psycopg
        from psycopg import sql
        from psycopg.rows import dict_row

        with psycopg.connect(self.server.conninfo, row_factory=dict_row) as conn:
            rows = conn.execute(sql.SQL("SELECT * FROM {}").format(
                sql.Identifier("latest rules", self.prefix + name))).fetchall()
        return {row[ID_FIELD]: row for row in rows}

    def row_counts(self):
        if self.mode == "embedded":
            from zonal_fixtures import layer_names

            return {name: len(read_table(self.output, name)) for name in layer_names(self.output)}
        with self.server.admin_connect() as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'latest rules' AND tablename LIKE %s",
                (self.prefix + "%",)).fetchall()]
            counts = {}
            for table in tables:
                from psycopg import sql

                counts[table] = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
                    sql.Identifier("latest rules", table))).fetchone()[0]
            return counts


@pytest.fixture(params=["embedded", "postgis"])
def runner(request, tmp_path):
    if request.param == "embedded":
        return Runner("embedded", tmp_path)
    server = request.getfixturevalue("postgis_server")
    return Runner("postgis", tmp_path, server, prefix=f"t{zlib.crc32(request.node.nodeid.encode())}_")


def stats_of(row):
    return tuple(row[f] for f in ("pixel_count",) + NDVI_LAYOUT.stat_fields)


def test_latest_holds_the_newest_year_with_data_per_district(runner, composites):
    runner.run(composites, YEARS)
    latest = runner.table("ndvi_stats_latest")
    years = {year: runner.table(f"ndvi_stats_{year}") for year in YEARS}
    assert set(latest) == set(IDS)
    for identifier in IDS:
        with_data = [y for y in YEARS if years[y][identifier]["pixel_count"] > 0]
        row = latest[identifier]
        if not with_data:
            assert identifier in NO_DATA
            assert row["year"] is None and row["pixel_count"] == 0 and row["mean_ndvi"] is None
            continue
        assert row["year"] == max(with_data)
        assert stats_of(row) == stats_of(years[max(with_data)][identifier])
    assert latest[OLD_ONLY]["year"] == 2019  # no data in 2020 or 2021: keeps 2019's values


def test_an_older_year_never_overwrites_a_newer_one(runner, composites):
    runner.run(composites, [2021])
    newest = runner.table("ndvi_stats_latest")
    assert newest[OLD_ONLY]["year"] is None
    runner.run(composites, [2019])
    after_older = runner.table("ndvi_stats_latest")
    runner.run(composites, [2020])
    after_middle = runner.table("ndvi_stats_latest")
    for identifier in set(IDS) - NO_DATA - {OLD_ONLY}:
        assert after_older[identifier]["year"] == 2021
        assert stats_of(after_older[identifier]) == stats_of(newest[identifier])
        assert stats_of(after_middle[identifier]) == stats_of(newest[identifier])
    assert after_older[OLD_ONLY]["year"] == 2019 and after_middle[OLD_ONLY]["year"] == 2019
    change = runner.table("ndvi_stats_change")  # over every year table present, whatever the order of runs
    assert change['A "simple"']["first_year"] == 2019 and change['A "simple"']["last_year"] == 2021


def test_change_is_the_newest_minus_the_earliest_year_with_data(runner, composites):
    runner.run(composites, YEARS)
    change = runner.table("ndvi_stats_change")
    first, last = runner.table("ndvi_stats_2019"), runner.table("ndvi_stats_2021")
    for identifier in set(IDS) - NO_DATA - {OLD_ONLY}:
        row = change[identifier]
        assert (row["first_year"], row["last_year"]) == (2019, 2021)
        assert row["first_mean_ndvi"] == first[identifier]["mean_ndvi"]
        for field in NDVI_LAYOUT.stat_fields:
            assert math.isclose(row[f"{field}_change"], last[identifier][field] - first[identifier][field], abs_tol=1e-12)
        assert 0.02 < row["mean_ndvi_change"] < 0.14  # the composites rise by 0.04 a year, plus noise
    assert change[OLD_ONLY]["first_year"] == change[OLD_ONLY]["last_year"] == 2019
    assert change[OLD_ONLY]["mean_ndvi_change"] is None  # one year of data: no change
    assert all(change[i]["first_year"] is None and change[i]["mean_ndvi_change"] is None for i in NO_DATA)


def test_rerunning_gives_the_same_tables_not_duplicates(runner, composites):
    first_result = runner.run(composites, YEARS)
    counts = runner.row_counts()
    tables = {name: runner.table(name) for name in ["ndvi_stats_2020", "ndvi_stats_latest", "ndvi_stats_change"]}
    second_result = runner.run(composites, YEARS)
    assert runner.row_counts() == counts
    for name, rows in tables.items():
        again = runner.table(name)
        assert {i: stats_of(r) if "pixel_count" in r else r["mean_ndvi_change"] for i, r in again.items()} == \
               {i: stats_of(r) if "pixel_count" in r else r["mean_ndvi_change"] for i, r in rows.items()}
    assert [layer.breaks for layer in first_result.layers] == [layer.breaks for layer in second_result.layers]
    assert len(read_table(runner.output, "ndvi_stats_latest")) == len(IDS)
    if runner.mode == "postgis":
        assert counts[runner.prefix + "ndvi_2019"] == 4  # tiles, not appended again
        assert counts[runner.prefix + "districts"] == len(IDS)


def test_replace_latest_starts_the_latest_table_afresh(runner, composites):
    runner.run(composites, [2021])
    runner.run(composites, [2019], replace_latest=True)
    latest = runner.table("ndvi_stats_latest")
    assert {row["year"] for i, row in latest.items() if i not in NO_DATA} == {2019}


@pytest.mark.parametrize("classes", [3, 5])
def test_natural_breaks_are_the_optimal_fisher_jenks_classes(runner, composites, classes):
    result = runner.run(composites, YEARS, classes=classes)
    for layer in result.layers:
        rows = runner.table(layer.name)
        values = [row[layer.field] for row in rows.values() if row[layer.field] is not None]
        assert layer.minimum == pytest.approx(min(values))
        expected = brute_force_jenks(values, classes) if len(set(values)) > classes else sorted(set(values))
        assert list(layer.breaks) == pytest.approx(expected, abs=1e-12), layer.name
        assert layer.breaks[-1] == pytest.approx(max(values))


def test_the_chosen_statistic_drives_the_classes(composites, tmp_path):
    result = district_stats_embedded(DistrictStatsRequest.create(districts(), composites, tmp_path / "out.gpkg",
                                                                 statistic="max_ndvi"))
    latest = result.layer("ndvi_stats_latest")
    assert latest.field == "max_ndvi"
    values = [r["max_ndvi"] for r in read_table(tmp_path / "out.gpkg", "ndvi_stats_latest").values() if r["max_ndvi"] is not None]
    assert latest.breaks[-1] == pytest.approx(max(values))
    assert result.layer("ndvi_stats_change").field == "max_ndvi_change"


PERCENTILES = ("median_ndvi", "p10_ndvi", "p90_ndvi")


def drop_percentile_columns(runner, tables):
    """The tables as a release without the percentiles wrote them."""
    if runner.mode == "embedded":
        from osgeo import ogr

        dataset = ogr.Open(str(runner.output), update=1)
        for name in tables:
            layer = dataset.GetLayerByName(name)
            for column in PERCENTILES:
                layer.DeleteField(layer.GetLayerDefn().GetFieldIndex(column))
        dataset = None
        return
    from psycopg import sql

    with runner.server.admin_connect() as conn:
        for name in tables:
            for column in PERCENTILES:
                conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(
                    sql.Identifier("latest rules", runner.prefix + name), sql.Identifier(column)))


def test_tables_of_a_release_without_percentiles_are_updated_not_refused(runner, composites):
    runner.run(composites, [2019])
    drop_percentile_columns(runner, ["ndvi_stats_2019", "ndvi_stats_latest"])
    runner.run(composites, [2021])
    latest = runner.table("ndvi_stats_latest")
    assert latest[OLD_ONLY]["year"] == 2019 and latest[OLD_ONLY]["median_ndvi"] is None  # kept from the older table
    assert latest['A "simple"']["year"] == 2021 and latest['A "simple"']["median_ndvi"] is not None
    change = runner.table("ndvi_stats_change")  # the older year still counts, its percentiles unknown
    assert (change['A "simple"']["first_year"], change['A "simple"']["last_year"]) == (2019, 2021)
    assert change['A "simple"']["median_ndvi_change"] is None and change['A "simple"']["mean_ndvi_change"] is not None
