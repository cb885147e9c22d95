"""Grid change in the background: two periods streamed in batches, ending in styled cells."""

from ..layers.grid_layer import write_grid_change
from .engine_task import EngineTask


class GridChangeTask(EngineTask):
    """``completed(GridChangeOutput)``; the layers are opened by the caller on the main thread."""

    def __init__(self, config, output: str, **options):
        def work(progress, check_cancel, log):
            return write_grid_change(config, output, progress=progress, check_cancel=check_cancel, **options)

        super().__init__(f"ATL08 grid change to {output}", work)
