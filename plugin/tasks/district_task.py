"""District statistics in the background (embedded or in PostGIS), ending in a styled GeoPackage."""

from typing import Optional

from ..layers.district_layer import write_district_stats
from .engine_task import EngineTask


class DistrictStatsTask(EngineTask):
    """``completed(StatsResult)``. The PostgreSQL connection string is expanded from the saved
    connection inside the task and never leaves it."""

    def __init__(self, districts, rasters, output_gpkg: str, connection_name: str = "", classes: int = 5,
                 geojson: Optional[str] = None):
        def work(progress, check_cancel, log):
            result = write_district_stats(districts, list(rasters), output_gpkg, connection_name, classes,
                                          progress=progress, check_cancel=check_cancel, log=log)
            if geojson:
                from ..core.districts.geopackage import export_geojson

                latest = next(layer.name for layer in result.layers if layer.kind == "latest")
                export_geojson(result.output, latest, geojson)
            return result

        super().__init__(f"District statistics to {output_gpkg}", work)
