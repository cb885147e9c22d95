"""Sentinel-2 L2A scenes from a STAC API: where the source is, and which scenes a year has.

    source = load_stac_source("configs/stac_earth_search.yaml")      # or default_stac_source()
    scenes = search_scenes(source, boundary_wgs84, 2024, max_cloud=20)
    found = find_scenes(source, boundary_wgs84, 2024, max_cloud=20)     # and why scenes were left out

The search goes through pystac-client with ``intersects`` (the boundary, or a
covering simplification when it has many vertices), ``datetime`` for the whole
year, the cloud-cover condition in the query extension's dict form
(``{"eo:cloud_cover": {"lt": 20}}``) and every page. What the server returns is
checked again here: a server that ignores ``query`` or ``intersects`` (several do)
must not let a cloudy or distant scene into a composite. When no scene is left,
``find_scenes`` says why: none at all over the region that year, or only cloudier ones
(then it searches again without the cloud condition, to count them).
"""

import datetime as dt
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..callbacks import Log
from ..errors import ConfigurationError, QueryError, StorageError
from ..lidar.config import check_type, read_yaml
from ..polygons import area_of
from .ndvi import DEFAULT_SCL_MASK_CLASSES, OFFSET_POLICIES

ROLES = ("red", "nir", "scl")
FIRST_YEAR = 2015  # Sentinel-2A launched in June 2015
DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "stac_earth_search.yaml"


@dataclass(frozen=True)
class StacSource:
    """A STAC API and how to read Sentinel-2 L2A items from it."""

    url: str = "https://earth-search.aws.element84.com/v1"
    collection: str = "sentinel-2-c1-l2a"
    red_asset: str = "red"
    nir_asset: str = "nir"
    scl_asset: str = "scl"
    cloud_property: str = "eo:cloud_cover"
    baseline_property: str = "s2:processing_baseline"
    scl_mask_classes: Tuple[int, ...] = DEFAULT_SCL_MASK_CLASSES
    offset_policy: str = "auto"
    page_size: int = 100
    max_search_vertices: int = 500
    retries: int = 3
    retry_delay_s: float = 1.0
    timeout_s: float = 30.0
    gdal_options: Mapping[str, str] = field(default_factory=dict)
    source: str = "<in memory>"  # the file this came from, for messages
    # HTTP headers every request to the STAC API carries (an Authorization header from a QGIS
    # authentication configuration, a saved connection's own headers). Given by the caller for one run,
    # never read from or written to a configuration file; kept out of repr so no message or log shows them.
    # They go to the API only: the scenes' assets are often on other hosts (buckets, signed URLs).
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def asset_keys(self) -> Dict[str, str]:
        """Role ("red", "nir", "scl") to the catalogue's asset key."""
        return {"red": self.red_asset, "nir": self.nir_asset, "scl": self.scl_asset}

    def gdal_env(self) -> Dict[str, Any]:
        """GDAL options for ``rasterio.Env`` (whole numbers as int: rasterio needs GDAL_CACHEMAX so).

        GDAL waits for an HTTP answer for ever unless told otherwise, so an asset server that
        stalls would hang the composite: timeout_s bounds each request unless the config sets
        GDAL's own timeouts."""
        options = {"GDAL_HTTP_TIMEOUT": math.ceil(self.timeout_s), "GDAL_HTTP_CONNECTTIMEOUT": math.ceil(self.timeout_s)}
        options.update({key: int(value) if str(value).isdigit() else value for key, value in self.gdal_options.items()})
        return options

    def with_changes(self, **changes) -> "StacSource":
        source = replace(self, **changes)
        source.validate()
        return source

    def validate(self) -> None:
        where = f"in {self.source}"
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise ConfigurationError(f"stac.url {where} must be an http(s) URL, not {self.url!r}")
        if not self.collection:
            raise ConfigurationError(f"stac.collection {where} must name a collection")
        for role, key in self.asset_keys.items():
            if not key:
                raise ConfigurationError(f"stac.assets.{role} {where} must name an asset key")
        if self.offset_policy not in OFFSET_POLICIES:
            raise ConfigurationError(f"stac.offset_policy {where} must be one of {', '.join(OFFSET_POLICIES)}, not {self.offset_policy!r}")
        if any(not isinstance(c, int) or isinstance(c, bool) or not 0 <= c <= 11 for c in self.scl_mask_classes):
            raise ConfigurationError(f"stac.scl_mask_classes {where} must be SCL classes between 0 and 11")
        for key in ("page_size", "max_search_vertices"):
            if getattr(self, key) < 1:
                raise ConfigurationError(f"stac.{key} {where} must be a positive integer")
        if self.retries < 0 or self.retry_delay_s < 0 or self.timeout_s <= 0:
            raise ConfigurationError(f"stac.retries, retry_delay_s and timeout_s {where} must be positive")
        if not isinstance(self.headers, Mapping) or any(not isinstance(k, str) or not k or not isinstance(v, str)
                                                        for k, v in self.headers.items()):
            raise ConfigurationError(f"the HTTP headers of the STAC API {self.url} must be names and values (text)")


