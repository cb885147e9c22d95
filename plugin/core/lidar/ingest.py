"""Build a database in the public ATL08 layout from ATL08 granules (local disk or S3).

Granules are read in parallel (local processes or threads) and written by one writer,
per annual batch and per 30 x 30 degree write tile, flushing every ``flush_every`` granules
so memory stays bounded. On a Dask cluster (``scheduler``) the workers read granules and write
their own fragments instead (``distributed_ingest``), with the same checks and the same result.

A granule is known by its content (``granule_identity``), not its file name: a copy under
another name or folder is recognised and skipped, two different granules with one name are
both stored. Each file's identity is read first (four datasets per beam); only granules the
database does not hold are then read whole. Rows with fill or out-of-range coordinates,
times or segment ids, and rows outside the configuration's ``time_range`` and
``spatial_range``, are dropped and counted per granule (``segment_checks``); a granule that
cannot be read consistently is skipped by name; neither blocks the rest of its batch. A file
lacking some of the database's variables (a variable subset, an earlier release) is stored with
fill for them and named in the report with what it lacked; the release it states goes to the ledger.

Every flush is written at its own TileDB timestamp and recorded afterwards in a
small ledger array beside the data (``ingest_ledger``: granule identity -> batch
timestamp, segment count, file). A run killed between the two leaves fragments whose
timestamp the ledger does not know; the next run deletes them before writing,
so resuming never duplicates or loses segments, and re-running on the same
folder writes nothing. One ingest at a time writes a database (``ingest_lock``, on local
disk and S3 alike): a second one waits for the first, then finds its granules in the ledger.
"""

import argparse
import concurrent.futures
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, field, replace
from itertools import groupby
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..callbacks import Progress
from ..errors import CanopyExplorerError, ConfigurationError, GranuleError, StorageError
from .config import DIMENSIONS, DatabaseConfig, load_config
from .granule_identity import GranuleIdentity, ranges_text
from .ingest_ledger import LedgerEntry, claim, create_ledger, ledger_created_ms, read_ledger, record, upgrade_ledger
from .ingest_lock import DEFAULT_WAIT_S, IngestLock
from .products import DEFAULT_PRODUCT, LidarProduct, product
from .segment_coverage import ALREADY_STORED, SegmentCoverage
from .storage import RETRY_ATTEMPTS, RETRY_FIRST_DELAY_S, is_transient, make_context, object_type, retrying
from .write_notices import wrote_to



@dataclass(frozen=True)
class DroppedRows:
    """Rows of one granule that were not written, per reason (``segment_checks.REASONS``)."""

    granule: str
    rows: int  # segments in the granule
    counts: Dict[str, int]
    product: str = DEFAULT_PRODUCT

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __str__(self) -> str:
        return f"{self.granule}: {product(self.product).describe_drops(self.counts, self.rows)}"


@dataclass(frozen=True)
class MissingVariables:
    """Variables of the database a granule's file cannot supply (a variable subset, an earlier release):
    stored as fill for its segments. ``variables``: (name, why: "" when absent, or how its layout differs)."""

    granule: str
    variables: Tuple[Tuple[str, str], ...]
    version: str = ""  # the product release the file states, "" when it does not

    def __str__(self) -> str:
        names = ", ".join(f"{name} ({why})" if why else name for name, why in self.variables)
        count = len(self.variables)
        release = f" (release {self.version})" if self.version else ""
        return f"{self.granule}{release}: {count} variable{'s' if count != 1 else ''} missing, stored as fill: {names}"


@dataclass
class IngestReport:
    database_uri: str
    written: List[str] = field(default_factory=list)
    already_ingested: List[str] = field(default_factory=list)
    duplicates: List[Tuple[str, str]] = field(default_factory=list)  # (granule, the file holding the same data)
    skipped: List[Tuple[str, str]] = field(default_factory=list)  # (granule, reason)
    dropped: List[DroppedRows] = field(default_factory=list)
    missing_variables: List[MissingVariables] = field(default_factory=list)  # per granule written that lacks some
    notes: List[str] = field(default_factory=list)  # about the database itself (ledger upgraded, stale lock removed, ...)
    segments: int = 0
    fragments: int = 0
    removed_orphan_fragments: int = 0

    @property
    def segments_dropped(self) -> int:
        return sum(d.total for d in self.dropped)

    def summary(self) -> str:
        text = (
            f"{len(self.written)} granules written ({self.segments} segments, {self.fragments} fragments), "
            f"{len(self.already_ingested)} already in the database, {len(self.duplicates)} duplicate files, "
            f"{len(self.skipped)} skipped, {self.segments_dropped} segments dropped"
        )
        for name, original in self.duplicates:
            text += f"\n  duplicate {name}: {original}"
        for dropped in self.dropped:
            text += f"\n  {dropped}"
        for missing in self.missing_variables:
            text += f"\n  {missing}"
        for name, reason in self.skipped:
            text += f"\n  skipped {name}: {reason}"
        for note in self.notes:
            text += f"\n  note: {note}"
        return text


