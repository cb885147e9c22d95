"""Build a database in the public ATL08 layout from ATL08 granules (local disk or S3).

Granules are read in parallel (local processes, threads, or a Dask cluster) and
written by one writer, per annual batch and per 30 x 30 degree write tile,
flushing every ``flush_every`` granules so memory stays bounded.

Every flush is written at its own TileDB timestamp and recorded afterwards in a
small ledger array beside the data (``ingest_ledger``: granule name -> batch
timestamp, segment count). A run killed between the two leaves fragments whose
timestamp the ledger does not know; the next run deletes them before writing,
so resuming never duplicates or loses segments, and re-running on the same
folder writes nothing.
"""

import argparse
import concurrent.futures
import multiprocessing
import sys
import time
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .config import DatabaseConfig, load_config
from .errors import Cancelled, ConfigurationError, GranuleError, StorageError
from .granule import granule_date, read_granule
from .schema import DIMENSIONS, TIME_DOMAIN, create_array
from .storage import RETRY_ATTEMPTS, RETRY_FIRST_DELAY_S, is_transient, make_context, object_type, retrying

Progress = Callable[[float], None]


@dataclass
class IngestReport:
    database_uri: str
    written: List[str] = field(default_factory=list)
    already_ingested: List[str] = field(default_factory=list)
    skipped: List[Tuple[str, str]] = field(default_factory=list)  # (granule, reason)
    segments: int = 0
    fragments: int = 0
    removed_orphan_fragments: int = 0

    def summary(self) -> str:
        text = (
            f"{len(self.written)} granules written ({self.segments} segments, {self.fragments} fragments), "
            f"{len(self.already_ingested)} already in the database, {len(self.skipped)} skipped"
        )
        for name, reason in self.skipped:
            text += f"\n  skipped {name}: {reason}"
        return text


def find_granules(inputs: Iterable) -> List[Path]:
    """ATL08 files from folders (searched recursively for *.h5) and explicit paths."""
    found = []
    for item in [inputs] if isinstance(inputs, (str, Path)) else inputs:
        path = Path(item)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.h5") if p.is_file()))
        elif path.exists():
            found.append(path)
        else:
            raise ConfigurationError(f"input {path} does not exist")
    unique = {p.name: p for p in found}  # the file name identifies a granule
    return [unique[name] for name in sorted(unique)]


# --------------------------------------------------------------------------- ledger


def _create_ledger(uri: str, ctx) -> None:
    import tiledb

    schema = tiledb.ArraySchema(
        domain=tiledb.Domain(tiledb.Dim("granule", dtype="ascii")),
        attrs=[tiledb.Attr("batch_timestamp", dtype=np.int64), tiledb.Attr("segments", dtype=np.int64)],
        sparse=True,
        allows_duplicates=False,
    )
    tiledb.Array.create(uri, schema, ctx=ctx)
    with tiledb.open(uri, "w", ctx=ctx) as ledger:
        # Fragments older than the ledger came from elsewhere (another tool, an earlier
        # copy): they are never mistaken for the leftovers of an interrupted run.
        ledger.meta["created_ms"] = int(time.time() * 1000)


def ledger_created_ms(uri: str, ctx) -> int:
    import tiledb

    with tiledb.open(uri, "r", ctx=ctx) as ledger:
        return int(ledger.meta.get("created_ms", 0))


def read_ledger(uri: str, ctx) -> Dict[str, Tuple[int, int]]:
    """granule name -> (batch timestamp, segment count)."""
    import tiledb

    with tiledb.open(uri, "r", ctx=ctx) as ledger:
        rows = ledger[:]
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in rows["granule"]]
    return {n: (int(t), int(s)) for n, t, s in zip(names, rows["batch_timestamp"], rows["segments"])}


def _record(uri: str, ctx, entries: Sequence[Tuple[str, int, int]]) -> None:
    import tiledb

    if not entries:
        return
    names = np.array([e[0] for e in entries], dtype=object)
    with tiledb.open(uri, "w", ctx=ctx) as ledger:
        ledger[names] = {
            "batch_timestamp": np.array([e[1] for e in entries], dtype=np.int64),
            "segments": np.array([e[2] for e in entries], dtype=np.int64),
        }


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