# --------------------------------------------------------------------------- configuration

_SCALAR_KEYS = {
    "url": (str, "url"),
    "collection": (str, "collection"),
    "cloud_property": (str, "cloud_property"),
    "baseline_property": (str, "baseline_property"),
    "offset_policy": (str, "offset_policy"),
    "page_size": (int, "page_size"),
    "max_search_vertices": (int, "max_search_vertices"),
    "retries": (int, "retries"),
    "retry_delay_s": (float, "retry_delay_s"),
    "timeout_s": (float, "timeout_s"),
}


def source_from_mapping(document: Mapping[str, Any], source: str = "<in memory>") -> StacSource:
    """A validated :class:`StacSource` from a parsed YAML document with a ``stac:`` block."""
    if not isinstance(document, Mapping) or not isinstance(document.get("stac"), Mapping):
        raise ConfigurationError(f"{source} must contain a 'stac:' block")
    values: Dict[str, Any] = {"source": source}
    for key, value in document["stac"].items():
        if key in _SCALAR_KEYS:
            expected, name = _SCALAR_KEYS[key]
            check_type(value, expected, key, source, block="stac")
            values[name] = float(value) if expected is float else value
        elif key == "assets":
            if not isinstance(value, Mapping) or set(value) - set(ROLES):
                raise ConfigurationError(f"stac.assets in {source} must map {', '.join(ROLES)} to asset keys")
            for role, asset_key in value.items():
                check_type(asset_key, str, f"assets.{role}", source, block="stac")
                values[f"{role}_asset"] = asset_key
        elif key == "scl_mask_classes":
            if not isinstance(value, list):
                raise ConfigurationError(f"stac.scl_mask_classes in {source} must be a list of SCL classes, like [0, 1, 3, 8, 9, 10]")
            for item in value:
                check_type(item, int, "scl_mask_classes", source, block="stac")
            values["scl_mask_classes"] = tuple(value)
        elif key == "gdal":
            if not isinstance(value, Mapping):
                raise ConfigurationError(f"stac.gdal in {source} must be a mapping of GDAL configuration options")
            values["gdal_options"] = {str(k): str(v) for k, v in value.items()}
        else:
            raise ConfigurationError(f"unknown key stac.{key} in {source}")
    stac_source = StacSource(**values)
    stac_source.validate()
    return stac_source


def load_stac_source(path) -> StacSource:
    """Read and validate a STAC source configuration (see ``configs/stac_earth_search.yaml``)."""
    path = Path(path)
    return source_from_mapping(read_yaml(path), source=str(path))


def default_stac_source(**changes) -> StacSource:
    """Earth Search v1 from ``configs/stac_earth_search.yaml``, with any field changed
    (``default_stac_source(url=..., collection=...)`` as the Processing algorithm does)."""
    source = load_stac_source(DEFAULT_CONFIG) if DEFAULT_CONFIG.exists() else StacSource(source="built-in defaults")
    return source.with_changes(**changes) if changes else source


# --------------------------------------------------------------------------- scenes


@dataclass(frozen=True)
class SceneAsset:
    """One band of a scene: where it is and how its DN become reflectance (from ``raster:bands``)."""

    key: str
    href: str
    scale: Optional[float] = None
    offset: Optional[float] = None
    nodata: Optional[float] = None


@dataclass(frozen=True)
class Scene:
    """A Sentinel-2 L2A item, as much of it as a composite needs."""

    id: str
    datetime: dt.datetime
    geometry: Any  # shapely footprint in EPSG:4326
    cloud_cover: Optional[float]
    processing_baseline: Optional[str]
    epsg: Optional[int]
    assets: Mapping[str, SceneAsset]  # by role: "red", "nir", "scl"; a missing band is absent

    @property
    def missing_roles(self) -> Tuple[str, ...]:
        return tuple(role for role in ROLES if role not in self.assets)


