"""The sample database, built in the background in the user's data folder when the plugin has none."""

from pathlib import Path

from qgis.core import QgsApplication

from ..core.lidar.config import DatabaseConfig
from ..core.samples.database import build_sample_database, sample_database_config
from ..processing.algorithm import SAMPLE_CONFIG
from .engine_task import EngineTask

BUNDLED_SAMPLE_CONFIG = SAMPLE_CONFIG  # configs/sample_local.yaml: the copy `make demo` builds in the repository


def user_sample_folder() -> Path:
    """Where the sample database goes when the plugin folder has none (a plugin installed from its zip):
    the QGIS profile's own folder, which the user can write and which survives plugin updates."""
    return Path(QgsApplication.qgisSettingsDirPath()) / "canopy_explorer" / "sample_data" / "atl08_db"


def sample_config() -> DatabaseConfig:
    """The database behind the dialog's "Sample database" choice: the repository's when ``make demo``
    built it, otherwise the user's copy (built on request)."""
    return sample_database_config(BUNDLED_SAMPLE_CONFIG, user_sample_folder())


class SampleDatabaseTask(EngineTask):
    """``completed(IngestReport or None)`` once the database is in place; cancel leaves nothing behind."""

    def __init__(self, config: DatabaseConfig):
        self.config = config
        super().__init__(f"Build the Canopy Explorer sample database in {config.base_uri}",
                         lambda progress, check_cancel, log: build_sample_database(config, progress, check_cancel, log))