# --------------------------------------------------------------------------- readers


def _read_one(path: Path, reference_filters: bool):
    """Worker entry point: (name, columns, None) or (name, None, reason)."""
    try:
        return path.name, read_granule(path, reference_filters=reference_filters), None
    except GranuleError as error:
        return path.name, None, str(error)


class _Readers:
    """Map granule paths to columns with processes, threads or Dask, results in input order."""

    def __init__(self, executor: str, workers: Optional[int], scheduler: Optional[str]):
        self.kind = "dask" if scheduler else executor
        self.workers = workers or max(1, min(4, multiprocessing.cpu_count()))
        self.scheduler = scheduler
        self._pool = None
        self._client = None

    def __enter__(self):
        if self.kind == "dask":
            try:
                from dask.distributed import Client
            except ImportError:
                raise ConfigurationError("a Dask scheduler was given but dask.distributed is not installed (pip install distributed)") from None
            self._client = Client(self.scheduler)
        elif self.kind == "process" and self.workers > 1:
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
        if self._client is not None:
            self._client.close()

    def map(self, paths: Sequence[Path], reference_filters: bool) -> Iterator:
        if self._client is not None:
            futures = self._client.map(_read_one, list(paths), reference_filters=reference_filters, pure=False)
            for future in futures:
                yield future.result()
        elif self._pool is not None:
            yield from self._pool.map(_read_one, paths, [reference_filters] * len(paths))
        else:
            for path in paths:
                yield _read_one(path, reference_filters)


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


def ensure_database(config: DatabaseConfig, ctx) -> None:
    """Create the data and ledger arrays if absent (after removing them when ``overwrite``)."""
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
        create_array(config.array_uri, config, ctx)
    elif kind != "array":
        raise StorageError(f"{config.array_uri} exists but is not a TileDB array")
    if object_type(config.ledger_uri, ctx) is None:
        _create_ledger(config.ledger_uri, ctx)


def ingest_granules(
    config: DatabaseConfig,
    inputs,
    progress: Optional[Progress] = None,
    workers: Optional[int] = None,
    executor: str = "process",
    scheduler: Optional[str] = None,
    reference_filters: bool = False,
    log: Callable[[str], None] = lambda message: None,
) -> IngestReport:
    """Ingest every granule in ``inputs`` not yet in the database; see the module docstring."""
    import tiledb

    progress = progress or (lambda fraction: None)
    paths = find_granules(inputs)
    if not paths:
        raise ConfigurationError(f"no ATL08 granules (.h5 files) in {', '.join(str(i) for i in ([inputs] if isinstance(inputs, (str, Path)) else inputs))}")
    ctx = make_context(config)
    existed = object_type(config.array_uri, ctx) is not None
    try:
        return _ingest(config, ctx, paths, progress, workers, executor, scheduler, reference_filters, log)
    except StorageError:
        _remove_if_new(config, ctx, existed)
        raise
    except tiledb.TileDBError as error:
        _remove_if_new(config, ctx, existed)
        raise StorageError(f"writing the database {config.array_uri} failed: {error}") from None
    except OSError as error:
        _remove_if_new(config, ctx, existed)
        raise StorageError(f"writing the database {config.array_uri} failed: {error.strerror or error}") from None


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
        except tiledb.TileDBError:
            pass
    if config.storage_type == "local":
        try:
            Path(config.base_uri).rmdir()  # only if empty
        except OSError:
            pass


