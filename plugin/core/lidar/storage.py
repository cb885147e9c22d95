"""TileDB contexts for a database configuration, a reachability probe that cannot hang, and
retries of S3 requests that failed for a passing reason."""

import os
import re
import threading
import time
from typing import Callable, Dict, Optional, TypeVar

from ..errors import StorageError
from .config import DatabaseConfig

DEFAULT_PROBE_TIMEOUT_S = 20.0
T = TypeVar("T")


# Over S3 nearly every step of a read waits for a round trip, and TileDB runs them on its thread
# pools: opening an array loads each fragment's footer on a compute thread (a HEAD and a ranged GET
# each), a query fetches its tiles on I/O threads. With the pools as large as the machine's cores,
# a database of 40 fragments took 5.9 s to open at 50 ms per request; with 32 threads, 1.2 s.
# Result buffers start at TileDB's estimate of the result, up to 512 MiB each (tiledb-py's default
# of 10 MiB made a query of 1.7 million segments submit twice, a round of requests more).
# Reads on local disk, and writes (ingest), keep the small pools, which leave the cores to QGIS.
LOCAL_THREADS = {"sm.compute_concurrency_level": "2", "sm.io_concurrency_level": "4"}
REMOTE_READ_SETTINGS = {"sm.compute_concurrency_level": "32", "sm.io_concurrency_level": "32", "vfs.s3.max_parallel_ops": "32",
                        "py.init_buffer_bytes": str(512 * 1024 ** 2)}
# A query runs on the pools of the context it is created with (``tiledb_query_alloc`` takes one;
# tiledb-py passes the array's ``ctx`` attribute), not those of the context that opened its array.
# So queries get their own, with fewer compute threads: these decode tiles, and TileDB's waiting
# threads yield in a loop rather than sleep; with 32 on 2 cores a warm query of the smallest box
# took 0.31 s at 50 ms per request, with 8 0.21 s (2 and 4 were no faster; docs/BENCHMARKS.md).
# One per core above 8: decoding is CPU work.
QUERY_COMPUTE_THREADS = max(8, os.cpu_count() or 1)


def make_context(config: DatabaseConfig, extra: Optional[Dict[str, str]] = None, reading: bool = False,
                 querying: bool = False):
    """A TileDB context for ``config``; ``reading``: sized for opening arrays to read (see
    REMOTE_READ_SETTINGS); ``querying``: for the queries on such an array (QUERY_COMPUTE_THREADS)."""
    import tiledb

    sized = LOCAL_THREADS
    if (reading or querying) and config.storage_type == "s3":
        sized = REMOTE_READ_SETTINGS
        if querying:
            sized = {**sized, "sm.compute_concurrency_level": str(QUERY_COMPUTE_THREADS)}
    settings = {**sized, **config.tiledb_config(), **(extra or {})}
    return tiledb.Ctx(tiledb.Config(settings))


def within_deadline(call: Callable[[], T], uri: str, timeout_s: float = DEFAULT_PROBE_TIMEOUT_S) -> T:
    """``call()`` on a helper thread, given up after ``timeout_s``: an unreachable endpoint gives a
    StorageError, not a hang (TileDB's own timeouts do not cover every request)."""
    outcome = {}

    def run():
        try:
            outcome["value"] = call()
        except Exception as error:  # handed to the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, name="tiledb-deadline", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise StorageError(f"no answer from {uri} within {timeout_s:.0f} s: is the S3 endpoint reachable?")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def object_type(uri: str, ctx, timeout_s: float = DEFAULT_PROBE_TIMEOUT_S) -> Optional[str]:
    """``tiledb.object_type`` with a deadline: an unreachable endpoint gives a StorageError, not a hang."""
    import tiledb

    def probe():
        try:
            return tiledb.object_type(uri, ctx=ctx)
        except tiledb.TileDBError as error:
            raise StorageError(f"cannot reach {uri}: {error}") from None

    return within_deadline(probe, uri, timeout_s)


# Passing failures of an object store: throttling (503 SlowDown), server errors, dropped or
# timed-out connections (curl 7, 28, 52, 55, 56). TileDB's own S3 retries do not cover all of
# them (a throttled listing fails at once).
_TRANSIENT = re.compile(r"SlowDown|Response Code: 5\d\d|curlCode: (7|28|52|55|56)\b|Connection reset|timed out|Timeout was reached",
                        re.IGNORECASE)
RETRY_ATTEMPTS = 6
RETRY_FIRST_DELAY_S = 0.2


def is_transient(error: BaseException) -> bool:
    return bool(_TRANSIENT.search(str(error)))


def retrying(call: Callable[[], T], what: str, attempts: int = RETRY_ATTEMPTS, first_delay_s: float = RETRY_FIRST_DELAY_S) -> T:
    """``call()``, again after 0.2, 0.4, 0.8 ... s while it fails for a passing reason; any other
    TileDB error, or the last one, becomes a StorageError saying what was being done."""
    import tiledb

    for attempt in range(attempts):
        try:
            return call()
        except tiledb.TileDBError as error:
            if attempt + 1 < attempts and is_transient(error):
                time.sleep(first_delay_s * 2**attempt)
                continue
            tries = f" (after {attempt + 1} attempts)" if attempt else ""
            raise StorageError(f"{what} failed{tries}: {_short(error)}") from None
    raise AssertionError("unreachable")


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 400 else text[:397] + "..."
