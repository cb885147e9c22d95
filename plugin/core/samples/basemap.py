"""A shaded-relief base map of the synthetic sample landscape, for offline maps such as `make demo`.

The sample granules sample a deterministic ``Landscape`` (terrain, land cover,
canopy); this renders the same landscape as an RGB GeoTIFF in EPSG:4326, so the
queried segments sit on the forests, fields and lakes they were simulated from.
No tiles are fetched: the demo and CI run without network.

The colours are muted on purpose: the segment layer drawn over it uses a
sequential ramp from near-white to dark green, and both ends must stay visible.
"""

import os
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from ..lidar.atl08.presets import FOREST_CLASSES
from .granules import BARE, CROPLAND, HERBACEOUS, SAMPLE_REGION, SHRUBS, URBAN, WATER, Landscape

# Copernicus land-cover code: (red, green, blue), pastel so the data layer carries the colour.
LAND_COVER_COLOURS: Dict[int, Tuple[int, int, int]] = {
    SHRUBS: (201, 196, 160),
    HERBACEOUS: (214, 220, 180),
    CROPLAND: (232, 222, 183),
    URBAN: (196, 184, 184),
    BARE: (222, 214, 200),
    WATER: (150, 190, 222),
}
FOREST_COLOUR = (150, 172, 142)
# The synthetic hills rise about 120 m over 5-30 km: barely visible at true scale.
VERTICAL_EXAGGERATION = 8.0
SUN_AZIMUTH_DEG = 315.0
SUN_ALTITUDE_DEG = 40.0
METRES_PER_DEGREE_LAT = 111_320.0


def hillshade(terrain: np.ndarray, dx_m: float, dy_m: float, exaggeration: float = VERTICAL_EXAGGERATION) -> np.ndarray:
    """Lambertian shading in [0, 1] of a north-up elevation grid (rows run north to south)."""
    dz_dy, dz_dx = np.gradient(terrain * exaggeration, dy_m, dx_m)
    dz_dy = -dz_dy  # row index grows southwards; make the gradient point north
    slope = np.arctan(np.hypot(dz_dx, dz_dy))
    aspect = np.arctan2(-dz_dx, -dz_dy)  # direction the slope faces, clockwise from north
    azimuth = np.radians(SUN_AZIMUTH_DEG)
    altitude = np.radians(SUN_ALTITUDE_DEG)
    shade = np.sin(altitude) * np.cos(slope) + np.cos(altitude) * np.sin(slope) * np.cos(azimuth - aspect)
    return np.clip(shade, 0.0, 1.0)


def basemap_rgb(landscape: Landscape, region: Tuple[float, float, float, float], width: int, height: int) -> np.ndarray:
    """RGB bands (3, height, width) uint8 of land-cover colours shaded by the terrain, pixel centres."""
    lat_min, lat_max, lon_min, lon_max = region
    lat_step = (lat_max - lat_min) / height
    lon_step = (lon_max - lon_min) / width
    lat = lat_max - (np.arange(height) + 0.5) * lat_step
    lon = lon_min + (np.arange(width) + 0.5) * lon_step
    grid_lat, grid_lon = np.meshgrid(lat, lon, indexing="ij")
    cover = landscape.land_cover(grid_lat, grid_lon)
    terrain = landscape.terrain(grid_lat, grid_lon)

    colours = np.empty(cover.shape + (3,), dtype=np.float64)
    colours[...] = FOREST_COLOUR
    for code, colour in LAND_COVER_COLOURS.items():
        colours[cover == code] = colour
    unknown = ~np.isin(cover, list(LAND_COVER_COLOURS) + list(FOREST_CLASSES))
    colours[unknown] = (255, 255, 255)

    middle = np.radians((lat_min + lat_max) / 2)
    shade = hillshade(terrain, lon_step * METRES_PER_DEGREE_LAT * np.cos(middle), lat_step * METRES_PER_DEGREE_LAT)
    flat = np.sin(np.radians(SUN_ALTITUDE_DEG))
    # Relative to flat ground: lit slopes brighten a little, shaded ones darken more, water stays flat.
    relief = np.clip(1.0 + 0.9 * (shade - flat), 0.55, 1.15)
    relief[cover == WATER] = 1.0
    shaded = np.clip(colours * relief[..., None], 0, 255).round().astype(np.uint8)
    return np.moveaxis(shaded, -1, 0)


def write_basemap(
    path,
    region: Tuple[float, float, float, float] = SAMPLE_REGION,
    seed: int = 42,
    pixel_degrees: float = 0.0005,
) -> Path:
    """Write the shaded land-cover map of ``Landscape(seed)`` over ``region`` as a GeoTIFF, atomically.

    ``seed`` must be the one the granules were generated with (42 for the sample data).
    """
    import rasterio
    from rasterio.enums import ColorInterp
    from rasterio.transform import from_bounds

    lat_min, lat_max, lon_min, lon_max = region
    if not (lat_min < lat_max and lon_min < lon_max and pixel_degrees > 0):
        raise ValueError(f"invalid base-map region {region} or pixel size {pixel_degrees}")
    width = max(1, int(round((lon_max - lon_min) / pixel_degrees)))
    height = max(1, int(round((lat_max - lat_min) / pixel_degrees)))
    bands = basemap_rgb(Landscape(seed), region, width, height)

    path = Path(path)
    temporary = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    profile = dict(
        driver="GTiff", width=width, height=height, count=3, dtype="uint8", crs="EPSG:4326",
        transform=from_bounds(lon_min, lat_min, lon_max, lat_max, width, height),
        photometric="RGB", compress="deflate", predictor=2, tiled=True, blockxsize=256, blockysize=256,
    )
    try:
        with rasterio.open(temporary, "w", **profile) as dataset:
            dataset.write(bands)
            dataset.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
            dataset.update_tags(TIFFTAG_IMAGEDESCRIPTION=f"Shaded land cover of the synthetic ATL08 sample landscape (seed {seed})")
            # Overviews keep the map quick to draw when zoomed out in QGIS.
            dataset.build_overviews([2, 4, 8], rasterio.enums.Resampling.average)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
