"""Yearly median NDVI composites of Sentinel-2 L2A scenes over the region of interest, from a STAC API,
loaded as styled rasters."""

from typing import Optional

from shapely.geometry import box as shapely_box

from qgis.core import Qgis, QgsProject
from qgis.gui import QgsFileWidget
from qgis.PyQt import uic

from ...core.errors import CanopyExplorerError, QueryError
from ...core.sentinel2.composites import CompositeRequest
from ...core.sentinel2.stac_search import default_stac_source
from ...layers.ndvi_layer import load_composite_layer
from ...resources import ui_path
from ...tasks.ndvi_task import NdviCompositeTask
from ..components.region_box import RegionBox
from ..settings import ExplorerSettings
from .base import BasePanel

FORM_CLASS, _ = uic.loadUiType(ui_path("ndvi_panel.ui"))


class NdviPanel(BasePanel, FORM_CLASS):
    key = "ndvi"
    title = "NDVI composites"
    icon_name = "ndvi.svg"
    uses_region = True

    def __init__(self, iface, region: RegionBox, parent=None):
        super().__init__(iface, parent)
        self.region = region
        self.ndviFolderWidget.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        region.changed.connect(self.inputs_changed)
        self.runButton.clicked.connect(self.build_ndvi_composites)

    def restore_settings(self, settings: ExplorerSettings) -> None:
        self.yearsEdit.setText(settings.ndvi_years)
        self.stacUrlEdit.setText(settings.stac_url)
        self.collectionEdit.setText(settings.stac_collection)
        self.ndviFolderWidget.setFilePath(settings.ndvi_folder)
        self.maxCloudSpin.setValue(settings.max_cloud)
        self.classesSpin.setValue(settings.classes)

    def store_settings(self, settings: ExplorerSettings) -> None:
        settings.ndvi_years = self.yearsEdit.text()
        settings.stac_url = self.stacUrlEdit.text()
        settings.stac_collection = self.collectionEdit.text()
        settings.ndvi_folder = self.ndviFolderWidget.filePath()
        settings.max_cloud = self.maxCloudSpin.value()
        settings.classes = self.classesSpin.value()

    def build_ndvi_composites(self) -> Optional[NdviCompositeTask]:
        return self.launch("The NDVI composites", self.build_task, self._composites_built, " (progress per scene in the task manager)")

    def build_task(self) -> NdviCompositeTask:
        if self.region.roi is None:
            raise QueryError("no region yet: choose it in Region of interest (draw it, use the canvas extent or a polygon layer), "
                             "then build the composites again")
        folder = self.ndviFolderWidget.filePath().strip()
        if not folder:
            raise QueryError("no output folder for the composites: choose one, then build them again")
        roi, crs = self.region.roi
        boundary = roi if not isinstance(roi, tuple) else shapely_box(*roi)
        source = default_stac_source().with_changes(url=self.stacUrlEdit.text().strip(), collection=self.collectionEdit.text().strip())
        request = CompositeRequest.create(source, boundary, crs, self.yearsEdit.text(), self.maxCloudSpin.value(), folder,
                                          cover_whole=self.coverWholeCheck.isChecked(), classes=self.classesSpin.value())
        return NdviCompositeTask(request)

    def _composites_built(self, task: NdviCompositeTask, outputs):
        for output in outputs:
            try:
                QgsProject.instance().addMapLayer(load_composite_layer(output))
            except CanopyExplorerError as error:
                self.warn(str(error))
                continue
            if output.report.scenes_failed:
                self.message(output.report.summary(), Qgis.MessageLevel.Warning)
        self.message(f"{len(outputs)} NDVI composite(s) loaded.", Qgis.MessageLevel.Success)
        self.show_status("; ".join(output.report.summary() for output in outputs))
