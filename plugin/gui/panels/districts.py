"""NDVI statistics per district and year from the composites in the project, embedded or in PostGIS,
written to a GeoPackage and loaded as styled tables."""

from pathlib import Path
from typing import List, Optional

from qgis.core import Qgis, QgsMessageLog, QgsProject, QgsProviderRegistry, QgsRasterLayer
from qgis.gui import QgsFileWidget
from qgis.PyQt import uic
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QListWidgetItem

from ...core.districts.statistics import DistrictStatsRequest, year_of
from ...core.errors import CanopyExplorerError, QueryError
from ...layers.district_layer import districts_from_layer, load_statistics_layers, postgres_connection
from ...qgis_compat import POLYGON_LAYERS
from ...resources import ui_path
from ...tasks.district_task import DistrictStatsTask
from ..messages import LOG_TAG
from ..settings import ExplorerSettings
from .base import BasePanel

FORM_CLASS, _ = uic.loadUiType(ui_path("districts_panel.ui"))


class DistrictsPanel(BasePanel, FORM_CLASS):
    key = "districts"
    title = "District statistics"
    icon_name = "districts.svg"

    def __init__(self, iface, parent=None):
        super().__init__(iface, parent)
        self.districtsLayerCombo.setFilters(POLYGON_LAYERS)
        self.districtsLayerCombo.layerChanged.connect(self.idFieldCombo.setLayer)
        self.idFieldCombo.setLayer(self.districtsLayerCombo.currentLayer())
        self.statsOutputWidget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.statsOutputWidget.setFilter("GeoPackage (*.gpkg)")
        self.runButton.clicked.connect(self.compute_district_stats)

    def refresh(self) -> None:
        self.refresh_composites()
        self.refresh_connections()

    def restore_settings(self, settings: ExplorerSettings) -> None:
        self.classesSpin.setValue(settings.classes)

    def store_settings(self, settings: ExplorerSettings) -> None:
        settings.classes = self.classesSpin.value()

    def refresh_composites(self):
        """List the project's raster layers whose source names a year, keeping what was ticked."""
        ticked = {self.rastersList.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.rastersList.count())
                  if self.rastersList.item(i).checkState() == Qt.CheckState.Checked}
        self.rastersList.clear()
        for layer in QgsProject.instance().mapLayers().values():
            if not isinstance(layer, QgsRasterLayer):
                continue
            try:
                year = year_of(layer.source())
            except CanopyExplorerError:
                continue
            item = QListWidgetItem(f"{layer.name()} ({year})")
            item.setData(Qt.ItemDataRole.UserRole, layer.source())
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if not ticked or layer.source() in ticked else Qt.CheckState.Unchecked)
            self.rastersList.addItem(item)

    def refresh_connections(self):
        """The saved PostgreSQL connections, after "none" (embedded)."""
        current = self.postgresCombo.currentData()
        self.postgresCombo.clear()
        self.postgresCombo.addItem("None: compute here (embedded)", "")
        metadata = QgsProviderRegistry.instance().providerMetadata("postgres")
        for name in sorted(metadata.connections() if metadata else {}):
            self.postgresCombo.addItem(name, name)
        index = self.postgresCombo.findData(current)
        self.postgresCombo.setCurrentIndex(max(index, 0))

    def chosen_composites(self) -> List[str]:
        return [self.rastersList.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.rastersList.count())
                if self.rastersList.item(i).checkState() == Qt.CheckState.Checked]

    def compute_district_stats(self) -> Optional[DistrictStatsTask]:
        return self.launch("The district statistics", self.build_task, self._district_stats_done)

    def build_task(self) -> DistrictStatsTask:
        output = self.statsOutputWidget.filePath().strip()
        if not output:
            raise QueryError("no GeoPackage for the statistics: choose one, then compute again")
        if not output.lower().endswith(".gpkg"):
            output += ".gpkg"
        districts = districts_from_layer(self.districtsLayerCombo.currentLayer(), self.idFieldCombo.currentField())
        geojson = str(Path(output).with_name(Path(output).stem + "_latest.geojson")) if self.geojsonCheck.isChecked() else None
        request = DistrictStatsRequest.create(districts, self.chosen_composites(), output,
                                              connection=postgres_connection(self.postgresCombo.currentData() or ""),
                                              classes=self.classesSpin.value(), geojson=geojson)
        return DistrictStatsTask(request)

    def _district_stats_done(self, task: DistrictStatsTask, result):
        for layer in load_statistics_layers(result):
            QgsProject.instance().addMapLayer(layer)
        if result.repairs:
            self.message(f"{len(result.repairs)} district geometries were repaired or empty; see the log.", Qgis.MessageLevel.Warning)
            for district, reason in result.repairs:
                QgsMessageLog.logMessage(f"district {district}: {reason}", LOG_TAG, Qgis.MessageLevel.Warning)
        self.message(result.summary(), Qgis.MessageLevel.Success)
        self.show_status(result.summary())
