"""A real PostgreSQL + PostGIS 3 server for the tests, on a loopback port, in a temporary folder.

    from postgis_fixtures import *   # noqa: F401,F403  (gives the ``postgis_server`` fixture)

    def test_something(postgis_server):
        district_stats(DistrictStatsRequest.create(districts, rasters, connection=postgis_server.conninfo))

The server itself (``running_postgis``) lives in ``canopy_explorer.plugin.core.samples.postgis_server``,
which ``make demo`` uses too: the distribution's PostgreSQL started with ``initdb``/``pg_ctl``
on 127.0.0.1, password-protected over TCP, removed at the end of the session.
"""

import pytest

from canopy_explorer.plugin.core.samples.postgis_server import (  # noqa: F401  (re-exported for the tests)
    ADMIN,
    DATABASE,
    PASSWORD,
    ROLE,
    SETUP_HINT,
    PostgisServer,
    PostgisUnavailable,
    running_postgis,
    server_binaries,
)

__all__ = ["postgis_server", "PostgisServer", "PostgisUnavailable", "running_postgis", "server_binaries"]


@pytest.fixture(scope="session")
def postgis_server():
    """A running PostgreSQL + PostGIS (with raster) server; a database owned by a password-protected role."""
    context = running_postgis()
    try:
        server = context.__enter__()
    except PostgisUnavailable as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield server
    finally:
        context.__exit__(None, None, None)
