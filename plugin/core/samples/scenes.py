"""Synthetic Sentinel-2 L2A scenes and a static STAC catalogue of them.

Used by the tests, ``make demo`` and the NDVI benchmark, served over HTTP by
``sample_stac_server``. Each scene is three Cloud-Optimised GeoTIFFs as Earth
Search publishes them: ``red`` (B04) and ``nir`` (B08) at 10 m as uint16 digital
numbers with nodata 0, ``scl`` (scene classification) at 20 m as uint8, in a UTM
CRS. Digital numbers follow the processing baseline (an offset of +1000 DN from
baseline 04.00 on), and each item lists ``raster:bands`` scale 0.0001 and the offset
(-0.1 or 0), unless told to mislabel it. Outside a scene's footprint the bands are
nodata and SCL is 0; clouds are SCL classes 8/9 (with shadows 3) over bright pixels.

Layout of a catalogue folder (hrefs are relative to it; the server makes them absolute):

    collections/<collection>/collection.json
    collections/<collection>/items/<scene id>.json
    scenes/<scene id>/red.tif, nir.tif, scl.tif

Tests give each scene reflectance functions of the pixel-centre coordinates, so the
expected NDVI can be computed from the same functions without reading any file.
"""

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..sentinel2.ndvi import DEFAULT_SCALE, baseline_offset
from .granules import BARE, CROPLAND, HERBACEOUS, SAMPLE_REGION, SHRUBS, URBAN, WATER, Landscape

COLLECTION = "sentinel-2-c1-l2a"
UTM_32N = 32632
RESOLUTION = 10.0
SCL_RESOLUTION = 20.0
SCL_NO_DATA, SCL_CLOUD_SHADOW, SCL_VEGETATION, SCL_NOT_VEGETATED, SCL_WATER = 0, 3, 4, 5, 6
SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS = 8, 9, 10
CLOUDY_SCL = (SCL_CLOUD_SHADOW, SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS)
CLOUD_RED, CLOUD_NIR = 0.55, 0.6  # bright tops: NDVI about 0.04 if the mask fails
ASSET_FILES = {"red": "red.tif", "nir": "nir.tif", "scl": "scl.tif"}

Reflectance = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (x, y) pixel centres -> reflectance


def pattern(base: float, step_x: int, step_y: int, period: int, shift: float = 0.0, mix: int = 0) -> Reflectance:
    """A reflectance that varies pixel to pixel in exact 0.0001 steps (whole DN), for tests.
    ``mix`` adds a column x row term, which makes the pattern irregular (and incompressible)."""

    def evaluate(x, y):
        column = np.floor(x / RESOLUTION).astype(np.int64)
        row = np.floor(y / RESOLUTION).astype(np.int64)
        index = (column * step_x + row * step_y + (column % period) * (row % period) * mix) % period
        return base + shift + DEFAULT_SCALE * index

    return evaluate


@dataclass(frozen=True)
class SceneSpec:
    """One synthetic scene. ``bounds`` (west, south, east, north) in the scene's UTM CRS,
    multiples of 20 m. ``listed_offset``: "baseline" lists the correct offset in
    ``raster:bands``, a number lists that number (a mislabelled catalogue), None lists none."""

    scene_id: str
    when: dt.datetime
    bounds: Tuple[float, float, float, float]
    red: Reflectance = pattern(0.03, 7, 3, 300)
    nir: Reflectance = pattern(0.25, 5, 11, 1500)
    epsg: int = UTM_32N
    baseline: str = "05.00"
    listed_offset: Union[str, float, None] = "baseline"
    footprint: Optional[object] = None  # shapely polygon in the scene CRS; None: the whole extent
    clouds: Tuple[Tuple[object, int], ...] = ()  # (shapely polygon in the scene CRS, SCL class)
    cloud_cover: Optional[float] = None  # None: the share of cloudy SCL pixels in the footprint
    omit_assets: Tuple[str, ...] = ()
    collection: str = COLLECTION
    block_size: int = 256
    platform: str = "sentinel-2a"


