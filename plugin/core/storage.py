"""TileDB contexts for a database configuration, and a reachability probe that cannot hang."""

import threading
from typing import Dict, Optional

from .config import DatabaseConfig
from .errors import StorageError

DEFAULT_PROBE_TIMEOUT_S = 20.0


def make_context(config: DatabaseConfig, extra: Optional[Dict[str, str]] = None):
    import tiledb

    settings = {"sm.compute_concurrency_level": "2", "sm.io_concurrency_level": "4", **config.tiledb_config(), **(extra or {})}
    return tiledb.Ctx(tiledb.Config(settings))


def object_type(uri: str, ctx, timeout_s: float = DEFAULT_PROBE_TIMEOUT_S) -> Optional[str]:
    """``tiledb.object_type`` with a deadline: an unreachable endpoint gives a StorageError, not a hang."""
    import tiledb

    outcome = {}

    def probe():
        try:
            outcome["type"] = tiledb.object_type(uri, ctx=ctx)
        except tiledb.TileDBError as error:
            outcome["error"] = error

    thread = threading.Thread(target=probe, name="tiledb-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise StorageError(f"no answer from {uri} within {timeout_s:.0f} s: is the S3 endpoint reachable?")
    if "error" in outcome:
        raise StorageError(f"cannot reach {uri}: {outcome['error']}")
    return outcome.get("type")
