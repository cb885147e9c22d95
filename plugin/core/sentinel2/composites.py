"""Yearly NDVI median composites of Sentinel-2 L2A scenes over a boundary.

    request = CompositeRequest.create(default_stac_source(), boundary, "EPSG:28992", [2019, 2024],
                                      max_cloud=20, output_folder="out")
    reports = composite_years(request)   # out/ndvi_composite_2019.tif, ...

For each year: search the scenes (``stac_search``), then build one Cloud-Optimised
GeoTIFF on a grid of the boundary's bounds (its CRS, or a chosen one; 10 m, origin on
multiples of the resolution so Sentinel-2 pixels of the same UTM zone map one to one),
band 1 the per-pixel median of valid NDVI across the scenes, band 2 the number of
valid observations; NaN outside the boundary (pixel centres, as PostGIS ``ST_Clip``),
and NaN declared as nodata.

How the work is shaped, and why:

* Pass 1, scene by scene (a few in parallel threads: over HTTP the time is mostly
  waiting): each band is opened once through GDAL's virtual file system and read
  through a ``WarpedVRT`` onto the output grid, block by block, so only the COG tiles
  under the boundary are fetched and only one block per band is in memory. SCL
  (20 m) is resampled nearest onto the 10 m grid. Each block's NDVI (float32, NaN
  where masked) goes to a scratch file laid out block by block, a slot per scene.
* Pass 2, block by block: the slots of the scenes that were read are sorted per
  pixel for the median and the count (in strips sized to a fixed memory budget),
  clipped to the boundary and written to a tiled GeoTIFF, which GDAL converts to the
  COG with overviews. Memory stays bounded by the block size and the strip budget,
  whatever the area and the number of scenes; the scratch file lives beside the
  output and is removed at the end.
* A scene that cannot be read (after retries) is left out and reported; the others
  still make the composite. Outputs are written under a temporary name and renamed
  when complete, so a failure or a cancel never leaves a file.
"""

import math
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..callbacks import CheckCancel, Log, Progress
from ..errors import Cancelled, CanopyExplorerError, ConfigurationError, OutputError, QueryError, StorageError
from ..segment_files import remove_quietly, temporary_sibling
from ..values import whole_number
from .ndvi import band_scaling, cloud_mask, median_and_count, ndvi, reflectance
from .stac_search import Scene, StacSource, find_scenes, parse_years, polygonal_boundary, utm_epsg

DEFAULT_BLOCK_SIZE = 512
DEFAULT_WORKERS = 4
MEDIAN_BUDGET_BYTES = 8 * 2**20  # pass 2 holds about this much of the scene stack at once (x3 while sorting)
COG_BLOCK_SIZE = 256
BAND_DESCRIPTIONS = ("median_ndvi", "valid_observations")


def output_name(year: int) -> str:
    return f"ndvi_composite_{year}.tif"


@dataclass(frozen=True)
class CompositeReport:
    """What one composite holds and what was left out of it."""

    path: Path
    year: int
    scenes_used: Tuple[str, ...]
    scenes_failed: Tuple[Tuple[str, str], ...]  # (scene id, reason)
    shape: Tuple[int, int]  # (rows, columns)
    crs: str
    transform: Tuple[float, ...]  # affine (a, b, c, d, e, f)
    valid_pixels: int  # pixels of the boundary with at least one valid observation

    def summary(self) -> str:
        text = (f"{self.path.name}: {len(self.scenes_used)} scene(s), {self.shape[1]} x {self.shape[0]} pixels in {self.crs}, "
                f"{self.valid_pixels} with data")
        if self.scenes_failed:
            text += f"; {len(self.scenes_failed)} scene(s) could not be read: " + "; ".join(f"{i} ({r})" for i, r in self.scenes_failed)
        return text


