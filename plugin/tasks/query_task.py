"""ATL08 work in the background: queries and nearest-shot searches that end in a styled file and layer."""

from typing import Optional

from qgis.PyQt.QtCore import QCoreApplication, pyqtSignal

from ..core.lidar.query import NearestRequest
from ..layers.segment_layer import QueryRequest, load_query_layer, place_text, write_nearest_output, write_query_output
from ..layers.preview_layer import preview_batch
from .engine_task import EngineTask


class OutputTask(EngineTask):
    """Also opens the result layer in the background (a CSV's provider scans the whole file when
    opened) and hands it to the main thread as ``self.layer`` (None when nothing was written)."""

    layer = None

    def prepare(self, output) -> None:
        if output.path and output.rows:
            self.layer = load_query_layer(output)
            self.layer.moveToThread(QCoreApplication.instance().thread())


class QueryTask(OutputTask):
    """``batchRead(PreviewBatch)``: a batch has been read (queued to the main thread while the rest is read)."""

    batchRead = pyqtSignal(object)

    def __init__(self, request: QueryRequest):
        super().__init__(f"ATL08 query: {request.layer_name}",
                         lambda progress, check_cancel, log: write_query_output(request, progress, check_cancel,
                                                                                batch_read=self._batch_read))
        self.request = request
        self._batches = 0

    def _batch_read(self, frame, rows: int, estimated_rows: int) -> None:
        self._batches += 1
        self.batchRead.emit(preview_batch(frame, rows, estimated_rows, self.request.colour_column, self.request.classes,
                                          first=self._batches == 1))


class NearestTask(OutputTask):
    def __init__(self, config, request: NearestRequest, output_path: Optional[str] = None, classes: int = 5):
        super().__init__(f"Find the {request.num_shots} ATL08 segments nearest to {place_text(request.point[1], request.point[0], 4)}",
                         lambda progress, check_cancel, log: write_nearest_output(config, request, output_path, classes, check_cancel))
        self.request = request
