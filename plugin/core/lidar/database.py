"""Read an ATL08 database (the public one on S3, or one built by ``ingest``).

    database = Atl08Database(load_config("configs/public_atl08_v007.yaml"))
    frame = database.query(spec)                  # pandas DataFrame
    for batch in database.iter_batches(spec, rows=500_000): ...
    database.estimate(spec)                       # rows and bytes, before loading
    database.nearest(NearestRequest.create((13.4, 52.5), num_shots=50, radius_m=500))

Open arrays are kept and shared by the threads that query (each query takes one for itself and
gives it back), and reopened when fragments have landed since: a query never answers from a view
older than ``freshness_s`` (10 s on S3; on local disk every query checks), and never older than
an ingest this process has finished.
"""

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

from ..callbacks import Progress
from ..errors import QueryError, StorageError
from .config import DIMENSIONS, DatabaseConfig
from .filters import Comparison, Filter, attributes, combine, evaluate, to_condition
from .products import product
from .query import NS_PER_DAY, NearestRequest, SegmentQuery
from .storage import (RETRY_ATTEMPTS, RETRY_FIRST_DELAY_S, is_transient, make_context, object_type, retrying,
                      within_deadline)
from .write_notices import writes_to

MEMORY_CHECK_MIN_AREA_DEG2 = 4.0  # queries over smaller boxes skip the memory check
FRAME_MEMORY_FACTOR = 2  # TileDB's result buffers and the DataFrame built from them
# TileDB's estimates of large results were within 2 % of them here (of tiny ones, a seventh): a read estimated
# below a quarter of its memory limit is read in one piece, others in batches checked as they arrive
ESTIMATE_MARGIN = 4
BATCH_CELLS = 262_144  # the batch size of the dialog's and Processing's reads
BATCH_MEMORY_FLOOR = 64 * 2**20  # TileDB's memory budget for a batched read...
BATCH_MEMORY_CEILING = 8 * 2**30  # ...and how far it may grow for arrays with many tiles
EXACT_COUNT_LIMIT = 2_000_000  # cells whose coordinates a count may read to test them against a polygon (about 0.1 s locally)
# How old the view of a database on S3 may be when a query is answered. Listing the commits to
# see whether fragments landed is one round trip (tens of ms across Europe, 100-200 ms from other
# continents) on a query that is otherwise answered from TileDB's cache; ingests take minutes,
# so a view a few seconds old is one no user can tell from the newest.
REMOTE_FRESHNESS_S = 10.0
NARROW_IT = ("narrow the region, time range or filters, write it to a file (the dialog and Processing stream it), read it "
             "with iter_batches, or map it on a grid (grid_change)")


@dataclass(frozen=True)
class SegmentCount:
    count: int
    exact: bool  # False: the count of the region's bounding boxes (too many cells to check each one)


@dataclass(frozen=True)
class Estimate:
    rows: int
    bytes: int
    damaged_fragments: Tuple[str, ...] = ()  # fragments left out: their extent is not finite (see damaged_fragments)


@dataclass(frozen=True)
class _Listing:
    """The array's commit files at one moment: which fragments it held."""

    commits: Optional[tuple]  # None: the array has no commit folder (always reopened)
    taken_at: float  # time.monotonic() when the listing started
    writes: int  # ingests this process had finished into the array when the listing started


