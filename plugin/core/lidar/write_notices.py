"""Ingests this process has finished, per array: an open database sees its own process's writes at
once, whatever its freshness allows for writes by other processes (see ``Atl08Database``)."""

import threading
from collections import Counter

_lock = threading.Lock()
_writes: Counter = Counter()


def wrote_to(array_uri: str) -> None:
    """Say that fragments were committed to ``array_uri`` (called by ingest when it has finished)."""
    with _lock:
        _writes[array_uri.rstrip("/")] += 1


def writes_to(array_uri: str) -> int:
    """How many times this process has said it wrote to ``array_uri``."""
    with _lock:
        return _writes[array_uri.rstrip("/")]