@dataclass(frozen=True)
class CompositeRequest:
    """Which scenes (STAC source, years, cloud threshold), over what boundary, on which grid, written where:
    one run of yearly composites, validated when it is built (before any request to the STAC API).

        request = CompositeRequest.create(default_stac_source(), boundary, "EPSG:28992", "2019, 2024", max_cloud=20,
                                          output_folder="out")
        reports = composite_years(request)     # out/ndvi_composite_2019.tif, ...
    """

    source: StacSource
    boundary: object  # a valid shapely (multi)polygon in ``boundary_crs``
    boundary_crs: object  # rasterio CRS
    years: Tuple[int, ...]
    max_cloud: float  # scenes at or above this cloud cover (%) are not used
    output_folder: Path
    cover_whole: bool = False  # only scenes covering the whole boundary, rather than a mosaic of those that meet it
    resolution: float = 10.0  # metres
    crs: Optional[object] = None  # the composites' CRS; None: the boundary's (its UTM zone when it is in degrees)
    block_size: int = DEFAULT_BLOCK_SIZE
    workers: int = DEFAULT_WORKERS
    classes: int = 5  # natural-breaks classes of the style stored beside each composite (on the QGIS side)

    @classmethod
    def create(cls, source: StacSource, boundary, boundary_crs, years, max_cloud: float, output_folder,
               cover_whole: bool = False, resolution: float = 10.0, crs=None, block_size: int = DEFAULT_BLOCK_SIZE,
               workers: int = DEFAULT_WORKERS, classes: int = 5) -> "CompositeRequest":
        """``years``: ``"2019, 2024"``, a list or one year."""
        from .stac_search import _check_max_cloud

        if not isinstance(source, StacSource):
            raise ConfigurationError(f"{str(source)[:80]!r} is not a STAC source (StacSource)")
        source.validate()
        years = parse_years(years)
        max_cloud = _check_max_cloud(max_cloud)
        boundary = polygonal_boundary(boundary)
        grid_crs = _crs(boundary_crs, "boundary")
        if isinstance(resolution, bool) or not isinstance(resolution, (int, float, np.number)):
            raise QueryError(f"the resolution must be a positive number of metres, not {resolution!r}")
        composite_grid(boundary, grid_crs, resolution, crs)  # checks the CRSs and the resolution
        if not whole_number(block_size) or block_size < 16:
            raise QueryError(f"the block size must be at least 16 pixels, not {block_size!r}")
        if not whole_number(workers) or workers < 1:
            raise QueryError(f"the number of parallel scene reads must be at least 1, not {workers!r}")
        if not whole_number(classes) or classes < 1:
            raise QueryError(f"the number of classes must be at least 1, not {classes!r}")
        if not isinstance(output_folder, (str, os.PathLike)) or not str(output_folder).strip():
            raise OutputError(f"no output folder for the composites ({output_folder!r}): choose one")
        return cls(source, boundary, grid_crs, years, max_cloud, Path(output_folder), bool(cover_whole), float(resolution), crs,
                   int(block_size), int(workers), int(classes))


# --------------------------------------------------------------------------- grid


@dataclass(frozen=True)
class CompositeGrid:
    crs: object  # rasterio CRS
    transform: object  # affine.Affine
    width: int
    height: int

    def blocks(self, size: int):
        from rasterio.windows import Window

        return [Window(col, row, min(size, self.width - col), min(size, self.height - row))
                for row in range(0, self.height, size) for col in range(0, self.width, size)]

    def block_transform(self, window):
        from rasterio.windows import transform as window_transform

        return window_transform(window, self.transform)

    def block_box(self, window):
        from shapely.geometry import box
        from rasterio.windows import bounds

        return box(*bounds(window, self.transform))


def _crs(value, what: str):
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    if value is None or (isinstance(value, str) and not value.strip()):
        raise QueryError(f"the {what} has no coordinate reference system: set one on the layer (for example EPSG:4326)")
    try:
        return CRS.from_user_input(value)
    except (CRSError, ValueError, TypeError) as error:
        raise QueryError(f"the {what} has an unknown coordinate reference system {value!r}: {error}") from None