def _centres(bounds, resolution):
    west, south, east, north = bounds
    width, height = int(round((east - west) / resolution)), int(round((north - south) / resolution))
    x = west + (np.arange(width) + 0.5) * resolution
    y = north - (np.arange(height) + 0.5) * resolution
    return np.meshgrid(x, y)


def _inside(geometry, x, y) -> np.ndarray:
    import shapely

    if geometry is None:
        return np.ones(x.shape, dtype=bool)
    return shapely.contains_xy(geometry, x, y)


def _dn(values: np.ndarray, offset: float) -> np.ndarray:
    return np.clip(np.round((values - offset) / DEFAULT_SCALE), 1, 65535).astype(np.uint16)


def scene_arrays(spec: SceneSpec) -> Dict[str, np.ndarray]:
    """The red, nir (10 m, uint16 DN) and scl (20 m, uint8) arrays of a scene."""
    offset = baseline_offset(spec.baseline)
    x20, y20 = _centres(spec.bounds, SCL_RESOLUTION)
    valid20 = _inside(spec.footprint, x20, y20)
    scl = np.where(valid20, SCL_VEGETATION, SCL_NO_DATA).astype(np.uint8)
    for polygon, scl_class in spec.clouds:
        scl[_inside(polygon, x20, y20) & valid20] = scl_class

    x, y = _centres(spec.bounds, RESOLUTION)
    red = np.asarray(spec.red(x, y), dtype=np.float64)
    nir = np.asarray(spec.nir(x, y), dtype=np.float64)
    scl10 = np.repeat(np.repeat(scl, 2, axis=0), 2, axis=1)[: x.shape[0], : x.shape[1]]
    cloudy = np.isin(scl10, (SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS))
    red = np.where(cloudy, CLOUD_RED, red)
    nir = np.where(cloudy, CLOUD_NIR, nir)
    valid = _inside(spec.footprint, x, y)
    red_dn = np.where(valid, _dn(red, offset), 0).astype(np.uint16)
    nir_dn = np.where(valid, _dn(nir, offset), 0).astype(np.uint16)
    return {"red": red_dn, "nir": nir_dn, "scl": scl}


def _write_cog(path: Path, array: np.ndarray, bounds, epsg: int, nodata, block_size: int) -> None:
    import rasterio
    import rasterio.shutil
    from rasterio.transform import from_bounds

    height, width = array.shape
    memory = f"/vsimem/{path.parent.name}-{path.name}-{os.getpid()}.tif"
    profile = dict(driver="GTiff", width=width, height=height, count=1, dtype=array.dtype.name,
                   crs=f"EPSG:{epsg}", transform=from_bounds(*bounds, width, height), nodata=nodata)
    with rasterio.open(memory, "w", **profile) as dataset:
        dataset.write(array, 1)
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        rasterio.shutil.copy(memory, temporary, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=str(block_size),
                             OVERVIEWS="AUTO", RESAMPLING="NEAREST")
        os.replace(temporary, path)
    finally:
        rasterio.shutil.delete(memory)
        temporary.unlink(missing_ok=True)


