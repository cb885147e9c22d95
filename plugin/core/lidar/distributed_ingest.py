"""Ingest on a Dask cluster: the workers read granules and write their own fragments.

``ingest_granules(..., scheduler="tcp://host:8786")`` comes here once the database is ready, its
orphans removed and the ingest lock held (``ingest``). The client (this process) never holds segment
data; it only plans, hands out timestamps and keeps the ledger:

1. Workers read every file's identity (``_identify_one``, in tasks of ``IDENTIFY_PER_TASK`` files);
   the client sorts out granules already stored and copies (``ingest._sort_out``), as a single
   process does.
2. The files to read are cut, in the single process's order (``ingest._by_year``), into tasks of a
   few granules. Each task gets a TileDB timestamp of its own from the client. A worker reads its
   granules, drops bad rows and rows stored already (``ingest._accept``, with the stored ranges of
   the granules' orbits sent along), and writes one fragment per write tile at its timestamp
   (``ingest._write_batch_retrying``). A granule that overlaps one of an earlier task waits for
   that task (a Dask dependency) and learns what it stored, so the earlier file keeps the shared
   segments exactly as in a single-process run.
3. A task returns only what it did (counts, ledger entries, reasons). The client records the
   granules in the ledger after their task has returned, that is after all their fragments are
   committed, a few seconds' worth at a time.

Faults. A worker killed mid-task: Dask runs the task again elsewhere with the same timestamp; the
new attempt first deletes whatever fragments the killed one committed at that timestamp (a task
counts its attempts on the scheduler), so nothing is written twice. The scheduler or the client
lost: the run stops with an error; fragments committed but not yet recorded are unrecorded
fragments the next run deletes before it writes (``ingest._remove_orphans``), and it ingests
those granules again. Workers check before each write that their run still holds the ingest lock
(``ingest_lock.held_by``), so a worker cut off from a finished run writes nothing more.

The granule files must be readable at the same path on every worker (a shared file system); the
database is reached with the configuration's settings, or, where it names no keys, with the
workers' own S3 credentials (environment variables, instance or pod roles).
"""

import json
import os
import signal
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

from ..errors import ConfigurationError, StorageError
from .config import DatabaseConfig
from .granule_identity import GranuleIdentity
from .ingest import (
    IDENTIFY_SHARE,
    IngestReport,
    _accept,
    _by_year,
    _concat,
    _identify_one,
    _read_one,
    _record,
    _sort_out,
    _write_batch_retrying,
)
from .ingest_ledger import LedgerEntry
from .ingest_lock import IngestLock, held_by
from .products import product
from .segment_coverage import SegmentCoverage
from .storage import RETRY_ATTEMPTS, make_context, retrying

IDENTIFY_PER_TASK = 32  # files per identification task: identities are small, tasks have overhead
MAX_GRANULES_PER_TASK = 8  # granules read and written by one task: bounds a worker's memory (an ATL08 v7 granule decodes to ~100 MB)
TASKS_PER_WORKER = 4  # fewer granules per task while there would be fewer tasks than this per worker
IN_FLIGHT_PER_WORKER = 3  # tasks handed to the scheduler ahead, per worker (bounds the client's bookkeeping)
RECORD_EVERY_S = 5.0  # how often finished granules are recorded in the ledger (one ledger fragment each time)
SCHEDULER_TIMEOUT_S = 30.0  # to connect, and without news from the scheduler before the run is given up
STAMP_STRIDE = RETRY_ATTEMPTS  # a task whose write is retried moves to the next timestamps: they stay its own

# Test-only fault injection (tests/test_distributed_ingest_faults.py). On a worker, when this variable
# names a JSON file {"granule": <file name>, "when": "start" or "written", "pid": <process id, 0 = this
# worker>}, the task holding that granule sends SIGKILL to that process when it starts, or once its
# fragments are committed. The file is renamed first, so the fault happens once. Unset in normal use.
FAULT_VARIABLE = "CANOPY_INGEST_TEST_FAULT"


@dataclass
class TaskOutcome:
    """What a task tells the client: no segment data, only counts, ledger entries and reasons."""

    stamp: int
    entries: List[LedgerEntry]
    report: IngestReport  # skipped, duplicates, dropped, notes, segments, fragments of this task
    messages: List[str] = field(default_factory=list)
    added: List[Tuple[int, int, tuple, str]] = field(default_factory=list)  # (rgt, cycle, ranges, file) now stored


