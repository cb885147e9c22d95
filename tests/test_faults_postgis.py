"""PostgreSQL stops in the middle of district statistics: a clear error, the tables as they were
before the run (each step is a transaction), and the next run completes."""

import pytest

from postgis_fixtures import *  # noqa: F401,F403
from zonal_fixtures import districts, read_table, write_composites

from canopy_explorer.plugin.core.errors import StorageError
from canopy_explorer.plugin.core.districts.postgis import district_stats_postgis
from canopy_explorer.plugin.core.districts.statistics import DistrictStatsRequest

SCHEMA = "stopped_midway"


def schema_tables(server):
    with server.admin_connect() as admin:
        names = [r[0] for r in admin.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (SCHEMA,))]
        totals = {}
        for name in names:
            query = f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM \"{SCHEMA}\".\"{name}\" t"
            totals[name] = admin.execute(query).fetchone()
        return totals


def test_server_stopping_midway_leaves_the_tables_as_before_and_the_next_run_completes(postgis_server, tmp_path):
    composites = write_composites(tmp_path / "composites")
    output = tmp_path / "stats.gpkg"
    district_stats_postgis(DistrictStatsRequest.create(districts(), composites, connection=postgis_server.conninfo,
                                                       schema=SCHEMA, output_gpkg=output, loader="python"))
    before_tables = schema_tables(postgis_server)
    before_file = output.read_bytes()
    assert before_tables

    def stop_during_the_second_year(message):
        if message.startswith(f"{max(composites)}: ") and "loaded" in message:
            postgis_server.stop()

    try:
        with pytest.raises(StorageError) as raised:
            district_stats_postgis(DistrictStatsRequest.create(districts(), composites, connection=postgis_server.conninfo,
                                                               schema=SCHEMA, output_gpkg=output, loader="python"), log=stop_during_the_second_year)
    finally:
        postgis_server.start()
    message = str(raised.value)
    assert "PostGIS" in message and postgis_server.password not in message
    assert schema_tables(postgis_server) == before_tables  # every step rolled back or never started
    assert output.read_bytes() == before_file  # the GeoPackage is published only after a complete run
    district_stats_postgis(DistrictStatsRequest.create(districts(), composites, connection=postgis_server.conninfo,
                                                       schema=SCHEMA, output_gpkg=output, loader="python"))
    assert schema_tables(postgis_server) == before_tables  # the same inputs give the same tables again
    assert read_table(output, f"ndvi_stats_{max(composites)}")
