"""NDVI composites in the background, one year after the other, with progress per scene and cancel."""

from ..layers.ndvi_layer import write_ndvi_composites
from .engine_task import EngineTask


class NdviCompositeTask(EngineTask):
    """``completed(list of CompositeOutput)``."""

    def __init__(self, source, boundary, boundary_crs: str, years, max_cloud: float, output_folder: str,
                 cover_whole: bool = False, classes: int = 5):
        def work(progress, check_cancel, log):
            return write_ndvi_composites(source, boundary, boundary_crs, years, max_cloud, output_folder, cover_whole,
                                         classes, progress=progress, check_cancel=check_cancel, log=log)

        super().__init__(f"NDVI composites {years} ({source.collection})", work)