@dataclass(frozen=True)
class _Task:
    index: int
    items: Tuple[Tuple[str, str, GranuleIdentity], ...]  # (path, name, identity)
    stored: Tuple[Tuple[int, int, int, int, int, str], ...]  # (rgt, cycle, beam, first, last, file) in the database
    after: Tuple[int, ...]  # earlier tasks holding granules that overlap these


def ingest_on_cluster(config: DatabaseConfig, ctx, lock: IngestLock, paths: List[Path], names: List[str],
                      ledger: Dict[str, LedgerEntry], last_stamp: int, report: IngestReport, progress, reference_filters,
                      log, scheduler: str, granules_per_task: Optional[int] = None) -> None:
    """Identify, read and write on the cluster at ``scheduler``; fill ``report`` as a single process would."""
    client = _connect(scheduler)
    try:
        lidar = product(config.product)
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        identities = _identify(client, scheduler, paths, names, lidar.name, report, progress, log)
        pending, coverage = _sort_out(config, ctx, lock, paths, names, identities, ledger, report, log)
        tasks = _plan(config, lidar, pending, coverage, workers, granules_per_task)
        with client.as_current():  # dask's wait() works with the current client, not a future's
            _run(client, scheduler, config, ctx, lock, tasks, len(pending), workers, last_stamp, report, progress,
                 reference_filters, log)
    finally:
        client.close(timeout=5)


