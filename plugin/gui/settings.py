"""What the dialog remembers between sessions: one typed value, read from and written to QgsSettings.

The keys are the ones the dialog has always used (``canopy_explorer/query/<field name>``), so a user's
settings carry over. The database's credentials are never among them: only the id of the QGIS
authentication configuration that holds them (``auth_config``); the keys stay in QGIS's encrypted
authentication database.
"""

from dataclasses import dataclass, field, fields, replace
from typing import Tuple

from qgis.core import QgsSettings

from ..core.sentinel2.stac_search import default_stac_source

PREFIX = "canopy_explorer/query/"
DEFAULT_VARIABLES = ("h_canopy",)


@dataclass
class ExplorerSettings:
    # the ATL08 database (DatabaseBox)
    database_choice: int = 0  # the row in the database list: public, sample, other
    database: str = ""  # for "other": a configuration file, a database folder or an s3:// URI
    endpoint: str = ""
    auth_config: str = ""  # the id of a QGIS authentication configuration, never a key or a secret
    # what the ATL08 workflows read (VariablePicker, FilterEditor)
    variables: Tuple[str, ...] = DEFAULT_VARIABLES  # "name" or "name:label"; the first names the layer
    filters: str = ""  # the free-text conditions, one per line
    # the ATL08 query's output
    output_format: int = 0  # the row in the format list: temporary layer, then segment_files.FORMATS
    output_path: str = ""
    max_rows: int = 2_000_000
    exact_times: bool = False
    # natural-breaks classes of the last styled result (query, nearest, composites, statistics)
    classes: int = 5
    # NDVI composites
    ndvi_years: str = "2019, 2024"
    stac_connection: str = ""  # the name of a STAC connection saved in QGIS (3.40+), never its credentials
    stac_url: str = field(default_factory=lambda: default_stac_source().url)
    stac_collection: str = field(default_factory=lambda: default_stac_source().collection)
    ndvi_folder: str = ""
    max_cloud: float = 20.0

    @classmethod
    def load(cls) -> "ExplorerSettings":
        """The stored settings; a missing or unreadable value (edited by hand, an older release) is its default."""
        stored = QgsSettings()
        defaults = cls()
        values = {}
        for item in fields(cls):
            raw = stored.value(PREFIX + item.name)
            if raw is not None:
                values[item.name] = _read(raw, getattr(defaults, item.name))
        return replace(defaults, **values)

    def save(self) -> None:
        stored = QgsSettings()
        for item in fields(self):
            value = getattr(self, item.name)
            stored.setValue(PREFIX + item.name, ",".join(value) if isinstance(value, tuple) else value)

    @staticmethod
    def clear() -> None:
        """Forget every stored setting (the next load gives the defaults)."""
        QgsSettings().remove(PREFIX.rstrip("/"))


def _read(raw, default):
    """A stored value as the type of its default. QgsSettings hands back strings for values read from its
    .ini file ("true", "5"), the type written otherwise."""
    try:
        if isinstance(default, bool):
            return raw if isinstance(raw, bool) else str(raw).strip().lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, tuple):
            items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
            return tuple(item.strip() for item in items if item.strip())
        return str(raw)
    except (TypeError, ValueError):
        return default
