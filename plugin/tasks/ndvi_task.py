"""NDVI composites in the background, one year after the other, with progress per scene and cancel."""

from ..core.sentinel2.composites import CompositeRequest
from ..layers.ndvi_layer import write_ndvi_composites
from .engine_task import EngineTask


class NdviCompositeTask(EngineTask):
    """``completed(list of CompositeOutput)``."""

    def __init__(self, request: CompositeRequest):
        years = ", ".join(str(year) for year in request.years)
        super().__init__(f"NDVI composites {years} ({request.source.collection})",
                         lambda progress, check_cancel, log: write_ndvi_composites(request, progress, check_cancel, log))
        self.request = request
