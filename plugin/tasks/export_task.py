"""Export a result layer to another file format in the background."""

from typing import Optional

from qgis.core import QgsTask, QgsVectorLayer
from qgis.PyQt.QtCore import pyqtSignal

from ..core.errors import CanopyExplorerError
from ..layers.segment_layer import export_file, layer_file


class ExportTask(QgsTask):
    """``exported(path)`` or ``failed(message)``; the layer's file and style are read here, on the main thread."""

    exported = pyqtSignal(str)
    failed = pyqtSignal(str)

    def __init__(self, layer: QgsVectorLayer, target: str):
        super().__init__(f"Export {layer.name()} to {target}", QgsTask.Flag(0))
        self.source = layer_file(layer)
        self.renderer = layer.renderer().clone() if layer.renderer() else None
        self.name = layer.name()
        self.target = target
        self.error: Optional[BaseException] = None

    def run(self) -> bool:
        try:
            export_file(self.source, self.target, self.renderer, self.name)
            return True
        except CanopyExplorerError as error:
            self.error = error
            return False
        except Exception as error:  # GDAL or file system errors not mapped by the engine
            self.error = error
            return False

    def finished(self, result: bool) -> None:
        if result:
            self.exported.emit(self.target)
        elif self.error is not None:
            self.failed.emit(str(self.error))