def find_granules(inputs: Iterable) -> List[Path]:
    """ATL08 files from folders (searched recursively for *.h5) and explicit paths, each file once.

    Two files with the same name in different folders are both kept: the name does not
    identify a granule (``granule_identity`` does)."""
    found = []
    for item in [inputs] if isinstance(inputs, (str, Path)) else inputs:
        path = Path(item)
        if path.is_dir():
            found.extend(p for p in path.rglob("*.h5") if p.is_file())
        elif path.exists():
            found.append(path)
        else:
            raise ConfigurationError(f"input {path} does not exist")
    unique = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return sorted(unique.values(), key=lambda p: (p.name, str(p)))


def granule_names(paths: Sequence[Path]) -> List[str]:
    """How reports name each file: its name, or where several files share a name, its path
    below the folder they have in common (``2019/ATL08_....h5`` and ``2020/ATL08_....h5``)."""
    by_name: Dict[str, List[Path]] = {}
    for path in paths:
        by_name.setdefault(path.name, []).append(path)
    names = []
    for path in paths:
        twins = by_name[path.name]
        if len(twins) == 1:
            names.append(path.name)
            continue
        resolved = [t.resolve() for t in twins]
        common = Path(os.path.commonpath([str(r.parent) for r in resolved]))
        names.append(str(path.resolve().relative_to(common)))
    return names


# --------------------------------------------------------------------------- ledger


def _record(uri: str, ctx, entries: Sequence) -> None:
    """Ledger rows: ``LedgerEntry``s, or (key, batch timestamp, segments) as earlier callers write them."""
    record(uri, ctx, [e if isinstance(e, LedgerEntry) else LedgerEntry(str(e[0]), int(e[1]), int(e[2])) for e in entries])


def _remove_orphans(array_uri: str, known_timestamps: set, since_ms: int, ctx) -> int:
    """Delete data fragments written by a run that died before recording them in the ledger."""
    import tiledb

    orphans = sorted(
        {
            f.timestamp_range[0]
            for f in tiledb.FragmentInfoList(array_uri, ctx=ctx)
            if f.timestamp_range[0] > since_ms and f.timestamp_range[0] not in known_timestamps
        }
    )
    for stamp in orphans:
        tiledb.Array.delete_fragments(array_uri, stamp, stamp, ctx=ctx)
    return len(orphans)


def _damaged_fragments(array_uri: str, ctx) -> List[str]:
    """Fragments whose extent is not finite: NaN coordinates an earlier version wrote from fill values."""
    import tiledb

    from .database import damaged_fragments

    return damaged_fragments(tiledb.FragmentInfoList(array_uri, ctx=ctx))


def _holds(array_uri: str, ctx, identity: GranuleIdentity, lidar: LidarProduct) -> bool:
    """Whether the database has segments of this granule (its track, cycle and segment range
    within its extent): how a file is matched to a row of the previous version's ledger when
    several files share that row's name."""
    import tiledb

    if identity.extent is None:
        return False
    lat0, lat1, lon0, lon1, day0, day1 = identity.extent
    with tiledb.open(array_uri, "r", ctx=ctx) as array:
        ids = array.query(attrs=["segment_id"]).multi_index[lat0:lat1, lon0:lon1, day0:day1]["segment_id"]
    rgt, cycle, _, segment = lidar.decode_segment_id(ids)
    return bool(np.any((rgt == identity.rgt) & (cycle == identity.cycle)
                       & (segment >= identity.first_segment) & (segment <= identity.last_segment)))


# --------------------------------------------------------------------------- readers


def _reason(path: Path, error: GranuleError) -> str:
    """The error without the file name it starts with: reports put the name (or its folder) first."""
    text = str(error)
    return text[len(path.name) + 2:] if text.startswith(f"{path.name}: ") else text


