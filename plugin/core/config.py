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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple
from urllib.parse import urlparse

from .errors import ConfigurationError

ARRAY_NAME = "array_uri"
LEDGER_NAME = "ingest_ledger"
EPOCH = dt.date(1970, 1, 1)


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
    s3_settings: Mapping[str, str] = field(default_factory=dict)
    cell_order: str = "hilbert"
    capacity: int = 100000
    use_filters: bool = True
    spatial_zstd_level: int = 1
    timestamp_zstd_level: int = 2
    attribute_zstd_level: int = 3
    source: str = "<in memory>"  # the file this came from, for messages

    # ---------------------------------------------------------------- locations

    @property
    def base_uri(self) -> str:
        if self.storage_type == "s3":
            return f"s3://{self.s3_bucket}"
        return str(Path(self.local_path).expanduser())

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
        if self.storage_type not in ("local", "s3"):
            raise ConfigurationError(f"tiledb.storage_type {where} must be 'local' or 's3', not {self.storage_type!r}")
        if self.storage_type == "local" and not self.local_path:
            raise ConfigurationError(f"tiledb.local_path {where} is required when storage_type is 'local'")
        if self.storage_type == "s3" and not self.s3_bucket:
            raise ConfigurationError(f"tiledb.s3_bucket {where} is required when storage_type is 's3'")
        if self.temporal_batching not in ("annual", "none"):
            raise ConfigurationError(f"tiledb.temporal_batching {where} must be 'annual' or 'none'")
        for key in ("latitude_tile", "longitude_tile", "flush_every", "capacity"):
            if getattr(self, key) < 1:
                raise ConfigurationError(f"tiledb.{key} {where} must be a positive integer")
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
}
_KNOWN_DIMENSIONS = ["latitude", "longitude", "time"]


def check_type(value, expected, key, source, block: str = "tiledb"):
    """Raise a ConfigurationError naming ``block.key`` and the file unless ``value`` is of type ``expected``
    (a bool is not an int; an int is a float)."""
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok:
        raise ConfigurationError(
            f"{block}.{key} in {source} must be {expected.__name__}, not {type(value).__name__} ({value!r})"
        )


def _date(value, key, source) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigurationError(f"tiledb.{key} in {source} must be a date like 2018-01-01, not {value!r}") from None


def config_from_mapping(document: Mapping[str, Any], source: str = "<in memory>", base_dir: Optional[Path] = None) -> DatabaseConfig:
    """Build a validated configuration from a parsed YAML document."""
    if not isinstance(document, Mapping) or not isinstance(document.get("tiledb"), Mapping):
        raise ConfigurationError(f"{source} must contain a 'tiledb:' block")
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
            if list(value) != _KNOWN_DIMENSIONS:
                raise ConfigurationError(f"tiledb.dimensions in {source} must be {_KNOWN_DIMENSIONS}")
        else:
            raise ConfigurationError(f"unknown key tiledb.{key} in {source}")
    if values.get("local_path") and base_dir is not None:
        path = Path(values["local_path"]).expanduser()
        values["local_path"] = str(path if path.is_absolute() else (base_dir / path).resolve())
    config = DatabaseConfig(**values)
    config.validate()
    return config


def read_yaml(path) -> Any:
    """A configuration file's parsed YAML, or a ConfigurationError naming the file."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigurationError(f"cannot read configuration {path}: {error.strerror or error}") from None
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as error:  # ValueError: YAML dates such as 2018-13-01
        raise ConfigurationError(f"{path} is not valid YAML: {error}") from None


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
    path = Path(text).expanduser()
    if path.suffix.lower() in (".yaml", ".yml"):
        return load_config(path)
    if not path.exists():
        raise ConfigurationError(f"{path} does not exist: choose a configuration file (.yaml), a database folder or an s3:// URI")
    if not path.is_dir():
        raise ConfigurationError(f"{path} is neither a configuration file (.yaml) nor a database folder")
    if path.name == ARRAY_NAME:
        path = path.parent
    return local_config(path)
