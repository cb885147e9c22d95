"""ATL08 work in the background: queries and nearest-shot searches that end in a styled file and layer."""

from qgis.PyQt.QtCore import QCoreApplication

from ..layers.segment_layer import QueryRequest, load_query_layer, write_nearest_output, write_query_output
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
    def __init__(self, request: QueryRequest):
        super().__init__(f"ATL08 query: {request.layer_name}",
                         lambda progress, check_cancel, log: write_query_output(request, progress, check_cancel))
        self.request = request


class NearestTask(OutputTask):
    def __init__(self, config, point, num_shots, radius_m, variables, filters_text="", start=None, end=None, output_path=None, classes=5):
        def work(progress, check_cancel, log):
            return write_nearest_output(config, point, num_shots, radius_m, variables, filters_text, start, end,
                                        output_path, classes, check_cancel)

        super().__init__(f"ATL08 nearest {num_shots} segments to {point[1]:.4f}, {point[0]:.4f}", work)
        self.point = point