def _identify_one(path: Path, product_name: str):
    """Worker entry point: (identity, None) or (None, reason)."""
    try:
        return product(product_name).identify_granule(path), None
    except GranuleError as error:
        return None, _reason(path, error)


def _read_one(path: Path, product_name: str, reference_filters: bool, bounds):
    """Worker entry point: (columns, rows read, rows dropped per reason, None) or (None, 0, {}, reason)."""
    lidar = product(product_name)
    try:
        columns = lidar.read_granule(path, reference_filters=reference_filters)
    except GranuleError as error:
        return None, 0, {}, _reason(path, error)
    rows = len(columns["latitude"]) if columns else 0
    columns, dropped = lidar.check_segments(columns, bounds)
    return columns, rows, dropped, None


class _Readers:
    """Map granule paths through a worker function with processes or threads, results in input order."""

    def __init__(self, executor: str, workers: Optional[int]):
        self.kind = executor
        self.workers = workers or max(1, min(4, multiprocessing.cpu_count()))
        self._pool = None

    def __enter__(self):
        if self.kind == "process" and self.workers > 1:
            # spawn, not fork: the caller may be a multi-threaded application
            self._pool = concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        elif self.kind in ("thread", "process"):
            self._pool = concurrent.futures.ThreadPoolExecutor(self.workers) if self.workers > 1 else None
        else:
            raise ConfigurationError(f"unknown executor {self.kind!r}: use 'process', 'thread' or a Dask scheduler address")
        return self

    def __exit__(self, *exc):
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def map(self, function, paths: Sequence[Path], *arguments) -> Iterator:
        if self._pool is not None:
            yield from self._pool.map(function, paths, *[[a] * len(paths) for a in arguments])
        else:
            for path in paths:
                yield function(path, *arguments)


# --------------------------------------------------------------------------- writer