def _connect(scheduler: str):
    try:
        from dask.distributed import Client
    except ImportError:
        raise ConfigurationError("a Dask scheduler was given but dask.distributed is not installed "
                                 "(pip install distributed, or make setup)") from None
    try:
        return Client(scheduler, timeout=SCHEDULER_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise ConfigurationError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None


def _identify(client, scheduler, paths, names, product_name, report, progress, log) -> List[Optional[GranuleIdentity]]:
    """Every file's identity, read on the workers (absolute paths: the workers do not share our folder)."""
    located = [str(Path(p).resolve()) for p in paths]
    batches = [located[i:i + IDENTIFY_PER_TASK] for i in range(0, len(located), IDENTIFY_PER_TASK)]
    futures = [client.submit(_identify_files, batch, product_name, pure=False) for batch in batches]
    identities: List[Optional[GranuleIdentity]] = []
    try:
        for future in futures:
            for identity, reason in _result(future, scheduler):
                index = len(identities)
                if reason is not None:
                    report.skipped.append((names[index], reason))
                    log(f"skipped {names[index]}: {reason}")
                identities.append(identity)
            progress(IDENTIFY_SHARE * len(identities) / len(paths))  # may raise Cancelled: nothing written yet
    finally:
        client.cancel(futures)
    return identities


def _identify_files(paths: Sequence[str], product_name: str):
    return [_identify_one(Path(path), product_name) for path in paths]


def _plan(config, lidar, pending, coverage: SegmentCoverage, workers: int, granules_per_task: Optional[int]) -> List[_Task]:
    """Tasks in the single process's order, each with the stored ranges of its orbits and the earlier tasks it must wait for."""
    if not pending:
        return []
    size = granules_per_task or max(1, min(MAX_GRANULES_PER_TASK, config.flush_every,
                                           -(-len(pending) // (workers * TASKS_PER_WORKER))))
    tasks: List[_Task] = []
    seen: Dict[Tuple[int, int], List[Tuple[tuple, int]]] = {}  # orbit -> (ranges, task) of earlier granules
    for group in _by_year(config, lidar, pending):
        for start in range(0, len(group), size):
            chunk = group[start:start + size]
            index = len(tasks)
            after: Set[int] = set()
            stored = []
            for _, _, identity in chunk:
                orbit = (identity.rgt, identity.cycle)
                after.update(task for ranges, task in seen.get(orbit, ()) if task != index and _overlap(ranges, identity.ranges))
                stored += [(identity.rgt, identity.cycle, beam, first, last, owner)
                           for beam, first, last, owner in coverage.spans(*orbit)]
            for _, _, identity in chunk:
                seen.setdefault((identity.rgt, identity.cycle), []).append((identity.ranges, index))
            items = tuple((str(Path(path).resolve()), name, identity) for path, name, identity in chunk)
            tasks.append(_Task(index, items, tuple(dict.fromkeys(stored)), tuple(sorted(after))))
    return tasks


def _overlap(ranges_a, ranges_b) -> bool:
    return any(beam_a == beam_b and first_a <= last_b and first_b <= last_a
               for beam_a, first_a, last_a in ranges_a for beam_b, first_b, last_b in ranges_b)


def _run(client, scheduler, config, ctx, lock: IngestLock, tasks: List[_Task], granules: int, workers: int, last_stamp: int,
         report: IngestReport, progress, reference_filters, log) -> None:
    """Hand the tasks to the cluster a few ahead, record what comes back, stop cleanly on a fault or a cancel."""
    run = lock.token  # names this run's attempt counters on the scheduler and lets workers check the lock
    bounds = product(config.product).segment_bounds(config)
    window = max(2, workers * IN_FLIGHT_PER_WORKER)
    running: Dict[object, _Task] = {}
    finished: Dict[int, TaskOutcome] = {}  # outcomes later tasks depend on (small: names and ranges)
    needed = {index for task in tasks for index in task.after}
    unrecorded: List[LedgerEntry] = []
    recorded_at = time.monotonic()
    done = 0
    queue = list(tasks)

    def record_now() -> None:
        nonlocal unrecorded, recorded_at
        if unrecorded:
            entries = unrecorded
            lock.check()
            retrying(lambda: _record(config.ledger_uri, ctx, entries), f"recording the ingested granules in {config.ledger_uri}")
            report.written.extend(e.file_name for e in entries)
            log(f"recorded {len(entries)} granules ({sum(e.segments for e in entries)} segments)")
            unrecorded = []
        recorded_at = time.monotonic()

    try:
        while queue or running:
            while queue and len(running) < window:
                task = queue.pop(0)
                last_stamp = max(int(time.time() * 1000), last_stamp + STAMP_STRIDE)
                earlier = [finished.get(i) or next(f for f, t in running.items() if t.index == i) for i in task.after]
                future = client.submit(_ingest_task, config, task, earlier, last_stamp, run, bounds, reference_filters,
                                       pure=False, key=f"canopy-ingest-{run}-{task.index}")
                running[future] = task
            ready = _wait_some(list(running), scheduler)
            if not ready:
                _check_scheduler(client, scheduler)
                continue
            for future in ready:
                task = running.pop(future)
                outcome: TaskOutcome = _result(future, scheduler)
                if task.index in needed:
                    finished[task.index] = outcome
                _merge(report, outcome, log)
                unrecorded += outcome.entries
                done += len(task.items)
                progress(IDENTIFY_SHARE + (1 - IDENTIFY_SHARE) * done / granules)  # may raise Cancelled
            if time.monotonic() - recorded_at >= RECORD_EVERY_S:
                record_now()
        record_now()
    except BaseException as error:
        # What finished is committed: record it, so only the tasks still running leave unrecorded fragments
        # (which the next run deletes). Not when the lock is lost: then another ingest may be writing.
        client.cancel(list(running))
        if not (isinstance(error, StorageError) and "ingest lock" in str(error)):
            try:
                record_now()
            except Exception as failure:  # the next run deletes these fragments and ingests the granules again
                log(f"could not record the last finished granules: {failure}")
        raise


def _merge(report: IngestReport, outcome: TaskOutcome, log) -> None:
    part = outcome.report
    report.skipped += part.skipped
    report.duplicates += part.duplicates
    report.dropped += part.dropped
    report.missing_variables += part.missing_variables
    report.notes += part.notes
    report.segments += part.segments
    report.fragments += part.fragments
    for message in outcome.messages:
        log(message)


def _result(future, scheduler: str):
    """A task's result; the cluster's own failures become the engine's errors, naming the scheduler."""
    from dask.distributed import CancelledError

    try:
        return future.result()
    except CancelledError:
        raise StorageError(f"the Dask cluster at {scheduler} dropped the ingest's tasks (was the scheduler restarted?): "
                           "run the ingest again to complete it") from None
    except Exception as error:
        if type(error).__name__ == "KilledWorker":
            raise StorageError(f"Dask workers at {scheduler} died again and again on one task ({error}): "
                               "run the ingest again to complete it") from None
        if type(error).__name__ in ("CommClosedError", "TimeoutError") or isinstance(error, OSError):
            raise StorageError(f"lost the Dask scheduler at {scheduler} ({error}): run the ingest again to complete it") from None
        raise


def _wait_some(futures, scheduler: str):
    """The futures that finished within ``SCHEDULER_TIMEOUT_S`` (maybe none); an error once the scheduler is gone."""
    from dask.distributed import CancelledError, wait

    try:
        ready, _ = wait(futures, timeout=SCHEDULER_TIMEOUT_S, return_when="FIRST_COMPLETED")
    except CancelledError as error:  # the client cancels every future when it loses the scheduler
        raise StorageError(f"lost the Dask scheduler at {scheduler} ({str(error).splitlines()[-1].strip()}): "
                           "run the ingest again to complete it") from None
    except TimeoutError:
        return []
    return ready


def _check_scheduler(client, scheduler: str) -> None:
    """No task finished for a while: fine if the scheduler answers (long tasks), an error if it is gone."""
    try:
        client.run_on_scheduler(lambda: None)  # a round trip
    except Exception as error:  # whatever the comm layer raises once the scheduler is gone
        raise StorageError(f"lost the Dask scheduler at {scheduler} ({type(error).__name__}: {error}): "
                           "run the ingest again to complete it") from None


# ---------------------------------------------------------------------------------------------- on a worker

_CONTEXTS: Dict[str, object] = {}


def _context(config: DatabaseConfig):
    """One TileDB context per worker process and database (a context holds S3 connections worth reusing)."""
    key = json.dumps(config.tiledb_config(), sort_keys=True)
    if key not in _CONTEXTS:
        _CONTEXTS[key] = make_context(config)
    return _CONTEXTS[key]


def _ingest_task(config: DatabaseConfig, task: _Task, earlier: Sequence[TaskOutcome], stamp: int, run: str, bounds,
                 reference_filters: bool) -> TaskOutcome:
    """Read a task's granules, write their rows at ``stamp``; return only what was done."""
    import tiledb

    ctx = _context(config)
    lidar = product(config.product)
    messages: List[str] = []
    report = IngestReport(database_uri=config.array_uri)
    coverage = SegmentCoverage(lidar.decode_segment_id)
    for rgt, cycle, beam, first, last, owner in task.stored:
        coverage.add(rgt, cycle, [(beam, first, last)], owner)
    for outcome in earlier:
        for rgt, cycle, ranges, owner in outcome.added:
            coverage.add(rgt, cycle, ranges, owner)
    parts, entries, added = [], [], []
    for path, name, identity in task.items:
        _fault(name, "start")
        result = _read_one(Path(path), lidar.name, reference_filters, bounds)
        columns, entry = _accept(name, identity, result, coverage, report, messages.append, lidar.name)
        if columns is not None:
            parts.append(columns)
        if entry is not None:
            entries.append(entry)
            added.append((identity.rgt, identity.cycle, identity.ranges, name))
    if _attempt(run, task.index) > 0:
        # an earlier attempt of this task died (its worker was killed): remove what it committed
        retrying(lambda: tiledb.Array.delete_fragments(config.array_uri, stamp, stamp + STAMP_STRIDE - 1, ctx=ctx),
                 f"removing the fragments of an interrupted task from {config.array_uri}")
    if parts:
        batch = _concat(parts)
        if not held_by(config, ctx, run):
            raise StorageError(f"the ingest lock on {config.base_uri} is no longer held by this run: nothing more was written")
        report.fragments, stamp = _write_batch_retrying(config, ctx, batch, stamp)
        report.segments = len(batch["latitude"])
        del batch, parts
    for _, name, _ in task.items:
        _fault(name, "written")
    entries = [replace(e, batch_timestamp=stamp) for e in entries]
    return TaskOutcome(stamp, entries, report, messages, added)


def _attempt(run: str, index: int) -> int:
    """How many times this task started before (on workers that died), counted on the scheduler."""
    from dask.distributed import get_client

    client = get_client()
    key = ["canopy-ingest-attempts", run, str(index)]
    before = int(client.get_metadata(key, default=0))
    client.set_metadata(key, before + 1)
    return before


def _fault(granule: str, when: str) -> None:
    """The test-only fault of ``FAULT_VARIABLE``; nothing when it is unset."""
    plan_file = os.environ.get(FAULT_VARIABLE)
    if not plan_file:
        return
    try:
        plan = json.loads(Path(plan_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if plan.get("granule") != granule or plan.get("when", "start") != when:
        return
    try:
        os.rename(plan_file, plan_file + ".done")  # once: only one worker wins the rename
    except OSError:
        return
    os.kill(int(plan.get("pid") or os.getpid()), signal.SIGKILL)
    time.sleep(5)  # a signal to another process takes a moment; this task must not go on meanwhile