def parse_years(years) -> Tuple[int, ...]:
    """Years from ``"2019, 2024"``, ``[2019, 2024]`` or ``2024``; sorted, unique, each checked."""
    if isinstance(years, (int, str)):
        years = [years] if isinstance(years, int) else [part for part in str(years).replace(";", ",").split(",")]
    parsed = []
    last = dt.date.today().year
    for value in years:
        text = str(value).strip()
        if not text:
            continue
        if isinstance(value, bool) or not text.isdigit() or len(text) != 4:
            raise QueryError(f"invalid year {text!r}: write years as four digits, like 2019, 2024")
        year = int(text)
        if not FIRST_YEAR <= year <= last:
            raise QueryError(f"year {year} is outside the Sentinel-2 record ({FIRST_YEAR}-{last})")
        parsed.append(year)
    if not parsed:
        raise QueryError("no year given: enter one or more years, like 2019, 2024")
    return tuple(sorted(set(parsed)))


def _check_max_cloud(max_cloud) -> float:
    if isinstance(max_cloud, bool) or not isinstance(max_cloud, (int, float)) or not 0 < max_cloud <= 100:
        raise QueryError(f"the cloud-cover threshold must be a percentage above 0 and at most 100, not {max_cloud!r}")
    return float(max_cloud)


EMPTY_REGION = ("the region is empty: choose a region with an area (a polygon layer with at least one feature, "
                "or a region drawn on the map)")


def polygonal_boundary(boundary):
    """The boundary as a valid (multi)polygon, or a QueryError saying what is wrong with it."""
    import numpy as np
    import shapely

    if boundary is None or not isinstance(boundary, shapely.Geometry) or boundary.is_empty:
        raise QueryError(EMPTY_REGION)
    if not np.isfinite(shapely.get_coordinates(boundary)).all():
        raise QueryError("the region has coordinates that are not numbers (infinite or NaN, as a reprojection outside "
                         "the area of its coordinate reference system gives): check the layer's CRS or choose the region again")
    return area_of(boundary, "the boundary")


def search_geometry(boundary, max_vertices: int):
    """What ``intersects`` sends: the boundary itself, or for a complex one a simplification
    buffered by its tolerance, which still covers the boundary (the exact test follows locally).

    Never an empty geometry (a search with empty coordinates matches nothing, or everything, by server)."""
    import numpy as np
    import shapely

    if boundary is None or not isinstance(boundary, shapely.Geometry) or boundary.is_empty or boundary.area <= 0:
        raise QueryError(EMPTY_REGION)
    if not np.isfinite(shapely.get_coordinates(boundary)).all():
        raise QueryError("the region has coordinates that are not numbers: choose the region again")
    if shapely.get_num_coordinates(boundary) <= max_vertices:
        return boundary
    minx, miny, maxx, maxy = boundary.bounds
    tolerance = max(maxx - minx, maxy - miny) / 200.0
    for _ in range(8):
        covering = boundary.buffer(tolerance, join_style="mitre").simplify(tolerance / 2)
        covering = covering.buffer(tolerance, join_style="mitre")
        if not covering.is_empty and shapely.get_num_coordinates(covering) <= max_vertices and covering.covers(boundary):
            return covering
        tolerance *= 2
    return shapely.box(minx, miny, maxx, maxy)


def _float(value) -> Optional[float]:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _parse_datetime(text) -> Optional[dt.datetime]:
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def scene_from_item(item: Mapping[str, Any], source: StacSource) -> Scene:
    """A :class:`Scene` from a STAC item dictionary (assets by role, ``raster:bands`` scaling)."""
    from shapely.geometry import shape

    properties = item.get("properties") or {}
    assets = {}
    for role, key in source.asset_keys.items():
        asset = (item.get("assets") or {}).get(key)
        if not asset or not asset.get("href"):
            continue
        band = (asset.get("raster:bands") or [{}])[0] or {}
        assets[role] = SceneAsset(
            key=key, href=str(asset["href"]), scale=_float(band.get("scale")), offset=_float(band.get("offset")),
            nodata=_float(band.get("nodata")),
        )
    epsg = properties.get("proj:epsg")
    if epsg is None and str(properties.get("proj:code", "")).upper().startswith("EPSG:"):
        epsg = properties["proj:code"].split(":")[1]
    baseline = properties.get(source.baseline_property)
    return Scene(
        id=str(item.get("id")),
        datetime=_parse_datetime(properties.get("datetime") or properties.get("start_datetime")),
        geometry=shape(item["geometry"]) if item.get("geometry") else None,
        cloud_cover=_float(properties.get(source.cloud_property)),
        processing_baseline=None if baseline is None else str(baseline),
        epsg=int(epsg) if epsg is not None and str(epsg).isdigit() else None,
        assets=assets,
    )


