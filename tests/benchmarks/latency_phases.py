"""The common part of the latency benchmark's workers: one new process per measurement, which
opens a database, queries a box (cold), queries it again (warm) and queries a nearby box, and
prints one JSON document.

Standard library only: it also runs in the reference package's virtualenv. A worker supplies
three functions and calls ``run``:

    open_reader(spec) -> reader                 # what a user's session does first
    query(reader, spec, bounds) -> result       # one query of a box, to the reader's usual output
    describe(result) -> (rows, checksum)        # the checksum as reference_runner computes it

The spec (one JSON document on stdin) holds the proxy's URL, the queries
``[{"name": "cold" | "warm" | "nearby", "bounds": [lon_min, lat_min, lon_max, lat_max]}]``,
``start``, ``end``, ``variables`` and whatever the worker needs to open the database. The
modules a reader needs are imported before the clock starts: the time measured here is the
open and the queries; the benchmark times the whole process from outside as well.

The requests and bytes of each step are read from the proxy's counters (``fault_proxy``'s
control endpoint, which does not count itself) before and after the step, outside the timing.
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, for fault_proxy

from fault_proxy import control  # noqa: E402


def run(open_reader, query, describe, versions=None, details=None) -> int:
    """Measure the steps of the spec read from stdin; print the result as one JSON line.
    ``details(reader, spec)``: extra facts about the open reader, reported as they are."""
    spec = json.loads(sys.stdin.read())
    proxy = spec["proxy"]

    def counted(step):
        before = control(proxy)["counts"]
        started = time.perf_counter()
        result = step()
        seconds = time.perf_counter() - started
        after = control(proxy)["counts"]
        return result, {"seconds": seconds, **{key: after[key] - before[key] for key in ("requests", "connections", "bytes")}}

    reader, opened = counted(lambda: open_reader(spec))
    answer = {"open": opened, "queries": [], "versions": versions or {}}
    for step in spec["queries"]:
        result, measured = counted(lambda: query(reader, spec, step["bounds"], step.get("filters")))
        measured["rows"], measured["checksum"] = describe(result)
        del result
        answer["queries"].append(dict(measured, name=step["name"]))
    if details is not None:
        answer["details"] = details(reader, spec)
    close = getattr(reader, "close", None)
    if close is not None:
        close()
    print(json.dumps(answer), flush=True)
    return 0