def _footprint_wgs84(spec: SceneSpec):
    import shapely
    from pyproj import Transformer
    from shapely.geometry import box

    footprint = spec.footprint if spec.footprint is not None else box(*spec.bounds)
    footprint = footprint.intersection(box(*spec.bounds))
    transformer = Transformer.from_crs(spec.epsg, 4326, always_xy=True)
    footprint = shapely.segmentize(footprint, 500.0)
    return shapely.transform(footprint, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def write_scene(folder, spec: SceneSpec) -> Dict:
    """Write a scene's COGs and its STAC item under ``folder``; returns the item."""
    from shapely.geometry import mapping

    folder = Path(folder)
    arrays = scene_arrays(spec)
    scene_dir = folder / "scenes" / spec.scene_id
    scene_dir.mkdir(parents=True, exist_ok=True)
    west, south, east, north = spec.bounds
    true_offset = baseline_offset(spec.baseline)
    listed = true_offset if spec.listed_offset == "baseline" else spec.listed_offset
    assets = {}
    for role, array in arrays.items():
        if role in spec.omit_assets:
            continue
        nodata = 0
        _write_cog(scene_dir / ASSET_FILES[role], array, spec.bounds, spec.epsg, nodata, spec.block_size)
        resolution = SCL_RESOLUTION if role == "scl" else RESOLUTION
        band = {"nodata": nodata, "data_type": array.dtype.name, "spatial_resolution": resolution}
        if role != "scl":
            band["scale"] = DEFAULT_SCALE
            if listed is not None:
                band["offset"] = listed
        assets[role] = {
            "href": f"scenes/{spec.scene_id}/{ASSET_FILES[role]}",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "title": {"red": "Red (band 4) - 10m", "nir": "NIR 1 (band 8) - 10m", "scl": "Scene classification map (SCL)"}[role],
            "roles": ["data", "reflectance"] if role != "scl" else ["data"],
            "proj:shape": list(array.shape),
            "proj:transform": [resolution, 0.0, west, 0.0, -resolution, north],
            "raster:bands": [band],
        }
    valid = arrays["scl"] != SCL_NO_DATA
    cloud_cover = spec.cloud_cover
    if cloud_cover is None:
        cloudy = np.isin(arrays["scl"], CLOUDY_SCL) & valid
        cloud_cover = round(100.0 * cloudy.sum() / max(valid.sum(), 1), 3)
    footprint = _footprint_wgs84(spec)
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
        "id": spec.scene_id,
        "collection": spec.collection,
        "geometry": mapping(footprint),
        "bbox": list(footprint.bounds),
        "properties": {
            "datetime": spec.when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "platform": spec.platform,
            "constellation": "sentinel-2",
            "eo:cloud_cover": cloud_cover,
            "s2:processing_baseline": spec.baseline,
            "proj:epsg": spec.epsg,
        },
        "assets": assets,
        "links": [],
    }
    items_dir = folder / "collections" / spec.collection / "items"
    items_dir.mkdir(parents=True, exist_ok=True)
    (items_dir / f"{spec.scene_id}.json").write_text(json.dumps(item, indent=1), encoding="utf-8")
    return item


def write_collection(folder, collection: str = COLLECTION, description: str = "Synthetic Sentinel-2 L2A scenes") -> Path:
    """The collection document; its extent is recomputed from the items written so far."""
    folder = Path(folder)
    items = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((folder / "collections" / collection / "items").glob("*.json"))]
    bboxes = np.array([item["bbox"] for item in items]) if items else np.array([[-180.0, -90.0, 180.0, 90.0]])
    times = sorted(item["properties"]["datetime"] for item in items) or [None]
    document = {
        "type": "Collection", "stac_version": "1.0.0", "id": collection, "description": description,
        "license": "proprietary",
        "extent": {
            "spatial": {"bbox": [[float(bboxes[:, 0].min()), float(bboxes[:, 1].min()), float(bboxes[:, 2].max()), float(bboxes[:, 3].max())]]},
            "temporal": {"interval": [[times[0], times[-1]]]},
        },
        "links": [],
    }
    path = folder / "collections" / collection / "collection.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return path


def write_catalogue(folder, specs: Sequence[SceneSpec]) -> List[Dict]:
    """Write every scene and its collection document(s); returns the items."""
    items = [write_scene(folder, spec) for spec in specs]
    for collection in sorted({spec.collection for spec in specs}):
        write_collection(folder, collection)
    return items


# --------------------------------------------------------------------------- the demo catalogue

# Reflectance (red, nir) of each land cover of the sample landscape in summer.
_COVER_REFLECTANCE = {
    SHRUBS: (0.06, 0.24), HERBACEOUS: (0.05, 0.30), CROPLAND: (0.07, 0.34), URBAN: (0.12, 0.17),
    BARE: (0.18, 0.24), WATER: (0.04, 0.02),
}
_FOREST_REFLECTANCE = (0.03, 0.36)


@dataclass(frozen=True)
class SampleCatalogue:
    folder: Path
    collection: str
    boundary: object  # shapely polygon in EPSG:32632, the "city" the demo composites
    boundary_crs: str
    scene_ids: Tuple[str, ...]
    years: Tuple[int, ...]


