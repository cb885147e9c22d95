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
from ...stac_catalogue import StacCatalogue, connection_url, saved_connections
from ...tasks.ndvi_task import NdviCompositeTask
from ..components.region_box import RegionBox
from ..settings import ExplorerSettings
from .base import BasePanel

FORM_CLASS, _ = uic.loadUiType(ui_path("ndvi_panel.ui"))

# What a row of the catalogue list stands for (its item data): the built-in default, a STAC connection saved
# in QGIS (the row's text is its name), or the URL typed in the field below.
DEFAULT_CATALOGUE, SAVED_CONNECTION, OTHER_URL = "default", "connection", "url"


class NdviPanel(BasePanel, FORM_CLASS):
    key = "ndvi"
    title = "NDVI composites"
    icon_name = "ndvi.svg"
    uses_region = True

    def __init__(self, iface, region: RegionBox, parent=None):
        super().__init__(iface, parent)
        self.region = region
        self.ndviFolderWidget.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self._typed_url = ""  # what the user typed for another STAC API, kept while another row shows its URL
        self.fill_catalogues()
        self.stacCatalogueCombo.currentIndexChanged.connect(self._catalogue_chosen)
        region.changed.connect(self.inputs_changed)
        self.runButton.clicked.connect(self.build_ndvi_composites)

    # ------------------------------------------------------------------ the STAC catalogue

    def fill_catalogues(self) -> None:
        """Earth Search, then the STAC connections saved in QGIS (3.40 and newer), then another STAC API by URL;
        the chosen row stays chosen when it is still there."""
        kind, name = self.chosen_catalogue()
        combo = self.stacCatalogueCombo
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("Earth Search (default)", DEFAULT_CATALOGUE)
        for connection in saved_connections():
            combo.addItem(connection, SAVED_CONNECTION)
        combo.addItem("Another STAC API (URL below)", OTHER_URL)
        combo.blockSignals(False)
        self.choose_catalogue(kind or DEFAULT_CATALOGUE, name)

    def chosen_catalogue(self):
        """(kind, connection name): what the chosen row stands for; (None, "") before the list is filled."""
        combo = self.stacCatalogueCombo
        kind = combo.currentData()
        return kind, combo.currentText() if kind == SAVED_CONNECTION else ""

    def choose_catalogue(self, kind: str, connection: str = "") -> None:
        combo = self.stacCatalogueCombo
        combo.blockSignals(True)
        for row in range(combo.count()):
            if combo.itemData(row) == kind and (kind != SAVED_CONNECTION or combo.itemText(row) == connection):
                combo.setCurrentIndex(row)
                break
        else:
            combo.setCurrentIndex(0)
        combo.blockSignals(False)
        self._catalogue_chosen()

    def _catalogue_chosen(self, *_) -> None:
        """The URL field shows the chosen catalogue's URL, and is editable for another STAC API only."""
        kind, connection = self.chosen_catalogue()
        if self.stacUrlEdit.isEnabled():
            self._typed_url = self.stacUrlEdit.text()
        if kind == OTHER_URL:
            self.stacUrlEdit.setText(self._typed_url)
        elif kind == SAVED_CONNECTION:
            self.stacUrlEdit.setText(connection_url(connection))
        else:
            self.stacUrlEdit.setText(default_stac_source().url)
        self.stacUrlEdit.setEnabled(kind == OTHER_URL)
        self.inputs_changed()

    def catalogue(self) -> StacCatalogue:
        kind, connection = self.chosen_catalogue()
        if kind == SAVED_CONNECTION:
            return StacCatalogue(connection=connection)
        if kind == OTHER_URL:
            if not self.stacUrlEdit.text().strip():
                raise QueryError("no STAC API URL: type one, or choose Earth Search or a saved STAC connection, "
                                 "then build the composites again")
            return StacCatalogue(url=self.stacUrlEdit.text())
        return StacCatalogue()

    def refresh(self) -> None:
        self.fill_catalogues()  # connections may have been added or removed in the Data Source Manager

    # ------------------------------------------------------------------ settings

    def restore_settings(self, settings: ExplorerSettings) -> None:
        self.yearsEdit.setText(settings.ndvi_years)
        self.fill_catalogues()
        self.stacUrlEdit.setEnabled(False)  # the stored URL comes back from _typed_url, not from the field
        self._typed_url = settings.stac_url if settings.stac_url != default_stac_source().url else ""
        if settings.stac_connection and settings.stac_connection in saved_connections():
            self.choose_catalogue(SAVED_CONNECTION, settings.stac_connection)
        elif self._typed_url:
            self.choose_catalogue(OTHER_URL)
        else:
            self.choose_catalogue(DEFAULT_CATALOGUE)
        self.collectionEdit.setText(settings.stac_collection)
        self.ndviFolderWidget.setFilePath(settings.ndvi_folder)
        self.maxCloudSpin.setValue(settings.max_cloud)
        self.classesSpin.setValue(settings.classes)

    def store_settings(self, settings: ExplorerSettings) -> None:
        settings.ndvi_years = self.yearsEdit.text()
        kind, connection = self.chosen_catalogue()
        settings.stac_connection = connection
        settings.stac_url = self.stacUrlEdit.text() if kind == OTHER_URL else default_stac_source().url
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
        source = self.catalogue().source(self.collectionEdit.text())
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
