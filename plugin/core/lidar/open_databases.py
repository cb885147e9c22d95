"""Databases kept open for the session, so that a query in the dialog or a Processing run in QGIS
starts warm: opening the public database loads every fragment's footer (two requests per
fragment on S3), which a database already open has done. Each stays current by itself (see
``Atl08Database``), so sharing one never answers from an older view than opening a new one.

    database = shared_database(config)   # the one already open for this configuration, or a new one
"""

import threading
from collections import OrderedDict

from .config import DatabaseConfig
from .database import Atl08Database

KEEP = 3  # databases kept open at most (the least recently used is closed first)

_lock = threading.Lock()
_open: "OrderedDict[str, Atl08Database]" = OrderedDict()


def shared_database(config: DatabaseConfig, probe_timeout_s: float = 20.0) -> Atl08Database:
    """The open database for ``config`` (same storage, location, endpoint, credentials and settings),
    opened now if there is none. Opening happens under a lock, so two tasks asking at once open it once."""
    key = _key(config)
    with _lock:
        database = _open.get(key)
        if database is None:
            database = Atl08Database(config, probe_timeout_s=probe_timeout_s)
            _open[key] = database
            while len(_open) > KEEP:
                _open.popitem(last=False)[1].close()
        _open.move_to_end(key)
        return database


def is_open(config: DatabaseConfig) -> bool:
    """Whether a database for ``config`` is open and shared."""
    with _lock:
        return _key(config) in _open


def _key(config: DatabaseConfig) -> str:
    # held in memory only; the S3 settings (keys among them) are left out of the configuration's repr
    return repr(config) + repr(sorted(config.s3_settings.items()))


def close_all() -> None:
    """Close every shared database (when the plugin is unloaded)."""
    with _lock:
        while _open:
            _open.popitem()[1].close()