def _stac_client(source: StacSource):
    from pystac_client import Client
    from pystac_client.stac_api_io import StacApiIO
    from urllib3.util.retry import Retry

    retry = Retry(
        total=source.retries, connect=source.retries, read=source.retries, status=source.retries,
        backoff_factor=source.retry_delay_s, status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "POST"}), raise_on_status=False,
    )
    stac_io = StacApiIO(headers=dict(source.headers), timeout=source.timeout_s, max_retries=retry)
    try:
        # Client.open hands its own timeout (None by default) to the stac_io it is given
        return Client.open(source.url, stac_io=stac_io, timeout=source.timeout_s), stac_io
    except BaseException:
        stac_io.session.close()
        raise


def _api_failure(source: StacSource, error: Exception) -> StorageError:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if len(text) > 300:
        text = text[:300] + "..."
    return StorageError(f"the STAC API at {source.url} did not answer the search (after {source.retries} retries): {text}")


@dataclass(frozen=True)
class SceneSearch:
    """What a year's search found: the scenes to composite and, when there are none, why.

    ``cloudy`` holds the cloud cover of every scene left out only for being at or above the
    threshold (over the region, of the collection and year, covering it when asked to);
    ``partial`` counts clear scenes left out only for not covering the whole region."""

    year: int
    max_cloud: float
    scenes: Tuple[Scene, ...]
    returned: int  # items the API sent back for the search with the cloud condition
    cloudy: Tuple[float, ...] = ()
    partial: int = 0
    cloudy_capped: bool = False  # the count of cloudy scenes stopped at the search's item limit

    def why_none(self, source: "StacSource") -> str:
        """Why the year has no scene, with what to do: for the message when ``scenes`` is empty."""
        where = f"the STAC API at {source.url}"
        if self.cloudy:
            count = f"at least {len(self.cloudy)}" if self.cloudy_capped else str(len(self.cloudy))
            lowest = _percent(min(self.cloudy))
            return (f"{where} has {count} {source.collection} scene(s) over this region in {self.year}, but every one has "
                    f"{source.cloud_property} at or above the {self.max_cloud:g}% threshold (the clearest {lowest}%): "
                    f"raise the cloud-cover threshold above {lowest}% to use them")
        if self.partial:
            return (f"{where} has {self.partial} {source.collection} scene(s) over part of this region in {self.year} "
                    "but none covering all of it: allow partial scenes (they are mosaicked) or choose a smaller region")
        return (f"{where} has no {source.collection} scenes over this region in {self.year}: "
                "check the region, the years and the collection name")