def landscape_reflectance(bounds, seed: int = 42, epsg: int = UTM_32N):
    """Summer (red, nir) reflectance and land cover of the sample landscape on a 10 m grid
    over ``bounds`` (west, south, east, north in ``epsg``), pixel centres."""
    from pyproj import Transformer

    x, y = _centres(bounds, RESOLUTION)
    lon, lat = Transformer.from_crs(epsg, 4326, always_xy=True).transform(x, y)
    cover = Landscape(seed).land_cover(lat, lon)
    red = np.full(cover.shape, _FOREST_REFLECTANCE[0])
    nir = np.full(cover.shape, _FOREST_REFLECTANCE[1])
    for code, (red_value, nir_value) in _COVER_REFLECTANCE.items():
        red[cover == code] = red_value
        nir[cover == code] = nir_value
    return red, nir, cover


# Where the sample "city" sits in the sample region: the most varied spot of the landscape
# (forest, fields, meadows, shrubs, a village and a lake within 4 km).
SAMPLE_CITY_CENTRE = (51.1, 10.15)  # latitude, longitude


def sample_boundary(centre: Tuple[float, float] = SAMPLE_CITY_CENTRE, size_km: float = 4.0):
    """A city-like polygon (EPSG:32632) about ``size_km`` across around ``centre`` (latitude, longitude)."""
    from pyproj import Transformer
    from shapely.geometry import Polygon

    lat, lon = centre
    x0, y0 = Transformer.from_crs(4326, UTM_32N, always_xy=True).transform(lon, lat)
    angles = np.linspace(0, 2 * np.pi, 13)[:-1]
    radius = size_km * 500.0 * np.array([1.0, 0.8, 0.95, 0.7, 0.9, 1.0, 0.85, 0.75, 0.95, 0.8, 1.0, 0.9])
    return Polygon(np.column_stack([x0 + radius * np.cos(angles), y0 + radius * np.sin(angles)]))


