"""Grid change in the background: two periods streamed in batches, ending in styled cells."""

from ..core.grid.change import GridChangeRequest
from ..layers.grid_layer import write_grid_change
from .engine_task import EngineTask


class GridChangeTask(EngineTask):
    """``completed(GridChangeOutput)``; the layers are opened by the caller on the main thread."""

    def __init__(self, request: GridChangeRequest):
        super().__init__(f"ATL08 grid change to {request.output}",
                         lambda progress, check_cancel, log: write_grid_change(request, progress, check_cancel, log))
        self.request = request