def _ingest(config: DatabaseConfig, ctx, paths: List[Path], progress, workers, executor, scheduler, reference_filters,
            log) -> IngestReport:
    retrying(lambda: ensure_database(config, ctx), f"creating the database {config.array_uri}")
    report = IngestReport(database_uri=config.array_uri)
    ledger = retrying(lambda: read_ledger(config.ledger_uri, ctx), f"reading the ledger {config.ledger_uri}")
    known = {t for t, _ in ledger.values()}
    created_ms = retrying(lambda: ledger_created_ms(config.ledger_uri, ctx), f"reading the ledger {config.ledger_uri}")
    report.removed_orphan_fragments = retrying(lambda: _remove_orphans(config.array_uri, known, created_ms, ctx),
                                               f"removing unrecorded fragments from {config.array_uri}")
    if report.removed_orphan_fragments:
        log(f"removed {report.removed_orphan_fragments} unrecorded fragment batch(es) left by an interrupted run")
    pending = []
    for path in paths:
        if path.name in ledger:
            report.already_ingested.append(path.name)
        else:
            pending.append(path)
    total = len(paths)
    done = len(report.already_ingested)
    progress(done / total if total else 1.0)

    def year_of(path: Path):
        date = granule_date(path)
        return date.year if (date and config.temporal_batching == "annual") else 0

    last_stamp = max(known | {created_ms})  # batch stamps are always newer than the ledger
    day_min, day_max = TIME_DOMAIN
    with _Readers(executor, workers, scheduler) as readers:
        for _, group in groupby(sorted(pending, key=lambda p: (year_of(p), p.name)), key=year_of):
            group = list(group)
            for start in range(0, len(group), config.flush_every):
                chunk = group[start : start + config.flush_every]
                parts, entries = [], []
                for name, columns, reason in readers.map(chunk, reference_filters):
                    done += 1
                    if reason is None and columns and ((columns["time"] < day_min) | (columns["time"] > day_max)).any():
                        reason = f"acquisition time outside the database time domain (days {day_min}..{day_max})"
                    if reason is not None:
                        report.skipped.append((name, reason))
                        log(f"skipped {name}: {reason}")
                    else:
                        count = len(columns["latitude"]) if columns else 0
                        if count:
                            parts.append(columns)
                        entries.append((name, count))
                    progress(done / total)  # may raise Cancelled: nothing of this chunk is written yet
                stamp = max(int(time.time() * 1000), last_stamp + 1)
                if parts:
                    batch = _concat(parts)
                    fragments, stamp = _write_batch_retrying(config, ctx, batch, stamp)
                    report.fragments += fragments
                    report.segments += len(batch["latitude"])
                last_stamp = stamp
                retrying(lambda: _record(config.ledger_uri, ctx, [(name, stamp, count) for name, count in entries]),
                         f"recording the ingested granules in {config.ledger_uri}")
                report.written.extend(name for name, _ in entries)
                log(f"wrote {len(entries)} granules ({sum(c for _, c in entries)} segments)")
    if report.fragments:
        _consolidate_fragment_metadata(config.array_uri, ctx)
    return report


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
        prog="python -m canopy_explorer.plugin.core.ingest",
        description="Ingest ATL08 HDF5 granules into a TileDB database in the public ATL08 v7 layout.",
    )
    parser.add_argument("config", type=Path, help="database configuration (YAML)")
    parser.add_argument("inputs", nargs="+", type=Path, help="ATL08 .h5 files or folders")
    parser.add_argument("--workers", type=int, default=None, help="parallel granule readers (default: up to 4)")
    parser.add_argument("--executor", choices=("process", "thread"), default="process")
    parser.add_argument("--scheduler", help="Dask distributed scheduler address (tcp://host:8786)")
    parser.add_argument("--reference-filters", action="store_true", help="drop segments without canopy height, as the reference package does")
    args = parser.parse_args(argv)

    def bar(fraction: float) -> None:
        width = 40
        filled = int(fraction * width)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:5.1f}%")
        sys.stderr.flush()

    try:
        config = load_config(args.config)
        report = ingest_granules(
            config, args.inputs, progress=bar, workers=args.workers, executor=args.executor,
            scheduler=args.scheduler, reference_filters=args.reference_filters,
        )
    except (ConfigurationError, StorageError, Cancelled) as error:
        sys.stderr.write(f"\nerror: {error}\n")
        return 2
    sys.stderr.write("\n")
    print(f"{report.database_uri}: {report.summary()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