def _percent(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def search_scenes(source: StacSource, boundary_wgs84, year: int, max_cloud: float, cover_whole: bool = False, log: Optional[Log] = None) -> List[Scene]:
    """The scenes of ``year`` that intersect the boundary with cloud cover below ``max_cloud`` percent.

    ``boundary_wgs84`` is a shapely (multi)polygon in EPSG:4326. With ``cover_whole`` only
    scenes whose footprint covers the whole boundary are kept (the seed's rule); by default
    every intersecting scene is kept and the composite mosaics them. Scenes come back in
    time order; an empty list is a valid answer (``find_scenes`` says why).
    """
    return list(find_scenes(source, boundary_wgs84, year, max_cloud, cover_whole, log).scenes)


def find_scenes(source: StacSource, boundary_wgs84, year: int, max_cloud: float, cover_whole: bool = False,
                log: Optional[Log] = None, cloudy_limit: int = 1000) -> SceneSearch:
    """``search_scenes`` with the reasons scenes were left out.

    When nothing is kept and the server applied the cloud condition itself (so what it left out is
    unknown here), a second search without it counts the cloudier scenes (up to ``cloudy_limit``),
    so that "raise the threshold" is only said when it would help."""
    (year,) = parse_years([year])
    max_cloud = _check_max_cloud(max_cloud)
    boundary = polygonal_boundary(boundary_wgs84)
    minx, miny, maxx, maxy = boundary.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise QueryError("the boundary passed to the STAC search is not in EPSG:4326 longitude/latitude")
    intersects = search_geometry(boundary, source.max_search_vertices)
    items = _search_items(source, intersects, year, {source.cloud_property: {"lt": max_cloud}})
    found = _sort_items(items, source, boundary, year, max_cloud, cover_whole, log)
    cloudy, capped = found.cloudy, False
    if not found.scenes and not found.cloudy:
        unfiltered = _search_items(source, intersects, year, None, max_items=cloudy_limit)
        capped = len(unfiltered) >= cloudy_limit
        cloudy = _sort_items(unfiltered, source, boundary, year, max_cloud, cover_whole, None).cloudy
    _say(log, f"{year}: {len(found.scenes)} scene(s) with {source.cloud_property} < {max_cloud:g}% from {len(items)} "
              f"returned by {source.url}" + (f"; {len(cloudy)} left out as too cloudy" if cloudy else ""))
    return SceneSearch(year=year, max_cloud=max_cloud, scenes=found.scenes, returned=len(items), cloudy=cloudy,
                       partial=found.partial, cloudy_capped=capped)


def _search_items(source: StacSource, intersects, year: int, query, max_items: Optional[int] = None) -> List[Dict]:
    """Every item of the collection that the API finds for the year over ``intersects`` (all pages)."""
    from pystac_client.exceptions import APIError

    stac_io = None
    try:
        client, stac_io = _stac_client(source)
        search = client.search(
            method="POST",
            collections=[source.collection],
            intersects=intersects,
            datetime=f"{year}-01-01T00:00:00Z/{year}-12-31T23:59:59Z",
            query=query,
            limit=source.page_size if max_items is None else min(source.page_size, max_items),
            max_items=max_items,
        )
        return list(search.items_as_dicts())  # follows every "next" link
    except NotImplementedError as error:
        raise StorageError(f"{source.url} is not a STAC API with item search: {error}") from None
    except APIError as error:
        status = getattr(error, "status_code", None)
        if status in (401, 403):
            raise StorageError(f"the STAC API at {source.url} refused the search (HTTP {status}): it needs credentials; "
                               "choose its STAC connection saved in QGIS, with an authentication configuration "
                               "that may read it") from None
        raise _api_failure(source, error) from None
    except (OSError, ValueError, json.JSONDecodeError) as error:
        raise _api_failure(source, error) from None
    except Exception as error:  # requests' and pystac's own errors: unreachable, not JSON, not STAC
        raise _api_failure(source, error) from None
    finally:
        if stac_io is not None:
            stac_io.session.close()


def _sort_items(items, source: StacSource, boundary, year: int, max_cloud: float, cover_whole: bool, log: Optional[Log]) -> SceneSearch:
    """Items checked here as the server may not have: collection, year, footprint, then cloud cover last,
    so that a scene counts as too cloudy only when nothing else leaves it out."""
    start = dt.datetime(year, 1, 1, tzinfo=dt.timezone.utc)
    end = dt.datetime(year + 1, 1, 1, tzinfo=dt.timezone.utc)
    scenes, cloudy, partial, seen = [], [], 0, set()
    for item in items:
        scene = scene_from_item(item, source)
        if scene.id in seen:
            continue
        seen.add(scene.id)
        collection = item.get("collection")
        if collection and collection != source.collection:
            _say(log, f"{scene.id}: skipped, collection {collection} is not {source.collection}")
            continue
        if scene.datetime is None or not start <= scene.datetime < end:
            _say(log, f"{scene.id}: skipped, acquired {scene.datetime} outside {year}")
            continue
        if scene.geometry is None or not scene.geometry.intersects(boundary):
            _say(log, f"{scene.id}: skipped, its footprint does not intersect the boundary")
            continue
        clear = scene.cloud_cover is not None and scene.cloud_cover < max_cloud
        if cover_whole and not scene.geometry.covers(boundary):
            partial += clear
            _say(log, f"{scene.id}: skipped, its footprint does not cover the whole boundary")
            continue
        if not clear:
            if scene.cloud_cover is not None:
                cloudy.append(scene.cloud_cover)
            _say(log, f"{scene.id}: skipped, {source.cloud_property} {scene.cloud_cover} is not below {max_cloud:g}")
            continue
        scenes.append(scene)
    scenes.sort(key=lambda s: (s.datetime, s.id))
    return SceneSearch(year=year, max_cloud=max_cloud, scenes=tuple(scenes), returned=len(items), cloudy=tuple(cloudy),
                       partial=partial)


def _say(log: Optional[Log], message: str) -> None:
    if log is not None:
        log(message)


def utm_epsg(lon: float, lat: float) -> int:
    """The UTM zone's EPSG code (WGS 84 / UTM) at a position, for boundaries in degrees."""
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone
