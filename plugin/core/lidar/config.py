"""Database configuration files (YAML, in the format of the public database's configuration).

    tiledb:
      storage_type: 's3'            # or 'local'
      s3_bucket: "dog-ext.icesat2db.icesat2-atl08-v007"
      url: "https://s3.gfz-potsdam.de"
      latitude_tile: 6              # write tiles of latitude_tile x 5 degrees
      ...

Loading checks every key and type and names the file and key in the error.
"""

import datetime as dt
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple
from urllib.parse import urlparse

from ..errors import ConfigurationError

ARRAY_NAME = "array_uri"
LEDGER_NAME = "ingest_ledger"
EPOCH = dt.date(1970, 1, 1)
# TileDB takes any capacity up to 2**64 - 1 in a schema, but reserves a whole tile's memory per
# attribute when writing: 2**32 cells fail with bad_alloc on a 24 GB machine, 2**64 is a TypeError.
# A thousand times the public layout's 100000 is far beyond any useful tile.
MAX_CAPACITY = 100_000_000
ZSTD_LEVELS = (-7, 22)  # what Zstandard offers; TileDB silently clamps other values


@dataclass(frozen=True)
class DatabaseConfig:
    storage_type: str = "local"
    local_path: Optional[str] = None
    s3_bucket: Optional[str] = None
    url: Optional[str] = None
    s3_region: str = "eu-central-1"
    anonymous: bool = False
    overwrite: bool = False
    temporal_batching: str = "annual"
    latitude_tile: int = 6
    longitude_tile: int = 6
    flush_every: int = 20000
    time_start: dt.date = dt.date(2018, 1, 1)
    time_end: dt.date = dt.date(2035, 12, 31)
    lat_min: float = -90.0
    lat_max: float = 90.0
    lon_min: float = -180.0
    lon_max: float = 180.0
    # Not in the repr (nor str): it may hold the access keys read from QGIS's authentication database.
    s3_settings: Mapping[str, str] = field(default_factory=dict, repr=False)
    cell_order: str = "hilbert"
    capacity: int = 100000
    use_filters: bool = True
    spatial_zstd_level: int = 1
    timestamp_zstd_level: int = 2
    attribute_zstd_level: int = 3
    source: str = "<in memory>"  # the file this came from, for messages
    product: str = "atl08"  # the lidar product stored (lidar/products.py): ATL08 unless the file says otherwise

    # ---------------------------------------------------------------- locations

    @property
    def base_uri(self) -> str:
        if self.storage_type == "s3":
            return f"s3://{self.s3_bucket}"
        return str(expanded_path(self.local_path, f"tiledb.local_path in {self.source}"))

    @property
    def array_uri(self) -> str:
        return f"{self.base_uri.rstrip('/')}/{ARRAY_NAME}"

    @property
    def ledger_uri(self) -> str:
        return f"{self.base_uri.rstrip('/')}/{LEDGER_NAME}"

    @property
    def tile_degrees(self) -> Tuple[float, float]:
        """Latitude and longitude extent of one write tile (``*_tile`` x 5 degrees)."""
        return self.latitude_tile * 5.0, self.longitude_tile * 5.0

    @property
    def time_domain(self) -> Tuple[int, int]:
        """The ``time`` dimension's domain in whole days since 1970-01-01."""
        return (self.time_start - EPOCH).days, (self.time_end - EPOCH).days

    def tiledb_config(self) -> Dict[str, str]:
        """TileDB configuration parameters for this database (S3 endpoint, timeouts, signing)."""
        if self.storage_type != "s3":
            return {}
        settings = {"vfs.s3.region": self.s3_region}
        if self.url:
            parsed = urlparse(self.url)
            settings["vfs.s3.endpoint_override"] = parsed.netloc or parsed.path
            settings["vfs.s3.scheme"] = parsed.scheme or "https"
            settings["vfs.s3.use_virtual_addressing"] = "false"  # path style, as Ceph and test servers need
        if self.anonymous:
            settings["vfs.s3.no_sign_request"] = "true"
        for key, value in self.s3_settings.items():
            settings[f"vfs.s3.{key}"] = str(value)
        return settings

    def with_changes(self, **changes) -> "DatabaseConfig":
        config = replace(self, **changes)
        config.validate()
        return config

    def validate(self) -> None:
        where = f"in {self.source}"
        from .products import PRODUCT_PACKAGES

        if self.product not in PRODUCT_PACKAGES:
            raise ConfigurationError(f"tiledb.product {where} is {shown_value(self.product)}: this version stores "
                                     f"{', '.join(sorted(PRODUCT_PACKAGES))}")
        if self.storage_type not in ("local", "s3"):
            raise ConfigurationError(f"tiledb.storage_type {where} must be 'local' or 's3', not {self.storage_type!r}")
        if self.storage_type == "local" and not self.local_path:
            raise ConfigurationError(f"tiledb.local_path {where} is required when storage_type is 'local'")
        if self.storage_type == "s3" and not self.s3_bucket:
            raise ConfigurationError(f"tiledb.s3_bucket {where} is required when storage_type is 's3'")
        if self.temporal_batching not in ("annual", "none"):
            raise ConfigurationError(f"tiledb.temporal_batching {where} must be 'annual' or 'none'")
        for key in ("latitude_tile", "longitude_tile", "flush_every", "capacity"):
            if not isinstance(getattr(self, key), int) or isinstance(getattr(self, key), bool) or getattr(self, key) < 1:
                raise ConfigurationError(f"tiledb.{key} {where} must be a positive integer, not {getattr(self, key)!r}")
        if self.capacity > MAX_CAPACITY:
            raise ConfigurationError(
                f"tiledb.capacity {where} is {self.capacity}: it must be at most {MAX_CAPACITY} cells per data tile "
                f"(TileDB reserves memory for a whole tile when writing; the public database uses 100000)"
            )
        for key in ("spatial_zstd_level", "timestamp_zstd_level", "attribute_zstd_level"):
            level = getattr(self, key)
            if not isinstance(level, int) or isinstance(level, bool) or not ZSTD_LEVELS[0] <= level <= ZSTD_LEVELS[1]:
                raise ConfigurationError(f"tiledb.{key} {where} must be a Zstandard level from {ZSTD_LEVELS[0]} to {ZSTD_LEVELS[1]}, not {level!r}")
        if 180 % (self.latitude_tile * 5) or 360 % (self.longitude_tile * 5):
            raise ConfigurationError(f"tiledb.latitude_tile/longitude_tile {where} must divide the globe into whole tiles (x 5 degrees)")
        if self.cell_order not in ("hilbert", "row-major", "col-major"):
            raise ConfigurationError(f"tiledb.cell_order {where} must be 'hilbert', 'row-major' or 'col-major'")
        if self.time_end <= self.time_start:
            raise ConfigurationError(f"tiledb.time_range {where}: end_time must be after start_time")
        if not (-90 <= self.lat_min < self.lat_max <= 90 and -180 <= self.lon_min < self.lon_max <= 180):
            raise ConfigurationError(f"tiledb.spatial_range {where} must lie within -90..90 and -180..180 with min < max")


# --------------------------------------------------------------------------- loading

_SCALAR_KEYS = {
    # key: (type(s), DatabaseConfig field)
    "storage_type": (str, "storage_type"),
    "local_path": (str, "local_path"),
    "s3_bucket": (str, "s3_bucket"),
    "url": (str, "url"),
    "s3_region": (str, "s3_region"),
    "anonymous": (bool, "anonymous"),
    "overwrite": (bool, "overwrite"),
    "temporal_batching": (str, "temporal_batching"),
    "latitude_tile": (int, "latitude_tile"),
    "longitude_tile": (int, "longitude_tile"),
    "flush_every": (int, "flush_every"),
    "cell_order": (str, "cell_order"),
    "capacity": (int, "capacity"),
    "use_filters": (bool, "use_filters"),
    "spatial_zstd_level": (int, "spatial_zstd_level"),
    "timestamp_zstd_level": (int, "timestamp_zstd_level"),
    "attribute_zstd_level": (int, "attribute_zstd_level"),
    "product": (str, "product"),
}
DIMENSIONS = ("latitude", "longitude", "time")  # every lidar product's array: where and when each segment is
_KNOWN_DIMENSIONS = list(DIMENSIONS)


def check_type(value, expected, key, source, block: str = "tiledb"):
    """Raise a ConfigurationError naming ``block.key`` and the file unless ``value`` is of type ``expected``
    (a bool is not an int; an int is a float)."""
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok:
        raise ConfigurationError(
            f"{block}.{key} in {source} must be {expected.__name__}, not {type(value).__name__} ({shown_value(value)})"
        )


def shown_value(value, limit: int = 60) -> str:
    """A value as messages quote it: never more than ``limit`` characters, whatever the file held."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 5] + " ...'"


def expanded_path(text, key: str) -> Path:
    """``~`` and ``~user`` expanded, or a ConfigurationError naming ``key`` when there is no such home folder."""
    try:
        return Path(str(text)).expanduser()
    except RuntimeError:  # Python 3.11's message: "Could not determine home directory."
        user = str(text).split("/", 1)[0]
        raise ConfigurationError(f"{key} is {shown_value(str(text))}: {user!r} names no user with a home folder here; "
                                 "write the folder in full") from None


def _date(value, key, source) -> dt.date:
    if isinstance(value, dt.datetime):  # YAML reads 2018-01-01 12:00:00 as a date and time
        if value.time() == dt.time(0) and value.tzinfo is None:
            return value.date()
        raise ConfigurationError(f"tiledb.{key} in {source} must be a date like 2018-01-01, not a date and time "
                                 f"({value.isoformat(sep=' ')}): the database's time dimension holds whole days")
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigurationError(f"tiledb.{key} in {source} must be a date like 2018-01-01, not {shown_value(value)}") from None


def config_from_mapping(document: Mapping[str, Any], source: str = "<in memory>", base_dir: Optional[Path] = None) -> DatabaseConfig:
    """Build a validated configuration from a parsed YAML document."""
    if not isinstance(document, Mapping) or not isinstance(document.get("tiledb"), Mapping):
        raise ConfigurationError(f"{source} must contain a 'tiledb:' block")
    for name in document:
        if name != "tiledb":
            raise ConfigurationError(f"unknown block {shown_value(name)} in {source}: a database configuration has only a "
                                     "'tiledb:' block")
    block = document["tiledb"]
    values: Dict[str, Any] = {"source": source}
    for key, value in block.items():
        if key in _SCALAR_KEYS:
            expected, name = _SCALAR_KEYS[key]
            check_type(value, expected, key, source)
            values[name] = value
        elif key == "time_range":
            if not isinstance(value, Mapping) or set(value) - {"start_time", "end_time"}:
                raise ConfigurationError(f"tiledb.time_range in {source} must have start_time and end_time")
            if "start_time" in value:
                values["time_start"] = _date(value["start_time"], "time_range.start_time", source)
            if "end_time" in value:
                values["time_end"] = _date(value["end_time"], "time_range.end_time", source)
        elif key == "spatial_range":
            allowed = {"lat_min", "lat_max", "lon_min", "lon_max"}
            if not isinstance(value, Mapping) or set(value) - allowed:
                raise ConfigurationError(f"tiledb.spatial_range in {source} may only have {', '.join(sorted(allowed))}")
            for sub, number in value.items():
                check_type(number, float, f"spatial_range.{sub}", source)
                values[sub] = float(number)
        elif key == "s3_settings":
            if not isinstance(value, Mapping):
                raise ConfigurationError(f"tiledb.s3_settings in {source} must be a mapping of TileDB vfs.s3 settings")
            values["s3_settings"] = {str(k): str(v) for k, v in value.items()}
        elif key == "dimensions":
            if not isinstance(value, list) or value != _KNOWN_DIMENSIONS:
                raise ConfigurationError(f"tiledb.dimensions in {source} must be the list {_KNOWN_DIMENSIONS}, "
                                         f"not {shown_value(value)}")
        else:
            raise ConfigurationError(f"unknown key tiledb.{shown_value(key, 40).strip(chr(39))} in {source}")
    if values.get("local_path") and base_dir is not None:
        key = f"tiledb.local_path in {source}"
        path = expanded_path(values["local_path"], key)
        try:
            values["local_path"] = str(path if path.is_absolute() else _resolved(base_dir / path))
        except OSError as error:
            raise ConfigurationError(f"{key} ({path}) cannot be followed: {error.strerror or error}") from None
    config = DatabaseConfig(**values)
    config.validate()
    config.base_uri  # noqa: B018 (a '~user' that names nobody is an error now, naming the key)
    return config


def _resolved(path: Path) -> str:
    """``path`` with its symbolic links followed; OSError for a loop. (A path that does not exist yet is
    fine: a database is created there. Path.resolve raised RuntimeError for a loop up to Python 3.12 and
    from 3.13 returns the looping path unchanged, so the loop is found with a strict realpath.)"""
    try:
        return os.path.realpath(path, strict=True)
    except FileNotFoundError:
        return os.path.realpath(path)


MAX_CONFIG_BYTES = 64 * 1024  # the shipped configurations are about 1 kB
MAX_FLOW_NESTING = 20  # a configuration's lists and mappings in brackets go two deep


def _flow_depth(text: str) -> int:
    """How deep [ and { nest (brackets inside quotes counted too: an overestimate, which is safe)."""
    depth = deepest = 0
    for character in text:
        if character in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif character in "]}":
            depth = max(0, depth - 1)
    return deepest


def read_yaml(path) -> Any:
    """A configuration file's parsed YAML, or a ConfigurationError naming the file.

    Read as UTF-8 text of at most ``MAX_CONFIG_BYTES``, with a safe loader that refuses anchors
    and aliases (a few hundred bytes of nested aliases expand to gigabytes: the 'billion laughs')
    and a key given twice (YAML would keep the last one silently)."""
    import yaml

    path = Path(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigurationError(f"{path} is {path.stat().st_size:,} bytes: a configuration is a few hundred bytes of "
                                     "YAML; is it the right file?")
        data = path.read_bytes()
    except OSError as error:
        raise ConfigurationError(f"cannot read configuration {path}: {error.strerror or error}") from None
    text = _configuration_text(data, path)
    if _flow_depth(text) > MAX_FLOW_NESTING:  # PyYAML scans nested [ and { in quadratic time: 5,000 take 10 s
        raise ConfigurationError(f"{path} nests brackets more than {MAX_FLOW_NESTING} deep: it is not a configuration")
    try:
        # B506: the loader is PyYAML's SafeLoader, further refusing anchors, aliases and repeated keys
        return yaml.load(text, Loader=_configuration_loader())  # nosec B506
    except _Refused as error:
        raise ConfigurationError(f"{path}, line {error.line}: {error.message}") from None
    except RecursionError:
        raise ConfigurationError(f"{path} is nested too deeply to be a configuration") from None
    except (yaml.YAMLError, ValueError) as error:  # ValueError: YAML dates such as 2018-13-01
        raise ConfigurationError(f"{path} is not valid YAML: {str(error)[:300]}") from None


def _configuration_text(data: bytes, path: Path) -> str:
    """The file as text, or a ConfigurationError saying what it is instead (UTF-16, binary, Latin-1)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigurationError(f"{path} is saved as UTF-16 (or UTF-32) text: save it as UTF-8")
    if b"\x00" in data:
        raise ConfigurationError(f"{path} holds NUL bytes: it is a binary file (or UTF-16 text without a byte-order "
                                 "mark), not a YAML configuration")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise ConfigurationError(f"{path} is not UTF-8 text: byte 0x{data[error.start]:02x} at line {line}, column {column} "
                                 "(Latin-1 or Windows-1252?); save it as UTF-8") from None


class _Refused(Exception):
    def __init__(self, message: str, mark):
        super().__init__(message)
        self.message = message
        self.line = mark.line + 1 if mark is not None else "?"


def _configuration_loader():
    """PyYAML's SafeLoader without anchors, aliases or repeated keys."""
    import yaml

    class ConfigurationLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise _Refused(f"anchors and aliases (&{event.anchor}, *{event.anchor}) are not allowed in a configuration: "
                               "write each value out", event.start_mark)
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    repeated = key in seen
                except TypeError:  # an unhashable key: PyYAML says so below
                    continue
                if repeated:
                    raise _Refused(f"the key {shown_value(key, 40)} appears twice in the same block: keep one", key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep)

    return ConfigurationLoader


def load_config(path) -> DatabaseConfig:
    """Read and validate a YAML configuration; relative ``local_path`` is relative to the file."""
    path = Path(path)
    return config_from_mapping(read_yaml(path), source=str(path), base_dir=path.parent)


def local_config(path, **overrides) -> DatabaseConfig:
    """A configuration for a database in a local folder, with the public layout's defaults."""
    return DatabaseConfig(storage_type="local", local_path=str(path), source=str(path), **overrides).with_changes()


def config_from_source(source, endpoint: Optional[str] = None) -> DatabaseConfig:
    """A configuration from what a user types or picks: a YAML file, a local folder or an S3 URI.

    A folder may be the database folder (holding ``array_uri``) or the array itself.
    ``s3://bucket/prefix`` reads the database under that prefix; ``endpoint`` is the
    S3 server's URL when it is not AWS.
    """
    text = str(source).strip()
    if not text:
        raise ConfigurationError("no database given: choose a configuration file, a folder or an s3:// URI")
    if text.startswith("s3://"):
        bucket = text[len("s3://"):].strip("/")
        if not bucket:
            raise ConfigurationError(f"{text} names no bucket")
        if bucket.endswith("/" + ARRAY_NAME):
            bucket = bucket[: -len(ARRAY_NAME) - 1]
        return DatabaseConfig(storage_type="s3", s3_bucket=bucket, url=endpoint or None, source=text).with_changes()
    if "\x00" in text:
        raise ConfigurationError("the database location contains a NUL character: choose a configuration file, a folder "
                                 "or an s3:// URI")
    path = expanded_path(text, "the database location")
    if path.suffix.lower() in (".yaml", ".yml"):
        return load_config(path)
    if path.is_symlink() and not path.exists():
        raise ConfigurationError(f"{path} is a symbolic link that leads nowhere (its target is missing, or it loops)")
    if not path.exists():
        raise ConfigurationError(f"{path} does not exist: choose a configuration file (.yaml), a database folder or an s3:// URI")
    if not path.is_dir():
        raise ConfigurationError(f"{path} is neither a configuration file (.yaml) nor a database folder")
    if path.name == ARRAY_NAME:
        path = path.parent
    return local_config(path)
