"""Test a database connection in the background (S3 can take seconds to answer, or time out)."""

from ..core.lidar.config import DatabaseConfig
from ..core.lidar.open_databases import shared_database
from .engine_task import EngineTask


def connection_summary(config: DatabaseConfig, timeout_s: float = 20.0) -> dict:
    """The database's URI, time span and the catalogue variables it holds. The database stays open for
    the queries that follow (the dialog tests the connection as soon as a database is chosen)."""
    database = shared_database(config, probe_timeout_s=timeout_s)
    database.prepare()  # what the dialog's first query will need, loaded while the user sets it up
    start, end = database.time_span()
    names = set(database.attribute_names)
    variables = sorted(v.name for v in database.product.catalogue().values() if set(v.attribute_names) & names)
    return {"uri": config.array_uri, "start": start, "end": end, "variables": variables}


class ConnectionTestTask(EngineTask):
    """``completed(summary dict)`` or ``failed(message)``."""

    def __init__(self, config: DatabaseConfig, timeout_s: float = 20.0):
        super().__init__(f"Test the database {config.array_uri}",
                         lambda progress, check_cancel, log: connection_summary(config, timeout_s))