def reproject_geometry(geometry, source_crs, target_crs):
    """A shapely geometry from one CRS to another, densified so long edges follow the projection."""
    import shapely
    from pyproj import CRS, Transformer

    source = CRS.from_user_input(source_crs.to_wkt() if hasattr(source_crs, "to_wkt") else source_crs)
    target = CRS.from_user_input(target_crs.to_wkt() if hasattr(target_crs, "to_wkt") else target_crs)
    if source == target:
        return geometry
    minx, miny, maxx, maxy = geometry.bounds
    geometry = shapely.segmentize(geometry, max(maxx - minx, maxy - miny) / 64 or 1.0)
    transformer = Transformer.from_crs(source, target, always_xy=True)
    return shapely.transform(geometry, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def _within_degrees(bounds) -> bool:
    minx, miny, maxx, maxy = bounds
    return -360 <= minx <= maxx <= 360 and -90 <= miny <= maxy <= 90


def _rounded(bounds):
    return tuple(round(v, 3) for v in bounds)


def composite_grid(boundary, boundary_crs, resolution: float = 10.0, crs=None, log: Optional[Log] = None):
    """(grid, boundary in the grid's CRS): the boundary's CRS unless ``crs`` is given; a boundary
    in degrees gets its UTM zone. The origin sits on multiples of ``resolution``."""
    from affine import Affine
    from rasterio.crs import CRS

    if not resolution or resolution <= 0:
        raise QueryError(f"the resolution must be a positive number of metres, not {resolution!r}")
    boundary = polygonal_boundary(boundary)
    source_crs = _crs(boundary_crs, "boundary")
    if source_crs.is_geographic and not _within_degrees(boundary.bounds):
        raise QueryError(f"the boundary's coordinates {_rounded(boundary.bounds)} are not longitudes and latitudes, "
                         f"as its CRS {source_crs.to_string()} says: set the layer's CRS to the one it was drawn in")
    if crs is not None:
        target = _crs(crs, "output")
        if target.is_geographic:
            raise QueryError(f"the output CRS {target.to_string()} is in degrees: choose a projected CRS for {resolution:g} m pixels")
    elif source_crs.is_geographic:
        centre = reproject_geometry(boundary, source_crs, "EPSG:4326").centroid
        target = CRS.from_epsg(utm_epsg(centre.x, centre.y))
        if log:
            log(f"the boundary is in degrees ({source_crs.to_string()}): composites use {target.to_string()}")
    else:
        target = source_crs
    projected = reproject_geometry(boundary, source_crs, target)
    minx, miny, maxx, maxy = projected.bounds
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
        raise QueryError(f"the boundary {_rounded(boundary.bounds)} cannot be projected to {target.to_string()}: "
                         "is the layer's CRS the one it was drawn in?")
    left = math.floor(minx / resolution) * resolution
    top = math.ceil(maxy / resolution) * resolution
    width = max(1, int(math.ceil((maxx - left) / resolution - 1e-9)))
    height = max(1, int(math.ceil((top - miny) / resolution - 1e-9)))
    grid = CompositeGrid(crs=target, transform=Affine(resolution, 0.0, left, 0.0, -resolution, top), width=width, height=height)
    return grid, projected


# --------------------------------------------------------------------------- scratch stack


class _SceneStack:
    """NDVI of every scene on the output grid, in a scratch file laid out block by block
    ([block][scene slot][pixels]), so pass 2 reads one block of all scenes contiguously."""

    def __init__(self, path: Path, blocks, slots: int):
        self.path = path
        self.blocks = blocks
        self.slots = slots
        pixels = np.array([w.width * w.height for w in blocks], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(pixels)[:-1]]) * slots * 4
        self.pixels = pixels
        self.written = np.zeros((len(blocks), slots), dtype=bool)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        os.ftruncate(self.fd, int(pixels.sum()) * slots * 4)
        self._lock = threading.Lock()  # Windows has no pread/pwrite: seek and transfer under a lock there

    def _write_at(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        if hasattr(os, "pwrite"):
            while view:
                view = view[os.pwrite(self.fd, view, offset + len(data) - len(view)):]
            return
        with self._lock:
            os.lseek(self.fd, offset, os.SEEK_SET)
            while view:
                view = view[os.write(self.fd, view):]

    def _read_at(self, size: int, offset: int) -> bytes:
        if hasattr(os, "pread"):
            parts = []
            while size:
                part = os.pread(self.fd, size, offset)
                if not part:
                    raise OSError(f"the scratch file {self.path} is shorter than expected")
                parts.append(part)
                size, offset = size - len(part), offset + len(part)
            return b"".join(parts)
        with self._lock:
            os.lseek(self.fd, offset, os.SEEK_SET)
            parts = []
            while size:
                part = os.read(self.fd, size)
                if not part:
                    raise OSError(f"the scratch file {self.path} is shorter than expected")
                parts.append(part)
                size -= len(part)
            return b"".join(parts)

    def write(self, block: int, slot: int, values: np.ndarray) -> None:
        data = np.ascontiguousarray(values, dtype=np.float32).tobytes()
        self._write_at(data, int(self.starts[block] + slot * self.pixels[block] * 4))

    def read(self, block: int, slots: Sequence[int], row0: int, row1: int) -> np.ndarray:
        window = self.blocks[block]
        width = int(window.width)
        out = np.empty((len(slots), row1 - row0, width), dtype=np.float32)
        for i, slot in enumerate(slots):
            offset = int(self.starts[block] + (slot * self.pixels[block] + row0 * width) * 4)
            data = self._read_at((row1 - row0) * width * 4, offset)
            out[i] = np.frombuffer(data, dtype=np.float32).reshape(row1 - row0, width)
        return out

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        remove_quietly(self.path)


# --------------------------------------------------------------------------- pass 1: scenes


class SceneReadError(CanopyExplorerError):
    """One scene could not be used (missing band, unreachable asset); the composite goes on."""


def _href(href: str) -> str:
    if href.startswith("s3://"):
        return "/vsis3/" + href[len("s3://"):]
    return href


def _clear_http_cache() -> None:
    """GDAL remembers failed HTTP files; a retry must ask the server again."""
    try:
        from osgeo import gdal
    except ImportError:  # pragma: no cover - GDAL's Python bindings absent: nothing cached to clear
        return
    gdal.VSICurlClearCache()


def _open_with_retries(href: str, source: StacSource, cancel: threading.Event):
    import rasterio
    from rasterio.errors import RasterioIOError

    last = None
    for attempt in range(source.retries + 1):
        if cancel.is_set():
            raise Cancelled("cancelled")
        try:
            return rasterio.open(_href(href))
        except RasterioIOError as error:
            last = error
            _clear_http_cache()
            if attempt < source.retries:
                time.sleep(source.retry_delay_s * (2 ** attempt))
    raise SceneReadError(f"cannot read {href} after {source.retries + 1} attempts: {_short(last)}")


def _short(error) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def _aligned_factor(dataset, grid: CompositeGrid) -> Optional[int]:
    """k when the band's pixels are k x k output pixels on the same lattice (same CRS, north up),
    as Sentinel-2's 10 m and 20 m bands are for a 10 m grid in their UTM zone; else None."""
    source, target = dataset.transform, grid.transform
    if dataset.crs is None or dataset.crs != grid.crs or source.b or source.d or source.e != -source.a:
        return None
    ratio = source.a / target.a
    factor = int(round(ratio))
    if factor < 1 or abs(ratio - factor) > 1e-9:
        return None
    columns, rows = (source.c - target.c) / target.a, (target.f - source.f) / target.a
    if abs(columns - round(columns)) > 1e-6 or abs(rows - round(rows)) > 1e-6:
        return None
    return factor


def _band_reader(dataset, grid: CompositeGrid, nodata, files: ExitStack) -> Callable:
    """A function from an output-grid window to the band's values there (nearest neighbour,
    ``nodata`` outside the band). Aligned bands are read directly (a plain windowed read,
    upsampled by repetition for 20 m SCL), three times faster than through the warper;
    anything else goes through a WarpedVRT onto the grid."""
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.windows import Window

    factor = _aligned_factor(dataset, grid)
    if factor is None:
        vrt = files.enter_context(WarpedVRT(
            dataset, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
            resampling=Resampling.nearest, src_nodata=nodata, nodata=nodata,
        ))
        return lambda window: vrt.read(1, window=window)

    # output pixel (row, col) lies in band pixel ((row + row_shift) // factor, (col + col_shift) // factor)
    col_shift = int(round((grid.transform.c - dataset.transform.c) / grid.transform.a))
    row_shift = int(round((dataset.transform.f - grid.transform.f) / grid.transform.a))
    dtype = dataset.dtypes[0]

    def read(window):
        height, width = int(window.height), int(window.width)
        first_col, first_row = int(window.col_off) + col_shift, int(window.row_off) + row_shift
        c0, r0 = first_col // factor, first_row // factor
        c1, r1 = (first_col + width - 1) // factor + 1, (first_row + height - 1) // factor + 1
        coarse = np.full((r1 - r0, c1 - c0), nodata, dtype=dtype)
        rc0, rr0 = max(c0, 0), max(r0, 0)
        rc1, rr1 = min(c1, dataset.width), min(r1, dataset.height)
        if rc1 > rc0 and rr1 > rr0:
            coarse[rr0 - r0:rr1 - r0, rc0 - c0:rc1 - c0] = dataset.read(1, window=Window(rc0, rr0, rc1 - rc0, rr1 - rr0))
        if factor > 1:
            coarse = np.repeat(np.repeat(coarse, factor, axis=0), factor, axis=1)
        top, left = first_row - r0 * factor, first_col - c0 * factor
        return coarse[top:top + height, left:left + width]

    return read


def _read_scene(scene: Scene, slot: int, grid: CompositeGrid, blocks, block_ids: Sequence[int], stack: _SceneStack,
                source: StacSource, cancel: threading.Event) -> List[int]:
    """Write the scene's NDVI for the blocks it covers into its slot; returns those blocks."""
    import rasterio
    from rasterio.errors import RasterioError, RasterioIOError
    from rasterio.warp import transform_bounds
    from shapely.geometry import box

    if scene.missing_roles:
        keys = ", ".join(repr(source.asset_keys[r]) for r in scene.missing_roles)
        raise SceneReadError(f"no {keys} asset")
    scaling = {}
    for role in ("red", "nir"):
        asset = scene.assets[role]
        try:
            scaling[role] = band_scaling(asset.scale, asset.offset, scene.processing_baseline, source.offset_policy)
        except ConfigurationError as error:
            raise SceneReadError(str(error)) from None

    last_error = None
    for attempt in range(source.retries + 1):
        written = []
        try:
            with rasterio.Env(**source.gdal_env()), ExitStack() as stack_of_files:
                datasets, readers, nodatas = {}, {}, {}
                for role in ("red", "nir", "scl"):
                    datasets[role] = stack_of_files.enter_context(_open_with_retries(scene.assets[role].href, source, cancel))
                for role, dataset in datasets.items():
                    nodata = scene.assets[role].nodata
                    nodata = dataset.nodata if nodata is None else nodata
                    nodatas[role] = 0 if nodata is None else nodata
                    readers[role] = _band_reader(dataset, grid, nodatas[role], stack_of_files)
                red_ds = datasets["red"]
                footprint = box(*transform_bounds(red_ds.crs, grid.crs, *red_ds.bounds, densify_pts=21))
                for block in block_ids:
                    if cancel.is_set():
                        raise Cancelled("cancelled")
                    window = blocks[block]
                    if not footprint.intersects(grid.block_box(window)):
                        continue
                    red_dn = readers["red"](window)
                    red_nodata = nodatas["red"]
                    if np.all(red_dn == red_nodata):
                        continue
                    nir_dn = readers["nir"](window)
                    scl = readers["scl"](window)
                    red = reflectance(red_dn, *scaling["red"], nodata=red_nodata)
                    nir = reflectance(nir_dn, *scaling["nir"], nodata=nodatas["nir"])
                    values = ndvi(red, nir)
                    values[cloud_mask(scl, source.scl_mask_classes)] = np.nan
                    if not np.isfinite(values).any():
                        continue
                    stack.write(block, slot, values)
                    written.append(block)
            return written
        except (Cancelled, SceneReadError):
            raise
        # a read failed midway (GDAL already retried the HTTP request); RasterioIOError is
        # not a RasterioError before rasterio 1.4, and a plain OSError is the scratch file's
        except (RasterioError, RasterioIOError) as error:
            last_error = error
            _clear_http_cache()
            if attempt < source.retries:
                time.sleep(source.retry_delay_s * (2 ** attempt))
    raise SceneReadError(f"reading failed after {source.retries + 1} attempts: {_short(last_error)}")


# --------------------------------------------------------------------------- pass 2 and output


def _write_blocks(stack: _SceneStack, grid: CompositeGrid, blocks, boundary_blocks, boundary, used_slots, path: Path,
                  tags: Mapping[str, str], progress: Callable[[float], None], check_cancel: Callable[[], None]) -> int:
    import rasterio
    from rasterio.features import geometry_mask

    profile = dict(driver="GTiff", width=grid.width, height=grid.height, count=2, dtype="float32", crs=grid.crs,
                   transform=grid.transform, nodata=float("nan"), tiled=True, blockxsize=COG_BLOCK_SIZE,
                   blockysize=COG_BLOCK_SIZE, BIGTIFF="IF_SAFER")
    valid_pixels = 0
    with rasterio.open(path, "w", **profile) as dataset:
        for index, window in enumerate(blocks):
            check_cancel()
            height, width = int(window.height), int(window.width)
            if index not in boundary_blocks:
                empty = np.full((height, width), np.nan, dtype=np.float32)
                dataset.write(empty, 1, window=window)
                dataset.write(empty, 2, window=window)
                continue
            inside = geometry_mask([boundary], out_shape=(height, width), transform=grid.block_transform(window), invert=True)
            slots = [s for s in used_slots if stack.written[index, s]]
            rows = max(1, min(height, MEDIAN_BUDGET_BYTES // (3 * 4 * width * max(len(slots), 1))))
            median = np.empty((height, width), dtype=np.float32)
            count = np.empty((height, width), dtype=np.float32)
            for row0 in range(0, height, rows):
                row1 = min(height, row0 + rows)
                median[row0:row1], count[row0:row1] = median_and_count(stack.read(index, slots, row0, row1))
            median[~inside] = np.nan
            count[~inside] = np.nan
            valid_pixels += int(np.count_nonzero(count > 0))
            dataset.write(median, 1, window=window)
            dataset.write(count, 2, window=window)
            progress((index + 1) / len(blocks))
        for band, description in enumerate(BAND_DESCRIPTIONS, start=1):
            dataset.set_band_description(band, description)
        dataset.update_tags(**tags)
    return valid_pixels


def _to_cog(source_path: Path, target_path: Path, width: int, height: int) -> None:
    import rasterio.shutil

    levels = max(1, math.ceil(math.log2(max(width, height) / COG_BLOCK_SIZE))) if max(width, height) > COG_BLOCK_SIZE else 1
    rasterio.shutil.copy(
        str(source_path), str(target_path), driver="COG", COMPRESS="DEFLATE", PREDICTOR="YES", BLOCKSIZE=str(COG_BLOCK_SIZE),
        OVERVIEWS="IGNORE_EXISTING", OVERVIEW_COUNT=str(levels), OVERVIEW_RESAMPLING="AVERAGE", BIGTIFF="IF_SAFER",
        NUM_THREADS="ALL_CPUS",
    )


def _composite_tags(request: CompositeRequest, year: int, used_ids: Sequence[str], failed_ids: Sequence[str]) -> Dict[str, str]:
    """What a composite's GeoTIFF says of how it was made."""
    source = request.source
    return {
        "NDVI_YEAR": str(year), "SCENES_USED": ",".join(used_ids), "SCENES_FAILED": ",".join(failed_ids),
        "STAC_URL": source.url, "STAC_COLLECTION": source.collection, "OFFSET_POLICY": source.offset_policy,
        "SCL_MASK_CLASSES": ",".join(str(c) for c in source.scl_mask_classes), "MAX_CLOUD": f"{request.max_cloud:g}",
    }


def _read_scenes(request: CompositeRequest, scenes: Sequence[Scene], grid, blocks, ordered_blocks, stack: "_SceneStack",
                 output_path: Path, progress: Progress, check_cancel: CheckCancel, say: Log) -> Tuple[List[int], list]:
    """Every scene read onto the stack by a pool of threads (one per scene, at most ``request.workers``):
    (the slots of the scenes read, (scene id, reason) of those left out). A cancel stops the pool."""
    cancel = threading.Event()
    used, failed = [], []
    with ThreadPoolExecutor(max_workers=max(1, min(request.workers, len(scenes))), thread_name_prefix="ndvi-scene") as pool:
        futures = {pool.submit(_read_scene, scene, slot, grid, blocks, ordered_blocks, stack, request.source, cancel): slot
                   for slot, scene in enumerate(scenes)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                for future in done:
                    slot = futures[future]
                    scene = scenes[slot]
                    try:
                        written = future.result()
                    except OSError as error:  # the scratch file beside the output, not the scene
                        raise OutputError(f"cannot write in {output_path.parent}: {error.strerror or error}") from None
                    except SceneReadError as error:
                        failed.append((scene.id, str(error)))
                        say(f"{scene.id}: left out, {error}")
                    else:
                        stack.written[written, slot] = True
                        used.append(slot)
                        if not written:
                            say(f"{scene.id}: no valid pixel inside the boundary (clouds or outside its footprint)")
                progress(0.85 * (len(futures) - len(pending)) / len(futures))
                check_cancel()
        except BaseException:
            cancel.set()
            for future in pending:
                future.cancel()
            raise
    return sorted(used), failed


def build_composite(
    request: CompositeRequest,
    year: int,
    scenes: Sequence[Scene],
    output_path=None,
    progress: Optional[Progress] = None,
    check_cancel: Optional[CheckCancel] = None,
    log: Optional[Log] = None,
) -> CompositeReport:
    """The median NDVI composite of ``scenes`` (found for ``year``) over the request's boundary, written as a COG to
    ``output_path`` (by default ``ndvi_composite_<year>.tif`` in the request's output folder). Raises StorageError when
    no scene could be read, Cancelled when ``check_cancel`` raises; in both cases no file is left behind."""
    (year,) = parse_years([year])
    if not scenes:
        raise QueryError(f"no Sentinel-2 scenes to composite for {year}")
    progress = progress or (lambda fraction: None)
    check_cancel = check_cancel or (lambda: None)
    say = log or (lambda message: None)
    output_path = Path(output_path) if output_path is not None else request.output_folder / output_name(year)
    grid, projected = composite_grid(request.boundary, request.boundary_crs, request.resolution, request.crs, log)
    blocks = grid.blocks(request.block_size)
    boundary_blocks = {i for i, w in enumerate(blocks) if projected.intersects(grid.block_box(w))}
    ordered_blocks = sorted(boundary_blocks)
    if not output_path.parent.is_dir():
        raise OutputError(f"the output folder {output_path.parent} does not exist")

    scratch = temporary_sibling(output_path, ".stack")
    partial_tiff = temporary_sibling(output_path, ".tiles.tif")
    partial_cog = temporary_sibling(output_path)
    try:
        stack = _SceneStack(scratch, blocks, len(scenes))
    except OSError as error:
        raise OutputError(f"cannot write in {output_path.parent}: {error.strerror or error}") from None
    try:
        say(f"{year}: reading {len(scenes)} scene(s) onto a {grid.width} x {grid.height} grid in {grid.crs.to_string()}")
        used, failed = _read_scenes(request, scenes, grid, blocks, ordered_blocks, stack, output_path, progress, check_cancel, say)
        if not used:
            raise StorageError(
                f"none of the {len(scenes)} scene(s) of {year} could be read: "
                + "; ".join(f"{scene_id} ({reason})" for scene_id, reason in failed[:3])
                + (" ..." if len(failed) > 3 else "")
            )
        check_cancel()
        tags = _composite_tags(request, year, [scenes[s].id for s in used], [scene_id for scene_id, _ in failed])
        try:
            valid_pixels = _write_blocks(stack, grid, blocks, boundary_blocks, projected, used, partial_tiff, tags,
                                         lambda f: progress(0.85 + 0.1 * f), check_cancel)
            stack.close()
            check_cancel()
            _to_cog(partial_tiff, partial_cog, grid.width, grid.height)
            check_cancel()
            os.replace(partial_cog, output_path)
        except OSError as error:
            raise OutputError(f"cannot write {output_path}: {error.strerror or error}") from None
        except Exception as error:
            from rasterio.errors import RasterioError

            if isinstance(error, RasterioError):
                raise OutputError(f"cannot write {output_path}: {_short(error)}") from None
            raise
    finally:
        stack.close()
        remove_quietly(partial_tiff)
        remove_quietly(partial_cog)
    progress(1.0)
    report = CompositeReport(
        path=output_path, year=year, scenes_used=tuple(scenes[s].id for s in used), scenes_failed=tuple(failed),
        shape=(grid.height, grid.width), crs=grid.crs.to_string(), transform=tuple(grid.transform)[:6], valid_pixels=valid_pixels,
    )
    say(report.summary())
    return report


def composite_years(request: CompositeRequest, progress: Optional[Progress] = None, check_cancel: Optional[CheckCancel] = None,
                    log: Optional[Log] = None) -> List[CompositeReport]:
    """``ndvi_composite_<year>.tif`` in the request's output folder for each of its years.

    Every year is searched first; if any year has no scene the call fails before
    anything is written, saying for each such year why (no scene over the region at
    all, or only scenes at or above the cloud threshold: how many, and the clearest). Years are then
    composited one after the other; each file appears complete or not at all.
    """
    progress = progress or (lambda fraction: None)
    check_cancel = check_cancel or (lambda: None)
    folder = request.output_folder
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create the output folder {folder}: {error.strerror or error}") from None
    try:
        if not os.access(folder, os.W_OK):
            raise OutputError(f"the output folder {folder} is not writable")
        return _composite_found_years(request, progress, check_cancel, log)
    except BaseException:
        if created and not any(folder.iterdir()):
            folder.rmdir()  # a failed run leaves no trace, not even the folder it made
        raise


def _composite_found_years(request: CompositeRequest, progress: Progress, check_cancel: CheckCancel,
                           log: Optional[Log]) -> List[CompositeReport]:
    source, years = request.source, request.years
    boundary_wgs84 = reproject_geometry(request.boundary, request.boundary_crs, "EPSG:4326")
    searches = {}
    for index, year in enumerate(years):
        check_cancel()
        searches[year] = find_scenes(source, boundary_wgs84, year, request.max_cloud, cover_whole=request.cover_whole, log=log)
        progress(0.05 * (index + 1) / len(years))
    empty = [searches[year] for year in years if not searches[year].scenes]
    if empty:
        # each year says its own cause: no scene at all, or only cloudier ones (then raising the threshold helps)
        raise QueryError("; ".join(search.why_none(source) for search in empty))
    found = {year: list(search.scenes) for year, search in searches.items()}
    reports = []
    for index, year in enumerate(years):
        share = 0.95 / len(years)
        start = 0.05 + index * share
        reports.append(build_composite(request, year, found[year], progress=lambda f, start=start: progress(start + share * f),
                                       check_cancel=check_cancel, log=log))
    return reports