class Atl08Database:
    def __init__(self, config: DatabaseConfig, probe_timeout_s: float = 20.0, freshness_s: Optional[float] = None):
        self.config = config
        self.product = product(config.product)
        self.uri = config.array_uri
        self.ctx = make_context(config, reading=True)  # opens the arrays; their queries run on _context()
        self._remote = "://" in self.uri and not self.uri.startswith("file://")
        # on local disk a listing costs a fraction of a millisecond: every query checks
        self.freshness_s = (REMOTE_FRESHNESS_S if self._remote else 0.0) if freshness_s is None else freshness_s
        self._lock = threading.Lock()
        self._free: List[Tuple[object, _Listing]] = []  # open arrays not in use, with the listing each holds
        # queries' contexts: (memory budget, result buffer bytes) of batched reads, or None for the others
        self._contexts: Dict[Optional[tuple], object] = {None: make_context(config, querying=True)}
        self._listing: Optional[_Listing] = None  # the newest listing taken
        self._refreshing: Optional[Future] = None
        self._lister: Optional[ThreadPoolExecutor] = None
        self._extents = None  # (commit listing, fragment extents) of the last estimate
        self._preparing: Optional[Future] = None  # see prepare()
        array, listing = self._open_first(probe_timeout_s)
        self._listing = listing
        self._free = [(array, listing)]
        schema = array.schema
        dims = tuple(schema.domain.dim(i).name for i in range(schema.domain.ndim))
        self.attribute_names = {schema.attr(i).name for i in range(schema.nattr)}
        required = self.product.required_attributes
        missing = [a for a in required if a not in self.attribute_names]
        if dims != DIMENSIONS or missing or not schema.sparse:
            raise StorageError(
                f"{self.uri} is not an {self.product.title} database: expected a sparse array with dimensions "
                f"{', '.join(DIMENSIONS)} and attributes {', '.join(required)}"
            )
        self.attribute_dtypes = {schema.attr(i).name: schema.attr(i).dtype for i in range(schema.nattr)}
        self.has_timestamp_ns = "timestamp_ns" in self.attribute_names
        self._time_domain = schema.domain.dim("time").domain

    def _open_first(self, timeout_s: float):
        """List the commits and open the array straight away, within a deadline (no separate probe
        first: on S3 each is a round trip); when that fails, a probe says why (nothing there, a group,
        unreachable). The listing comes first, so the array holds at least what it lists."""
        import tiledb

        def opening():
            listing = self._list()
            return retrying(lambda: tiledb.open(self.uri, mode="r", ctx=self.ctx), f"opening {self.uri}"), listing

        try:
            return within_deadline(opening, self.uri, timeout_s)
        except StorageError as error:
            try:
                kind = object_type(self.uri, self.ctx, timeout_s)
            except StorageError as unreachable:
                error = unreachable
            else:
                if kind is None:
                    raise StorageError(f"no {self.product.title} database at {self.uri} (folder or bucket missing, or "
                                       "nothing ingested yet)") from None
                if kind != "array":
                    raise StorageError(f"{self.uri} is a TileDB {kind}, not an {self.product.title} database array") from None
            if self._remote and self.config.url and self.config.url not in str(error):
                raise StorageError(f"{error} (S3 endpoint {self.config.url})") from None
            raise error

    # ------------------------------------------------------------------ handles

    def _list(self) -> _Listing:
        """What fragments the array holds now: its commit files (one listing, no fragment reads)."""
        import tiledb

        taken_at, writes = time.monotonic(), writes_to(self.uri)
        try:
            commits = tuple(sorted(tiledb.VFS(ctx=self.ctx).ls(f"{self.uri}/__commits")))
        except tiledb.TileDBError:
            commits = None
        return _Listing(commits, taken_at, writes)

    def _young(self, listing: Optional[_Listing]) -> bool:
        """Whether ``listing`` may still answer: recent enough, and no ingest of this process since."""
        return (listing is not None and listing.commits is not None and listing.writes == writes_to(self.uri)
                and time.monotonic() - listing.taken_at < self.freshness_s)

    def _current_listing(self) -> _Listing:
        """A listing no older than the freshness: the last one, or a new one. A listing past half its
        age is renewed in the background, so that a user querying every few seconds rarely waits for one."""
        listing = self._listing
        if self._young(listing):
            if time.monotonic() - listing.taken_at > self.freshness_s / 2:
                self._renew_in_background()
            return listing
        return self._adopt(self._list())

    def _adopt(self, listing: _Listing) -> _Listing:
        with self._lock:
            if self._listing is None or listing.taken_at >= self._listing.taken_at:
                self._listing = listing
        return listing

    def _renew_in_background(self) -> Future:
        with self._lock:
            if self._refreshing is None or self._refreshing.done():
                if self._lister is None:
                    self._lister = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tiledb-commits")
                self._refreshing = self._lister.submit(lambda: self._adopt(self._list()))
            return self._refreshing

    @contextmanager
    def _handle(self, listing: Optional[_Listing] = None, budget: Optional[Tuple[int, int]] = None):
        """An open array for one query, holding at least what ``listing`` (by default a current
        one) lists, with the query's context (``_context(budget)``) as its ``ctx``: a query runs on
        the context tiledb-py creates it with, that one (see QUERY_COMPUTE_THREADS). Arrays are
        reused across queries and threads, one thread at a time: reopening reads every fragment's
        metadata again (a request per fragment on S3), so it happens only when the listing changed;
        opening a new one only when every kept one is in use."""
        import tiledb

        listing = listing or self._current_listing()
        with self._lock:
            array, held = self._free.pop() if self._free else (None, None)
        if array is None or not array.isopen:
            array = retrying(lambda: tiledb.open(self.uri, mode="r", ctx=self.ctx), f"opening {self.uri}")
            held = listing
        elif listing.commits is None or (listing.commits != held.commits and listing.taken_at > held.taken_at):
            retrying(array.reopen, f"reopening {self.uri}")  # on the context it was opened with
            held = listing
        array.ctx = self._context(budget)
        try:
            yield array
        finally:
            array.ctx = self.ctx
            with self._lock:
                self._free.append((array, held))

    def prepare(self) -> Future:
        """Load in the background what estimates need, if not loaded yet: the fragments' extents
        (every fragment's footer again: a HEAD and a ranged GET per fragment on S3). The dialog
        starts it as soon as a database is chosen (see ``connection_summary``) rather than on its
        first estimate's wait (``write_query_output`` estimates before it reads). Queries do not need it."""
        if self._preparing is not None:
            return self._preparing
        listing = self._current_listing()
        with self._lock:
            if self._preparing is None:
                self._preparing = Future()
                threading.Thread(target=self._prepare, args=(listing,), name="tiledb-prepare", daemon=True).start()
            return self._preparing

    def _prepare(self, listing: _Listing) -> None:
        # A failure here is not reported: the first estimate does the same again and says what fails.
        with suppress(Exception):
            self._fragment_extents(listing)
        self._preparing.set_result(None)

    def _prepared_if_asked(self) -> None:
        """Wait for what ``prepare`` is loading, if it was asked for: rather than load it twice."""
        if self._preparing is not None:
            self._preparing.result()

    def _context(self, budget: Optional[Tuple[int, int]]):
        """The context of queries, or for batched reads one with a bounded memory budget (TileDB's
        default is 10 GB, which a large query would use) and result buffers of a batch: ``budget``
        is (memory budget, buffer bytes). Both are the query's own settings, not the array's."""
        import tiledb

        with self._lock:
            if budget not in self._contexts:
                config = dict(self._contexts[None].config().items())
                config["sm.mem.total_budget"], config["py.init_buffer_bytes"] = str(budget[0]), str(budget[1])
                self._contexts[budget] = tiledb.Ctx(tiledb.Config(config))
            return self._contexts[budget]

    def close(self) -> None:
        with self._lock:
            handles = [array for array, _ in self._free]
            self._free.clear()
        for array in handles:
            if array.isopen:
                array.close()
        if self._lister is not None:
            self._lister.shutdown(wait=False)
            self._lister = None

    # ------------------------------------------------------------------ metadata

    def time_span(self) -> Tuple[np.datetime64, np.datetime64]:
        """First and last acquisition day present in the data."""
        with self._handle() as array:
            domain = array.nonempty_domain()
        if domain is None:
            raise StorageError(f"{self.uri} holds no segments yet")
        first, last = domain[2]
        day = np.datetime64("1970-01-01", "D")
        return day + int(first), day + int(last)

    def metadata(self, key: str, default=None):
        with self._handle() as array:
            return array.meta[key] if key in array.meta else default

    # ------------------------------------------------------------------ reading

    def _filter(self, spec: SegmentQuery) -> Optional[Filter]:
        """The rows' filter: the user's, and sub-day time bounds (validated attribute names)."""
        node: Optional[Filter] = spec.filter
        if spec.sub_day and self.has_timestamp_ns:
            bounds: List[Filter] = []
            if spec.start_ns > np.iinfo(np.int64).min:
                bounds.append(Comparison("timestamp_ns", ">=", spec.start_ns))
            if spec.end_ns < np.iinfo(np.int64).max:
                bounds.append(Comparison("timestamp_ns", "<=", spec.end_ns))
            node = combine([node] + bounds)
        if node is None:
            return None
        unknown = [a for a in attributes(node) if a not in self.attribute_names]
        if unknown:
            raise QueryError(f"this database has no attribute {unknown[0]!r} to filter on")
        return node

    def _attributes(self, spec: SegmentQuery) -> List[str]:
        # beam_id is not read: the product decodes the beam from segment_id, which costs nothing,
        # while the variable-length strings cost as much to read as a float column.
        if spec.product != self.product.name:
            raise QueryError(f"the query asks for {spec.product} variables, but {self.uri} holds {self.product.title} segments")
        wanted = ["segment_id"] + [c.attribute for c in spec.columns]
        if self._reads_instants(spec):
            wanted.append("timestamp_ns")
        wanted += attributes(self._filter(spec))  # filtered here, see _raw_batches
        missing = [a for a in wanted if a not in self.attribute_names]
        if missing:
            raise QueryError(f"this database has no attribute {missing[0]!r}")
        return list(dict.fromkeys(wanted))

    def _reads_instants(self, spec: SegmentQuery) -> bool:
        # timestamp_ns costs about 2.7 compressed bytes per segment against 0.01 for the
        # day dimension (the largest column after the coordinates), so it is read only
        # when the caller wants acquisition instants rather than days.
        return spec.exact_times and self.has_timestamp_ns

    def _raw_batches(self, spec: SegmentQuery, batch_rows: Optional[int] = None, listing: Optional[_Listing] = None,
                     limit: Optional[int] = None) -> Iterator[Dict[str, np.ndarray]]:
        """Raw TileDB results per subarray, or in batches of about ``batch_rows`` with bounded memory,
        from a view holding at least what ``listing`` (by default a current one) lists, filtered.
        ``limit``: each subarray's result as TileDB estimates it is checked against ``limit`` first;
        one estimated far below it is read in one piece, others in TileDB's own batches (its result
        buffers' size), so that a caller can stop between them (see ``_bounded_read``).

        Filters are applied here (``filters.evaluate``, TileDB's semantics), not as TileDB query
        conditions: tiledb-py (0.34-0.36) opens the array again for every query with a condition, to
        read its schema (``QueryCondition.init_query_condition``), which on S3 loads every fragment's
        footer again: a warm filtered query of the latency benchmark's database took 1.7 s and 199
        requests at 50 ms per request, against 0.2 s and 18 unfiltered. TileDB reads about the same
        tiles either way (a condition's attributes for every cell in the boxes)."""
        listing = listing or self._current_listing()
        domain_first, domain_last = self._time_domain
        first_day, last_day = max(spec.day_range[0], int(domain_first)), min(spec.day_range[1], int(domain_last))
        if last_day < first_day:
            return
        node = self._filter(spec)
        attrs = self._attributes(spec)
        # with timestamp_ns the day dimension adds nothing to the output: read only the coordinates
        dims = ["latitude", "longitude"] if "timestamp_ns" in attrs else list(DIMENSIONS)
        for lon_min, lat_min, lon_max, lat_max in spec.parts:
            ranges = (slice(lat_min, lat_max), slice(lon_min, lon_max), slice(first_day, last_day))
            if batch_rows is not None or limit is not None:
                reads = self._bounded_read(ranges, attrs, dims, batch_rows, listing, limit)
            else:
                with self._handle(listing) as array:
                    reads = [retrying(lambda: array.query(attrs=attrs, dims=dims).multi_index[ranges], f"reading {self.uri}")]
            for raw in reads:
                yield _passing(raw, node)

    def _bounded_read(self, ranges, attrs, dims, batch_rows: Optional[int],
                      listing: _Listing, limit: Optional[int] = None) -> Iterator[Dict[str, np.ndarray]]:
        """One subarray in incomplete batches: result buffers of ``batch_rows`` cells and a bounded
        TileDB memory budget (its default is 10 GB, which a large query would use); with ``batch_rows``
        None, the queries' context and TileDB's own batch size. Passing failures are retried
        until the first batch is handed out. ``limit``: TileDB's estimate of the result (from the
        fragments' index, which the read loads anyway: no extra request) is checked against it
        before any data tile is read; a result estimated far below it is read in one piece.

        The budget starts at ``BATCH_MEMORY_FLOOR``; some arrays need more just for their tile
        offsets, which TileDB reports before returning any row, so the budget then grows, up to
        ``BATCH_MEMORY_CEILING``.
        """
        import tiledb

        budget, buffer_bytes = _batch_budget(batch_rows) if batch_rows is not None else (None, None)
        failures = 0
        while True:
            started = False
            try:
                with self._handle(listing, budget=(budget, buffer_bytes) if budget else None) as array:
                    batches = array.query(attrs=attrs, dims=dims, return_incomplete=True).multi_index[ranges]
                    if limit is not None and _checked_estimate(batches, limit) * ESTIMATE_MARGIN <= limit:
                        # Far below the limit: one complete read, as a bare TileDB read is (its metadata is
                        # loaded by the estimate already), rather than TileDB's batches
                        batches = [array.query(attrs=attrs, dims=dims).multi_index[ranges]]
                    for batch in batches:
                        started = True
                        yield batch
                return
            except StorageError:
                raise
            except tiledb.TileDBError as error:
                if started:  # batches already handed out cannot be taken back: say so rather than repeat them
                    raise StorageError(f"reading {self.uri} was interrupted after some batches: {error}") from None
                if budget and "budget" in str(error) and budget < BATCH_MEMORY_CEILING:
                    budget *= 4
                    continue
                failures += 1
                if is_transient(error) and failures < RETRY_ATTEMPTS:
                    time.sleep(RETRY_FIRST_DELAY_S * 2 ** (failures - 1))
                    continue
                attempts = f" (after {failures} attempts)" if failures > 1 else ""
                raise StorageError(f"reading {self.uri} failed{attempts}: {error}") from None

    def _to_frame(self, spec: SegmentQuery, raw: Dict[str, np.ndarray]):
        import pandas as pd

        keep = None
        if spec.polygon is not None and len(raw["latitude"]):
            import shapely

            shapely.prepare(spec.polygon)
            keep = shapely.intersects_xy(spec.polygon, raw["longitude"], raw["latitude"])
        pick = (lambda a: a[keep]) if keep is not None else (lambda a: a)
        if "timestamp_ns" in raw:
            nanoseconds = pick(raw["timestamp_ns"]).astype(np.int64, copy=False).view("datetime64[ns]")
        else:
            nanoseconds = (pick(raw["time"]).astype(np.int64) * NS_PER_DAY).view("datetime64[ns]")
        segment_id = pick(raw["segment_id"])
        data = {
            "latitude": pick(raw["latitude"]),
            "longitude": pick(raw["longitude"]),
            "time": pd.DatetimeIndex(nanoseconds).tz_localize("UTC"),
            "segment_id": segment_id,
            "beam_id": self.product.beam_names(segment_id),
        }
        for column in spec.columns:
            data[column.name] = pick(raw[column.attribute])
        return pd.DataFrame(data, copy=False)

    def iter_batches(self, spec: SegmentQuery, rows: int = 500_000, progress: Optional[Progress] = None):
        """DataFrames of at most about ``rows`` segments each, for results larger than memory."""
        estimate = self.estimate(spec).rows if progress else 0
        seen = 0
        for raw in self._raw_batches(spec, batch_rows=rows):
            frame = self._to_frame(spec, raw)
            seen += len(raw["latitude"])
            if progress:
                progress(min(0.99, seen / estimate) if estimate else 0.5)
            if len(frame):
                yield frame

    def query(self, spec: SegmentQuery, progress: Optional[Progress] = None, max_bytes: Optional[int] = None):
        """All matching segments as one DataFrame (see ``iter_batches`` for larger results).

        A query that could need more memory than can be spared (``max_bytes``; by default
        half the memory available now) is refused with a QueryError that says how much and
        what to do instead, rather than taking the process down: before reading when the
        fragments' extents are at hand (local disk, or loaded already); else (on S3 the extents
        cost two requests per fragment) with TileDB's own estimate of each box before its data
        tiles are read, and as soon as what it has read passes the limit (an estimate can fall short).
        """
        import pandas as pd

        limit = self._memory_limit(spec, max_bytes)
        listing = self._listing
        if self._young(listing) or not self._remote:
            frames = self._frames(spec, progress, limit=limit)
        else:
            # Past its freshness on S3: read on the last view while the commits are listed beside
            # the read; read again only if fragments landed since that view (rarely).
            pending = self._renew_in_background()
            frames = self._frames(spec, progress, listing, limit)
            renewed = pending.result()
            if renewed.commits is None or renewed.commits != listing.commits:
                frames = self._frames(spec, progress, renewed, limit)
        if not frames:
            return self._to_frame(spec, self._empty(spec))
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        return frame

    def _memory_limit(self, spec: SegmentQuery, max_bytes: Optional[int]) -> Optional[int]:
        """Refuse now a query that could need more than ``max_bytes`` when its estimate is cheap;
        else the limit the read must stay under (None: no limit)."""
        from .regions import parts_area

        if max_bytes is None:
            # Small regions cannot exhaust memory; skipping them keeps the fragment listing
            # the estimate needs off the latency of the queries a map canvas makes.
            if parts_area(spec.parts) < MEMORY_CHECK_MIN_AREA_DEG2:
                return None
            available = available_memory_bytes()
            if available is None:
                return None
            max_bytes = available // 2
        if self._remote and not self._extents_at_hand():
            return max_bytes
        _refuse_above(self.estimate(spec).bytes * FRAME_MEMORY_FACTOR, max_bytes)
        return None

    def _extents_at_hand(self) -> bool:
        cached, listing = self._extents, self._listing
        return (cached is not None and listing is not None and cached[0] == listing.commits) or (
            self._preparing is not None and self._preparing.done())

    def _frames(self, spec: SegmentQuery, progress: Optional[Progress], listing: Optional[_Listing] = None,
                limit: Optional[int] = None) -> list:
        frames, held = [], 0
        for index, raw in enumerate(self._raw_batches(spec, listing=listing, limit=limit)):
            held += sum(values.nbytes for values in raw.values()) * FRAME_MEMORY_FACTOR
            if limit is not None and held > limit:
                raise QueryError(f"this query needs more than the {limit / 1e9:.1f} GB of memory that can be spared: {NARROW_IT}")
            frames.append(self._to_frame(spec, raw))
            if progress:
                progress(min(1.0, (index + 1) / len(spec.parts)))
        return frames

    def _empty(self, spec: SegmentQuery) -> Dict[str, np.ndarray]:
        raw = {d: np.zeros(0) for d in DIMENSIONS}
        for name in self._attributes(spec):
            raw[name] = np.zeros(0, dtype=self.attribute_dtypes.get(name, object))
        return raw

    def count(self, spec: SegmentQuery) -> int:
        return sum(len(f) for f in self.iter_batches(spec, rows=1_000_000))

    def count_segments(self, spec: SegmentQuery, within: Optional[Callable] = None,
                       exact_limit: int = EXACT_COUNT_LIMIT) -> "SegmentCount":
        """How many segments match ``spec`` (region, time range, filters), without reading them.

        TileDB counts the cells in each box itself, reading only the filters' attributes. A polygon
        region, or ``within`` (a mask of longitudes and latitudes: a search radius), needs the
        coordinates of the cells in its boxes: they are read when the boxes hold at most
        ``exact_limit`` cells; above that the count is the boxes' (``exact`` False)."""
        domain_first, domain_last = self._time_domain
        first_day, last_day = max(spec.day_range[0], int(domain_first)), min(spec.day_range[1], int(domain_last))
        if last_day < first_day:
            return SegmentCount(0, True)
        with self._handle() as array:
            return self._count_in(array, spec, first_day, last_day, within, exact_limit)

    def _count_in(self, array, spec: SegmentQuery, first_day: int, last_day: int, within, exact_limit: int) -> "SegmentCount":
        # TileDB counts with the filter as a query condition (no rows leave TileDB), at the price of
        # tiledb-py's second open per query (see _raw_batches): counts explain empty results only
        node = self._filter(spec)
        condition = to_condition(node) if node is not None else None
        boxes = [(slice(lat_min, lat_max), slice(lon_min, lon_max), slice(first_day, last_day))
                 for lon_min, lat_min, lon_max, lat_max in spec.parts]
        in_boxes = sum(retrying(lambda r=ranges: int(array.query(attrs=["segment_id"], cond=condition)
                                                  .agg({"segment_id": ["count"]}).multi_index[r]), f"counting in {self.uri}")
                       for ranges in boxes)
        if (spec.polygon is None and within is None) or in_boxes == 0:
            return SegmentCount(in_boxes, True)
        if in_boxes > exact_limit:
            return SegmentCount(in_boxes, False)
        count = 0
        for ranges in boxes:
            raw = retrying(lambda r=ranges: array.query(attrs=[], dims=["latitude", "longitude"], cond=condition).multi_index[r],
                           f"reading {self.uri}")
            keep = np.ones(len(raw["latitude"]), dtype=bool)
            if spec.polygon is not None and len(keep):
                import shapely

                shapely.prepare(spec.polygon)
                keep &= shapely.intersects_xy(spec.polygon, raw["longitude"], raw["latitude"])
            if within is not None and len(keep):
                keep &= within(raw["longitude"], raw["latitude"])
            count += int(keep.sum())
        return SegmentCount(count, True)

    def extent(self) -> Optional[Tuple[Tuple[float, float], Tuple[float, float], Tuple[np.datetime64, np.datetime64]]]:
        """((south, north), (west, east), (first day, last day)) of the stored segments, or None when empty."""
        with self._handle() as array:
            domain = array.nonempty_domain()
        if domain is None:
            return None
        (south, north), (west, east), (first, last) = domain
        day = np.datetime64("1970-01-01", "D")
        return (float(south), float(north)), (float(west), float(east)), (day + int(first), day + int(last))

    def estimate(self, spec: SegmentQuery) -> Estimate:
        """A fast upper bound of the rows and bytes, from fragment extents (no data read).

        Segments are assumed evenly spread within each fragment's non-empty domain;
        filters are not applied, so the true count is usually lower.
        """
        first_day, last_day = spec.day_range
        rows = 0.0
        self._prepared_if_asked()
        extents, damaged = self._fragment_extents()
        for ((lat0, lat1), (lon0, lon1), (t0, t1)), cells in extents:
            time_share = _overlap(t0, t1 + 1, first_day, last_day + 1)
            if time_share == 0:
                continue
            for lon_min, lat_min, lon_max, lat_max in spec.parts:
                rows += cells * time_share * _overlap(lat0, lat1, lat_min, lat_max) * _overlap(lon0, lon1, lon_min, lon_max)
        if spec.polygon is not None:
            from .regions import parts_area

            rows *= min(1.0, spec.polygon.area / max(parts_area(spec.parts), 1e-12))
        per_row = 8 * 4 + 8 + sum(self.attribute_dtypes[c.attribute].itemsize for c in spec.columns)
        return Estimate(int(round(rows)), int(round(rows * per_row)), damaged)

    def damaged_fragments(self) -> Tuple[str, ...]:
        """Fragments whose extent is not finite (see ``damaged_fragments``): no query returns their
        rows, and estimates leave them out."""
        return self._fragment_extents()[1]

    def _fragment_extents(self, listing: Optional[_Listing] = None):
        """(non-empty domain, cell count) of every fragment with a finite extent, and the names of
        the others. Reading them costs one request per fragment on S3 (unless their metadata is
        consolidated), so they are kept until the array's commit listing changes; arrays without a
        commit folder are read every time."""
        import tiledb

        commits = (listing or self._current_listing()).commits
        cached = self._extents
        if commits is None or cached is None or cached[0] != commits:
            fragments = retrying(lambda: tiledb.FragmentInfoList(self.uri, ctx=self.ctx), f"listing the fragments of {self.uri}")
            damaged = tuple(damaged_fragments(fragments))
            extents = [(f.nonempty_domain, f.cell_num) for f in fragments if _fragment_name(f) not in damaged]
            cached = (commits, (extents, damaged))
            self._extents = cached
        return cached[1]

    # ------------------------------------------------------------------ nearest

    def nearest(self, request: NearestRequest):
        """The ``request.num_shots`` segments nearest to ``request.point`` (lon, lat) within its radius,
        by geodesic distance on the WGS84 ellipsoid, sorted, with a ``distance_m`` column."""
        frame = self.query(request.spec)
        frame["distance_m"] = request.distances(frame["longitude"].to_numpy(), frame["latitude"].to_numpy())
        frame = frame[frame["distance_m"] <= request.radius_m].sort_values("distance_m", kind="stable").head(request.num_shots)
        return frame.reset_index(drop=True)