def generate_sample_catalogue(
    folder,
    region: Tuple[float, float, float, float] = SAMPLE_REGION,
    years: Sequence[int] = (2019, 2024),
    scenes_per_year: int = 5,
    size_km: float = 8.0,
    boundary_km: float = 4.0,
    seed: int = 42,
    collection: str = COLLECTION,
    block_size: int = 512,
    centre: Optional[Tuple[float, float]] = None,
    progress: Optional[Callable[[float], None]] = None,
) -> SampleCatalogue:
    """A deterministic catalogue over the sample landscape (the ATL08 sample's, ``seed`` 42).

    Scenes cover a ``size_km`` square around ``centre`` (latitude, longitude; by default
    ``SAMPLE_CITY_CENTRE`` in the sample region, else the middle of ``region``) in UTM 32N at 10 m: per
    year, ``scenes_per_year`` dates in the growing season, one with a partial
    (diagonal) footprint, clouds with shadows on some, and one too cloudy for a 30 %
    threshold. Years before 2022 use processing baseline 02.14 (no offset), later
    ones 05.10 (offset -0.1). With the defaults: 10 scenes, 800 x 800 pixels each,
    about 15 MB, written in a few seconds; the boundary is 400 x 400 pixels.
    """
    from shapely.geometry import Point, Polygon

    folder = Path(folder)
    if centre is None:
        centre = SAMPLE_CITY_CENTRE if tuple(region) == SAMPLE_REGION else ((region[0] + region[1]) / 2, (region[2] + region[3]) / 2)
    if not (region[0] <= centre[0] <= region[1] and region[2] <= centre[1] <= region[3]):
        raise ValueError(f"the catalogue centre {centre} is outside the region {region}")
    boundary = sample_boundary(centre, boundary_km)
    cx, cy = boundary.centroid.x, boundary.centroid.y
    half = size_km * 500.0
    west, south = np.floor((cx - half) / 60.0) * 60.0, np.floor((cy - half) / 60.0) * 60.0
    bounds = (west, south, west + 2 * half, south + 2 * half)

    base_red, base_nir, cover = landscape_reflectance(bounds, seed)
    crops = cover == CROPLAND
    # Fields and meadows as 250 m parcels, each with its own vigour and its own harvest date.
    parcel_rng = np.random.default_rng([seed, 0xF1E1D])
    rows, cols = cover.shape
    parcels = parcel_rng.random(((rows + 24) // 25, (cols + 24) // 25, 2))
    parcels = np.repeat(np.repeat(parcels, 25, axis=0), 25, axis=1)[:rows, :cols]
    open_land = np.isin(cover, (CROPLAND, HERBACEOUS, SHRUBS))
    vigour = np.where(open_land, 0.6 + 0.7 * parcels[..., 0], 1.0)
    harvest_day = 150 + 110 * parcels[..., 1]

    specs = []
    rng = np.random.default_rng([seed, 0x5E2])
    for year in years:
        days = np.linspace(100, 260, scenes_per_year).round().astype(int)
        for index, day in enumerate(days):
            when = dt.datetime(year, 1, 1, 10, 30, tzinfo=dt.timezone.utc) + dt.timedelta(days=int(day) - 1)
            season = float(np.sin(np.pi * (day - 80) / 220.0))  # green-up to late summer
            harvested = crops & (day > harvest_day)  # bare soil after the harvest
            noise_red = 1 + rng.normal(0, 0.05, size=cover.shape)
            noise_nir = 1 + rng.normal(0, 0.03, size=cover.shape)
            red = np.where(harvested, 0.14, base_red + np.where(crops, 0.04 * (1 - season), 0.0)) * noise_red
            nir = np.where(harvested, 0.2, base_nir * vigour * (0.75 + 0.25 * season)) * noise_nir
            red, nir = np.clip(red, 0.005, 0.9), np.clip(nir, 0.005, 0.9)
            footprint = None
            if index == 1:  # the edge of an orbit swath crosses the area diagonally
                footprint = Polygon([(bounds[0], bounds[1]), (bounds[2], bounds[1]), (bounds[2], bounds[3] - 0.2 * (bounds[3] - bounds[1])),
                                     (bounds[0] + 0.3 * (bounds[2] - bounds[0]), bounds[3]), (bounds[0], bounds[3])])
            clouds = []
            blobs = 6 if index == scenes_per_year - 2 else int(rng.integers(0, 3))
            for _ in range(blobs):
                px, py = rng.uniform(bounds[0], bounds[2]), rng.uniform(bounds[1], bounds[3])
                radius = rng.uniform(300, 900) if blobs < 6 else rng.uniform(1500, 2500)
                clouds.append((Point(px + 400, py - 300).buffer(radius * 0.8), SCL_CLOUD_SHADOW))
                clouds.append((Point(px, py).buffer(radius), SCL_CLOUD_HIGH if rng.random() < 0.5 else SCL_CLOUD_MEDIUM))
            baseline = "02.14" if year < 2022 else "05.10"
            specs.append(SceneSpec(
                scene_id=f"S2{'AB'[index % 2]}_32UNB_{when:%Y%m%d}_0_L2A",
                when=when, bounds=bounds, red=_fixed(red), nir=_fixed(nir), baseline=baseline,
                footprint=footprint, clouds=tuple(clouds), collection=collection, block_size=block_size,
                platform=f"sentinel-2{'ab'[index % 2]}",
            ))
    items = []
    for i, spec in enumerate(specs):
        items.append(write_scene(folder, spec))
        if progress:
            progress((i + 1) / len(specs))
    write_collection(folder, collection)
    return SampleCatalogue(folder=folder, collection=collection, boundary=boundary, boundary_crs=f"EPSG:{UTM_32N}",
                           scene_ids=tuple(item["id"] for item in items), years=tuple(years))


def _fixed(values: np.ndarray) -> Reflectance:
    """A reflectance function that returns a precomputed array on the scene's own grid."""
    return lambda x, y: values


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Write a deterministic synthetic Sentinel-2 L2A STAC catalogue.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--years", type=int, nargs="+", default=[2019, 2024])
    parser.add_argument("--scenes-per-year", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    catalogue = generate_sample_catalogue(args.folder, years=args.years, scenes_per_year=args.scenes_per_year, seed=args.seed)
    print(f"wrote {len(catalogue.scene_ids)} scenes to {catalogue.folder}; serve with "
          f"python -m canopy_explorer.plugin.core.samples.stac_server {catalogue.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
