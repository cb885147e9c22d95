"""Raster values at ATL08 segments: the chosen raster layers, or the NDVI composite of each segment's year, added
as fields to a copy of a point layer, which is loaded into the project."""

from typing import List, Optional

from qgis.core import Qgis, QgsProject, QgsRasterLayer
from qgis.gui import QgsFileWidget
from qgis.PyQt import uic
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QListWidgetItem

from ...core.districts.statistics import year_of
from ...core.errors import CanopyExplorerError, QueryError
from ...layers.sampled_layer import load_sampled_layer, point_layer_file, sample_request
from ...qgis_compat import POINT_LAYERS
from ...resources import ui_path
from ...tasks.sample_task import SampleRastersTask
from .base import BasePanel

FORM_CLASS, _ = uic.loadUiType(ui_path("sample_rasters_panel.ui"))
OUTPUT_FILTER = "GeoPackage (*.gpkg);;FlatGeobuf (*.fgb);;GeoJSON (*.geojson);;CSV (*.csv)"


class SampleRastersPanel(BasePanel, FORM_CLASS):
    key = "sample_rasters"
    title = "Sample rasters"
    icon_name = "ndvi.svg"

    def __init__(self, iface, parent=None):
        super().__init__(iface, parent)
        self.pointsLayerCombo.setFilters(POINT_LAYERS)
        self.sampleOutputWidget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.sampleOutputWidget.setFilter(OUTPUT_FILTER)
        self.chosenRastersRadio.toggled.connect(self.refresh_rasters)
        self.runButton.clicked.connect(self.sample_rasters)

    def refresh(self) -> None:
        self.refresh_rasters()

    @property
    def by_year(self) -> bool:
        return self.compositeByYearRadio.isChecked()

    def refresh_rasters(self, *_):
        """List the project's raster layers (only those whose file name holds a year, for the composites by year),
        keeping what was ticked."""
        ticked = {self.sampleRastersList.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.sampleRastersList.count())
                  if self.sampleRastersList.item(i).checkState() == Qt.CheckState.Checked}
        self.sampleRastersList.clear()
        self.bandSpin.setEnabled(not self.by_year)
        listed = []
        for layer in QgsProject.instance().mapLayers().values():
            if not isinstance(layer, QgsRasterLayer):
                continue
            label = layer.name()
            if self.by_year:
                try:
                    label = f"{layer.name()} ({year_of(layer.source())})"
                except CanopyExplorerError:
                    continue
            listed.append((layer.id(), label))
        # the composites by year are all ticked unless some of them were chosen; other rasters only when chosen
        tick_all = self.by_year and not ticked & {identifier for identifier, _ in listed}
        for identifier, label in listed:
            item = QListWidgetItem(label)
            item.setData(Qt.ItemDataRole.UserRole, identifier)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if tick_all or identifier in ticked else Qt.CheckState.Unchecked)
            self.sampleRastersList.addItem(item)

    def chosen_rasters(self) -> List[QgsRasterLayer]:
        project = QgsProject.instance()
        ids = [self.sampleRastersList.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.sampleRastersList.count())
               if self.sampleRastersList.item(i).checkState() == Qt.CheckState.Checked]
        return [project.mapLayer(i) for i in ids if project.mapLayer(i) is not None]

    def sample_rasters(self) -> Optional[SampleRastersTask]:
        return self.launch("The raster values at the segments", self.build_task, self._sampled)

    def build_task(self) -> SampleRastersTask:
        output = self.sampleOutputWidget.filePath().strip()
        if not output:
            raise QueryError("no output file: choose where to write the segments with their raster values")
        if "." not in output.rsplit("/", 1)[-1]:
            output += ".gpkg"
        request = sample_request(point_layer_file(self.pointsLayerCombo.currentLayer()), output, self.chosen_rasters(), self.by_year,
                                 self.bandSpin.value())
        task = SampleRastersTask(request)
        task.points_layer_id = self.pointsLayerCombo.currentLayer().id()  # an id: the layer may be removed meanwhile
        return task

    def _sampled(self, task: SampleRastersTask, result):
        points = QgsProject.instance().mapLayer(task.points_layer_id)
        name = f"{points.name()} with {', '.join(result.fields)}" if points is not None else result.path.stem
        QgsProject.instance().addMapLayer(load_sampled_layer(result, name, style_from=points))
        summary = (f"{result.rows} segments written to {result.path.name}: "
                   + "; ".join(f"{field} has a value at {count}" for field, count in result.valued.items()) + ".")
        self.message(summary, Qgis.MessageLevel.Success)
        self.show_status(summary)
