"""The sample database, built in the background in the user's data folder when the plugin has none."""

from ..core.lidar.config import DatabaseConfig
from ..core.samples.database import build_sample_database
from .engine_task import EngineTask


class SampleDatabaseTask(EngineTask):
    """``completed(IngestReport or None)`` once the database is in place; cancel leaves nothing behind."""

    def __init__(self, config: DatabaseConfig):
        self.config = config
        super().__init__(f"Build the Canopy Explorer sample database in {config.base_uri}",
                         lambda progress, check_cancel, log: build_sample_database(config, progress, check_cancel, log))