def _passing(raw: Dict[str, np.ndarray], node: Optional[Filter]) -> Dict[str, np.ndarray]:
    """The rows of ``raw`` that pass ``node`` (all of them without one)."""
    if node is None or not len(raw["latitude"]):
        return raw
    keep = evaluate(node, raw)
    return {name: values[keep] for name, values in raw.items()}


def _checked_estimate(batches, limit: int) -> int:
    """The memory TileDB's estimate of a read's result needs as a DataFrame; a read needing more than ``limit``
    is refused."""
    need = sum(size.data_bytes + size.offsets_bytes for size in batches.estimated_result_sizes().values()) * FRAME_MEMORY_FACTOR
    _refuse_above(need, limit)
    return need


def _refuse_above(need: int, limit: int) -> None:
    if need > limit:
        raise QueryError(f"this query could need about {need / 1e9:.1f} GB of memory, more than the "
                         f"{limit / 1e9:.1f} GB that can be spared: {NARROW_IT}")


def _batch_budget(rows: int) -> Tuple[int, int]:
    """TileDB's memory budget and result buffer bytes (per column) for batches of ``rows`` segments."""
    return max(BATCH_MEMORY_FLOOR, rows * 256), max(rows, 1024) * 8


def _fragment_name(fragment) -> str:
    return str(fragment.uri).rstrip("/").rsplit("/", 1)[-1]


def damaged_fragments(fragments) -> List[str]:
    """Names of the fragments whose non-empty domain is not finite.

    Versions before the ingest checked coordinates wrote fill values (3.4028235e38, read as NaN)
    as coordinates: such a fragment's extent is NaN, which made every size estimate (and so every
    query that checks memory) fail with "cannot convert float NaN to integer". TileDB reads
    nothing from such a fragment (a NaN extent overlaps no range); those versions wrote the rows
    with NaN coordinates into fragments of their own (their write tile came from the NaN), so
    normally nothing else is in them."""
    damaged = []
    for fragment in fragments:
        bounds = [value for dimension in fragment.nonempty_domain for value in dimension]
        if not all(np.isfinite(float(value)) for value in bounds):
            damaged.append(_fragment_name(fragment))
    return damaged


def available_memory_bytes() -> Optional[int]:
    """Memory the system can give without swapping (Linux MemAvailable; else free pages), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    """Share of [a0, a1] covered by [b0, b1] (1 for a degenerate interval inside)."""
    if a1 <= a0:
        return 1.0 if b0 <= a0 <= b1 else 0.0
    return max(0.0, min(a1, b1) - max(a0, b0)) / (a1 - a0)

