"""District statistics in the background (embedded or in PostGIS), ending in a styled GeoPackage."""

from ..core.districts.statistics import DistrictStatsRequest
from ..layers.district_layer import write_district_stats
from .engine_task import EngineTask


class DistrictStatsTask(EngineTask):
    """``completed(StatsResult)``. A saved PostgreSQL connection (``postgres_connection``) expands its
    credentials inside the task; they never leave it."""

    def __init__(self, request: DistrictStatsRequest):
        super().__init__(f"District statistics to {request.output_gpkg}",
                         lambda progress, check_cancel, log: write_district_stats(request, progress, check_cancel, log))
        self.request = request
