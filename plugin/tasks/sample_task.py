"""Raster values at segment points in the background, ending in a copy of the point layer with the new fields."""

from ..core.sentinel2.sample_at_points import SampleRequest, sample_rasters_at_points
from .engine_task import EngineTask


class SampleRastersTask(EngineTask):
    """``completed(SampledPoints)``."""

    def __init__(self, request: SampleRequest):
        super().__init__(f"Raster values at the points of {request.points.name}",
                         lambda progress, check_cancel, log: sample_rasters_at_points(request, progress, check_cancel, log))
        self.request = request
