"""Export a result layer to another file format in the background."""

from qgis.core import QgsVectorLayer

from ..layers.segment_layer import export_file, layer_file
from .engine_task import EngineTask


class ExportTask(EngineTask):
    """``completed(target path)`` or ``failed(message)``; the layer's file and style are read here, on the main thread."""

    def __init__(self, layer: QgsVectorLayer, target: str):
        source = layer_file(layer)
        renderer = layer.renderer().clone() if layer.renderer() else None
        name = layer.name()
        super().__init__(f"Export {name} to {target}",
                         lambda progress, check_cancel, log: str(export_file(source, target, renderer, name)))