def _tile_keys(columns: Dict[str, np.ndarray], config: DatabaseConfig) -> np.ndarray:
    lat_deg, lon_deg = config.tile_degrees
    lat_tile = np.clip(((columns["latitude"] + 90.0) // lat_deg).astype(np.int64), 0, int(180 / lat_deg) - 1)
    lon_tile = np.clip(((columns["longitude"] + 180.0) // lon_deg).astype(np.int64), 0, int(360 / lon_deg) - 1)
    return lat_tile * 1000 + lon_tile


def _write_batch(array_uri: str, ctx, columns: Dict[str, np.ndarray], timestamp: int, config: DatabaseConfig) -> int:
    """One fragment per occupied write tile, all at ``timestamp``; returns the fragment count."""
    import tiledb

    keys = _tile_keys(columns, config)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    bounds = np.flatnonzero(np.diff(keys)) + 1
    fragments = 0
    with tiledb.open(array_uri, "w", timestamp=timestamp, ctx=ctx) as array:
        for rows in np.split(order, bounds):
            if not len(rows):
                continue
            coords = [columns[d][rows] for d in DIMENSIONS]
            attrs = {k: v[rows] for k, v in columns.items() if k not in DIMENSIONS}
            array[coords[0], coords[1], coords[2]] = attrs
            fragments += 1
    return fragments


def _write_batch_retrying(config: DatabaseConfig, ctx, batch: Dict[str, np.ndarray], stamp: int) -> Tuple[int, int]:
    """``_write_batch``, written again under a new timestamp when an object store fails for a
    passing reason: the fragments of the failed attempt (committed or not) are deleted first,
    so a retry never duplicates a segment. Returns (fragments, the timestamp that holds them)."""
    import tiledb

    for attempt in range(RETRY_ATTEMPTS):
        try:
            return _write_batch(config.array_uri, ctx, batch, stamp, config), stamp
        except tiledb.TileDBError as error:
            if attempt + 1 == RETRY_ATTEMPTS or not is_transient(error):
                raise
            time.sleep(RETRY_FIRST_DELAY_S * 2**attempt)
            retrying(lambda: tiledb.Array.delete_fragments(config.array_uri, stamp, stamp, ctx=ctx),
                     f"removing the fragments of a failed write from {config.array_uri}")
            stamp += 1
    raise AssertionError("unreachable")


def _concat(parts: List[Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def ensure_database(config: DatabaseConfig, ctx) -> Optional[str]:
    """Create the data and ledger arrays if absent (after removing them when ``overwrite``), and
    upgrade a ledger of the previous version; returns a note for the report when it did."""
    import tiledb

    kind = object_type(config.array_uri, ctx)
    if kind is not None and config.overwrite:
        tiledb.remove(config.array_uri, ctx=ctx)
        if object_type(config.ledger_uri, ctx) is not None:
            tiledb.remove(config.ledger_uri, ctx=ctx)
        kind = None
    if kind is None:
        if config.storage_type == "local":
            Path(config.base_uri).mkdir(parents=True, exist_ok=True)
        product(config.product).create_array(config.array_uri, config, ctx)
    elif kind != "array":
        raise StorageError(f"{config.array_uri} exists but is not a TileDB array")
    if object_type(config.ledger_uri, ctx) is None:
        create_ledger(config.ledger_uri, ctx)
    elif "file_name" in upgrade_ledger(config.ledger_uri, ctx):  # a ledger that only lacked product_version says nothing
        return (f"the ledger {config.ledger_uri} was written by an earlier version, which knew granules by file name: "
                "it now knows them by content; its rows are matched to files as they are met")
    return None


def ingest_granules(
    config: DatabaseConfig,
    inputs,
    progress: Optional[Progress] = None,
    workers: Optional[int] = None,
    executor: str = "process",
    scheduler: Optional[str] = None,
    reference_filters: bool = False,
    log: Callable[[str], None] = lambda message: None,
    lock_wait_s: float = DEFAULT_WAIT_S,
) -> IngestReport:
    """Ingest every granule in ``inputs`` not yet in the database; see the module docstring.

    ``lock_wait_s``: how long to wait while another ingest writes the same database."""
    import tiledb

    config.validate()  # a configuration built in code has not been through load_config's checks
    progress = progress or (lambda fraction: None)
    paths = find_granules(inputs)
    if not paths:
        raise ConfigurationError(f"no ATL08 granules (.h5 files) in {', '.join(str(i) for i in ([inputs] if isinstance(inputs, (str, Path)) else inputs))}")
    ctx = make_context(config)
    object_type(config.array_uri, ctx)  # an unreachable store fails here, within a deadline
    new_folder = config.storage_type == "local" and not Path(config.base_uri).exists()
    lock = IngestLock(config, ctx, wait_s=lock_wait_s, log=log, waiting=lambda: progress(0.0))
    try:
        lock.acquire()
        # asked under the lock: an ingest that held it may just have created the database
        existed = object_type(config.array_uri, ctx) is not None
        try:
            report = _ingest(config, ctx, lock, paths, progress, workers, executor, scheduler, reference_filters, log)
        except Exception as error:
            _remove_if_new(config, ctx, existed)
            if isinstance(error, tiledb.TileDBError):
                raise StorageError(f"writing the database {config.array_uri} failed: {error}") from None
            if isinstance(error, OSError):
                raise StorageError(f"writing the database {config.array_uri} failed: {error.strerror or error}") from None
            raise
        report.notes[:0] = [f"removed a stale ingest lock of {owner}: {reason}" for owner, reason in lock.stale_removed]
        return report
    finally:
        lock.release()
        wrote_to(config.array_uri)  # databases open in this process look again before their next query
        if new_folder:
            try:
                Path(config.base_uri).rmdir()  # only if a failed first ingest left it empty
            except OSError:
                pass


def _remove_if_new(config: DatabaseConfig, ctx, existed: bool) -> None:
    """A first ingest that failed leaves no empty database behind (a resumable one is kept)."""
    import tiledb

    if existed:
        return
    try:
        if read_ledger(config.ledger_uri, ctx):
            return  # some granules made it: the next run resumes from the ledger
    except tiledb.TileDBError:
        pass
    for uri in (config.array_uri, config.ledger_uri):
        try:
            if object_type(uri, ctx) is not None:
                tiledb.remove(uri, ctx=ctx)
        except (tiledb.TileDBError, StorageError):
            pass


IDENTIFY_SHARE = 0.1  # of the progress bar: reading every file's identity (four datasets per beam)


def _ingest(config: DatabaseConfig, ctx, lock: IngestLock, paths: List[Path], progress, workers, executor, scheduler,
            reference_filters, log) -> IngestReport:
    report = IngestReport(database_uri=config.array_uri)
    upgraded = retrying(lambda: ensure_database(config, ctx), f"creating the database {config.array_uri}")
    if upgraded:
        report.notes.append(upgraded)
        log(upgraded)
    ledger = retrying(lambda: read_ledger(config.ledger_uri, ctx), f"reading the ledger {config.ledger_uri}")
    known = {e.batch_timestamp for e in ledger.values()}
    created_ms = retrying(lambda: ledger_created_ms(config.ledger_uri, ctx), f"reading the ledger {config.ledger_uri}")
    lock.check()
    report.removed_orphan_fragments = retrying(lambda: _remove_orphans(config.array_uri, known, created_ms, ctx),
                                               f"removing unrecorded fragments from {config.array_uri}")
    if report.removed_orphan_fragments:
        log(f"removed {report.removed_orphan_fragments} unrecorded fragment batch(es) left by an interrupted run")
    damaged = retrying(lambda: _damaged_fragments(config.array_uri, ctx), f"listing the fragments of {config.array_uri}")
    if damaged:
        note = (f"{len(damaged)} fragment(s) of {config.array_uri} have NaN coordinates, written by an earlier version "
                f"from fill values ({', '.join(damaged[:3])}{', ...' if len(damaged) > 3 else ''}): no query returns "
                "their rows and size estimates leave them out")
        report.notes.append(note)
        log(note)
    names = granule_names(paths)
    last_stamp = max(known | {created_ms})  # batch stamps are always newer than the ledger
    if scheduler:
        from .distributed_ingest import ingest_on_cluster

        ingest_on_cluster(config, ctx, lock, paths, names, ledger, last_stamp, report, progress, reference_filters, log, scheduler)
    else:
        _ingest_here(config, ctx, lock, paths, names, ledger, last_stamp, report, progress, workers, executor,
                     reference_filters, log)
    if report.skipped and not (report.written or report.already_ingested or report.duplicates):
        reasons = "; ".join(f"{name}: {reason}" for name, reason in report.skipped[:3])
        more = f" (and {len(report.skipped) - 3} more)" if len(report.skipped) > 3 else ""
        raise GranuleError(f"none of the {len(report.skipped)} granules could be ingested, nothing was written: {reasons}{more}")
    progress(1.0)
    if report.fragments:
        _consolidate_fragment_metadata(config.array_uri, ctx)
    return report


def _ingest_here(config: DatabaseConfig, ctx, lock: IngestLock, paths: List[Path], names: List[str],
                 ledger: Dict[str, LedgerEntry], last_stamp: int, report: IngestReport, progress, workers, executor,
                 reference_filters, log) -> None:
    """Read in this machine's processes or threads, write from this process, batch by batch."""
    total = len(paths)
    lidar = product(config.product)
    bounds = lidar.segment_bounds(config)
    with _Readers(executor, workers) as readers:
        identities: List[Optional[GranuleIdentity]] = []
        for index, (identity, reason) in enumerate(readers.map(_identify_one, paths, lidar.name)):
            if reason is not None:
                report.skipped.append((names[index], reason))
                log(f"skipped {names[index]}: {reason}")
            identities.append(identity)
            progress(IDENTIFY_SHARE * (index + 1) / total)  # may raise Cancelled: nothing written yet
        pending, coverage = _sort_out(config, ctx, lock, paths, names, identities, ledger, report, log)
        done = 0
        for group in _by_year(config, lidar, pending):
            for start in range(0, len(group), config.flush_every):
                chunk = group[start : start + config.flush_every]
                parts, entries = [], []
                results = readers.map(_read_one, [item[0] for item in chunk], lidar.name, reference_filters, bounds)
                for (_, name, identity), result in zip(chunk, results):
                    done += 1
                    columns, entry = _accept(name, identity, result, coverage, report, log, lidar.name)
                    if columns is not None:
                        parts.append(columns)
                    if entry is not None:
                        entries.append(entry)
                    progress(IDENTIFY_SHARE + (1 - IDENTIFY_SHARE) * done / len(pending))  # may raise Cancelled
                stamp = max(int(time.time() * 1000), last_stamp + 1)
                if parts:
                    batch = _concat(parts)
                    lock.check()
                    fragments, stamp = _write_batch_retrying(config, ctx, batch, stamp)
                    report.fragments += fragments
                    report.segments += len(batch["latitude"])
                last_stamp = stamp
                entries = [replace(e, batch_timestamp=stamp) for e in entries]
                lock.check()
                retrying(lambda: _record(config.ledger_uri, ctx, entries), f"recording the ingested granules in {config.ledger_uri}")
                report.written.extend(e.file_name for e in entries)
                log(f"wrote {len(entries)} granules ({sum(e.segments for e in entries)} segments)")


def _by_year(config: DatabaseConfig, lidar: LidarProduct, pending: list) -> List[list]:
    """The (path, name, identity) to read, in the order they are written: per year when batching is annual,
    by name within it. The order decides which of two overlapping files keeps the shared segments."""

    def year_of(item) -> int:
        path, _, identity = item
        if config.temporal_batching != "annual":
            return 0
        if identity.year is not None:
            return identity.year
        date = lidar.granule_date(path)
        return date.year if date else 0

    return [list(group) for _, group in groupby(sorted(pending, key=lambda item: (year_of(item), item[1])), key=year_of)]


def _accept(name: str, identity: GranuleIdentity, result, coverage: SegmentCoverage, report: IngestReport, log,
            product_name: str):
    """What one granule read by ``_read_one`` adds: (its rows or None, its ledger entry or None). Rows stored
    already are dropped; an unreadable file or a copy adds neither, and the reason goes to ``report``."""
    columns, rows, dropped, reason = result
    if reason is not None:
        report.skipped.append((name, reason))
        log(f"skipped {name}: {reason}")
        return None, None
    columns, dropped, copy_of = _drop_stored(columns, dropped, coverage, name, report, log)
    if copy_of:
        report.duplicates.append((name, f"holds only segments stored from {copy_of}, read in this run "
                                        "(an edited copy, a subset or another version of it?)"))
        log(f"skipped {name}: {report.duplicates[-1][1]}")
        return None, None
    if dropped:
        report.dropped.append(DroppedRows(name, rows, dropped, product_name))
        log(str(report.dropped[-1]))
    if identity.missing:
        report.missing_variables.append(MissingVariables(name, identity.missing, identity.version))
        log(str(report.missing_variables[-1]))
    coverage.add(identity.rgt, identity.cycle, identity.ranges, name)
    count = len(columns["latitude"]) if columns else 0
    entry = LedgerEntry(identity.key, 0, count, name, identity.product_id, ranges_text(identity.ranges), identity.version)
    return (columns if count else None), entry


def _drop_stored(columns, dropped: Dict[str, int], coverage: SegmentCoverage, name: str, report: IngestReport, log):
    """Drop the rows whose segments are stored already (from the database or an earlier file of this
    run). Returns (columns, dropped, the files it merely copies, or "" when it adds segments)."""
    if not columns:
        return columns, dropped, ""
    stored, owners = coverage.stored(columns["segment_id"])
    count = int(stored.sum())
    if not count:
        return columns, dropped, ""
    if count == len(stored):
        return {}, dropped, ", ".join(owners)
    note = (f"{name} shares {count} segments with {', '.join(owners)} (an edited copy, a subset or another version?): "
            "they are kept as stored from there")
    report.notes.append(note)
    log(note)
    return {key: values[~stored] for key, values in columns.items()}, {**dropped, ALREADY_STORED: count}, ""


def _sort_out(config: DatabaseConfig, ctx, lock: IngestLock, paths, names, identities, ledger: Dict[str, LedgerEntry],
              report: IngestReport, log):
    """The (path, name, identity) of the files to read: not in the database, and not a copy of a
    file met earlier in this run; and the segments stored so far. The others go to the report,
    copies with the file they copy."""
    lidar = product(config.product)
    coverage = SegmentCoverage.from_ledger(ledger.values(), lidar.decode_segment_id)
    seen: Dict[str, str] = {}
    unknown = []
    for path, name, identity in zip(paths, names, identities):
        if identity is None:
            continue
        entry = ledger.get(identity.key)
        holders = coverage.covering(identity.rgt, identity.cycle, identity.ranges)
        if entry is not None:
            if not entry.file_name or Path(entry.file_name).name == path.name:
                report.already_ingested.append(name)
                continue
            duplicate = f"same granule as {entry.file_name}, already in the database"
        elif identity.key in seen:
            duplicate = f"same granule as {seen[identity.key]}, read in this run"
        elif holders:
            duplicate = (f"holds only segments already stored from {', '.join(holders)} "
                         "(an edited copy, a subset or another version of it?)")
        else:
            seen[identity.key] = name
            unknown.append((path, name, identity))
            continue
        report.duplicates.append((name, duplicate))
        log(f"skipped {name}: {duplicate}")
    legacy = {key: entry for key, entry in ledger.items() if entry.legacy}
    if legacy:
        unknown = _match_legacy_rows(config, ctx, lock, unknown, legacy, report, coverage)
    return unknown, coverage


def _match_legacy_rows(config: DatabaseConfig, ctx, lock: IngestLock, unknown: list, legacy: Dict[str, LedgerEntry],
                       report: IngestReport, coverage: SegmentCoverage) -> list:
    """Files named in the previous version's ledger (keyed on file names) are in the database.
    Their rows are re-keyed to the files' identities. Where several files share such a name
    (which that version could not tell apart), each is looked up in the data instead."""
    by_name: Dict[str, list] = {}
    for item in unknown:
        by_name.setdefault(item[0].name, []).append(item)
    lidar = product(config.product)
    held = set()
    for file_name, items in by_name.items():
        row = legacy.get(file_name)
        if row is None:
            continue
        if len(items) == 1:
            present = items
        else:
            present = [item for item in items
                       if retrying(lambda identity=item[2]: _holds(config.array_uri, ctx, identity, lidar),
                                   f"looking up {item[1]} in {config.array_uri}")]
        lock.check()
        for index, (path, name, identity) in enumerate(present):
            entry = LedgerEntry(identity.key, row.batch_timestamp, row.segments if index == 0 else 0, name, identity.product_id,
                                ranges_text(identity.ranges), identity.version)
            coverage.add(identity.rgt, identity.cycle, identity.ranges, name)
            if index == 0:
                retrying(lambda: claim(config.ledger_uri, ctx, row, entry), f"updating the ledger {config.ledger_uri}")
            else:
                retrying(lambda: _record(config.ledger_uri, ctx, [entry]), f"updating the ledger {config.ledger_uri}")
            report.already_ingested.append(name)
            held.add(id(path))
    return [item for item in unknown if id(item[0]) not in held]


def _consolidate_fragment_metadata(uri: str, ctx) -> None:
    """One file with every fragment's metadata, so opening the array is one read instead of one per
    fragment (on S3, 235 ms became 68 ms for 55 fragments). Fragments themselves are not merged:
    the ledger's resume logic works per fragment."""
    import tiledb

    for step, mode in ((tiledb.consolidate, "sm.consolidation.mode"), (tiledb.vacuum, "sm.vacuum.mode")):
        config = tiledb.Config(dict(ctx.config().items()))
        config[mode] = "fragment_meta"
        step(uri, ctx=tiledb.Ctx(config))


# --------------------------------------------------------------------------- command line


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m canopy_explorer.plugin.core.lidar.ingest",
        description="Ingest ATL08 HDF5 granules into a TileDB database in the public ATL08 v7 layout.",
    )
    parser.add_argument("config", type=Path, help="database configuration (YAML)")
    parser.add_argument("inputs", nargs="+", type=Path, help="ATL08 .h5 files or folders")
    parser.add_argument("--workers", type=int, default=None, help="parallel granule readers (default: up to 4)")
    parser.add_argument("--executor", choices=("process", "thread"), default="process")
    parser.add_argument("--scheduler", help="Dask distributed scheduler address (tcp://host:8786)")
    parser.add_argument("--reference-filters", action="store_true", help="drop segments without canopy height, urban and water, as icesat2db's ingest does")
    parser.add_argument("--lock-wait", type=float, default=DEFAULT_WAIT_S, metavar="SECONDS",
                        help=f"how long to wait while another ingest writes the same database (default {DEFAULT_WAIT_S:.0f})")
    args = parser.parse_args(argv)

    def bar(fraction: float) -> None:
        width = 40
        filled = int(fraction * width)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:5.1f}%")
        sys.stderr.flush()

    def note(message: str) -> None:
        sys.stderr.write(f"\r{message}\n")
        sys.stderr.flush()

    try:
        config = load_config(args.config)
        report = ingest_granules(
            config, args.inputs, progress=bar, workers=args.workers, executor=args.executor,
            scheduler=args.scheduler, reference_filters=args.reference_filters, log=note, lock_wait_s=args.lock_wait,
        )
    except CanopyExplorerError as error:
        sys.stderr.write(f"\nerror: {error}\n")
        return 2
    sys.stderr.write("\n")
    print(f"{report.database_uri}: {report.summary()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
